import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { ConfigInvalid, GatewayConfigService } from "../config/config.ts"
import { readOrCreateSecret } from "../config/dataDir.ts"
import { transaction } from "../db/transaction.ts"

export class DecryptionFailed extends Data.TaggedError("DecryptionFailed")<{ readonly keyId: string }> {
  override get message() {
    return `cannot decrypt a secret written under master key "${this.keyId}"`
  }
}

interface MasterKey {
  readonly id: string
  readonly key: Buffer
}

/**
 * Where a ciphertext is kept: its table, its column and its row (the row's primary key, column by
 * column). It is the ciphertext's associated data, so a ciphertext copied to another place does not
 * decrypt there.
 */
export interface Place {
  readonly table: string
  readonly column: string
  readonly row: ReadonlyArray<string>
}

/** A column of ciphertexts, each bound to its row; RotateMasterKey rewrites it under the newest key. */
export interface EncryptedColumn {
  readonly table: string
  /** The row's primary-key columns, in order. */
  readonly key: ReadonlyArray<string>
  readonly column: string
}

/** The place of one row's ciphertext in an encrypted column; `row` follows the column's `key`. */
export const placeIn = (column: EncryptedColumn, row: ReadonlyArray<string>): Place => ({
  table: column.table,
  column: column.column,
  row
})

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

const canaryColumn: EncryptedColumn = { table: "key_ring_canary", key: ["id"], column: "ciphertext" }

/** Ciphertexts bound to their place; `v1` ones, written before places were bound, are rewritten at start-up. */
const version = "v2"
const unboundVersion = "v1"

const associatedData = (place: Place) =>
  Buffer.from(JSON.stringify([place.table, place.column, ...place.row]), "utf8")

/**
 * The master key ring: AES-256-GCM, the newest key encrypts, every key decrypts. A ciphertext is
 * `v2.<key id>.<base64url nonce|tag|ciphertext>`, so it names the key that wrote it, and its
 * associated data is its place, so it decrypts nowhere else.
 */
export class KeyRing extends Context.Service<
  KeyRing,
  {
    readonly newestKeyId: string
    readonly encrypt: (plaintext: string, place: Place) => string
    readonly decrypt: (ciphertext: string, place: Place) => Effect.Effect<string, DecryptionFailed>
    /**
     * Declares an encrypted column, so RotateMasterKey rewrites it; ciphertexts it holds from before
     * places were bound are bound to their place now (once per column, at start-up).
     */
    readonly register: (column: EncryptedColumn) => Effect.Effect<void, ConfigInvalid>
    /** Rewrites every registered column's ciphertexts under the newest key, each in its place. */
    readonly reencryptAll: Effect.Effect<
      ReadonlyArray<{ readonly store: string; readonly rewritten: number }>,
      DecryptionFailed
    >
  }
>()("whatisup/KeyRing") {}

export const makeKeyRing = (keys: ReadonlyArray<MasterKey>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const inTransaction = transaction(sql)
    const newest = keys[keys.length - 1]!
    const byId = new Map(keys.map((k) => [k.id, k.key]))

    const encrypt = (plaintext: string, place: Place) => {
      const nonce = crypto.randomBytes(12)
      const cipher = crypto.createCipheriv("aes-256-gcm", newest.key, nonce)
      cipher.setAAD(associatedData(place))
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
      return `${version}.${newest.id}.${Buffer.concat([nonce, cipher.getAuthTag(), body]).toString("base64url")}`
    }

    /** Opens a ciphertext of `expected` version; `place` is its associated data (none for unbound ones). */
    const open = (ciphertext: string, expected: string, place: Place | undefined) =>
      Effect.suspend(() => {
        const [written, keyId = "", payload = ""] = ciphertext.split(".")
        const key = byId.get(keyId)
        if (written !== expected || key === undefined) return Effect.fail(new DecryptionFailed({ keyId }))
        try {
          const raw = Buffer.from(payload, "base64url")
          const decipher = crypto.createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12))
          if (place !== undefined) decipher.setAAD(associatedData(place))
          decipher.setAuthTag(raw.subarray(12, 28))
          return Effect.succeed(
            Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8")
          )
        } catch {
          return Effect.fail(new DecryptionFailed({ keyId }))
        }
      })

    const decrypt = (ciphertext: string, place: Place) => open(ciphertext, version, place)

    const isUnbound = (ciphertext: string) => ciphertext.startsWith(`${unboundVersion}.`)

    const keyRingUnusable = (error: DecryptionFailed, where: string) =>
      new ConfigInvalid({
        variable: "WHATISUP_MASTER_KEYS",
        reason: `${error.message} (${where}); the key ring must hold every key that wrote stored secrets`
      })

    /**
     * Rewrites the column's ciphertexts that `stale` selects, each in its own place, in one
     * transaction; `read` opens what is stored there.
     */
    const rewrite = (
      { table, key, column }: EncryptedColumn,
      stale: Statement.Fragment,
      read: (ciphertext: string, place: Place) => Effect.Effect<string, DecryptionFailed>
    ) =>
      inTransaction(
        Effect.gen(function* () {
          const keyList = key.map((name) => `"${name}"::text AS "${name}"`).join(", ")
          const rows = yield* sql<Record<string, string>>`
            SELECT ${sql.literal(keyList)}, ${sql(column)} AS ciphertext FROM ${sql(table)}
            WHERE ${sql(column)} IS NOT NULL AND ${stale}
            ORDER BY ${sql.literal(key.map((name) => `"${name}"`).join(", "))}
            FOR UPDATE`
          for (const stored of rows) {
            const place: Place = { table, column, row: key.map((name) => stored[name]!) }
            const plaintext = yield* read(stored.ciphertext!, place)
            yield* sql`
              UPDATE ${sql(table)} SET ${sql(column)} = ${encrypt(plaintext, place)}
              WHERE ${sql.and(key.map((name, i) => sql`${sql(name)}::text = ${place.row[i]!}`))}`
          }
          return rows.length
        })
      )

    const columns: Array<EncryptedColumn> = []

    const register = (column: EncryptedColumn) =>
      Effect.gen(function* () {
        if (columns.some((c) => c.table === column.table && c.column === column.column)) return
        columns.push(column)
        const bound = yield* rewrite(
          column,
          sql`starts_with(${sql(column.column)}, ${`${unboundVersion}.`})`,
          (ciphertext) => open(ciphertext, unboundVersion, undefined)
        ).pipe(Effect.mapError((error) => keyRingUnusable(error, `${column.table}.${column.column}`)))
        if (bound > 0) {
          yield* Effect.logInfo("bound stored secrets to their place").pipe(
            Effect.annotateLogs({ store: `${column.table}.${column.column}`, rewritten: bound })
          )
        }
      })

    // The canary proves at start-up that the configured keys can read what is stored.
    const canaryPlace = placeIn(canaryColumn, ["1"])
    const existing = yield* sql<{ ciphertext: string }>`SELECT ciphertext FROM key_ring_canary WHERE id = 1`
    if (existing[0] === undefined) {
      yield* sql`
        INSERT INTO key_ring_canary (id, ciphertext) VALUES (1, ${encrypt(canaryPlaintext, canaryPlace)})
        ON CONFLICT (id) DO NOTHING`
    } else {
      const stored = existing[0].ciphertext
      const plaintext = yield* (
        isUnbound(stored) ? open(stored, unboundVersion, undefined) : decrypt(stored, canaryPlace)
      ).pipe(Effect.mapError((error) => keyRingUnusable(error, "key_ring_canary")))
      if (plaintext !== canaryPlaintext) {
        return yield* new ConfigInvalid({
          variable: "WHATISUP_MASTER_KEYS",
          reason: "the key ring canary does not match"
        })
      }
    }
    yield* register(canaryColumn)

    return KeyRing.of({
      newestKeyId: newest.id,
      encrypt,
      decrypt,
      register,
      reencryptAll: Effect.forEach(columns, (column) =>
        Effect.map(
          rewrite(
            column,
            sql`NOT starts_with(${sql(column.column)}, ${`${version}.${newest.id}.`})`,
            decrypt
          ),
          (rewritten) => ({ store: `${column.table}.${column.column}`, rewritten })
        )
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
