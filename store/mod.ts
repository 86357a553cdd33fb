/**
 * The low-level store and format pieces under cairn's runtime: chunk stores
 * (filesystem, S3 and memory), the framed manifest log, job locks, the CBOR
 * codecs and hashing. Job, map and kNN users need none of this; it is for
 * tools that read or check a store directly, and for new store backends.
 *
 * @example Store a value and read it back
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMemoryStore, getValue, putValue } from "@cairn/cairn/store";
 * const store = createMemoryStore();
 * const ref = await putValue(store.chunks, { hello: "world" });
 * assert.deepEqual(await getValue(store.chunks, ref.hash), { hello: "world" });
 * ```
 *
 * @module
 */
export type { Store } from "./store.ts";
export {
  openFsStore,
  type OpenFsStoreOptions,
  type StoreConfig,
} from "./fs.ts";
export { createMemoryStore, type MemoryStore } from "./memory.ts";
export { openS3Store, type OpenS3StoreOptions } from "./s3.ts";
export type { CreateS3ClientOptions } from "./_s3_client.ts";
export {
  assertChunkHash,
  type ChunkRef,
  type ChunkStat,
  type ChunkStore,
  CorruptChunkError,
  type DeleteChunkOptions,
  type GetChunkOptions,
  getValue,
  MissingChunkError,
  type PutResult,
  putValue,
} from "./chunk_store.ts";
export {
  CorruptLogError,
  type LogEntry,
  type LogRepair,
  type ManifestLog,
  type ReplayOptions,
  type TailRepair,
} from "./manifest_log.ts";
export {
  type AcquireLockOptions,
  type BreakLockOptions,
  type JobLock,
  LockedError,
  type LockInfo,
  lockStaleReason,
  type LockStaleReasonOptions,
} from "./lock.ts";
export {
  decodeValue,
  encodeCanonical,
  encodeValue,
  fingerprint,
} from "./cbor.ts";
export { blake3Hex } from "./hash.ts";
