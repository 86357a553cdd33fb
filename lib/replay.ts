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
  /** The job name. */
  job: string;
  /** The run id (see {@linkcode compareRuns} for their order). */
  run: string;
  /** The run's first record. */
  header: RunRecord;
  /** `running` when the last attempt has no end record (it may be live, or killed). */
  status: RunStatus;
  /** When the run was created, by the clock of its host (for display, not order). */
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
 * The one rule for run order: compare two runs by run id. Ids start with the
 * run's start time (`YYYYMMDDTHHMMSS.mmmZ-…`) and `openJob` makes each new id
 * sort after the job's newest one, even when the clock stepped back, while it
 * holds the job's lock. So id order is creation order, and the newest run
 * (the one `openJob` resumes, `ls` calls latest or running, `forget` counts
 * from) is the last by id. `startedAt` is only a display field: after a clock
 * step it can disagree with the order in which the runs were made.
 *
 * @param a A run id, or anything with a `run` id.
 * @param b Another.
 * @returns Negative when `a` is older, positive when newer, 0 when the same run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareRuns } from "./replay.ts";
 * const runs = ["20260102T000000.000Z-bbbbbbbb", "20260101T000000.000Z-aaaaaaaa"];
 * assert.deepEqual(runs.sort(compareRuns), ["20260101T000000.000Z-aaaaaaaa", "20260102T000000.000Z-bbbbbbbb"]);
 * ```
 */
export function compareRuns(
  a: string | { run: string },
  b: string | { run: string },
): number {
  const x = typeof a === "string" ? a : a.run;
  const y = typeof b === "string" ? b : b.run;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The newest of some runs by {@linkcode compareRuns}: the run `openJob`
 * resumes, and the one `ls` shows as latest (or running).
 *
 * @param runs Run ids, or anything with a `run` id, in any order.
 * @returns The newest, or undefined when there are none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { latestRun } from "./replay.ts";
 * // The second run started "earlier" by the clock (it stepped back), but was made later.
 * const runs = [
 *   { run: "20260101T120000.000Z-aaaaaaaa", startedAt: "2026-01-01T12:00:00.000Z" },
 *   { run: "20260101T120000.001Z-bbbbbbbb", startedAt: "2026-01-01T11:00:00.000Z" },
 * ];
 * assert.equal(latestRun(runs)?.run, "20260101T120000.001Z-bbbbbbbb");
 * assert.equal(latestRun([]), undefined);
 * ```
 */
export function latestRun<T extends string | { run: string }>(
  runs: Iterable<T>,
): T | undefined {
  let best: T | undefined;
  for (const run of runs) {
    if (best === undefined || compareRuns(run, best) > 0) best = run;
  }
  return best;
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
  for (const run of (await store.listRuns(job)).sort(compareRuns)) {
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
