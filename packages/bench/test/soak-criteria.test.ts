import { describe, expect, it } from "@effect/vitest"
import {
  backlogGrowth,
  memoryGrowth,
  type Point,
  samplesInSecondHalf,
  secondHalf,
  shortestJudgeableSeconds,
  slopeOf,
  tooShortToJudgeMemory
} from "../src/soakCriteria.ts"

const MB = 1024 * 1024
const heapLimit = { mbPerHour: 12, atLeastMb: 4 }

/** A reading every 10 s over `seconds`, of `value(at)`. */
const readings = (seconds: number, value: (at: number) => number): Array<Point> =>
  Array.from({ length: Math.floor(seconds / 10) }, (_, i) => {
    const at = (i + 1) * 10
    return { at, value: value(at) }
  })

/** A few MB of deterministic wobble, as a heap after collection shows. */
const wobble = (at: number) => Math.sin(at / 37) * 2 * MB

describe("the soak's growth criteria", () => {
  it("the slope of a straight line is its rate", () => {
    expect(slopeOf(readings(600, (at) => 5 + 2 * at))).toBeCloseTo(2, 9)
  })

  it("a heap that leaks 30 MB an hour over 30 minutes grows", () => {
    const growth = memoryGrowth(
      readings(1800, (at) => 80 * MB + (30 * MB * at) / 3600 + wobble(at)),
      1800,
      heapLimit
    )
    expect(growth.perHour).toBeGreaterThan(25)
    expect(growth.grows).toBe(true)
  })

  it("a heap that levels off after warming up does not grow, however steep the warm-up", () => {
    // 60 MB more over the first 5 minutes, flat (wobbling) afterwards
    const growth = memoryGrowth(
      readings(1800, (at) => 80 * MB + Math.min(at, 300) * (60 / 300) * MB + wobble(at)),
      1800,
      heapLimit
    )
    expect(growth.grows).toBe(false)
  })

  it("a few MB of noise on a 90 s run does not extrapolate to a leak", () => {
    const growth = memoryGrowth(
      readings(90, (at) => 80 * MB + (at > 60 ? 3 * MB : 0)),
      90,
      heapLimit
    )
    expect(growth.perHour).toBeGreaterThan(heapLimit.mbPerHour)
    expect(growth.grows).toBe(false)
  })

  it("a gross leak shows even on a 90 s run", () => {
    const growth = memoryGrowth(
      readings(90, (at) => 80 * MB + 0.5 * MB * at),
      90,
      heapLimit
    )
    expect(growth.grows).toBe(true)
  })

  it("two readings in the judged half are not enough to judge", () => {
    const growth = memoryGrowth(
      [
        { at: 50, value: 80 * MB },
        { at: 80, value: 200 * MB }
      ],
      90,
      heapLimit
    )
    expect(growth.points).toBe(2)
    expect(growth.grows).toBe(false)
  })

  it("a run with fewer than 3 readings after a full GC in its second half is too short to judge memory", () => {
    const two = memoryGrowth(
      [
        { at: 20, value: 80 * MB },
        { at: 50, value: 80 * MB },
        { at: 80, value: 80 * MB }
      ],
      90,
      heapLimit
    )
    expect(tooShortToJudgeMemory(two)).toBe(
      "too short to judge memory: 2 readings after a full GC in the second half, 3 needed; run at least 10 minutes"
    )
    expect(tooShortToJudgeMemory(memoryGrowth([], 90, heapLimit))).toContain(": 0 readings after a full GC")
  })

  it("three readings after a full GC in the second half judge memory, steady or not", () => {
    const points = [50, 70, 90].map((at) => ({ at, value: 80 * MB }))
    expect(tooShortToJudgeMemory(memoryGrowth(points, 90, heapLimit))).toBeUndefined()
  })

  it("a sample every 10 s puts 3 in the second half of a 40 s run at the shortest", () => {
    for (let seconds = 10; seconds <= 130; seconds++) {
      expect(samplesInSecondHalf(seconds, 10)).toBe(
        secondHalf(
          readings(seconds, () => 0),
          seconds
        ).length
      )
    }
    expect(samplesInSecondHalf(39, 10)).toBe(2)
    expect(shortestJudgeableSeconds(10)).toBe(40)
  })

  it("a backlog that piles up at a fixed rate grows; one that goes up and down does not", () => {
    const piling = backlogGrowth(
      readings(600, (at) => at * 2),
      600,
      360
    )
    expect(piling.grows).toBe(true)
    const steady = backlogGrowth(
      readings(600, (at) => (at % 30 === 0 ? 40 : 3)),
      600,
      360
    )
    expect(steady.grows).toBe(false)
  })
})
