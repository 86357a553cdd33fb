/**
 * A pipeline run's record (the seed's `CheckpointState`), derived by
 * replaying the job run that holds it, and the queries over those records:
 * one run by id, and the failed runs that can be resumed.
 *
 * @module
 */
import type { ChunkRef } from "../../store/chunk_store.ts";
import { fingerprint } from "../../store/cbor.ts";
import { lockStaleReason } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import { resolveStore } from "../open_store.ts";
import type { StepRecord } from "../records.ts";
import {
  readRunHeader,
  replayJob,
  replayRun,
  type RunState,
} from "../replay.ts";

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

/** What a pipeline run stores in its job run's header `config`. */
export interface StoredPipelineConfig {
  pipelineName: string;
  components: {
    "instance-type": string;
    "instance-name": string;
    "instance-config": Record<string, unknown>;
  }[];
  /** Shared by a run and every run resuming it (memo keys include it). */
  lineage: string;
  checkpoint: boolean;
  failFast: boolean;
  /** Set on the small record kept after cleanup: the run it stands for. */
  compactOf?: string;
}

/** The job kind pipeline runs are recorded with. */
export const PIPELINE_KIND = "pipeline";

/**
 * The cairn job that holds a pipeline's runs: `pipeline-` plus a readable
 * slug of the name plus 8 hex characters of its fingerprint.
 *
 * @param pipelineName The `pipeline-name`.
 * @returns The job name.
 *
 * @example
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

/** The step key of component `index`; sub-steps are keyed `${index}/${key}`. */
export function componentKey(index: number, name: string): string {
  return `${index}:${name}`;
}

/** One completed-component entry from its step record. */
export function completedFrom(
  index: number,
  spec: StoredPipelineConfig["components"][number],
  step: StepRecord,
): CompletedComponent {
  const chunks = step.output.kind === "value"
    ? step.output.chunks
    : step.output.items.flat();
  return {
    index,
    name: spec["instance-name"],
    instanceType: spec["instance-type"],
    completedAt: step.at,
    durationMs: step.durationMs,
    outputBytes: chunks.reduce((sum, c) => sum + c.size, 0),
    outputChunks: chunks,
    reused: step.memoHit === true,
  };
}

/** The highest index with every component up to it finished. */
export function lastCheckpointed(done: CompletedComponent[]): number {
  const indices = new Set(done.map((c) => c.index));
  let i = -1;
  while (indices.has(i + 1)) i++;
  return i;
}

/** Whether the process that started a `running` run still holds the pipeline's lock. */
async function isLive(store: Store, state: RunState): Promise<boolean> {
  const lock = await store.readLock(state.job).catch(() => undefined);
  return lock !== undefined && lock.pid === state.header.pid &&
    lock.host === state.header.host && lockStaleReason(lock) === undefined;
}

/**
 * A pipeline run's record from its replayed job run.
 *
 * @param state The replayed run.
 * @param live Whether a `running` run's process is alive; when not, the run counts as failed.
 * @returns The record.
 */
export function pipelineRunOf(state: RunState, live = false): PipelineRun {
  const config = state.header.config as StoredPipelineConfig;
  if (config.compactOf !== undefined) {
    const summary = state.end?.summary as PipelineRun | undefined;
    const output = state.steps.get("output");
    const base: PipelineRun = summary ?? {
      runId: config.compactOf,
      pipelineName: config.pipelineName,
      job: state.job,
      startedAt: state.startedAt,
      completedComponents: [],
      lastCheckpointedIndex: config.components.length - 1,
      totalComponents: config.components.length,
      status: "completed",
      errors: [],
      checkpoint: config.checkpoint,
      cleanedUp: true,
    };
    const last = base.completedComponents.at(-1);
    if (last !== undefined && output?.output.kind === "value") {
      last.outputChunks = output.output.chunks;
    }
    return base;
  }
  const total = config.components.length;
  const completed: CompletedComponent[] = [];
  config.components.forEach((spec, i) => {
    const step = state.steps.get(componentKey(i, spec["instance-name"]));
    if (step !== undefined) completed.push(completedFrom(i, spec, step));
  });
  const doneKeys = new Set(
    completed.map((c) => componentKey(c.index, c.name)),
  );
  const errors: ComponentFailure[] = [];
  for (const f of state.failures) {
    const m = /^(\d+):/.exec(f.key);
    if (m === null || f.willRetry || doneKeys.has(f.key)) continue;
    const index = Number(m[1]);
    errors.push({
      index,
      name: config.components[index]?.["instance-name"] ?? f.key,
      error: f.error,
    });
  }
  const lastIndex = lastCheckpointed(completed);
  let status: PipelineStatus;
  let error = state.end?.error;
  if (state.status === "completed") status = "completed";
  else if (state.status === "running" && live) status = "running";
  else {
    status = "failed";
    if (state.status === "running") {
      error =
        `The process (pid ${state.header.pid} on host "${state.header.host}") stopped without recording an end: killed or lost power`;
    }
  }
  const run: PipelineRun = {
    runId: state.run,
    pipelineName: config.pipelineName,
    job: state.job,
    startedAt: state.startedAt,
    ...(state.endedAt === undefined || status === "running"
      ? {}
      : { endedAt: state.endedAt }),
    completedComponents: completed,
    lastCheckpointedIndex: lastIndex,
    totalComponents: total,
    status,
    ...(error === undefined || status !== "failed" ? {} : { error }),
    errors,
    ...(state.header.resumedFrom === undefined
      ? {}
      : { resumedFrom: state.header.resumedFrom }),
    checkpoint: config.checkpoint,
    cleanedUp: false,
  };
  if (status === "failed" && lastIndex + 1 < total) {
    const index = lastIndex + 1;
    run.failedAt = {
      index,
      name: config.components[index]!["instance-name"],
      label: `component ${index + 1}/${total}`,
    };
  }
  return run;
}

/** Options for {@linkcode listResumable} and {@linkcode loadPipelineRun}. */
export interface PipelineStoreOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
}

/** Every run of a pipeline job, replayed, with liveness applied. */
export async function pipelineRuns(
  store: Store,
  job: string,
): Promise<{ state: RunState; run: PipelineRun }[]> {
  const out = [];
  for (const state of await replayJob(store, job)) {
    if (state.header.kind !== PIPELINE_KIND) continue;
    const live = state.status === "running" && await isLive(store, state);
    out.push({ state, run: pipelineRunOf(state, live) });
  }
  return out;
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
 * @example
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

/** The resumable ones among a job's runs, newest first. */
export function resumableOf(runs: PipelineRun[]): PipelineRun[] {
  const superseded = new Set(
    runs.flatMap((r) => r.resumedFrom === undefined ? [] : [r.resumedFrom]),
  );
  return runs.filter((r) =>
    r.status === "failed" && r.checkpoint && !r.cleanedUp &&
    !superseded.has(r.runId)
  ).reverse();
}

/**
 * Find a pipeline run by id in any pipeline job of the store; a run cleaned
 * up after success is found through the small record that replaced it.
 *
 * @param runId The run id.
 * @param options The store.
 * @returns The run's record, or undefined.
 *
 * @example
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

/** {@linkcode loadPipelineRun} with the job run that holds the record. */
export async function findPipelineRun(
  store: Store,
  runId: string,
): Promise<{ run: PipelineRun; state: RunState } | undefined> {
  const jobs = (await store.listJobs()).filter((j) =>
    j.startsWith("pipeline-")
  );
  for (const job of jobs) {
    const runs = await store.listRuns(job);
    if (runs.includes(runId)) {
      const state = await replayRun(store, job, runId);
      if (state.header.kind !== PIPELINE_KIND) continue;
      const live = state.status === "running" && await isLive(store, state);
      return { run: pipelineRunOf(state, live), state };
    }
  }
  for (const job of jobs) {
    for (const run of (await store.listRuns(job)).reverse()) {
      const header = await readRunHeader(store, job, run).catch(() =>
        undefined
      );
      const config = header?.config as StoredPipelineConfig | undefined;
      if (header?.kind === PIPELINE_KIND && config?.compactOf === runId) {
        const state = await replayRun(store, job, run);
        return { run: pipelineRunOf(state), state };
      }
    }
  }
  return undefined;
}
