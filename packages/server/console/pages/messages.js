// A channel's messages, live: send a text, follow each message's status, open inbound media.
import { useState } from "preact/hooks"
import { query } from "../api.js"
import {
  ErrorNote,
  formatTime,
  html,
  MoreButton,
  Status,
  Table,
  useAction,
  useLiveEvents,
  usePages,
  useSession
} from "../ui.js"

const mediaTypes = ["image", "video", "audio", "document", "sticker"]

/** What a message says, in one line. */
const summary = (message) => {
  const content = message[message.type] ?? {}
  switch (message.type) {
    case "text":
      return content.body
    case "location":
      return `📍 ${content.name ?? ""} ${content.latitude}, ${content.longitude}`
    case "reaction":
      return `reacted ${content.emoji || "(removed)"}`
    case "unsupported":
      return `(${content.whatsapp_type}, not supported yet)`
    default:
      return [message.type, content.caption ?? content.filename ?? ""].join(": ")
  }
}

/** An inbound message's file, fetched through the API and shown (or offered to save). */
const Media = ({ message }) => {
  const { api } = useSession()
  const [file, setFile] = useState(null)
  const open = useAction(async () => {
    const blob = await api.blob(`/v1/messages/${message.id}/media`)
    setFile({ url: URL.createObjectURL(blob), type: blob.type })
  })
  if (!file)
    return html`<button type="button" onClick=${() => open.run()} disabled=${open.busy}>
        Open ${message.type}</button
      ><${ErrorNote} error=${open.error} />`
  const name = message[message.type]?.filename ?? `${message.id}`
  if (file.type.startsWith("image/"))
    return html`<img
      class="media"
      src=${file.url}
      alt=${message[message.type]?.caption ?? `${message.type} received`}
    />`
  if (file.type.startsWith("video/")) return html`<video class="media" src=${file.url} controls />`
  if (file.type.startsWith("audio/")) return html`<audio src=${file.url} controls />`
  return html`<a href=${file.url} download=${name}>Save ${name}</a>`
}

/** Every status the message went through. */
const History = ({ id }) => {
  const { api } = useSession()
  const [message, setMessage] = useState(null)
  const load = useAction(async () => setMessage(await api.call("GET", `/v1/messages/${id}`)))
  if (!message)
    return html`<button type="button" class="link" onClick=${() => load.run()}>History</button
      ><${ErrorNote} error=${load.error} />`
  return html`<ol class="history">
    ${message.statuses.map(
      (step) => html`<li>${[step.status, formatTime(step.at), step.reason].filter(Boolean).join(" · ")}</li>`
    )}
  </ol>`
}

const SendText = ({ channelId, onSent }) => {
  const { api } = useSession()
  const [to, setTo] = useState("")
  const [body, setBody] = useState("")
  const send = useAction(async (event) => {
    event.preventDefault()
    await api.call("POST", `/v1/channels/${channelId}/messages`, {
      to: to.trim(),
      type: "text",
      text: { body }
    })
    setBody("")
    onSent()
  })
  return html`<form class="stack send" onSubmit=${send.run}>
    <label for="send-to">To (E.164)</label>
    <input
      id="send-to"
      value=${to}
      onInput=${(e) => setTo(e.target.value)}
      placeholder="+15557654321"
      inputmode="tel"
      required
    />
    <label for="send-body">Text</label>
    <textarea
      id="send-body"
      value=${body}
      onInput=${(e) => setBody(e.target.value)}
      maxlength="4096"
      rows="3"
      required
    />
    <button type="submit" disabled=${send.busy}>Send text</button>
    <${ErrorNote} error=${send.error} />
  </form>`
}

export const MessagesPage = ({ channelId }) => {
  const { api, me } = useSession()
  const [direction, setDirection] = useState("")
  const pages = usePages(
    (cursor) =>
      api.call("GET", `/v1/channels/${channelId}/messages${query({ direction, cursor, limit: 50 })}`),
    [api, channelId, direction]
  )
  useLiveEvents(
    (event) => event.type.startsWith("message.") && event.data?.channel_id === channelId && pages.reload(),
    [channelId, pages.reload]
  )
  return html`<section aria-labelledby="messages-title">
    <p class="crumbs">
      ${me.channel_id ? null : html`<a href="#/channels">Channels</a>${" / "}`}
      <a href=${`#/channels/${channelId}`}>Channel</a>${" /"}
    </p>
    <h1 id="messages-title">Messages</h1>
    <${SendText} channelId=${channelId} onSent=${pages.reload} />
    <label for="direction">Show</label>
    <select id="direction" value=${direction} onChange=${(e) => setDirection(e.target.value)}>
      <option value="">All messages</option>
      <option value="inbound">Received</option>
      <option value="outbound">Sent</option>
    </select>
    <${ErrorNote} error=${pages.error} />
    <${Table}
      caption="Messages, newest first"
      headers=${["When", "Direction", "From", "To", "Message", "Status", ""]}
      empty=${!pages.loading && pages.data.length === 0 ? "No messages yet." : null}
    >
      ${pages.data.map(
        (message) =>
          html`<tr data-message=${message.id}>
            <td>${formatTime(message.created_at)}</td>
            <td>${message.direction === "inbound" ? "received" : "sent"}</td>
            <td>${message.from ?? "—"}</td>
            <td>${message.to ?? "—"}</td>
            <td class="body">
              ${summary(message)}${message.direction === "inbound" && mediaTypes.includes(message.type) ? html`<div><${Media} message=${message} /></div>` : null}
            </td>
            <td data-testid="message-status">
              <${Status}
                value=${message.status}
              />${message.failure ? html` <small>${message.failure.reason}: ${message.failure.detail}</small>` : null}
            </td>
            <td><${History} id=${message.id} /></td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
  </section>`
}
