/**
 * Writing step outputs as chunks and reading them back. A value whose CBOR is
 * larger than the chunk limit is split into pieces, each a CBOR byte string,
 * so every chunk stays one CBOR item.
 *
 * @module
 */
import {
  type ChunkRef,
  type ChunkStore,
  putValue,
} from "../store/chunk_store.ts";
import { decodeValue, encodeValue } from "../store/cbor.ts";

/** Default largest chunk a step output is split into: 4 MiB. */
export const DEFAULT_MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/** What writing an output did. */
export interface WrittenOutput {
  chunks: ChunkRef[];
  /** Bytes newly stored (dedup hits excluded). */
  storedBytes: number;
}

/**
 * Encode a value and store it as one chunk, or as pieces when it is large.
 *
 * @param chunks The chunk store.
 * @param value The value.
 * @param maxChunkBytes Largest piece. Default: 4 MiB.
 * @returns The chunk references in order.
 *
 * @example Round trip through pieces
 * ```ts
 * import assert from "node:assert/strict";
 * import { readValueChunks, writeValueChunks } from "./output.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const { chunks } = createMemoryStore();
 * const written = await writeValueChunks(chunks, new Float32Array(1000), 1024);
 * assert.ok(written.chunks.length > 1);
 * assert.ok((await readValueChunks<Float32Array>(chunks, written.chunks)).length === 1000);
 * ```
 */
export async function writeValueChunks(
  chunks: ChunkStore,
  value: unknown,
  maxChunkBytes: number = DEFAULT_MAX_CHUNK_BYTES,
): Promise<WrittenOutput> {
  const bytes = encodeValue(value);
  if (bytes.length <= maxChunkBytes) {
    const put = await chunks.put(bytes);
    return {
      chunks: [{ hash: put.hash, size: put.size }],
      storedBytes: put.stored ? put.size : 0,
    };
  }
  const refs: ChunkRef[] = [];
  let storedBytes = 0;
  for (let at = 0; at < bytes.length; at += maxChunkBytes) {
    const put = await putValue(chunks, bytes.subarray(at, at + maxChunkBytes));
    refs.push({ hash: put.hash, size: put.size });
    if (put.stored) storedBytes += put.size;
  }
  return { chunks: refs, storedBytes };
}

/**
 * Read a value written by {@linkcode writeValueChunks}.
 *
 * @param chunks The chunk store.
 * @param refs The chunk references in order.
 * @returns The decoded value.
 *
 * @example Read a single-chunk value
 * ```ts
 * import assert from "node:assert/strict";
 * import { readValueChunks, writeValueChunks } from "./output.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const { chunks } = createMemoryStore();
 * const { chunks: refs } = await writeValueChunks(chunks, { ok: true });
 * assert.ok((await readValueChunks<{ ok: boolean }>(chunks, refs)).ok);
 * ```
 */
export async function readValueChunks<T>(
  chunks: ChunkStore,
  refs: readonly ChunkRef[],
): Promise<T> {
  if (refs.length === 1) {
    const ref = refs[0]!;
    return decodeValue<T>(await chunks.get(ref.hash, { size: ref.size }));
  }
  const pieces: Uint8Array[] = [];
  for (const ref of refs) {
    pieces.push(
      decodeValue<Uint8Array>(await chunks.get(ref.hash, { size: ref.size })),
    );
  }
  const whole = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    whole.set(p, at);
    at += p.length;
  }
  return decodeValue<T>(whole);
}
