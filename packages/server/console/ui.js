// What every page of the console is made of.
import { createContext, h } from "preact"
import { useContext, useEffect, useMemo, useState } from "preact/hooks"
import htm from "htm"

export const html = htm.bind(h)

/** The signed-in session: `api`, `me` (GET /v1/me), and `live` (subscribe to events). */
export const Session = createContext(null)
export const useSession = () => useContext(Session)

/** An error from the API, said in its own words; nothing is swallowed. */
export const ErrorNote = ({ error }) =>
  error ? html`<p class="error" role="alert">${error.message ?? String(error)}</p>` : null

/**
 * `run` (which answers a promise) made safe to call at every live event: while one run is under way,
 * calls are folded into one more run after it.
 */
const coalesced = (run) => {
  let running = false
  let again = false
  const go = () => {
    if (running) {
      again = true
      return
    }
    running = true
    run().finally(() => {
      running = false
      if (again) {
        again = false
        go()
      }
    })
  }
  return go
}

/**
 * A value loaded by `load` (again when `deps` change, and on `reload()`): `{value, error, loading,
 * reload}`. A reload keeps the last value on screen until the new one arrives.
 */
export const useLoad = (load, deps) => {
  const [state, setState] = useState({ value: undefined, error: null, loading: true })
  const reload = useMemo(() => {
    let current = true
    const go = coalesced(() =>
      load().then(
        (value) => current && setState({ value, error: null, loading: false }),
        (error) => current && setState((previous) => ({ ...previous, error, loading: false }))
      )
    )
    go.stop = () => (current = false)
    return go
  }, deps)
  useEffect(() => {
    reload()
    return reload.stop
  }, [reload])
  return { ...state, reload }
}

/** Calls `onEvent` for each live event while the component is shown. */
export const useLiveEvents = (onEvent, deps) => {
  const { live } = useSession()
  useEffect(() => live.subscribe(onEvent), deps)
}

/**
 * An action run from a button or form: `run(...args)` resolves to its result, or to undefined after
 * showing its error; `busy` while it runs.
 */
export const useAction = (action) => {
  const [state, setState] = useState({ busy: false, error: null })
  const run = async (...args) => {
    setState({ busy: true, error: null })
    try {
      const result = await action(...args)
      setState({ busy: false, error: null })
      return result
    } catch (error) {
      setState({ busy: false, error })
      return undefined
    }
  }
  return { ...state, run }
}

export const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—")

/** A status as a coloured label (the word is always there: colour is not the only cue). */
export const Status = ({ value }) => html`<span class=${`status status-${value}`}>${value}</span>`

/** A secret shown this once, with a button to copy it. */
export const ShownOnce = ({ label, value }) => {
  const [copied, setCopied] = useState(false)
  const copy = async () => {
    await navigator.clipboard.writeText(value)
    setCopied(true)
  }
  return html`<div class="shown-once" role="status">
    <p><strong>${label}</strong> It is shown this once: store it now.</p>
    <code class="secret" data-testid="secret">${value}</code>
    <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
  </div>`
}

/** A table that scrolls sideways on a narrow screen rather than squeezing its columns. */
export const Table = ({ caption, headers, children, empty }) =>
  html`<div class="table-wrap">
    <table>
      <caption>
        ${caption}
      </caption>
      <thead>
        <tr>
          ${headers.map((header) => html`<th scope="col">${header}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${children}
      </tbody>
    </table>
    ${empty ? html`<p class="empty">${empty}</p>` : null}
  </div>`

/** A cursor-paginated list: its first page, `reload()` it, `more()` for the next one. */
export const usePages = (fetchPage, deps) => {
  const [pages, setPages] = useState({ data: [], next: null, error: null, loading: true })
  const loaders = useMemo(() => {
    let current = true
    const settle = (cursor) => (page) =>
      current &&
      setPages((previous) => ({
        data: cursor ? [...previous.data, ...page.data] : page.data,
        next: page.next_cursor,
        error: null,
        loading: false
      }))
    const failed = (error) => current && setPages((previous) => ({ ...previous, error, loading: false }))
    return {
      reload: coalesced(() => fetchPage(undefined).then(settle(undefined), failed)),
      more: (cursor) => fetchPage(cursor).then(settle(cursor), failed),
      stop: () => (current = false)
    }
  }, deps)
  useEffect(() => {
    loaders.reload()
    return loaders.stop
  }, [loaders])
  return { ...pages, reload: loaders.reload, more: () => loaders.more(pages.next) }
}

export const MoreButton = ({ pages }) =>
  pages.next ? html`<button type="button" onClick=${pages.more}>Load more</button>` : null

/** Asks before something that cannot be undone. */
export const confirmed = (question) => window.confirm(question)
