/**
 * Garbage collection: mark every chunk a remaining run references, then sweep
 * the rest. Safe to kill at any point (it only ever deletes unreferenced
 * chunks), and safe beside running jobs (the protocol is in
 * `docs/format.md`, "Garbage collection"):
 * - a chunk written or dedup-hit after the cutoff is never deleted, and the
 *   check is atomic against a concurrent dedup hit (`notTouchedSince`);
 * - the cutoff is the start of the GC when no job holds a lock, so "forget,
 *   then gc" reclaims space at once; while any job holds a lock it is the
 *   start minus the grace period, which covers chunks a running job wrote
 *   but has not recorded yet.
 *
 * @module
 */
import { hostname } from "node:os";
import type { Store } from "../store/store.ts";
import { lockStaleReason } from "../store/lock.ts";
import { replayRun, runChunks } from "./replay.ts";

/** Temp files younger than this are never swept: 10 minutes. */
export const TEMP_MIN_AGE_MS = 600_000;

/**
 * The least grace applied while a job holds a lock: 1 minute. A step puts (or
 * dedup-refreshes) its chunks moments before it appends the record naming
 * them; a shorter grace would let gc judge such a chunk unreferenced.
 */
export const MIN_LIVE_GRACE_MS = 60_000;

/** Options for {@linkcode collectGarbage}. */
export interface GcOptions {
  /** Report what would be deleted, delete nothing. Default: false. */
  dryRun?: boolean;
  /**
   * While any job holds a lock, unreferenced chunks written or dedup-hit
   * less than this long before the GC started are kept (they may belong to
   * a step not yet recorded). Default: 1 hour; never less than
   * 1 minute while a job holds a lock. When no job
   * holds a live lock, only chunks touched after the GC started are kept.
   */
  graceMs?: number;
  /** Called as chunks are examined. */
  onProgress?: (examined: number) => void;
}

/** What {@linkcode collectGarbage} found and did. */
export interface GcReport {
  /** Runs whose references were marked. */
  runs: number;
  /** Distinct chunks referenced. */
  referenced: number;
  /** Unreferenced chunks deleted (or, in a dry run, that would be). */
  swept: number;
  /** Bytes of the swept chunks. */
  sweptBytes: number;
  /** Unreferenced chunks kept because they are younger than the grace period. */
  young: number;
  /** Leftover temp files removed. */
  tempRemoved: number;
  /**
   * The grace period applied: 0 when no job held a lock, else `graceMs`
   * raised to at least 1 minute.
   */
  appliedGraceMs: number;
}

/**
 * Mark and sweep unreferenced chunks.
 *
 * @param store The store.
 * @param options Dry run and grace period.
 * @returns The report.
 *
 * @example Sweep a chunk nothing references
 * ```ts
 * import assert from "node:assert/strict";
 * import { collectGarbage } from "./gc.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * await store.chunks.put(new Uint8Array([1]));
 * await new Promise((resolve) => setTimeout(resolve, 2)); // chunks touched as gc starts are kept
 * const report = await collectGarbage(store);
 * assert.ok(report.swept === 1);
 * ```
 */
export async function collectGarbage(
  store: Store,
  options: GcOptions = {},
): Promise<GcReport> {
  const startedAt = Date.now();
  // Read locks after noting the start: a job that locks later only writes
  // (or refreshes) chunks after `startedAt`, which are kept.
  const host = hostname();
  const running = (await store.listLocks()).some((info) =>
    !(info.host === host && lockStaleReason(info, { host })?.startsWith("pid"))
  );
  const graceMs = running
    ? Math.max(options.graceMs ?? 3_600_000, MIN_LIVE_GRACE_MS)
    : 0;
  const cutoff = startedAt - graceMs;
  const referenced = new Set<string>();
  const report: GcReport = {
    runs: 0,
    referenced: 0,
    swept: 0,
    sweptBytes: 0,
    young: 0,
    tempRemoved: 0,
    appliedGraceMs: graceMs,
  };
  if (!options.dryRun && store.sweepTemp !== undefined) {
    // First, so that chunks a killed GC left moved aside are back and judged
    // now. A temp file is being written for seconds at most; never sweep one
    // younger than TEMP_MIN_AGE_MS, whatever the grace, so a live writer keeps it.
    report.tempRemoved = await store.sweepTemp(
      Math.max(options.graceMs ?? 3_600_000, TEMP_MIN_AGE_MS),
    );
  }
  for (const job of await store.listJobs()) {
    for (const run of await store.listRuns(job)) {
      // A log that cannot be read means unknown references: stop rather than guess.
      const state = await replayRun(store, job, run).catch(
        async (error: Error) => {
          // Forgotten since it was listed: it references nothing any more.
          if (!(await store.listRuns(job)).includes(run)) return undefined;
          throw new Error(
            `Cannot collect garbage: run "${job}/${run}" cannot be read (${error.message}); run "cairn verify" first`,
          );
        },
      );
      if (state === undefined) continue;
      report.runs++;
      for (const hash of runChunks(state).keys()) referenced.add(hash);
    }
  }
  report.referenced = referenced.size;
  let examined = 0;
  for await (const hash of store.chunks.list()) {
    options.onProgress?.(++examined);
    if (referenced.has(hash)) continue;
    const stat = await store.chunks.stat(hash);
    if (stat === undefined) continue;
    if (stat.mtimeMs >= cutoff) {
      report.young++;
      continue;
    }
    if (
      !options.dryRun &&
      !(await store.chunks.delete(hash, { notTouchedSince: cutoff }))
    ) {
      report.young++; // refreshed by a dedup hit just now
      continue;
    }
    report.swept++;
    report.sweptBytes += stat.size;
  }
  return report;
}
