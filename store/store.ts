/**
 * The one small driver interface every storage backend implements: chunks,
 * per-run manifest logs and job locks. `store/fs.ts`, `store/memory.ts` and
 * `store/s3.ts` (one log segment object per commit) implement it.
 * Every backend passes `tests/store_conformance.ts`.
 *
 * @module
 */
import type { ChunkStore } from "./chunk_store.ts";
import type {
  AcquireLockOptions,
  BreakLockOptions,
  JobLock,
  LockInfo,
} from "./lock.ts";
import type { LogRepair, ManifestLog } from "./manifest_log.ts";

/** A storage backend. */
export interface Store {
  /** Where the store lives: a directory path, an `s3://bucket/prefix` URL, or `memory:`. */
  readonly location: string;
  /** The content-addressed chunks. */
  readonly chunks: ChunkStore;
  /**
   * Create a run's log holding the header and, when given, its first record,
   * published in one atomic step (so a log never exists without its first
   * record); fails if the run exists. An unborn log of the same name (no
   * complete first record, left by a crash) is set aside first. Caller holds
   * the job lock; the log is fenced by it (see {@linkcode Store.openLog}).
   */
  createLog(job: string, run: string, first?: unknown): Promise<ManifestLog>;
  /**
   * Open a run's log for appending, truncating a torn tail. Caller holds the
   * job lock, taken through this store's {@linkcode Store.lock}: every group
   * commit first checks that lock and fails with `LockLostError` once it is
   * lost, and a writer that opens the log later never shares a file with an
   * earlier one.
   */
  openLog(job: string, run: string): Promise<ManifestLog>;
  /** Open a run's log read-only: needs no lock and never changes the file. */
  readLog(job: string, run: string): Promise<ManifestLog>;
  /** Every job with at least one run, sorted. */
  listJobs(): Promise<string[]>;
  /**
   * A job's run ids, sorted (run ids sort by start time). Unborn logs (no
   * complete first record) are not runs and are left out.
   */
  listRuns(job: string): Promise<string[]>;
  /** Delete a run's log (forget); its chunks stay until GC. */
  deleteRun(job: string, run: string): Promise<void>;
  /**
   * Cut a log damaged in the middle back to its last good record, keeping
   * the cut bytes aside (see `docs/format.md`). Caller holds the job lock.
   */
  repairLog(job: string, run: string): Promise<LogRepair>;
  /** Take a job's writer lock. */
  lock(job: string, options?: AcquireLockOptions): Promise<JobLock>;
  /** The current holder of a job's lock, if any. */
  readLock(job: string): Promise<LockInfo | undefined>;
  /** Every lock file in the store, whatever its job (GC reads them). */
  listLocks(): Promise<LockInfo[]>;
  /**
   * Remove a job's lock when its holder is gone; refuses a live holder with
   * `LockedError` unless `force`. Returns what was removed.
   */
  breakLock(
    job: string,
    options?: BreakLockOptions,
  ): Promise<LockInfo | undefined>;
  /** Remove temp files older than `olderThanMs` left by killed writers; returns how many. */
  sweepTemp?(olderThanMs: number): Promise<number>;
  /**
   * Entries in the store that cairn would refuse to use: symbolic links,
   * devices, a directory where a log or chunk belongs. Each is a message
   * naming the path. `verify` reports them.
   */
  listForeignEntries?(): Promise<string[]>;
}

export { assertName } from "./name.ts";
