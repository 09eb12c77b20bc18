import { describe, expect, it } from "@effect/vitest"
import { parseCommandLine } from "../src/commandLine.ts"

const benchmarks = {
  phones: { full: { channels: 200 }, quick: { channels: 10 } },
  "phones-1000": { full: { channels: 1000 }, quick: { channels: 1000 } },
  sends: {
    full: { seconds: 10, warmUpSeconds: 5, rounds: 3, connections: 64 },
    quick: { seconds: 3, warmUpSeconds: 2, rounds: 1, connections: 64 }
  }
}
const onlyWhenNamed = new Set(["phones-1000"])

const parse = (...args: ReadonlyArray<string>) => parseCommandLine(args, benchmarks, onlyWhenNamed)

describe("the benchmarks' command line", () => {
  it("--set changes a field of the full size and leaves the others", () => {
    expect(parse("sends", "--set", "seconds=20", "--set", "rounds=5")).toEqual({
      quick: false,
      runs: [
        {
          name: "sends",
          size: { seconds: 20, warmUpSeconds: 5, rounds: 5, connections: 64 },
          set: "seconds=20 rounds=5"
        }
      ]
    })
  })

  it("--set applies on top of the quick size too, wherever it stands", () => {
    expect(parse("--set", "channels=50", "--quick", "phones")).toEqual({
      quick: true,
      runs: [{ name: "phones", size: { channels: 50 }, set: "channels=50" }]
    })
  })

  it("a field only one of the benchmarks run has is set on that one alone", () => {
    const plan = parse("--quick", "--set", "rounds=2")
    expect(plan).toEqual({
      quick: true,
      runs: [
        { name: "phones", size: { channels: 10 }, set: "" },
        { name: "sends", size: { seconds: 3, warmUpSeconds: 2, rounds: 2, connections: 64 }, set: "rounds=2" }
      ]
    })
  })

  it("a field none of the benchmarks run has is an error naming each one's fields as they are", () => {
    const plan = parse("phones", "sends", "--quick", "--set", "channel=50")
    expect(plan).toHaveProperty("error")
    const { error } = plan as { error: string }
    expect(error).toContain("none of the benchmarks to run has a field channel")
    expect(error).toContain("phones  channels=10\n")
    expect(error).toContain("sends   seconds=3 warmUpSeconds=2 rounds=1 connections=64\n")
    expect(error).toContain("usage: npm run bench --")
  })

  it("a count given with a fraction is an error", () => {
    expect(parse("phones", "--set", "channels=2.5")).toHaveProperty(
      "error",
      expect.stringContaining("--set channels=2.5: a whole number is needed")
    )
    expect(parse("phones", "--set", "channels=25")).toHaveProperty("runs")
  })

  it("a value that is not a number is an error", () => {
    for (const value of ["twenty", "", "1e3", "-5", "0", "20s"]) {
      const plan = parse("sends", "--set", `seconds=${value}`)
      expect(plan).toHaveProperty(
        "error",
        expect.stringContaining(`--set seconds=${value}: the value is not a number`)
      )
    }
    expect(parse("sends", "--set")).toHaveProperty(
      "error",
      expect.stringContaining("--set takes <field>=<number>")
    )
    expect(parse("sends", "--set", "seconds")).toHaveProperty(
      "error",
      expect.stringContaining("--set takes <field>=<number>, not seconds")
    )
  })

  it("an unknown name is an error; no name runs every benchmark but those run only when named", () => {
    expect(parse("send")).toHaveProperty(
      "error",
      expect.stringContaining("unknown benchmark or option: send")
    )
    expect(parse("toString")).toHaveProperty("error")
    const plan = parse()
    expect("runs" in plan && plan.runs.map((run) => run.name)).toEqual(["phones", "sends"])
  })
})
