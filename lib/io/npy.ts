/**
 * Reading and writing NumPy `.npy` files and `.fvecs` files.
 *
 * Reading gives a float {@linkcode Matrix}: `.npy` with dtype `<f4` or `<f8`,
 * C order, two dimensions; {@linkcode readMatrixFile} also reads `.fvecs`
 * (see `fvecs.ts`) as float32. Writing supports `int32`,
 * `int64`, `float32` and `float64` arrays of any shape.
 *
 * @module
 */

import { type FileHandle, open, readFile } from "node:fs/promises";
import { extname } from "node:path";
import { writeFileAtomically } from "../write_file_atomically.ts";
import { parseFvecs } from "./fvecs.ts";
import { type Matrix, type MatrixData, matrixFrom } from "./matrix.ts";

/**
 * The dtypes {@linkcode parseNpy} reads, as NumPy spells them.
 *
 * @example Check a dtype before parsing
 * ```ts
 * import assert from "node:assert/strict";
 * import { NPY_READ_DTYPES } from "./npy.ts";
 *
 * assert.ok(NPY_READ_DTYPES.includes("<f4"));
 * assert.ok(!NPY_READ_DTYPES.includes("<i8"));
 * ```
 */
export const NPY_READ_DTYPES: readonly string[] = ["<f4", "<f8"];

/** The typed arrays {@linkcode encodeNpy} writes. */
export type NpyWritable =
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/** The parsed header of a `.npy` file. */
export interface NpyHeader {
  /** Format version as `[major, minor]`, such as `[1, 0]`. */
  version: [number, number];
  /** The dtype string, such as `"<f4"`. */
  descr: string;
  /** Whether the data is in Fortran (column-major) order. */
  fortranOrder: boolean;
  /** The array shape. */
  shape: number[];
  /** Byte offset of the first data byte. */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const NPY_PREFIX = "Cannot parse .npy";

/**
 * Parses the header of a `.npy` file (versions 1, 2 and 3).
 *
 * @param bytes The file's bytes (at least the header).
 * @returns The header fields and where the data starts.
 * @throws {SyntaxError} If the magic string, version or header dict is malformed.
 *
 * @example Read the header of an encoded array
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy, parseNpyHeader } from "./npy.ts";
 *
 * const header = parseNpyHeader(encodeNpy(new Int32Array(6), [2, 3]));
 * assert.equal(header.descr, "<i4");
 * assert.deepEqual(header.shape, [2, 3]);
 * assert.equal(header.dataOffset % 64, 0);
 * ```
 */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  return readHeader(bytes, NPY_PREFIX);
}

/**
 * Parses a `.npy` file holding a two-dimensional float32 or float64 array.
 *
 * The data is copied, so the result does not share memory with `bytes`.
 *
 * @param bytes The whole file.
 * @returns The matrix, with a `Float32Array` for `<f4` and a `Float64Array` for `<f8`.
 * @throws {SyntaxError} On a bad magic string, a malformed header, or truncated data.
 * @throws {TypeError} On an unsupported dtype, Fortran order, or a shape that is not two-dimensional.
 * @throws {RangeError} On an empty array (no rows or no columns).
 *
 * @example Round-trip a float32 matrix
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy, parseNpy } from "./npy.ts";
 *
 * const bytes = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
 * const m = parseNpy(bytes);
 * assert.equal(m.rows, 3);
 * assert.equal(m.cols, 2);
 * assert.deepEqual(Array.from(m.data), [1, 2, 3, 4, 5, 6]);
 * ```
 */
export function parseNpy(bytes: Uint8Array): Matrix {
  return parseNpyWith(bytes, NPY_PREFIX);
}

/**
 * Encodes a typed array as a `.npy` file (version 1, or 2 for huge headers).
 *
 * @param array The elements in C (row-major) order.
 * @param shape The array shape; the product must equal `array.length`.
 * @returns The file's bytes; data starts at a multiple of 64 bytes.
 * @throws {TypeError} If the array type is unsupported or the shape does not match its length.
 *
 * @example Encode neighbour indices as int32
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "./npy.ts";
 *
 * const bytes = encodeNpy(new Int32Array([4, 7, 1, 0]), [2, 2]);
 * assert.deepEqual(Array.from(bytes.subarray(1, 6)), [78, 85, 77, 80, 89]); // "NUMPY"
 * assert.equal(bytes.length, 128 + 16); // header padded to 64-byte multiple
 * ```
 */
export function encodeNpy(
  array: NpyWritable,
  shape: readonly number[],
): Uint8Array {
  const descr = descrOf(array);
  if (descr === undefined) {
    throw new TypeError(
      `Cannot encode .npy: ${
        typeName(array)
      } is not supported; pass an Int32Array, BigInt64Array, Float32Array or Float64Array`,
    );
  }
  const count = elementCount(shape);
  if (count !== array.length) {
    throw new TypeError(
      `Cannot encode .npy: shape [${
        shape.join(", ")
      }] holds ${count} elements, but the array has ${array.length}`,
    );
  }
  const header = headerBytes(descr, shape);
  const dataBytes = array.length * array.BYTES_PER_ELEMENT;
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header, 0);
  const raw = new Uint8Array(array.buffer, array.byteOffset, dataBytes);
  out.set(raw, header.length);
  if (!LITTLE_ENDIAN) {
    swapBytes(out.subarray(header.length), array.BYTES_PER_ELEMENT);
  }
  return out;
}

/**
 * Encodes just the header of a `.npy` file, exactly as {@linkcode encodeNpy}
 * writes it, so a file can be streamed: this header, then the elements in C
 * order, little-endian.
 *
 * @param descr The dtype: `"<i4"`, `"<i8"`, `"<f4"` or `"<f8"`.
 * @param shape The array shape.
 * @returns The header bytes; their length is a multiple of 64.
 * @throws {TypeError} On another dtype or an invalid dimension.
 *
 * @example The header encodeNpy writes
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy, encodeNpyHeader } from "./npy.ts";
 *
 * const header = encodeNpyHeader("<i4", [2, 2]);
 * const whole = encodeNpy(new Int32Array([4, 7, 1, 0]), [2, 2]);
 * assert.deepEqual(header, whole.subarray(0, header.length));
 * assert.equal(header.length, 128);
 * ```
 */
export function encodeNpyHeader(
  descr: string,
  shape: readonly number[],
): Uint8Array {
  if (!WRITE_DTYPES.includes(descr)) {
    throw new TypeError(
      `Cannot encode .npy: dtype "${descr}" is not supported; use ${
        WRITE_DTYPES.map((d) => `"${d}"`).join(", ")
      }`,
    );
  }
  elementCount(shape);
  return headerBytes(descr, shape);
}

const WRITE_DTYPES = ["<i4", "<i8", "<f4", "<f8"];

/** The number of elements of a shape, after checking each dimension. */
function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const n of shape) {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new TypeError(
        `Cannot encode .npy: shape [${
          shape.join(", ")
        }] has an invalid dimension "${n}"; use non-negative integers`,
      );
    }
    count *= n;
  }
  return count;
}

function headerBytes(descr: string, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1
    ? `(${shape[0]},)`
    : `(${shape.join(", ")})`;
  let dict =
    `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Version 1 stores the header length in 2 bytes, version 2 in 4.
  let version = 1;
  let preamble = 10;
  if (paddedLength(dict.length, preamble) > 0xffff) {
    version = 2;
    preamble = 12;
  }
  const headerLength = paddedLength(dict.length, preamble);
  dict = dict.padEnd(headerLength - 1, " ") + "\n";
  const out = new Uint8Array(preamble + headerLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  for (let i = 0; i < dict.length; i++) {
    out[preamble + i] = dict.charCodeAt(i);
  }
  return out;
}

/**
 * Reads a matrix file, choosing the format by extension: `.npy` or `.fvecs`.
 *
 * @param path The file path.
 * @returns The matrix.
 * @throws {TypeError} On an unsupported extension or dtype.
 * @throws {SyntaxError} On malformed content.
 *
 * @example Write and read back a .npy file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { readMatrixFile, writeNpyFile } from "./npy.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-npy-"));
 * const path = join(dir, "m.npy");
 * await writeNpyFile(path, new Float64Array([1, 2, 3, 4]), [2, 2]);
 * const m = await readMatrixFile(path);
 * assert.deepEqual(Array.from(m.data), [1, 2, 3, 4]);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function readMatrixFile(path: string): Promise<Matrix> {
  const ext = extname(path).toLowerCase();
  const prefix = `Cannot read matrix file "${path}"`;
  if (ext !== ".npy" && ext !== ".fvecs") {
    throw new TypeError(
      `${prefix}: extension "${ext}" is not supported; use .npy or .fvecs`,
    );
  }
  const bytes = await readWholeFile(path, prefix);
  return ext === ".npy"
    ? parseNpyWith(bytes, prefix)
    : parseFvecs(bytes, { errorPrefix: prefix });
}

/** A two-dimensional table of integers, such as neighbour indices. */
export interface IntTable {
  /** The values, row-major. */
  data: Int32Array;
  /** Rows. */
  rows: number;
  /** Values per row. */
  cols: number;
}

/**
 * Parses a `.npy` file holding integers: dtype `<i4` or `<i8` (as FAISS
 * writes), C order, one or two dimensions (one dimension reads as one
 * column). Values must fit in int32.
 *
 * @param bytes The whole file.
 * @returns The table.
 * @throws {SyntaxError} On a malformed header or truncated data.
 * @throws {TypeError} On another dtype, Fortran order or more than two dimensions.
 * @throws {RangeError} On a value outside the int32 range.
 *
 * @example Read int64 neighbour ids
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy, parseIntNpy } from "./npy.ts";
 *
 * const table = parseIntNpy(encodeNpy(new BigInt64Array([3n, 1n, -1n, 0n]), [2, 2]));
 * assert.deepEqual([table.rows, table.cols], [2, 2]);
 * assert.deepEqual(Array.from(table.data), [3, 1, -1, 0]);
 * ```
 */
export function parseIntNpy(bytes: Uint8Array): IntTable {
  return parseIntNpyWith(bytes, NPY_PREFIX);
}

/**
 * Reads an integer `.npy` file; see {@linkcode parseIntNpy}.
 *
 * @param path The file path.
 * @returns The table.
 * @throws {Error} If the file is missing or unreadable.
 * @throws {TypeError} On an unsupported extension or dtype.
 *
 * @example Read back written indices
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { readIntFile, writeNpyFile } from "./npy.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-npy-"));
 * await writeNpyFile(join(dir, "i.npy"), new Int32Array([1, 2, 3]), [3, 1]);
 * assert.deepEqual(Array.from((await readIntFile(join(dir, "i.npy"))).data), [1, 2, 3]);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function readIntFile(path: string): Promise<IntTable> {
  const prefix = `Cannot read index file "${path}"`;
  if (extname(path).toLowerCase() !== ".npy") {
    throw new TypeError(
      `${prefix}: extension "${extname(path)}" is not supported; use .npy`,
    );
  }
  return parseIntNpyWith(await readWholeFile(path, prefix), prefix);
}

/** The shape of a matrix file, read from its header alone. */
export interface MatrixFileInfo {
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** `"<f4"` or `"<f8"` (`.fvecs` reads as `"<f4"`). */
  descr: string;
}

/**
 * Reads only the header of a matrix file (`.npy` or `.fvecs`) to learn its
 * shape, checking it as {@linkcode readMatrixFile} would, without reading
 * the data.
 *
 * @param path The file path.
 * @returns Rows, columns and dtype.
 * @throws {Error} If the file is missing or unreadable.
 * @throws {TypeError} On an unsupported extension, dtype or layout.
 * @throws {RangeError} On an empty matrix.
 *
 * @example Shape of a written file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { readMatrixFileInfo, writeNpyFile } from "./npy.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-npy-"));
 * await writeNpyFile(join(dir, "m.npy"), new Float32Array(6), [3, 2]);
 * assert.deepEqual(await readMatrixFileInfo(join(dir, "m.npy")), { rows: 3, cols: 2, descr: "<f4" });
 * await rm(dir, { recursive: true });
 * ```
 */
export async function readMatrixFileInfo(
  path: string,
): Promise<MatrixFileInfo> {
  const ext = extname(path).toLowerCase();
  const prefix = `Cannot read matrix file "${path}"`;
  if (ext !== ".npy" && ext !== ".fvecs") {
    throw new TypeError(
      `${prefix}: extension "${ext}" is not supported; use .npy or .fvecs`,
    );
  }
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fileError(error, prefix);
  }
  try {
    const size = (await handle.stat()).size;
    if (ext === ".fvecs") {
      const head = new Uint8Array(4);
      await handle.read(head, 0, 4, 0);
      const dim = new DataView(head.buffer).getInt32(0, true);
      if (size < 4 || dim <= 0 || size % (4 + 4 * dim) !== 0) {
        // Let the full parser produce its precise message.
        await handle.close();
        handle = undefined;
        const m = await readMatrixFile(path);
        return { rows: m.rows, cols: m.cols, descr: "<f4" };
      }
      return { rows: size / (4 + 4 * dim), cols: dim, descr: "<f4" };
    }
    const probe = new Uint8Array(Math.min(size, 65536 + 12));
    await handle.read(probe, 0, probe.length, 0);
    const header = readHeader(probe, prefix);
    checkFloatLayout(header, prefix);
    const [rows, cols] = header.shape as [number, number];
    const itemSize = header.descr === "<f4" ? 4 : 8;
    const available = size - header.dataOffset;
    if (available < rows * cols * itemSize) {
      throw new SyntaxError(
        `${prefix}: data is truncated: shape (${rows}, ${cols}) "${header.descr}" needs ${
          rows * cols * itemSize
        } bytes, but only ${available} follow the header`,
      );
    }
    if (rows === 0 || cols === 0) {
      throw new RangeError(
        `${prefix}: shape (${rows}, ${cols}) is empty; a matrix needs at least one row and one column`,
      );
    }
    return { rows, cols, descr: header.descr };
  } finally {
    await handle?.close();
  }
}

/** A `.npy` matrix file opened for reading rows at any offset; see {@linkcode openNpyMatrix}. */
export interface NpyMatrixFile {
  /** The file path. */
  readonly path: string;
  /** Rows. */
  readonly rows: number;
  /** Columns. */
  readonly cols: number;
  /** `"<f4"` or `"<f8"`. */
  readonly descr: "<f4" | "<f8";
  /**
   * Reads rows `start..end` with positioned reads (never the whole file).
   *
   * @param start First row.
   * @param end One past the last row.
   * @param into Where to put them: a typed array of the file's dtype with at
   *   least `(end - start) × cols` elements, reused between calls. Default: a
   *   new array.
   * @returns The rows, row-major: `into` (a view of its first elements) or a new array.
   */
  read(start: number, end: number, into?: MatrixData): Promise<MatrixData>;
  /** Closes the file. */
  close(): Promise<void>;
}

/**
 * Opens a float `.npy` matrix file to read its rows piece by piece, checking
 * its header as {@linkcode readMatrixFile} would. The data stays on disk:
 * each `read` is a positioned read of the rows asked for, so a matrix larger
 * than memory can be walked in tiles.
 *
 * @param path The `.npy` file.
 * @returns The open file; close it when done.
 * @throws {Error} If the file is missing or unreadable.
 * @throws {TypeError} On another extension, an unsupported dtype or layout.
 * @throws {SyntaxError} On a malformed header or truncated data.
 * @throws {RangeError} On an empty matrix.
 *
 * @example Read the middle row of a file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { openNpyMatrix, writeNpyFile } from "./npy.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-npy-"));
 * const path = join(dir, "m.npy");
 * await writeNpyFile(path, new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
 * const file = await openNpyMatrix(path);
 * try {
 *   assert.deepEqual(Array.from(await file.read(1, 2)), [3, 4]);
 * } finally {
 *   await file.close();
 * }
 * await rm(dir, { recursive: true });
 * ```
 */
export async function openNpyMatrix(path: string): Promise<NpyMatrixFile> {
  const prefix = `Cannot read matrix file "${path}"`;
  const ext = extname(path).toLowerCase();
  if (ext !== ".npy") {
    throw new TypeError(
      `${prefix}: extension "${ext}" cannot be read in tiles; use a .npy file`,
    );
  }
  const info = await readMatrixFileInfo(path);
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fileError(error, prefix);
  }
  const probe = new Uint8Array(65536 + 12);
  const { bytesRead } = await handle.read(probe, 0, probe.length, 0);
  const { dataOffset } = readHeader(probe.subarray(0, bytesRead), prefix);
  const { rows, cols } = info;
  const descr = info.descr as "<f4" | "<f8";
  const itemSize = descr === "<f4" ? 4 : 8;
  return {
    path,
    rows,
    cols,
    descr,
    async read(start, end, into) {
      if (
        !Number.isSafeInteger(start) || !Number.isSafeInteger(end) ||
        start < 0 || end < start || end > rows
      ) {
        throw new RangeError(
          `${prefix}: rows ${start}..${end} are not within 0..${rows}`,
        );
      }
      const count = (end - start) * cols;
      let out: MatrixData;
      if (into === undefined) {
        out = itemSize === 4
          ? new Float32Array(count)
          : new Float64Array(count);
      } else {
        if (into.BYTES_PER_ELEMENT !== itemSize || into.length < count) {
          throw new RangeError(
            `${prefix}: the buffer for rows ${start}..${end} must be a ${
              itemSize === 4 ? "Float32Array" : "Float64Array"
            } of at least ${count} elements`,
          );
        }
        out = into.subarray(0, count);
      }
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      const base = dataOffset + start * cols * itemSize;
      let at = 0;
      while (at < bytes.length) {
        // One read returns at most about 2 GiB: loop until the rows are in.
        const { bytesRead: n } = await handle.read(
          bytes,
          at,
          Math.min(bytes.length - at, 1 << 30),
          base + at,
        );
        if (n === 0) {
          throw new SyntaxError(
            `${prefix}: data is truncated at byte ${
              base + at
            }; was the file changed while it was read?`,
          );
        }
        at += n;
      }
      if (!LITTLE_ENDIAN) swapBytes(bytes, itemSize);
      return out;
    },
    async close() {
      await handle.close();
    },
  };
}

/**
 * Writes a typed array as a `.npy` file atomically: to a temporary file in the
 * same directory, flushed, then renamed over `path`.
 *
 * @param path Destination path.
 * @param array The elements in C order.
 * @param shape The array shape.
 * @returns A promise that settles once the file is in place.
 * @throws {TypeError} As {@linkcode encodeNpy} does.
 *
 * @example Write int64 offsets
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { parseNpyHeader, writeNpyFile } from "./npy.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-npy-"));
 * const path = join(dir, "offset.npy");
 * await writeNpyFile(path, new BigInt64Array([0n, 2n, 5n]), [3]);
 * const header = parseNpyHeader(new Uint8Array(await readFile(path)));
 * assert.equal(header.descr, "<i8");
 * assert.deepEqual(header.shape, [3]);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function writeNpyFile(
  path: string,
  array: NpyWritable,
  shape: readonly number[],
): Promise<void> {
  const bytes = encodeNpy(array, shape);
  await writeFileAtomically(path, (chunk) => chunk(bytes));
}

function parseNpyWith(bytes: Uint8Array, prefix: string): Matrix {
  const header = readHeader(bytes, prefix);
  checkFloatLayout(header, prefix);
  const itemSize = header.descr === "<f4" ? 4 : 8;
  const [rows, cols] = header.shape as [number, number];
  const nbytes = rows * cols * itemSize;
  const available = bytes.length - header.dataOffset;
  if (available < nbytes) {
    throw new SyntaxError(
      `${prefix}: data is truncated: shape (${rows}, ${cols}) "${header.descr}" needs ${nbytes} bytes, but only ${available} follow the header`,
    );
  }
  // A fresh copy (a Node Buffer's slice() would share memory and offset).
  const copy = new Uint8Array(nbytes);
  copy.set(bytes.subarray(header.dataOffset, header.dataOffset + nbytes));
  if (!LITTLE_ENDIAN) swapBytes(copy, itemSize);
  if (rows === 0 || cols === 0) {
    throw new RangeError(
      `${prefix}: shape (${rows}, ${cols}) is empty; a matrix needs at least one row and one column`,
    );
  }
  const data = itemSize === 4
    ? new Float32Array(copy.buffer, 0, rows * cols)
    : new Float64Array(copy.buffer, 0, rows * cols);
  return matrixFrom(data, cols);
}

function checkFloatLayout(header: NpyHeader, prefix: string): void {
  const itemSize = header.descr === "<f4" ? 4 : header.descr === "<f8" ? 8 : 0;
  if (itemSize === 0) {
    const hint = /^[<>=|]?[fiu]/.test(header.descr)
      ? "; convert with arr.astype('<f4') or arr.astype('<f8')"
      : "";
    throw new TypeError(
      `${prefix}: dtype "${header.descr}" is not supported; supported dtypes are ${
        NPY_READ_DTYPES.map((d) => `"${d}"`).join(" and ")
      } (little-endian float32 and float64)${hint}`,
    );
  }
  if (header.fortranOrder) {
    throw new TypeError(
      `${prefix}: the array is in Fortran order; save it in C order with np.save(path, np.ascontiguousarray(arr))`,
    );
  }
  if (header.shape.length !== 2) {
    throw new TypeError(
      `${prefix}: shape (${
        header.shape.join(", ")
      }) is not two-dimensional; reshape to (rows, cols) before saving`,
    );
  }
}

function parseIntNpyWith(bytes: Uint8Array, prefix: string): IntTable {
  const header = readHeader(bytes, prefix);
  const itemSize = header.descr === "<i4" ? 4 : header.descr === "<i8" ? 8 : 0;
  if (itemSize === 0) {
    throw new TypeError(
      `${prefix}: dtype "${header.descr}" is not supported; index files must be "<i4" or "<i8" (little-endian int32 or int64); convert with arr.astype('<i8')`,
    );
  }
  if (header.fortranOrder) {
    throw new TypeError(
      `${prefix}: the array is in Fortran order; save it in C order with np.save(path, np.ascontiguousarray(arr))`,
    );
  }
  if (header.shape.length !== 1 && header.shape.length !== 2) {
    throw new TypeError(
      `${prefix}: shape (${
        header.shape.join(", ")
      }) is not one- or two-dimensional; reshape to (rows, k) before saving`,
    );
  }
  const rows = header.shape[0]!;
  const cols = header.shape[1] ?? 1;
  const count = rows * cols;
  const available = bytes.length - header.dataOffset;
  if (available < count * itemSize) {
    throw new SyntaxError(
      `${prefix}: data is truncated: shape (${
        header.shape.join(", ")
      }) "${header.descr}" needs ${
        count * itemSize
      } bytes, but only ${available} follow the header`,
    );
  }
  const view = new DataView(
    bytes.buffer,
    bytes.byteOffset + header.dataOffset,
    count * itemSize,
  );
  const data = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    if (itemSize === 4) {
      data[i] = view.getInt32(4 * i, true);
      continue;
    }
    const v = view.getBigInt64(8 * i, true);
    if (v > 2147483647n || v < -2147483648n) {
      throw new RangeError(
        `${prefix}: value ${v} at row ${Math.floor(i / cols)} column ${
          i % cols
        } does not fit in int32`,
      );
    }
    data[i] = Number(v);
  }
  return { data, rows, cols };
}

async function readWholeFile(
  path: string,
  prefix: string,
): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    throw fileError(error, prefix);
  }
}

/**
 * Turns a file-system error into a message that names the problem and the
 * fix, keeping its errno `code` and `path` so callers can tell a bad input
 * path from a failed computation.
 */
function fileError(error: unknown, prefix: string): Error {
  const { code, path } = error as NodeJS.ErrnoException;
  const problem = code === "ENOENT"
    ? "it does not exist; check the path"
    : code === "EISDIR"
    ? "it is a directory; pass a .npy file"
    : code === "EACCES" || code === "EPERM"
    ? "permission denied; check its permissions"
    : error instanceof Error
    ? error.message
    : String(error);
  return Object.assign(new Error(`${prefix}: ${problem}`, { cause: error }), {
    code,
    path,
  });
}

function readHeader(bytes: Uint8Array, prefix: string): NpyHeader {
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) {
      throw new SyntaxError(
        `${prefix}: bad magic string; a .npy file starts with "\\x93NUMPY" (is this a .npy file?)`,
      );
    }
  }
  if (bytes.length < 10) {
    throw new SyntaxError(`${prefix}: header is truncated`);
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3) {
    throw new SyntaxError(
      `${prefix}: format version ${major}.${minor} is not supported; versions 1.0, 2.0 and 3.0 are`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const preamble = major === 1 ? 10 : 12;
  if (bytes.length < preamble) {
    throw new SyntaxError(`${prefix}: header is truncated`);
  }
  const headerLength = major === 1
    ? view.getUint16(8, true)
    : view.getUint32(8, true);
  const dataOffset = preamble + headerLength;
  if (bytes.length < dataOffset) {
    throw new SyntaxError(
      `${prefix}: header is truncated: it declares ${headerLength} bytes, but only ${
        bytes.length - preamble
      } follow`,
    );
  }
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(preamble, dataOffset),
  );
  const descrMatch = /['"]descr['"]\s*:\s*(?:'([^']*)'|"([^"]*)"|(\[.*\]))/s
    .exec(text);
  const fortranMatch = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shapeMatch = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descrMatch || !fortranMatch || !shapeMatch) {
    throw new SyntaxError(
      `${prefix}: header ${
        JSON.stringify(text.trim())
      } lacks "descr", "fortran_order" or "shape"`,
    );
  }
  const descr = descrMatch[1] ?? descrMatch[2] ?? descrMatch[3] ?? "";
  const shape: number[] = [];
  for (const part of shapeMatch[1]!.split(",")) {
    const trimmed = part.trim().replace(/L$/, "");
    if (trimmed === "") continue;
    const n = Number(trimmed);
    if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(n)) {
      throw new SyntaxError(
        `${prefix}: shape (${
          shapeMatch[1]
        }) has an invalid dimension "${trimmed}"`,
      );
    }
    shape.push(n);
  }
  return {
    version: [major, minor],
    descr,
    fortranOrder: fortranMatch[1] === "True",
    shape,
    dataOffset,
  };
}

/** Total header length (including the trailing newline) padded to 64 bytes. */
function paddedLength(dictLength: number, preamble: number): number {
  const unpadded = preamble + dictLength + 1;
  return Math.ceil(unpadded / 64) * 64 - preamble;
}

function descrOf(array: unknown): string | undefined {
  if (array instanceof Float32Array) return "<f4";
  if (array instanceof Float64Array) return "<f8";
  if (array instanceof Int32Array) return "<i4";
  if (array instanceof BigInt64Array) return "<i8";
  return undefined;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    return `"${(value as object).constructor?.name ?? "object"}"`;
  }
  return `"${typeof value}"`;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}
