/**
 * Run summaries and run resolution: which run is a job's newest, what a run
 * id prefix names, and how a run's status looks once a killed writer is taken
 * into account. `cairn ls` and `cairn show` are thin shells over these.
 *
 * @module
 */
import { type LockInfo, lockStaleReason } from "../store/lock.ts";
import type { Store } from "../store/store.ts";
import { replayRun, runChunks, type RunState } from "./replay.ts";
import { sharedPartOf } from "./shared_work.ts";

/**
 * The newest of a job's runs: the greatest run id. Run ids sort by creation
 * and a new run always gets an id after the previous one, so this is the rule
 * `openJob` resumes by; start times can step back with the clock.
 *
 * @param runs Run ids, or replayed runs.
 * @returns The newest, or undefined for none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newestRun } from "./runs.ts";
 * assert.equal(newestRun(["20261123T030001.000Z", "20261124T030001.000Z"]), "20261124T030001.000Z");
 * ```
 */
export function newestRun<T extends string | { run: string }>(
  runs: Iterable<T>,
): T | undefined {
  let best: T | undefined;
  for (const r of runs) {
    if (best === undefined || idOf(r) > idOf(best)) best = r;
  }
  return best;
}

function idOf(r: string | { run: string }): string {
  return typeof r === "string" ? r : r.run;
}

/**
 * Replay every run of a job that can be read; a run whose log cannot be
 * replayed is left out (`verifyStore` names it).
 *
 * @param store The store.
 * @param job The job name.
 * @returns The replayed runs, oldest first, and the ids that could not be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { replayReadableRuns } from "./runs.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const { states } = await replayReadableRuns(createMemoryStore(), "none");
 * assert.equal(states.length, 0);
 * ```
 */
export async function replayReadableRuns(
  store: Store,
  job: string,
): Promise<{ states: RunState[]; unreadable: string[] }> {
  const states: RunState[] = [];
  const unreadable: string[] = [];
  for (const run of (await store.listRuns(job)).sort()) {
    try {
      states.push(await replayRun(store, job, run));
    } catch {
      unreadable.push(run);
    }
  }
  return { states, unreadable };
}

/**
 * The job's lock holder when it looks alive (a dead or silent holder, or an
 * unreadable lock file, is no live holder).
 *
 * @param store The store.
 * @param job The job name.
 * @returns The holder, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { liveLockHolder } from "./runs.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * assert.equal(await liveLockHolder(createMemoryStore(), "none"), undefined);
 * ```
 */
export async function liveLockHolder(
  store: Store,
  job: string,
): Promise<LockInfo | undefined> {
  try {
    const info = await store.readLock(job);
    return info !== undefined && lockStaleReason(info) === undefined
      ? info
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A run's status as people should see it: a `running` log whose job has no
 * live lock holder, or whose holder works on a newer run, was killed, so it
 * is `interrupted`.
 *
 * @param state The replayed run.
 * @param holder The job's live lock holder, if any.
 * @param isNewest Whether the run is the job's newest.
 * @returns The status.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { displayStatus } from "./runs.ts";
 * import { foldRun } from "./replay.ts";
 * const header = { type: "run", job: "j", run: "r", kind: "job", configHash: "", config: {}, version: "1", startedAt: "", host: "h", pid: 1 } as const;
 * assert.equal(displayStatus(foldRun("j", "r", [header]), undefined, true), "interrupted");
 * ```
 */
export function displayStatus(
  state: RunState,
  holder: LockInfo | undefined,
  isNewest: boolean,
): string {
  if (state.status !== "running") return state.status;
  return holder !== undefined && isNewest ? "running" : "interrupted";
}

/**
 * How many distinct chunks a run references, and their bytes.
 *
 * @param state The replayed run.
 * @returns Chunk count and total size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runTotals } from "./runs.ts";
 * import { foldRun } from "./replay.ts";
 * const header = { type: "run", job: "j", run: "r", kind: "job", configHash: "", config: {}, version: "1", startedAt: "", host: "h", pid: 1 } as const;
 * assert.deepEqual(runTotals(foldRun("j", "r", [header])), { chunks: 0, bytes: 0 });
 * ```
 */
export function runTotals(state: RunState): { chunks: number; bytes: number } {
  let bytes = 0;
  const refs = runChunks(state);
  for (const ref of refs.values()) bytes += ref.size;
  return { chunks: refs.size, bytes };
}

/**
 * One run in a listing (`cairn ls --json` prints these).
 *
 * @example Pick failed runs
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RunSummary } from "./runs.ts";
 * const entries: RunSummary[] = [];
 * assert.equal(entries.filter((e) => e.status === "failed").length, 0);
 * ```
 */
export interface RunSummary {
  /** The job name. */
  job: string;
  /** The run id. */
  run: string;
  /** The job kind (`job`, `map`, `knn`, …). */
  kind: string;
  /** `running` only while a live process holds the job's lock; a killed run is `interrupted`. */
  status: string;
  /** Whether it is the job's newest run. */
  latest: boolean;
  /** Done steps. */
  steps: number;
  /** Expected steps, when known. */
  total: number | null;
  /** Distinct chunks the run references. */
  chunks: number;
  /** Bytes of those chunks. */
  bytes: number;
  /** How many times a process opened the run. */
  attempts: number;
  /** Step failures recorded. */
  failures: number;
  /** ISO start time. */
  startedAt: string;
  /** ISO end time, null while running. */
  endedAt: string | null;
  /** The host that started the run. */
  host: string;
  /** The end record's error, if the run failed or was interrupted. */
  error: string | null;
  /** The live lock holder, for a running run. */
  lock: { pid: number; host: string; since: string } | null;
  /** For a part job of shared workers, the job it computes a part of. */
  partOf: string | null;
}

/**
 * Options for {@linkcode listRuns}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ListRunsOptions } from "./runs.ts";
 * const options: ListRunsOptions = { jobs: ["demo"], latest: true };
 * assert.equal(options.latest, true);
 * ```
 */
export interface ListRunsOptions {
  /** Only these jobs. @default {every job in the store} */
  jobs?: string[];
  /** Only each job's newest run. @default {false} */
  latest?: boolean;
}

/**
 * The listing of runs, and what could not be listed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RunListing } from "./runs.ts";
 * const listing: RunListing = { runs: [], jobsWithoutRuns: ["x"], unreadable: [] };
 * assert.equal(listing.jobsWithoutRuns.length, 1);
 * ```
 */
export interface RunListing {
  /** Runs, by job (in the order asked), oldest run first. */
  runs: RunSummary[];
  /** Jobs asked for that have no runs. */
  jobsWithoutRuns: string[];
  /** Runs whose log cannot be replayed (`verifyStore` says why). */
  unreadable: { job: string; run: string }[];
}

/**
 * Summarize the runs of a store's jobs.
 *
 * @param store The store.
 * @param options See {@linkcode ListRunsOptions}.
 * @returns The runs, and the jobs and runs that could not be listed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listRuns } from "./runs.ts";
 * import { openJob } from "./job.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("listed", { store });
 * await job.step("a", () => 1);
 * await job.complete();
 * const { runs } = await listRuns(store);
 * assert.equal(runs[0]?.status, "completed");
 * ```
 */
export async function listRuns(
  store: Store,
  options: ListRunsOptions = {},
): Promise<RunListing> {
  const listing: RunListing = { runs: [], jobsWithoutRuns: [], unreadable: [] };
  for (const job of options.jobs ?? await store.listJobs()) {
    const { states, unreadable } = await replayReadableRuns(store, job);
    for (const run of unreadable) listing.unreadable.push({ job, run });
    if (states.length === 0 && unreadable.length === 0) {
      listing.jobsWithoutRuns.push(job);
      continue;
    }
    const newest = newestRun(states);
    const holder = await liveLockHolder(store, job);
    for (const state of states) {
      if (options.latest && state !== newest) continue;
      listing.runs.push(summarizeRun(state, holder, state === newest));
    }
  }
  return listing;
}

function summarizeRun(
  state: RunState,
  holder: LockInfo | undefined,
  latest: boolean,
): RunSummary {
  const status = displayStatus(state, holder, latest);
  return {
    job: state.job,
    run: state.run,
    kind: state.header.kind,
    partOf: sharedPartOf(state.header.config) ?? null,
    status,
    latest,
    steps: state.steps.size,
    total: state.total ?? null,
    ...runTotals(state),
    attempts: state.attempts,
    failures: state.failures.length,
    startedAt: state.startedAt,
    endedAt: status === "running" ? null : state.endedAt ?? null,
    host: state.header.host,
    error: state.end?.error ?? null,
    lock: status === "running" && holder !== undefined
      ? { pid: holder.pid, host: holder.host, since: holder.startedAt }
      : null,
  };
}

/**
 * A run found by {@linkcode resolveRun}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ResolvedRun } from "./runs.ts";
 * const found: Partial<ResolvedRun> = { status: "completed" };
 * assert.equal(found.status, "completed");
 * ```
 */
export interface ResolvedRun {
  /** The replayed run. */
  state: RunState;
  /** Its status as people should see it (see {@linkcode displayStatus}). */
  status: string;
  /** Whether it is the job's newest run. */
  latest: boolean;
}

/**
 * Find and replay one run of a job: an exact run id, a unique prefix of one,
 * `latest`, or (undefined) the newest.
 *
 * @param store The store.
 * @param job The job name.
 * @param run A run id, a unique prefix, `latest`, or undefined.
 * @returns The run.
 * @throws {RangeError} If the job has no runs, no run id starts with `run`,
 * or several do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveRun } from "./runs.ts";
 * import { openJob } from "./job.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("found", { store });
 * await job.complete();
 * const { state } = await resolveRun(store, "found", job.run.slice(0, 8));
 * assert.equal(state.run, job.run);
 * ```
 */
export async function resolveRun(
  store: Store,
  job: string,
  run?: string,
): Promise<ResolvedRun> {
  const runs = (await store.listRuns(job)).sort();
  if (runs.length === 0) {
    throw new RangeError(
      `Cannot find job "${job}": it has no runs in store "${store.location}"`,
    );
  }
  const { states } = await replayReadableRuns(store, job);
  const newest = newestRun(states);
  let state: RunState | undefined;
  if (run === undefined || run === "latest") {
    if (newest === undefined) {
      throw new RangeError(
        `Cannot read job "${job}": none of its ${runs.length} runs can be replayed`,
      );
    }
    state = newest;
  } else {
    const matches = runs.includes(run)
      ? [run]
      : runs.filter((r) => r.startsWith(run));
    if (matches.length === 0) {
      throw new RangeError(
        `Cannot find run "${run}" of job "${job}": no run id starts with it`,
      );
    }
    if (matches.length > 1) {
      throw new RangeError(
        `Ambiguous run "${run}" of job "${job}": it starts ${matches.length} run ids (${
          matches.slice(0, 3).join(", ")
        }${matches.length > 3 ? ", …" : ""}); give more characters`,
      );
    }
    state = states.find((s) => s.run === matches[0]) ??
      await replayRun(store, job, matches[0]!); // throws why it cannot be read
  }
  const latest = state === newest;
  return {
    state,
    latest,
    status: displayStatus(state, await liveLockHolder(store, job), latest),
  };
}
