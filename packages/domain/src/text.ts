import { Schema } from "effect"

// whole code points, none of them a control character, C0 or C1 (PostgreSQL refuses NUL; lone
// surrogates are not text), nor a bidirectional override or isolate, which would show a name in an
// order other than its own (U+202A-U+202E, U+2066-U+2069)
const printable =
  // eslint-disable-next-line no-control-regex -- control characters are what it refuses
  /^(?:[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/

/**
 * Whole code points (no lone surrogates) and no NUL, which PostgreSQL refuses: text it can hold.
 * Newlines and tabs are text.
 */
// eslint-disable-next-line no-control-regex -- NUL is what it refuses
export const storableText = /^(?:[^\u0000\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/u

/** Text a person typed: a name, a label. */
export const Text = (minLength: number, maxLength: number) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isBetweenLength(minLength, maxLength, {
        message: `must be ${minLength} to ${maxLength} characters`
      })
    ),
    Schema.check(
      Schema.isPattern(printable, {
        message: "must not contain control characters, bidirectional overrides or broken Unicode"
      })
    )
  )
