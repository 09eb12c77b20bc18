import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** What a figure should stay within; shown beside it, met or not, and never a reason to fail a run. */
export type Target = { readonly atMost: number } | { readonly atLeast: number }

const meets = (value: number, target: Target) =>
  "atMost" in target ? value <= target.atMost : value >= target.atLeast

export interface Figure {
  /** The key in the JSON file; its last part names the unit (`_ms`, `_kib`). */
  readonly key: string
  readonly label: string
  readonly value: number
  readonly unit: string
  readonly target?: Target
}

export interface Report {
  readonly benchmark: string
  readonly title: string
  readonly parameters: Record<string, string | number | boolean>
  readonly figures: ReadonlyArray<Figure>
}

export const resultsDir = path.join(import.meta.dirname, "..", "results")

const formatted = (value: number) =>
  value.toLocaleString("en-US", {
    maximumFractionDigits: Math.abs(value) < 1 ? 3 : Math.abs(value) < 10 ? 2 : 1
  })

const verdict = (value: number, target: Target) =>
  `target ${"atMost" in target ? `≤ ${formatted(target.atMost)}` : `≥ ${formatted(target.atLeast)}`}: ${meets(value, target) ? "met" : "NOT met"}`

/** The report as a small table on stdout, and as `results/<benchmark>.json`. */
export const publish = (report: Report) =>
  Effect.sync(() => {
    const rows = report.figures.map(
      (figure) =>
        [
          figure.label,
          formatted(figure.value),
          figure.unit,
          figure.target === undefined ? "" : verdict(figure.value, figure.target)
        ] as const
    )
    const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length)))
    const lines = [
      "",
      `${report.benchmark}: ${report.title}`,
      `  ${Object.entries(report.parameters)
        .map(([name, value]) => `${name}=${value}`)
        .join("  ")}`,
      ...rows.map(([label, value, unit, target]) =>
        `  ${label.padEnd(widths[0]!)}  ${value.padStart(widths[1]!)} ${unit.padEnd(widths[2]!)}  ${target}`.trimEnd()
      )
    ]
    console.log(lines.join("\n"))
    fs.mkdirSync(resultsDir, { recursive: true })
    const file = path.join(resultsDir, `${report.benchmark}.json`)
    const targets = report.figures.flatMap((figure) =>
      figure.target === undefined
        ? []
        : [
            [
              figure.key,
              {
                value: figure.value,
                ...("atMost" in figure.target
                  ? { at_most: figure.target.atMost }
                  : { at_least: figure.target.atLeast }),
                met: meets(figure.value, figure.target)
              }
            ] as const
          ]
    )
    const json = {
      benchmark: report.benchmark,
      title: report.title,
      at: new Date().toISOString(),
      node: process.version,
      parameters: report.parameters,
      figures: Object.fromEntries(report.figures.map((figure) => [figure.key, figure.value])),
      ...(targets.length > 0 && { targets: Object.fromEntries(targets) })
    }
    fs.writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`)
    console.log(`  written to ${path.relative(process.cwd(), file)}`)
  })
