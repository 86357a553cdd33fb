/**
 * Reading a `.npy` matrix for a kNN job in one pass of positioned reads:
 * each piece is hashed (the same content hash as `hashMatrix`), checked for
 * non-finite values and (cosine with `"throw"`) zero rows, and added to the
 * column sums, then either kept (the matrix is built in place, no second
 * copy) or dropped (a streamed reference, larger than the memory budget).
 * Also the streamed reference's norms pass. Internal to `lib/knn/`.
 *
 * @module
 */

import { createBLAKE3 } from "npm:hash-wasm@^4.12.0";
import { type NpyMatrixFile, openNpyMatrix } from "../io/npy.ts";
import { matrixDigestHash } from "../io/matrix.ts";
import { rejectZeroRows } from "./_inputs.ts";
import { addColumnSums, fillSqNorms, type Metric } from "./kernel.ts";
import { type Matrix, type MatrixData, validateFinite } from "./matrix.ts";

/** Bytes read per piece: large enough for few reads, small next to any budget. */
const PIECE_BYTES = 4 << 20;

/** A reference left in its `.npy` file and read in tiles. */
export interface StreamedReference {
  /** The file. */
  path: string;
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** `"<f4"` or `"<f8"`. */
  descr: "<f4" | "<f8";
  /** Column sums in row order (float64), from the reading pass. */
  columnSums: Float64Array;
}

/** What {@linkcode readMatrixPass} found. */
export interface MatrixPass {
  /** The content hash, equal to `hashMatrix` of the matrix. */
  hash: string;
  /** The matrix, when kept. */
  matrix: Matrix | undefined;
  /** The file's shape and column sums. */
  file: StreamedReference;
}

/** Options of {@linkcode readMatrixPass}. */
export interface MatrixPassOptions {
  /** For messages: `reference matrix "r.npy"`. */
  label: string;
  /** Keep the rows (in memory) or drop them after the pass. */
  keep: boolean;
  /** Reject zero rows (cosine with `zeroVector: "throw"`). */
  rejectZero: boolean;
}

/**
 * Read a `.npy` matrix once: hash, check and sum every piece.
 *
 * @param path The file.
 * @param options Label, whether to keep the rows, the zero-row rule.
 * @returns The hash, the matrix if kept, and the file's description.
 */
export async function readMatrixPass(
  path: string,
  options: MatrixPassOptions,
): Promise<MatrixPass> {
  const file = await openNpyMatrix(path);
  try {
    const { rows, cols, descr } = file;
    const itemSize = descr === "<f4" ? 4 : 8;
    const pieceRows = Math.max(1, Math.floor(PIECE_BYTES / (cols * itemSize)));
    const data = options.keep ? newData(descr, rows * cols) : undefined;
    const buffer = data === undefined
      ? newData(descr, Math.min(rows, pieceRows) * cols)
      : undefined;
    const hasher = await createBLAKE3();
    hasher.init();
    const columnSums = new Float64Array(cols);
    for (let r0 = 0; r0 < rows; r0 += pieceRows) {
      const r1 = Math.min(rows, r0 + pieceRows);
      const piece = await file.read(
        r0,
        r1,
        data === undefined ? buffer : data.subarray(r0 * cols, r1 * cols),
      );
      hasher.update(
        new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength),
      );
      validateFinite({ data: piece, rows: r1 - r0, cols }, options.label, {
        rowOffset: r0,
      });
      if (options.rejectZero) rejectZeroRows(piece, cols, r0, options.label);
      addColumnSums(piece, cols, columnSums);
    }
    const hash = await matrixDigestHash(
      { descr, rows, cols },
      hasher.digest("hex"),
    );
    return {
      hash,
      matrix: data === undefined ? undefined : { data, rows, cols },
      file: { path, rows, cols, descr, columnSums },
    };
  } finally {
    await file.close();
  }
}

/**
 * The norms pass of a streamed reference: Σ (y − mean)² of every row, as
 * `prepareReference` computes them.
 *
 * @param ref The streamed reference.
 * @param mean The column means (zeros unless Euclidean).
 * @param rejectZero Reject zero rows (cosine with `"throw"`).
 * @returns One norm per row.
 */
export async function streamSqNorms(
  ref: StreamedReference,
  mean: Float64Array,
  rejectZero: boolean,
): Promise<Float64Array> {
  const sqNorms = new Float64Array(ref.rows);
  await forEachTile(ref, PIECE_BYTES, (piece, r0) => {
    fillSqNorms(piece, ref.cols, mean, sqNorms, r0, rejectZero);
  });
  return sqNorms;
}

/**
 * Walk a streamed reference in tiles of at most `tileBytes`, reusing one
 * buffer.
 *
 * @param ref The streamed reference.
 * @param tileBytes Bytes per tile (at least one row is read).
 * @param each Called with each tile and its first row; may be async.
 * @param holder Keeps the tile buffer between calls (one per job). Default: a
 *   buffer of this call's own.
 */
export async function forEachTile(
  ref: StreamedReference,
  tileBytes: number,
  each: (tile: MatrixData, r0: number) => void | Promise<void>,
  holder: { buffer?: MatrixData } = {},
): Promise<void> {
  const file = await openStreamedFile(ref);
  try {
    const itemSize = ref.descr === "<f4" ? 4 : 8;
    const tileRows = Math.max(
      1,
      Math.min(ref.rows, Math.floor(tileBytes / (ref.cols * itemSize))),
    );
    if (
      holder.buffer === undefined ||
      holder.buffer.length < tileRows * ref.cols ||
      holder.buffer.BYTES_PER_ELEMENT !== itemSize
    ) holder.buffer = newData(ref.descr, tileRows * ref.cols);
    const buffer = holder.buffer;
    for (let r0 = 0; r0 < ref.rows; r0 += tileRows) {
      const r1 = Math.min(ref.rows, r0 + tileRows);
      await each(await file.read(r0, r1, buffer), r0);
    }
  } finally {
    await file.close();
  }
}

/**
 * Open a streamed reference's file for positioned reads, checking that its
 * shape is still the one the job was planned for.
 *
 * @param ref The streamed reference.
 * @returns The open file; close it when done.
 */
export async function openStreamedFile(
  ref: StreamedReference,
): Promise<NpyMatrixFile> {
  const file = await openNpyMatrix(ref.path);
  if (file.rows !== ref.rows || file.cols !== ref.cols) {
    await file.close();
    throw new Error(
      `Cannot read reference matrix "${ref.path}": its shape changed to (${file.rows}, ${file.cols}) while the job ran, from (${ref.rows}, ${ref.cols}); rerun the job`,
    );
  }
  return file;
}

/**
 * Read rows `start..end` of a streamed reference (the queries of a
 * self-search block).
 *
 * @param ref The streamed reference.
 * @param start First row.
 * @param end One past the last row.
 * @returns The rows as a matrix.
 */
export async function readRows(
  ref: StreamedReference,
  start: number,
  end: number,
): Promise<Matrix> {
  const file = await openNpyMatrix(ref.path);
  try {
    return {
      data: await file.read(start, end),
      rows: end - start,
      cols: ref.cols,
    };
  } finally {
    await file.close();
  }
}

/** Column means from a streamed reference's sums, as `prepareReference` forms them. */
export function streamedMean(
  ref: StreamedReference,
  metric: Metric,
): Float64Array {
  const mean = new Float64Array(ref.cols);
  if (metric === "euclidean" || metric === "sqeuclidean") {
    for (let c = 0; c < ref.cols; c++) mean[c] = ref.columnSums[c]! / ref.rows;
  }
  return mean;
}

function newData(descr: "<f4" | "<f8", length: number): MatrixData {
  return descr === "<f4" ? new Float32Array(length) : new Float64Array(length);
}
