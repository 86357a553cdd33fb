/**
 * Evaluating approximate neighbour lists against exact results, on files or
 * arrays: {@linkcode knnRecall} (recall@k against a `knnJob` output) and
 * {@linkcode knnRerank} (exact reranking of candidate lists, such as an
 * approximate index's output). These are quick single passes, not jobs.
 *
 * @module
 */

import { extname, join } from "node:path";
import { loadSearchInputs, type MatrixInput } from "./_inputs.ts";
import { openOutputs, type OutputFileInfo } from "./_outputs.ts";
import { recallAtK, rerankExact } from "./evaluate.ts";
import {
  type Metric,
  prepareReference,
  type ZeroVectorPolicy,
} from "./kernel.ts";
import { type IntTable, readIntFile } from "../io/npy.ts";

/** Neighbour lists: an {@linkcode IntTable}, or a `.npy` file of int32/int64. */
export type IndexInput = IntTable | string;

/** Options for {@linkcode knnRecall}. */
export interface KnnRecallOptions {
  /** Leading true neighbours to look for. Default: all of the truth's. */
  k?: number;
  /** Leading candidates to search. Default: all of them. */
  kCandidates?: number;
}

/** Result of {@linkcode knnRecall}. */
export interface KnnRecallResult {
  /** Recall in [0, 1]: the mean fraction of true neighbours found. */
  recall: number;
  /** Query rows compared. */
  rows: number;
  /** True neighbours per row looked for. */
  k: number;
  /** Candidates per row searched. */
  kCandidates: number;
}

async function loadIndex(input: IndexInput, role: string): Promise<IntTable> {
  if (typeof input !== "string") return input;
  const path = extname(input).toLowerCase() === ".npy"
    ? input
    : join(input, "index.npy");
  const table = await readIntFile(path);
  if (table.rows === 0 || table.cols === 0) {
    throw new RangeError(
      `Cannot use ${role} "${path}": it is empty (${table.rows} × ${table.cols})`,
    );
  }
  return table;
}

/**
 * Recall@k of candidate neighbour lists against exact ones.
 *
 * @param truth Exact neighbours: a `knnJob` output directory (its
 *   `index.npy`), an index `.npy` file, or a table.
 * @param candidates Candidate neighbours, one row per query row.
 * @param options The prefixes to compare.
 * @returns The recall and what was compared.
 * @throws {RangeError} If the row counts differ or k is out of range.
 *
 * @example Half of the true neighbours found
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnRecall } from "./evaluate_files.ts";
 * const truth = { data: new Int32Array([1, 2, 0, 2]), rows: 2, cols: 2 };
 * const approx = { data: new Int32Array([2, 9, 0, 1]), rows: 2, cols: 2 };
 * const r = await knnRecall(truth, approx);
 * assert.equal(r.recall, 0.5);
 * assert.equal(r.k, 2);
 * ```
 */
export async function knnRecall(
  truth: IndexInput,
  candidates: IndexInput,
  options: KnnRecallOptions = {},
): Promise<KnnRecallResult> {
  const t = await loadIndex(truth, "truth");
  const c = await loadIndex(candidates, "candidates");
  if (t.rows !== c.rows) {
    throw new RangeError(
      `Cannot compute recall: truth has ${t.rows} rows, but candidates have ${c.rows}; both need one row per query`,
    );
  }
  const k = options.k ?? t.cols;
  const kCandidates = options.kCandidates ?? c.cols;
  const recall = recallAtK(
    { index: t.data, k: t.cols },
    { index: c.data, k: c.cols },
    { k, kCandidates },
  );
  return { recall, rows: t.rows, k, kCandidates };
}

/** Options for {@linkcode knnRerank}. */
export interface KnnRerankOptions {
  /** Candidate reference rows, one row per query row (negative = none). Required. */
  candidates: IndexInput;
  /** Query matrix or file. Default: none (the reference itself). */
  query?: MatrixInput;
  /** Neighbours to keep, at most the candidates per row. Default: candidates per row. */
  k?: number;
  /** Distance metric. Default: `"euclidean"`. */
  metric?: Metric;
  /** Cosine zero vectors: `"throw"` or `"one"`. Default: `"throw"`. */
  zeroVector?: ZeroVectorPolicy;
  /**
   * Self-search only: drop each row's own index from its candidates.
   * Default: true without a query, false with one.
   */
  excludeSelf?: boolean;
  /** Directory for `index.npy` and `distance.npy`. Default: none (arrays only). */
  out?: string;
}

/** Result of {@linkcode knnRerank}. */
export interface KnnRerankResult {
  /** Query rows. */
  rows: number;
  /** Neighbours per row. */
  k: number;
  /** Reranked indices, rows × k; -1 pads rows with fewer valid candidates. */
  index: Int32Array;
  /** Exact distances; padding is Infinity (-Infinity for `ip`). */
  distance: Float32Array;
  /** Size and BLAKE3 of each output. */
  outputs: Record<string, OutputFileInfo>;
  /** Output paths by name; empty without `out`. */
  files: Record<string, string>;
}

/**
 * Exact rerank of candidate lists: the exact distance of every candidate,
 * keeping the best `k`, nearest first with ties to the lower index.
 *
 * @param ref The reference matrix or its path.
 * @param options Candidates, query, k, metric and output directory.
 * @returns The reranked lists (also written to `out` when given).
 * @throws {RangeError} On a candidate out of range, a row-count mismatch or a bad k.
 *
 * @example Fix the order of approximate candidates
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { knnRerank } from "./evaluate_files.ts";
 * const ref = matrixFrom(new Float64Array([0, 1, 2, 3]), 1);
 * const query = matrixFrom(new Float64Array([2.2]), 1);
 * const candidates = { data: new Int32Array([0, 3, 2, -1]), rows: 1, cols: 4 };
 * const out = await knnRerank(ref, { query, candidates, k: 2 });
 * assert.deepEqual(Array.from(out.index), [2, 3]);
 * ```
 */
export async function knnRerank(
  ref: MatrixInput,
  options: KnnRerankOptions,
): Promise<KnnRerankResult> {
  const { ref: r, query, metric, zeroVector, excludeSelf } =
    await loadSearchInputs(ref, options.query, options);
  const q = query ?? r;
  const table = await loadIndex(options.candidates, "candidates");
  const rows = q.matrix.rows;
  if (table.rows !== rows) {
    throw new RangeError(
      `Cannot rerank: candidates have ${table.rows} rows, but ${q.label} has ${rows}; pass one candidate row per query row`,
    );
  }
  const k = options.k ?? table.cols;
  if (!Number.isSafeInteger(k) || k < 1 || k > table.cols) {
    throw new RangeError(
      `Cannot rerank: expected 1 <= k <= ${table.cols} (candidates per row), but k = ${
        String(k)
      }`,
    );
  }
  let candidates = table.data;
  if (excludeSelf) {
    candidates = candidates.slice();
    for (let i = 0; i < candidates.length; i++) {
      if (candidates[i] === Math.floor(i / table.cols)) candidates[i] = -1;
    }
  }
  const prepared = prepareReference(r.matrix, metric, { zeroVector });
  const block = rerankExact(prepared, q.matrix, { candidates, k });
  const set = await openOutputs([
    { name: "index.npy", descr: "<i4", shape: [rows, k] },
    { name: "distance.npy", descr: "<f4", shape: [rows, k] },
  ], options.out === undefined ? {} : { dir: options.out });
  try {
    await set.sink("index.npy").append(block.index);
    await set.sink("distance.npy").append(block.distance);
  } catch (error) {
    await set.abort();
    throw error;
  }
  const { infos, written } = await set.commit();
  const files: Record<string, string> = {};
  if (options.out !== undefined) {
    for (const [i, name] of ["index.npy", "distance.npy"].entries()) {
      files[name] = written[i] ?? join(options.out, name);
    }
  }
  return {
    rows,
    k,
    index: block.index,
    distance: block.distance,
    outputs: infos,
    files,
  };
}
