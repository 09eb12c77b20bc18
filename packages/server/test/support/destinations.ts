import { ConfigProvider, Effect, Layer } from "effect"
import * as net from "node:net"
import { GatewayConfigService, loadConfig } from "../../src/config/config.ts"
import type { BlockReason } from "../../src/webhooks/attemptErrors.ts"
import { DnsFailure } from "../../src/webhooks/attemptErrors.ts"
import { layerSsrfGuard, type ResolvedAddress, Resolver } from "../../src/webhooks/ssrfGuard.ts"

/** The gateway's configuration as it loads from these variables (production needs its secrets set). */
export const layerConfigFrom = (env: Record<string, string>) =>
  Layer.effect(
    GatewayConfigService,
    loadConfig.pipe(
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env)),
      Effect.orDie
    )
  )

export const productionEnv = {
  WHATISUP_ENV: "production",
  WHATISUP_MASTER_KEYS: `k1:${Buffer.alloc(32, 1).toString("base64")}`,
  WHATISUP_ADMIN_TOKEN: "t".repeat(32)
}

const recordsOf = (addresses: ReadonlyArray<string>): ReadonlyArray<ResolvedAddress> =>
  addresses.map((address) => ({ address, family: net.isIP(address) === 6 ? 6 : 4 }))

/**
 * A resolver that knows only these names; a name with several answers gives the next one at each
 * lookup (the last one from then on), as a name whose records change between two lookups does.
 */
export const stubResolver = (names: Record<string, ReadonlyArray<ReadonlyArray<string>>>) => {
  const lookups = new Map<string, number>()
  return Layer.succeed(
    Resolver,
    Resolver.of({
      resolve: (host) =>
        Effect.suspend(() => {
          const answers = names[host]
          if (answers === undefined || answers.length === 0) {
            return Effect.fail(new DnsFailure({ detail: `${host} does not resolve: no such name` }))
          }
          const count = lookups.get(host) ?? 0
          lookups.set(host, count + 1)
          return Effect.succeed(recordsOf(answers[Math.min(count, answers.length - 1)]!))
        })
    })
  )
}

/** Names the hostile destinations use, each resolving to what its name says. */
export const hostileNames: Record<string, ReadonlyArray<ReadonlyArray<string>>> = {
  "internal.test": [["192.168.1.10"]],
  "metadata.test": [["169.254.169.254"]],
  "unique-local.test": [["fd12:3456::1"]],
  // one private record among public ones is enough to refuse the name
  "mixed.test": [["8.8.8.8", "1.1.1.1", "10.0.0.1"]],
  "mixed-v6.test": [["8.8.8.8", "2606:4700:4700::1111", "::1"]],
  "localhost.test": [["127.0.0.1", "::1"]],
  "mapped.test": [["::ffff:192.168.0.1"]]
}

export interface HostileDestination {
  readonly url: string
  readonly reason: BlockReason
  /** What its refusal's detail names. */
  readonly detail: RegExp
}

/**
 * Destinations a webhook must never reach, with why; those naming `port` point at a receiver a test
 * may listen on (every local address answers there), so a connection made anyway would show.
 */
export const hostileDestinations = (port: number): ReadonlyArray<HostileDestination> => {
  const refused = (host: string, detail: RegExp): HostileDestination => ({
    url: `http://${host}:${port}/hook`,
    reason: "non_public_address",
    detail
  })
  return [
    // every literal spelling of loopback, and of "this host"
    refused("127.0.0.1", /^127\.0\.0\.1 is a loopback address/),
    refused("2130706433", /^127\.0\.0\.1 is a loopback address/),
    refused("0177.0.0.1", /^127\.0\.0\.1 is a loopback address/),
    refused("0x7f.1", /^127\.0\.0\.1 is a loopback address/),
    refused("0x7f000001", /^127\.0\.0\.1 is a loopback address/),
    refused("127.1", /^127\.0\.0\.1 is a loopback address/),
    refused("127.0.1", /^127\.0\.0\.1 is a loopback address/),
    refused("017700000001", /^127\.0\.0\.1 is a loopback address/),
    refused("127.000.000.001", /^127\.0\.0\.1 is a loopback address/),
    refused("127.0.0.1.", /^127\.0\.0\.1 is a loopback address/),
    refused("%31%32%37.0.0.1", /^127\.0\.0\.1 is a loopback address/),
    refused("\uff11\uff12\uff17.0.0.1", /^127\.0\.0\.1 is a loopback address/),
    refused("127.255.255.254", /loopback/),
    refused("[::1]", /^::1 is in ::\/8/),
    refused("[0:0:0:0:0:0:0:1]", /^::1 is in ::\/8/),
    refused("[::ffff:127.0.0.1]", /IPv4-mapped form of 127\.0\.0\.1, a loopback address/),
    refused("[::ffff:7f00:1]", /IPv4-mapped form of 127\.0\.0\.1, a loopback address/),
    refused("[::127.0.0.1]", /in ::\/8/),
    refused("[::ffff:0:7f00:1]", /in ::\/8/),
    refused("0.0.0.0", /unspecified/),
    refused("0", /^0\.0\.0\.0 is an unspecified address/),
    refused("[::]", /in ::\/8/),
    // private and reserved IPv4
    refused("10.0.0.1", /private/),
    refused("10.255.255.255", /private/),
    refused("172.16.0.1", /private/),
    refused("172.31.255.254", /private/),
    refused("192.168.1.1", /private/),
    refused("100.64.0.1", /carrier-grade NAT/),
    refused("100.127.255.254", /carrier-grade NAT/),
    refused("169.254.0.1", /link-local/),
    refused("224.0.0.1", /multicast/),
    refused("239.255.255.250", /multicast/),
    refused("240.0.0.1", /reserved/),
    refused("255.255.255.255", /broadcast/),
    refused("192.0.0.1", /reserved/),
    refused("192.0.2.1", /reserved or documentation/),
    refused("198.18.0.1", /reserved/),
    refused("198.19.255.254", /reserved/),
    refused("198.51.100.1", /reserved/),
    refused("203.0.113.1", /reserved/),
    // private and reserved IPv6, and IPv4 addresses inside IPv6 forms
    refused("[fc00::1]", /unique local/),
    refused("[fd12:3456::1]", /unique local/),
    refused("[fe80::1]", /link-local/),
    refused("[fec0::1]", /site-local/),
    refused("[ff02::1]", /multicast/),
    refused("[2001:db8::1]", /reserved or documentation/),
    refused("[100::1]", /discard-only/),
    refused("[::ffff:10.0.0.1]", /IPv4-mapped form of 10\.0\.0\.1, a private address/),
    refused("[64:ff9b::7f00:1]", /NAT64 form of 127\.0\.0\.1, a loopback address/),
    refused("[64:ff9b::a00:1]", /NAT64 form of 10\.0\.0\.1, a private address/),
    refused("[64:ff9b:1::a00:1]", /local-use/),
    refused("[2002:a00:1::1]", /6to4 form of 10\.0\.0\.1, a private address/),
    refused("[2002:7f00:1::]", /6to4 form of 127\.0\.0\.1, a loopback address/),
    refused("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", /Teredo/),
    // cloud metadata, in any spelling
    refused("169.254.169.254", /cloud metadata/),
    refused("[fd00:ec2::254]", /cloud metadata/),
    refused("100.100.100.200", /cloud metadata/),
    refused("[::ffff:169.254.169.254]", /IPv4-mapped form of 169\.254\.169\.254, a cloud metadata address/),
    refused("[::ffff:a9fe:a9fe]", /cloud metadata/),
    // names resolving to what is refused: the answer does not say where a name points (no internal DNS oracle)
    refused("internal.test", /^internal\.test resolves to an address that is not public/),
    refused("metadata.test", /^metadata\.test resolves to an address that is not public/),
    refused("unique-local.test", /^unique-local\.test resolves to an address that is not public/),
    refused("mixed.test", /^mixed\.test resolves to an address that is not public/),
    refused("mixed-v6.test", /^mixed-v6\.test resolves to an address that is not public/),
    refused("localhost.test", /^localhost\.test resolves to an address that is not public/),
    refused("mapped.test", /^mapped\.test resolves to an address that is not public/),
    // not http(s), credentials, not a URL
    { url: "file:///etc/passwd", reason: "scheme_not_allowed", detail: /file:/ },
    { url: `ftp://8.8.8.8:${port}/`, reason: "scheme_not_allowed", detail: /ftp:/ },
    { url: "gopher://8.8.8.8/", reason: "scheme_not_allowed", detail: /gopher:/ },
    { url: "javascript:alert(1)", reason: "scheme_not_allowed", detail: /javascript:/ },
    { url: "data:text/plain,hello", reason: "scheme_not_allowed", detail: /data:/ },
    { url: `ws://8.8.8.8:${port}/`, reason: "scheme_not_allowed", detail: /ws:/ },
    { url: "http://user:secret@8.8.8.8/hook", reason: "credentials_in_url", detail: /credentials/ },
    { url: "https://token@8.8.8.8/hook", reason: "credentials_in_url", detail: /credentials/ },
    { url: `http://127.0.0.1%2f@8.8.8.8:${port}/`, reason: "credentials_in_url", detail: /credentials/ },
    { url: "not a url", reason: "invalid_url", detail: /not an absolute URL/ },
    { url: "/relative/hook", reason: "invalid_url", detail: /not an absolute URL/ },
    { url: "http://", reason: "invalid_url", detail: /not an absolute URL/ }
  ]
}

/** The SSRF guard as the gateway builds it from these variables, over a resolver that knows only `names`. */
export const layerGuard = (
  env: Record<string, string> = {},
  names: Record<string, ReadonlyArray<ReadonlyArray<string>>> = hostileNames
) => Layer.fresh(layerSsrfGuard).pipe(Layer.provide([layerConfigFrom(env), stubResolver(names)]))
