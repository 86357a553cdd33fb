/**
 * Dense row-major matrices for cairn's exact kNN family.
 *
 * @module
 */
import { fingerprint } from "../../store/cbor.ts";
import { blake3HexYielding } from "../../store/hash.ts";

/** Element storage a {@linkcode Matrix} may use. */
export type MatrixData = Float32Array | Float64Array;

/**
 * A dense, row-major, two-dimensional matrix.
 *
 * Row `i` occupies `data[i * cols]` up to (not including) `data[(i + 1) * cols]`.
 * Rows and columns are numbered from 0 everywhere in cairn.
 */
export interface Matrix {
  /** The elements, row after row. Its length is `rows * cols`. */
  data: MatrixData;
  /** The number of rows (at least 1). */
  rows: number;
  /** The number of columns (at least 1). */
  cols: number;
}

/** Options for {@linkcode validateFinite}. */
export interface ValidateFiniteOptions {
  /** First row to check. Defaults to `0`. */
  start?: number;
  /** One past the last row to check. Defaults to `m.rows`. */
  end?: number;
  /**
   * Added to the row named in the message, when `m` is a piece of a larger
   * matrix (rows read from a file in tiles). Defaults to `0`.
   */
  rowOffset?: number;
}

/**
 * Wraps row-major data as a {@linkcode Matrix}, checking its shape.
 *
 * The data is not copied.
 *
 * @param data Row-major elements, as a `Float32Array` or `Float64Array`.
 * @param cols The number of columns; `data.length` must be a non-zero multiple of it.
 * @returns The matrix, with `rows = data.length / cols`.
 * @throws {TypeError} If `data` is not a float array or its length is not a multiple of `cols`.
 * @throws {RangeError} If `cols` is not a positive integer or the matrix has no rows.
 *
 * @example Wrap six numbers as a 3 × 2 matrix
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 *
 * const m = matrixFrom(new Float32Array([1, 2, 3, 4, 5, 6]), 2);
 * assert.equal(m.rows, 3);
 * assert.equal(m.cols, 2);
 * assert.throws(() => matrixFrom(new Float32Array(5), 2), TypeError);
 * ```
 */
export function matrixFrom(data: MatrixData, cols: number): Matrix {
  if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) {
    throw new TypeError(
      `Cannot create matrix: data is ${
        describeValue(data)
      }, but a Float32Array or Float64Array is required`,
    );
  }
  if (!Number.isSafeInteger(cols) || cols < 1) {
    throw new RangeError(
      `Cannot create matrix: cols must be a positive integer, but cols = ${
        String(cols)
      }`,
    );
  }
  if (data.length % cols !== 0) {
    throw new TypeError(
      `Cannot create matrix: data length ${data.length} is not a multiple of cols = ${cols}; pass row-major data with ${cols} values per row`,
    );
  }
  const rows = data.length / cols;
  if (rows === 0) {
    throw new RangeError(
      "Cannot create matrix: it has 0 rows; provide at least one row",
    );
  }
  return { data, rows, cols };
}

/**
 * Checks that every element in a range of rows is finite.
 *
 * @param m The matrix to check.
 * @param name What the matrix is, for the message, such as `"reference matrix"`.
 * @param options The rows to check; all rows by default.
 * @throws {RangeError} Naming the first row and column (both 0-based) that holds NaN or ±Infinity.
 *
 * @example Find the first NaN
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom, validateFinite } from "./matrix.ts";
 *
 * const m = matrixFrom(new Float64Array([0, 1, 2, NaN]), 2);
 * assert.throws(
 *   () => validateFinite(m, "reference matrix"),
 *   /Cannot use reference matrix: row 1 column 1 is NaN; remove or impute non-finite values/,
 * );
 * validateFinite(m, "reference matrix", { end: 1 }); // row 0 is fine
 * ```
 */
export function validateFinite(
  m: Matrix,
  name: string,
  options: ValidateFiniteOptions = {},
): void {
  const start = options.start ?? 0;
  const end = options.end ?? m.rows;
  const { data, cols } = m;
  const from = start * cols;
  const to = end * cols;
  for (let i = from; i < to; i++) {
    const v = data[i]!;
    // v - v is NaN exactly when v is NaN or ±Infinity.
    if (v - v !== 0) {
      const row = Math.floor(i / cols);
      const col = i - row * cols;
      throw new RangeError(
        `Cannot use ${name}: row ${
          row + (options.rowOffset ?? 0)
        } column ${col} is ${String(v)}; remove or impute non-finite values`,
      );
    }
  }
}

/** Describes a value's type for an error message. */
function describeValue(value: unknown): string {
  if (value === null) return '"null"';
  if (typeof value === "object") {
    return `"${(value as object).constructor?.name ?? "object"}"`;
  }
  return `"${typeof value}"`;
}

/**
 * The content identity of a matrix: BLAKE3 of its bytes, fingerprinted with
 * its shape and dtype. kNN jobs are keyed by it, so the same data gives the
 * same job wherever the file lives, and changed data a new one.
 *
 * @param matrix The matrix.
 * @returns 64 hex characters.
 *
 * @example Equal data, equal hash; another dtype, another hash
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashMatrix, matrixFrom } from "./matrix.ts";
 * const a = await hashMatrix(matrixFrom(new Float32Array([1, 2, 3, 4]), 2));
 * const b = await hashMatrix(matrixFrom(new Float32Array([1, 2, 3, 4]), 2));
 * const c = await hashMatrix(matrixFrom(new Float64Array([1, 2, 3, 4]), 2));
 * assert.equal(a, b);
 * assert.notEqual(a, c);
 * ```
 */
export async function hashMatrix(matrix: Matrix): Promise<string> {
  const bytes = new Uint8Array(
    matrix.data.buffer,
    matrix.data.byteOffset,
    matrix.data.byteLength,
  );
  const data = await blake3HexYielding(bytes, 16 << 20);
  return await matrixDigestHash({
    descr: matrix.data instanceof Float32Array ? "<f4" : "<f8",
    rows: matrix.rows,
    cols: matrix.cols,
  }, data);
}

/** A matrix's shape and dtype, for {@linkcode matrixDigestHash}. */
export interface MatrixHashShape {
  /** `"<f4"` or `"<f8"`. */
  descr: "<f4" | "<f8";
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
}

/**
 * The content identity {@linkcode hashMatrix} gives, from the BLAKE3 of the
 * matrix's data bytes (little-endian, row-major) computed elsewhere, such as
 * while streaming the data from a file in pieces.
 *
 * @param shape Dtype, rows and columns.
 * @param dataBlake3 BLAKE3-256 hex of the data bytes.
 * @returns 64 hex characters, equal to `hashMatrix` of the same matrix.
 *
 * @example The same identity as hashing the matrix whole
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Hex } from "../../store/hash.ts";
 * import { hashMatrix, matrixDigestHash, matrixFrom } from "./matrix.ts";
 * const data = new Float32Array([1, 2, 3, 4]);
 * const digest = await blake3Hex(new Uint8Array(data.buffer));
 * assert.equal(
 *   await matrixDigestHash({ descr: "<f4", rows: 2, cols: 2 }, digest),
 *   await hashMatrix(matrixFrom(data, 2)),
 * );
 * ```
 */
export async function matrixDigestHash(
  shape: MatrixHashShape,
  dataBlake3: string,
): Promise<string> {
  // The format name is part of every stored kNN job's identity: keep it.
  return await fingerprint({
    format: "cairn.knn.matrix",
    dtype: shape.descr,
    rows: shape.rows,
    cols: shape.cols,
    data: dataBlake3,
  });
}
