/**
 * Exact kNN, kNN-graph and radius searches as resumable cairn jobs.
 *
 * A job is keyed by the content hashes of its matrices and by its parameters
 * (`k`, metric, radius, block size, ...). It records a `prepare` step (the
 * reference's means and norms, shared through the `knn` memo namespace with
 * every later job on the same reference and metric), then one step per block
 * of query rows. A killed job rerun with the same inputs resumes: finished
 * blocks are read back, never recomputed, and the `.npy` files it writes are
 * byte-identical to an uninterrupted run's. Rerunning a completed job returns
 * at once, rewriting an output file only when it is missing or differs.
 *
 * | job                  | step keys                                     | output files                                   |
 * | -------------------- | --------------------------------------------- | ---------------------------------------------- |
 * | {@linkcode knnJob}      | `prepare`, `block/S-E`                     | `index.npy` (n×k int32), `distance.npy` (n×k float32) |
 * | {@linkcode knnGraphJob} | `prepare`, `block/S-E`                     | `from.npy`, `to.npy` (int32), `distance.npy` (float32) or `weight.npy` (int32, SNN) |
 * | {@linkcode radiusJob}   | `prepare`, `count/S-E`, then `collect/S-E` | `offset.npy` (n+1 int64), `index.npy` (int32), `distance.npy` (float32); or `counts.npy` (n int32) |
 *
 * `S-E` is the block's query-row range (end exclusive). Block steps carry
 * `stats` (`rows`, `ms`, and `matches` for radius) for `cairn show`.
 *
 * This module holds what the three jobs share (options, result fields, the
 * memo namespace and code version); each job lives in its own file
 * (`knn_job.ts`, `graph_job.ts`, `radius_job.ts`) on the run harness in
 * `_harness.ts`.
 *
 * @module
 */

import type { JobEvent } from "../events.ts";
import type { AcquireLockOptions } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import type { KnnBlockSizeOptions, KnnJobPlan } from "./job_plan.ts";
import type { Metric, ZeroVectorPolicy } from "./kernel.ts";
import type { OutputFileInfo } from "./_outputs.ts";

export type { MatrixInput } from "./_inputs.ts";
export type { OutputFileInfo } from "./_outputs.ts";

/**
 * The memo namespace every kNN job shares: prepared references and blocks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KNN_MEMO_NAMESPACE } from "./mod.ts";
 * assert.equal(KNN_MEMO_NAMESPACE, "knn");
 * ```
 */
export const KNN_MEMO_NAMESPACE = "knn";

/**
 * Version of the kNN step code. It is part of every job's config and memo
 * key; bump it when a change alters any stored block's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KNN_CODE_VERSION } from "./mod.ts";
 * assert.equal(typeof KNN_CODE_VERSION, "string");
 * ```
 */
export const KNN_CODE_VERSION = "1";

/** Options every kNN job accepts. */
export interface KnnJobBaseOptions extends KnnBlockSizeOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Job name. Default: `<kind>-<first 12 hex of the config fingerprint>`. */
  job?: string;
  /**
   * Directory for the `.npy` outputs, created when missing. Default: none;
   * the result then carries the arrays instead.
   */
  out?: string;
  /** Distance metric. Default: `"euclidean"`. */
  metric?: Metric;
  /**
   * Cosine and zero vectors: `"throw"` rejects them (naming the row) before
   * the job starts; `"one"` gives them distance 1 to everything.
   * Default: `"throw"`.
   */
  zeroVector?: ZeroVectorPolicy;
  /**
   * Self-search only: skip each row's own index. Must be false (or absent)
   * with a `query`. Default: true for self-search, false with a query.
   */
  excludeSelf?: boolean;
  /**
   * Aborting it stops the job after the block in progress; rerun to resume.
   * Pass `abortOnSignals().signal` to stop on SIGINT/SIGTERM. Default: none.
   */
  signal?: AbortSignal;
  /** Progress and warning events (`run-start`, `step-done`, ...). */
  onEvent?: (event: JobEvent) => void;
  /** Start a new run even if the latest one is unfinished with another config. Default: false. */
  newRun?: boolean;
  /** Lock options, e.g. `{ waitMs }`. Default: fail at once if locked. */
  lock?: AcquireLockOptions;
  /**
   * Worker threads searching each block of a kNN or kNN-graph job (radius
   * jobs use one). Results and step keys do not depend on it, so a run may
   * resume with another count. Default: the available cores.
   */
  threads?: number;
  /**
   * Share the blocks with other processes running the same job on the same
   * store (on any machines): each takes block leases, computes and commits
   * blocks, then one assembles the outputs while the others wait for it (see
   * `runSharedParts`). The outputs are the same bytes as a single process's.
   * Supported by `knnJob`. Default: false.
   */
  sharedWorkers?: boolean;
  /**
   * With `sharedWorkers`: a block lease without a heartbeat for this long is
   * taken over by another worker (a dead worker on the same host is taken
   * over at once). Default: 60 000.
   */
  leaseMs?: number;
}

/** Where the prepared reference of a run came from. */
export type PreparedSource = "computed" | "memo" | "stored" | "unused";

/** What every kNN job returns. */
export interface KnnJobInfo {
  /** Job name. */
  job: string;
  /** Run id. */
  run: string;
  /** An earlier run (unfinished or completed) was reopened. */
  resumed: boolean;
  /** The run was already completed before this call; nothing was computed. */
  alreadyCompleted: boolean;
  /** The plan the job ran with. */
  plan: KnnJobPlan;
  /** Block steps this call computed (0 when everything was stored). */
  computedBlocks: number;
  /** Block steps reused from another run through the memo namespace. */
  memoBlocks: number;
  /** Where the prepared reference came from in this call. */
  prepared: PreparedSource;
  /** Size and BLAKE3 of each output file (also when kept in memory). */
  outputs: Record<string, OutputFileInfo>;
  /** Output file paths by name; empty without `out`. */
  files: Record<string, string>;
  /** Paths this call (re)wrote. */
  written: string[];
}
