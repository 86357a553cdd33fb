/**
 * Exact fixed-radius search, one block of query rows at a time: count the
 * matches, collect them, and join blocks into a CSR layout where query `i`
 * owns `offset[i]` up to (not including) `offset[i + 1]`.
 *
 * A reference row matches when its distance is at most `radius`
 * (inclusive). For the `ip` metric, a similarity, it matches when its inner
 * product is at least `radius`, and any finite radius is allowed.
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
} from "./kernel.ts";
import { type KernelChoice, scanCandidates } from "./kernel_scan.ts";
import type { Matrix } from "./matrix.ts";

/** Options for {@linkcode countWithinRadius} and {@linkcode collectWithinRadius}. */
export interface RadiusOptions {
  /**
   * The radius, in the metric's own units (squared for `sqeuclidean`; a
   * minimum inner product for `ip`). Required: there is no default.
   */
  radius: number;
  /** First query row of the block. Defaults to `0`. */
  start?: number;
  /** One past the last query row. Defaults to `queries.rows`. */
  end?: number;
  /**
   * Self-search: never match reference row `i` for query row `i`. The
   * queries must be the reference matrix. Defaults to `false`.
   */
  excludeSelf?: boolean;
  /**
   * The distance kernel; results are identical with every kernel. Defaults
   * to `"auto"` (WebAssembly SIMD where available).
   */
  kernel?: KernelChoice;
}

/** The matches of one block of query rows. */
export interface RadiusBlock {
  /** The metric searched with. */
  metric: Metric;
  /** Global index of the block's first query row. */
  start: number;
  /** Query rows in the block. */
  rows: number;
  /** Matches per query row. */
  counts: Int32Array;
  /**
   * Matching reference rows, query after query; within a query nearest first
   * (for `ip`: largest inner product first), ties to the lower index.
   */
  index: Int32Array;
  /** Matching distances (inner products for `ip`), float32-rounded. */
  distance: Float32Array;
}

/** Radius matches of many query rows in CSR form. */
export interface RadiusResult {
  /** The metric searched with. */
  metric: Metric;
  /** Global index of the first query row. */
  start: number;
  /** Query rows. */
  rows: number;
  /** `rows + 1` offsets; query `i` owns `index[offset[i]..offset[i+1])`. */
  offset: BigInt64Array;
  /** Matching reference rows. */
  index: Int32Array;
  /** Matching distances. */
  distance: Float32Array;
}

/**
 * Counts, for each query row in a block, the reference rows within `radius`.
 *
 * The counts always equal the lengths {@linkcode collectWithinRadius} returns.
 *
 * @param prepared The prepared reference.
 * @param queries The query matrix.
 * @param options The radius, row range and `excludeSelf`.
 * @returns One count per query row of the block.
 * @throws {RangeError} On a negative or non-finite radius (any finite radius for `ip`), a bad range or a non-finite query value.
 * @throws {TypeError} If the column counts differ.
 *
 * @example Count neighbours within 1.5
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { countWithinRadius } from "./radius.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 2, 10]), 1);
 * const p = prepareReference(m, "euclidean");
 * const counts = countWithinRadius(p, m, { radius: 1.5 });
 * assert.deepEqual(Array.from(counts), [2, 3, 2, 1]);
 * ```
 */
export function countWithinRadius(
  prepared: PreparedReference,
  queries: Matrix,
  options: RadiusOptions,
): Int32Array {
  return scanRadius(prepared, queries, options, false).counts;
}

/**
 * Collects, for each query row in a block, the reference rows within
 * `radius`, nearest first with ties to the lower index.
 *
 * @param prepared The prepared reference.
 * @param queries The query matrix.
 * @param options The radius, row range and `excludeSelf`.
 * @returns The block's counts, indices and distances.
 * @throws {RangeError} As {@linkcode countWithinRadius}.
 * @throws {TypeError} If the column counts differ.
 *
 * @example Collect matches in order
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { collectWithinRadius } from "./radius.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 2, 10]), 1);
 * const p = prepareReference(m, "euclidean");
 * const block = collectWithinRadius(p, m, { radius: 1, start: 1, end: 2 });
 * assert.deepEqual(Array.from(block.counts), [3]);
 * assert.deepEqual(Array.from(block.index), [1, 0, 2]);
 * assert.deepEqual(Array.from(block.distance), [0, 1, 1]);
 * ```
 */
export function collectWithinRadius(
  prepared: PreparedReference,
  queries: Matrix,
  options: RadiusOptions,
): RadiusBlock {
  return scanRadius(prepared, queries, options, true);
}

/**
 * Joins consecutive radius blocks into CSR form with int64 offsets.
 *
 * @param blocks Blocks in row order, each starting where the previous ends.
 * @returns The joined result.
 * @throws {RangeError} If there are no blocks, or they are not consecutive or differ in metric.
 *
 * @example Join two blocks
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { collectWithinRadius, concatRadiusBlocks } from "./radius.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 2, 10]), 1);
 * const p = prepareReference(m, "euclidean");
 * const csr = concatRadiusBlocks([
 *   collectWithinRadius(p, m, { radius: 1, start: 0, end: 2 }),
 *   collectWithinRadius(p, m, { radius: 1, start: 2, end: 4 }),
 * ]);
 * assert.deepEqual(Array.from(csr.offset), [0n, 2n, 5n, 7n, 8n]);
 * assert.deepEqual(Array.from(csr.index), [0, 1, 1, 0, 2, 2, 1, 3]);
 * ```
 */
export function concatRadiusBlocks(
  blocks: readonly RadiusBlock[],
): RadiusResult {
  const first = blocks[0];
  if (first === undefined) {
    throw new RangeError("Cannot concatenate radius blocks: no blocks given");
  }
  let rows = 0;
  let total = 0;
  for (const b of blocks) {
    if (b.metric !== first.metric) {
      throw new RangeError(
        `Cannot concatenate radius blocks: block at row ${b.start} has metric "${b.metric}", but the first has "${first.metric}"`,
      );
    }
    if (b.start !== first.start + rows) {
      throw new RangeError(
        `Cannot concatenate radius blocks: expected a block starting at row ${
          first.start + rows
        }, but got one starting at ${b.start}; pass consecutive blocks in order`,
      );
    }
    rows += b.rows;
    total += b.index.length;
  }
  const offset = new BigInt64Array(rows + 1);
  const index = new Int32Array(total);
  const distance = new Float32Array(total);
  let row = 0;
  let at = 0;
  for (const b of blocks) {
    for (let i = 0; i < b.rows; i++) {
      offset[row + 1] = offset[row]! + BigInt(b.counts[i]!);
      row++;
    }
    index.set(b.index, at);
    distance.set(b.distance, at);
    at += b.index.length;
  }
  return {
    metric: first.metric,
    start: first.start,
    rows,
    offset,
    index,
    distance,
  };
}

/**
 * Checks a radius: a finite number, and not negative unless the metric is
 * `ip` (where the radius is a minimum inner product).
 *
 * @param radius The radius.
 * @param metric The metric.
 * @param fix Advice to add to the message about a negative radius, after
 *   `; `. Default: none.
 * @throws {RangeError} If the radius is not finite, or negative for a distance metric.
 *
 * @example Any finite radius for ip, none below 0 otherwise
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRadius } from "./radius.ts";
 *
 * checkRadius(-1, "ip");
 * assert.throws(() => checkRadius(Infinity, "ip"), /must be a finite number/);
 * assert.throws(
 *   () => checkRadius(-1, "cosine", "pass a non-negative radius"),
 *   {
 *     name: "RangeError",
 *     message:
 *       'Cannot search within radius: radius must be >= 0 for metric "cosine", but radius = -1; pass a non-negative radius',
 *   },
 * );
 * ```
 */
export function checkRadius(
  radius: unknown,
  metric: string,
  fix?: string,
): asserts radius is number {
  if (typeof radius !== "number" || !Number.isFinite(radius)) {
    throw new RangeError(
      `Cannot search within radius: radius must be a finite number, but radius = ${
        String(radius)
      }`,
    );
  }
  if (metric !== "ip" && radius < 0) {
    throw new RangeError(
      `Cannot search within radius: radius must be >= 0 for metric "${metric}", but radius = ${radius}${
        fix === undefined ? "" : `; ${fix}`
      }`,
    );
  }
}

/** Key thresholds equivalent to "distance within radius". */
interface Thresholds {
  /** No pair with exact key above this can match. */
  maybe: number;
  /** Every pair with exact key at most this matches. */
  surely: number;
}

function thresholdsFor(metric: Metric, radius: number): Thresholds {
  if (metric === "euclidean") {
    const sq = radius * radius;
    return { maybe: sq * (1 + 1e-14), surely: sq * (1 - 1e-14) };
  }
  if (metric === "ip") return { maybe: -radius, surely: -radius };
  return { maybe: radius, surely: radius };
}

/** The exact decision, on the reported distance. */
function matches(metric: Metric, key: number, radius: number): boolean {
  if (metric === "euclidean") return Math.sqrt(key) <= radius;
  if (metric === "ip") return -key >= radius;
  return key <= radius;
}

function scanRadius(
  prepared: PreparedReference,
  queries: Matrix,
  options: RadiusOptions,
  collect: boolean,
): RadiusBlock {
  const start = options.start ?? 0;
  const end = options.end ?? queries.rows;
  const excludeSelf = options.excludeSelf ?? false;
  const radius = options.radius;
  const metric = prepared.metric;
  checkRadius(radius, metric);
  checkRange(start, end, queries.rows);
  checkSelf(prepared, queries, excludeSelf);
  const block = prepareQueries(prepared, queries, { start, end });
  const { maybe, surely } = thresholdsFor(metric, radius);
  const rows = end - start;
  const counts = new Int32Array(rows);
  const found: Match[][] = [];
  const outIndex: number[] = [];
  const outDistance: number[] = [];

  let q0 = 0;
  scanCandidates(prepared, block, {
    startQueries(queryStart, queryEnd, thresholds) {
      q0 = queryStart;
      for (let i = 0; i < queryEnd - queryStart; i++) {
        found[i] = [];
        thresholds[i] = maybe;
      }
    },
    candidates(batch) {
      const { query, ref, key, slack } = batch;
      for (let e = 0; e < batch.length; e++) {
        const q = query[e]!;
        const r = ref[e]!;
        const kv = key[e]!;
        const sv = slack[e]!;
        if (kv - sv > maybe) continue;
        if (excludeSelf && r === q) continue;
        if (!collect && kv + sv <= surely) {
          counts[q - start]!++;
          continue;
        }
        const exact = exactKey(prepared, block, q, r);
        if (!matches(metric, exact, radius)) continue;
        counts[q - start]!++;
        if (collect) found[q - q0]!.push({ r, key: exact });
      }
    },
    endQueries(queryStart, queryEnd) {
      if (!collect) return;
      for (let i = 0; i < queryEnd - queryStart; i++) {
        const list = found[i]!;
        list.sort((a, b) => a.key - b.key || a.r - b.r);
        for (const m of list) {
          outIndex.push(m.r);
          outDistance.push(keyToDistance(metric, m.key));
        }
      }
    },
  }, { kernel: options.kernel ?? "auto" });
  return {
    metric,
    start,
    rows,
    counts,
    index: Int32Array.from(outIndex),
    distance: Float32Array.from(outDistance),
  };
}

interface Match {
  r: number;
  key: number;
}
