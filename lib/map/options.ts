/**
 * Options shared by the map family ({@linkcode map}, `map2`, `pmap`, `imap`,
 * `walk`, `mapIter`) and the error a failed item turns into.
 *
 * @module
 */
import type { Store } from "../../store/store.ts";
import type { JobEvent } from "../events.ts";

/**
 * Run the mapped function on `node:worker_threads` Workers instead of the
 * calling thread, for CPU-bound work. Each Worker imports `module` and calls
 * its export named `export` with the same arguments the function would get.
 * The export must be the very function passed to the map call (their sources
 * are compared), so results and memo keys are the same as in serial mode.
 */
export interface MapWorkers {
  /** The module that exports the function: a URL, or a path resolved against the current directory. */
  module: string | URL;
  /** Name of the export to call. */
  export: string;
  /** Number of Workers. Default: `os.availableParallelism()` (at least 1). */
  threads?: number;
}

/** Options for the map family. Every option has a default; none is required. */
export interface MapOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /**
   * The job name. Default: derived, `<op>-<16 hex>` where the hex is the
   * fingerprint of the op, `name`, `version`, `batchSize`, `onError` and the
   * content of every item (for an iterable input: everything but the items).
   * With an explicit name, a call whose items or options differ from the
   * job's unfinished run fails with `ConfigChangedError` (pass `newRun`);
   * after a finished run it starts a new run, reusing items through the memo.
   * One call at a time per job: a second concurrent call fails with `LockedError`.
   */
  job?: string;
  /**
   * Identity of the function for memo hits across jobs and runs. Default:
   * `fn-<12 hex>` from the function's source text, so an edit to the function
   * recomputes everything. Name it to keep results across edits; then
   * `version` is the contract, and an edit without a version bump is reported
   * as a `warning` event.
   */
  name?: string;
  /** Version of the function; part of the job name and memo namespace. Default: "1". */
  version?: string;
  /** Items per batch; each batch is one step, one results chunk and one manifest record. Default: 100. */
  batchSize?: number;
  /**
   * Items in flight at once (within a batch and across up to this many
   * batches). With `workers`, at least `threads`. Default: 1.
   */
  concurrency?: number;
  /**
   * Retries of a failing item after its first attempt. While an item waits
   * for its retry, its concurrency slot runs other items (of its batch or the
   * next); the retry queues behind them, and the batch is recorded once all
   * its items are settled.
   * Default: 3.
   */
  retries?: number;
  /** Delay before an item's first retry; it doubles each retry, ±10% jitter, at most 30 s. Default: 1000. */
  retryDelayMs?: number;
  /** Whether an error is worth retrying. Default: every error except an interruption. */
  retryOn?: (error: unknown, attempt: number) => boolean;
  /**
   * What a failed item (after its retries) does. `"stop"`: the call rejects
   * with its {@linkcode MapItemError} once the failure is recorded. `"skip"`:
   * the failure is recorded, the item's result slot holds its
   * {@linkcode MapItemError}, and mapping goes on. Default: "stop".
   */
  onError?: "stop" | "skip";
  /** Run the function on Worker threads. Default: none (the calling thread). */
  workers?: MapWorkers;
  /**
   * Reuse results of the same items computed by other runs with the same
   * function identity (`name`) and `version`, even in other jobs. When false,
   * nothing is looked up (results are still recorded for later runs). Default: true.
   */
  memo?: boolean;
  /** Start a new run of the job even when the latest one could be resumed. Default: false. */
  newRun?: boolean;
  /** Aborting it stops the call with an `InterruptedError`; rerun to resume. Default: none. */
  signal?: AbortSignal;
  /**
   * Receives the job's events (`run-start`, `step-done` counting batches,
   * `warning`, `run-end`, …) and, after each batch, a `progress` event whose
   * `done`/`total` count items (`unit: "items"`). Default: none.
   */
  onEvent?: (event: JobEvent) => void;
  /**
   * Where to report progress as text lines, in the manner of SafeMapper:
   * "Resuming from item X/N" when a call resumes, then "[XX%] items X–Y of N"
   * after each batch. A function gets each line; a writable (such as
   * `process.stderr`) gets each line and a newline. The library never prints
   * by itself. Default: none (no lines).
   */
  progress?: MapProgress;
}

/** A sink for progress lines: a function, or a writable such as `process.stderr`. */
export type MapProgress =
  | ((line: string) => void)
  | { write(text: string): unknown };

/**
 * An item that failed after its retries. In `onError: "stop"` mode the call
 * rejects with it; in `"skip"` mode it sits in the item's result slot.
 *
 * @example Recognise failed slots
 * ```ts
 * import assert from "node:assert/strict";
 * import { MapItemError } from "./options.ts";
 * const slot: unknown = new MapItemError(3, "boom", 4, "map-demo");
 * assert.ok(slot instanceof MapItemError && slot.index === 3);
 * ```
 */
export class MapItemError extends Error {
  /** Global, 0-based index of the item. */
  readonly index: number;
  /** The failure's message. */
  readonly error: string;
  /** Attempts made (0 when the failure was read back from the store). */
  readonly attempts: number;
  /** The job that recorded the failure. */
  readonly job: string;
  /**
   * Make the error of one failed item.
   *
   * @param index Global index of the item.
   * @param error The failure's message.
   * @param attempts Attempts made.
   * @param job The job name.
   * @param options Standard error options (`cause`).
   */
  constructor(
    index: number,
    error: string,
    attempts: number,
    job: string,
    options?: ErrorOptions,
  ) {
    super(
      `Cannot map item ${index} of job "${job}"${
        attempts > 0
          ? ` after ${attempts} attempt${attempts > 1 ? "s" : ""}`
          : ""
      }: ${error}`,
      options,
    );
    this.name = "MapItemError";
    this.index = index;
    this.error = error;
    this.attempts = attempts;
    this.job = job;
  }
}

/**
 * The failed slots of an `onError: "skip"` result array, in index order.
 *
 * @param results What a map call returned.
 * @returns The failures.
 *
 * @example List the failed slots
 * ```ts
 * import assert from "node:assert/strict";
 * import { failuresOf, map } from "./mod.ts";
 * const out = await map([1, 0, 2], (x) => {
 *   if (x === 0) throw new Error("zero");
 *   return 10 / x;
 * }, { store: "memory:failures-of", onError: "skip", retries: 0 });
 * assert.ok(failuresOf(out).length === 1 && failuresOf(out)[0]!.index === 1);
 * ```
 */
export function failuresOf(results: readonly unknown[]): MapItemError[] {
  return results.filter((r): r is MapItemError => r instanceof MapItemError);
}
