/**
 * Exact k-nearest-neighbour search, one block of query rows at a time.
 *
 * @module
 */

import {
  checkRange,
  checkSelf,
  exactKey,
  keyToDistance,
  type Metric,
  type PreparedReference,
  prepareQueries,
  type QueryBlock,
} from "./kernel.ts";
import {
  CANDIDATE_QUERY_TILE,
  type KernelChoice,
  scanCandidates,
} from "./kernel_scan.ts";
import type { Matrix } from "./matrix.ts";
import { offerUpperBound } from "./_heap.ts";

/** Options for {@linkcode searchKnn}. */
export interface KnnOptions {
  /** Neighbours per query row. Required: there is no default. */
  k: number;
  /** First query row of the block. Defaults to `0`. */
  start?: number;
  /** One past the last query row of the block. Defaults to `queries.rows`. */
  end?: number;
  /**
   * Self-search: skip reference row `i` for query row `i`. The queries must
   * then be the reference matrix (same row count). Defaults to `false`.
   */
  excludeSelf?: boolean;
  /**
   * The distance kernel; results are identical with every kernel. Defaults
   * to `"auto"` (WebAssembly SIMD where available).
   */
  kernel?: KernelChoice;
}

/** The k nearest neighbours of a block of query rows. */
export interface KnnBlock {
  /** The metric searched with. */
  metric: Metric;
  /** Global index of the block's first query row. */
  start: number;
  /** Query rows in the block. */
  rows: number;
  /** Neighbours per row. */
  k: number;
  /**
   * Reference row of neighbour `j` of block row `i` at `i * k + j`; nearest
   * first, ties broken by the lower reference index.
   */
  index: Int32Array;
  /**
   * Matching distances (float32-rounded; ordering uses the float64 value).
   * For `ip` these are inner products, in descending order.
   */
  distance: Float32Array;
}

/**
 * Finds the exact k nearest reference rows for query rows `start..end`.
 *
 * Results are nearest first (for `ip`: largest inner product first), ties go
 * to the lower reference index, and every row's answer is bit-identical
 * however the query rows are split into blocks.
 *
 * @param prepared The prepared reference, from `prepareReference`.
 * @param queries The query matrix; pass the reference matrix for self-search.
 * @param options `k`, the row range, and `excludeSelf`.
 * @returns The neighbour indices and distances, `rows × k`.
 * @throws {RangeError} If k is not in 1..usable reference rows, the range is
 *   bad, a query value is not finite, or a cosine query is a zero vector.
 * @throws {TypeError} If the queries' column count differs from the reference's.
 *
 * @example Self-search excluding self
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { searchKnn } from "./search.ts";
 *
 * const points = matrixFrom(new Float32Array([0, 0, 1, 0, 5, 0, 6, 0]), 2);
 * const prepared = prepareReference(points, "euclidean");
 * const result = searchKnn(prepared, points, { k: 1, excludeSelf: true });
 * assert.deepEqual(Array.from(result.index), [1, 0, 3, 2]);
 * assert.deepEqual(Array.from(result.distance), [1, 1, 1, 1]);
 * ```
 */
export function searchKnn(
  prepared: PreparedReference,
  queries: Matrix,
  options: KnnOptions,
): KnnBlock {
  const start = options.start ?? 0;
  const end = options.end ?? queries.rows;
  const excludeSelf = options.excludeSelf ?? false;
  const k = options.k;
  checkRange(start, end, queries.rows);
  checkSelf(prepared, queries, excludeSelf);
  const usable = prepared.rows - (excludeSelf ? 1 : 0);
  checkK(k, usable, prepared.rows, excludeSelf);
  const block = prepareQueries(prepared, queries, { start, end });
  const rows = end - start;
  const index = new Int32Array(rows * k);
  const distance = new Float32Array(rows * k);
  const metric = prepared.metric;

  const heaps = new Float64Array(CANDIDATE_QUERY_TILE * k);
  const heapSizes = new Int32Array(CANDIDATE_QUERY_TILE);
  const cands: Candidates[] = [];
  for (let i = 0; i < CANDIDATE_QUERY_TILE; i++) {
    cands.push(newCandidates(4 * k + 64));
  }
  let q0 = 0;
  let thresholds: Float64Array = new Float64Array(0);

  scanCandidates(prepared, block, {
    startQueries(queryStart, queryEnd, rowThresholds) {
      q0 = queryStart;
      thresholds = rowThresholds;
      heapSizes.fill(0);
      for (let i = 0; i < queryEnd - queryStart; i++) cands[i]!.length = 0;
    },
    candidates(batch) {
      const { query, ref, key, slack } = batch;
      for (let e = 0; e < batch.length; e++) {
        const q = query[e]!;
        const r = ref[e]!;
        if (excludeSelf && r === q) continue;
        const i = q - q0;
        const threshold = thresholds[i]!;
        const kv = key[e]!;
        const sv = slack[e]!;
        const lower = kv - sv;
        if (lower > threshold) continue;
        pushCandidate(cands[i]!, r, lower, threshold);
        offerUpperBound(heaps, heapSizes, thresholds, i, k, kv + sv);
      }
    },
    endQueries(queryStart, queryEnd) {
      for (let i = 0; i < queryEnd - queryStart; i++) {
        const q = queryStart + i;
        const c = cands[i]!;
        const threshold = heaps[i * k]!;
        finishRow(prepared, block, q, c, threshold, k, (j, r, exact) => {
          const o = (q - start) * k + j;
          index[o] = r;
          distance[o] = keyToDistance(metric, exact);
        });
      }
    },
  }, { kernel: options.kernel ?? "auto" });
  return { metric, start, rows, k, index, distance };
}

/**
 * Joins consecutive blocks (same metric and k, each starting where the
 * previous one ends) into one.
 *
 * @param blocks The blocks, in row order.
 * @returns One block covering all their rows.
 * @throws {RangeError} If there are no blocks, or they are not consecutive or differ in k or metric.
 *
 * @example Blocked search equals one search
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { concatKnnBlocks, searchKnn } from "./search.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 3, 7, 8]), 1);
 * const p = prepareReference(m, "sqeuclidean");
 * const whole = searchKnn(p, m, { k: 2 });
 * const joined = concatKnnBlocks([
 *   searchKnn(p, m, { k: 2, start: 0, end: 2 }),
 *   searchKnn(p, m, { k: 2, start: 2, end: 5 }),
 * ]);
 * assert.deepEqual(joined, whole);
 * ```
 */
export function concatKnnBlocks(blocks: readonly KnnBlock[]): KnnBlock {
  const first = blocks[0];
  if (first === undefined) {
    throw new RangeError("Cannot concatenate kNN blocks: no blocks given");
  }
  let rows = 0;
  for (const b of blocks) {
    if (b.k !== first.k || b.metric !== first.metric) {
      throw new RangeError(
        `Cannot concatenate kNN blocks: block at row ${b.start} has k = ${b.k} and metric "${b.metric}", but the first has k = ${first.k} and metric "${first.metric}"`,
      );
    }
    if (b.start !== first.start + rows) {
      throw new RangeError(
        `Cannot concatenate kNN blocks: expected a block starting at row ${
          first.start + rows
        }, but got one starting at ${b.start}; pass consecutive blocks in order`,
      );
    }
    rows += b.rows;
  }
  const index = new Int32Array(rows * first.k);
  const distance = new Float32Array(rows * first.k);
  let offset = 0;
  for (const b of blocks) {
    index.set(b.index, offset);
    distance.set(b.distance, offset);
    offset += b.rows * first.k;
  }
  return {
    metric: first.metric,
    start: first.start,
    rows,
    k: first.k,
    index,
    distance,
  };
}

/** A growable list of (reference row, lower bound) pairs. */
interface Candidates {
  index: Int32Array;
  lower: Float64Array;
  length: number;
}

function newCandidates(capacity: number): Candidates {
  return {
    index: new Int32Array(capacity),
    lower: new Float64Array(capacity),
    length: 0,
  };
}

/** Appends a candidate, first dropping those that can no longer qualify. */
function pushCandidate(
  c: Candidates,
  r: number,
  lower: number,
  threshold: number,
): void {
  if (c.length === c.index.length) {
    let kept = 0;
    for (let i = 0; i < c.length; i++) {
      if (c.lower[i]! <= threshold) {
        c.index[kept] = c.index[i]!;
        c.lower[kept] = c.lower[i]!;
        kept++;
      }
    }
    c.length = kept;
    if (kept * 2 > c.index.length) {
      const index = new Int32Array(c.index.length * 2);
      const lowerArr = new Float64Array(c.index.length * 2);
      index.set(c.index.subarray(0, kept));
      lowerArr.set(c.lower.subarray(0, kept));
      c.index = index;
      c.lower = lowerArr;
    }
  }
  c.index[c.length] = r;
  c.lower[c.length] = lower;
  c.length++;
}

/**
 * Reranks a row's surviving candidates exactly and reports its k best,
 * ordered by exact key then reference index.
 */
function finishRow(
  prepared: PreparedReference,
  block: QueryBlock,
  q: number,
  c: Candidates,
  threshold: number,
  k: number,
  emit: (j: number, r: number, exact: number) => void,
): void {
  const ids: number[] = [];
  const keys: number[] = [];
  for (let i = 0; i < c.length; i++) {
    if (c.lower[i]! > threshold) continue;
    const r = c.index[i]!;
    ids.push(r);
    keys.push(exactKey(prepared, block, q, r));
  }
  const order = ids.map((_, i) => i);
  order.sort((a, b) => keys[a]! - keys[b]! || ids[a]! - ids[b]!);
  for (let j = 0; j < k; j++) {
    const o = order[j]!;
    emit(j, ids[o]!, keys[o]!);
  }
}

function checkK(
  k: number,
  usable: number,
  rows: number,
  excludeSelf: boolean,
): void {
  if (!Number.isSafeInteger(k) || k < 1) {
    throw new RangeError(
      `Cannot search: expected k >= 1, but k = ${String(k)}`,
    );
  }
  if (k > usable) {
    const detail = excludeSelf
      ? `usable reference rows = ${usable} (${rows} rows, excluding self)`
      : `reference rows = ${rows}`;
    throw new RangeError(
      `Cannot search: expected k <= usable reference rows, but ${detail}, k = ${k}`,
    );
  }
}
