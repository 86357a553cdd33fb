/**
 * Evaluating approximate neighbour sets against exact ones: recall, and
 * exact reranking of candidate sets (for example from an approximate index).
 *
 * @module
 */

import {
  checkRange,
  exactKey,
  keyToDistance,
  type PreparedReference,
  prepareQueries,
} from "./kernel.ts";
import type { Matrix } from "./matrix.ts";
import type { KnnBlock } from "./search.ts";

/** A row-major table of neighbour indices, `rows × k`. */
export interface IndexTable {
  /** Neighbour indices; negative entries mean "no neighbour". */
  index: Int32Array;
  /** Entries per row. */
  k: number;
}

/** Options for {@linkcode recallAtK}. */
export interface RecallOptions {
  /** How many leading truth neighbours to look for. Defaults to `truth.k`. */
  k?: number;
  /** How many leading candidates to search. Defaults to `candidates.k`. */
  kCandidates?: number;
}

/** Options for {@linkcode rerankExact}. */
export interface RerankOptions {
  /**
   * Candidate reference rows for each query row of the block, `rows × c`
   * (`c = candidates.length / rows`). Negative entries are skipped and
   * duplicates count once. Required: there is no default.
   */
  candidates: Int32Array;
  /** Neighbours to keep per row. Defaults to `c`. */
  k?: number;
  /** First query row of the block. Defaults to `0`. */
  start?: number;
  /** One past the last query row. Defaults to `queries.rows`. */
  end?: number;
}

/**
 * Computes recall@k: the mean, over rows, of the fraction of each row's first
 * `k` true neighbours found among its first `kCandidates` candidates.
 *
 * @param truth Exact neighbours, such as a `searchKnn` result.
 * @param candidates Neighbours to evaluate, with the same number of rows.
 * @param options The prefixes to compare.
 * @returns Recall in [0, 1].
 * @throws {RangeError} If the row counts differ or a prefix is out of range.
 *
 * @example Half of the true neighbours found
 * ```ts
 * import assert from "node:assert/strict";
 * import { recallAtK } from "./evaluate.ts";
 *
 * const truth = { index: new Int32Array([1, 2, 0, 2]), k: 2 };
 * const approx = { index: new Int32Array([2, 3, 3, 4]), k: 2 };
 * assert.equal(recallAtK(truth, approx), 0.25);
 * assert.equal(recallAtK(truth, approx, { k: 1 }), 0);
 * ```
 */
export function recallAtK(
  truth: IndexTable,
  candidates: IndexTable,
  options: RecallOptions = {},
): number {
  const k = options.k ?? truth.k;
  const kc = options.kCandidates ?? candidates.k;
  const rows = truth.index.length / truth.k;
  const candRows = candidates.index.length / candidates.k;
  if (!Number.isInteger(rows) || rows !== candRows) {
    throw new RangeError(
      `Cannot compute recall: truth has ${rows} rows, but candidates have ${candRows}`,
    );
  }
  if (!Number.isSafeInteger(k) || k < 1 || k > truth.k) {
    throw new RangeError(
      `Cannot compute recall: expected 1 <= k <= ${truth.k}, but k = ${
        String(k)
      }`,
    );
  }
  if (!Number.isSafeInteger(kc) || kc < 1 || kc > candidates.k) {
    throw new RangeError(
      `Cannot compute recall: expected 1 <= kCandidates <= ${candidates.k}, but kCandidates = ${
        String(kc)
      }`,
    );
  }
  if (rows === 0) return 1;
  let hits = 0;
  const set = new Set<number>();
  for (let i = 0; i < rows; i++) {
    set.clear();
    for (let j = 0; j < kc; j++) {
      set.add(candidates.index[i * candidates.k + j]!);
    }
    for (let j = 0; j < k; j++) {
      const t = truth.index[i * truth.k + j]!;
      if (t >= 0 && set.has(t)) hits++;
    }
  }
  return hits / (rows * k);
}

/**
 * Reranks candidate sets exactly: computes each candidate's exact distance
 * and keeps the best `k`, nearest first with ties to the lower index.
 *
 * Rows with fewer than `k` distinct valid candidates are padded with index
 * `-1` and distance `Infinity` (`-Infinity` for `ip`), as FAISS pads.
 *
 * @param prepared The prepared reference.
 * @param queries The query matrix.
 * @param options The candidates, `k` and the row range.
 * @returns The reranked block.
 * @throws {RangeError} If a candidate is out of range, `k` is bad, or the
 *   candidate array does not divide into the block's rows.
 * @throws {TypeError} If the column counts differ.
 *
 * @example Fix the order of approximate candidates
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { rerankExact } from "./evaluate.ts";
 *
 * const ref = matrixFrom(new Float64Array([0, 1, 2, 3]), 1);
 * const p = prepareReference(ref, "euclidean");
 * const q = matrixFrom(new Float64Array([2.2]), 1);
 * const out = rerankExact(p, q, { candidates: new Int32Array([0, 3, 2, -1]), k: 2 });
 * assert.deepEqual(Array.from(out.index), [2, 3]);
 * ```
 */
export function rerankExact(
  prepared: PreparedReference,
  queries: Matrix,
  options: RerankOptions,
): KnnBlock {
  const start = options.start ?? 0;
  const end = options.end ?? queries.rows;
  checkRange(start, end, queries.rows);
  const rows = end - start;
  const candidates = options.candidates;
  const width = rows === 0 ? 0 : candidates.length / rows;
  if (!Number.isInteger(width) || (rows === 0 && candidates.length !== 0)) {
    throw new RangeError(
      `Cannot rerank: ${candidates.length} candidates do not divide into ${rows} query rows`,
    );
  }
  const k = options.k ?? width;
  if (!Number.isSafeInteger(k) || k < 1) {
    throw new RangeError(
      `Cannot rerank: expected k >= 1, but k = ${String(k)}`,
    );
  }
  const block = prepareQueries(prepared, queries, { start, end });
  const metric = prepared.metric;
  const index = new Int32Array(rows * k).fill(-1);
  const distance = new Float32Array(rows * k).fill(
    metric === "ip" ? -Infinity : Infinity,
  );
  const ids: number[] = [];
  const keys: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < rows; i++) {
    ids.length = 0;
    keys.length = 0;
    seen.clear();
    for (let j = 0; j < width; j++) {
      const r = candidates[i * width + j]!;
      if (r < 0) continue;
      if (r >= prepared.rows) {
        throw new RangeError(
          `Cannot rerank: candidate ${r} of query row ${
            start + i
          } is out of range; the reference has ${prepared.rows} rows`,
        );
      }
      if (seen.has(r)) continue;
      seen.add(r);
      ids.push(r);
      keys.push(exactKey(prepared, block, start + i, r));
    }
    const order = ids.map((_, p) => p);
    order.sort((a, b) => keys[a]! - keys[b]! || ids[a]! - ids[b]!);
    const n = Math.min(k, order.length);
    for (let j = 0; j < n; j++) {
      const o = order[j]!;
      index[i * k + j] = ids[o]!;
      distance[i * k + j] = keyToDistance(metric, keys[o]!);
    }
  }
  return { metric, start, rows, k, index, distance };
}
