// The audit log: every change made by the customer, the operator or the gateway, newest first.
import { useState } from "preact/hooks"
import { query } from "../api.js"
import { ErrorNote, formatTime, html, MoreButton, Table, usePages, useSession } from "../ui.js"

export const AuditPage = () => {
  const { api } = useSession()
  const [filter, setFilter] = useState({ resource_type: "", resource_id: "" })
  const [applied, setApplied] = useState(filter)
  const pages = usePages(
    (cursor) => api.call("GET", `/v1/audit-events${query({ ...applied, cursor, limit: 50 })}`),
    [api, applied]
  )
  const apply = (event) => {
    event.preventDefault()
    setApplied({ ...filter })
  }
  return html`<section aria-labelledby="audit-title">
    <h1 id="audit-title">Audit log</h1>
    <form class="inline" onSubmit=${apply}>
      <label for="audit-type">Resource type</label>
      <input
        id="audit-type"
        value=${filter.resource_type}
        onInput=${(e) => setFilter({ ...filter, resource_type: e.target.value })}
        placeholder="channel"
      />
      <label for="audit-id">Resource id</label>
      <input
        id="audit-id"
        value=${filter.resource_id}
        onInput=${(e) => setFilter({ ...filter, resource_id: e.target.value })}
        placeholder="ch_…"
      />
      <button type="submit">Filter</button>
    </form>
    <${ErrorNote} error=${pages.error} />
    <${Table}
      caption="Audit events, newest first"
      headers=${["When", "Actor", "Action", "Resource", "Request"]}
      empty=${!pages.loading && pages.data.length === 0 ? "Nothing recorded." : null}
    >
      ${pages.data.map(
        (entry) =>
          html`<tr>
            <td>${formatTime(entry.created_at)}</td>
            <td>${entry.actor.type ?? ""} ${entry.actor.id ? html`<code>${entry.actor.id}</code>` : null}</td>
            <td>${entry.action}</td>
            <td>${entry.resource_type} <code>${entry.resource_id}</code></td>
            <td><small>${entry.request_id ?? "—"}</small></td>
          </tr>`
      )}
    <//>
    <${MoreButton} pages=${pages} />
  </section>`
}
