import { Data, type Duration } from "effect"

/** Why a destination is refused, as a machine code an API answer and an attempt row can carry. */
export type BlockReason =
  "invalid_url" | "scheme_not_allowed" | "credentials_in_url" | "does_not_resolve" | "non_public_address"

/**
 * The destination is not one a webhook may reach: not an http(s) URL, credentials in it, or an
 * address that is not public; `detail` is the sentence a 400 shows, `address` the address refused.
 */
export class DestinationBlocked extends Data.TaggedError("DestinationBlocked")<{
  readonly reason: BlockReason
  readonly detail: string
  readonly address?: string
}> {}

/** The destination's name did not resolve (no such name, no A/AAAA record, or no answer in time). */
export class DnsFailure extends Data.TaggedError("DnsFailure")<{ readonly detail: string }> {}

/** No connection (TCP, and TLS for https) to the vetted address within the connect timeout. */
export class ConnectTimeout extends Data.TaggedError("ConnectTimeout")<{ readonly detail: string }> {}

/** Connected, but the whole answer did not come within the total timeout. */
export class ResponseTimeout extends Data.TaggedError("ResponseTimeout")<{ readonly detail: string }> {}

/** The TLS handshake failed: a certificate that does not verify or name the host, or no common protocol. */
export class TlsFailure extends Data.TaggedError("TlsFailure")<{ readonly detail: string }> {}

/** The connection was refused, reset or closed before a complete answer; `detail` says which. */
export class ConnectionReset extends Data.TaggedError("ConnectionReset")<{ readonly detail: string }> {}

/** The receiver answered with a status that is not a success (2xx); 3xx counts as a failure too. */
export class HttpStatus extends Data.TaggedError("HttpStatus")<{
  readonly status: number
  readonly retryAfter: Duration.Duration | undefined
  readonly excerpt: string
}> {}

/** Everything one delivery attempt can fail with. */
export type AttemptError =
  | DestinationBlocked
  | DnsFailure
  | ConnectTimeout
  | ResponseTimeout
  | TlsFailure
  | ConnectionReset
  | HttpStatus

/** The error type an attempt row stores. */
export const errorType = (error: AttemptError): AttemptError["_tag"] => error._tag
