/**
 * What a map run has done, read from its manifest: the numbers `cairn show`
 * prints for map jobs, available to scripts too.
 *
 * @module
 */
import type { StepRecord } from "../records.ts";
import type { RunState } from "../replay.ts";

/**
 * The stats a map batch step records (`stats` of its step record); see
 * docs/format.md. Runs written before this type had the same fields.
 */
export interface MapBatchStats {
  /** Global index of the batch's first item. */
  start: number;
  /** Items in the batch. */
  items: number;
  /** Items whose function failed after its retries (`onError: "skip"`). */
  failed: number;
  /** Items answered from another run's results. */
  memoHits: number;
  /** Items whose function ran for this batch. */
  computed: number;
  /** Wall time of the batch, in ms. */
  durationMs: number;
  /** The first 20 failures, by global index; messages cut at 500 characters. */
  errors?: { index: number; error: string }[];
  /**
   * Per-item memo keys of runs written before step records had `items`: the
   * same bytes as the record's `items.keys` (16 per item in batch order, a
   * BLAKE3 prefix of the item's deterministic CBOR arguments, zeroed for a
   * failed item). New runs leave it out.
   */
  itemKeys?: Uint8Array;
}

/** How `cairn show` displays one step of a map run. */
export interface MapStepView {
  /** Stats worth a line each (per-item data left out). */
  stats: Record<string, unknown>;
  /** The batch's recorded failures, by global index. */
  failures: { index: number; error: string }[];
}

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

type BatchStats = Partial<MapBatchStats>;

/**
 * Split a map batch step's stats into what `show` lists as stats and the
 * failures it lists per item; undefined for runs of other kinds.
 *
 * @param state The replayed run the step belongs to.
 * @param step One of its step records.
 * @returns The stats to show and the failures, or undefined.
 *
 * @example Item keys are not shown as stats
 * ```ts
 * import assert from "node:assert/strict";
 * import { map } from "./map.ts";
 * import { describeMapStep } from "./describe.ts";
 * import { replayJob } from "../replay.ts";
 * import { openStore } from "../open_store.ts";
 * const store = await openStore("memory:describe-step-example");
 * await map([1, 2], (x: number) => x + 1, { store, job: "plus" });
 * const [run] = await replayJob(store, "plus");
 * const view = describeMapStep(run!, [...run!.steps.values()][0]!);
 * assert.equal(view?.stats.items, 2);
 * assert.ok(!("itemKeys" in view!.stats));
 * ```
 */
export function describeMapStep(
  state: RunState,
  step: StepRecord,
): MapStepView | undefined {
  if (state.header.kind !== "map") return undefined;
  const { itemKeys: _keys, errors, ...stats } = (step.stats ?? {}) as
    & BatchStats
    & Record<string, unknown>;
  return { stats, failures: errors ?? [] };
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
