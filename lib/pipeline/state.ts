/**
 * A pipeline run's record (the seed's `CheckpointState`), derived by
 * replaying the job run that holds it, and the queries over those records:
 * one run by id, and the failed runs that can be resumed.
 *
 * @module
 */
import type { ChunkRef } from "../../store/chunk_store.ts";
import { fingerprint } from "../../store/cbor.ts";
import type { Store } from "../../store/store.ts";
import { resolveStore } from "../open_store.ts";
import { findPipelineRun, pipelineRuns, resumableOf } from "./_records.ts";

/** A component that finished in a run. */
export interface CompletedComponent {
  /** 0-based index. */
  index: number;
  /** `instance-name`. */
  name: string;
  /** `instance-type`. */
  instanceType: string;
  /** When its output was recorded. */
  completedAt: string;
  /** How long it ran (0 when reused). */
  durationMs: number;
  /** Bytes of its stored output. */
  outputBytes: number;
  /** The chunks holding its output (absent once cleaned up). */
  outputChunks?: ChunkRef[];
  /** True when its output was reused from the run this one resumed. */
  reused: boolean;
}

/** A component that failed. */
export interface ComponentFailure {
  /** 0-based index. */
  index: number;
  /** `instance-name`. */
  name: string;
  /** The error message. */
  error: string;
}

/** Where a pipeline run stands. */
export type PipelineStatus = "running" | "failed" | "completed";

/** A pipeline run's record: the seed's `CheckpointState`, plus cairn's output references. */
export interface PipelineRun {
  /** The run id. */
  runId: string;
  /** `pipeline-name`. */
  pipelineName: string;
  /** The cairn job holding the pipeline's runs. */
  job: string;
  /** When the run started. */
  startedAt: string;
  /** When it ended, if it did. */
  endedAt?: string;
  /** Finished components, by index. */
  completedComponents: CompletedComponent[];
  /** Highest index such that every component up to it finished; -1 before the first. */
  lastCheckpointedIndex: number;
  /** Number of components. */
  totalComponents: number;
  /** Running, failed (including killed or interrupted) or completed. */
  status: PipelineStatus;
  /** Why the run failed. */
  error?: string;
  /** Every component failure, in order. */
  errors: ComponentFailure[];
  /** Where a failed run stopped: the first component that did not finish. */
  failedAt?: { index: number; name: string; label: string };
  /** The failed run this one continued. */
  resumedFrom?: string;
  /** Whether checkpointing was on (only such runs can be resumed). */
  checkpoint: boolean;
  /** True when the component records were forgotten after success (cleanup-on-success). */
  cleanedUp: boolean;
}

/** The seed's name for a run's record. */
export type CheckpointState = PipelineRun;

/**
 * The cairn job that holds a pipeline's runs: `pipeline-` plus a readable
 * slug of the name plus 8 hex characters of its fingerprint.
 *
 * @param pipelineName The `pipeline-name`.
 * @returns The job name.
 *
 * @example A readable, collision-free job name
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipelineJobName } from "./state.ts";
 * assert.match(await pipelineJobName("Daily ETL Pipeline"), /^pipeline-daily-etl-pipeline-[0-9a-f]{8}$/);
 * ```
 */
export async function pipelineJobName(pipelineName: string): Promise<string> {
  const slug = pipelineName.toLowerCase().replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "").slice(0, 80) || "unnamed";
  return `pipeline-${slug}-${(await fingerprint(pipelineName)).slice(0, 8)}`;
}

/** Options for {@linkcode listResumable} and {@linkcode loadPipelineRun}. */
export interface PipelineStoreOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
}

/**
 * The failed runs of a pipeline that can be resumed, newest first: failed,
 * interrupted or killed runs with checkpointing on that no later run has
 * resumed yet.
 *
 * @param pipelineName The `pipeline-name`.
 * @param options The store.
 * @returns Their records; `failedAt.label` reads "component 2/3".
 *
 * @example A pipeline that never ran has nothing to resume
 * ```ts
 * import assert from "node:assert/strict";
 * import { listResumable } from "./state.ts";
 * assert.deepEqual(await listResumable("Nothing ran", { store: "memory:list-resumable" }), []);
 * ```
 */
export async function listResumable(
  pipelineName: string,
  options: PipelineStoreOptions = {},
): Promise<PipelineRun[]> {
  const store = await resolveStore(options.store);
  const runs = await pipelineRuns(store, await pipelineJobName(pipelineName));
  return resumableOf(runs.map((r) => r.run));
}

/**
 * Find a pipeline run by id in any pipeline job of the store; a run cleaned
 * up after success is found through the small record that replaced it.
 *
 * @param runId The run id.
 * @param options The store.
 * @returns The run's record, or undefined.
 *
 * @example An unknown run id gives undefined
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPipelineRun } from "./state.ts";
 * assert.equal(await loadPipelineRun("20260101T000000.000Z-00000000", { store: "memory:load-run" }), undefined);
 * ```
 */
export async function loadPipelineRun(
  runId: string,
  options: PipelineStoreOptions = {},
): Promise<PipelineRun | undefined> {
  return (await findPipelineRun(await resolveStore(options.store), runId))
    ?.run;
}
