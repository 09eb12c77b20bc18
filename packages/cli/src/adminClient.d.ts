import { Context, Effect, Layer } from "effect"
import { RpcClientError } from "effect/rpc"
export interface AdminTarget {
  readonly url: string
  readonly token: string | undefined
  readonly tokenSource: string
}
/** Where the gateway's admin listener is and the operator token, from the environment or the data dir. */
export declare const adminTarget: (env: NodeJS.ProcessEnv) => AdminTarget
declare const AdminClient_base: Context.ServiceClass<
  AdminClient,
  "whatisup/cli/AdminClient",
  {
    readonly CreateCustomer: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly name: string
        readonly plan?: {
          readonly max_channels?: number
          readonly max_api_keys?: number
          readonly messages_per_minute?: number
          readonly api_requests_per_second?: number
        }
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly customer: {
              readonly id: string & import("effect/Brand").Brand<"CustomerId">
              readonly name: string
              readonly status: "active" | "suspended"
              readonly plan: {
                readonly max_channels: number
                readonly max_api_keys: number
                readonly messages_per_minute: number
                readonly api_requests_per_second: number
              }
              readonly created_at: string
            }
            readonly api_key: {
              readonly key: string
              readonly id: string & import("effect/Brand").Brand<"ApiKeyId">
              readonly name: string | null
              readonly prefix: string
              readonly last_four: string
              readonly channel_id: (string & import("effect/Brand").Brand<"ChannelId">) | null
              readonly created_at: string
              readonly last_used_at: string | null
              readonly revoked_at: string | null
            }
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : never),
      never
    >
    readonly ListCustomers: <const AsQueue extends boolean = false, const Discard = false>(
      input: void,
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : readonly {
            readonly id: string & import("effect/Brand").Brand<"CustomerId">
            readonly name: string
            readonly status: "active" | "suspended"
            readonly plan: {
              readonly max_channels: number
              readonly max_api_keys: number
              readonly messages_per_minute: number
              readonly api_requests_per_second: number
            }
            readonly created_at: string
          }[],
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : never),
      never
    >
    readonly GetCustomer: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly id: string & import("effect/Brand").Brand<"CustomerId">
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly id: string & import("effect/Brand").Brand<"CustomerId">
            readonly name: string
            readonly status: "active" | "suspended"
            readonly plan: {
              readonly max_channels: number
              readonly max_api_keys: number
              readonly messages_per_minute: number
              readonly api_requests_per_second: number
            }
            readonly created_at: string
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : import("@whatisup/domain").CustomerNotFound),
      never
    >
    readonly SetPlan: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly id: string & import("effect/Brand").Brand<"CustomerId">
        readonly plan: {
          readonly max_channels?: number
          readonly max_api_keys?: number
          readonly messages_per_minute?: number
          readonly api_requests_per_second?: number
        }
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly id: string & import("effect/Brand").Brand<"CustomerId">
            readonly name: string
            readonly status: "active" | "suspended"
            readonly plan: {
              readonly max_channels: number
              readonly max_api_keys: number
              readonly messages_per_minute: number
              readonly api_requests_per_second: number
            }
            readonly created_at: string
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : import("@whatisup/domain").CustomerNotFound),
      never
    >
    readonly SuspendCustomer: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly id: string & import("effect/Brand").Brand<"CustomerId">
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly id: string & import("effect/Brand").Brand<"CustomerId">
            readonly name: string
            readonly status: "active" | "suspended"
            readonly plan: {
              readonly max_channels: number
              readonly max_api_keys: number
              readonly messages_per_minute: number
              readonly api_requests_per_second: number
            }
            readonly created_at: string
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : import("@whatisup/domain").CustomerNotFound),
      never
    >
    readonly ResumeCustomer: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly id: string & import("effect/Brand").Brand<"CustomerId">
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly id: string & import("effect/Brand").Brand<"CustomerId">
            readonly name: string
            readonly status: "active" | "suspended"
            readonly plan: {
              readonly max_channels: number
              readonly max_api_keys: number
              readonly messages_per_minute: number
              readonly api_requests_per_second: number
            }
            readonly created_at: string
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : import("@whatisup/domain").CustomerNotFound),
      never
    >
    readonly IssueApiKey: <const AsQueue extends boolean = false, const Discard = false>(
      input: {
        readonly customer_id: string & import("effect/Brand").Brand<"CustomerId">
        readonly channel_id?: string & import("effect/Brand").Brand<"ChannelId">
        readonly name?: string
      },
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly key: string
            readonly id: string & import("effect/Brand").Brand<"ApiKeyId">
            readonly name: string | null
            readonly prefix: string
            readonly last_four: string
            readonly channel_id: (string & import("effect/Brand").Brand<"ChannelId">) | null
            readonly created_at: string
            readonly last_used_at: string | null
            readonly revoked_at: string | null
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true
          ? never
          : import("@whatisup/domain").CustomerNotFound | import("@whatisup/domain").AdminRequestInvalid),
      never
    >
    readonly RotateMasterKey: <const AsQueue extends boolean = false, const Discard = false>(
      input: void,
      options?:
        | {
            readonly headers?: import("effect/http/Headers").Input | undefined
            readonly context?: Context.Context<never> | undefined
            readonly discard?: Discard | undefined
          }
        | undefined
    ) => Effect.Effect<
      Discard extends true
        ? void
        : {
            readonly key_id: string
            readonly stores: readonly {
              readonly store: string
              readonly rewritten: number
            }[]
          },
      | import("@whatisup/domain").OperatorUnauthorized
      | RpcClientError.RpcClientError
      | (Discard extends true ? never : never),
      never
    >
  }
>
export declare class AdminClient extends AdminClient_base {}
export declare const layerAdminClient: (target: AdminTarget) => Layer.Layer<AdminClient, never, never>
export declare const call: <A, E>(
  f: (client: AdminClient["Service"]) => Effect.Effect<A, E>
) => Effect.Effect<A, E, AdminClient>
export {}
