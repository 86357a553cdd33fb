/**
 * How pipeline runs sit in job runs: what a run stores in its header, the
 * step keys of components, and the record derived by replaying a run.
 *
 * @module
 */
import { lockStaleReason } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import type { StepRecord } from "../records.ts";
import {
  readRunHeader,
  replayJob,
  replayRun,
  type RunState,
} from "../replay.ts";
import type {
  CompletedComponent,
  ComponentFailure,
  PipelineRun,
  PipelineStatus,
} from "./state.ts";

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
  // That process took the lock before it created the run. A later holder
  // with the same pid (a restarted container's pid 1, a boot after a power
  // cut, or this very process resuming) took it after.
  return lock !== undefined && lock.pid === state.header.pid &&
    lock.host === state.header.host &&
    lock.startedAt <= state.header.startedAt &&
    lockStaleReason(lock) === undefined;
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
