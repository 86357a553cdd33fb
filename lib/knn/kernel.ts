/**
 * The distance kernel behind cairn's exact kNN family.
 *
 * Distances come from the norms trick, ‖x‖² + ‖y‖² − 2⟨x, y⟩, evaluated in
 * float64 on centred data with precomputed reference norms, two queries by
 * four references at a time, one reference tile of {@linkcode REF_TILE} rows
 * after another. Each approximate value comes with a rigorous error bound
 * (its "slack"), so callers can pick a candidate set that is certain to hold
 * the exact answer and then decide it with {@linkcode exactKey}: a direct
 * float64 evaluation whose value depends only on the two rows involved.
 *
 * Internally every metric is ranked by a "key" for which smaller is nearer:
 *
 * | metric        | key                     | reported distance |
 * | ------------- | ----------------------- | ----------------- |
 * | `euclidean`   | Σ(x − y)²               | √key              |
 * | `sqeuclidean` | Σ(x − y)²               | key               |
 * | `cosine`      | 1 − ⟨x, y⟩ / (‖x‖ ‖y‖)  | key, in [0, 2]    |
 * | `ip`          | −⟨x, y⟩                 | ⟨x, y⟩ = −key     |
 *
 * @module
 */

import { type Matrix, type MatrixData, validateFinite } from "./matrix.ts";

/**
 * A distance metric.
 *
 * - `euclidean`: √Σ(x − y)².
 * - `sqeuclidean`: Σ(x − y)².
 * - `cosine`: 1 − cos(x, y), clamped to [0, 2].
 * - `ip`: the inner product ⟨x, y⟩, a similarity: larger is nearer and
 *   results are sorted by descending inner product, as FAISS's
 *   `IndexFlatIP` does.
 */
export type Metric = "euclidean" | "sqeuclidean" | "cosine" | "ip";

/**
 * Every supported {@linkcode Metric}.
 *
 * @example List the metrics
 * ```ts
 * import assert from "node:assert/strict";
 * import { METRICS } from "./kernel.ts";
 *
 * assert.deepEqual(METRICS, ["euclidean", "sqeuclidean", "cosine", "ip"]);
 * ```
 */
export const METRICS: readonly Metric[] = [
  "euclidean",
  "sqeuclidean",
  "cosine",
  "ip",
];

/**
 * What cosine distance does with a zero vector, whose direction is undefined.
 *
 * - `"throw"`: reject it with a `RangeError` naming the row.
 * - `"one"`: as scikit-learn does, treat its cosine similarity with every
 *   vector (itself and other zero vectors included) as 0, so the distance is 1.
 */
export type ZeroVectorPolicy = "throw" | "one";

/** Options for {@linkcode prepareReference}. */
export interface PrepareOptions {
  /** Zero vectors under the cosine metric. Defaults to `"throw"`. */
  zeroVector?: ZeroVectorPolicy;
}

/**
 * A reference matrix with its per-row precomputation.
 *
 * It holds only strings, numbers and typed arrays, so it can be CBOR-encoded
 * and stored once, then decoded and checked with {@linkcode validatePrepared}.
 * Treat it as immutable: the first search derives a float64 copy of the
 * centred (or, for cosine, normalised) reference, `rows × cols × 8` bytes,
 * and caches it against the object.
 */
export interface PreparedReference {
  /** Always `"cairn.knn.prepared"`. */
  format: "cairn.knn.prepared";
  /** Layout version, currently `1`. */
  version: 1;
  /** The metric the precomputation is for. */
  metric: Metric;
  /** Reference rows. */
  rows: number;
  /** Columns (the dimension). */
  cols: number;
  /** The reference data, row-major, shared with the matrix it came from. */
  reference: MatrixData;
  /** Column means used for centring; all zeros unless the metric is Euclidean. */
  mean: Float64Array;
  /** Σ (yᵢ − meanᵢ)² for each row, summed in column order in float64. */
  sqNorms: Float64Array;
  /** The zero-vector policy (meaningful for `cosine` only). */
  zeroVector: ZeroVectorPolicy;
}

/**
 * A block of query rows in the form the kernel consumes; made by
 * {@linkcode prepareQueries}.
 */
export interface QueryBlock {
  /** First query row (global index into the query matrix). */
  start: number;
  /** One past the last query row. */
  end: number;
  /** Columns. */
  cols: number;
  /** The whole query matrix's data (rows are addressed globally). */
  data: MatrixData;
  /** Kernel vectors for rows `start..end`: centred, normalised or raw by metric. */
  vectors: Float64Array;
  /** Σ v² of each kernel vector. */
  kernelSqNorms: Float64Array;
  /** Σ x² of each raw query row, for the exact cosine. */
  sqNorms: Float64Array;
}

/** A request to {@linkcode computeKeyTile}, and where it writes. */
export interface KeyTile {
  /** First query row of the tile (global, inside the block). */
  queryStart: number;
  /** One past the last query row. */
  queryEnd: number;
  /** First reference row. */
  refStart: number;
  /** One past the last reference row. */
  refEnd: number;
  /**
   * Output: approximate key of pair (q, r) at
   * `(q - queryStart) * (refEnd - refStart) + (r - refStart)`.
   */
  key: Float64Array;
  /**
   * Output: a bound on |approximate key − exactKey| for each pair, same layout.
   */
  slack: Float64Array;
}

/**
 * Reference rows per kernel tile, sized so a 128-D float64 tile (256 KiB)
 * stays in L2 cache while {@linkcode QUERY_TILE} queries pass over it.
 *
 * @example Size key buffers for one tile
 * ```ts
 * import assert from "node:assert/strict";
 * import { QUERY_TILE, REF_TILE } from "./kernel.ts";
 *
 * const key = new Float64Array(QUERY_TILE * REF_TILE);
 * assert.equal(key.length, 8192);
 * ```
 */
export const REF_TILE = 256;

/**
 * Query rows processed against each reference tile.
 *
 * @example The tile is a multiple of the kernel's two-row register tile
 * ```ts
 * import assert from "node:assert/strict";
 * import { QUERY_TILE } from "./kernel.ts";
 *
 * assert.equal(QUERY_TILE % 2, 0);
 * ```
 */
export const QUERY_TILE = 32;

const FORMAT = "cairn.knn.prepared";
const UNIT_ROUNDOFF = 2 ** -53;

interface KernelCache {
  vectors: Float64Array;
  kernelSqNorms: Float64Array;
}

const kernelCache = new WeakMap<PreparedReference, KernelCache>();

/**
 * Precomputes what searching a reference needs: column means (for centring),
 * squared row norms, and checks that every value is finite.
 *
 * @param reference The reference matrix; its data is shared, not copied.
 * @param metric The metric searches will use.
 * @param options The cosine zero-vector policy.
 * @returns A CBOR-encodable prepared reference.
 * @throws {RangeError} On a non-finite value, or a zero row under cosine with `zeroVector: "throw"`.
 * @throws {TypeError} On an unknown metric.
 *
 * @example Prepare a reference for Euclidean search
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float32Array([0, 0, 2, 2]), 2);
 * const prepared = prepareReference(ref, "euclidean");
 * assert.deepEqual(Array.from(prepared.mean), [1, 1]);
 * assert.deepEqual(Array.from(prepared.sqNorms), [2, 2]);
 * ```
 */
export function prepareReference(
  reference: Matrix,
  metric: Metric,
  options: PrepareOptions = {},
): PreparedReference {
  checkMetric(metric);
  const zeroVector = options.zeroVector ?? "throw";
  if (zeroVector !== "throw" && zeroVector !== "one") {
    throw new TypeError(
      `Cannot prepare reference matrix: zeroVector "${
        String(zeroVector)
      }" is not supported; use "throw" or "one"`,
    );
  }
  const { data, rows, cols } = reference;
  if (rows < 1 || cols < 1) {
    throw new RangeError(
      `Cannot prepare reference matrix: it is empty (${rows} × ${cols})`,
    );
  }
  validateFinite(reference, "reference matrix");
  const mean = new Float64Array(cols);
  if (metric === "euclidean" || metric === "sqeuclidean") {
    addColumnSums(data, cols, mean);
    for (let c = 0; c < cols; c++) mean[c] = mean[c]! / rows;
  }
  const sqNorms = new Float64Array(rows);
  fillSqNorms(
    data,
    cols,
    mean,
    sqNorms,
    0,
    metric === "cosine" && zeroVector === "throw",
  );
  return {
    format: FORMAT,
    version: 1,
    metric,
    rows,
    cols,
    reference: data,
    mean,
    sqNorms,
    zeroVector,
  };
}

/**
 * Adds each column of row-major `data` into `sums`, row by row: the order
 * {@linkcode prepareReference} sums in, so summing a matrix in consecutive
 * pieces gives the same float64 totals as summing it whole.
 *
 * @param data Row-major values.
 * @param cols Columns.
 * @param sums Running column totals, updated in place.
 *
 * @example Two pieces, one total
 * ```ts
 * import assert from "node:assert/strict";
 * import { addColumnSums } from "./kernel.ts";
 *
 * const sums = new Float64Array(2);
 * addColumnSums(new Float32Array([1, 2]), 2, sums);
 * addColumnSums(new Float32Array([3, 4, 5, 6]), 2, sums);
 * assert.deepEqual(Array.from(sums), [9, 12]);
 * ```
 */
export function addColumnSums(
  data: MatrixData,
  cols: number,
  sums: Float64Array,
): void {
  const rows = Math.floor(data.length / cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) sums[c] = sums[c]! + data[base + c]!;
  }
}

/**
 * Writes Σ (yᵢ − meanᵢ)² of each row of `data` to `out` from `outOffset`,
 * summed in column order in float64, as {@linkcode prepareReference} does.
 *
 * @param data Row-major values.
 * @param cols Columns.
 * @param mean Column means (zeros for cosine and ip).
 * @param out Where the norms go.
 * @param outOffset Index in `out` (and global row number) of the first row.
 * @param rejectZero Throw on a zero row (cosine with `zeroVector: "throw"`).
 * @throws {RangeError} On a zero row when `rejectZero` is set.
 *
 * @example Norms of two rows
 * ```ts
 * import assert from "node:assert/strict";
 * import { fillSqNorms } from "./kernel.ts";
 *
 * const out = new Float64Array(3);
 * fillSqNorms(new Float32Array([3, 4, 1, 0]), 2, new Float64Array(2), out, 1, false);
 * assert.deepEqual(Array.from(out), [0, 25, 1]);
 * ```
 */
export function fillSqNorms(
  data: MatrixData,
  cols: number,
  mean: Float64Array,
  out: Float64Array,
  outOffset: number,
  rejectZero: boolean,
): void {
  const rows = Math.floor(data.length / cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const v = data[base + c]! - mean[c]!;
      s += v * v;
    }
    out[outOffset + r] = s;
    if (rejectZero && s === 0) {
      throw new RangeError(
        `Cannot prepare reference matrix for cosine: row ${
          outOffset + r
        } is a zero vector; remove it or pass zeroVector: "one" to give it distance 1 to everything`,
      );
    }
  }
}

/** Options for {@linkcode validatePrepared}. */
export interface ValidatePreparedOptions {
  /**
   * Skip the `reference` field: the rows stay in a file and are read in
   * tiles. Default: false.
   */
  withoutReference?: boolean;
}

/**
 * Checks that a value (such as one decoded from CBOR) is a well-formed
 * {@linkcode PreparedReference}.
 *
 * Only shapes and types are checked; values are trusted.
 *
 * @param value The candidate.
 * @param options Whether to skip the `reference` field.
 * @returns The same value, typed.
 * @throws {TypeError} Naming the first field that is missing or malformed.
 *
 * @example Reject a truncated norms array
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference, validatePrepared } from "./kernel.ts";
 *
 * const prepared = prepareReference(matrixFrom(new Float64Array([1, 2]), 1), "ip");
 * assert.equal(validatePrepared(prepared), prepared);
 * assert.throws(
 *   () => validatePrepared({ ...prepared, sqNorms: new Float64Array(1) }),
 *   /field "sqNorms"/,
 * );
 * ```
 */
export function validatePrepared(
  value: unknown,
  options: ValidatePreparedOptions = {},
): PreparedReference {
  const fail = (field: string, want: string): never => {
    throw new TypeError(
      `Cannot use prepared reference: field "${field}" must be ${want}; prepare it again with prepareReference()`,
    );
  };
  if (typeof value !== "object" || value === null) {
    return fail("format", `"${FORMAT}" in an object`);
  }
  const v = value as Record<string, unknown>;
  if (v.format !== FORMAT) fail("format", `"${FORMAT}"`);
  if (v.version !== 1) fail("version", "1");
  if (!METRICS.includes(v.metric as Metric)) {
    fail("metric", METRICS.map((m) => `"${m}"`).join(", "));
  }
  const rows = v.rows;
  const cols = v.cols;
  if (!Number.isSafeInteger(rows) || (rows as number) < 1) {
    fail("rows", "a positive integer");
  }
  if (!Number.isSafeInteger(cols) || (cols as number) < 1) {
    fail("cols", "a positive integer");
  }
  const n = rows as number;
  const d = cols as number;
  if (
    options.withoutReference !== true &&
    (!(v.reference instanceof Float32Array ||
      v.reference instanceof Float64Array) ||
      v.reference.length !== n * d)
  ) {
    fail("reference", `a Float32Array or Float64Array of length ${n * d}`);
  }
  if (!(v.mean instanceof Float64Array) || v.mean.length !== d) {
    fail("mean", `a Float64Array of length ${d}`);
  }
  if (!(v.sqNorms instanceof Float64Array) || v.sqNorms.length !== n) {
    fail("sqNorms", `a Float64Array of length ${n}`);
  }
  if (v.zeroVector !== "throw" && v.zeroVector !== "one") {
    fail("zeroVector", `"throw" or "one"`);
  }
  return value as PreparedReference;
}

/**
 * Validates a query block and turns it into kernel form: checks the
 * dimension, that rows `start..end` are finite, and (cosine) zero vectors.
 *
 * @param prepared The prepared reference.
 * @param queries The query matrix (the reference itself for self-search).
 * @param range Rows `start` (inclusive) to `end` (exclusive) of `queries`.
 * @returns The block, ready for {@linkcode computeKeyTile}.
 * @throws {TypeError} If the column counts differ.
 * @throws {RangeError} On a bad range, a non-finite value, or a disallowed zero vector.
 *
 * @example Centre two query rows
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareQueries, prepareReference } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float64Array([0, 2]), 1);
 * const prepared = prepareReference(ref, "sqeuclidean");
 * const block = prepareQueries(prepared, ref, { start: 0, end: 2 });
 * assert.deepEqual(Array.from(block.vectors), [-1, 1]);
 * ```
 */
export function prepareQueries(
  prepared: PreparedReference,
  queries: Matrix,
  range: { start: number; end: number },
): QueryBlock {
  const { start, end } = range;
  if (queries.cols !== prepared.cols) {
    throw new TypeError(
      `Cannot search: query has ${queries.cols} columns, but the reference has ${prepared.cols}`,
    );
  }
  checkRange(start, end, queries.rows);
  validateFinite(queries, "query matrix", { start, end });
  const { metric, mean } = prepared;
  const d = prepared.cols;
  const n = end - start;
  const data = queries.data;
  const vectors = new Float64Array(n * d);
  const kernelSqNorms = new Float64Array(n);
  const sqNorms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const src = (start + i) * d;
    const dst = i * d;
    let raw = 0;
    let centred = 0;
    for (let c = 0; c < d; c++) {
      const x = data[src + c]!;
      raw += x * x;
      const v = x - mean[c]!;
      vectors[dst + c] = v;
      centred += v * v;
    }
    sqNorms[i] = raw;
    kernelSqNorms[i] = centred;
    if (metric === "cosine") {
      if (raw === 0) {
        if (prepared.zeroVector === "throw") {
          throw new RangeError(
            `Cannot search with cosine: query row ${
              start + i
            } is a zero vector; remove it or prepare the reference with zeroVector: "one"`,
          );
        }
        kernelSqNorms[i] = 0;
      } else {
        const norm = Math.sqrt(raw);
        for (let c = 0; c < d; c++) {
          vectors[dst + c] = vectors[dst + c]! / norm;
        }
        kernelSqNorms[i] = 1;
      }
    }
  }
  return { start, end, cols: d, data, vectors, kernelSqNorms, sqNorms };
}

/**
 * Computes approximate keys and their error bounds for a tile of query rows
 * against a range of reference rows.
 *
 * For each pair, `|key - exactKey| <= slack`, so a caller may discard a pair
 * whose `key - slack` exceeds a threshold without ever computing it exactly.
 *
 * @param prepared The prepared reference.
 * @param block The query block.
 * @param tile Which rows, and the output arrays (each at least
 *   `(queryEnd - queryStart) * (refEnd - refStart)` long).
 *
 * @example Keys match exact values within their slack
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import {
 *   computeKeyTile,
 *   exactKey,
 *   prepareQueries,
 *   prepareReference,
 * } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float64Array([1000, 1000.1, 1000.3]), 1);
 * const prepared = prepareReference(ref, "sqeuclidean");
 * const block = prepareQueries(prepared, ref, { start: 0, end: 3 });
 * const tile = {
 *   queryStart: 0, queryEnd: 3, refStart: 0, refEnd: 3,
 *   key: new Float64Array(9), slack: new Float64Array(9),
 * };
 * computeKeyTile(prepared, block, tile);
 * for (let q = 0; q < 3; q++) {
 *   for (let r = 0; r < 3; r++) {
 *     const exact = exactKey(prepared, block, q, r);
 *     assert.ok(Math.abs(tile.key[q * 3 + r]! - exact) <= tile.slack[q * 3 + r]!);
 *   }
 * }
 * ```
 */
export function computeKeyTile(
  prepared: PreparedReference,
  block: QueryBlock,
  tile: KeyTile,
): void {
  const { vectors: refVectors, kernelSqNorms: refNorms } = kernelData(prepared);
  const d = prepared.cols;
  const { queryStart, queryEnd, refStart, refEnd, key, slack } = tile;
  const width = refEnd - refStart;
  dotTile(
    block.vectors,
    (queryStart - block.start) * d,
    queryEnd - queryStart,
    refVectors,
    refStart,
    refEnd,
    d,
    key,
  );
  // Error bound. With a = x − mean and b = y − mean, rounding the centred
  // vectors perturbs ‖a − b‖² by about 2u(‖a‖ + ‖b‖)², the norms-trick sum
  // errs by at most about (d + 3)u(‖a‖ + ‖b‖)², and the direct sum in
  // exactKey by (d + 2)u‖x − y‖²; all of these are below
  // (8d + 64)u(‖a‖² + ‖b‖²), since (‖a‖ + ‖b‖)² <= 2(‖a‖² + ‖b‖²). Cosine
  // (unit vectors) and ip (raw vectors) obey the same form; c doubles it.
  const c = (16 * d + 128) * UNIT_ROUNDOFF;
  const qNorms = block.kernelSqNorms;
  const metric = prepared.metric;
  for (let q = queryStart; q < queryEnd; q++) {
    const qn = qNorms[q - block.start]!;
    const row = (q - queryStart) * width;
    if (metric === "cosine") {
      for (let j = 0; j < width; j++) {
        const o = row + j;
        key[o] = 1 - key[o]!;
        slack[o] = c * (qn + refNorms[refStart + j]!);
      }
    } else if (metric === "ip") {
      for (let j = 0; j < width; j++) {
        const o = row + j;
        key[o] = -key[o]!;
        slack[o] = c * (qn + refNorms[refStart + j]!);
      }
    } else {
      for (let j = 0; j < width; j++) {
        const o = row + j;
        const sum = qn + refNorms[refStart + j]!;
        const k = sum - 2 * key[o]!;
        key[o] = k > 0 ? k : 0;
        slack[o] = c * sum;
      }
    }
  }
}

/** What {@linkcode scanKeyTiles} calls as it walks a query block. */
export interface KeyTileScan {
  /**
   * Before the tiles of query rows `queryStart..queryEnd` (at most
   * {@linkcode QUERY_TILE} rows).
   */
  startQueries?(queryStart: number, queryEnd: number): void;
  /**
   * One computed tile of the current query rows; reference tiles come in
   * order. The tile object and its buffers are reused by the next call.
   */
  tile(tile: Readonly<KeyTile>): void;
  /** After the last reference tile of query rows `queryStart..queryEnd`. */
  endQueries?(queryStart: number, queryEnd: number): void;
}

/**
 * Walks a query block tile by tile: for each run of up to
 * {@linkcode QUERY_TILE} query rows, computes its keys against each run of
 * up to {@linkcode REF_TILE} reference rows, in order, with
 * {@linkcode computeKeyTile}, and hands every tile to `scan`.
 *
 * @param prepared The prepared reference.
 * @param block The query block, from {@linkcode prepareQueries}.
 * @param scan What to do before, with and after each query tile's keys.
 *
 * @example Visit every pair once
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareQueries, prepareReference, scanKeyTiles } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float64Array(600).map((_, i) => i), 1);
 * const prepared = prepareReference(ref, "sqeuclidean");
 * const block = prepareQueries(prepared, ref, { start: 10, end: 50 });
 * let pairs = 0;
 * let queryTiles = 0;
 * scanKeyTiles(prepared, block, {
 *   startQueries: () => queryTiles++,
 *   tile: (t) => {
 *     pairs += (t.queryEnd - t.queryStart) * (t.refEnd - t.refStart);
 *   },
 * });
 * assert.equal(pairs, 40 * 600);
 * assert.equal(queryTiles, 2);
 * ```
 */
export function scanKeyTiles(
  prepared: PreparedReference,
  block: QueryBlock,
  scan: KeyTileScan,
): void {
  const nRef = prepared.rows;
  const tile: KeyTile = {
    queryStart: 0,
    queryEnd: 0,
    refStart: 0,
    refEnd: 0,
    key: new Float64Array(QUERY_TILE * REF_TILE),
    slack: new Float64Array(QUERY_TILE * REF_TILE),
  };
  for (let q0 = block.start; q0 < block.end; q0 += QUERY_TILE) {
    const q1 = Math.min(block.end, q0 + QUERY_TILE);
    scan.startQueries?.(q0, q1);
    for (let r0 = 0; r0 < nRef; r0 += REF_TILE) {
      tile.queryStart = q0;
      tile.queryEnd = q1;
      tile.refStart = r0;
      tile.refEnd = Math.min(nRef, r0 + REF_TILE);
      computeKeyTile(prepared, block, tile);
      scan.tile(tile);
    }
    scan.endQueries?.(q0, q1);
  }
}

/**
 * Computes the exact key of a query row against a reference row, directly
 * from the original values in float64, summing in column order.
 *
 * The value depends only on the two rows, never on blocking or tiling.
 *
 * @param prepared The prepared reference.
 * @param block The query block holding `queryRow`.
 * @param queryRow Global query row, in `block.start..block.end`.
 * @param refRow Reference row.
 * @returns The key (smaller is nearer); see {@linkcode keyToDistance}.
 *
 * @example The exact squared distance
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { exactKey, prepareQueries, prepareReference } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float64Array([0, 0, 3, 4]), 2);
 * const prepared = prepareReference(ref, "euclidean");
 * const block = prepareQueries(prepared, ref, { start: 0, end: 2 });
 * assert.equal(exactKey(prepared, block, 0, 1), 25);
 * ```
 */
export function exactKey(
  prepared: PreparedReference,
  block: QueryBlock,
  queryRow: number,
  refRow: number,
): number {
  const d = prepared.cols;
  const x = block.data;
  const y = prepared.reference;
  const xo = queryRow * d;
  const yo = refRow * d;
  const metric = prepared.metric;
  if (metric === "euclidean" || metric === "sqeuclidean") {
    let s = 0;
    for (let c = 0; c < d; c++) {
      const diff = x[xo + c]! - y[yo + c]!;
      s += diff * diff;
    }
    return s;
  }
  let dot = 0;
  for (let c = 0; c < d; c++) dot += x[xo + c]! * y[yo + c]!;
  if (metric === "ip") return -dot;
  const nx = block.sqNorms[queryRow - block.start]!;
  const ny = prepared.sqNorms[refRow]!;
  if (nx === 0 || ny === 0) return 1;
  const k = 1 - dot / Math.sqrt(nx * ny);
  return k < 0 ? 0 : k > 2 ? 2 : k;
}

/**
 * Converts a key to the distance reported for a metric.
 *
 * @param metric The metric.
 * @param key A key from {@linkcode exactKey}.
 * @returns √key for `euclidean`, −key for `ip`, the key otherwise.
 *
 * @example Keys and distances
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyToDistance } from "./kernel.ts";
 *
 * assert.equal(keyToDistance("euclidean", 25), 5);
 * assert.equal(keyToDistance("ip", -3), 3);
 * assert.equal(keyToDistance("cosine", 0.5), 0.5);
 * ```
 */
export function keyToDistance(metric: Metric, key: number): number {
  if (metric === "euclidean") return Math.sqrt(key);
  if (metric === "ip") return -key;
  return key;
}

/**
 * Checks a row range `start..end` against a row count.
 *
 * @param start First row.
 * @param end One past the last row.
 * @param rows Rows available.
 * @throws {RangeError} Unless `0 <= start <= end <= rows` with integers.
 *
 * @example Accept an empty range, reject an overrun
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRange } from "./kernel.ts";
 *
 * checkRange(3, 3, 5);
 * assert.throws(() => checkRange(2, 6, 5), RangeError);
 * ```
 */
export function checkRange(start: number, end: number, rows: number): void {
  if (
    !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 ||
    end < start || end > rows
  ) {
    throw new RangeError(
      `Cannot search: query rows start = ${start}, end = ${end} are not a range within 0..${rows}; use integers with 0 <= start <= end <= ${rows}`,
    );
  }
}

/**
 * Checks that a self-search's queries can be the reference: excluding self
 * pairs query row `i` with reference row `i`, so the row counts must match.
 *
 * @param prepared The prepared reference.
 * @param queries The query matrix.
 * @param excludeSelf Whether the search excludes self; nothing is checked otherwise.
 * @throws {RangeError} If `excludeSelf` is set and the row counts differ.
 *
 * @example Self-search needs the reference as the queries
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { checkSelf, prepareReference } from "./kernel.ts";
 *
 * const ref = matrixFrom(new Float64Array([0, 1, 2]), 1);
 * const prepared = prepareReference(ref, "euclidean");
 * checkSelf(prepared, ref, true);
 * const other = matrixFrom(new Float64Array([5]), 1);
 * checkSelf(prepared, other, false);
 * assert.throws(() => checkSelf(prepared, other, true), /Cannot exclude self/);
 * ```
 */
export function checkSelf(
  prepared: PreparedReference,
  queries: Matrix,
  excludeSelf: boolean,
): void {
  if (excludeSelf && queries.rows !== prepared.rows) {
    throw new RangeError(
      `Cannot exclude self: the query matrix has ${queries.rows} rows, but the reference has ${prepared.rows}; self-search takes the reference matrix as the queries`,
    );
  }
}

/**
 * Checks that a value is a supported {@linkcode Metric}.
 *
 * @param metric The candidate.
 * @throws {TypeError} Listing the supported metrics.
 *
 * @example Reject a misspelling
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkMetric } from "./kernel.ts";
 *
 * checkMetric("cosine");
 * assert.throws(() => checkMetric("l2"), /"l2" is not supported/);
 * ```
 */
export function checkMetric(metric: unknown): asserts metric is Metric {
  if (!METRICS.includes(metric as Metric)) {
    throw new TypeError(
      `Cannot use metric "${String(metric)}": "${
        String(metric)
      }" is not supported; use ${METRICS.map((m) => `"${m}"`).join(", ")}`,
    );
  }
}

/** Derives (once per prepared object) the float64 kernel vectors. */
function kernelData(prepared: PreparedReference): KernelCache {
  let cached = kernelCache.get(prepared);
  if (cached !== undefined) return cached;
  const { rows, cols, reference, mean, sqNorms, metric } = prepared;
  const vectors = new Float64Array(rows * cols);
  let kernelSqNorms = sqNorms;
  if (metric === "cosine") {
    kernelSqNorms = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const s = sqNorms[r]!;
      if (s === 0) continue;
      const norm = Math.sqrt(s);
      for (let c = 0; c < cols; c++) {
        vectors[base + c] = reference[base + c]! / norm;
      }
      kernelSqNorms[r] = 1;
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) {
        vectors[base + c] = reference[base + c]! - mean[c]!;
      }
    }
  }
  cached = { vectors, kernelSqNorms };
  kernelCache.set(prepared, cached);
  return cached;
}

/**
 * Dot products of `nq` query vectors (from `qOffset` in `q`) with reference
 * rows `r0..r1`, written row-major into `out`. Every product sums columns in
 * order 0..d−1, whichever register-tile path computes it.
 */
function dotTile(
  q: Float64Array,
  qOffset: number,
  nq: number,
  r: Float64Array,
  r0: number,
  r1: number,
  d: number,
  out: Float64Array,
): void {
  const width = r1 - r0;
  let i = 0;
  for (; i + 1 < nq; i += 2) {
    const a0 = qOffset + i * d;
    const a1 = a0 + d;
    const o0 = i * width;
    const o1 = o0 + width;
    let j = r0;
    for (; j + 3 < r1; j += 4) {
      const b0 = j * d;
      const b1 = b0 + d;
      const b2 = b1 + d;
      const b3 = b2 + d;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
      let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let t = 0; t < d; t++) {
        const x0 = q[a0 + t]!;
        const x1 = q[a1 + t]!;
        const y0 = r[b0 + t]!;
        const y1 = r[b1 + t]!;
        const y2 = r[b2 + t]!;
        const y3 = r[b3 + t]!;
        s00 += x0 * y0;
        s01 += x0 * y1;
        s02 += x0 * y2;
        s03 += x0 * y3;
        s10 += x1 * y0;
        s11 += x1 * y1;
        s12 += x1 * y2;
        s13 += x1 * y3;
      }
      const p = j - r0;
      out[o0 + p] = s00;
      out[o0 + p + 1] = s01;
      out[o0 + p + 2] = s02;
      out[o0 + p + 3] = s03;
      out[o1 + p] = s10;
      out[o1 + p + 1] = s11;
      out[o1 + p + 2] = s12;
      out[o1 + p + 3] = s13;
    }
    for (; j < r1; j++) {
      const b0 = j * d;
      let s0 = 0, s1 = 0;
      for (let t = 0; t < d; t++) {
        const y = r[b0 + t]!;
        s0 += q[a0 + t]! * y;
        s1 += q[a1 + t]! * y;
      }
      out[o0 + j - r0] = s0;
      out[o1 + j - r0] = s1;
    }
  }
  for (; i < nq; i++) {
    const a0 = qOffset + i * d;
    const o0 = i * width;
    let j = r0;
    for (; j + 3 < r1; j += 4) {
      const b0 = j * d;
      const b1 = b0 + d;
      const b2 = b1 + d;
      const b3 = b2 + d;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let t = 0; t < d; t++) {
        const x = q[a0 + t]!;
        s0 += x * r[b0 + t]!;
        s1 += x * r[b1 + t]!;
        s2 += x * r[b2 + t]!;
        s3 += x * r[b3 + t]!;
      }
      const p = j - r0;
      out[o0 + p] = s0;
      out[o0 + p + 1] = s1;
      out[o0 + p + 2] = s2;
      out[o0 + p + 3] = s3;
    }
    for (; j < r1; j++) {
      const b0 = j * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += q[a0 + t]! * r[b0 + t]!;
      out[o0 + j - r0] = s;
    }
  }
}
