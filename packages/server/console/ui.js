// What every page of the console is made of.
import { createContext, h } from "preact"
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks"
import htm from "htm"

export const html = htm.bind(h)

/** The signed-in session: `api`, `me` (GET /v1/me), and `live` (subscribe to events). */
export const Session = createContext(null)
export const useSession = () => useContext(Session)

/** An error from the API, said in its own words; nothing is swallowed. */
export const ErrorNote = ({ error }) =>
  error ? html`<p class="error" role="alert">${error.message ?? String(error)}</p>` : null

/**
 * A value loaded by `load` (again when `deps` change, and on `reload()`): `{value, error, loading,
 * reload}`. A reload keeps the last value on screen until the new one arrives.
 */
export const useLoad = (load, deps) => {
  const [state, setState] = useState({ value: undefined, error: null, loading: true })
  const generation = useRef(0)
  const reload = useCallback(() => {
    const mine = ++generation.current
    setState((previous) => ({ ...previous, loading: true }))
    load().then(
      (value) => mine === generation.current && setState({ value, error: null, loading: false }),
      (error) =>
        mine === generation.current && setState((previous) => ({ ...previous, error, loading: false }))
    )
  }, deps)
  useEffect(reload, [reload])
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

/** "Load more" for a cursor-paginated list. */
export const usePages = (fetchPage, deps) => {
  const [pages, setPages] = useState({ data: [], next: null, error: null, loading: true })
  const generation = useRef(0)
  const load = useCallback((cursor) => {
    const mine = ++generation.current
    fetchPage(cursor).then(
      (page) =>
        mine === generation.current &&
        setPages((previous) => ({
          data: cursor ? [...previous.data, ...page.data] : page.data,
          next: page.next_cursor,
          error: null,
          loading: false
        })),
      (error) =>
        mine === generation.current && setPages((previous) => ({ ...previous, error, loading: false }))
    )
  }, deps)
  useEffect(() => load(undefined), [load])
  return { ...pages, reload: () => load(undefined), more: () => load(pages.next) }
}

export const MoreButton = ({ pages }) =>
  pages.next ? html`<button type="button" onClick=${pages.more}>Load more</button>` : null

/** Asks before something that cannot be undone. */
export const confirmed = (question) => window.confirm(question)
