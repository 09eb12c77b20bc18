import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { ConfigInvalid, GatewayConfigService } from "../config/config.ts"
import { readOrCreateSecret } from "../config/dataDir.ts"

export class DecryptionFailed extends Data.TaggedError("DecryptionFailed")<{ readonly keyId: string }> {
  override get message() {
    return `cannot decrypt a secret written under master key "${this.keyId}"`
  }
}

interface MasterKey {
  readonly id: string
  readonly key: Buffer
}

/** A column of ciphertexts that RotateMasterKey rewrites under the newest key, row by row. */
export interface EncryptedColumn {
  readonly table: string
  /** The columns that identify a row. */
  readonly key: ReadonlyArray<string>
  readonly column: string
}

export const parseMasterKeys = (value: string): ReadonlyArray<MasterKey> | string => {
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
  if (entries.length === 0) return "expected id:<base64 of 32 bytes>[,id2:<base64 of 32 bytes>...]"
  const keys: Array<MasterKey> = []
  for (const entry of entries) {
    const colon = entry.indexOf(":")
    const id = entry.slice(0, colon)
    if (colon <= 0 || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
      return `entry ${keys.length + 1} needs an id of 1-32 letters, digits, _ or - before ":"`
    }
    const key = Buffer.from(entry.slice(colon + 1), "base64")
    if (key.length !== 32) return `key "${id}" must be the base64 of exactly 32 bytes`
    if (keys.some((k) => k.id === id)) return `key id "${id}" appears twice`
    keys.push({ id, key })
  }
  return keys
}

const canaryPlaintext = "whatisup key ring canary"

/**
 * The master key ring: AES-256-GCM, the newest key encrypts, every key decrypts. A ciphertext is
 * `v1.<key id>.<base64url nonce|tag|ciphertext>` so it names the key that wrote it.
 */
export class KeyRing extends Context.Service<
  KeyRing,
  {
    readonly newestKeyId: string
    readonly encrypt: (plaintext: string) => string
    readonly decrypt: (ciphertext: string) => Effect.Effect<string, DecryptionFailed>
    readonly isCurrent: (ciphertext: string) => boolean
    readonly register: (column: EncryptedColumn) => Effect.Effect<void>
    readonly reencryptAll: Effect.Effect<
      ReadonlyArray<{ readonly store: string; readonly rewritten: number }>,
      unknown
    >
  }
>()("whatisup/KeyRing") {}

export const makeKeyRing = (keys: ReadonlyArray<MasterKey>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const newest = keys[keys.length - 1]!
    const byId = new Map(keys.map((k) => [k.id, k.key]))

    const encrypt = (plaintext: string) => {
      const nonce = crypto.randomBytes(12)
      const cipher = crypto.createCipheriv("aes-256-gcm", newest.key, nonce)
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
      return `v1.${newest.id}.${Buffer.concat([nonce, cipher.getAuthTag(), body]).toString("base64url")}`
    }

    const decrypt = (ciphertext: string) =>
      Effect.suspend(() => {
        const [version, keyId = "", payload = ""] = ciphertext.split(".")
        const key = byId.get(keyId)
        if (version !== "v1" || key === undefined) return Effect.fail(new DecryptionFailed({ keyId }))
        try {
          const raw = Buffer.from(payload, "base64url")
          const decipher = crypto.createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12))
          decipher.setAuthTag(raw.subarray(12, 28))
          return Effect.succeed(
            Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8")
          )
        } catch {
          return Effect.fail(new DecryptionFailed({ keyId }))
        }
      })

    const isCurrent = (ciphertext: string) => ciphertext.startsWith(`v1.${newest.id}.`)

    const columns: Array<EncryptedColumn> = [{ table: "key_ring_canary", key: ["id"], column: "ciphertext" }]

    const reencrypt = ({ table, key, column }: EncryptedColumn) =>
      Effect.gen(function* () {
        const rows = yield* sql<Record<string, string>>`
          SELECT ${sql.literal([...key, column].map((name) => `"${name}"`).join(", "))}
          FROM ${sql(table)} FOR UPDATE`
        let rewritten = 0
        for (const row of rows) {
          const ciphertext = row[column]!
          if (isCurrent(ciphertext)) continue
          const plaintext = yield* decrypt(ciphertext)
          yield* sql`
            UPDATE ${sql(table)} SET ${sql(column)} = ${encrypt(plaintext)}
            WHERE ${sql.and(key.map((name) => sql`${sql(name)} = ${row[name]!}`))}`
          rewritten++
        }
        return rewritten
      })

    // The canary proves at start-up that the configured keys can read what is stored.
    const existing = yield* sql<{ ciphertext: string }>`SELECT ciphertext FROM key_ring_canary WHERE id = 1`
    if (existing[0] === undefined) {
      yield* sql`INSERT INTO key_ring_canary (id, ciphertext) VALUES (1, ${encrypt(canaryPlaintext)}) ON CONFLICT (id) DO NOTHING`
    } else {
      const plaintext = yield* decrypt(existing[0].ciphertext).pipe(
        Effect.mapError(
          (error) =>
            new ConfigInvalid({
              variable: "WHATISUP_MASTER_KEYS",
              reason: `${error.message}; the key ring must hold every key that wrote stored secrets`
            })
        )
      )
      if (plaintext !== canaryPlaintext) {
        return yield* new ConfigInvalid({
          variable: "WHATISUP_MASTER_KEYS",
          reason: "the key ring canary does not match"
        })
      }
    }

    return KeyRing.of({
      newestKeyId: newest.id,
      encrypt,
      decrypt,
      isCurrent,
      register: (column) => Effect.sync(() => void columns.push(column)),
      reencryptAll: Effect.forEach(columns, (column) =>
        Effect.map(reencrypt(column), (rewritten) => ({ store: column.table, rewritten }))
      )
    })
  })

export const masterKeysFile = (dataDir: string) => path.join(dataDir, "master-keys")

export const generateMasterKeyEntry = (id: string) => `${id}:${crypto.randomBytes(32).toString("base64")}`

/** Development only: a key ring generated once into the data dir. */
const developmentMasterKeys = (dataDir: string) =>
  Effect.gen(function* () {
    const file = masterKeysFile(dataDir)
    const existed = fs.existsSync(file)
    const value = readOrCreateSecret(file, () => generateMasterKeyEntry("k1"))
    yield* existed
      ? Effect.logInfo("using the development key ring").pipe(Effect.annotateLogs({ file }))
      : Effect.logWarning(
          "WHATISUP_MASTER_KEYS is unset: generated a development key ring; set WHATISUP_MASTER_KEYS in production"
        ).pipe(Effect.annotateLogs({ file }))
    return value.split(/\s*\n\s*/).join(",")
  })

export const layerKeyRing = Layer.effect(
  KeyRing,
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const value = Option.isSome(config.masterKeys)
      ? Redacted.value(config.masterKeys.value)
      : yield* developmentMasterKeys(config.dataDir)
    const keys = parseMasterKeys(value)
    if (typeof keys === "string") {
      return yield* new ConfigInvalid({
        variable: Option.isSome(config.masterKeys) ? "WHATISUP_MASTER_KEYS" : masterKeysFile(config.dataDir),
        reason: keys
      })
    }
    return yield* makeKeyRing(keys)
  })
)
