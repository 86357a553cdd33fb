/**
 * Streaming a job's result arrays into `.npy` files: each file is written to a
 * temporary name block by block while it is hashed (BLAKE3 of the file's
 * bytes), flushed, and renamed into place only when every file is complete.
 * The same sinks can instead collect the arrays in memory, or only hash them.
 *
 * @module
 */

import { createBLAKE3 } from "npm:hash-wasm@^4.12.0";
import { mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { encodeNpyHeader, type NpyWritable } from "../io/npy.ts";

/** Size and BLAKE3 of an output file. */
export interface OutputFileInfo {
  /** File size in bytes. */
  bytes: number;
  /** BLAKE3-256 of the file's bytes, hex. */
  blake3: string;
}

/** The dtype of an output array. */
export type OutputDescr = "<i4" | "<i8" | "<f4" | "<f8";

/** One output array. */
export interface OutputSpec {
  /** File name inside the output directory, such as `index.npy`. */
  name: string;
  /** Its dtype. */
  descr: OutputDescr;
  /** Its shape. */
  shape: number[];
}

type Hasher = Awaited<ReturnType<typeof createBLAKE3>>;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const BYTES: Record<OutputDescr, number> = {
  "<i4": 4,
  "<i8": 8,
  "<f4": 4,
  "<f8": 8,
};

function newArray(descr: OutputDescr, length: number): NpyWritable {
  switch (descr) {
    case "<i4":
      return new Int32Array(length);
    case "<i8":
      return new BigInt64Array(length);
    case "<f4":
      return new Float32Array(length);
    case "<f8":
      return new Float64Array(length);
  }
}

function descrOf(values: NpyWritable): OutputDescr {
  if (values instanceof Int32Array) return "<i4";
  if (values instanceof BigInt64Array) return "<i8";
  if (values instanceof Float32Array) return "<f4";
  return "<f8";
}

/** One array being written: to a temp file, into memory, or only hashed. */
export class OutputSink {
  readonly spec: OutputSpec;
  readonly #hasher: Hasher;
  readonly #count: number;
  #handle: FileHandle | undefined;
  #temp: string | undefined;
  #array: NpyWritable | undefined;
  #filled = 0;
  #bytes = 0;

  /** @internal Use {@linkcode openOutputs}. */
  constructor(
    spec: OutputSpec,
    hasher: Hasher,
    handle: FileHandle | undefined,
    temp: string | undefined,
    keep: boolean,
  ) {
    this.spec = spec;
    this.#hasher = hasher;
    this.#handle = handle;
    this.#temp = temp;
    this.#count = spec.shape.reduce((a, b) => a * b, 1);
    if (keep) this.#array = newArray(spec.descr, this.#count);
  }

  /** @internal Write the header. */
  async start(): Promise<void> {
    await this.#write(encodeNpyHeader(this.spec.descr, this.spec.shape));
  }

  async #write(bytes: Uint8Array): Promise<void> {
    this.#hasher.update(bytes);
    this.#bytes += bytes.length;
    if (this.#handle !== undefined) {
      let at = 0;
      while (at < bytes.length) {
        const { bytesWritten } = await this.#handle.write(
          bytes,
          at,
          bytes.length - at,
        );
        at += bytesWritten;
      }
    }
  }

  /**
   * Append elements, in C order.
   *
   * @param values Elements of the sink's dtype.
   */
  async append(values: NpyWritable): Promise<void> {
    if (descrOf(values) !== this.spec.descr) {
      throw new TypeError(
        `Cannot write "${this.spec.name}": got ${values.constructor.name} values for dtype "${this.spec.descr}"`,
      );
    }
    if (this.#filled + values.length > this.#count) {
      throw new RangeError(
        `Cannot write "${this.spec.name}": ${
          this.#filled + values.length
        } elements exceed its shape (${this.spec.shape.join(", ")})`,
      );
    }
    if (this.#array !== undefined) {
      (this.#array as Int32Array).set(values as Int32Array, this.#filled);
    }
    this.#filled += values.length;
    if (values.length === 0) return;
    let bytes = new Uint8Array(
      values.buffer,
      values.byteOffset,
      values.byteLength,
    );
    if (!LITTLE_ENDIAN) {
      bytes = bytes.slice();
      const size = BYTES[this.spec.descr];
      for (let i = 0; i < bytes.length; i += size) {
        bytes.subarray(i, i + size).reverse();
      }
    }
    await this.#write(bytes);
  }

  /** @internal Flush and close the temp file; returns size and hash. */
  async finish(): Promise<OutputFileInfo> {
    if (this.#filled !== this.#count) {
      throw new RangeError(
        `Cannot write "${this.spec.name}": got ${this.#filled} elements, but its shape (${
          this.spec.shape.join(", ")
        }) holds ${this.#count}`,
      );
    }
    if (this.#handle !== undefined) {
      await this.#handle.sync();
      await this.#handle.close();
      this.#handle = undefined;
    }
    return { bytes: this.#bytes, blake3: this.#hasher.digest("hex") };
  }

  /** The collected array, when the sink keeps one. */
  get array(): NpyWritable | undefined {
    return this.#array;
  }

  /** @internal The temp file, if any. */
  get temp(): string | undefined {
    return this.#temp;
  }

  /** @internal Close and delete the temp file. */
  async abort(): Promise<void> {
    await this.#handle?.close().catch(() => {});
    this.#handle = undefined;
    if (this.#temp !== undefined) await unlink(this.#temp).catch(() => {});
  }
}

/** Where a set of outputs goes. */
export interface OpenOutputsOptions {
  /** Output directory; when absent, arrays are kept in memory. */
  dir?: string;
  /** Only these file names are written; the rest are only hashed. Default: all. */
  only?: ReadonlySet<string>;
}

/** A set of output arrays written together. */
export class OutputSet {
  readonly #sinks: Map<string, OutputSink>;
  readonly #dir: string | undefined;

  /** @internal Use {@linkcode openOutputs}. */
  constructor(sinks: Map<string, OutputSink>, dir: string | undefined) {
    this.#sinks = sinks;
    this.#dir = dir;
  }

  /**
   * The sink of one output.
   *
   * @param name The file name.
   * @returns Its sink.
   */
  sink(name: string): OutputSink {
    const s = this.#sinks.get(name);
    if (s === undefined) throw new RangeError(`No output named "${name}"`);
    return s;
  }

  /**
   * Finish every file, then rename the written ones into place.
   *
   * @returns Size and hash of every output, and the paths written.
   */
  async commit(): Promise<
    { infos: Record<string, OutputFileInfo>; written: string[] }
  > {
    const infos: Record<string, OutputFileInfo> = {};
    try {
      for (const [name, sink] of this.#sinks) infos[name] = await sink.finish();
      const written: string[] = [];
      for (const [name, sink] of this.#sinks) {
        if (sink.temp === undefined) continue;
        const path = join(this.#dir!, name);
        await rename(sink.temp, path);
        written.push(path);
      }
      return { infos, written };
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Delete every temp file. */
  async abort(): Promise<void> {
    for (const sink of this.#sinks.values()) await sink.abort();
  }
}

/**
 * Open sinks for a set of outputs. In a directory, stale temp files of the
 * same outputs left by killed processes are removed first.
 *
 * @param specs The outputs.
 * @param options Directory and which files to write.
 * @returns The set; call `commit()` once every sink is filled.
 */
export async function openOutputs(
  specs: OutputSpec[],
  options: OpenOutputsOptions = {},
): Promise<OutputSet> {
  const { dir, only } = options;
  if (dir !== undefined) {
    await mkdir(dir, { recursive: true }).catch((error: { code?: string }) => {
      if (error.code === "EEXIST" || error.code === "ENOTDIR") {
        throw new Error(
          `Cannot write outputs to "${dir}": it or a parent is a file, not a directory; choose another output directory`,
        );
      }
      throw error;
    });
    await sweepStaleTemps(dir, specs.map((s) => s.name));
  }
  const sinks = new Map<string, OutputSink>();
  try {
    for (const spec of specs) {
      const hasher = await createBLAKE3();
      hasher.init();
      let handle: FileHandle | undefined;
      let temp: string | undefined;
      if (dir !== undefined && (only === undefined || only.has(spec.name))) {
        temp = join(
          dir,
          `${spec.name}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`,
        );
        handle = await open(temp, "wx");
      }
      const sink = new OutputSink(
        spec,
        hasher,
        handle,
        temp,
        dir === undefined,
      );
      sinks.set(spec.name, sink);
      await sink.start();
    }
  } catch (error) {
    for (const sink of sinks.values()) await sink.abort();
    throw error;
  }
  return new OutputSet(sinks, dir);
}

/** Remove `NAME.tmp-PID-HEX` files whose process is gone. */
async function sweepStaleTemps(dir: string, names: string[]): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    const match = /^(.+)\.tmp-(\d+)-[0-9a-f]+$/.exec(entry);
    if (match === null || !names.includes(match[1]!)) continue;
    const pid = Number(match[2]);
    if (pid === process.pid || isAlive(pid)) continue;
    await unlink(join(dir, entry)).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code !== "ESRCH";
  }
}

/**
 * Size and BLAKE3 of a file, or undefined when it does not exist.
 *
 * @param path The file.
 * @returns Its size and hash.
 */
export async function hashFile(
  path: string,
): Promise<OutputFileInfo | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") {
      return undefined;
    }
    throw error;
  }
  try {
    const hasher = await createBLAKE3();
    hasher.init();
    const buffer = new Uint8Array(1 << 20);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, bytes);
      if (bytesRead === 0) break;
      hasher.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { bytes, blake3: hasher.digest("hex") };
  } catch (error) {
    if ((error as { code?: string }).code === "EISDIR") return undefined;
    throw error;
  } finally {
    await handle.close();
  }
}
