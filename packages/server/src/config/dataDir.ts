import * as fs from "node:fs"
import * as path from "node:path"

/**
 * A secret generated once into the data dir (development key ring, operator token, embedded
 * database password). Created exclusively, so two processes starting together agree on one value.
 */
export const readOrCreateSecret = (file: string, make: () => string): string => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  try {
    fs.writeFileSync(file, `${make()}\n`, { mode: 0o600, flag: "wx" })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
  }
  return fs.readFileSync(file, "utf8").trim()
}
