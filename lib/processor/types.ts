/**
 * The shapes of the dataset processors family: a processor, what its
 * `process` receives, and the seed's checkpoint state that `status` reports.
 *
 * @module
 */
import type { JobEvent } from "../events.ts";

/** An item of a dataset: anything with a stable id. */
export interface ProcessorItem {
  /** Stable across runs: the same input gives the same ids in the same order. */
  id: string;
}

/** What `setup`, `count` and `items` receive. */
export interface SetupContext {
  /** The dataset name. */
  dataset: string;
  /** Processor parameters (e.g. `schema` for `jsonl-normalize`), recorded with the run. */
  params: Record<string, unknown>;
  /** Aborted when the run is stopping. */
  signal: AbortSignal;
}

/** What `process` receives besides the item. */
export interface ProcessContext extends SetupContext {
  /**
   * Processor state that travels across checkpoints (the seed's
   * `dataset_specific_state`): change it in place; keep it small.
   */
  state: Record<string, unknown>;
  /**
   * A new id such as `S000124`: per-prefix counters are saved in each
   * checkpoint, so ids never repeat across kills and resumes.
   */
  nextId(prefix: string): string;
  /** Count this item as skipped (it gives no output). */
  skip(reason?: string): void;
}

/**
 * A dataset processor: an ordered item source and a function from an item to
 * zero or more output records (JSON values). A thrown error counts the item as
 * an error with that reason; it does not stop the run.
 */
export interface Processor<I extends ProcessorItem = ProcessorItem> {
  /** Registry name, e.g. `file-index`. */
  readonly name: string;
  /** Version of `process`; change it when outputs change. Default: "1". */
  readonly version?: string;
  /** Prepare for a run (compile a schema, say). Called once per attempt. */
  setup?(input: string, ctx: SetupContext): void | Promise<void>;
  /** How many items `items` will yield, for progress and ETA. */
  count?(
    input: string,
    ctx: SetupContext,
  ): number | undefined | Promise<number | undefined>;
  /** The items of `input`, in a deterministic order with stable ids. */
  items(input: string, ctx: SetupContext): AsyncIterable<I> | Iterable<I>;
  /** The output records of one item (an array; none for undefined). */
  process(
    item: I,
    ctx: ProcessContext,
  ): unknown[] | undefined | Promise<unknown[] | undefined>;
}

/** The seed's checkpoint status values. */
export type CheckpointStatus =
  | "in_progress"
  | "completed"
  | "failed"
  | "resuming";

/** The seed's checkpoint state, field for field (`processed_files` is paged on request instead). */
export interface ProcessorCheckpointState {
  /** `{dataset}_{run start}_{n}`, unique per dataset. */
  checkpoint_id: string;
  /** The dataset name. */
  dataset: string;
  /** The processor name. */
  processor: string;
  /** When the run started (ISO 8601). */
  start_time: string;
  /** When this checkpoint was written (ISO 8601). */
  last_update: string;
  /** Items processed so far: successes, errors and skips. */
  processed_count: number;
  /** Id of the last item processed, or null before the first. */
  last_processed_id: string | null;
  /** The last id `ctx.nextId` gave, or null. */
  last_generated_id: string | null;
  /** Where the run stands. */
  status: CheckpointStatus;
  /** Why the run failed, or null. */
  error: string | null;
  /** Position, total and the processor's own state. */
  processor_state: {
    /** Items of the input consumed (the next item's index). */
    current_position: number;
    /** Items the input has, when the processor can count them. */
    total_items: number | null;
    /** What the processor keeps in `ctx.state`. */
    dataset_specific_state: Record<string, unknown>;
  };
  /** Counts and times. */
  statistics: {
    /** Items that gave their records. */
    success_count: number;
    /** Items whose processing threw. */
    error_count: number;
    /** Items the processor skipped. */
    skipped_count: number;
    /** Time spent in `process`, over all attempts. */
    processing_time_seconds: number;
    /** `processing_time_seconds` per processed item, in ms. */
    average_processing_time_per_item_ms: number;
  };
  /** The state format version, "1.0". */
  version: string;
}

/** An item that failed, with its reason. */
export interface ItemError {
  /** The item id. */
  id: string;
  /** The reason. */
  error: string;
}

/** Events of a processor run, besides the job's `warning` events. */
export type ProcessorEvent =
  | JobEvent
  | {
    type: "checkpoint";
    dataset: string;
    checkpointId: string;
    status: CheckpointStatus;
    processed: number;
    items: number;
    total?: number;
  }
  | {
    type: "resume";
    dataset: string;
    checkpointId: string;
    position: number;
    /** Set when a damaged checkpoint was skipped: what happened. */
    fallback?: string;
  }
  | { type: "item-error"; dataset: string; id: string; error: string }
  | {
    type: "retry";
    dataset: string;
    attempt: number;
    maxRetries: number;
    delayMs: number;
    error: string;
  };
