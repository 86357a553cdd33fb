/**
 * What a map run has done, read from its manifest: the numbers `cairn show`
 * prints for map jobs, available to scripts too.
 *
 * @module
 */
import type { RunState } from "../replay.ts";

/** Item counts, failures and throughput of a map run. */
export interface MapRunProgress {
  /** Items in the input, or null for a stream of unknown length. */
  total: number | null;
  /** Items that have a result. */
  done: number;
  /** Items whose function failed (with `onError: "skip"`). */
  failed: number;
  /** Items not yet in any finished batch, or null when the total is unknown. */
  pending: number | null;
  /** Items answered from another run's memo. */
  memoHits: number;
  /** Items whose function ran in this run. */
  computed: number;
  /** Wall time of the batch steps (compute and write), in ms. */
  computeMs: number;
  /** Computed items per second of step time, or null before any was computed. */
  itemsPerSecond: number | null;
  /** Failed items with their messages (at most 20 per batch are recorded), by index. */
  failures: { index: number; error: string }[];
}

interface BatchStats {
  items?: number;
  failed?: number;
  memoHits?: number;
  computed?: number;
  errors?: { index: number; error: string }[];
}

/**
 * Summarise a replayed map run; undefined for runs of other kinds.
 *
 * @param state A replayed run (see `replayRun`).
 * @returns Its item counts, failures and throughput.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { map } from "./map.ts";
 * import { describeMapRun } from "./describe.ts";
 * import { replayJob } from "../replay.ts";
 * import { openStore } from "../open_store.ts";
 * const store = await openStore("memory:describe-example");
 * await map([1, 2, 3], (x: number) => x * 2, { store, job: "doubles", batchSize: 2 });
 * const [run] = await replayJob(store, "doubles");
 * const progress = describeMapRun(run!);
 * assert.equal(progress?.done, 3);
 * assert.equal(progress?.pending, 0);
 * ```
 */
export function describeMapRun(state: RunState): MapRunProgress | undefined {
  if (state.header.kind !== "map") return undefined;
  const config = state.header.config as { items?: number | null };
  const total = typeof config.items === "number" ? config.items : null;
  const progress: MapRunProgress = {
    total,
    done: 0,
    failed: 0,
    pending: null,
    memoHits: 0,
    computed: 0,
    computeMs: 0,
    itemsPerSecond: null,
    failures: [],
  };
  let seen = 0;
  for (const step of state.steps.values()) {
    const stats = (step.stats ?? {}) as BatchStats;
    seen += stats.items ?? 0;
    progress.failed += stats.failed ?? 0;
    progress.memoHits += stats.memoHits ?? 0;
    progress.computed += stats.computed ?? 0;
    progress.computeMs += step.durationMs;
    progress.failures.push(...(stats.errors ?? []));
  }
  progress.done = seen - progress.failed;
  progress.pending = total === null ? null : Math.max(0, total - seen);
  if (progress.computed > 0 && progress.computeMs > 0) {
    progress.itemsPerSecond = Math.round(
      (progress.computed / progress.computeMs) * 1000,
    );
  }
  progress.failures.sort((a, b) => a.index - b.index);
  return progress;
}
