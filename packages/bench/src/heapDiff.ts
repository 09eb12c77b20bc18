/**
 * What grew between two V8 heap snapshots of the same process (taken minutes apart under the same
 * load, e.g. with `--heapsnapshot-signal=SIGUSR2`): self size and count by kind and constructor, and
 * the retainer chains of a few objects of the kind asked for.
 *
 *   node packages/bench/src/heapDiff.ts before.heapsnapshot after.heapsnapshot [constructor] [chains]
 */
import * as fs from "node:fs"

interface Snapshot {
  readonly nodeFields: number
  readonly edgeFields: number
  readonly nodes: ReadonlyArray<number>
  readonly edges: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
  readonly nodeTypes: ReadonlyArray<string>
  readonly edgeTypes: ReadonlyArray<string>
  /** Index in `edges` of each node's first edge. */
  readonly firstEdge: Int32Array
  readonly count: number
}

const read = (file: string): Snapshot => {
  const json = JSON.parse(fs.readFileSync(file, "utf8"))
  const meta = json.snapshot.meta
  const nodeFields = meta.node_fields.length
  const edgeFields = meta.edge_fields.length
  const count = json.nodes.length / nodeFields
  const firstEdge = new Int32Array(count + 1)
  const edgeCountAt = meta.node_fields.indexOf("edge_count")
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e
    e += json.nodes[i * nodeFields + edgeCountAt] * edgeFields
    firstEdge[i + 1] = e
  }
  return {
    nodeFields,
    edgeFields,
    nodes: json.nodes,
    edges: json.edges,
    strings: json.strings,
    nodeTypes: meta.node_types[0],
    edgeTypes: meta.edge_types[0],
    firstEdge,
    count
  }
}

// node fields: type, name, id, self_size, edge_count, detachedness (trace_node_id on older V8)
const typeOf = (s: Snapshot, i: number) => s.nodeTypes[s.nodes[i * s.nodeFields]!]!
const nameOf = (s: Snapshot, i: number) => s.strings[s.nodes[i * s.nodeFields + 1]!]!
const sizeOf = (s: Snapshot, i: number) => s.nodes[i * s.nodeFields + 3]!

/** The name a node is grouped under: constructor for objects, the kind for strings, code and arrays. */
const kindOf = (s: Snapshot, i: number) => {
  const type = typeOf(s, i)
  if (type === "object" || type === "closure" || type === "native") return `${type} ${nameOf(s, i)}`
  if (type === "hidden" || type === "array" || type === "object shape") {
    return `${type} ${nameOf(s, i).slice(0, 60)}`
  }
  return type
}

const totals = (s: Snapshot) => {
  const byKind = new Map<string, { count: number; size: number }>()
  for (let i = 0; i < s.count; i++) {
    const kind = kindOf(s, i)
    const entry = byKind.get(kind) ?? { count: 0, size: 0 }
    entry.count++
    entry.size += sizeOf(s, i)
    byKind.set(kind, entry)
  }
  return byKind
}

/** For each node, the nodes that hold it (weak edges left out), as [holder, edge name] pairs. */
const retainersOf = (s: Snapshot) => {
  const holders: Array<Array<[number, string]>> = Array.from({ length: s.count }, () => [])
  for (let i = 0; i < s.count; i++) {
    for (let e = s.firstEdge[i]!; e < s.firstEdge[i + 1]!; e += s.edgeFields) {
      const type = s.edgeTypes[s.edges[e]!]!
      if (type === "weak") continue
      const nameOrIndex = s.edges[e + 1]!
      const name = type === "element" || type === "hidden" ? `[${nameOrIndex}]` : s.strings[nameOrIndex]!
      holders[s.edges[e + 2]! / s.nodeFields]!.push([i, name])
    }
  }
  return holders
}

/** The shortest chain from a GC root to node `target` (root first), walking retainers breadth-first. */
const chainTo = (s: Snapshot, holders: ReadonlyArray<ReadonlyArray<[number, string]>>, target: number) => {
  const via = new Map<number, [number, string]>()
  const queue = [target]
  via.set(target, [-1, ""])
  for (let q = 0; q < queue.length && queue.length < 2_000_000; q++) {
    const node = queue[q]!
    if (node === 0 || typeOf(s, node) === "synthetic") {
      const chain: Array<string> = []
      for (let at = node; at !== target;) {
        const [next, edge] = via.get(at)!
        chain.push(`${kindOf(s, at)} .${edge}`)
        at = next
      }
      chain.push(kindOf(s, target))
      return chain
    }
    for (const [holder, edge] of holders[node]!) {
      if (!via.has(holder)) {
        via.set(holder, [node, edge])
        queue.push(holder)
      }
    }
  }
  return undefined
}

const [beforeFile, afterFile, wanted, chainCount = "5"] = process.argv.slice(2)
if (beforeFile === undefined || afterFile === undefined) {
  console.error("usage: heapDiff.ts before.heapsnapshot after.heapsnapshot [kind] [chains]")
  process.exit(2)
}
const beforeSnapshot = read(beforeFile)
const before = totals(beforeSnapshot)
const beforeIds = new Set<number>()
for (let i = 0; i < beforeSnapshot.count; i++)
  beforeIds.add(beforeSnapshot.nodes[i * beforeSnapshot.nodeFields + 2]!)
const after = read(afterFile)
const afterTotals = totals(after)
const rows = [...afterTotals.entries()]
  .map(([kind, { count, size }]) => ({
    kind,
    count: count - (before.get(kind)?.count ?? 0),
    kb: Math.round((size - (before.get(kind)?.size ?? 0)) / 1024),
    total_kb: Math.round(size / 1024)
  }))
  .sort((x, y) => y.kb - x.kb)
console.log("grew most (self size):")
for (const row of rows.slice(0, 40)) {
  console.log(`  ${String(row.kb).padStart(8)} KB  ${String(row.count).padStart(8)} more  ${row.kind}`)
}
console.log("grew most (count):")
for (const row of [...rows].sort((x, y) => y.count - x.count).slice(0, 25)) {
  console.log(`  ${String(row.count).padStart(8)} more  ${String(row.kb).padStart(8)} KB  ${row.kind}`)
}

if (wanted !== undefined) {
  const holders = retainersOf(after)
  // ids are stable within one process: the objects of the kind that are not in the first snapshot
  const fresh: Array<number> = []
  for (let i = 0; i < after.count; i++) {
    if (kindOf(after, i) === wanted && !beforeIds.has(after.nodes[i * after.nodeFields + 2]!)) fresh.push(i)
  }
  const byHolder = new Map<number, number>()
  for (const node of fresh) {
    for (const [holder] of holders[node]!) byHolder.set(holder, (byHolder.get(holder) ?? 0) + 1)
  }
  const byHolderKind = new Map<string, number>()
  for (const [holder, n] of byHolder) {
    const kind = kindOf(after, holder)
    byHolderKind.set(kind, (byHolderKind.get(kind) ?? 0) + n)
  }
  console.log(`\n${fresh.length} new nodes of ${wanted}; their holders by kind:`)
  for (const [kind, n] of [...byHolderKind].sort((x, y) => y[1] - x[1]).slice(0, 15)) {
    console.log(`  ${String(n).padStart(8)}  ${kind}`)
  }
  const top = [...byHolder].sort((x, y) => y[1] - x[1]).slice(0, Number(chainCount))
  for (const [holder, n] of top) {
    console.log(
      `\n  holder of ${n} (${kindOf(after, holder)}, self ${sizeOf(after, holder)} B), from a root:`
    )
    for (const link of chainTo(after, holders, holder) ?? ["(no path to a root)"]) console.log(`    ${link}`)
  }
  const step = Math.max(1, Math.floor(fresh.length / Number(chainCount)))
  for (let k = 0; k < fresh.length && k / step < Number(chainCount); k += step) {
    console.log(`\n  new #${k}, from a root:`)
    for (const link of chainTo(after, holders, fresh[k]!) ?? ["(no path to a root)"])
      console.log(`    ${link}`)
  }
}
