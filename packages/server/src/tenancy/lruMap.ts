/**
 * A map of at most `capacity` entries that forgets the least recently used one to make room: memory
 * stays bounded whatever keys arrive. Relies on `Map` keeping insertion order.
 */
export const makeLruMap = <K, V>(capacity: number) => {
  const entries = new Map<K, V>()
  return {
    /** The value, now the most recently used. */
    get: (key: K) => {
      const value = entries.get(key)
      if (value !== undefined) {
        entries.delete(key)
        entries.set(key, value)
      }
      return value
    },
    has: (key: K) => entries.has(key),
    set: (key: K, value: V) => {
      entries.delete(key)
      entries.set(key, value)
      if (entries.size > capacity) entries.delete(entries.keys().next().value as K)
    },
    delete: (key: K) => void entries.delete(key),
    clear: () => entries.clear(),
    entries: () => entries.entries(),
    get size() {
      return entries.size
    }
  }
}
