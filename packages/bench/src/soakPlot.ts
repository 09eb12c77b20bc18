/** One line of a panel: its name, colour and points (x in seconds since the load started). */
export interface Line {
  readonly name: string
  readonly colour: string
  readonly points: ReadonlyArray<readonly [number, number]>
}

export interface Panel {
  readonly title: string
  readonly unit: string
  readonly lines: ReadonlyArray<Line>
}

const width = 900
const panelHeight = 220
const margin = { left: 70, right: 180, top: 30, bottom: 30 }

const escape = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

const round = (value: number) => Math.round(value * 10) / 10

/** A y-axis top that reads well: 1, 2 or 5 times a power of ten, at or above `max`. */
const niceTop = (max: number) => {
  if (max <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(max))
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= max)!
}

const minutes = (seconds: number) => (seconds / 60).toFixed(seconds < 600 ? 1 : 0)

/** The panels stacked in one SVG: each a polyline per series over the run, y from zero, time in minutes. */
export const plot = (title: string, seconds: number, panels: ReadonlyArray<Panel>) => {
  const plotWidth = width - margin.left - margin.right
  const plotHeight = panelHeight - margin.top - margin.bottom
  const height = panels.length * panelHeight + 30
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${margin.left}" y="20" font-size="14" font-weight="bold">${escape(title)}</text>`
  ]
  panels.forEach((panel, index) => {
    const top = 30 + index * panelHeight + margin.top
    const max = niceTop(Math.max(0, ...panel.lines.flatMap((line) => line.points.map(([, y]) => y))))
    const x = (at: number) => round(margin.left + (seconds === 0 ? 0 : (at / seconds) * plotWidth))
    const y = (value: number) => round(top + plotHeight - (value / max) * plotHeight)
    parts.push(
      `<text x="${margin.left}" y="${top - 8}" font-weight="bold">${escape(`${panel.title} (${panel.unit})`)}</text>`,
      `<rect x="${margin.left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`
    )
    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction
      parts.push(
        `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${y(value)}" y2="${y(value)}" stroke="#eee"/>`,
        `<text x="${margin.left - 6}" y="${y(value) + 4}" text-anchor="end">${round(value)}</text>`
      )
    }
    for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
      const at = seconds * fraction
      parts.push(
        `<text x="${x(at)}" y="${top + plotHeight + 16}" text-anchor="middle">${minutes(at)} min</text>`
      )
    }
    panel.lines.forEach((line, n) => {
      const points = line.points.map(([at, value]) => `${x(at)},${y(value)}`).join(" ")
      parts.push(
        `<polyline fill="none" stroke="${line.colour}" stroke-width="1.5" points="${points}"/>`,
        `<line x1="${width - margin.right + 12}" x2="${width - margin.right + 32}" y1="${top + 10 + n * 18}" y2="${top + 10 + n * 18}" stroke="${line.colour}" stroke-width="2"/>`,
        `<text x="${width - margin.right + 38}" y="${top + 14 + n * 18}">${escape(line.name)}</text>`
      )
    })
  })
  parts.push("</svg>")
  return `${parts.join("\n")}\n`
}
