import { Data, type Duration } from "effect"

// placeholder until the ssrf-guard branch lands
export class DestinationBlocked extends Data.TaggedError("DestinationBlocked")<{
  readonly reason: string
  readonly detail: string
  readonly address?: string
}> {}
export class DnsFailure extends Data.TaggedError("DnsFailure")<{ readonly detail: string }> {}
export class ConnectTimeout extends Data.TaggedError("ConnectTimeout")<{}> {}
export class ResponseTimeout extends Data.TaggedError("ResponseTimeout")<{}> {}
export class TlsFailure extends Data.TaggedError("TlsFailure")<{ readonly detail: string }> {}
export class ConnectionReset extends Data.TaggedError("ConnectionReset")<{ readonly detail: string }> {}
export class HttpStatus extends Data.TaggedError("HttpStatus")<{
  readonly status: number
  readonly retryAfter: Duration.Duration | undefined
  readonly excerpt: string
}> {}
export type AttemptError =
  | DestinationBlocked
  | DnsFailure
  | ConnectTimeout
  | ResponseTimeout
  | TlsFailure
  | ConnectionReset
  | HttpStatus
