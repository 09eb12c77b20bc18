import { describe, expect, it } from "@effect/vitest"
import { proto } from "@whiskeysockets/baileys"
import { describeInbound } from "../src/whatsapp/inboundContent.ts"

const encoded = (message: proto.IMessage) => proto.Message.encode(message).finish()

/** What a phone's upload leaves in a media message: enough to download it. */
const uploaded = {
  url: "https://mmg.whatsapp.net/v/t62.7118-24/file.enc",
  directPath: "/v/t62.7118-24/file.enc",
  mediaKey: new Uint8Array(32).fill(7),
  fileSha256: new Uint8Array(32).fill(1),
  fileEncSha256: new Uint8Array(32).fill(2)
}
const sha256 = Buffer.from(uploaded.fileSha256).toString("base64")

describe("describeInbound: WhatsApp's message in the API's shape", () => {
  it("a text, plain or extended, is its body", () => {
    expect(describeInbound(encoded({ conversation: "hi" }))).toEqual({
      message: { type: "text", text: { body: "hi" } },
      hasMedia: false
    })
    expect(
      describeInbound(encoded({ extendedTextMessage: { text: "see https://example.com" } })).message
    ).toEqual({
      type: "text",
      text: { body: "see https://example.com" }
    })
  })

  it("a reply of any kind names the WhatsApp id of the message it quotes", () => {
    expect(
      describeInbound(
        encoded({
          extendedTextMessage: {
            text: "yes",
            contextInfo: { stanzaId: "3EB0QUOTED", quotedMessage: { conversation: "are you there?" } }
          }
        })
      ).message
    ).toEqual({ type: "text", text: { body: "yes" }, context: { whatsapp_id: "3EB0QUOTED" } })
    expect(
      describeInbound(
        encoded({
          imageMessage: { ...uploaded, mimetype: "image/jpeg", contextInfo: { stanzaId: "3EB0PHOTO" } }
        })
      ).message
    ).toMatchObject({ type: "image", context: { whatsapp_id: "3EB0PHOTO" } })
    expect(describeInbound(encoded({ conversation: "no reply" })).message).not.toHaveProperty("context")
  })

  it("an image, a video and a sticker are their metadata, with media to download", () => {
    expect(
      describeInbound(
        encoded({
          imageMessage: { ...uploaded, mimetype: "image/jpeg", caption: "the door", fileLength: 1234 }
        })
      )
    ).toEqual({
      message: {
        type: "image",
        image: { mime_type: "image/jpeg", caption: "the door", sha256, file_length: 1234 }
      },
      hasMedia: true
    })
    expect(
      describeInbound(encoded({ videoMessage: { ...uploaded, mimetype: "video/mp4", fileLength: 99 } }))
    ).toEqual({
      message: { type: "video", video: { mime_type: "video/mp4", sha256, file_length: 99 } },
      hasMedia: true
    })
    // a round video note is a video too
    expect(
      describeInbound(encoded({ ptvMessage: { ...uploaded, mimetype: "video/mp4" } })).message
    ).toMatchObject({
      type: "video",
      video: { mime_type: "video/mp4" }
    })
    expect(describeInbound(encoded({ stickerMessage: { ...uploaded, mimetype: "image/webp" } }))).toEqual({
      message: { type: "sticker", sticker: { mime_type: "image/webp", sha256 } },
      hasMedia: true
    })
  })

  it("an audio says whether it is a voice note, and a document names its file", () => {
    expect(
      describeInbound(
        encoded({ audioMessage: { ...uploaded, mimetype: "audio/ogg; codecs=opus", ptt: true } })
      ).message
    ).toEqual({
      type: "audio",
      audio: { mime_type: "audio/ogg; codecs=opus", voice: true, sha256 }
    })
    expect(
      describeInbound(encoded({ audioMessage: { ...uploaded, mimetype: "audio/mpeg" } })).message
    ).toEqual({
      type: "audio",
      audio: { mime_type: "audio/mpeg", sha256 }
    })
    expect(
      describeInbound(
        encoded({
          documentMessage: {
            ...uploaded,
            mimetype: "application/pdf",
            fileName: "invoice.pdf",
            fileLength: 5
          }
        })
      )
    ).toEqual({
      message: {
        type: "document",
        document: { mime_type: "application/pdf", filename: "invoice.pdf", sha256, file_length: 5 }
      },
      hasMedia: true
    })
  })

  it("a media message without the keys to download it has no media", () => {
    expect(describeInbound(encoded({ imageMessage: { mimetype: "image/jpeg" } }))).toEqual({
      message: { type: "image", image: { mime_type: "image/jpeg" } },
      hasMedia: false
    })
    expect(
      describeInbound(encoded({ imageMessage: { mimetype: "image/jpeg", mediaKey: uploaded.mediaKey } }))
        .hasMedia
    ).toBe(false)
  })

  it("a location is its coordinates, name and address", () => {
    expect(
      describeInbound(
        encoded({
          locationMessage: {
            degreesLatitude: -33.8568,
            degreesLongitude: 151.2153,
            name: "Opera House",
            address: "Sydney"
          }
        })
      )
    ).toEqual({
      message: {
        type: "location",
        location: { latitude: -33.8568, longitude: 151.2153, name: "Opera House", address: "Sydney" }
      },
      hasMedia: false
    })
    expect(
      describeInbound(encoded({ locationMessage: { degreesLatitude: 1.5, degreesLongitude: 2.5 } })).message
    ).toEqual({
      type: "location",
      location: { latitude: 1.5, longitude: 2.5 }
    })
  })

  it("a reaction names the message it reacts to; an empty emoji is a reaction taken back", () => {
    const key = { remoteJid: "15550001111@s.whatsapp.net", fromMe: true, id: "3EB0TARGET" }
    expect(
      describeInbound(encoded({ reactionMessage: { key, text: "❤️", senderTimestampMs: 1 } })).message
    ).toEqual({
      type: "reaction",
      reaction: { message_id: "3EB0TARGET", emoji: "❤️" }
    })
    expect(describeInbound(encoded({ reactionMessage: { key, text: "" } })).message).toEqual({
      type: "reaction",
      reaction: { message_id: "3EB0TARGET", emoji: "" }
    })
  })

  it("disappearing, view-once and captioned-document wrappers are read through", () => {
    expect(
      describeInbound(encoded({ ephemeralMessage: { message: { conversation: "gone soon" } } })).message
    ).toEqual({
      type: "text",
      text: { body: "gone soon" }
    })
    expect(
      describeInbound(
        encoded({ viewOnceMessage: { message: { imageMessage: { ...uploaded, mimetype: "image/jpeg" } } } })
      )
    ).toMatchObject({ message: { type: "image" }, hasMedia: true })
    expect(
      describeInbound(
        encoded({
          ephemeralMessage: {
            message: {
              viewOnceMessageV2: { message: { videoMessage: { ...uploaded, mimetype: "video/mp4" } } }
            }
          }
        })
      ).message
    ).toMatchObject({ type: "video" })
    expect(
      describeInbound(
        encoded({
          documentWithCaptionMessage: {
            message: {
              documentMessage: {
                ...uploaded,
                mimetype: "text/plain",
                fileName: "a.txt",
                caption: "read this"
              }
            }
          }
        })
      ).message
    ).toEqual({
      type: "document",
      document: { mime_type: "text/plain", filename: "a.txt", caption: "read this", sha256 }
    })
  })

  it("what rides along with a message (sender keys, context) does not change its kind", () => {
    expect(
      describeInbound(
        encoded({
          senderKeyDistributionMessage: {
            groupId: "g",
            axolotlSenderKeyDistributionMessage: new Uint8Array([1])
          },
          messageContextInfo: { messageSecret: new Uint8Array(32) },
          conversation: "hello"
        })
      ).message
    ).toEqual({ type: "text", text: { body: "hello" } })
  })

  it("a kind the gateway does not read yet is unsupported, under WhatsApp's own name", () => {
    expect(
      describeInbound(encoded({ pollCreationMessage: { name: "Lunch?", options: [{ optionName: "yes" }] } }))
    ).toEqual({
      message: { type: "unsupported", unsupported: { whatsapp_type: "pollCreationMessage" } },
      hasMedia: false
    })
    expect(
      describeInbound(encoded({ contactMessage: { displayName: "Ann", vcard: "BEGIN:VCARD" } })).message
    ).toEqual({ type: "unsupported", unsupported: { whatsapp_type: "contactMessage" } })
    expect(
      describeInbound(encoded({ ephemeralMessage: { message: { protocolMessage: { type: 0 } } } })).message
    ).toEqual({ type: "unsupported", unsupported: { whatsapp_type: "protocolMessage" } })
    // a field newer than our proto: decoded as nothing we know
    expect(describeInbound(new Uint8Array([0xfa, 0x7f, 0x01, 0x02])).message).toEqual({
      type: "unsupported",
      unsupported: { whatsapp_type: "unknown" }
    })
  })

  it("reads a message object as it reads its encoded bytes", () => {
    const message = { imageMessage: { ...uploaded, mimetype: "image/png", caption: "same", fileLength: 10 } }
    expect(describeInbound(message)).toEqual(describeInbound(encoded(message)))
  })
})
