import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import * as fc from "fast-check"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as dgram from "node:dgram"
import * as dns from "node:dns/promises"
import * as fs from "node:fs"
import * as os from "node:os"
import {
  layerResolver,
  layerSsrfGuard,
  makeResolver,
  refusalOf,
  SsrfGuard
} from "../src/webhooks/ssrfGuard.ts"
import { hostileDestinations, layerConfigFrom, layerGuard, productionEnv } from "./support/destinations.ts"
import { runUnderNode } from "./support/nodeLoader.ts"

const vet = (url: string) => SsrfGuard.use((guard) => guard.vet(url))

/** Whether the guard lets `url` through; literals only, so no lookup and no waiting. */
const passes = (guard: SsrfGuard["Service"], url: string) =>
  Exit.isSuccess(Effect.runSyncExit(guard.vet(url)))

const dotted = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".")
const hex16 = (n: number) => n.toString(16)

/** Any address of the IPv4 block `base/bits`. */
const inBlock = (base: string, bits: number) => {
  const start = base.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0)
  return fc.integer({ min: 0, max: 2 ** (32 - bits) - 1 }).map((offset) => dotted(start + offset))
}

/** Any IPv6 address whose first 16 bits are drawn from `first`, as URL host text. */
const v6With = (first: fc.Arbitrary<number>) =>
  fc
    .tuple(first, fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }))
    .map(([head, rest]) => `[${[head, ...rest].map(hex16).join(":")}]`)

const guardModule = pathToFileURL(path.resolve(import.meta.dirname, "../src/webhooks/ssrfGuard.ts")).href
const configModule = pathToFileURL(path.resolve(import.meta.dirname, "../src/config/config.ts")).href

/**
 * Vets URLs in a child process under Node's own ESM loader, which the gateway runs on: vitest's
 * loader smooths over CommonJS interop (ipaddr.js) that Node does not.
 */
const vetUnderNode = (env: Record<string, string>, urls: ReadonlyArray<string>) =>
  runUnderNode(
    [
      `import { Effect, Layer } from "effect"`,
      `import { layerConfig } from ${JSON.stringify(configModule)}`,
      `import { layerResolver, layerSsrfGuard, SsrfGuard } from ${JSON.stringify(guardModule)}`,
      `const layer = layerSsrfGuard.pipe(Layer.provide([layerConfig, layerResolver]))`,
      `const vet = (url) => SsrfGuard.use((guard) => guard.vet(url)).pipe(Effect.match({`,
      `  onFailure: (refused) => refused.reason,`,
      `  onSuccess: (vetted) => vetted.addresses.map(({ address }) => address).join(" ")`,
      `}))`,
      `const answers = await Effect.runPromise(Effect.forEach(${JSON.stringify(urls)}, vet).pipe(Effect.provide(layer)))`,
      `console.log(JSON.stringify(answers))`
    ],
    env
  )

describe("SSRF guard", () => {
  it.live(
    "a DNS server that never answers fails its lookups, and holds up no other lookup of the process (no thread-pool starvation)",
    () =>
      Effect.gen(function* () {
        const silent = yield* Effect.acquireRelease(
          Effect.promise(
            () =>
              new Promise<dgram.Socket>((resolve) => {
                const socket = dgram.createSocket("udp4")
                socket.bind(0, "127.0.0.1", () => resolve(socket))
              })
          ),
          (socket) => Effect.sync(() => socket.close())
        )
        const hostsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hosts-")), "hosts")
        fs.writeFileSync(hostsFile, "127.0.0.1 localhost\n203.0.113.9 listed.example # comment\n")
        const resolver = makeResolver({ hostsFile, servers: [`127.0.0.1:${silent.address().port}`] })
        expect(yield* resolver.resolve("LISTED.example")).toEqual([{ address: "203.0.113.9", family: 4 }])
        // a tenant's silent names, more of them than libuv has threads
        const hanging = yield* Effect.forkChild(
          Effect.all(
            Array.from({ length: 8 }, (_, i) =>
              Effect.flip(resolver.resolve(`silent-${i}.attacker.example`))
            ),
            { concurrency: "unbounded" }
          )
        )
        yield* Effect.sleep("100 millis")
        // meanwhile the thread pool's own lookups (the database's, WhatsApp's) answer as usual
        const started = performance.now()
        yield* Effect.promise(() => dns.lookup("localhost"))
        const lookupMillis = performance.now() - started
        const failures = yield* Fiber.join(hanging)
        const waitedMillis = performance.now() - started
        expect(failures.every((failure) => failure._tag === "DnsFailure")).toBe(true)
        expect(failures[0]!.detail).toMatch(/^silent-0\.attacker\.example does not resolve/)
        // compared within this test: the thread pool answered long before the silent names gave up
        expect(lookupMillis).toBeLessThan(waitedMillis / 4)
      }).pipe(Effect.scoped)
  )

  it.effect("refuses every hostile destination with its reason and a sentence naming what it refused", () =>
    Effect.gen(function* () {
      const hostile = hostileDestinations(8080)
      expect(hostile.length).toBeGreaterThanOrEqual(40)
      for (const { url, reason, detail } of hostile) {
        const refused = yield* Effect.flip(vet(url))
        expect({ url, tag: refused._tag }).toEqual({ url, tag: "DestinationBlocked" })
        const refusal = refusalOf(refused)
        expect({ url, reason: refusal.reason }).toEqual({ url, reason })
        expect(refusal.detail, url).toMatch(detail)
        if (reason === "non_public_address") {
          expect(refusal.detail, url).toMatch(/: webhooks reach public addresses only$/)
          expect(refused._tag === "DestinationBlocked" && refused.address, url).toBeTruthy()
        }
      }
    }).pipe(Effect.provide(layerGuard()))
  )

  it.effect("lets public destinations through, with every address to connect to", () =>
    Effect.gen(function* () {
      const byName = yield* vet("https://public.test/hooks/whatisup?x=1")
      expect(byName.url.href).toBe("https://public.test/hooks/whatisup?x=1")
      expect(byName.addresses).toEqual([
        { address: "8.8.8.8", family: 4 },
        { address: "2606:4700:4700::1111", family: 6 }
      ])
      expect((yield* vet("http://1.1.1.1:8080/")).addresses).toEqual([{ address: "1.1.1.1", family: 4 }])
      expect((yield* vet("http://[2606:4700:4700::1111]/")).addresses).toEqual([
        { address: "2606:4700:4700::1111", family: 6 }
      ])
      // an IPv4-mapped address is its IPv4 address, and is connected to as one
      expect((yield* vet("http://[::ffff:8.8.8.8]/")).addresses).toEqual([{ address: "8.8.8.8", family: 4 }])
      // NAT64 and 6to4 forms of a public IPv4 address are public
      expect((yield* vet("http://[64:ff9b::808:808]/")).addresses).toEqual([
        { address: "64:ff9b::808:808", family: 6 }
      ])
      expect((yield* vet("http://[2002:808:808::1]/")).addresses).toEqual([
        { address: "2002:808:808::1", family: 6 }
      ])
    }).pipe(Effect.provide(layerGuard({}, { "public.test": [["8.8.8.8", "2606:4700:4700::1111"]] })))
  )

  it.effect("a name that does not resolve is a DnsFailure, which a create shows as does_not_resolve", () =>
    Effect.gen(function* () {
      const refused = yield* Effect.flip(vet("https://nowhere.test/hook"))
      expect(refused._tag).toBe("DnsFailure")
      expect(refusalOf(refused)).toEqual({
        reason: "does_not_resolve",
        detail: "nowhere.test does not resolve: no such name"
      })
      const empty = yield* Effect.flip(vet("https://empty.test/hook"))
      expect(empty).toMatchObject({
        _tag: "DnsFailure",
        detail: "empty.test does not resolve: no A or AAAA record"
      })
    }).pipe(Effect.provide(layerGuard({}, { "empty.test": [[]] })))
  )

  it.effect(
    "with the system resolver, localhost is refused as loopback and a name under .invalid does not resolve",
    () =>
      Effect.gen(function* () {
        const local = yield* Effect.flip(vet("http://localhost:8080/hook"))
        expect(local).toMatchObject({ _tag: "DestinationBlocked", reason: "non_public_address" })
        expect(refusalOf(local).detail).toMatch(/^localhost resolves to an address that is not public/)
        expect(local).toMatchObject({ reason: "non_public_address" })
        expect(String((local as { address?: string }).address)).toMatch(/^(127\.0\.0\.1|::1)$/)
        const nowhere = yield* Effect.flip(vet("http://no-such-receiver.invalid/hook"))
        expect(nowhere).toMatchObject({ _tag: "DnsFailure" })
        expect(refusalOf(nowhere).detail).toMatch(/^no-such-receiver\.invalid does not resolve: /)
      }).pipe(Effect.provide(layerSsrfGuard.pipe(Layer.provide([layerConfigFrom({}), layerResolver]))))
  )

  it.effect("when WHATISUP_ENV=production only https is allowed", () =>
    Effect.gen(function* () {
      const refused = yield* Effect.flip(vet("http://8.8.8.8/hook"))
      expect(refusalOf(refused)).toEqual({
        reason: "scheme_not_allowed",
        detail: "the URL's scheme is http: and only https: is allowed (WHATISUP_ENV=production)"
      })
      expect((yield* vet("https://8.8.8.8/hook")).addresses).toEqual([{ address: "8.8.8.8", family: 4 }])
    }).pipe(Effect.provide(layerGuard(productionEnv)))
  )

  it.effect("a name whose records change after it was vetted is refused at its next vetting", () =>
    Effect.gen(function* () {
      const guard = yield* SsrfGuard
      expect((yield* guard.vet("https://rebinding.test/hook")).addresses).toEqual([
        { address: "8.8.8.8", family: 4 }
      ])
      const refused = yield* Effect.flip(guard.vet("https://rebinding.test/hook"))
      expect(refused).toMatchObject({
        _tag: "DestinationBlocked",
        reason: "non_public_address",
        address: "10.0.0.1"
      })
    }).pipe(Effect.provide(layerGuard({}, { "rebinding.test": [["8.8.8.8"], ["10.0.0.1"]] })))
  )

  it.effect(
    "WHATISUP_WEBHOOK_ALLOW_CIDRS is the only way to a private receiver, and never to cloud metadata",
    () =>
      Effect.gen(function* () {
        const names = { "receiver.test": [["10.1.2.3"]], "elsewhere.test": [["10.1.3.1"]] }
        const refused = yield* Effect.flip(
          vet("http://receiver.test/hook").pipe(Effect.provide(layerGuard({}, names)))
        )
        expect(refused).toMatchObject({ reason: "non_public_address", address: "10.1.2.3" })

        const allowing = layerGuard(
          { WHATISUP_WEBHOOK_ALLOW_CIDRS: "10.1.2.0/24,127.0.0.1/32,::1/128,169.254.0.0/16" },
          names
        )
        const allowed = Effect.gen(function* () {
          expect((yield* vet("http://receiver.test/hook")).addresses).toEqual([
            { address: "10.1.2.3", family: 4 }
          ])
          expect(yield* Effect.flip(vet("http://elsewhere.test/hook"))).toMatchObject({ address: "10.1.3.1" })
          expect((yield* vet("http://[::1]:9000/")).addresses).toEqual([{ address: "::1", family: 6 }])
          expect((yield* vet("http://[::ffff:127.0.0.1]:9000/")).addresses).toEqual([
            { address: "127.0.0.1", family: 4 }
          ])
          expect(yield* Effect.flip(vet("http://127.0.0.2:9000/"))).toMatchObject({
            reason: "non_public_address"
          })
          expect((yield* vet("http://169.254.1.1/")).addresses).toEqual([
            { address: "169.254.1.1", family: 4 }
          ])
          const metadata = yield* Effect.flip(vet("http://169.254.169.254/latest/meta-data/"))
          expect(refusalOf(metadata).detail).toMatch(/^169\.254\.169\.254 is a cloud metadata address/)
        })
        yield* allowed.pipe(Effect.provide(allowing))
      })
  )

  it.effect(
    "every address of every private, shared, loopback, link-local, multicast and reserved IPv4 block is refused",
    () =>
      Effect.gen(function* () {
        const guard = yield* SsrfGuard
        const blocks = fc.oneof(
          inBlock("0.0.0.0", 8),
          inBlock("10.0.0.0", 8),
          inBlock("100.64.0.0", 10),
          inBlock("127.0.0.0", 8),
          inBlock("169.254.0.0", 16),
          inBlock("172.16.0.0", 12),
          inBlock("192.0.0.0", 24),
          inBlock("192.0.2.0", 24),
          inBlock("192.168.0.0", 16),
          inBlock("198.18.0.0", 15),
          inBlock("198.51.100.0", 24),
          inBlock("203.0.113.0", 24),
          inBlock("224.0.0.0", 4),
          inBlock("240.0.0.0", 4)
        )
        fc.assert(
          fc.property(blocks, (address) => !passes(guard, `http://${address}/`)),
          { numRuns: 2_000 }
        )
      }).pipe(Effect.provide(layerGuard()))
  )

  it.effect("every spelling of every loopback address is refused: dotted, decimal, hex, octal, short", () =>
    Effect.gen(function* () {
      const guard = yield* SsrfGuard
      const loopback = fc.integer({ min: 0, max: 2 ** 24 - 1 }).map((low) => 0x7f000000 + low)
      const spelling = fc.constantFrom(
        (n: number) => dotted(n),
        (n: number) => String(n),
        (n: number) => `0x${n.toString(16)}`,
        (n: number) =>
          dotted(n)
            .split(".")
            .map((octet) => `0${Number(octet).toString(8)}`)
            .join("."),
        (n: number) => `127.${n & 0xffffff}`,
        (n: number) => `[::ffff:${dotted(n)}]`,
        (n: number) => `[::ffff:${hex16(n >>> 16)}:${hex16(n & 0xffff)}]`
      )
      fc.assert(
        fc.property(loopback, spelling, (n, spell) => !passes(guard, `http://${spell(n)}:8080/`)),
        { numRuns: 2_000 }
      )
    }).pipe(Effect.provide(layerGuard()))
  )

  it.effect(
    "an IPv4 address inside an IPv6 form (mapped, NAT64, 6to4) gets the verdict of the IPv4 address",
    () =>
      Effect.gen(function* () {
        const guard = yield* SsrfGuard
        // any address at all (mostly public), and as often one of 10.0.0.0/8
        const anyV4 = fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(dotted), inBlock("10.0.0.0", 8))
        fc.assert(
          fc.property(anyV4, (v4) => {
            const n = v4.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0)
            const high = hex16(n >>> 16)
            const low = hex16(n & 0xffff)
            const verdict = passes(guard, `http://${v4}/`)
            expect(passes(guard, `http://[::ffff:${v4}]/`)).toBe(verdict)
            expect(passes(guard, `http://[64:ff9b::${high}:${low}]/`)).toBe(verdict)
            expect(passes(guard, `http://[2002:${high}:${low}::1]/`)).toBe(verdict)
          }),
          { numRuns: 2_000 }
        )
      }).pipe(Effect.provide(layerGuard()))
  )

  it.effect(
    "every address of ::/8, fc00::/7, fe80::/10, ff00::/8, 2001:db8::/32 and Teredo's 2001::/32 is refused",
    () =>
      Effect.gen(function* () {
        const guard = yield* SsrfGuard
        const firsts = fc.oneof(
          fc.integer({ min: 0, max: 0xff }),
          fc.integer({ min: 0xfc00, max: 0xfdff }),
          fc.integer({ min: 0xfe80, max: 0xfebf }),
          fc.integer({ min: 0xff00, max: 0xffff })
        )
        fc.assert(
          fc.property(v6With(firsts), (host) => !passes(guard, `http://${host}/`)),
          { numRuns: 2_000 }
        )
        const documentation = fc
          .tuple(
            fc.constantFrom(0xdb8, 0),
            fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 6, maxLength: 6 })
          )
          .map(([second, rest]) => `[2001:${hex16(second)}:${rest.map(hex16).join(":")}]`)
        fc.assert(
          fc.property(documentation, (host) => !passes(guard, `http://${host}/`)),
          { numRuns: 500 }
        )
      }).pipe(Effect.provide(layerGuard()))
  )

  it.effect("vets the same under Node's own module loader, where ipaddr.js is CommonJS", () =>
    Effect.gen(function* () {
      const urls = ["http://127.0.0.1:8080/", "http://[::1]:8080/", "http://10.0.0.1/", "http://8.8.8.8/"]
      const strict = yield* vetUnderNode({}, urls)
      expect(strict.stderr).toBe("")
      expect(JSON.parse(strict.stdout)).toEqual([
        "non_public_address",
        "non_public_address",
        "non_public_address",
        "8.8.8.8"
      ])
      const allowing = yield* vetUnderNode({ WHATISUP_WEBHOOK_ALLOW_CIDRS: "127.0.0.1/32,::1/128" }, urls)
      expect(allowing.stderr).toBe("")
      expect(JSON.parse(allowing.stdout)).toEqual(["127.0.0.1", "::1", "non_public_address", "8.8.8.8"])
    })
  )
})
