/**
 * A sorted string-keyed index stored as content-addressed chunks, in the
 * manner of a Prolly tree: entries are cut into nodes after every "boundary"
 * key (a key whose hash has its low bits zero at that level), so where a node
 * ends depends only on the keys it holds, never on their position. Two
 * versions share every node an edit did not touch, and a diff descends only
 * into subtrees whose hashes differ.
 *
 * Node encodings (one CBOR chunk each):
 * - leaf: `[0, keys, values]`
 * - inner: `[level, lastKeys, hashes, sizes, counts]` (each child's last key,
 *   chunk hash, chunk size and number of entries)
 *
 * @module
 */
import type { ChunkRef, ChunkStore } from "../../store/chunk_store.ts";
import { decodeValue, encodeValue } from "../../store/cbor.ts";

/** A stored tree: its root node, or null when it has no entries. */
export interface TreeRef {
  hash: string;
  size: number;
  level: number;
  count: number;
}

/** One key's difference between two versions. */
export interface TreeChange<V = unknown> {
  key: string;
  /** The value before, when the key existed. */
  before?: V;
  /** The value after, when the key exists. */
  after?: V;
}

/** An edit: a value to set, or `undefined` to delete the key. */
export type TreeEdit = [key: string, value: unknown];

type Leaf = [0, string[], unknown[]];
type Inner = [number, string[], string[], number[], number[]];
type Node = Leaf | Inner;

/** A child in a parent node: enough to rebuild the parent. */
interface Child {
  lastKey: string;
  hash: string;
  size: number;
  count: number;
}

/** A node to store, with what its parent needs. */
interface Spec {
  node: Node;
  lastKey: string;
  count: number;
}

/** Mean entries per node is 2^BITS. */
const BITS = 6;
const MASK = (1 << BITS) - 1;
const CACHE_LIMIT = 4096;
/** Node writes in flight at once. */
const WRITERS = 32;

/** Counts of what a writer stored. */
export interface WriteStats {
  /** Nodes newly stored (dedup hits excluded). */
  chunks: number;
  /** Bytes newly stored. */
  bytes: number;
}

function keyHash(key: string, level: number): number {
  // FNV-1a over UTF-16 code units, seeded by level, then a murmur-style finish.
  let h = (0x811c9dc5 ^ Math.imul(level + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isBoundary(key: string, level: number): boolean {
  return (keyHash(key, level) & MASK) === 0;
}

/** Reads and writes tree nodes in one chunk store, caching decoded nodes. */
export class TreeStore {
  readonly chunks: ChunkStore;
  readonly written: WriteStats = { chunks: 0, bytes: 0 };
  #cache = new Map<string, Node>();

  constructor(chunks: ChunkStore) {
    this.chunks = chunks;
  }

  async #load(hash: string): Promise<Node> {
    const cached = this.#cache.get(hash);
    if (cached !== undefined) return cached;
    const node = decodeValue<Node>(await this.chunks.get(hash));
    if (this.#cache.size >= CACHE_LIMIT) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(hash, node);
    return node;
  }

  async #put(node: Node, lastKey: string, count: number): Promise<Child> {
    const bytes = encodeValue(node);
    const put = await this.chunks.put(bytes);
    if (put.stored) {
      this.written.chunks++;
      this.written.bytes += put.size;
    }
    // Leaves hold the caller's objects: only decoded copies may be shared.
    if (node[0] !== 0) {
      if (this.#cache.size >= CACHE_LIMIT) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
      this.#cache.set(put.hash, node);
    }
    return { lastKey, hash: put.hash, size: put.size, count };
  }

  /** Store nodes, several at once: each write waits on its own fsyncs, which overlap. */
  async #putAll(
    nodes: Spec[],
  ): Promise<Child[]> {
    const out = new Array<Child>(nodes.length);
    let next = 0;
    const worker = async () => {
      while (next < nodes.length) {
        const i = next++;
        const { node, lastKey, count } = nodes[i]!;
        out[i] = await this.#put(node, lastKey, count);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(WRITERS, nodes.length) }, worker),
    );
    return out;
  }

  /** Cut sorted entries into leaves at boundary keys. */
  #cut(keys: string[], values: unknown[]): Spec[] {
    const nodes: Spec[] = [];
    let start = 0;
    for (let i = 0; i < keys.length; i++) {
      if (isBoundary(keys[i]!, 0) || i === keys.length - 1) {
        nodes.push({
          node: [0, keys.slice(start, i + 1), values.slice(start, i + 1)],
          lastKey: keys[i]!,
          count: i + 1 - start,
        });
        start = i + 1;
      }
    }
    return nodes;
  }

  async #leaves(keys: string[], values: unknown[]): Promise<Child[]> {
    return await this.#putAll(this.#cut(keys, values));
  }

  /** Build the inner levels over a level's nodes, up to one root. */
  async #root(children: Child[], level: number): Promise<TreeRef | null> {
    if (children.length === 0) return null;
    while (children.length > 1) {
      level++;
      const parents: Spec[] = [];
      let start = 0;
      for (let i = 0; i < children.length; i++) {
        if (
          isBoundary(children[i]!.lastKey, level) || i === children.length - 1
        ) {
          const group = children.slice(start, i + 1);
          parents.push({
            node: [
              level,
              group.map((c) => c.lastKey),
              group.map((c) => c.hash),
              group.map((c) => c.size),
              group.map((c) => c.count),
            ],
            lastKey: group.at(-1)!.lastKey,
            count: group.reduce((n, c) => n + c.count, 0),
          });
          start = i + 1;
        }
      }
      children = await this.#putAll(parents);
    }
    const root = children[0]!;
    return { hash: root.hash, size: root.size, level, count: root.count };
  }

  /**
   * Build a tree from entries (any order; later duplicates win).
   *
   * @param entries Key and value pairs.
   * @returns The tree.
   */
  async build(entries: Iterable<[string, unknown]>): Promise<TreeRef | null> {
    const map = new Map<string, unknown>();
    for (const [k, v] of entries) map.set(k, v);
    const keys = [...map.keys()].sort(compare);
    return await this.#root(
      await this.#leaves(keys, keys.map((k) => map.get(k))),
      0,
    );
  }

  /** Every leaf of a tree as a child entry, in key order (reads inner nodes only). */
  async #leafList(tree: TreeRef | null): Promise<Child[]> {
    if (tree === null) return [];
    if (tree.level === 0) {
      const node = await this.#load(tree.hash) as Leaf;
      return [{
        lastKey: node[1].at(-1)!,
        hash: tree.hash,
        size: tree.size,
        count: tree.count,
      }];
    }
    const out: Child[] = [];
    const walk = async (hash: string): Promise<void> => {
      const node = await this.#load(hash) as Inner;
      for (let i = 0; i < node[1].length; i++) {
        if (node[0] === 1) {
          out.push({
            lastKey: node[1][i]!,
            hash: node[2][i]!,
            size: node[3][i]!,
            count: node[4][i]!,
          });
        } else await walk(node[2][i]!);
      }
    };
    await walk(tree.hash);
    return out;
  }

  /**
   * Apply edits: rewrites only the leaves holding edited keys (and a
   * neighbour when a boundary key goes away), then the inner nodes above.
   *
   * @param tree The tree to edit.
   * @param edits Key and value pairs; a value of `undefined` deletes the key.
   * @returns The new tree.
   */
  async update(
    tree: TreeRef | null,
    edits: Iterable<TreeEdit>,
  ): Promise<TreeRef | null> {
    const byKey = new Map<string, unknown>();
    for (const [k, v] of edits) byKey.set(k, v);
    if (byKey.size === 0) return tree;
    const sorted = [...byKey.keys()].sort(compare);
    const leaves = await this.#leafList(tree);
    if (leaves.length === 0) {
      const keys = sorted.filter((k) => byKey.get(k) !== undefined);
      return await this.#root(
        await this.#leaves(keys, keys.map((k) => byKey.get(k))),
        0,
      );
    }
    // Which leaf each edit falls in: the first whose last key is >= it, else the last.
    const editsAt = new Map<number, string[]>();
    let li = 0;
    for (const key of sorted) {
      while (li < leaves.length - 1 && compare(leaves[li]!.lastKey, key) < 0) {
        li++;
      }
      let list = editsAt.get(li);
      if (list === undefined) editsAt.set(li, list = []);
      list.push(key);
    }
    // Unchanged leaves stay; each edited run of leaves becomes new leaves, all written at once.
    const parts: (Child | Spec[])[] = [];
    const fresh: Spec[] = [];
    let i = 0;
    while (i < leaves.length) {
      if (!editsAt.has(i)) {
        parts.push(leaves[i]!);
        i++;
        continue;
      }
      // Merge edited leaves with their successors until the entries end at a boundary.
      const keys: string[] = [];
      const values: unknown[] = [];
      let j = i;
      while (true) {
        const leaf = await this.#load(leaves[j]!.hash) as Leaf;
        mergeEdits(leaf[1], leaf[2], editsAt.get(j) ?? [], byKey, keys, values);
        j++;
        const last = keys.at(-1);
        if (j >= leaves.length) break;
        if (
          (last === undefined || isBoundary(last, 0)) && !editsAt.has(j)
        ) break;
      }
      const specs = this.#cut(keys, values);
      parts.push(specs);
      fresh.push(...specs);
      i = j;
    }
    const written = await this.#putAll(fresh);
    const out: Child[] = [];
    let w = 0;
    for (const part of parts) {
      if (Array.isArray(part)) {
        for (let k = 0; k < part.length; k++) out.push(written[w++]!);
      } else out.push(part);
    }
    return await this.#root(out, 0);
  }

  /**
   * The value of one key.
   *
   * @param tree The tree.
   * @param key The key.
   * @returns The value, or undefined.
   */
  async get(tree: TreeRef | null, key: string): Promise<unknown> {
    if (tree === null) return undefined;
    let node = await this.#load(tree.hash);
    while (node[0] !== 0) {
      const inner = node as Inner;
      const i = inner[1].findIndex((k) => compare(k, key) >= 0);
      if (i < 0) return undefined;
      node = await this.#load(inner[2][i]!);
    }
    const leaf = node as Leaf;
    const at = binarySearch(leaf[1], key);
    return at < 0 ? undefined : leaf[2][at];
  }

  /**
   * Entries with `from <= key < to`, in key order.
   *
   * @param tree The tree.
   * @param from Lowest key. Default: the first.
   * @param to Key past the last. Default: past the end.
   * @returns The entries.
   */
  async *entries(
    tree: TreeRef | null,
    from = "",
    to?: string,
  ): AsyncGenerator<[string, unknown]> {
    if (tree === null) return;
    const load = (hash: string) => this.#load(hash);
    async function* walk(hash: string): AsyncGenerator<[string, unknown]> {
      const node = await load(hash);
      if (node[0] === 0) {
        const leaf = node as Leaf;
        for (let i = 0; i < leaf[1].length; i++) {
          const k = leaf[1][i]!;
          if (compare(k, from) < 0) continue;
          if (to !== undefined && compare(k, to) >= 0) return;
          yield [k, leaf[2][i]];
        }
        return;
      }
      const inner = node as Inner;
      for (let i = 0; i < inner[1].length; i++) {
        if (compare(inner[1][i]!, from) < 0) continue;
        if (to !== undefined && i > 0 && compare(inner[1][i - 1]!, to) >= 0) {
          return;
        }
        yield* walk(inner[2][i]!);
      }
    }
    yield* walk(tree.hash);
  }

  /**
   * Every chunk a tree is made of (reads inner nodes only).
   *
   * @param tree The tree.
   * @returns The chunk references.
   */
  async refs(tree: TreeRef | null): Promise<ChunkRef[]> {
    if (tree === null) return [];
    const out: ChunkRef[] = [{ hash: tree.hash, size: tree.size }];
    const walk = async (hash: string): Promise<void> => {
      const node = await this.#load(hash) as Inner;
      for (let i = 0; i < node[1].length; i++) {
        out.push({ hash: node[2][i]!, size: node[3][i]! });
        if (node[0] > 1) await walk(node[2][i]!);
      }
    };
    if (tree.level > 0) await walk(tree.hash);
    return out;
  }

  /**
   * The keys whose values differ between two versions, in key order. Shared
   * subtrees are skipped without being read.
   *
   * @param a The old version.
   * @param b The new version.
   * @returns The changes.
   */
  async *diff(
    a: TreeRef | null,
    b: TreeRef | null,
  ): AsyncGenerator<TreeChange> {
    type Item =
      | { node: true; hash: string; level: number }
      | { node: false; key: string; value: unknown };
    // Each side is a stack whose top is its smallest remaining item.
    const left: Item[] = a === null
      ? []
      : [{ node: true, hash: a.hash, level: a.level }];
    const right: Item[] = b === null
      ? []
      : [{ node: true, hash: b.hash, level: b.level }];
    const expand = async (stack: Item[]) => {
      const top = stack.pop() as Item & { node: true };
      const node = await this.#load(top.hash);
      if (node[0] === 0) {
        const leaf = node as Leaf;
        for (let i = leaf[1].length - 1; i >= 0; i--) {
          stack.push({ node: false, key: leaf[1][i]!, value: leaf[2][i] });
        }
      } else {
        const inner = node as Inner;
        for (let i = inner[2].length - 1; i >= 0; i--) {
          stack.push({ node: true, hash: inner[2][i]!, level: inner[0] - 1 });
        }
      }
    };
    while (left.length > 0 || right.length > 0) {
      const x = left.at(-1);
      const y = right.at(-1);
      if (x?.node && y?.node) {
        if (x.hash === y.hash) {
          left.pop();
          right.pop();
        } else if (x.level > y.level) await expand(left);
        else if (y.level > x.level) await expand(right);
        else {
          await expand(left);
          await expand(right);
        }
        continue;
      }
      if (x?.node) {
        await expand(left);
        continue;
      }
      if (y?.node) {
        await expand(right);
        continue;
      }
      if (x === undefined) {
        right.pop();
        yield { key: y!.key, after: y!.value };
        continue;
      }
      if (y === undefined) {
        left.pop();
        yield { key: x.key, before: x.value };
        continue;
      }
      const order = compare(x.key, y.key);
      if (order < 0) {
        left.pop();
        yield { key: x.key, before: x.value };
      } else if (order > 0) {
        right.pop();
        yield { key: y.key, after: y.value };
      } else {
        left.pop();
        right.pop();
        if (!sameValue(x.value, y.value)) {
          yield { key: x.key, before: x.value, after: y.value };
        }
      }
    }
  }
}

/** Code-unit order, the order every tree uses. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether two values encode to the same bytes (plain data is compared without encoding). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === "number" && typeof b === "number") {
    return Number.isNaN(a) && Number.isNaN(b);
  }
  if (
    typeof a !== "object" || typeof b !== "object" || a === null || b === null
  ) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    for (const k of keys) {
      if (!Object.hasOwn(b, k) || !sameValue(a[k], b[k])) return false;
    }
    return true;
  }
  // Maps, typed arrays, dates: compare their encodings.
  const x = encodeValue(a);
  const y = encodeValue(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function isRecord(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function binarySearch(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compare(keys[mid]!, key);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Merge a leaf's sorted entries with sorted edits into `keys`/`values`. */
function mergeEdits(
  leafKeys: string[],
  leafValues: unknown[],
  edited: string[],
  byKey: Map<string, unknown>,
  keys: string[],
  values: unknown[],
): void {
  let i = 0;
  let e = 0;
  while (i < leafKeys.length || e < edited.length) {
    const lk = leafKeys[i];
    const ek = edited[e];
    if (ek === undefined || (lk !== undefined && compare(lk, ek) < 0)) {
      keys.push(lk!);
      values.push(leafValues[i]);
      i++;
      continue;
    }
    if (lk !== undefined && lk === ek) i++;
    const v = byKey.get(ek);
    if (v !== undefined) {
      keys.push(ek);
      values.push(v);
    }
    e++;
  }
}
