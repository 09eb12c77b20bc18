/** One reading of a series: where it was taken (seconds since a soak's load started, reconnects done, ...), and the value then. */
export interface Point {
  readonly at: number
  readonly value: number
}

const MB = 1024 * 1024

/** The least-squares line through the points: its slope per unit of `at`, or 0 with fewer than two distinct `at`. */
export const slopeOf = (points: ReadonlyArray<Point>) => {
  const n = points.length
  if (n < 2) return 0
  const meanAt = points.reduce((sum, p) => sum + p.at, 0) / n
  const meanValue = points.reduce((sum, p) => sum + p.value, 0) / n
  let covariance = 0
  let variance = 0
  for (const p of points) {
    covariance += (p.at - meanAt) * (p.value - meanValue)
    variance += (p.at - meanAt) ** 2
  }
  return variance === 0 ? 0 : covariance / variance
}

/** The points of the second half of a run of `seconds`: the warm-up (JIT, pools, caches, sessions filling) is behind. */
export const secondHalf = (points: ReadonlyArray<Point>, seconds: number) =>
  points.filter((p) => p.at >= seconds / 2)

export interface Growth {
  /** The fitted slope, in units per hour (MB per hour for memory). */
  readonly perHour: number
  /** The fitted growth across the judged window: slope times the window's length. */
  readonly overWindow: number
  readonly windowSeconds: number
  /** The readings judged; with fewer than `minimumPoints` nothing is judged and `grows` is false (for memory, the soak then fails: `tooShortToJudgeMemory`). */
  readonly points: number
  readonly grows: boolean
}

/** Fewer readings than this in the judged half say nothing about a trend. */
export const minimumPoints = 3

/**
 * The samples a run of `seconds` takes in its second half, one every `sampleSeconds` from its start
 * to its end (each read a moment after it is due, so one due at the half counts).
 */
export const samplesInSecondHalf = (seconds: number, sampleSeconds: number) =>
  Math.max(0, Math.floor(seconds / sampleSeconds) - Math.ceil(seconds / 2 / sampleSeconds) + 1)

/** The shortest run, in whole seconds, with `minimumPoints` samples in its second half: nothing shorter can be judged. */
export const shortestJudgeableSeconds = (sampleSeconds: number) => {
  let seconds = sampleSeconds
  while (samplesInSecondHalf(seconds, sampleSeconds) < minimumPoints) seconds++
  return seconds
}

/**
 * How long a soak must run in practice for its memory to be judged. Memory is read only in a sample
 * whose window saw a full collection, and V8 ran those anywhere from every 10 s to every 2 minutes in
 * the runs so far: none in the second half of a 90 s run, 14 in that of a 10 minute one.
 */
export const judgedMemoryMinutes = 10

/**
 * Why a run's memory was not judged (fewer than `minimumPoints` readings after a full collection in
 * its second half, as `memoryGrowth` counts them), or undefined when it was: a run that cannot say
 * whether memory grows has not shown that it does not.
 */
export const tooShortToJudgeMemory = (growth: Growth) =>
  growth.points >= minimumPoints
    ? undefined
    : `too short to judge memory: ${growth.points} reading${growth.points === 1 ? "" : "s"} after a full GC in the second half, ${minimumPoints} needed; run at least ${judgedMemoryMinutes} minutes`

export interface MemoryLimit {
  /** A slope above this many MB an hour is a leak... */
  readonly mbPerHour: number
  /** ...if the fitted line also rose by more than this many MB across the window (noise on a short window extrapolates to any slope). */
  readonly atLeastMb: number
}

/**
 * Whether memory keeps growing: a least-squares line through the second half of the run rises faster
 * than `mbPerHour` **and** by more than `atLeastMb` across that half. The first half is left out
 * (warm-up fills caches and pools and may legitimately grow); the absolute floor keeps a few MB of
 * noise on a short window from extrapolating to a huge hourly slope. The smallest leak a run can
 * catch is therefore the larger of `mbPerHour` and `atLeastMb / (half the run in hours)`.
 */
export const memoryGrowth = (points: ReadonlyArray<Point>, seconds: number, limit: MemoryLimit): Growth => {
  const judged = secondHalf(points, seconds)
  const windowSeconds = judged.length < 2 ? 0 : judged[judged.length - 1]!.at - judged[0]!.at
  const slope = slopeOf(judged) / MB
  const perHour = slope * 3600
  const overWindow = slope * windowSeconds
  return {
    perHour,
    overWindow,
    windowSeconds,
    points: judged.length,
    grows: judged.length >= minimumPoints && perHour > limit.mbPerHour && overWindow > limit.atLeastMb
  }
}

/**
 * Whether a backlog grows without bound: over the second half of the run, the fitted line of the
 * backlog (work accepted but not yet done) rises by more than `allowance` items, the work of some
 * seconds of the offered load. A gateway keeping up with a fixed rate holds a backlog that goes up
 * and down around a level; one that falls behind piles up what it cannot do, every second.
 */
export const backlogGrowth = (points: ReadonlyArray<Point>, seconds: number, allowance: number): Growth => {
  const judged = secondHalf(points, seconds)
  const windowSeconds = judged.length < 2 ? 0 : judged[judged.length - 1]!.at - judged[0]!.at
  const slope = slopeOf(judged)
  return {
    perHour: slope * 3600,
    overWindow: slope * windowSeconds,
    windowSeconds,
    points: judged.length,
    grows: judged.length >= minimumPoints && slope * windowSeconds > allowance
  }
}
