/**
 * How a processor run lays its checkpoints into the job runtime: one job per
 * dataset, one step per checkpoint. A checkpoint step's output holds the
 * records and ids of the items processed since the previous checkpoint plus
 * the seed state; its record's `stats.processor` holds the same state and the
 * link to the previous checkpoint, so status is a replay of the log alone.
 *
 * @module
 */
import { assertName } from "../../store/store.ts";
import type { StepRecord } from "../records.ts";
import type { ItemError, ProcessorCheckpointState } from "./types.ts";

/** Job kind of processor runs. */
export const PROCESSOR_KIND = "processor";

/** Checkpoints kept as restore points per dataset by default. */
export const DEFAULT_MAX_CHECKPOINTS = 10;

/** Errors kept with each checkpoint for `status`. */
export const RECENT_ERRORS = 20;

/** The seed's checkpoint format version. */
export const STATE_VERSION = "1.0";

const JOB_PREFIX = "processor-";

/** What a processor run's config holds; `resume` needs nothing else. */
export interface ProcessorRunConfig {
  processor: string;
  /** `MODULE#EXPORT` when the processor was loaded from a module. */
  module?: string;
  input: string;
  out: string;
  params: Record<string, unknown>;
}

/** What a checkpoint record carries in `stats.processor`. */
export interface CheckpointMeta {
  seq: number;
  /** Key of the checkpoint this one continues, or null for the first. */
  prev: string | null;
  state: ProcessorCheckpointState;
  /** Per-prefix id counters for `nextId`. */
  counters: Record<string, number>;
  /** The newest item errors (at most 20). */
  recentErrors: ItemError[];
  /** Items in this checkpoint. */
  items: number;
  /** The dataset's `maxCheckpoints` when this checkpoint was written. */
  maxCheckpoints: number;
  /** On a `resuming` checkpoint: the damaged checkpoint it skipped, and why. */
  fallback?: string;
}

/** A checkpoint step's output. */
export interface CheckpointData {
  state: ProcessorCheckpointState;
  ids: string[];
  /** The output records as JSON text, so their key order survives the store's sorted CBOR maps. */
  lines: string[];
}

/**
 * The job that holds a dataset's runs.
 *
 * @param dataset The dataset name.
 * @returns The job name.
 */
export function datasetJob(dataset: string): string {
  if (typeof dataset !== "string" || dataset.length > 118) {
    throw new TypeError(
      `Cannot use dataset name "${
        String(dataset)
      }": use 1 to 118 characters from A-Z, a-z, 0-9, ".", "_" and "-"`,
    );
  }
  assertName("dataset", dataset);
  return `${JOB_PREFIX}${dataset}`;
}

/**
 * The dataset of a processor job, or undefined for other jobs.
 *
 * @param job A job name.
 * @returns The dataset name.
 */
export function datasetOf(job: string): string | undefined {
  return job.startsWith(JOB_PREFIX) ? job.slice(JOB_PREFIX.length) : undefined;
}

/**
 * A copy of a state with its keys in the seed's order (stored states come
 * back with sorted keys).
 *
 * @param s The state.
 * @returns The same fields in the seed's order.
 */
export function seedOrder(
  s: ProcessorCheckpointState,
): ProcessorCheckpointState {
  return {
    checkpoint_id: s.checkpoint_id,
    dataset: s.dataset,
    processor: s.processor,
    start_time: s.start_time,
    last_update: s.last_update,
    processed_count: s.processed_count,
    last_processed_id: s.last_processed_id,
    last_generated_id: s.last_generated_id,
    status: s.status,
    error: s.error,
    processor_state: {
      current_position: s.processor_state.current_position,
      total_items: s.processor_state.total_items,
      dataset_specific_state: s.processor_state.dataset_specific_state,
    },
    statistics: {
      success_count: s.statistics.success_count,
      error_count: s.statistics.error_count,
      skipped_count: s.statistics.skipped_count,
      processing_time_seconds: s.statistics.processing_time_seconds,
      average_processing_time_per_item_ms:
        s.statistics.average_processing_time_per_item_ms,
    },
    version: s.version,
  };
}

/**
 * The step key of checkpoint `seq`.
 *
 * @param seq 1-based sequence number within the run.
 * @returns The key.
 */
export function checkpointKey(seq: number): string {
  return `checkpoint-${String(seq).padStart(6, "0")}`;
}

/**
 * The seed's checkpoint id, `{dataset}_{timestamp}_{seq}`, where the
 * timestamp is the run's start to the millisecond (`YYYYMMDDHHMMSSmmm`):
 * unique per dataset, since a dataset's runs never start in the same
 * millisecond.
 *
 * @param dataset The dataset.
 * @param run The run id (`YYYYMMDDTHHMMSS.mmmZ-…`).
 * @param seq The checkpoint's sequence number in the run.
 * @returns The id.
 */
export function checkpointId(
  dataset: string,
  run: string,
  seq: number,
): string {
  const stamp = run.slice(0, run.indexOf("Z")).replace(/[T.]/g, "");
  return `${dataset}_${stamp}_${seq}`;
}

/**
 * The checkpoint metadata of a step record, if it is a checkpoint.
 *
 * @param record A step record.
 * @returns Its metadata.
 */
export function metaOf(
  record: StepRecord | undefined,
): CheckpointMeta | undefined {
  const meta = record?.stats?.processor as CheckpointMeta | undefined;
  return meta !== undefined && typeof meta === "object" &&
      typeof meta.seq === "number"
    ? meta
    : undefined;
}

/** A checkpoint of a run, as the log records it. */
export interface CheckpointEntry {
  key: string;
  meta: CheckpointMeta;
  at: string;
}

/**
 * Every checkpoint record of a run, by sequence number.
 *
 * @param steps The run's done steps.
 * @returns The checkpoints, oldest first.
 */
export function checkpointsOf(
  steps: ReadonlyMap<string, StepRecord>,
): CheckpointEntry[] {
  const out: CheckpointEntry[] = [];
  for (const [key, record] of steps) {
    const meta = metaOf(record);
    if (meta !== undefined) out.push({ key, meta, at: record.at });
  }
  return out.sort((a, b) => a.meta.seq - b.meta.seq);
}

/**
 * The chain of checkpoints the newest one continues, oldest first.
 *
 * @param entries The run's checkpoints.
 * @param from Key to start from. Default: the newest checkpoint.
 * @returns The lineage.
 */
export function lineageOf(
  entries: readonly CheckpointEntry[],
  from?: string,
): CheckpointEntry[] {
  const byKey = new Map(entries.map((e) => [e.key, e]));
  const chain: CheckpointEntry[] = [];
  let at = from === undefined ? entries.at(-1) : byKey.get(from);
  const seen = new Set<string>();
  while (at !== undefined && !seen.has(at.key)) {
    seen.add(at.key);
    chain.push(at);
    at = at.meta.prev === null ? undefined : byKey.get(at.meta.prev);
  }
  return chain.reverse();
}
