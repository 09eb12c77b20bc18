import { Schema } from "effect"

/** A moment as the API shows it: ISO 8601 in UTC with milliseconds. */
export const Timestamp = (description: string) =>
  Schema.String.annotate({ description, format: "date-time", examples: ["2026-11-25T23:59:33.079Z"] })

/** A moment that may not have happened yet. */
export const OptionalTimestamp = (description: string) =>
  Schema.NullOr(Timestamp(description)).annotate({ description })
