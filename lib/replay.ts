/**
 * Rebuilding a run's state from its manifest log. Resume, `ls`, `show`,
 * `verify`, `forget` and `gc` all start here.
 *
 * @module
 */
import type { ChunkRef } from "../store/chunk_store.ts";
import type { ReplayOptions, TailRepair } from "../store/manifest_log.ts";
import type { Store } from "../store/store.ts";
import {
  chunksOf,
  type EndRecord,
  type FailRecord,
  type ManifestRecord,
  type RunRecord,
  type StepRecord,
} from "./records.ts";

/** Where a run stands according to its log. */
export type RunStatus = "running" | "completed" | "failed" | "interrupted";

/** A run rebuilt from its log. */
export interface RunState {
  job: string;
  run: string;
  /** The run's first record. */
  header: RunRecord;
  /** `running` when the last attempt has no end record (it may be live, or killed). */
  status: RunStatus;
  startedAt: string;
  /** Time of the last end record, if the run has ended. */
  endedAt?: string;
  /** The last end record. */
  end?: EndRecord;
  /** How many times a process opened the run. */
  attempts: number;
  /** Expected number of steps, when known. */
  total?: number;
  /** Done steps by key (the latest record wins). */
  steps: Map<string, StepRecord>;
  /** Step failures, in order. */
  failures: FailRecord[];
  /** Number of records. */
  records: number;
  /** A torn tail seen while reading (a writer is mid-append or died). */
  tornTail?: TailRepair;
}

/**
 * Fold records into a run state.
 *
 * @param job The job name.
 * @param run The run id.
 * @param records The records in log order.
 * @returns The state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { foldRun } from "./replay.ts";
 * const header = { type: "run", job: "j", run: "r", kind: "job", configHash: "", config: {}, version: "1", startedAt: "2026-01-01T00:00:00Z", host: "h", pid: 1 } as const;
 * const state = foldRun("j", "r", [header, { type: "end", status: "completed", at: "2026-01-01T00:01:00Z" }]);
 * assert.ok(state.status === "completed");
 * ```
 */
export function foldRun(
  job: string,
  run: string,
  records: Iterable<ManifestRecord>,
): RunState {
  let header: RunRecord | undefined;
  const state: Omit<RunState, "header"> = {
    job,
    run,
    status: "running",
    startedAt: "",
    attempts: 0,
    steps: new Map(),
    failures: [],
    records: 0,
  };
  for (const record of records) {
    state.records++;
    switch (record.type) {
      case "run":
        header = record;
        state.startedAt = record.startedAt;
        break;
      case "attempt":
        state.attempts++;
        state.status = "running";
        if (record.total !== undefined) state.total = record.total;
        break;
      case "step":
        state.steps.set(record.key, record);
        break;
      case "fail":
        state.failures.push(record);
        break;
      case "end":
        state.status = record.status;
        state.end = record;
        state.endedAt = record.at;
        break;
    }
  }
  if (header === undefined) {
    throw new SyntaxError(
      `Cannot replay run "${run}" of job "${job}": its log has no run record`,
    );
  }
  return { ...state, header };
}

/**
 * Replay a run's log (read-only, no lock needed).
 *
 * @param store The store.
 * @param job The job name.
 * @param run The run id.
 * @param options `verifyChain` also checks the hash links between records.
 * @returns The rebuilt state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openJob } from "./job.ts";
 * import { replayRun } from "./replay.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("demo", { store });
 * await job.step("a", () => 1);
 * await job.complete();
 * const state = await replayRun(store, "demo", job.run);
 * assert.ok(state.status === "completed" && state.steps.has("a"));
 * ```
 */
export async function replayRun(
  store: Store,
  job: string,
  run: string,
  options: ReplayOptions = {},
): Promise<RunState> {
  const log = await store.readLog(job, run);
  try {
    const records: ManifestRecord[] = [];
    for await (const entry of log.replay<ManifestRecord>(options)) {
      records.push(entry.body);
    }
    const state = foldRun(job, run, records);
    if (log.tornTail !== undefined) state.tornTail = log.tornTail;
    return state;
  } finally {
    await log.close();
  }
}

/**
 * A run's first record (its job, kind, config and memo namespace), without replaying the rest.
 *
 * @param store The store.
 * @param job The job name.
 * @param run The run id.
 * @returns The run record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openJob } from "./job.ts";
 * import { readRunHeader } from "./replay.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("headed", { store, kind: "demo" });
 * await job.close();
 * assert.equal((await readRunHeader(store, "headed", job.run)).kind, "demo");
 * ```
 */
export async function readRunHeader(
  store: Store,
  job: string,
  run: string,
): Promise<RunRecord> {
  const log = await store.readLog(job, run);
  try {
    for await (const entry of log.replay<ManifestRecord>()) {
      if (entry.body.type === "run") return entry.body;
      break;
    }
  } finally {
    await log.close();
  }
  throw new SyntaxError(
    `Cannot replay run "${run}" of job "${job}": its log has no run record`,
  );
}

/**
 * Replay every run of a job, oldest first.
 *
 * @param store The store.
 * @param job The job name.
 * @returns The run states.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { replayJob } from "./replay.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * assert.ok((await replayJob(createMemoryStore(), "none")).length === 0);
 * ```
 */
export async function replayJob(
  store: Store,
  job: string,
): Promise<RunState[]> {
  const states: RunState[] = [];
  for (const run of await store.listRuns(job)) {
    states.push(await replayRun(store, job, run));
  }
  return states;
}

/**
 * Every distinct chunk a run references.
 *
 * @param state A replayed run.
 * @returns Chunk references by hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runChunks } from "./replay.ts";
 * import { foldRun } from "./replay.ts";
 * const header = { type: "run", job: "j", run: "r", kind: "job", configHash: "", config: {}, version: "1", startedAt: "", host: "h", pid: 1 } as const;
 * assert.ok(runChunks(foldRun("j", "r", [header])).size === 0);
 * ```
 */
export function runChunks(state: RunState): Map<string, ChunkRef> {
  const refs = new Map<string, ChunkRef>();
  for (const step of state.steps.values()) {
    for (const ref of chunksOf(step.output)) {
      refs.set(ref.hash, ref);
    }
  }
  return refs;
}
