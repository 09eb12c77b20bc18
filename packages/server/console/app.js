// The console: sign in with an API key, then channels, messages, webhooks, keys and the audit log,
// kept current by the live event stream (GET /v1/events/stream).
import { render } from "preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import { apiWith } from "./api.js"
import { AuditPage } from "./pages/audit.js"
import { ChannelPage } from "./pages/channel.js"
import { ChannelsPage } from "./pages/channels.js"
import { KeysPage } from "./pages/keys.js"
import { MessagesPage } from "./pages/messages.js"
import { WebhookPage, WebhooksPage } from "./pages/webhooks.js"
import { ErrorNote, html, Session } from "./ui.js"

const keyStorage = "whatisup.api_key"

/** The page the address names: `#/channels/ch_.../messages` → `{page: "messages", id: "ch_..."}`. */
const routeOf = (hash) => {
  const [section = "", id, sub] = hash.replace(/^#\/?/, "").split("/")
  if (section === "channels" && id) return { page: sub === "messages" ? "messages" : "channel", id }
  if (section === "webhooks" && id) return { page: "webhook", id }
  if (["channels", "webhooks", "keys", "audit"].includes(section)) return { page: section }
  return { page: "home" }
}

const useRoute = () => {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const changed = () => setHash(location.hash)
    addEventListener("hashchange", changed)
    return () => removeEventListener("hashchange", changed)
  }, [])
  return routeOf(hash)
}

/** One live stream for the session, fanned out to the pages that listen. */
const useLiveStream = (api) => {
  const [state, setState] = useState({ live: false, error: null })
  const listeners = useMemo(() => new Set(), [api])
  useEffect(() => {
    const stop = new AbortController()
    api.stream("/v1/events/stream", {
      signal: stop.signal,
      onState: setState,
      onEvent: (event) => listeners.forEach((listener) => listener(event))
    })
    return () => stop.abort()
  }, [api])
  const live = useMemo(
    () => ({
      subscribe: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    }),
    [listeners]
  )
  return { live, state }
}

const SignIn = ({ onSignedIn }) => {
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const submit = async (event) => {
    event.preventDefault()
    const key = new FormData(event.target).get("key").trim()
    setBusy(true)
    setError(null)
    try {
      const api = apiWith(key)
      const me = await api.call("GET", "/v1/me")
      sessionStorage.setItem(keyStorage, key)
      onSignedIn({ api, me })
    } catch (failure) {
      setError(failure)
    } finally {
      setBusy(false)
    }
  }
  return html`<main class="sign-in">
    <h1>WhatIsUp console</h1>
    <form onSubmit=${submit}>
      <label for="key">API key</label>
      <input id="key" name="key" type="password" autocomplete="off" required placeholder="wiu_…" />
      <p class="hint">The key stays in this tab only (session storage) and goes to this gateway alone.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      <${ErrorNote} error=${error} />
    </form>
  </main>`
}

const Shell = ({ session, onSignOut }) => {
  const route = useRoute()
  const { live, state } = useLiveStream(session.api)
  const bound = session.me.channel_id
  const value = useMemo(() => ({ ...session, live }), [session, live])
  useEffect(() => {
    if (route.page === "home") location.hash = bound ? `#/channels/${bound}` : "#/channels"
  }, [route.page])
  const links = [
    ["channels", bound ? `#/channels/${bound}` : "#/channels", bound ? "Channel" : "Channels"],
    ["webhooks", "#/webhooks", "Webhooks"],
    ...(bound ? [] : [["keys", "#/keys", "API keys"]]),
    ["audit", "#/audit", "Audit log"]
  ]
  const section = { channel: "channels", messages: "channels", webhook: "webhooks" }[route.page] ?? route.page
  const page = {
    channels: () => html`<${ChannelsPage} />`,
    channel: () => html`<${ChannelPage} id=${route.id} />`,
    messages: () => html`<${MessagesPage} channelId=${route.id} />`,
    webhooks: () => html`<${WebhooksPage} />`,
    webhook: () => html`<${WebhookPage} id=${route.id} />`,
    keys: () => html`<${KeysPage} />`,
    audit: () => html`<${AuditPage} />`,
    home: () => null
  }[route.page]
  return html`<${Session.Provider} value=${value}>
    <header>
      <span class="brand">WhatIsUp</span>
      <nav aria-label="Console">
        ${links.map(
          ([name, href, label]) =>
            html`<a href=${href} aria-current=${section === name ? "page" : undefined}>${label}</a>`
        )}
      </nav>
      <span
        class=${state.live ? "live on" : "live"}
        role="status"
        aria-live="polite"
        title=${state.error ?? ""}
      >
        ${state.live ? "Live" : "Not live"}
      </span>
      <span class="who">${session.me.customer.name}${bound ? ` · ${bound}` : ""}</span>
      <button type="button" class="link" onClick=${onSignOut}>Sign out</button>
    </header>
    ${state.error && !state.live ? html`<p class="error" role="alert">${state.error}</p>` : null}
    <main>${page()}</main>
  <//>`
}

const App = () => {
  const [session, setSession] = useState(null)
  const [restoring, setRestoring] = useState(() => sessionStorage.getItem(keyStorage) !== null)
  useEffect(() => {
    const key = sessionStorage.getItem(keyStorage)
    if (key === null) return
    const api = apiWith(key)
    api
      .call("GET", "/v1/me")
      .then(
        (me) => setSession({ api, me }),
        () => sessionStorage.removeItem(keyStorage)
      )
      .finally(() => setRestoring(false))
  }, [])
  const signOut = () => {
    sessionStorage.removeItem(keyStorage)
    setSession(null)
    location.hash = ""
  }
  if (restoring) return html`<p class="loading">Signing in…</p>`
  return session
    ? html`<${Shell} session=${session} onSignOut=${signOut} />`
    : html`<${SignIn} onSignedIn=${setSession} />`
}

const root = document.getElementById("app")
root.textContent = ""
render(html`<${App} />`, root)
