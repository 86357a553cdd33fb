/**
 * Graphs built from exact kNN results: directed, union and mutual kNN
 * graphs as edge lists, and shared-nearest-neighbour (SNN) graphs.
 *
 * @module
 */

import type { KnnBlock } from "./search.ts";

/**
 * How directed kNN edges become graph edges.
 *
 * - `"none"`: the directed graph, exactly `rows × k` edges in row order.
 * - `"union"`: an undirected edge {i, j} when j is among i's neighbours or i
 *   among j's.
 * - `"mutual"`: an undirected edge {i, j} when each is among the other's
 *   neighbours.
 */
export type Symmetrize = "none" | "union" | "mutual";

/** Options for {@linkcode knnGraph}. */
export interface KnnGraphOptions {
  /** How to symmetrise. Defaults to `"none"`. */
  symmetrize?: Symmetrize;
}

/** Options for {@linkcode snnGraph}. */
export interface SnnGraphOptions {
  /** Smallest weight (shared neighbours) that makes an edge. Defaults to `1`. */
  minShared?: number;
}

/** Edges with their distances (inner products for the `ip` metric). */
export interface EdgeList {
  /** Source rows. */
  from: Int32Array;
  /** Target rows. */
  to: Int32Array;
  /** Edge distances, float32. */
  distance: Float32Array;
}

/** Shared-nearest-neighbour edges with their weights. */
export interface SnnEdgeList {
  /** The lower row of each pair. */
  from: Int32Array;
  /** The higher row of each pair. */
  to: Int32Array;
  /** Shared neighbours, counting the two rows themselves; see {@linkcode snnGraph}. */
  weight: Int32Array;
}

/**
 * Builds a kNN graph edge list from a kNN result.
 *
 * Rows are named by their global index (`result.start + i`). For `"union"`
 * and `"mutual"`, each undirected edge appears once with `from < to`, edges
 * are sorted by `from` then `to`, self-loops (from an include-self search)
 * are dropped, and an edge found in both directions keeps the smaller
 * distance (the larger inner product for `ip`); exact distances are
 * symmetric, so both directions normally agree.
 *
 * @param result A kNN result, usually of a whole self-search.
 * @param options The symmetrisation.
 * @returns The edges.
 * @throws {RangeError} If a neighbour index is negative (a missing neighbour).
 * @throws {TypeError} On an unknown `symmetrize` value.
 *
 * @example Directed, union and mutual graphs
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { searchKnn } from "./search.ts";
 * import { knnGraph } from "./graph.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 5, 6, 20]), 1);
 * const knn = searchKnn(prepareReference(m, "euclidean"), m, { k: 1, excludeSelf: true });
 * assert.deepEqual(Array.from(knnGraph(knn).to), [1, 0, 3, 2, 3]);
 * const union = knnGraph(knn, { symmetrize: "union" });
 * assert.deepEqual([Array.from(union.from), Array.from(union.to)], [[0, 2, 3], [1, 3, 4]]);
 * const mutual = knnGraph(knn, { symmetrize: "mutual" });
 * assert.deepEqual([Array.from(mutual.from), Array.from(mutual.to)], [[0, 2], [1, 3]]);
 * ```
 */
export function knnGraph(
  result: KnnBlock,
  options: KnnGraphOptions = {},
): EdgeList {
  const symmetrize = options.symmetrize ?? "none";
  if (
    symmetrize !== "none" && symmetrize !== "union" && symmetrize !== "mutual"
  ) {
    throw new TypeError(
      `Cannot build kNN graph: symmetrize "${
        String(symmetrize)
      }" is not supported; use "none", "union" or "mutual"`,
    );
  }
  const { rows, k, index, distance, start } = result;
  const edges = rows * k;
  let maxId = start + rows - 1;
  for (let e = 0; e < edges; e++) {
    const t = index[e]!;
    if (t < 0) {
      throw new RangeError(
        `Cannot build kNN graph: row ${start + Math.floor(e / k)} position ${
          e % k
        } has no neighbour (index ${t}); rerank with enough candidates first`,
      );
    }
    if (t > maxId) maxId = t;
  }
  if (symmetrize === "none") {
    const from = new Int32Array(edges);
    for (let e = 0; e < edges; e++) from[e] = start + Math.floor(e / k);
    return { from, to: index.slice(), distance: distance.slice() };
  }
  const preferLarger = result.metric === "ip";
  // Bucket directed edges by their lower endpoint (a counting sort).
  const bucketStart = new Int32Array(maxId + 2);
  for (let e = 0; e < edges; e++) {
    const a = start + Math.floor(e / k);
    const b = index[e]!;
    if (a === b) continue;
    bucketStart[Math.min(a, b) + 1]!++;
  }
  for (let i = 0; i <= maxId; i++) {
    bucketStart[i + 1] = bucketStart[i + 1]! + bucketStart[i]!;
  }
  const total = bucketStart[maxId + 1]!;
  const fill = bucketStart.slice(0, maxId + 1);
  const order = new Int32Array(total);
  for (let e = 0; e < edges; e++) {
    const a = start + Math.floor(e / k);
    const b = index[e]!;
    if (a === b) continue;
    const lo = Math.min(a, b);
    order[fill[lo]!] = e;
    fill[lo] = fill[lo]! + 1;
  }
  const outFrom: number[] = [];
  const outTo: number[] = [];
  const outDistance: number[] = [];
  const hiOf = (e: number): number => {
    const a = start + Math.floor(e / k);
    const b = index[e]!;
    return a > b ? a : b;
  };
  for (let lo = 0; lo <= maxId; lo++) {
    const s = bucketStart[lo]!;
    const t = bucketStart[lo + 1]!;
    if (s === t) continue;
    const bucket = Array.from(order.subarray(s, t));
    bucket.sort((x, y) => hiOf(x) - hiOf(y) || x - y);
    let i = 0;
    while (i < bucket.length) {
      const hi = hiOf(bucket[i]!);
      let flags = 0;
      let best = NaN;
      for (; i < bucket.length && hiOf(bucket[i]!) === hi; i++) {
        const e = bucket[i]!;
        const a = start + Math.floor(e / k);
        flags |= a === lo ? 1 : 2;
        const d = distance[e]!;
        if (
          Number.isNaN(best) || (preferLarger ? d > best : d < best)
        ) best = d;
      }
      if (symmetrize === "mutual" && flags !== 3) continue;
      outFrom.push(lo);
      outTo.push(hi);
      outDistance.push(best);
    }
  }
  return {
    from: Int32Array.from(outFrom),
    to: Int32Array.from(outTo),
    distance: Float32Array.from(outDistance),
  };
}

/**
 * Builds a shared-nearest-neighbour graph from a self-search kNN result.
 *
 * Definition: the neighbourhood N⁺(i) of row i is its k neighbours plus i
 * itself (as in Jarvis–Patrick clustering). The weight of rows i < j is
 * |N⁺(i) ∩ N⁺(j)|, between 0 and k + 1. There is an edge for every pair whose
 * weight is at least `minShared`; with the default of 1 that is every pair
 * where one row is in the other's list or the two share a neighbour. Edges
 * come sorted by `from` then `to`, with `from < to`.
 *
 * @param result A kNN result of a self-search (rows are reference rows).
 * @param options The minimum weight.
 * @returns The weighted edges.
 * @throws {RangeError} If `minShared` is not a positive integer or an index is negative.
 *
 * @example Two tight pairs far apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { searchKnn } from "./search.ts";
 * import { snnGraph } from "./graph.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 50, 51]), 1);
 * const knn = searchKnn(prepareReference(m, "euclidean"), m, { k: 1, excludeSelf: true });
 * const snn = snnGraph(knn);
 * assert.deepEqual(Array.from(snn.from), [0, 2]);
 * assert.deepEqual(Array.from(snn.to), [1, 3]);
 * assert.deepEqual(Array.from(snn.weight), [2, 2]);
 * ```
 */
export function snnGraph(
  result: KnnBlock,
  options: SnnGraphOptions = {},
): SnnEdgeList {
  const minShared = options.minShared ?? 1;
  if (!Number.isSafeInteger(minShared) || minShared < 1) {
    throw new RangeError(
      `Cannot build SNN graph: minShared must be a positive integer, but minShared = ${
        String(minShared)
      }`,
    );
  }
  const { rows, k, index, start } = result;
  let maxId = start + rows - 1;
  for (let e = 0; e < rows * k; e++) {
    const t = index[e]!;
    if (t < 0) {
      throw new RangeError(
        `Cannot build SNN graph: row ${start + Math.floor(e / k)} position ${
          e % k
        } has no neighbour (index ${t})`,
      );
    }
    if (t > maxId) maxId = t;
  }
  // N⁺ lists, deduplicated, as CSR over local rows.
  const width = k + 1;
  const members = new Int32Array(rows * width);
  const memberCount = new Int32Array(rows);
  const seen = new Int32Array(maxId + 1).fill(-1);
  for (let i = 0; i < rows; i++) {
    let n = 0;
    const self = start + i;
    seen[self] = i;
    members[i * width + n++] = self;
    for (let j = 0; j < k; j++) {
      const m = index[i * k + j]!;
      if (seen[m] === i) continue;
      seen[m] = i;
      members[i * width + n++] = m;
    }
    memberCount[i] = n;
  }
  // Inverted lists: member -> local rows containing it, ascending.
  const invStart = new Int32Array(maxId + 2);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < memberCount[i]!; j++) {
      invStart[members[i * width + j]! + 1]!++;
    }
  }
  for (let m = 0; m <= maxId; m++) {
    invStart[m + 1] = invStart[m + 1]! + invStart[m]!;
  }
  const inv = new Int32Array(invStart[maxId + 1]!);
  const fill = invStart.slice(0, maxId + 1);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < memberCount[i]!; j++) {
      const m = members[i * width + j]!;
      inv[fill[m]!] = i;
      fill[m] = fill[m]! + 1;
    }
  }
  const shared = new Int32Array(rows);
  const touched: number[] = [];
  const outFrom: number[] = [];
  const outTo: number[] = [];
  const outWeight: number[] = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < memberCount[i]!; j++) {
      const m = members[i * width + j]!;
      for (let p = invStart[m]!; p < invStart[m + 1]!; p++) {
        const other = inv[p]!;
        if (other <= i) continue;
        if (shared[other] === 0) touched.push(other);
        shared[other] = shared[other]! + 1;
      }
    }
    touched.sort((a, b) => a - b);
    for (const other of touched) {
      const w = shared[other]!;
      if (w >= minShared) {
        outFrom.push(start + i);
        outTo.push(start + other);
        outWeight.push(w);
      }
      shared[other] = 0;
    }
    touched.length = 0;
  }
  return {
    from: Int32Array.from(outFrom),
    to: Int32Array.from(outTo),
    weight: Int32Array.from(outWeight),
  };
}
