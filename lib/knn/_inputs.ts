/**
 * Loading and checking the matrices a kNN job reads, before it touches a
 * store: every bad input fails here with a message naming the file and row.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { checkMetric, type Metric, type ZeroVectorPolicy } from "./kernel.ts";
import { type Matrix, type MatrixData, validateFinite } from "./matrix.ts";
import { readMatrixFile } from "../io/npy.ts";

/** A matrix, or the path of a `.npy` / `.fvecs` file holding one. */
export type MatrixInput = Matrix | string;

/** A loaded, checked input. */
export interface LoadedMatrix {
  matrix: Matrix;
  /** For messages: `reference matrix "r.npy"` or `reference matrix`. */
  label: string;
}

/**
 * Load a matrix (from a path, or as given) and check its shape and values.
 *
 * @param input A matrix or a file path.
 * @param role `reference` or `query`, for messages.
 * @returns The matrix and its label.
 */
export async function loadMatrix(
  input: MatrixInput,
  role: "reference" | "query",
): Promise<LoadedMatrix> {
  const label = typeof input === "string"
    ? `${role} matrix "${input}"`
    : `${role} matrix`;
  const matrix = typeof input === "string"
    ? await readMatrixFile(input)
    : input;
  checkMatrixShape(matrix, label);
  validateFinite(matrix, label);
  return { matrix, label };
}

/** Check that a value is a non-empty float matrix whose data fits its shape. */
function checkMatrixShape(m: Matrix, label: string): void {
  if (typeof m !== "object" || m === null) {
    throw new TypeError(
      `Cannot use ${label}: expected a matrix ({ data, rows, cols }) or a file path, but got ${
        m === null ? "null" : typeof m
      }`,
    );
  }
  if (!(m.data instanceof Float32Array) && !(m.data instanceof Float64Array)) {
    throw new TypeError(
      `Cannot use ${label}: its data must be a Float32Array or Float64Array; build it with matrixFrom()`,
    );
  }
  if (
    !Number.isSafeInteger(m.rows) || !Number.isSafeInteger(m.cols) ||
    m.rows < 0 || m.cols < 0 || m.data.length !== m.rows * m.cols
  ) {
    throw new TypeError(
      `Cannot use ${label}: shape ${String(m.rows)} × ${
        String(m.cols)
      } does not match its ${m.data.length} values`,
    );
  }
  if (m.rows === 0 || m.cols === 0) {
    throw new RangeError(
      `Cannot use ${label}: it is empty (${m.rows} × ${m.cols}); a matrix needs at least one row and one column`,
    );
  }
}

/**
 * Check the column counts of a query against its reference.
 *
 * @param ref The reference.
 * @param query The query.
 */
export function checkSameDim(ref: LoadedMatrix, query: LoadedMatrix): void {
  if (ref.matrix.cols !== query.matrix.cols) {
    throw new TypeError(
      `Cannot search: ${query.label} has ${query.matrix.cols} columns, but ${ref.label} has ${ref.matrix.cols}; both need the same dimension`,
    );
  }
}

/**
 * Under cosine with the "throw" policy, reject the first zero row.
 *
 * @param m The matrix.
 * @param metric The metric.
 * @param zeroVector The policy.
 */
export function checkZeroRows(
  m: LoadedMatrix,
  metric: Metric,
  zeroVector: ZeroVectorPolicy,
): void {
  if (metric !== "cosine" || zeroVector !== "throw") return;
  rejectZeroRows(m.matrix.data, m.matrix.cols, 0, m.label);
}

/**
 * Reject the first all-zero row of row-major data (cosine with `"throw"`).
 *
 * @param data Row-major values: the whole matrix or a piece of it.
 * @param cols Columns.
 * @param rowOffset Global row number of the first row, for the message.
 * @param label The matrix, for the message.
 */
export function rejectZeroRows(
  data: MatrixData,
  cols: number,
  rowOffset: number,
  label: string,
): void {
  const rows = data.length / cols;
  for (let r = 0; r < rows; r++) {
    let zero = true;
    for (let c = r * cols, end = c + cols; c < end; c++) {
      if (data[c] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) {
      throw new RangeError(
        `Cannot use ${label} with cosine: row ${
          rowOffset + r
        } is a zero vector, whose direction is undefined; remove it, or pass zeroVector: "one" to give it distance 1 to everything`,
      );
    }
  }
}

/**
 * Check the metric and zero-vector policy options.
 *
 * @param metric The metric.
 * @param zeroVector The policy.
 */
export function checkMetricOptions(
  metric: unknown,
  zeroVector: unknown,
): void {
  checkMetric(metric);
  if (zeroVector !== "throw" && zeroVector !== "one") {
    throw new TypeError(
      `Cannot use zeroVector "${
        String(zeroVector)
      }": it is not supported; use "throw" or "one"`,
    );
  }
}

/**
 * Check k against the usable reference rows.
 *
 * @param k Neighbours per row.
 * @param refRows Reference rows.
 * @param excludeSelf Whether a row's own index is excluded.
 */
export function checkK(
  k: unknown,
  refRows: number,
  excludeSelf: boolean,
): void {
  if (typeof k !== "number" || !Number.isSafeInteger(k) || k < 1) {
    throw new RangeError(
      `Cannot search: expected k >= 1, but k = ${
        String(k)
      }; pass a positive whole number`,
    );
  }
  const usable = refRows - (excludeSelf ? 1 : 0);
  if (k > usable) {
    const detail = excludeSelf
      ? `usable reference rows = ${usable} (${refRows} rows, excluding self)`
      : `reference rows = ${refRows}`;
    const fix = excludeSelf && k === refRows
      ? "lower k, or include self"
      : "lower k";
    throw new RangeError(
      `Cannot search: expected k <= usable reference rows, but ${detail}, k = ${k}; ${fix}`,
    );
  }
}

/**
 * Check that an output directory is not a file (it may not exist yet).
 *
 * @param dir The directory.
 */
export async function checkOutDir(dir: string): Promise<void> {
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(
      `Cannot write outputs: the output directory must be a non-empty path, but it is ${
        JSON.stringify(dir)
      }`,
    );
  }
  const info = await stat(dir).catch((error: { code?: string }) => {
    if (error.code === "ENOENT") return undefined;
    if (error.code === "ENOTDIR") {
      throw new Error(
        `Cannot write outputs to "${dir}": part of the path is a file, not a directory; choose another output directory`,
      );
    }
    throw error;
  });
  if (info !== undefined && !info.isDirectory()) {
    throw new Error(
      `Cannot write outputs to "${dir}": it is a file, not a directory; choose another output directory`,
    );
  }
}

/** The options that choose and check a search's inputs. */
export interface SearchInputOptions {
  /** Distance metric. Default: `"euclidean"`. */
  metric?: Metric;
  /** Cosine zero vectors: `"throw"` or `"one"`. Default: `"throw"`. */
  zeroVector?: ZeroVectorPolicy;
  /** Self-search only. Default: true without a query, false with one. */
  excludeSelf?: boolean;
  /** Output directory, checked when given. Default: none. */
  out?: string;
}

/** A search's inputs after loading and checking. */
export interface SearchInputs {
  ref: LoadedMatrix;
  /** The query matrix; undefined for a self-search. */
  query: LoadedMatrix | undefined;
  metric: Metric;
  /** The policy; always `"throw"` unless the metric is cosine, the only one it affects. */
  zeroVector: ZeroVectorPolicy;
  excludeSelf: boolean;
}

/**
 * Check a search's options, then load and check its matrices: the metric
 * and zero-vector policy, `excludeSelf` without a query, the output
 * directory, each matrix's shape and values, equal dimensions, and (cosine
 * with `"throw"`) zero rows.
 *
 * @param refInput The reference matrix or its path.
 * @param queryInput The query matrix or its path; undefined for a self-search.
 * @param options Metric, zero-vector policy, `excludeSelf` and `out`.
 * @returns The loaded matrices and the resolved options.
 */
export async function loadSearchInputs(
  refInput: MatrixInput,
  queryInput: MatrixInput | undefined,
  options: SearchInputOptions,
): Promise<SearchInputs> {
  const resolved = await resolveSearchOptions(
    queryInput !== undefined,
    options,
  );
  const ref = await loadMatrix(refInput, "reference");
  const query = queryInput === undefined
    ? undefined
    : await loadMatrix(queryInput, "query");
  return checkLoaded(ref, query, resolved);
}

/** A search's options after checking: everything but the matrices. */
export type ResolvedSearchOptions = Omit<SearchInputs, "ref" | "query">;

/**
 * Check a search's options before any matrix is read: the metric and
 * zero-vector policy, `excludeSelf` without a query, the output directory.
 *
 * @param hasQuery Whether a query matrix was given.
 * @param options The options.
 * @returns The resolved metric, policy and `excludeSelf`.
 */
export async function resolveSearchOptions(
  hasQuery: boolean,
  options: SearchInputOptions,
): Promise<ResolvedSearchOptions> {
  const metric = options.metric ?? "euclidean";
  checkMetricOptions(metric, options.zeroVector ?? "throw");
  // The policy only matters for cosine; fixing it elsewhere keeps job keys equal.
  const zeroVector = metric === "cosine"
    ? options.zeroVector ?? "throw"
    : "throw";
  if (hasQuery && options.excludeSelf === true) {
    throw new RangeError(
      "Cannot exclude self: excludeSelf applies to self-search only, but a query matrix was given; drop the query or excludeSelf",
    );
  }
  const excludeSelf = !hasQuery ? (options.excludeSelf ?? true) : false;
  if (options.out !== undefined) await checkOutDir(options.out);
  return { metric, zeroVector, excludeSelf };
}

/**
 * The checks that need both loaded matrices: equal dimensions, then
 * (cosine with `"throw"`) zero rows.
 *
 * @param ref The reference.
 * @param query The query, if any.
 * @param resolved The resolved options.
 * @returns The search inputs.
 */
export function checkLoaded(
  ref: LoadedMatrix,
  query: LoadedMatrix | undefined,
  resolved: ResolvedSearchOptions,
): SearchInputs {
  const { metric, zeroVector } = resolved;
  if (query !== undefined) checkSameDim(ref, query);
  checkZeroRows(ref, metric, zeroVector);
  if (query !== undefined) checkZeroRows(query, metric, zeroVector);
  return { ref, query, ...resolved };
}
