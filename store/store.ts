/**
 * The one small driver interface every storage backend implements: chunks,
 * per-run manifest logs and job locks. `store/fs.ts` and `store/memory.ts`
 * implement it; an object-storage backend can too (one segment per commit).
 *
 * @module
 */
import type { ChunkStore } from "./chunk_store.ts";
import type { AcquireLockOptions, JobLock, LockInfo } from "./lock.ts";
import type { ManifestLog } from "./manifest_log.ts";

/** A storage backend. */
export interface Store {
  /** Where the store lives: a directory path, or `memory:`. */
  readonly location: string;
  /** The content-addressed chunks. */
  readonly chunks: ChunkStore;
  /** Create a new, empty log for a run; fails if it exists. Caller holds the job lock. */
  createLog(job: string, run: string): Promise<ManifestLog>;
  /** Open a run's log for appending, truncating a torn tail. Caller holds the job lock. */
  openLog(job: string, run: string): Promise<ManifestLog>;
  /** Open a run's log read-only: needs no lock and never changes the file. */
  readLog(job: string, run: string): Promise<ManifestLog>;
  /** Every job with at least one run, sorted. */
  listJobs(): Promise<string[]>;
  /** A job's run ids, sorted (run ids sort by start time). */
  listRuns(job: string): Promise<string[]>;
  /** Delete a run's log (forget); its chunks stay until GC. */
  deleteRun(job: string, run: string): Promise<void>;
  /** Take a job's writer lock. */
  lock(job: string, options?: AcquireLockOptions): Promise<JobLock>;
  /** The current holder of a job's lock, if any. */
  readLock(job: string): Promise<LockInfo | undefined>;
  /** Remove a job's lock whoever holds it; returns what was removed. */
  breakLock(job: string): Promise<LockInfo | undefined>;
  /** Remove temp files older than `olderThanMs` left by killed writers; returns how many. */
  sweepTemp?(olderThanMs: number): Promise<number>;
}

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Check a job or run name: 1–128 characters of `[A-Za-z0-9._-]`, not starting with ".".
 *
 * @param kind What the name is for ("job" or "run"), for the message.
 * @param name The name.
 * @returns The same name.
 *
 * @example Validate a job name
 * ```ts
 * import { assertName } from "./store.ts";
 * assertName("job", "nightly-embeddings");
 * ```
 */
export function assertName(kind: string, name: string): string {
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw new TypeError(
      `Cannot use ${kind} name "${
        String(name)
      }": use 1 to 128 characters from A-Z, a-z, 0-9, ".", "_" and "-", not starting with "." or "-"`,
    );
  }
  return name;
}
