// API keys: create (the plaintext shown once), revoke.
import { useState } from "preact/hooks"
import { query } from "../api.js"
import {
  confirmed,
  ErrorNote,
  formatTime,
  html,
  MoreButton,
  ShownOnce,
  Table,
  useAction,
  useLoad,
  usePages,
  useSession
} from "../ui.js"

export const KeysPage = () => {
  const { api, me } = useSession()
  const pages = usePages((cursor) => api.call("GET", `/v1/api-keys${query({ cursor, limit: 100 })}`), [api])
  const channels = useLoad(() => api.call("GET", "/v1/channels?limit=100"), [api])
  const [form, setForm] = useState({ name: "", channel: "" })
  const [created, setCreated] = useState(null)
  const create = useAction(async (event) => {
    event.preventDefault()
    const body = {}
    if (form.name.trim() !== "") body.name = form.name.trim()
    if (form.channel !== "") body.channel_id = form.channel
    setCreated(await api.call("POST", "/v1/api-keys", body))
    setForm({ name: "", channel: "" })
    pages.reload()
  })
  const revoke = useAction(async (key) => {
    const own = key.id === me.key_id ? " It is the key this console is signed in with." : ""
    if (!confirmed(`Revoke the key ${key.prefix}…${key.last_four}? It stops working at once.${own}`)) return
    await api.call("DELETE", `/v1/api-keys/${key.id}`)
    pages.reload()
  })
  return html`<section aria-labelledby="keys-title">
    <h1 id="keys-title">API keys</h1>
    ${created ? html`<${ShownOnce} label="The new key." value=${created.key} />` : null}
    <form class="inline" onSubmit=${create.run}>
      <label for="key-name">Name</label>
      <input
        id="key-name"
        value=${form.name}
        onInput=${(e) => setForm({ ...form, name: e.target.value })}
        maxlength="100"
      />
      <label for="key-channel">Sees</label>
      <select
        id="key-channel"
        value=${form.channel}
        onChange=${(e) => setForm({ ...form, channel: e.target.value })}
      >
        <option value="">The whole customer</option>
        ${(channels.value?.data ?? []).map((channel) => html`<option value=${channel.id}>Only ${channel.name ?? channel.id}</option>`)}
      </select>
      <button type="submit" disabled=${create.busy}>Create key</button>
    </form>
    <${ErrorNote} error=${create.error} />
    <${ErrorNote} error=${revoke.error} />
    <${ErrorNote} error=${pages.error} />
    <${Table} caption="Keys" headers=${["Name", "Key", "Sees", "Created", "Last used", "Revoked", ""]}>
      ${pages.data.map(
        (key) =>
          html`<tr data-key=${key.id}>
            <td>
              ${key.name ?? "(unnamed)"}${key.id === me.key_id ? html` <small>(this console)</small>` : null}
            </td>
            <td><code>${key.prefix}…${key.last_four}</code></td>
            <td>${key.channel_id ?? "whole customer"}</td>
            <td>${formatTime(key.created_at)}</td>
            <td>${formatTime(key.last_used_at)}</td>
            <td>${formatTime(key.revoked_at)}</td>
            <td>
              ${key.revoked_at ? null : html`<button type="button" class="danger" onClick=${() => revoke.run(key)} disabled=${revoke.busy}>Revoke</button>`}
            </td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
  </section>`
}
