import type { MessageId } from "@whatisup/domain"
import { Data } from "effect"
import type { BlockReason } from "../webhooks/attemptErrors.ts"

/** No message with this id is visible to the caller. */
export class MessageNotFound extends Data.TaggedError("MessageNotFound")<{ readonly messageId: MessageId }> {}

/** A send names a message (to reply or react to) that its channel does not hold. */
export class ReferencedMessageNotFound extends Data.TaggedError("ReferencedMessageNotFound")<{
  /** The field that named it: `body.context.message_id` or `body.reaction.message_id`. */
  readonly path: string
  readonly messageId: MessageId
}> {}

/** A media link the gateway will not fetch from. */
export class MediaLinkRefused extends Data.TaggedError("MediaLinkRefused")<{
  readonly path: string
  readonly reason: BlockReason
  readonly detail: string
}> {}

/** What was asked of a message does not fit it: marking an outbound one read, media of a text... */
export class MessageStateConflict extends Data.TaggedError("MessageStateConflict")<{
  readonly status: string
  readonly detail: string
}> {}
