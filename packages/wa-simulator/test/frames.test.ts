import { describe, expect, it } from "vitest"
import { encodeFrame, makeFrameReader } from "../src/frames.ts"

const WA_INTRO = Buffer.from([87, 65, 6, 3])

describe("the WhatsApp Web stream framing", () => {
  it("reads the intro and frames split at any byte", () => {
    const stream = Buffer.concat([
      WA_INTRO,
      encodeFrame(Buffer.from("hello")),
      encodeFrame(Buffer.alloc(70_000, 7))
    ])
    const reader = makeFrameReader()
    const intros: Buffer[] = []
    const frames: Buffer[] = []
    for (let offset = 0; offset < stream.length; offset += 997) {
      const { intro, frames: read } = reader.push(stream.subarray(offset, offset + 997))
      if (intro) intros.push(intro)
      frames.push(...read)
    }
    expect(intros).toEqual([WA_INTRO])
    expect(frames.map((frame) => frame.length)).toEqual([5, 70_000])
    expect(frames[0]!.toString()).toBe("hello")
  })

  it("skips an edge-routing header before the intro", () => {
    const routing = Buffer.from("routing-info")
    const header = Buffer.concat([
      Buffer.from("ED"),
      Buffer.from([0, 1, 0, 0, routing.length]),
      routing,
      WA_INTRO
    ])
    const { intro, frames } = makeFrameReader().push(Buffer.concat([header, encodeFrame(Buffer.from("x"))]))
    expect(intro).toEqual(WA_INTRO)
    expect(frames.map(String)).toEqual(["x"])
  })

  it("refuses a stream that does not open with a WhatsApp intro", () => {
    expect(() => makeFrameReader().push(Buffer.from("GET / HTTP/1.1"))).toThrow(/unexpected stream intro/)
  })
})
