/**
 * The `file-index` processor: for every file under a directory, its relative
 * path, size, BLAKE3, line count and MIME type (from magic bytes, through
 * `file-type`), as JSON lines ordered by relative path.
 *
 * @module
 */
import { open } from "node:fs/promises";
import { createBLAKE3 } from "npm:hash-wasm@^4.12.0";
import { type InputFile, listFiles } from "./_files.ts";
import type { Processor } from "./types.ts";

/** One line of the `file-index` output. */
export interface FileIndexRecord {
  /** Path relative to the input, with "/" separators. */
  path: string;
  /** Bytes. */
  size: number;
  /** BLAKE3-256 of the bytes, hex. */
  blake3: string;
  /** Number of lines ("\n" count, plus one for a last line without one). */
  lines: number;
  /** From magic bytes; `text/plain` for UTF-8 text without NUL, else `application/octet-stream`. */
  mime: string;
}

const SNIFF_BYTES = 64 * 1024;
const BLOCK = 1024 * 1024;

function textMime(sample: Uint8Array): string {
  if (sample.includes(0)) return "application/octet-stream";
  try {
    // A multi-byte character cut at the sample's end is not an error.
    new TextDecoder("utf-8", { fatal: true }).decode(sample, { stream: true });
    return "text/plain";
  } catch {
    return "application/octet-stream";
  }
}

/** The listing `count` made, which `items` then uses instead of walking the input again. */
const listings = new Map<string, Promise<InputFile[]>>();

type Hasher = Awaited<ReturnType<typeof createBLAKE3>>;

/** Hashers and read buffers for reuse: creating a WASM hasher costs more than hashing a small file. */
const spares: { hasher: Hasher; buffer: Uint8Array }[] = [];

// file-type loads on the first file indexed, so importing the family stays cheap.
let fileType: Promise<typeof import("npm:file-type@^22.3.0")> | undefined;
function loadFileType(): Promise<typeof import("npm:file-type@^22.3.0")> {
  return fileType ??= import("npm:file-type@^22.3.0");
}

/**
 * Index one file.
 *
 * @param file The file.
 * @returns Its record.
 */
async function indexFile(file: InputFile): Promise<FileIndexRecord> {
  const spare = spares.pop() ??
    { hasher: await createBLAKE3(), buffer: new Uint8Array(BLOCK) };
  const { hasher, buffer } = spare;
  const handle = await open(file.path, "r");
  try {
    hasher.init();
    let sample: Uint8Array | undefined;
    let size = 0;
    let lines = 0;
    let last = -1;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, BLOCK, null);
      if (bytesRead === 0) break;
      const block = buffer.subarray(0, bytesRead);
      sample ??= block.slice(0, SNIFF_BYTES);
      hasher.update(block);
      for (let i = 0; i < bytesRead; i++) if (block[i] === 10) lines++;
      last = block[bytesRead - 1]!;
      size += bytesRead;
    }
    if (size > 0 && last !== 10) lines++;
    const bytes = sample ?? new Uint8Array(0);
    const { fileTypeFromBuffer } = await loadFileType();
    const mime = (await fileTypeFromBuffer(bytes))?.mime ??
      (size === 0 ? "application/x-empty" : textMime(bytes));
    return { path: file.rel, size, blake3: hasher.digest("hex"), lines, mime };
  } finally {
    await handle.close();
    if (spares.length < 4) spares.push(spare);
  }
}

/**
 * The `file-index` processor. Items are the files under the input (ids are
 * relative paths); each gives one {@linkcode FileIndexRecord}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile, writeFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { fileIndex } from "./file_index.ts";
 * import { runProcessor } from "./run.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-index-"));
 * await writeFile(join(dir, "a.txt"), "one\ntwo\n");
 * await runProcessor(fileIndex, { store: "memory:file-index-example", dataset: "docs", input: dir, out: `${dir}.jsonl` });
 * const record = JSON.parse(await readFile(`${dir}.jsonl`, "utf8"));
 * assert.deepEqual([record.path, record.size, record.lines, record.mime], ["a.txt", 8, 2, "text/plain"]);
 * ```
 */
export const fileIndex: Processor<InputFile & { id: string }> = {
  name: "file-index",
  version: "1",
  async count(input) {
    const listing = listFiles(input);
    listings.set(input, listing);
    return (await listing).length;
  },
  async *items(input) {
    const listing = listings.get(input) ?? listFiles(input);
    listings.delete(input);
    for (const file of await listing) yield { id: file.rel, ...file };
  },
  async process(item) {
    return [await indexFile(item)];
  },
};
