// Every channel of the customer, its status kept live; create one.
import { useState } from "preact/hooks"
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
import { query } from "../api.js"

export const ChannelsPage = () => {
  const { api } = useSession()
  const pages = usePages((cursor) => api.call("GET", `/v1/channels${query({ cursor, limit: 100 })}`), [api])
  useLiveEvents((event) => event.type.startsWith("channel.") && pages.reload(), [pages.reload])
  const [name, setName] = useState("")
  const create = useAction(async (event) => {
    event.preventDefault()
    const channel = await api.call("POST", "/v1/channels", name.trim() === "" ? {} : { name: name.trim() })
    setName("")
    location.hash = `#/channels/${channel.id}`
  })
  return html`<section aria-labelledby="channels-title">
    <h1 id="channels-title">Channels</h1>
    <form class="inline" onSubmit=${create.run}>
      <label for="channel-name">New channel name</label>
      <input
        id="channel-name"
        value=${name}
        onInput=${(e) => setName(e.target.value)}
        maxlength="100"
        placeholder="support"
      />
      <button type="submit" disabled=${create.busy}>Create channel</button>
    </form>
    <${ErrorNote} error=${create.error} />
    <${ErrorNote} error=${pages.error} />
    <${Table}
      caption="Channels"
      headers=${["Name", "Status", "Phone number", "Last connected", "Id"]}
      empty=${!pages.loading && pages.data.length === 0 ? "No channels yet: create one above." : null}
    >
      ${pages.data.map(
        (channel) =>
          html`<tr data-channel=${channel.id}>
            <td><a href=${`#/channels/${channel.id}`}>${channel.name ?? "(unnamed)"}</a></td>
            <td>
              <${Status}
                value=${channel.status}
              />${channel.status_reason ? html` <small>${channel.status_reason}</small>` : null}
            </td>
            <td>${channel.phone_number ?? "—"}</td>
            <td>${formatTime(channel.last_connected_at)}</td>
            <td><code>${channel.id}</code></td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
  </section>`
}
