/**
 * Garbage collection: mark every chunk a remaining run references, then sweep
 * the rest. Safe to kill at any point (it only ever deletes unreferenced
 * chunks), and safe beside running jobs: chunks younger than the grace period
 * are kept, and a dedup hit refreshes a chunk's age.
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import { replayRun, runChunks } from "./replay.ts";

/** Temp files younger than this are never swept: 10 minutes. */
export const TEMP_MIN_AGE_MS = 600_000;

/** Options for {@linkcode collectGarbage}. */
export interface GcOptions {
  /** Report what would be deleted, delete nothing. Default: false. */
  dryRun?: boolean;
  /** Unreferenced chunks younger than this are kept. Default: 1 hour. */
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
  sweptBytes: number;
  /** Unreferenced chunks kept because they are younger than the grace period. */
  young: number;
  /** Leftover temp files removed. */
  tempRemoved: number;
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
 * const report = await collectGarbage(store, { graceMs: 0 });
 * assert.ok(report.swept === 1);
 * ```
 */
export async function collectGarbage(
  store: Store,
  options: GcOptions = {},
): Promise<GcReport> {
  const graceMs = options.graceMs ?? 3_600_000;
  const startedAt = Date.now();
  const referenced = new Set<string>();
  const report: GcReport = {
    runs: 0,
    referenced: 0,
    swept: 0,
    sweptBytes: 0,
    young: 0,
    tempRemoved: 0,
  };
  for (const job of await store.listJobs()) {
    for (const run of await store.listRuns(job)) {
      // A log that cannot be read means unknown references: stop rather than guess.
      const state = await replayRun(store, job, run).catch((error: Error) => {
        throw new Error(
          `Cannot collect garbage: run "${job}/${run}" cannot be read (${error.message}); run "cairn verify" first`,
        );
      });
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
    if (startedAt - stat.mtimeMs < graceMs) {
      report.young++;
      continue;
    }
    report.swept++;
    report.sweptBytes += stat.size;
    if (!options.dryRun) await store.chunks.delete(hash);
  }
  if (!options.dryRun && store.sweepTemp !== undefined) {
    // A temp file is being written for seconds at most; never sweep one younger
    // than TEMP_MIN_AGE_MS, whatever the grace period, so a live writer keeps it.
    report.tempRemoved = await store.sweepTemp(
      Math.max(graceMs, TEMP_MIN_AGE_MS),
    );
  }
  return report;
}
