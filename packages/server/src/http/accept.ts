/** The media type the client prefers among those offered, by the Accept header's q-values. */
export const preferred = (accept: string | undefined, offered: ReadonlyArray<string>) => {
  let best = offered[0]!
  let bestQ = accept === undefined || accept === "" ? 1 : 0
  for (const part of (accept ?? "").split(",")) {
    const [range = "", ...params] = part.trim().split(";")
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith("q="))
        ?.slice(2) ?? 1
    )
    for (const type of offered) {
      const matches = range === type || range === "*/*" || range === `${type.split("/")[0]}/*`
      // an exact type outranks a wildcard of the same weight
      if (matches && (q > bestQ || (q === bestQ && range === type && q > 0))) {
        best = type
        bestQ = q
      }
    }
  }
  return bestQ > 0 ? best : offered[0]!
}
