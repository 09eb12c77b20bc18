/** A benchmark's size: named numbers (channels, seconds, rounds), any of which `--set <field>=<number>` changes. */
export type Size = Readonly<Record<string, number>>

/** The two sizes a benchmark has: its full one and its quick (CI-sized) one. */
export interface Sizes {
  readonly full: Size
  readonly quick: Size
}

/** What a command line asks for: each benchmark to run, at the size it runs at, and the fields set on it. */
export interface Plan {
  readonly quick: boolean
  readonly runs: ReadonlyArray<{
    readonly name: string
    readonly size: Size
    /** The fields of `size` that `--set` gave, as `name=value` ("" when none). */
    readonly set: string
  }>
}

/** `channels=200 seconds=10`: a size as the command line writes it. */
export const describeSize = (size: Size) =>
  Object.entries(size)
    .map(([field, value]) => `${field}=${value}`)
    .join(" ")

/** The usage line, and every benchmark's fields with their full and quick values. */
export const usage = (benchmarks: Readonly<Record<string, Sizes>>) => {
  const width = Math.max(...Object.keys(benchmarks).map((name) => name.length))
  return [
    "usage: npm run bench -- [--quick] [--set <field>=<number> ...] [<benchmark> ...]",
    "       npm run bench -- --soak <duration of at least 40 s, 10 minutes to judge memory: 90s, 10m, 2h>",
    "--set overrides a field of the size of every benchmark named that has it (full size, or quick with --quick).",
    "benchmarks and their fields (full size | quick size):",
    ...Object.entries(benchmarks).map(
      ([name, { full, quick }]) =>
        `  ${name.padEnd(width)}  ${Object.keys(full)
          .map((field) => `${field}=${full[field]}|${quick[field]}`)
          .join("  ")}`
    )
  ].join("\n")
}

/** Digits, with a decimal part or not: `20`, `0.5`. */
const numberPattern = /^\d+(?:\.\d+)?$/

/**
 * The command line of `npm run bench` (after `--`): `--quick`, any number of `--set <field>=<number>`,
 * and benchmark names (none: every benchmark but those `onlyWhenNamed`). A `--set` field applies to
 * each benchmark run that has it, on top of its full or quick size; it is an error only when none
 * has it. Anything wrong is the error, with the usage, before any benchmark starts; `--help` is
 * the usage alone.
 */
export const parseCommandLine = (
  args: ReadonlyArray<string>,
  benchmarks: Readonly<Record<string, Sizes>>,
  onlyWhenNamed: ReadonlySet<string>
): Plan | { readonly error: string } | { readonly help: string } => {
  const fail = (message: string) => ({ error: `${message}\n${usage(benchmarks)}` })
  let quick = false
  const names: Array<string> = []
  const overrides = new Map<string, number>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--help") return { help: usage(benchmarks) }
    if (arg === "--quick") quick = true
    else if (arg === "--set") {
      const setting = args[++i]
      const match = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(setting ?? "")
      if (match === null) return fail(`--set takes <field>=<number>, not ${setting ?? "nothing"}`)
      const [, field, value] = match
      if (!numberPattern.test(value!) || Number(value) === 0) {
        return fail(`--set ${field}=${value}: the value is not a number above 0`)
      }
      overrides.set(field!, Number(value))
    } else if (Object.hasOwn(benchmarks, arg)) names.push(arg)
    else return fail(`unknown benchmark or option: ${arg}`)
  }
  const chosen = names.length > 0 ? names : Object.keys(benchmarks).filter((name) => !onlyWhenNamed.has(name))
  const sizeOf = (name: string) => (quick ? benchmarks[name]!.quick : benchmarks[name]!.full)
  const unknown = [...overrides.keys()].filter((field) =>
    chosen.every((name) => !Object.hasOwn(sizeOf(name), field))
  )
  if (unknown.length > 0) {
    const width = Math.max(...chosen.map((name) => name.length))
    return fail(
      [
        `--set: none of the benchmarks to run has a field ${unknown.join(", ")}; theirs (${quick ? "quick" : "full"} size):`,
        ...chosen.map((name) => `  ${name.padEnd(width)}  ${describeSize(sizeOf(name))}`)
      ].join("\n")
    )
  }
  // a count (channels, rounds, seconds...) is whole wherever a benchmark's own sizes have it whole
  const fractional = [...overrides].filter(
    ([field, value]) =>
      !Number.isInteger(value) &&
      chosen.some((name) => {
        const { full, quick: small } = benchmarks[name]!
        return Object.hasOwn(full, field) && Number.isInteger(full[field]) && Number.isInteger(small[field])
      })
  )
  if (fractional.length > 0) {
    return fail(
      `--set ${fractional.map(([field, value]) => `${field}=${value}`).join(", ")}: a whole number is needed`
    )
  }
  return {
    quick,
    runs: chosen.map((name) => {
      const base = sizeOf(name)
      const set = Object.fromEntries([...overrides].filter(([field]) => Object.hasOwn(base, field)))
      return { name, size: { ...base, ...set }, set: describeSize(set) }
    })
  }
}
