/**
 * The in-memory backend: everything lives in this process and is gone when it
 * ends. Useful for tests and for `memory:` stores in scripts. Logs are kept as
 * real framed bytes, so torn-tail handling is the same as on disk.
 *
 * @module
 */
import {
  assertChunkHash,
  type ChunkStat,
  type ChunkStore,
  CorruptChunkError,
  MissingChunkError,
  type PutResult,
} from "./chunk_store.ts";
import { blake3Hex } from "./hash.ts";
import {
  type AcquireLockOptions,
  type JobLock,
  LockedError,
  type LockInfo,
  LockLostError,
} from "./lock.ts";
import {
  isUnbornLog,
  type LogFile,
  logPrefix,
  type ManifestLog,
  newLogBytes,
  openFramedLog,
  repairReport,
} from "./manifest_log.ts";
import { assertName, type Store } from "./store.ts";
import { hostname } from "node:os";

/** The memory backend, with hooks that tests use to damage it. */
export interface MemoryStore extends Store {
  /** Raw chunk bytes by hash (tests flip bytes here). */
  readonly chunkBytes: Map<string, { bytes: Uint8Array; mtimeMs: number }>;
  /** Raw log bytes by "job/run" (tests tear them here). */
  readonly logBytes: Map<string, Uint8Array>;
}

/** Run `fn` and turn a throw into a rejected promise, as an async backend would. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

function memoryChunks(
  location: string,
  chunkBytes: MemoryStore["chunkBytes"],
): ChunkStore {
  return {
    async put(bytes): Promise<PutResult> {
      const hash = await blake3Hex(bytes);
      const existing = chunkBytes.get(hash);
      if (existing !== undefined && existing.bytes.length === bytes.length) {
        existing.mtimeMs = Date.now();
        return { hash, size: bytes.length, stored: false };
      }
      chunkBytes.set(hash, { bytes: bytes.slice(), mtimeMs: Date.now() });
      return { hash, size: bytes.length, stored: true };
    },
    async get(hash) {
      const entry = chunkBytes.get(assertChunkHash(hash));
      if (entry === undefined) throw new MissingChunkError(hash, location);
      const actual = await blake3Hex(entry.bytes);
      if (actual !== hash) throw new CorruptChunkError(hash, actual, location);
      return entry.bytes.slice();
    },
    has(hash) {
      return Promise.resolve(chunkBytes.has(assertChunkHash(hash)));
    },
    stat(hash): Promise<ChunkStat | undefined> {
      const entry = chunkBytes.get(assertChunkHash(hash));
      return Promise.resolve(
        entry && { hash, size: entry.bytes.length, mtimeMs: entry.mtimeMs },
      );
    },
    async *list() {
      yield* [...chunkBytes.keys()];
    },
    delete(hash, options = {}) {
      const entry = chunkBytes.get(assertChunkHash(hash));
      const { notTouchedSince } = options;
      if (
        entry === undefined ||
        (notTouchedSince !== undefined && entry.mtimeMs >= notTouchedSince)
      ) return Promise.resolve(false);
      return Promise.resolve(chunkBytes.delete(hash));
    },
  };
}

/** Backing buffers with spare room, by log; a log whose bytes a test replaced is copied first. */
const spare = new WeakMap<object, Map<string, ArrayBuffer>>();

/** The writer generation of each log: a writer opened earlier is fenced off. */
const generations = new WeakMap<object, Map<string, number>>();

function memoryLogFile(
  logBytes: Map<string, Uint8Array>,
  key: string,
  writer = false,
): LogFile {
  let gens = generations.get(logBytes);
  if (gens === undefined) generations.set(logBytes, gens = new Map());
  const generation = writer ? (gens.get(key) ?? 0) + 1 : 0;
  if (writer) gens.set(key, generation);
  const current = () => !writer || gens.get(key) === generation;
  const name = `memory:jobs/${key}.log`;
  let owned = spare.get(logBytes);
  if (owned === undefined) spare.set(logBytes, owned = new Map());
  const spareOf = owned;
  return {
    name,
    read() {
      const bytes = logBytes.get(key);
      if (bytes === undefined) {
        return Promise.reject(
          new Error(`Cannot read manifest log "${name}": it does not exist`),
        );
      }
      return Promise.resolve(bytes.slice());
    },
    append(bytes) {
      if (!current()) {
        // The memory twin of the fs backend's fresh inode per writer.
        return Promise.reject(
          new Error(
            `Cannot append to manifest log "${name}": a later writer opened it`,
          ),
        );
      }
      // Grow into spare capacity (doubling), so appends are amortised O(record), not O(log).
      const old = logBytes.get(key) ?? new Uint8Array();
      const size = old.length + bytes.length;
      let buffer = old.buffer as ArrayBuffer;
      if (
        old.byteOffset !== 0 || buffer.byteLength < size ||
        spareOf.get(key) !== buffer
      ) {
        buffer = new ArrayBuffer(Math.max(size, 2 * old.length, 4096));
        new Uint8Array(buffer).set(old);
        spareOf.set(key, buffer);
      }
      new Uint8Array(buffer).set(bytes, old.length);
      logBytes.set(key, new Uint8Array(buffer, 0, size));
      return Promise.resolve();
    },
    truncate(size) {
      logBytes.set(key, (logBytes.get(key) ?? new Uint8Array()).slice(0, size));
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Create an empty in-memory store.
 *
 * @returns The store.
 *
 * @example Put and get a chunk
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMemoryStore } from "./memory.ts";
 * const store = createMemoryStore();
 * const ref = await store.chunks.put(new Uint8Array([0x01]));
 * assert.ok((await store.chunks.get(ref.hash))[0] === 1);
 * ```
 */
export function createMemoryStore(): MemoryStore {
  const location = "memory:";
  const chunkBytes: MemoryStore["chunkBytes"] = new Map();
  const logBytes = new Map<string, Uint8Array>();
  const locks = new Map<string, LockInfo>();
  const logKey = (job: string, run: string) =>
    `${assertName("job", job)}/${assertName("run", run)}`;
  /** Keys of a job's logs: aside copies have a "." suffix after the run. */
  const keysOf = (job: string) =>
    [...logBytes.keys()].filter((k) =>
      k.startsWith(`${job}/`) && !k.slice(job.length + 1).includes(".log.")
    );
  const unbornOf = (job: string) =>
    keysOf(job).filter((k) => {
      const bytes = logBytes.get(k)!;
      return isUnbornLog(bytes.subarray(0, 48), bytes.length);
    });
  const runsOf = (job: string) => {
    const unborn = new Set(unbornOf(job));
    return keysOf(job).filter((k) => !unborn.has(k)).map((k) =>
      k.slice(job.length + 1)
    ).sort();
  };
  const fenceOf = (job: string): { fence?: () => Promise<void> } => {
    const info = locks.get(job);
    if (info === undefined) return {};
    return {
      fence: () => {
        const now = locks.get(job);
        return now?.token === info.token
          ? Promise.resolve()
          : Promise.reject(new LockLostError(job, info.token, now));
      },
    };
  };

  return {
    location,
    chunks: memoryChunks(location, chunkBytes),
    chunkBytes,
    logBytes,
    async createLog(job, run, first): Promise<ManifestLog> {
      const key = logKey(job, run);
      const bytes = newLogBytes(first);
      for (const old of unbornOf(job)) {
        logBytes.set(`${old}.unborn-${Date.now()}`, logBytes.get(old)!);
        logBytes.delete(old);
      }
      if (logBytes.has(key)) {
        throw new Error(
          `Cannot create run "${run}" of job "${job}": it exists`,
        );
      }
      logBytes.set(key, bytes.slice());
      return await openFramedLog(memoryLogFile(logBytes, key, true), {
        write: true,
        ...fenceOf(job),
      });
    },
    async openLog(job, run) {
      const key = logKey(job, run);
      await fenceOf(job).fence?.();
      return await openFramedLog(memoryLogFile(logBytes, key, true), {
        write: true,
        ...fenceOf(job),
      });
    },
    repairLog: (job, run) =>
      settle(() => {
        const key = logKey(job, run);
        const bytes = logBytes.get(key);
        if (bytes === undefined) {
          throw new Error(
            `Cannot read manifest log "memory:jobs/${key}.log": it does not exist`,
          );
        }
        const prefix = logPrefix(bytes);
        if (prefix.reason === undefined) return repairReport(bytes, prefix);
        const kind = prefix.records === 0 ? "unborn" : "cut";
        const aside = `${key}.log.${kind}-${Date.now()}`;
        logBytes.set(aside, bytes.slice(prefix.end));
        if (prefix.records === 0) logBytes.delete(key);
        else logBytes.set(key, bytes.slice(0, prefix.end));
        memoryLogFile(logBytes, key, true); // fences any earlier writer
        return repairReport(bytes, prefix, `memory:jobs/${aside}`);
      }),
    async readLog(job, run) {
      return await openFramedLog(memoryLogFile(logBytes, logKey(job, run)));
    },
    listJobs() {
      return Promise.resolve(
        [
          ...new Set(
            [...logBytes.keys()].filter((k) => !k.includes(".log."))
              .map((k) => k.split("/")[0]!),
          ),
        ].sort(),
      );
    },
    listRuns: (job) => settle(() => runsOf(assertName("job", job))),
    deleteRun: (job, run) =>
      settle(() => void logBytes.delete(logKey(job, run))),
    lock: (job: string, options: AcquireLockOptions = {}): Promise<JobLock> =>
      settle(() => {
        assertName("job", job);
        const holder = locks.get(job);
        if (holder !== undefined && !options.force) {
          throw new LockedError(job, holder);
        }
        const now = new Date().toISOString();
        const info: LockInfo = {
          job,
          host: hostname(),
          pid: process.pid,
          startedAt: now,
          heartbeatAt: now,
          token: crypto.randomUUID(),
          ...(options.command === undefined
            ? {}
            : { command: options.command }),
        };
        locks.set(job, info);
        return {
          info,
          get lost() {
            return locks.get(job)?.token !== info.token;
          },
          refresh: () => Promise.resolve(),
          assertHeld() {
            const now = locks.get(job);
            return now?.token === info.token
              ? Promise.resolve()
              : Promise.reject(new LockLostError(job, info.token, now));
          },
          release() {
            if (locks.get(job)?.token === info.token) locks.delete(job);
            return Promise.resolve();
          },
        };
      }),
    readLock: (job) => settle(() => locks.get(assertName("job", job))),
    listLocks: () => Promise.resolve([...locks.values()]),
    breakLock: (job, options = {}) =>
      settle(() => {
        const holder = locks.get(assertName("job", job));
        // Every holder of a memory lock is this live process.
        if (holder !== undefined && !options.force) {
          throw new LockedError(job, holder, { action: "unlock" });
        }
        locks.delete(job);
        return holder;
      }),
  };
}
