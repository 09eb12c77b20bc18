import { Context, Effect, Layer } from "effect"
// ipaddr.js is CommonJS: under Node's ESM loader only its default export carries the functions
import ipaddr from "ipaddr.js"
import * as dns from "node:dns/promises"
import * as fs from "node:fs"
import * as net from "node:net"
import { GatewayConfigService } from "../config/config.ts"
import { type BlockReason, DestinationBlocked, DnsFailure } from "./attemptErrors.ts"

export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** A URL that may be reached, with every address its host resolved to, each one public (or allowed). */
export interface VettedDestination {
  /** Shared between the vettings of one URL: never changed. */
  readonly url: Readonly<URL>
  readonly addresses: ReadonlyArray<ResolvedAddress>
}

/** Every A and AAAA record of a host name; swapped for a stub in tests. */
export class Resolver extends Context.Service<
  Resolver,
  { readonly resolve: (host: string) => Effect.Effect<ReadonlyArray<ResolvedAddress>, DnsFailure> }
>()("whatisup/Resolver") {}

const resolveTimeoutMillis = 5_000

const dnsErrors: Record<string, string> = {
  ENOTFOUND: "no such name",
  ENODATA: "no A or AAAA record",
  ETIMEOUT: "no answer in time",
  ESERVFAIL: "a DNS server failure",
  ECONNREFUSED: "the DNS server refused",
  EREFUSED: "the DNS server refused"
}

/** The names /etc/hosts gives addresses to, as the host's own programs see them. */
const readHostsFile = (file: string): ReadonlyMap<string, ReadonlyArray<ResolvedAddress>> => {
  const names = new Map<string, Array<ResolvedAddress>>()
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return names
  }
  for (const line of text.split("\n")) {
    const [address, ...aliases] = line.replace(/#.*/u, "").trim().split(/\s+/u)
    const family = address === undefined ? 0 : net.isIP(address)
    if (family === 0) continue
    for (const alias of aliases) {
      const name = alias.toLowerCase()
      names.set(name, [...(names.get(name) ?? []), { address: address!, family: family === 6 ? 6 : 4 }])
    }
  }
  return names
}

/**
 * The host's resolver as other programs see names: /etc/hosts, then every A and AAAA record through
 * c-ares, off libuv's small thread pool (getaddrinfo there would let one tenant's silent DNS hold up
 * every other lookup of the process, WhatsApp's and the database's included).
 */
export const makeResolver = (
  options: { readonly hostsFile?: string; readonly servers?: ReadonlyArray<string> } = {}
) => {
  const hosts = readHostsFile(options.hostsFile ?? "/etc/hosts")
  return Resolver.of({
    resolve: (host) => {
      const listed = hosts.get(host.toLowerCase())
      if (listed !== undefined) return Effect.succeed(listed)
      return Effect.tryPromise({
        try: async (signal) => {
          const resolver = new dns.Resolver({ timeout: 2_000, tries: 2 })
          if (options.servers !== undefined) resolver.setServers(options.servers)
          signal.addEventListener("abort", () => resolver.cancel())
          const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)])
          const addresses: Array<ResolvedAddress> = [
            ...(v4.status === "fulfilled"
              ? v4.value.map((address) => ({ address, family: 4 as const }))
              : []),
            ...(v6.status === "fulfilled" ? v6.value.map((address) => ({ address, family: 6 as const })) : [])
          ]
          if (addresses.length > 0) return addresses
          const failure = [v4, v6].find(
            (result): result is PromiseRejectedResult =>
              result.status === "rejected" && (result.reason as { code?: string }).code !== "ENODATA"
          )
          throw failure?.reason ?? Object.assign(new Error("no records"), { code: "ENODATA" })
        },
        catch: (error) => {
          const code = (error as { code?: string }).code ?? "unknown"
          return new DnsFailure({ detail: `${host} does not resolve: ${dnsErrors[code] ?? code}` })
        }
      }).pipe(
        Effect.timeoutOrElse({
          duration: resolveTimeoutMillis,
          orElse: () =>
            Effect.fail(new DnsFailure({ detail: `${host} does not resolve: no answer within 5 seconds` }))
        })
      )
    }
  })
}

export const layerResolver = Layer.sync(Resolver, () => makeResolver())

/** Vets destinations before each request: see "Tenancy and trust boundaries" in DESIGN.md. */
export class SsrfGuard extends Context.Service<
  SsrfGuard,
  { readonly vet: (url: string) => Effect.Effect<VettedDestination, DestinationBlocked | DnsFailure> }
>()("whatisup/SsrfGuard") {}

type Address = ipaddr.IPv4 | ipaddr.IPv6

// each is inside a range refused anyway, but named apart, and refused even inside an allowed CIDR
const cloudMetadata = new Set(
  ["169.254.169.254", "100.100.100.200", "fd00:ec2::254"].map((text) =>
    ipaddr.parse(text).toNormalizedString()
  )
)

const rangeNames: Record<string, string> = {
  unspecified: "an unspecified address",
  broadcast: "the broadcast address",
  multicast: "a multicast address",
  linkLocal: "a link-local address",
  loopback: "a loopback address",
  carrierGradeNat: "a carrier-grade NAT address (100.64.0.0/10)",
  private: "a private address",
  reserved: "a reserved or documentation address",
  benchmarking: "a benchmarking address",
  uniqueLocal: "a unique local address (fc00::/7)",
  deprecatedSiteLocal: "a site-local address (fec0::/10)",
  discard: "a discard-only address (100::/64)"
}

const rangeName = (range: string) => rangeNames[range] ?? `an address of the special range "${range}"`

const ipv4Of = (high: number, low: number) => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff])

/** Why `address` is not one a webhook may reach, as a noun phrase; `undefined` when it may. */
const whyNotPublic = (address: Address, allowed: ReadonlyArray<[Address, number]>): string | undefined => {
  if (cloudMetadata.has(address.toNormalizedString())) return "a cloud metadata address"
  if (allowed.some(([network, bits]) => network.kind() === address.kind() && address.match(network, bits))) {
    return undefined
  }
  if (address.kind() === "ipv4") {
    const range = address.range()
    return range === "unicast" ? undefined : rangeName(range)
  }
  const v6 = address as ipaddr.IPv6
  const embedded = (form: string, v4: ipaddr.IPv4) => {
    const why = whyNotPublic(v4, allowed)
    return why === undefined ? undefined : `${form} of ${v4.toString()}, ${why}`
  }
  const [p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0] = v6.parts
  if (v6.isIPv4MappedAddress()) return embedded("the IPv4-mapped form", v6.toIPv4Address())
  if (p0 === 0x64 && p1 === 0xff9b) {
    // the well-known prefix carries the IPv4 address in its last 32 bits; the local-use one where its operator chose
    if (p2 === 0 && p3 === 0 && p4 === 0 && p5 === 0) return embedded("the NAT64 form", ipv4Of(p6, p7))
    return "a NAT64 address outside 64:ff9b::/96 (the local-use 64:ff9b:1::/48 translates into a private network)"
  }
  // 64:ff9b::/96 lies inside ::/8 too, so it is read first
  if (p0 < 0x100) return "in ::/8 (unspecified, loopback, IPv4-compatible and IPv4-translated forms)"
  if (p0 === 0x2002) return embedded("the 6to4 form", ipv4Of(p1, p2))
  if (p0 === 0x2001 && p1 === 0) return "a Teredo address (2001::/32)"
  const range = v6.range()
  return range === "unicast" ? undefined : rangeName(range)
}

/** The address to connect to: an IPv4-mapped IPv6 address is its IPv4 address. */
const connectable = (address: Address): ResolvedAddress =>
  address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? { address: (address as ipaddr.IPv6).toIPv4Address().toString(), family: 4 }
    : { address: address.toString(), family: address.kind() === "ipv6" ? 6 : 4 }

/** The reason code and the sentence a refused create answers with (a name that does not resolve included). */
export const refusalOf = (error: DestinationBlocked | DnsFailure): { reason: BlockReason; detail: string } =>
  error._tag === "DnsFailure"
    ? { reason: "does_not_resolve", detail: error.detail }
    : { reason: error.reason, detail: error.detail }

const publicOnly = "webhooks reach public addresses only"

/** What a URL's text decides on its own: refused, or the host to resolve (`family` 0) or to take as it is. */
type Target =
  | { readonly refused: { readonly reason: BlockReason; readonly detail: string } }
  | { readonly refused: undefined; readonly url: URL; readonly host: string; readonly family: number }

/** What an address decides on its own: why it is refused, or where to connect. */
type Verdict =
  | { readonly why: string; readonly address: string }
  | { readonly why: undefined; readonly connect: ResolvedAddress }

/**
 * `compute` remembered for the last `capacity` keys: vetting runs before every attempt, and what a
 * URL's text or an address decides alone never changes while the gateway runs (resolving does, and is not kept).
 */
const remembered = <A>(capacity: number, compute: (key: string) => A) => {
  const kept = new Map<string, A>()
  return (key: string) => {
    let value = kept.get(key)
    if (value === undefined) {
      value = compute(key)
      if (kept.size >= capacity) kept.delete(kept.keys().next().value!)
      kept.set(key, value)
    }
    return value
  }
}

export const layerSsrfGuard = Layer.effect(
  SsrfGuard,
  Effect.gen(function* () {
    const config = yield* GatewayConfigService
    const resolver = yield* Resolver
    const schemes = config.env === "production" ? ["https:"] : ["http:", "https:"]
    const allowed = config.webhookAllowCidrs.map((cidr) => ipaddr.parseCIDR(cidr))
    const refuse = (reason: BlockReason, detail: string) => ({ refused: { reason, detail } })

    const targetOf = remembered(4_096, (text): Target => {
      const url = URL.parse(text)
      if (url === null) return refuse("invalid_url", "the URL is not an absolute URL")
      if (!schemes.includes(url.protocol)) {
        return refuse(
          "scheme_not_allowed",
          config.env === "production"
            ? `the URL's scheme is ${url.protocol} and only https: is allowed (WHATISUP_ENV=production)`
            : `the URL's scheme is ${url.protocol} and only http: and https: are allowed`
        )
      }
      if (url.username !== "" || url.password !== "") {
        return refuse("credentials_in_url", "the URL carries credentials (user:password@), which are refused")
      }
      // the URL parser has already turned every IPv4 spelling (2130706433, 0177.0.0.1, 0x7f.1, 127.1) into dotted decimal
      const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
      if (host === "") return refuse("invalid_url", "the URL names no host")
      return { refused: undefined, url, host, family: net.isIP(host) }
    })

    const verdictOf = remembered(16_384, (text): Verdict => {
      if (!ipaddr.isValid(text)) return { why: "not an IP address", address: text }
      const address = ipaddr.parse(text)
      const why = whyNotPublic(address, allowed)
      return why === undefined ? { why, connect: connectable(address) } : { why, address: address.toString() }
    })

    return SsrfGuard.of({
      // untraced: it runs before every webhook attempt, and a span with its captured stack costs more than the vetting
      vet: Effect.fnUntraced(function* (text: string) {
        const target = targetOf(text)
        if (target.refused !== undefined) return yield* new DestinationBlocked(target.refused)
        const { url, host, family } = target
        if (family !== 0) {
          const verdict = verdictOf(host)
          if (verdict.why !== undefined) {
            return yield* new DestinationBlocked({
              reason: "non_public_address",
              detail: `${host} is ${verdict.why}: ${publicOnly}`,
              address: verdict.address
            })
          }
          return { url, addresses: [verdict.connect] }
        }
        const records = yield* resolver.resolve(host)
        if (records.length === 0) {
          return yield* new DnsFailure({ detail: `${host} does not resolve: no A or AAAA record` })
        }
        const addresses: Array<ResolvedAddress> = []
        for (const record of records) {
          const verdict = verdictOf(record.address)
          if (verdict.why !== undefined) {
            return yield* new DestinationBlocked({
              reason: "non_public_address",
              // the address itself stays out of the answer: customers must not map internal names through it
              detail: `${host} resolves to an address that is not public: ${publicOnly}`,
              address: verdict.address
            })
          }
          addresses.push(verdict.connect)
        }
        return { url, addresses }
      })
    })
  })
)
