// One channel: its live status, pairing by QR (refreshed as WhatsApp rotates it) or by code, and its
// lifecycle (logout, restart, delete).
import { useEffect, useState } from "preact/hooks"
import {
  confirmed,
  ErrorNote,
  formatTime,
  html,
  Status,
  useAction,
  useLiveEvents,
  useLoad,
  useSession
} from "../ui.js"

/** The current QR as an image, fetched again at each channel.qr event. */
const QrImage = ({ channelId, version }) => {
  const { api } = useSession()
  const [image, setImage] = useState({ url: null, error: null })
  const [retry, setRetry] = useState(0)
  useEffect(() => {
    let url = null
    let current = true
    let timer
    api.blob(`/v1/channels/${channelId}/qr`, "image/png").then(
      (blob) => {
        if (!current) return
        url = URL.createObjectURL(blob)
        setImage({ url, error: null })
      },
      (error) => {
        if (!current) return
        setImage({ url: null, error })
        // WhatsApp has not sent the first code yet: ask again shortly
        if (error.status === 409) timer = setTimeout(() => setRetry((n) => n + 1), 2000)
      }
    )
    return () => {
      current = false
      clearTimeout(timer)
      if (url) URL.revokeObjectURL(url)
    }
  }, [channelId, version, retry])
  if (image.error) return html`<p class="hint" role="status">${image.error.message}</p>`
  if (!image.url) return html`<p class="hint">Waiting for WhatsApp's QR code…</p>`
  return html`<figure class="qr">
    <img
      src=${image.url}
      alt="QR code to scan with WhatsApp on the phone"
      width="264"
      height="264"
      data-testid="qr"
    />
    <figcaption>
      On the phone: WhatsApp → Settings → Linked devices → Link a device, then scan. It changes every 20 to 60
      seconds.
    </figcaption>
  </figure>`
}

const Connect = ({ channel, onConnected }) => {
  const { api } = useSession()
  const [method, setMethod] = useState("qr")
  const [phone, setPhone] = useState("")
  const connect = useAction(async (event) => {
    event.preventDefault()
    const body = method === "qr" ? { method } : { method, phone_number: phone.trim() }
    onConnected(await api.call("POST", `/v1/channels/${channel.id}/connect`, body))
  })
  return html`<form onSubmit=${connect.run} class="stack">
    <fieldset>
      <legend>Connect</legend>
      <label
        ><input
          type="radio"
          name="method"
          value="qr"
          checked=${method === "qr"}
          onChange=${() => setMethod("qr")}
        />
        Scan a QR code</label
      >
      <label
        ><input
          type="radio"
          name="method"
          value="pairing_code"
          checked=${method === "pairing_code"}
          onChange=${() => setMethod("pairing_code")}
        />
        Type a pairing code into the phone</label
      >
      ${
        method === "pairing_code"
          ? html`<label for="pairing-phone">Phone number (E.164)</label>
              <input
                id="pairing-phone"
                value=${phone}
                onInput=${(e) => setPhone(e.target.value)}
                placeholder="+15551234567"
                inputmode="tel"
                required
              />`
          : null
      }
    </fieldset>
    <button type="submit" disabled=${connect.busy}>Connect</button>
    <${ErrorNote} error=${connect.error} />
  </form>`
}

export const ChannelPage = ({ id }) => {
  const { api, me } = useSession()
  const channel = useLoad(() => api.call("GET", `/v1/channels/${id}`), [api, id])
  const [qrVersion, setQrVersion] = useState(0)
  useLiveEvents(
    (event) => {
      if (event.data?.channel_id !== id || !event.type.startsWith("channel.")) return
      channel.reload()
      if (event.type === "channel.qr") setQrVersion((version) => version + 1)
    },
    [id, channel.reload]
  )
  const act = useAction(async (operation) => {
    if (operation === "delete") {
      if (
        !confirmed(
          "Delete this channel? Its WhatsApp link ends, its bound keys are revoked, and this cannot be undone."
        )
      )
        return
      await api.call("DELETE", `/v1/channels/${id}`)
      location.hash = "#/channels"
      return
    }
    if (operation === "logout" && !confirmed("Log this channel out? The phone will have to pair again."))
      return
    await api.call("POST", `/v1/channels/${id}/${operation}`)
    channel.reload()
  })
  const current = channel.value
  if (current === undefined)
    return html`<${ErrorNote}
        error=${channel.error}
      />${channel.error ? null : html`<p class="loading">Loading…</p>`}`
  const pairingByCode = current.status === "pairing" && current.pairing_code
  const canConnect = ["created", "logged_out", "failed"].includes(current.status)
  return html`<section aria-labelledby="channel-title">
    <p class="crumbs">${me.channel_id ? null : html`<a href="#/channels">Channels</a> /`}</p>
    <h1 id="channel-title">${current.name ?? "(unnamed channel)"}</h1>
    <dl class="facts">
      <dt>Status</dt>
      <dd data-testid="channel-status">
        <${Status}
          value=${current.status}
        />${current.status_reason ? html` <small>${current.status_reason}</small>` : null}
      </dd>
      <dt>Phone number</dt>
      <dd>${current.phone_number ?? "—"}</dd>
      <dt>Last connected</dt>
      <dd>${formatTime(current.last_connected_at)}</dd>
      <dt>Id</dt>
      <dd><code>${current.id}</code></dd>
    </dl>
    <p><a href=${`#/channels/${id}/messages`}>Messages</a></p>
    <${ErrorNote} error=${channel.error} />
    ${current.status === "pairing" && !pairingByCode ? html`<${QrImage} channelId=${id} version=${qrVersion} />` : null}
    ${
      pairingByCode
        ? html`<div class="pairing-code" role="status">
            <p>
              On the phone: WhatsApp → Settings → Linked devices → Link a device → Link with phone number
              instead, then type:
            </p>
            <p class="code" data-testid="pairing-code">${current.pairing_code}</p>
          </div>`
        : null
    }
    ${canConnect ? html`<${Connect} channel=${current} onConnected=${() => channel.reload()} />` : null}
    <div class="actions">
      <button type="button" onClick=${() => act.run("restart")} disabled=${act.busy}>Restart</button>
      <button type="button" onClick=${() => act.run("logout")} disabled=${act.busy}>Log out</button>
      <button type="button" class="danger" onClick=${() => act.run("delete")} disabled=${act.busy}>
        Delete
      </button>
    </div>
    <${ErrorNote} error=${act.error} />
  </section>`
}
