/**
 * The WhatsApp Web stream: the client opens with an intro (`WA` 6 <dict version>, or an `ED` edge
 * routing header followed by it), then every frame carries a 3-byte big-endian length.
 */
export interface FrameReader {
  /** Feeds bytes from the socket; returns the intro once it is complete (then undefined) and every whole frame. */
  readonly push: (data: Uint8Array) => { intro?: Buffer; frames: Buffer[] }
}

const WA_INTRO_LENGTH = 4

export const makeFrameReader = (): FrameReader => {
  let pending = Buffer.alloc(0)
  let introDone = false

  const readIntro = (): Buffer | undefined => {
    if (pending.length < 2) return undefined
    const magic = pending.subarray(0, 2).toString("latin1")
    let length = WA_INTRO_LENGTH
    if (magic === "ED") {
      if (pending.length < 7) return undefined
      const routingLength = (pending[4]! << 16) | pending.readUInt16BE(5)
      length = 7 + routingLength + WA_INTRO_LENGTH
    } else if (magic !== "WA") {
      throw new Error(`unexpected stream intro ${pending.subarray(0, 2).toString("hex")}`)
    }
    if (pending.length < length) return undefined
    const intro = pending.subarray(length - WA_INTRO_LENGTH, length)
    pending = pending.subarray(length)
    introDone = true
    return Buffer.from(intro)
  }

  return {
    push: (data) => {
      pending = pending.length === 0 ? Buffer.from(data) : Buffer.concat([pending, data])
      const intro = introDone ? undefined : readIntro()
      const frames: Buffer[] = []
      while (introDone && pending.length >= 3) {
        const size = (pending[0]! << 16) | (pending[1]! << 8) | pending[2]!
        if (pending.length < size + 3) break
        frames.push(Buffer.from(pending.subarray(3, size + 3)))
        pending = pending.subarray(size + 3)
      }
      return intro ? { intro, frames } : { frames }
    }
  }
}

export const encodeFrame = (payload: Uint8Array): Buffer => {
  if (payload.byteLength >= 1 << 24) throw new Error("frame too large")
  const frame = Buffer.alloc(3 + payload.byteLength)
  frame[0] = (payload.byteLength >>> 16) & 0xff
  frame.writeUInt16BE(payload.byteLength & 0xffff, 1)
  frame.set(payload, 3)
  return frame
}
