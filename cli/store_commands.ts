/**
 * The store commands: `ls`, `show`, `verify`, `forget`, `gc`, `unlock`, `cat`
 * and `export`. Each is a thin shell over the library (`replayRun`,
 * `verifyStore`, `forgetRuns`, `collectGarbage`, `breakLock`, `getValue`,
 * `readValueChunks`); a script can do the same with `mod.ts`.
 *
 * @module
 */
import { stat } from "node:fs/promises";
import { formatDuration, parseDuration } from "../lib/duration.ts";
import { collectGarbage } from "../lib/gc.ts";
import { openStore } from "../lib/open_store.ts";
import {
  forgetRuns,
  formatCalendarDuration,
  parseCalendarDuration,
  type RetentionPolicy,
} from "../lib/forget.ts";
import { readValueChunks } from "../lib/output.ts";
import type { StepRecord } from "../lib/records.ts";
import { replayRun, runChunks, type RunState } from "../lib/replay.ts";
import { subsetFilter, verifyStore } from "../lib/verify.ts";
import { writeFileAtomically } from "../lib/write_file_atomically.ts";
import { formatByteSize } from "../lib/knn/job_plan.ts";
import { encodeNpy, type NpyWritable } from "../lib/io/npy.ts";
import { describeMapRun, type MapRunProgress } from "../lib/map/describe.ts";
import {
  assertChunkHash,
  getValue,
  MissingChunkError,
} from "../store/chunk_store.ts";
import { type LockInfo, lockStaleReason } from "../store/lock.ts";
import { assertName, type Store } from "../store/store.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  intOption,
  stringOption,
  UsageError,
} from "./command.ts";
import {
  formatCount,
  formatTable,
  jsonText,
  matchKey,
  naturalCompare,
  shortTime,
  toJsonValue,
  truncate,
} from "./_format.ts";

// ---------------------------------------------------------------------------
// Shared helpers

/**
 * Open the store for a read-only command: unlike job commands, these never
 * create a store, so a mistyped `--store` gives a clear error.
 *
 * @param ctx The CLI context.
 * @returns The store.
 *
 * @example
 * ```ts ignore
 * const store = await openExistingStore(ctx);
 * ```
 */
export async function openExistingStore(ctx: CliContext): Promise<Store> {
  const location = ctx.storeLocation;
  if (/^s3a?:\/\//.test(location)) {
    // Refuses a prefix with no cairn config rather than creating one.
    await openStore(location, { create: false });
  } else if (!location.startsWith("memory:")) {
    const found = await stat(`${location}/config`).then(
      () => true,
      () => false,
    );
    if (!found) {
      throw new Error(
        `Cannot open store "${location}": there is no cairn store there; pass --store PATH or set CAIRN_STORE (running "cairn demo" creates one)`,
      );
    }
  }
  return await ctx.store();
}

/** Check a job name given on the command line. */
function jobArg(name: string): string {
  try {
    return assertName("job", name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The one positional argument a command takes; `what` names it in the error. */
function onePositional(args: CommandArgs, what: string): string {
  if (args.positionals.length !== 1) {
    throw new UsageError(
      `Expected one ${what}, found ${args.positionals.length} arguments`,
    );
  }
  return args.positionals[0]!;
}

/** Warn about each named job that has no runs in the store. */
async function warnJobsWithoutRuns(
  ctx: CliContext,
  store: Store,
  jobs: string[],
): Promise<void> {
  for (const job of jobs) {
    if ((await store.listRuns(job)).length === 0) {
      ctx.warn(`Job "${job}" has no runs in store "${store.location}"`);
    }
  }
}

/** Split `JOB` or `JOB/RUN`. */
function parseJobRun(spec: string): { job: string; run: string | undefined } {
  const slash = spec.indexOf("/");
  const job = jobArg(slash < 0 ? spec : spec.slice(0, slash));
  const run = slash < 0 ? undefined : spec.slice(slash + 1);
  if (run === "") {
    throw new UsageError(
      `Invalid run "${spec}": give JOB or JOB/RUN (a run id, a unique prefix of one, or "latest")`,
    );
  }
  return { job, run };
}

/** The newest run: latest start time, then run id (ids only have second resolution). */
function newestOf(states: RunState[]): RunState | undefined {
  let best: RunState | undefined;
  for (const s of states) {
    if (
      best === undefined || s.startedAt > best.startedAt ||
      (s.startedAt === best.startedAt && s.run > best.run)
    ) best = s;
  }
  return best;
}

/** Replay every readable run of a job (verify reports the unreadable ones). */
async function replayReadable(
  store: Store,
  job: string,
  runs: string[],
): Promise<RunState[]> {
  const states: RunState[] = [];
  for (const r of runs) {
    try {
      states.push(await replayRun(store, job, r));
    } catch {
      // skipped here; "cairn verify" names it
    }
  }
  return states;
}

/**
 * Find and replay one run: an exact id, a unique prefix, `latest`, or (when
 * undefined) the newest run by start time. Also returns the job's newest run.
 */
async function loadRun(
  store: Store,
  job: string,
  run: string | undefined,
): Promise<{ state: RunState; newest: RunState | undefined }> {
  const runs = await store.listRuns(job);
  if (runs.length === 0) {
    throw new Error(
      `Cannot find job "${job}": it has no runs in store "${store.location}"; run "cairn ls" to list jobs`,
    );
  }
  const states = await replayReadable(store, job, runs);
  const newest = newestOf(states);
  if (run === undefined || run === "latest") {
    if (newest === undefined) {
      throw new Error(
        `Cannot read job "${job}": none of its ${runs.length} runs can be replayed; run "cairn verify ${job}"`,
      );
    }
    return { state: newest, newest };
  }
  const matches = runs.includes(run)
    ? [run]
    : runs.filter((r) => r.startsWith(run));
  if (matches.length === 0) {
    throw new Error(
      `Cannot find run "${run}" of job "${job}": no run id starts with it; run "cairn ls ${job}" to list its runs`,
    );
  }
  if (matches.length > 1) {
    throw new UsageError(
      `Ambiguous run "${run}" of job "${job}": it starts ${matches.length} run ids (${
        matches.slice(0, 3).join(", ")
      }${matches.length > 3 ? ", …" : ""}); give more characters`,
    );
  }
  const state = states.find((s) => s.run === matches[0]) ??
    await replayRun(store, job, matches[0]!); // throws why it cannot be read
  return { state, newest };
}

/** The lock holder if it looks alive. */
async function liveLock(
  store: Store,
  job: string,
): Promise<LockInfo | undefined> {
  try {
    const info = await store.readLock(job);
    return info !== undefined && lockStaleReason(info) === undefined
      ? info
      : undefined;
  } catch {
    return undefined; // an unreadable lock file is not a live holder
  }
}

/**
 * A run's status as people should see it: a `running` log whose job has no
 * live lock holder (or whose holder works on a newer run) was killed, so it
 * shows as `interrupted`.
 */
function displayStatus(
  state: RunState,
  lock: LockInfo | undefined,
  isNewest: boolean,
): string {
  if (state.status !== "running") return state.status;
  return lock !== undefined && isNewest ? "running" : "interrupted";
}

function refTotals(state: RunState): { chunks: number; bytes: number } {
  let bytes = 0;
  const refs = runChunks(state);
  for (const ref of refs.values()) bytes += ref.size;
  return { chunks: refs.size, bytes };
}

function durationArg(args: CommandArgs, name: string): number | undefined {
  const text = stringOption(args, name);
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch (error) {
    throw new UsageError(`Invalid --${name}: ${(error as Error).message}`);
  }
}

/** Write to stdout, waiting when the pipe is full. */
function writeStdout(part: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(part, (error) => error ? reject(error) : resolve());
  });
}

// ---------------------------------------------------------------------------
// ls

/**
 * One run as `cairn ls --json` reports it.
 *
 * @example Pick failed runs from `cairn ls --json`
 * ```ts
 * import type { LsEntry } from "./store_commands.ts";
 * const entries: LsEntry[] = [];
 * const failed = entries.filter((e) => e.status === "failed");
 * console.assert(failed.length === 0);
 * ```
 */
export interface LsEntry {
  job: string;
  run: string;
  kind: string;
  /** `running` only while a live process holds the job's lock; a killed run is `interrupted`. */
  status: string;
  /** Whether it is the job's newest run. */
  latest: boolean;
  /** Done steps. */
  steps: number;
  /** Expected steps, when known. */
  total: number | null;
  /** Distinct chunks the run references, and their bytes. */
  chunks: number;
  bytes: number;
  attempts: number;
  failures: number;
  startedAt: string;
  endedAt: string | null;
  host: string;
  /** The end record's error, if the run failed or was interrupted. */
  error: string | null;
  /** The live lock holder, for a running run. */
  lock: { pid: number; host: string; since: string } | null;
}

async function listEntries(
  store: Store,
  jobs: string[],
  warn: (text: string) => void,
): Promise<LsEntry[]> {
  const entries: LsEntry[] = [];
  for (const job of jobs) {
    const runs = await store.listRuns(job);
    if (runs.length === 0) {
      warn(`Job "${job}" has no runs in store "${store.location}"`);
      continue;
    }
    const states = await replayReadable(store, job, runs);
    if (states.length < runs.length) {
      warn(
        `${
          runs.length - states.length
        } runs of job "${job}" cannot be read; run "cairn verify ${job}"`,
      );
    }
    const newest = newestOf(states);
    const lock = await liveLock(store, job);
    for (const state of states) {
      const status = displayStatus(state, lock, state === newest);
      entries.push({
        job,
        run: state.run,
        kind: state.header.kind,
        status,
        latest: state === newest,
        steps: state.steps.size,
        total: state.total ?? null,
        ...refTotals(state),
        attempts: state.attempts,
        failures: state.failures.length,
        startedAt: state.startedAt,
        endedAt: status === "running" ? null : state.endedAt ?? null,
        host: state.header.host,
        error: state.end?.error ?? null,
        lock: status === "running" && lock !== undefined
          ? { pid: lock.pid, host: lock.host, since: lock.startedAt }
          : null,
      });
    }
  }
  return entries;
}

/**
 * `cairn ls`: jobs and their runs.
 *
 * @example From a shell
 * ```sh
 * cairn ls --latest --json
 * ```
 */
export const lsCommand: Command = {
  name: "ls",
  summary: "List jobs and their runs",
  usage: "cairn ls [JOB...]",
  description:
    "Lists every run of every job (or of the jobs named): kind, status, steps done/total, chunks and bytes referenced, and start time. A run whose process is gone shows as interrupted; rerun the job to resume it.",
  positionals: true,
  options: {
    latest: {
      type: "boolean",
      description: "Show only the newest run of each job",
    },
  },
  examples: [
    "cairn ls",
    "cairn ls demo --latest",
    "cairn ls --json | jq '.[] | select(.status == \"failed\")'",
  ],
  async run(ctx, args) {
    const store = await openExistingStore(ctx);
    const jobs = args.positionals.length > 0
      ? args.positionals.map(jobArg)
      : await store.listJobs();
    let entries = await listEntries(store, jobs, (t) => ctx.warn(t));
    if (args.values.latest === true) entries = entries.filter((e) => e.latest);
    ctx.result(entries, () => {
      if (entries.length === 0) {
        ctx.info(`No runs in store "${store.location}"`);
        return;
      }
      const rows = entries.map((e) => [
        e.job,
        e.run,
        e.kind,
        e.status,
        e.total === null ? `${e.steps}` : `${e.steps}/${e.total}`,
        `${e.chunks}`,
        formatByteSize(e.bytes, { fixedDecimal: true }),
        shortTime(e.startedAt),
      ]);
      for (
        const line of formatTable(
          [
            "JOB",
            "RUN",
            "KIND",
            "STATUS",
            "STEPS",
            "CHUNKS",
            "SIZE",
            "STARTED",
          ],
          rows,
          [4, 5, 6],
        )
      ) ctx.out(line);
    });
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// show

const SHOW_HEAD = 10;

function stepJson(step: StepRecord): Record<string, unknown> {
  const refs = step.output.kind === "value"
    ? step.output.chunks
    : step.output.items.flat();
  return {
    key: step.key,
    durationMs: step.durationMs,
    attempt: step.attempt,
    at: step.at,
    output: step.output.kind,
    ...(step.output.kind === "stream"
      ? { items: step.output.items.length }
      : {}),
    chunks: refs.length,
    bytes: refs.reduce((n, r) => n + r.size, 0),
    refs: refs.map((r) => ({ hash: r.hash, size: r.size })),
    memo: step.memo ?? null,
    memoHit: step.memoHit ?? false,
    stats: step.stats === undefined ? null : toJsonValue(step.stats),
  };
}

/** Keep the first and last `head` items of a long list. */
function elide<T>(items: T[], all: boolean, head = SHOW_HEAD): {
  before: T[];
  hidden: number;
  after: T[];
} {
  if (all || items.length <= 2 * head + 1) {
    return { before: items, hidden: 0, after: [] };
  }
  return {
    before: items.slice(0, head),
    hidden: items.length - 2 * head,
    after: items.slice(-head),
  };
}

/**
 * `cairn show`: one run in detail.
 *
 * @example From a shell
 * ```sh
 * cairn show demo --all
 * ```
 */
/** Per-item data a map batch records (keys, error lists): shown in their own section, not in STATS. */
function withoutBulk(stats: Record<string, unknown>): Record<string, unknown> {
  const { itemKeys: _keys, errors: _errors, ...rest } = stats;
  return rest;
}

function showMapItems(ctx: CliContext, p: MapRunProgress, all: boolean): void {
  const n = (v: number) => formatCount(v);
  ctx.out(
    `Items:     ${p.total === null ? "? (a stream)" : n(p.total)} total: ${
      n(p.done)
    } done, ${n(p.failed)} failed, ${
      p.pending === null ? "?" : n(p.pending)
    } pending; ${n(p.memoHits)} memo hits`,
  );
  ctx.out(
    `Rate:      ${
      p.itemsPerSecond === null ? "-" : `${n(p.itemsPerSecond)} items/s`
    } (${n(p.computed)} computed in ${
      formatDuration(p.computeMs)
    } of step time)`,
  );
  if (p.failures.length === 0) return;
  ctx.out(
    `Item failures (${n(p.failed)}${
      p.failures.length < p.failed ? `, ${p.failures.length} recorded` : ""
    }):`,
  );
  const { before, hidden, after } = elide(p.failures, all, 5);
  const line = (f: { index: number; error: string }) =>
    `  item ${f.index}: ${f.error}`;
  before.forEach((f) => ctx.out(line(f)));
  if (hidden > 0) ctx.out(`  … ${hidden} more (--all shows every one)`);
  after.forEach((f) => ctx.out(line(f)));
}

export const showCommand: Command = {
  name: "show",
  summary: "Show one run: config, steps, failures and summary",
  usage: "cairn show JOB[/RUN]",
  description:
    "Shows a run (by default the job's newest): kind, config, version, host, start and end, attempts; each step's duration, attempt, memo hit and statistics; failures with their messages; and the summary the job recorded. RUN may be a unique prefix of a run id. Long lists show their first and last 10 entries unless --all is given; --json always gives everything.",
  positionals: true,
  options: {
    all: {
      type: "boolean",
      description: "Show every step and failure, and full statistics",
    },
  },
  examples: [
    "cairn show demo",
    "cairn show demo/20261123T030001Z --all",
    "cairn show demo --json | jq '.steps[] | select(.durationMs > 1000)'",
  ],
  async run(ctx, args) {
    const { job, run } = parseJobRun(onePositional(args, "JOB[/RUN]"));
    const store = await openExistingStore(ctx);
    const { state, newest } = await loadRun(store, job, run);
    const all = args.values.all === true;
    const status = displayStatus(
      state,
      await liveLock(store, job),
      newest?.run === state.run,
    );
    const totals = refTotals(state);
    const steps = [...state.steps.values()];
    const mapProgress = describeMapRun(state);
    const report = {
      job,
      run: state.run,
      kind: state.header.kind,
      status,
      config: toJsonValue(state.header.config),
      version: state.header.version,
      memo: state.header.memo ?? null,
      host: state.header.host,
      pid: state.header.pid,
      startedAt: state.startedAt,
      endedAt: status === "running" ? null : state.endedAt ?? null,
      attempts: state.attempts,
      total: state.total ?? null,
      done: state.steps.size,
      chunks: totals.chunks,
      bytes: totals.bytes,
      error: state.end?.error ?? null,
      summary: state.end?.summary === undefined
        ? null
        : toJsonValue(state.end.summary),
      steps: steps.map(stepJson),
      failures: state.failures.map((f) => ({
        key: f.key,
        attempt: f.attempt,
        at: f.at,
        error: f.error,
        willRetry: f.willRetry,
      })),
      ...(state.tornTail ? { tornTail: state.tornTail } : {}),
      ...(mapProgress === undefined ? {} : { items: mapProgress }),
    };
    ctx.result(report, () => {
      const width = all ? Infinity : 100;
      const took = state.endedAt && status !== "running"
        ? ` (${
          formatDuration(
            Date.parse(state.endedAt) - Date.parse(state.startedAt),
          )
        } after start)`
        : "";
      const header: [string, string][] = [
        ["Job", job],
        ["Run", state.run],
        ["Kind", report.kind],
        ["Status", status + (report.error ? ` (${report.error})` : "")],
        ["Config", truncate(jsonText(state.header.config), width)],
        ["Version", report.version],
        ...(report.memo === null
          ? []
          : [["Memo", report.memo] as [string, string]]),
        ["Host", `${report.host} (pid ${report.pid})`],
        ["Started", shortTime(state.startedAt)],
        ["Ended", status === "running" ? "-" : shortTime(state.endedAt) + took],
        ["Attempts", String(state.attempts)],
        [
          "Steps",
          `${state.steps.size}${
            state.total === undefined ? "" : `/${state.total}`
          } done, ${totals.chunks} chunks, ${
            formatByteSize(totals.bytes, { fixedDecimal: true })
          }`,
        ],
      ];
      for (const [k, v] of header) ctx.out(`${(k + ":").padEnd(10)} ${v}`);
      if (mapProgress !== undefined) showMapItems(ctx, mapProgress, all);
      if (state.tornTail) {
        ctx.out(
          `Log:       torn tail at byte ${state.tornTail.offset} (${state.tornTail.reason}); the next writer truncates it`,
        );
      }
      if (steps.length > 0) {
        ctx.out("");
        const { before, hidden, after } = elide(steps, all);
        const row = (s: StepRecord) => [
          s.key,
          formatDuration(s.durationMs),
          String(s.attempt),
          s.memoHit ? "hit" : s.memo !== undefined ? "stored" : "-",
          s.stats === undefined
            ? ""
            : truncate(jsonText(withoutBulk(s.stats)), width),
        ];
        const lines = formatTable(
          ["KEY", "DURATION", "ATTEMPT", "MEMO", "STATS"],
          [...before.map(row), ...after.map(row)],
          [1, 2],
        );
        lines.slice(0, before.length + 1).forEach((l) => ctx.out(l));
        if (hidden > 0) {
          ctx.out(`… ${hidden} more steps (--all shows every step)`);
        }
        lines.slice(before.length + 1).forEach((l) => ctx.out(l));
      }
      if (state.failures.length > 0) {
        ctx.out("");
        ctx.out(`Failures (${state.failures.length}):`);
        const { before, hidden, after } = elide(state.failures, all, 5);
        const line = (f: (typeof state.failures)[number]) =>
          `  ${f.key} attempt ${f.attempt} at ${shortTime(f.at)}${
            f.willRetry ? " (retried)" : ""
          }: ${truncate(f.error, all ? Infinity : 300)}`;
        before.forEach((f) => ctx.out(line(f)));
        if (hidden > 0) ctx.out(`  … ${hidden} more (--all shows every one)`);
        after.forEach((f) => ctx.out(line(f)));
      }
      if (state.end?.summary !== undefined) {
        ctx.out("");
        ctx.out("Summary:");
        for (const l of jsonText(state.end.summary, 2).split("\n")) {
          ctx.out(`  ${l}`);
        }
      }
    });
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// verify

/**
 * `cairn verify`: check the store like restic's `check`.
 *
 * @example From a shell (exit code 4 when something is damaged)
 * ```sh
 * cairn verify --read-data-subset 1/7 || echo "damaged: $?"
 * ```
 */
export const verifyCommand: Command = {
  name: "verify",
  summary: "Check that every run's log replays and its chunks are intact",
  usage: "cairn verify [--read-data | --read-data-subset n/t|x%] [JOB...]",
  description:
    "Replays every run log (checking the hash chain) and checks that each chunk a run references exists with the right size. --read-data also re-hashes every referenced chunk; --read-data-subset re-hashes group n of t (by hash) or a random x% sample. Needs no lock. Every damaged chunk and the runs that reference it are named. Exits with 4 when problems are found.",
  positionals: true,
  options: {
    "read-data": {
      type: "boolean",
      description: "Re-hash every referenced chunk",
    },
    "read-data-subset": {
      type: "string",
      valueName: "n/t|x%",
      description:
        "Re-hash a subset: group n of t (e.g. 1/7, for a weekly rotation) or x% of chunks",
    },
  },
  examples: [
    "cairn verify",
    "cairn verify --read-data",
    "cairn verify --read-data-subset 1/7 nightly",
    "cairn verify --read-data-subset 10% --json",
  ],
  async run(ctx, args) {
    const readData = args.values["read-data"] === true;
    const subset = stringOption(args, "read-data-subset");
    if (readData && subset !== undefined) {
      throw new UsageError(
        "Cannot use --read-data with --read-data-subset: pick one",
      );
    }
    if (subset !== undefined) {
      try {
        subsetFilter(subset);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    const jobs = args.positionals.map(jobArg);
    const store = await openExistingStore(ctx);
    await warnJobsWithoutRuns(ctx, store, jobs);
    const report = await verifyStore(store, {
      readData,
      ...(subset === undefined ? {} : { readDataSubset: subset }),
      ...(jobs.length > 0 ? { jobs } : {}),
      onProgress: (done, total) =>
        ctx.onEvent({
          type: "progress",
          job: "verify",
          done,
          total,
          unit: "chunks",
        }),
    });
    for (const note of report.notes) ctx.info(note);
    const damagedRuns = new Set(
      report.problems.map((p) => `${p.job}/${p.run}`),
    );
    const damagedChunks = new Set(
      report.problems.flatMap((p) => p.hash === undefined ? [] : [p.hash]),
    );
    ctx.result(
      { ...report, ok: report.problems.length === 0 },
      () => {
        ctx.out(
          `Checked ${report.jobs} jobs, ${report.runs} runs, ${report.chunks} chunks; re-hashed ${report.chunksRead} chunks (${
            formatByteSize(report.bytesRead, { fixedDecimal: true })
          })`,
        );
        for (const p of report.problems) {
          ctx.out(`${p.kind} ${p.job}/${p.run}: ${p.message}`);
        }
        if (report.problems.length === 0) {
          ctx.out("No problems found");
        } else {
          ctx.out(
            `Found ${report.problems.length} problems: ${damagedChunks.size} damaged chunks in ${damagedRuns.size} runs`,
          );
        }
      },
    );
    if (report.problems.length > 0) {
      ctx.warn(
        `The store has problems: rerun the affected jobs to recompute the damaged steps (a run whose log cannot be read can be removed with "cairn forget")`,
      );
      return EXIT.verifyProblems;
    }
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// forget: restic's policy flags (processor helper's block; one flag per
// RetentionPolicy option, named as restic names them)

const FORGET_COUNT_FLAGS = [
  ["keep-last", "keepLast", "Keep the newest N runs"],
  [
    "keep-hourly",
    "keepHourly",
    "Keep the newest run of each of the last N hours with runs",
  ],
  [
    "keep-daily",
    "keepDaily",
    "Keep the newest run of each of the last N days with runs",
  ],
  [
    "keep-weekly",
    "keepWeekly",
    "Keep the newest run of each of the last N ISO weeks with runs",
  ],
  [
    "keep-monthly",
    "keepMonthly",
    "Keep the newest run of each of the last N months with runs",
  ],
  [
    "keep-yearly",
    "keepYearly",
    "Keep the newest run of each of the last N years with runs",
  ],
] as const;

const FORGET_WITHIN_FLAGS = [
  [
    "keep-within",
    "keepWithin",
    "Keep runs started within DURATION (restic's 1y2m3d3h: m is months) of the job's newest run",
  ],
  [
    "keep-within-hourly",
    "keepWithinHourly",
    "Keep the newest run of each hour within DURATION of the newest run",
  ],
  [
    "keep-within-daily",
    "keepWithinDaily",
    "Keep the newest run of each day within DURATION of the newest run",
  ],
  [
    "keep-within-weekly",
    "keepWithinWeekly",
    "Keep the newest run of each week within DURATION of the newest run",
  ],
  [
    "keep-within-monthly",
    "keepWithinMonthly",
    "Keep the newest run of each month within DURATION of the newest run",
  ],
  [
    "keep-within-yearly",
    "keepWithinYearly",
    "Keep the newest run of each year within DURATION of the newest run",
  ],
] as const;

const FORGET_POLICY_OPTIONS: Command["options"] = {
  ...Object.fromEntries(FORGET_COUNT_FLAGS.map(([flag, , description]) => [
    flag,
    {
      type: "string",
      valueName: "N",
      description: `${description} (-1: unlimited)`,
    },
  ])),
  ...Object.fromEntries(FORGET_WITHIN_FLAGS.map(([flag, , description]) => [
    flag,
    { type: "string", valueName: "DURATION", description },
  ])),
  "keep-tag": {
    type: "string",
    multiple: true,
    valueName: "TAGS",
    description:
      "Keep runs that have all these comma-separated tags (repeatable)",
  },
};

function forgetPolicyArgs(args: CommandArgs): RetentionPolicy {
  const policy: RetentionPolicy = {};
  for (const [flag, key] of FORGET_COUNT_FLAGS) {
    const n = intOption(args, flag, -1);
    if (n !== undefined) policy[key] = n;
  }
  for (const [flag, key] of FORGET_WITHIN_FLAGS) {
    const text = stringOption(args, flag);
    if (text === undefined) continue;
    try {
      policy[key] = formatCalendarDuration(parseCalendarDuration(text));
    } catch (error) {
      throw new UsageError(`Invalid --${flag}: ${(error as Error).message}`);
    }
  }
  const tags = args.values["keep-tag"];
  if (Array.isArray(tags)) {
    policy.keepTags = tags.map((t) => String(t).split(","));
  }
  if (Object.keys(policy).length === 0) {
    throw new UsageError(
      "Missing a retention policy: pass at least one --keep-* flag (--keep-last, --keep-daily, --keep-within, --keep-tag, ...)",
    );
  }
  return policy;
}

// ---------------------------------------------------------------------------
// forget

/**
 * `cairn forget`: retention.
 *
 * @example From a shell
 * ```sh
 * cairn forget --keep-daily 7 --keep-weekly 4 && cairn gc
 * ```
 */
export const forgetCommand: Command = {
  name: "forget",
  summary: "Delete runs a retention policy does not keep",
  usage:
    "cairn forget [--keep-last N] [--keep-hourly|daily|weekly|monthly|yearly N] [--keep-within[-hourly|-daily|-weekly|-monthly|-yearly] DURATION] [--keep-tag TAGS] [--dry-run] [JOB...]",
  description:
    'Applies restic-style retention to each job\'s runs (or only the jobs named). Every rule given adds runs to keep; unfinished runs are always kept. Forgetting deletes run logs only; run "cairn gc" afterwards to delete the chunks no remaining run references.',
  positionals: true,
  options: {
    ...FORGET_POLICY_OPTIONS,
    "dry-run": {
      type: "boolean",
      description: "Show what would be removed; delete nothing",
    },
  },
  examples: [
    "cairn forget --keep-last 3",
    "cairn forget --keep-daily 7 --keep-weekly 4 --dry-run",
    "cairn forget --keep-within 30d nightly && cairn gc",
    "cairn forget --keep-within-daily 1m --keep-monthly -1 --keep-tag release",
  ],
  async run(ctx, args) {
    const policy = forgetPolicyArgs(args);
    const dryRun = args.values["dry-run"] === true;
    const jobs = args.positionals.map(jobArg);
    const store = await openExistingStore(ctx);
    await warnJobsWithoutRuns(ctx, store, jobs);
    const report = await forgetRuns(store, {
      ...policy,
      dryRun,
      ...(jobs.length > 0 ? { jobs } : {}),
    });
    ctx.result({ ...report, dryRun }, () => {
      const all = [
        ...report.keep.map((d) => ({ ...d, action: "keep" })),
        ...report.remove.map((d) => ({
          ...d,
          action: dryRun ? "would remove" : "remove",
        })),
      ].sort((a, b) =>
        a.job.localeCompare(b.job) || b.startedAt.localeCompare(a.startedAt)
      );
      if (all.length > 0) {
        for (
          const line of formatTable(
            ["JOB", "RUN", "STATUS", "STARTED", "ACTION", "REASONS"],
            all.map((d) => [
              d.job,
              d.run,
              d.status,
              shortTime(d.startedAt),
              d.action,
              d.reasons.join(", "),
            ]),
          )
        ) ctx.out(line);
      }
      ctx.out(
        `${dryRun ? "Would keep" : "Kept"} ${report.keep.length} runs, ${
          dryRun ? "would remove" : "removed"
        } ${report.remove.length}`,
      );
    });
    if (report.remove.length > 0) {
      ctx.info(
        dryRun
          ? "Dry run: nothing was deleted"
          : 'Run "cairn gc" to delete the chunks only the removed runs referenced',
      );
    }
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// gc

/**
 * `cairn gc`: mark and sweep.
 *
 * @example From a shell
 * ```sh
 * cairn gc --dry-run --grace 2h
 * ```
 */
export const gcCommand: Command = {
  name: "gc",
  summary: "Delete chunks no remaining run references",
  usage: "cairn gc [--dry-run] [--grace DURATION]",
  description:
    "Marks every chunk referenced by a run log, then deletes the others that are older than the grace period, and old temp files. Safe to interrupt at any point, and safe beside running jobs as long as the grace period is longer than a step takes (default 1h).",
  options: {
    "dry-run": {
      type: "boolean",
      description: "Report what would be deleted; delete nothing",
    },
    grace: {
      type: "string",
      valueName: "DURATION",
      description:
        "Keep unreferenced chunks younger than this (default: 1h; 0s when no job is running)",
    },
  },
  examples: [
    "cairn gc --dry-run",
    "cairn forget --keep-last 5 && cairn gc",
    "cairn gc --grace 0s   # only when no job is running",
  ],
  async run(ctx, args) {
    const dryRun = args.values["dry-run"] === true;
    const graceMs = durationArg(args, "grace");
    const store = await openExistingStore(ctx);
    const report = await collectGarbage(store, {
      dryRun,
      ...(graceMs === undefined ? {} : { graceMs }),
      onProgress: (examined) =>
        ctx.onEvent({
          type: "progress",
          job: "gc",
          done: examined,
          unit: "chunks",
        }),
    });
    ctx.result({ ...report, dryRun }, () => {
      ctx.out(
        `Marked ${report.referenced} chunks referenced by ${report.runs} runs`,
      );
      ctx.out(
        `${
          dryRun ? "Would delete" : "Deleted"
        } ${report.swept} unreferenced chunks (${
          formatByteSize(report.sweptBytes, { fixedDecimal: true })
        }); kept ${report.young} younger than the grace period (${
          formatDuration(graceMs ?? 3_600_000)
        })${dryRun ? "" : `; removed ${report.tempRemoved} temp files`}`,
      );
    });
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// unlock

/**
 * `cairn unlock`: break a job's lock.
 *
 * @example From a shell
 * ```sh
 * cairn unlock nightly
 * ```
 */
export const unlockCommand: Command = {
  name: "unlock",
  summary: "Remove a job's lock left by a crashed or unreachable process",
  usage: "cairn unlock JOB",
  description:
    "Removes the job's lock whoever holds it and prints what was removed. Locks of dead processes on this host, or without a heartbeat for 10 minutes, are taken over automatically, so this is for holders on other hosts you know are gone. A live holder notices on its next heartbeat and stops writing.",
  positionals: true,
  options: {},
  examples: ["cairn unlock nightly"],
  async run(ctx, args) {
    const job = jobArg(onePositional(args, "JOB"));
    const store = await openExistingStore(ctx);
    const removed = await store.breakLock(job);
    const stale = removed === undefined ? undefined : lockStaleReason(removed);
    ctx.result(
      {
        job,
        removed: removed ?? null,
        holderWasAlive: removed !== undefined && stale === undefined,
      },
      () => {
        if (removed === undefined) {
          ctx.out(`Job "${job}" was not locked`);
        } else {
          ctx.out(
            `Removed the lock of job "${job}": pid ${removed.pid} on host "${removed.host}" since ${
              shortTime(removed.startedAt)
            }, last heartbeat ${shortTime(removed.heartbeatAt)}${
              removed.command ? `, command "${removed.command}"` : ""
            }${stale === undefined ? "" : ` (${stale})`}`,
          );
        }
      },
    );
    if (removed !== undefined && stale === undefined) {
      ctx.warn(
        `The holder (pid ${removed.pid} on host "${removed.host}") looked alive; it stops writing at its next heartbeat`,
      );
    }
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// cat

/**
 * `cairn cat`: print a chunk.
 *
 * @example From a shell
 * ```sh
 * cairn cat "$(cairn show demo --json | jq -r '.steps[0].refs[0].hash')"
 * ```
 */
export const catCommand: Command = {
  name: "cat",
  summary: "Print a chunk decoded as JSON",
  usage: "cairn cat HASH",
  description:
    "Reads a chunk (checking its hash) and prints its CBOR value as JSON: typed arrays become arrays of numbers, bigints and 64-bit integer arrays become decimal strings, byte strings (Uint8Array) become base64 strings, Maps with non-string keys become [key, value] pairs, Dates become ISO strings, and undefined, NaN and Infinity become null. A piece of a large output is a byte string, so it prints as base64. --raw writes the chunk's bytes unchanged.",
  positionals: true,
  options: {
    raw: {
      type: "boolean",
      description: "Write the chunk's CBOR bytes to stdout unchanged",
    },
  },
  examples: [
    "cairn cat 3f2a…(64 hex characters)",
    "cairn show demo --json | jq -r '.steps[0].key'",
    "cairn cat HASH --raw > chunk.cbor",
  ],
  async run(ctx, args) {
    const hash = onePositional(args, "HASH");
    try {
      assertChunkHash(hash);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const store = await openExistingStore(ctx);
    if (args.values.raw === true) {
      await writeStdout(await store.chunks.get(hash));
      return EXIT.ok;
    }
    const value = await getValue(store.chunks, hash);
    ctx.out(jsonText(value, ctx.json ? undefined : 2));
    return EXIT.ok;
  },
};

// ---------------------------------------------------------------------------
// export

type ExportFormat = "jsonl" | "csv" | "npy";

interface ExportItem {
  key: string;
  /** Index within a stream step. */
  item?: number;
  value: unknown;
}

function selectSteps(state: RunState, patterns: string[]): StepRecord[] {
  const steps = [...state.steps.values()];
  if (steps.length === 0) {
    throw new Error(
      `Cannot export run "${state.job}/${state.run}": it has no done steps`,
    );
  }
  const chosen = patterns.length === 0
    ? steps
    : steps.filter((s) => patterns.some((p) => matchKey(p, s.key)));
  if (chosen.length === 0) {
    throw new Error(
      `Cannot export run "${state.job}/${state.run}": no step key matches ${
        patterns.map((p) => `"${p}"`).join(" or ")
      }; run "cairn show ${state.job}/${state.run} --all" to list the keys`,
    );
  }
  return chosen.sort((a, b) => naturalCompare(a.key, b.key));
}

async function* readItems(
  store: Store,
  steps: StepRecord[],
): AsyncIterable<ExportItem> {
  for (const step of steps) {
    try {
      if (step.output.kind === "value") {
        yield {
          key: step.key,
          value: await readValueChunks(store.chunks, step.output.chunks),
        };
      } else {
        for (const [i, refs] of step.output.items.entries()) {
          yield {
            key: step.key,
            item: i,
            value: await readValueChunks(store.chunks, refs),
          };
        }
      }
    } catch (error) {
      if (error instanceof MissingChunkError) {
        throw new Error(
          `Cannot export step "${step.key}": ${error.message}; rerun the job to recompute it`,
        );
      }
      throw error;
    }
  }
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (Array.isArray(value)) {
    return value.length === 0
      ? "an empty array"
      : `an array of ${describeValue(value[0])}`;
  }
  if (value instanceof Map) return "a Map";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isScalar(value: unknown): boolean {
  return value === null || value === undefined ||
    ["string", "number", "bigint", "boolean"].includes(typeof value) ||
    value instanceof Date ||
    (value instanceof Uint8Array && value.constructor === Uint8Array);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !ArrayBuffer.isView(value) &&
    !(value instanceof Map) && !(value instanceof Date);
}

function isRowArray(value: unknown): value is ArrayLike<unknown> {
  return (Array.isArray(value) && value.every(isScalar)) ||
    (ArrayBuffer.isView(value) &&
      !(value instanceof Uint8Array && value.constructor === Uint8Array));
}

/** CSV rows of one output: an array of flat objects or rows, one flat object, or an array of scalars. */
function csvRows(item: ExportItem): Record<string, unknown>[] {
  const { key, value } = item;
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot export step "${key}" as csv: ${why}; csv needs an array of flat objects or of rows (arrays of numbers or strings); use --format jsonl`,
    );
  };
  const fromObject = (o: Record<string, unknown>, row: number) => {
    for (const [col, v] of Object.entries(o)) {
      if (!isScalar(v)) {
        fail(
          `row ${row}, column "${col}" is ${describeValue(v)}, not a scalar`,
        );
      }
    }
    return o;
  };
  const fromRow = (r: ArrayLike<unknown>) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < r.length; i++) o[String(i)] = r[i];
    return o;
  };
  if (isPlainObject(value)) return [fromObject(value, 0)];
  if (isRowArray(value)) {
    return Array.from(value as ArrayLike<unknown>, (v) => ({ value: v }));
  }
  if (!Array.isArray(value)) fail(`its output is ${describeValue(value)}`);
  return (value as unknown[]).map((row, i) => {
    if (isPlainObject(row)) return fromObject(row, i);
    if (isRowArray(row)) return fromRow(row);
    return fail(`row ${i} is ${describeValue(row)}`);
  });
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  let text: string;
  if (value instanceof Date) text = value.toISOString();
  else if (typeof value === "number") {
    text = Number.isFinite(value) ? String(value) : "";
  } else if (typeof value === "object") text = String(toJsonValue(value));
  else text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

interface NumericArray {
  dtype: string;
  /** Row length for 2-D data; undefined for 1-D. */
  cols: number | undefined;
  rows: number;
  data: NpyWritable;
}

function numericOf(item: ExportItem): NumericArray {
  const { key, value } = item;
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot export step "${key}" as npy: ${why}; npy needs a numeric typed array, an array of numbers, or an array of equal-length rows of them; pick such steps with --step KEY`,
    );
  };
  const asTyped = (v: unknown): NpyWritable | undefined => {
    if (
      v instanceof Float32Array || v instanceof Float64Array ||
      v instanceof Int32Array || v instanceof BigInt64Array
    ) return v;
    if (
      v instanceof Int8Array || v instanceof Int16Array ||
      v instanceof Uint8Array || v instanceof Uint16Array ||
      v instanceof Uint8ClampedArray
    ) return Int32Array.from(v);
    if (v instanceof Uint32Array) return Float64Array.from(v);
    if (Array.isArray(v) && v.every((x) => typeof x === "number")) {
      return Float64Array.from(v as number[]);
    }
    return undefined;
  };
  const dtypeOf = (a: NpyWritable) =>
    a instanceof Float32Array
      ? "float32"
      : a instanceof Float64Array
      ? "float64"
      : a instanceof Int32Array
      ? "int32"
      : "int64";
  const flat = asTyped(value);
  if (flat !== undefined) {
    return {
      dtype: dtypeOf(flat),
      cols: undefined,
      rows: flat.length,
      data: flat,
    };
  }
  if (!Array.isArray(value) || value.length === 0) {
    return fail(`its output is ${describeValue(value)}`);
  }
  const rows = value.map((r, i) =>
    asTyped(r) ?? fail(`row ${i} is ${describeValue(r)}`)
  );
  const cols = rows[0]!.length;
  const dtype = dtypeOf(rows[0]!);
  for (const [i, r] of rows.entries()) {
    if (r.length !== cols || dtypeOf(r) !== dtype) {
      fail(
        `row ${i} is ${dtypeOf(r)}[${r.length}] but row 0 is ${dtype}[${cols}]`,
      );
    }
  }
  return { dtype, cols, rows: rows.length, data: concatTyped(rows) };
}

function concatTyped(parts: NpyWritable[]): NpyWritable {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const first = parts[0]!;
  const out = new (first.constructor as new (n: number) => NpyWritable)(total);
  let at = 0;
  for (const p of parts) {
    (out as Float64Array).set(p as Float64Array, at);
    at += p.length;
  }
  return out;
}

/**
 * `cairn export`: step outputs to a file.
 *
 * @example From a shell
 * ```sh
 * cairn export demo --format npy --step 'rows-*' --out rows.npy
 * ```
 */
export const exportCommand: Command = {
  name: "export",
  summary: "Export step outputs as JSON lines, CSV or a NumPy .npy file",
  usage:
    "cairn export JOB[/RUN] --format jsonl|csv|npy --out PATH [--step KEY]...",
  description:
    'Reads the done steps of a run (by default the job\'s newest), in natural key order (digits compare as numbers), and writes them atomically (a temp file, then rename). jsonl: one line per step, {"key", "value"}, or per item of a stream step, {"key", "item", "value"}; values are converted as "cairn cat" describes (bytes as base64). csv: for outputs that are arrays of flat objects or of rows (or one flat object); a first column "step" names the step. npy: a numeric output of one step (typed array, array of numbers, or array of equal-length rows), or the concatenation of several steps of the same dtype and row length. --step picks steps by key; * matches any characters; repeat it to pick several patterns. --out - writes to stdout.',
  positionals: true,
  options: {
    format: {
      type: "string",
      valueName: "jsonl|csv|npy",
      description: "Output format",
    },
    out: {
      type: "string",
      valueName: "PATH",
      description: "File to write (replaced atomically); - for stdout",
    },
    step: {
      type: "string",
      multiple: true,
      valueName: "KEY",
      description: "Only steps whose key matches (* is a wildcard); repeatable",
    },
  },
  examples: [
    "cairn export demo --format jsonl --out demo.jsonl",
    "cairn export demo --format csv --step 'stats-*' --out stats.csv",
    "cairn export demo --format npy --step 'rows-*' --out rows.npy",
  ],
  async run(ctx, args) {
    const spec = onePositional(args, "JOB[/RUN]");
    const format = stringOption(args, "format");
    if (format === undefined) {
      throw new UsageError("Missing --format: pass --format jsonl, csv or npy");
    }
    if (!["jsonl", "csv", "npy"].includes(format)) {
      throw new UsageError(
        `Invalid --format "${format}": expected jsonl, csv or npy`,
      );
    }
    const out = stringOption(args, "out");
    if (out === undefined || out === "") {
      throw new UsageError("Missing --out: pass --out PATH (or - for stdout)");
    }
    const patterns = (args.values.step as string[] | undefined) ?? [];
    const { job, run } = parseJobRun(spec);
    const store = await openExistingStore(ctx);
    const { state } = await loadRun(store, job, run);
    const steps = selectSteps(state, patterns);
    const write = async (
      body: (
        chunk: (part: string | Uint8Array) => Promise<void>,
      ) => Promise<void>,
    ) => {
      if (out === "-") await body(writeStdout);
      else await writeFileAtomically(out, body, { mode: 0o644 });
    };
    let records = 0;
    switch (format as ExportFormat) {
      case "jsonl":
        await write(async (chunk) => {
          for await (const item of readItems(store, steps)) {
            records++;
            await chunk(
              JSON.stringify(
                item.item === undefined
                  ? { key: item.key, value: toJsonValue(item.value) }
                  : {
                    key: item.key,
                    item: item.item,
                    value: toJsonValue(item.value),
                  },
              ) + "\n",
            );
          }
        });
        break;
      case "csv": {
        // Pass 1 finds the columns (and rejects unsuitable outputs before writing).
        const columns: string[] = [];
        const seen = new Set<string>();
        for await (const item of readItems(store, steps)) {
          for (const row of csvRows(item)) {
            for (const col of Object.keys(row)) {
              if (!seen.has(col)) {
                seen.add(col);
                columns.push(col);
              }
            }
          }
        }
        const stepColumn = seen.has("step") ? "_step" : "step";
        await write(async (chunk) => {
          await chunk([stepColumn, ...columns].map(csvCell).join(",") + "\r\n");
          for await (const item of readItems(store, steps)) {
            let text = "";
            for (const row of csvRows(item)) {
              records++;
              text += [item.key, ...columns.map((c) => row[c])].map(csvCell)
                .join(",") + "\r\n";
            }
            await chunk(text);
          }
        });
        break;
      }
      case "npy": {
        const parts: (NumericArray & { key: string })[] = [];
        for await (const item of readItems(store, steps)) {
          parts.push({ ...numericOf(item), key: item.key });
        }
        const first = parts[0]!;
        for (const p of parts) {
          if (p.dtype !== first.dtype || p.cols !== first.cols) {
            const shape = (x: NumericArray) =>
              x.cols === undefined
                ? `${x.dtype}[${x.rows}]`
                : `${x.dtype}[${x.rows}, ${x.cols}]`;
            throw new TypeError(
              `Cannot export as npy: step "${p.key}" is ${
                shape(p)
              } but step "${first.key}" is ${
                shape(first)
              }; only same-dtype steps with the same row length concatenate; pick steps with --step KEY`,
            );
          }
        }
        const data = parts.length === 1
          ? first.data
          : concatTyped(parts.map((p) => p.data));
        const rows = parts.reduce((n, p) => n + p.rows, 0);
        records = rows;
        const bytes = encodeNpy(
          data,
          first.cols === undefined ? [rows] : [rows, first.cols],
        );
        await write((chunk) => chunk(bytes));
        break;
      }
    }
    if (out !== "-") {
      ctx.result(
        { job, run: state.run, format, out, steps: steps.length, records },
        () =>
          ctx.out(
            `Wrote ${records} ${
              format === "npy" ? "rows" : "records"
            } from ${steps.length} steps of run "${job}/${state.run}" to ${out}`,
          ),
      );
    }
    return EXIT.ok;
  },
};

/**
 * Every store command, in help order.
 *
 * @example Names
 * ```ts
 * import assert from "node:assert/strict";
 * import { STORE_COMMANDS } from "./store_commands.ts";
 * assert.ok(STORE_COMMANDS.some((c) => c.name === "verify"));
 * ```
 */
export const STORE_COMMANDS: Command[] = [
  lsCommand,
  showCommand,
  verifyCommand,
  forgetCommand,
  gcCommand,
  unlockCommand,
  catCommand,
  exportCommand,
];
