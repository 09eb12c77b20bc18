import { Cause, SchemaIssue } from "effect"
import type { AdminTarget } from "./adminClient.ts"

/** One line for the operator, never a stack trace; null when the CLI already printed what went wrong. */
export const explain = (cause: Cause.Cause<unknown>, target: AdminTarget): string | null => {
  const error = cause.reasons
    .map((reason) =>
      Cause.isFailReason(reason) ? reason.error : Cause.isDieReason(reason) ? reason.defect : undefined
    )
    .find((e) => e !== undefined) as { _tag?: string; message?: string; customer_id?: string } | undefined
  // input the client could not encode: the issue arrives as the issue of a SchemaError or the cause of a defect
  const issue =
    (error as { issue?: unknown; cause?: unknown } | undefined)?.issue ??
    (error as { cause?: unknown } | undefined)?.cause
  if (SchemaIssue.isIssue(issue)) {
    const issues = SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues
    return `invalid input: ${issues
      .map(
        (issue) =>
          `${(issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".") || "value"} ${issue.message}`
      )
      .join("; ")}`
  }
  switch (error?._tag) {
    case "UsageError":
      return error.message ?? "bad usage"
    case "OperatorUnauthorized":
      return target.token === undefined
        ? `no operator token: set WHATISUP_ADMIN_TOKEN or run where ${target.tokenSource} exists`
        : `the gateway refused the operator token from ${target.tokenSource}`
    case "CustomerNotFound":
      return `no customer ${error.customer_id}`
    case "AdminRequestInvalid":
      return error.message ?? "the gateway refused the request"
    case "RpcClientError": {
      const detail = (error.message ?? "").replace(/^\w*Error:?\s*/, "").trim()
      return `cannot reach the gateway's admin listener at ${target.url}${detail === "" ? "; is it running?" : ` (${detail})`}`
    }
    case "TimeoutError":
      return `the gateway's admin listener at ${target.url} did not answer in time`
    case "ShowHelp":
      return null
    default: {
      if (error === undefined) return null
      if (error._tag?.endsWith("Error") && error._tag !== "Error" && "message" in error) {
        // parse errors from effect/cli are already shown with the help text
        return null
      }
      return error.message ?? String(error._tag)
    }
  }
}
