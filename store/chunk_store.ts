/**
 * The chunk store interface shared by every backend, and the value helpers
 * built on it. Chunks are immutable and named by the BLAKE3 of their bytes.
 *
 * @module
 */
import { decodeValue, encodeValue } from "./cbor.ts";

/** A reference to a stored chunk. */
export interface ChunkRef {
  /** BLAKE3-256 of the chunk's bytes, 64 lowercase hex characters. */
  hash: string;
  /** Size of the chunk in bytes. */
  size: number;
}

/** What {@linkcode ChunkStore.put} did. */
export interface PutResult extends ChunkRef {
  /** False when the chunk was already stored (a dedup hit). */
  stored: boolean;
}

/** Size and age of a stored chunk. */
export interface ChunkStat extends ChunkRef {
  /** Last write or dedup hit, in ms since the epoch; GC's grace period reads it. */
  mtimeMs: number;
}

/**
 * A content-addressed store of immutable chunks. Every backend implements it
 * and passes the shared conformance suite in `tests/chunk_store_conformance.ts`.
 */
export interface ChunkStore {
  /** Store bytes under their hash; durable when the promise resolves. */
  put(bytes: Uint8Array): Promise<PutResult>;
  /** Read a chunk, verifying its hash; throws {@linkcode MissingChunkError} or {@linkcode CorruptChunkError}. */
  get(hash: string, options?: GetChunkOptions): Promise<Uint8Array>;
  /** Whether a chunk is stored (without reading it). */
  has(hash: string): Promise<boolean>;
  /** Size and age of a chunk, or undefined when it is absent. */
  stat(hash: string): Promise<ChunkStat | undefined>;
  /** Every stored chunk hash, in no particular order. */
  list(): AsyncIterable<string>;
  /**
   * Remove a chunk (garbage collection only); returns whether it was removed.
   * With `notTouchedSince`, a chunk written or dedup-hit at or after that
   * time is kept, atomically against a concurrent {@linkcode ChunkStore.put}.
   */
  delete(hash: string, options?: DeleteChunkOptions): Promise<boolean>;
}

/** Options for {@linkcode ChunkStore.get}. */
export interface GetChunkOptions {
  /**
   * The size the reference records. A backend may then read at most one
   * byte more than this (the S3 backend does), so a bigger object at the
   * chunk's name costs no more than the chunk; it fails the hash check.
   * Default: unknown (the S3 backend reads at most 256 MiB).
   */
  size?: number;
}

/** Options for {@linkcode ChunkStore.delete}. */
export interface DeleteChunkOptions {
  /**
   * Keep the chunk if it was written or dedup-hit at or after this time (ms
   * since the epoch). A put whose dedup hit races the delete either keeps
   * the chunk or writes it again. Default: delete unconditionally.
   */
  notTouchedSince?: number;
}

const HASH_PATTERN = /^[0-9a-f]{64}$/;

/**
 * Check that `hash` is a chunk address (64 lowercase hex characters).
 *
 * @param hash The candidate address.
 * @returns The same string.
 *
 * @example Validate
 * ```ts
 * import { assertChunkHash } from "./chunk_store.ts";
 * assertChunkHash("a".repeat(64));
 * ```
 */
export function assertChunkHash(hash: string): string {
  if (!HASH_PATTERN.test(hash)) {
    throw new TypeError(
      `Cannot use chunk hash "${hash}": expected 64 lowercase hex characters`,
    );
  }
  return hash;
}

/** A referenced chunk is not in the store. */
export class MissingChunkError extends Error {
  /** The missing chunk's hash. */
  readonly hash: string;
  /**
   * Names the missing chunk and where it was looked for.
   *
   * @param hash The missing chunk.
   * @param location Where it was looked for.
   */
  constructor(hash: string, location: string) {
    super(
      `Cannot read chunk "${hash}": it is not in the store at "${location}"`,
    );
    this.name = "MissingChunkError";
    this.hash = hash;
  }
}

/** A chunk's bytes no longer hash to its name. */
export class CorruptChunkError extends Error {
  /** The chunk's name. */
  readonly hash: string;
  /** The hash of the bytes actually read. */
  readonly actual: string;
  /**
   * Names the chunk and the hash its bytes have instead.
   *
   * @param hash The expected hash.
   * @param actual The hash of the bytes read.
   * @param location Where the chunk lives.
   */
  constructor(hash: string, actual: string, location: string) {
    super(
      `Cannot read chunk "${hash}" at "${location}": its bytes hash to "${actual}"; run "cairn verify --read-data" and rerun the affected jobs`,
    );
    this.name = "CorruptChunkError";
    this.hash = hash;
    this.actual = actual;
  }
}

/**
 * Encode a value as CBOR and store it as one chunk.
 *
 * @param chunks The chunk store.
 * @param value Any CBOR-encodable value.
 * @returns The chunk reference.
 *
 * @example Store and read a value
 * ```ts
 * import assert from "node:assert/strict";
 * import { getValue, putValue } from "./chunk_store.ts";
 * import { createMemoryStore } from "./memory.ts";
 * const { chunks } = createMemoryStore();
 * const ref = await putValue(chunks, { hello: "world" });
 * assert.ok((await getValue<{ hello: string }>(chunks, ref.hash)).hello === "world");
 * ```
 */
export async function putValue(
  chunks: ChunkStore,
  value: unknown,
): Promise<PutResult> {
  return await chunks.put(encodeValue(value));
}

/**
 * Read a chunk and decode its CBOR item.
 *
 * @param chunks The chunk store.
 * @param hash The chunk address.
 * @returns The decoded value.
 *
 * @example Read a value back
 * ```ts
 * import assert from "node:assert/strict";
 * import { getValue, putValue } from "./chunk_store.ts";
 * import { createMemoryStore } from "./memory.ts";
 * const { chunks } = createMemoryStore();
 * const { hash } = await putValue(chunks, [1, 2, 3]);
 * assert.ok((await getValue<number[]>(chunks, hash)).length === 3);
 * ```
 */
export async function getValue<T = unknown>(
  chunks: ChunkStore,
  hash: string,
): Promise<T> {
  return decodeValue<T>(await chunks.get(hash));
}
