/**
 * Reading `.fvecs` files (the TEXMEX/ANN benchmark format): each vector is an
 * int32 dimension followed by that many float32 values, little-endian.
 *
 * @module
 */

import { type Matrix, matrixFrom } from "./matrix.ts";

/** Options for {@linkcode parseFvecs}. */
export interface ParseFvecsOptions {
  /** Start of every error message, e.g. naming the file. Default: `"Cannot parse .fvecs"`. */
  errorPrefix?: string;
}

/**
 * Parses a `.fvecs` file: each vector is an int32 dimension followed by that
 * many float32 values, all little-endian.
 *
 * @param bytes The whole file.
 * @param options The error message prefix.
 * @returns A float32 matrix with one row per vector.
 * @throws {SyntaxError} If the file is empty or truncated, or the dimensions differ.
 *
 * @example Parse two 2-D vectors
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFvecs } from "./fvecs.ts";
 *
 * const view = new DataView(new ArrayBuffer(24));
 * view.setInt32(0, 2, true);
 * view.setFloat32(4, 1, true);
 * view.setFloat32(8, 2, true);
 * view.setInt32(12, 2, true);
 * view.setFloat32(16, 3, true);
 * view.setFloat32(20, 4, true);
 * const m = parseFvecs(new Uint8Array(view.buffer));
 * assert.deepEqual([m.rows, m.cols], [2, 2]);
 * assert.deepEqual(Array.from(m.data), [1, 2, 3, 4]);
 * ```
 */
export function parseFvecs(
  bytes: Uint8Array,
  options: ParseFvecsOptions = {},
): Matrix {
  const prefix = options.errorPrefix ?? "Cannot parse .fvecs";

  if (bytes.length === 0) {
    throw new SyntaxError(`${prefix}: the file holds no vectors`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let dim = 0;
  let rows = 0;
  for (let offset = 0; offset < bytes.length; rows++) {
    if (offset + 4 > bytes.length) {
      throw new SyntaxError(
        `${prefix}: data is truncated: vector ${rows} has no complete dimension field`,
      );
    }
    const d = view.getInt32(offset, true);
    if (rows === 0) {
      if (d <= 0) {
        throw new SyntaxError(
          `${prefix}: vector 0 declares dimension ${d}; dimensions must be positive (is this an .fvecs file?)`,
        );
      }
      dim = d;
    } else if (d !== dim) {
      throw new SyntaxError(
        `${prefix}: vector ${rows} has dimension ${d}, but vector 0 has ${dim}`,
      );
    }
    offset += 4 + 4 * dim;
    if (offset > bytes.length) {
      throw new SyntaxError(
        `${prefix}: data is truncated: vector ${rows} needs ${
          4 * dim
        } bytes of values, but only ${
          bytes.length - (offset - 4 * dim)
        } remain`,
      );
    }
  }
  const data = new Float32Array(rows * dim);
  const stride = 4 + 4 * dim;
  for (let r = 0; r < rows; r++) {
    const base = r * stride + 4;
    for (let c = 0; c < dim; c++) {
      data[r * dim + c] = view.getFloat32(base + 4 * c, true);
    }
  }
  return matrixFrom(data, dim);
}
