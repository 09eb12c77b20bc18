import { describe, expect, it } from "@effect/vitest"
import { mimetypeOf } from "../src/messages/mediaFetch.ts"

describe("the media type a fetched file is sent as", () => {
  it("is the link's type and its codecs, and nothing else the link's server wrote", () => {
    for (const [contentType, kind, sentAs] of [
      // a voice note keeps its codecs, as WhatsApp's own do
      ["audio/ogg; codecs=opus", "audio", "audio/ogg; codecs=opus"],
      ['Audio/OGG;codecs="opus"', "audio", "audio/ogg; codecs=opus"],
      ['video/mp4; codecs="avc1.42E01E, mp4a.40.2"', "video", 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'],
      ["video/mp4; codecs=avc1.42E01E, mp4a.40.2", "video", 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'],
      ["audio/ogg; CODECS=opus", "audio", "audio/ogg; codecs=opus"],
      ["image/jpeg; charset=binary", "image", "image/jpeg"],
      ["audio/ogg", "audio", "audio/ogg"],
      // no type of its own: the kind's default
      [undefined, "audio", "audio/ogg; codecs=opus"],
      ["", "sticker", "image/webp"],
      ["application/octet-stream", "image", "image/jpeg"],
      // what no media type looks like is not passed on
      ["text/html<script>", "document", "application/octet-stream"],
      ["image/png; codecs=evil\r\nX-Injected: 1", "image", "image/png"],
      [`image/${"x".repeat(100)}`, "image", "image/jpeg"]
    ] as const) {
      expect(mimetypeOf(contentType, kind), JSON.stringify(contentType)).toBe(sentAs)
    }
  })
})
