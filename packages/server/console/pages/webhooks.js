// Webhook endpoints: create (the secret shown once), rotate, test, disable, delete; and each one's
// deliveries with their attempts, redelivered one by one or recovered together.
import { useState } from "preact/hooks"
import { query } from "../api.js"
import {
  confirmed,
  ErrorNote,
  formatTime,
  html,
  MoreButton,
  ShownOnce,
  Status,
  Table,
  useAction,
  useLiveEvents,
  useLoad,
  usePages,
  useSession
} from "../ui.js"

const eventTypes = [
  "message.received",
  "message.sent",
  "message.delivered",
  "message.read",
  "message.failed",
  "channel.qr",
  "channel.connected",
  "channel.disconnected",
  "channel.logged_out",
  "channel.failed",
  "webhook.test",
  "webhook.disabled"
]

const CreateEndpoint = ({ onCreated }) => {
  const { api, me } = useSession()
  const channels = useLoad(
    () => (me.channel_id ? Promise.resolve({ data: [] }) : api.call("GET", "/v1/channels?limit=100")),
    [api]
  )
  const [form, setForm] = useState({ url: "", description: "", channel: me.channel_id ?? "", types: [] })
  const set = (field) => (event) => setForm({ ...form, [field]: event.target.value })
  const toggle = (type) =>
    setForm({
      ...form,
      types: form.types.includes(type) ? form.types.filter((t) => t !== type) : [...form.types, type]
    })
  const create = useAction(async (event) => {
    event.preventDefault()
    const body = { url: form.url.trim() }
    if (form.description.trim() !== "") body.description = form.description.trim()
    if (form.types.length > 0) body.event_types = form.types
    const path = form.channel === "" ? "/v1/webhooks" : `/v1/channels/${form.channel}/webhooks`
    onCreated(await api.call("POST", path, body))
    setForm({ ...form, url: "", description: "", types: [] })
  })
  return html`<form class="stack" onSubmit=${create.run}>
    <h2>New endpoint</h2>
    <label for="webhook-url">URL</label>
    <input
      id="webhook-url"
      type="url"
      value=${form.url}
      onInput=${set("url")}
      placeholder="https://example.com/whatsapp/events"
      required
    />
    <label for="webhook-description">Description (optional)</label>
    <input id="webhook-description" value=${form.description} onInput=${set("description")} />
    ${
      me.channel_id
        ? null
        : html`<label for="webhook-channel">Events of</label>
            <select id="webhook-channel" value=${form.channel} onChange=${set("channel")}>
              <option value="">Every channel, present and future</option>
              ${(channels.value?.data ?? []).map((channel) => html`<option value=${channel.id}>${channel.name ?? channel.id}</option>`)}
            </select>`
    }
    <fieldset>
      <legend>Event types (none ticked: all of them)</legend>
      <div class="checks">
        ${eventTypes.map(
          (type) =>
            html`<label
              ><input type="checkbox" checked=${form.types.includes(type)} onChange=${() => toggle(type)} />
              ${type}</label
            >`
        )}
      </div>
    </fieldset>
    <button type="submit" disabled=${create.busy}>Create endpoint</button>
    <${ErrorNote} error=${create.error} />
  </form>`
}

export const WebhooksPage = () => {
  const { api, me } = useSession()
  const listPath = me.channel_id ? `/v1/channels/${me.channel_id}/webhooks` : "/v1/webhooks"
  const pages = usePages(
    (cursor) => api.call("GET", `${listPath}${query({ cursor, limit: 100 })}`),
    [api, listPath]
  )
  const [created, setCreated] = useState(null)
  return html`<section aria-labelledby="webhooks-title">
    <h1 id="webhooks-title">Webhooks</h1>
    ${
      created
        ? html`<${ShownOnce} label=${`Signing secret of ${created.url}.`} value=${created.secret} />`
        : null
    }
    <${ErrorNote} error=${pages.error} />
    <${Table}
      caption="Endpoints"
      headers=${["URL", "Status", "Channel", "Event types", "Created"]}
      empty=${!pages.loading && pages.data.length === 0 ? "No endpoints yet." : null}
    >
      ${pages.data.map(
        (endpoint) =>
          html`<tr data-webhook=${endpoint.id}>
            <td>
              <a href=${`#/webhooks/${endpoint.id}`}>${endpoint.url}</a
              >${endpoint.description ? html`<br /><small>${endpoint.description}</small>` : null}
            </td>
            <td>
              <${Status}
                value=${endpoint.status}
              />${endpoint.disabled_reason ? html` <small>${endpoint.disabled_reason}</small>` : null}
            </td>
            <td>${endpoint.channel_id ?? "every channel"}</td>
            <td>${endpoint.event_types.length === 0 ? "all" : endpoint.event_types.join(", ")}</td>
            <td>${formatTime(endpoint.created_at)}</td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
    <${CreateEndpoint}
      onCreated=${(endpoint) => {
        setCreated(endpoint)
        pages.reload()
      }}
    />
  </section>`
}

/** A delivery's attempts, loaded when asked for. */
const Attempts = ({ id }) => {
  const { api } = useSession()
  const [delivery, setDelivery] = useState(null)
  const load = useAction(async () => setDelivery(await api.call("GET", `/v1/deliveries/${id}`)))
  if (!delivery)
    return html`<button type="button" class="link" onClick=${() => load.run()}>Attempts</button
      ><${ErrorNote} error=${load.error} />`
  return html`<ol class="history">
    ${delivery.attempt_log.map(
      (attempt) =>
        html`<li>
          ${[
            `#${attempt.attempt}`,
            formatTime(attempt.attempted_at),
            attempt.status_code ?? attempt.error_type,
            `${attempt.duration_ms} ms`
          ].join(" · ")}
          ${attempt.error_detail ? html`<br /><small>${attempt.error_detail}</small>` : null}
          ${attempt.response ? html`<br /><code class="excerpt">${attempt.response}</code>` : null}
        </li>`
    )}
  </ol>`
}

const Deliveries = ({ endpointId }) => {
  const { api } = useSession()
  const pages = usePages(
    (cursor) => api.call("GET", `/v1/webhooks/${endpointId}/deliveries${query({ cursor, limit: 50 })}`),
    [api, endpointId]
  )
  // deliveries are not events: new ones follow the events they carry
  useLiveEvents(() => setTimeout(pages.reload, 500), [pages.reload])
  const redeliver = useAction(async (id) => {
    await api.call("POST", `/v1/deliveries/${id}/redeliver`)
    pages.reload()
  })
  const [since, setSince] = useState("")
  const [requeued, setRequeued] = useState(null)
  const recover = useAction(async (event) => {
    event.preventDefault()
    const answer = await api.call("POST", `/v1/webhooks/${endpointId}/recover`, {
      since: new Date(since).toISOString()
    })
    setRequeued(answer.requeued)
    pages.reload()
  })
  return html`<section aria-labelledby="deliveries-title">
    <h2 id="deliveries-title">Deliveries</h2>
    <button type="button" onClick=${pages.reload}>Refresh</button>
    <${ErrorNote} error=${pages.error} />
    <${ErrorNote} error=${redeliver.error} />
    <${Table}
      caption="Deliveries, newest first"
      headers=${["Created", "Event", "Status", "Attempts", "Next attempt", ""]}
      empty=${!pages.loading && pages.data.length === 0 ? "Nothing delivered yet." : null}
    >
      ${pages.data.map(
        (delivery) =>
          html`<tr data-delivery=${delivery.id}>
            <td>${formatTime(delivery.created_at)}</td>
            <td>
              ${delivery.event_type}<br /><small><code>${delivery.event_id}</code></small>
            </td>
            <td data-testid="delivery-status"><${Status} value=${delivery.status} /></td>
            <td>${delivery.attempts} <${Attempts} id=${delivery.id} /></td>
            <td>${formatTime(delivery.next_attempt_at)}</td>
            <td>
              <button type="button" onClick=${() => redeliver.run(delivery.id)} disabled=${redeliver.busy}>
                Redeliver
              </button>
            </td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
    <form class="inline" onSubmit=${recover.run}>
      <label for="recover-since">Send again every failed delivery since</label>
      <input
        id="recover-since"
        type="datetime-local"
        value=${since}
        onInput=${(e) => setSince(e.target.value)}
        required
      />
      <button type="submit" disabled=${recover.busy}>Recover</button>
    </form>
    ${requeued === null ? null : html`<p role="status">${requeued} deliveries queued again.</p>`}
    <${ErrorNote} error=${recover.error} />
  </section>`
}

export const WebhookPage = ({ id }) => {
  const { api } = useSession()
  const endpoint = useLoad(() => api.call("GET", `/v1/webhooks/${id}`), [api, id])
  const [secret, setSecret] = useState(null)
  const [tested, setTested] = useState(false)
  const act = useAction(async (operation) => {
    switch (operation) {
      case "test":
        await api.call("POST", `/v1/webhooks/${id}/test`)
        setTested(true)
        return
      case "rotate":
        if (!confirmed("Rotate the signing secret? The current one keeps signing for 24 hours.")) return
        setSecret((await api.call("POST", `/v1/webhooks/${id}/rotate-secret`, {})).secret)
        break
      case "enable":
      case "disable":
        await api.call("PATCH", `/v1/webhooks/${id}`, { enabled: operation === "enable" })
        break
      case "delete":
        if (!confirmed("Delete this endpoint? Nothing more will be posted to it.")) return
        await api.call("DELETE", `/v1/webhooks/${id}`)
        location.hash = "#/webhooks"
        return
    }
    endpoint.reload()
  })
  const current = endpoint.value
  if (current === undefined)
    return html`<${ErrorNote}
        error=${endpoint.error}
      />${endpoint.error ? null : html`<p class="loading">Loading…</p>`}`
  return html`<section aria-labelledby="webhook-title">
    <p class="crumbs"><a href="#/webhooks">Webhooks</a> /</p>
    <h1 id="webhook-title">${current.url}</h1>
    ${secret ? html`<${ShownOnce} label="The new signing secret." value=${secret} />` : null}
    <dl class="facts">
      <dt>Status</dt>
      <dd>
        <${Status}
          value=${current.status}
        />${current.disabled_reason ? html` <small>${current.disabled_reason}</small>` : null}
      </dd>
      <dt>Events of</dt>
      <dd>${current.channel_id ?? "every channel"}</dd>
      <dt>Event types</dt>
      <dd>${current.event_types.length === 0 ? "all" : current.event_types.join(", ")}</dd>
      <dt>Failing since</dt>
      <dd>${formatTime(current.failing_since)}</dd>
      <dt>Previous secret signs until</dt>
      <dd>${formatTime(current.previous_secret_expires_at)}</dd>
      <dt>Id</dt>
      <dd><code>${current.id}</code></dd>
    </dl>
    <div class="actions">
      <button type="button" onClick=${() => act.run("test")} disabled=${act.busy}>Send a test event</button>
      <button type="button" onClick=${() => act.run("rotate")} disabled=${act.busy}>Rotate secret</button>
      ${
        current.status === "disabled"
          ? html`<button type="button" onClick=${() => act.run("enable")} disabled=${act.busy}>
              Enable
            </button>`
          : html`<button type="button" onClick=${() => act.run("disable")} disabled=${act.busy}>
              Disable
            </button>`
      }
      <button type="button" class="danger" onClick=${() => act.run("delete")} disabled=${act.busy}>
        Delete
      </button>
    </div>
    ${tested ? html`<p role="status">A webhook.test event is on its way: see its delivery below.</p>` : null}
    <${ErrorNote} error=${act.error} />
    <${Deliveries} endpointId=${id} />
  </section>`
}
