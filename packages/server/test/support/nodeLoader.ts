import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/** A module of the server's sources as a file URL, for a script to import. */
export const sourceModule = (relative: string) =>
  pathToFileURL(path.resolve(import.meta.dirname, "../../src", relative)).href

/**
 * Runs an ES module script in a child process under Node's own ESM loader, which the gateway runs on:
 * vitest's module loader smooths over CommonJS interop that Node does not.
 */
export const runUnderNode = (lines: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(
    () =>
      new Promise<{ stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ["--input-type=module", "--eval", lines.join("\n")],
          { cwd: import.meta.dirname, env: { PATH: process.env.PATH, ...env } },
          (_error, stdout, stderr) => resolve({ stdout, stderr })
        )
      })
  )
