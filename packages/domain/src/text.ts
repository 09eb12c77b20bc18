import { Schema } from "effect"

// whole code points, none of them a control character (PostgreSQL refuses NUL; lone surrogates are not text)
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const printable = /^(?:[^\u0000-\u001f\u007f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/

/** Text a person typed: a name, a label. */
export const Text = (minLength: number, maxLength: number) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isBetweenLength(minLength, maxLength, {
        message: `must be ${minLength} to ${maxLength} characters`
      })
    ),
    Schema.check(
      Schema.isPattern(printable, { message: "must not contain control characters or broken Unicode" })
    )
  )
