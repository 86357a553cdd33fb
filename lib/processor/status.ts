/**
 * What a dataset's processor runs report, rebuilt by replaying their logs:
 * the seed's checkpoint state, rate, ETA, checkpoints and recent errors. The
 * list of processed items is paged from the checkpoints on request.
 *
 * @module
 */
import type { Store } from "../../store/store.ts";
import { resolveStore } from "../open_store.ts";
import { readValueChunks } from "../output.ts";
import { replayJob, replayRun, type RunState } from "../replay.ts";
import {
  type CheckpointData,
  type CheckpointEntry,
  checkpointsOf,
  datasetJob,
  datasetOf,
  DEFAULT_MAX_CHECKPOINTS,
  lineageOf,
  PROCESSOR_KIND,
  seedOrder,
} from "./_checkpoint.ts";
import type {
  CheckpointStatus,
  ItemError,
  ProcessorCheckpointState,
} from "./types.ts";

/** Options for {@linkcode processorStatus}, {@linkcode listProcessorDatasets} and {@linkcode processedItems}. */
export interface ProcessorStatusOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
}

/** A checkpoint as `ls` and `status` list it. */
export interface CheckpointSummary {
  /** The checkpoint id. */
  checkpoint_id: string;
  /** The run it belongs to. */
  run: string;
  /** Its status. */
  status: CheckpointStatus;
  /** When it was written. */
  last_update: string;
  /** Items processed at that point. */
  processed_count: number;
  /** Input position at that point. */
  current_position: number;
  /** Items processed since the previous checkpoint. */
  items: number;
}

/** A dataset's status. */
export interface ProcessorStatus {
  /** The seed's checkpoint state of the latest run, field for field. */
  state: ProcessorCheckpointState;
  /** The run id. */
  run: string;
  /** The run's status in the log (`running` when no end record follows the last attempt). */
  runStatus: string;
  /** Processed items per second of processing time. */
  itemsPerSecond: number;
  /** Seconds left at that rate, when the total is known. */
  etaSeconds: number | null;
  /** The restore points: the newest `maxCheckpoints` checkpoints of the dataset, newest first. */
  checkpoints: CheckpointSummary[];
  /** The newest item errors. */
  recentErrors: ItemError[];
}

function summary(run: string, e: CheckpointEntry): CheckpointSummary {
  const s = e.meta.state;
  return {
    checkpoint_id: s.checkpoint_id,
    run,
    status: s.status,
    last_update: s.last_update,
    processed_count: s.processed_count,
    current_position: s.processor_state.current_position,
    items: e.meta.items,
  };
}

/** The newest `max` checkpoints over all of a dataset's runs, newest first. */
function restorePoints(runs: RunState[]): CheckpointSummary[] {
  const all = runs.flatMap((r) =>
    checkpointsOf(r.steps).map((e) => ({ run: r.run, e }))
  ).sort((a, b) =>
    b.e.at.localeCompare(a.e.at) || b.run.localeCompare(a.run) ||
    b.e.meta.seq - a.e.meta.seq
  );
  const max = all[0]?.e.meta.maxCheckpoints ?? DEFAULT_MAX_CHECKPOINTS;
  return all.slice(0, max).map(({ run, e }) => summary(run, e));
}

function statusOf(dataset: string, runs: RunState[]): ProcessorStatus {
  const latest = runs.at(-1);
  const last = latest === undefined
    ? undefined
    : lineageOf(checkpointsOf(latest.steps)).at(-1);
  if (latest === undefined || last === undefined) {
    throw new RangeError(
      `Cannot report dataset "${dataset}": it has no checkpoints yet; start it with runProcessor (cairn processor run)`,
    );
  }
  const state = seedOrder(structuredClone(last.meta.state));
  if (latest.status === "failed") {
    state.status = "failed";
    state.error = latest.end?.error ?? state.error;
  }
  const seconds = state.statistics.processing_time_seconds;
  const rate = seconds > 0 ? state.processed_count / seconds : 0;
  const total = state.processor_state.total_items;
  return {
    state,
    run: latest.run,
    runStatus: latest.status,
    itemsPerSecond: Math.round(rate * 100) / 100,
    etaSeconds: total === null || rate === 0 ? null : Math.round(
      Math.max(0, total - state.processor_state.current_position) / rate,
    ),
    checkpoints: restorePoints(runs),
    recentErrors: last.meta.recentErrors,
  };
}

async function datasetRuns(store: Store, dataset: string): Promise<RunState[]> {
  return (await replayJob(store, datasetJob(dataset))).filter((r) =>
    r.header.kind === PROCESSOR_KIND
  );
}

/**
 * A dataset's status, from its logs alone (no lock, no chunk reads).
 *
 * @param dataset The dataset name.
 * @param options The store.
 * @returns The seed state, rate, ETA, restore points and recent errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runProcessor } from "./run.ts";
 * import { processorStatus } from "./status.ts";
 * const store = "memory:processor-status-example";
 * const p = { name: "ids", items: () => [{ id: "a" }, { id: "b" }], process: () => [] };
 * await runProcessor(p, { store, dataset: "two", input: ".", out: "/tmp/cairn-status-example.jsonl" });
 * const { state } = await processorStatus("two", { store });
 * assert.equal(state.status, "completed");
 * assert.equal(state.processed_count, 2);
 * ```
 */
export async function processorStatus(
  dataset: string,
  options: ProcessorStatusOptions = {},
): Promise<ProcessorStatus> {
  const store = await resolveStore(options.store);
  return statusOf(dataset, await datasetRuns(store, dataset));
}

/** A dataset in {@linkcode listProcessorDatasets}. */
export interface ProcessorDataset {
  /** The dataset name. */
  dataset: string;
  /** The processor of the latest run. */
  processor: string;
  /** Runs kept. */
  runs: number;
  /** The seed status of the latest run. */
  status: CheckpointStatus | "none";
  /** Items processed by the latest run. */
  processed_count: number;
  /** Items in its input, when known. */
  total_items: number | null;
  /** When its latest checkpoint was written. */
  last_update: string | null;
  /** The restore points, newest first. */
  checkpoints: CheckpointSummary[];
}

/**
 * Every dataset with processor runs in the store, with its checkpoints.
 *
 * @param options The store.
 * @returns The datasets, sorted by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runProcessor } from "./run.ts";
 * import { listProcessorDatasets } from "./status.ts";
 * const store = "memory:processor-ls-example";
 * const p = { name: "one", items: () => [{ id: "x" }], process: () => [] };
 * await runProcessor(p, { store, dataset: "ds", input: ".", out: "/tmp/cairn-ls-example.jsonl" });
 * const [ds] = await listProcessorDatasets({ store });
 * assert.equal(ds!.dataset, "ds");
 * assert.equal(ds!.checkpoints[0]!.status, "completed");
 * ```
 */
export async function listProcessorDatasets(
  options: ProcessorStatusOptions = {},
): Promise<ProcessorDataset[]> {
  const store = await resolveStore(options.store);
  const out: ProcessorDataset[] = [];
  for (const job of await store.listJobs()) {
    const dataset = datasetOf(job);
    if (dataset === undefined) continue;
    const runs = await datasetRuns(store, dataset);
    const latest = runs.at(-1);
    if (latest === undefined) continue;
    let status: ProcessorStatus | undefined;
    try {
      status = statusOf(dataset, runs);
    } catch {
      status = undefined;
    }
    out.push({
      dataset,
      processor: (latest.header.config as { processor?: string }).processor ??
        "?",
      runs: runs.length,
      status: status?.state.status ?? "none",
      processed_count: status?.state.processed_count ?? 0,
      total_items: status?.state.processor_state.total_items ?? null,
      last_update: status?.state.last_update ?? null,
      checkpoints: status?.checkpoints ?? [],
    });
  }
  return out;
}

/** Options for {@linkcode processedItems}. */
export interface ProcessedItemsOptions extends ProcessorStatusOptions {
  /** Items to skip. Default: 0. */
  offset?: number;
  /** Items to return at most. Default: 1000. */
  limit?: number;
}

/**
 * A page of the ids a dataset's latest run has processed, in order (the
 * seed's `processed_files`, read from the checkpoints instead of stored
 * whole in each).
 *
 * @param dataset The dataset name.
 * @param options Store, offset and limit.
 * @returns The ids and the total processed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runProcessor } from "./run.ts";
 * import { processedItems } from "./status.ts";
 * const store = "memory:processor-items-example";
 * const p = { name: "abc", items: () => ["a", "b", "c"].map((id) => ({ id })), process: () => [] };
 * await runProcessor(p, { store, dataset: "abc", input: ".", out: "/tmp/cairn-items-example.jsonl", checkpointEvery: 2 });
 * assert.deepEqual((await processedItems("abc", { store, offset: 1, limit: 5 })).ids, ["b", "c"]);
 * ```
 */
export async function processedItems(
  dataset: string,
  options: ProcessedItemsOptions = {},
): Promise<{ ids: string[]; total: number }> {
  const store = await resolveStore(options.store);
  const name = datasetJob(dataset);
  const latest = (await store.listRuns(name)).at(-1);
  if (latest === undefined) return { ids: [], total: 0 };
  const run = await replayRun(store, name, latest);
  const lineage = lineageOf(checkpointsOf(run.steps));
  const offset = options.offset ?? 0;
  const limit = options.limit ?? 1000;
  const ids: string[] = [];
  let at = 0;
  for (const entry of lineage) {
    const count = entry.meta.items;
    if (at + count > offset && ids.length < limit) {
      const output = run.steps.get(entry.key)!.output;
      if (output.kind === "value") {
        const data = await readValueChunks<CheckpointData>(
          store.chunks,
          output.chunks,
        );
        for (const id of data.ids.slice(Math.max(0, offset - at))) {
          if (ids.length >= limit) break;
          ids.push(id);
        }
      }
    }
    at += count;
  }
  return {
    ids,
    total: lineage.at(-1)?.meta.state.processor_state.current_position ?? 0,
  };
}
