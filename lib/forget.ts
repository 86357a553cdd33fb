/**
 * Retention: which runs a policy keeps, with restic's `forget` semantics
 * applied to each job's runs. Forgetting deletes run logs only; `gc` then
 * sweeps the chunks no remaining run references.
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import { replayJob, type RunState } from "./replay.ts";

/** A retention policy. Every rule that is set adds runs to keep. */
export interface RetentionPolicy {
  /** Keep the newest N runs. */
  keepLast?: number;
  /** Keep runs started within this many ms of the job's newest run. */
  keepWithinMs?: number;
  /** Keep the newest run of each of the last N days that have runs (UTC). */
  keepDaily?: number;
  /** Keep the newest run of each of the last N ISO weeks that have runs. */
  keepWeekly?: number;
  /** Keep the newest run of each of the last N months that have runs. */
  keepMonthly?: number;
}

/** A decision about one run. */
export interface RunDecision {
  /** The job. */
  job: string;
  /** The run id. */
  run: string;
  /** When the run started (ISO time). */
  startedAt: string;
  /** The run's status (`completed`, `failed`, …). */
  status: string;
  /** Why it is kept; empty for removed runs. */
  reasons: string[];
}

/** What {@linkcode forgetRuns} decided (and did, unless a dry run). */
export interface ForgetReport {
  /** Runs kept, with the rules that keep them. */
  keep: RunDecision[];
  /** Runs removed (or, in a dry run, that would be). */
  remove: RunDecision[];
}

function isoWeek(date: Date): string {
  const d = new Date(
    Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()),
  );
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  return `${d.getUTCFullYear()}-W${
    Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7)
  }`;
}

const BUCKETS: [keyof RetentionPolicy, string, (d: Date) => string][] = [
  ["keepDaily", "daily", (d) => d.toISOString().slice(0, 10)],
  ["keepWeekly", "weekly", isoWeek],
  ["keepMonthly", "monthly", (d) => d.toISOString().slice(0, 7)],
];

/**
 * Decide which of one job's runs a policy keeps. Runs with no end record are
 * always kept (they may be running or resumable).
 *
 * @param runs The job's runs (any order).
 * @param policy The policy.
 * @returns Kept runs with reasons, and removed runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyRetention } from "./forget.ts";
 * const run = (run: string, startedAt: string) => ({ job: "j", run, startedAt, status: "completed" });
 * const { keep, remove } = applyRetention([run("a", "2026-01-01T00:00:00Z"), run("b", "2026-01-02T00:00:00Z")], { keepLast: 1 });
 * assert.ok(keep[0]!.run === "b" && remove[0]!.run === "a");
 * ```
 */
export function applyRetention(
  runs: Pick<RunDecision, "job" | "run" | "startedAt" | "status">[],
  policy: RetentionPolicy,
): ForgetReport {
  const sorted = [...runs].sort((a, b) =>
    b.startedAt.localeCompare(a.startedAt) || b.run.localeCompare(a.run)
  );
  const reasons = new Map(sorted.map((r) => [r.run, [] as string[]]));
  sorted.forEach((r, i) => {
    if (r.status === "running") reasons.get(r.run)!.push("unfinished");
    if (policy.keepLast !== undefined && i < policy.keepLast) {
      reasons.get(r.run)!.push("last");
    }
  });
  const newest = sorted[0] ? Date.parse(sorted[0].startedAt) : 0;
  if (policy.keepWithinMs !== undefined) {
    for (const r of sorted) {
      if (newest - Date.parse(r.startedAt) <= policy.keepWithinMs) {
        reasons.get(r.run)!.push("within");
      }
    }
  }
  for (const [field, label, bucketOf] of BUCKETS) {
    const limit = policy[field];
    if (limit === undefined) continue;
    const seen = new Set<string>();
    for (const r of sorted) {
      const bucket = bucketOf(new Date(r.startedAt));
      if (seen.has(bucket)) continue;
      if (seen.size >= limit) break;
      seen.add(bucket);
      reasons.get(r.run)!.push(`${label} ${bucket}`);
    }
  }
  const report: ForgetReport = { keep: [], remove: [] };
  for (const r of sorted) {
    const why = reasons.get(r.run)!;
    (why.length > 0 ? report.keep : report.remove).push({ ...r, reasons: why });
  }
  return report;
}

/** Options for {@linkcode forgetRuns}. */
export interface ForgetOptions extends RetentionPolicy {
  /** Only these jobs. Default: every job. */
  jobs?: string[];
  /** Decide but delete nothing. Default: false. */
  dryRun?: boolean;
}

/**
 * Apply a retention policy to every job's runs and delete the run logs it does not keep.
 *
 * @param store The store.
 * @param options The policy, job filter and dry-run flag.
 * @returns What was kept and removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { forgetRuns } from "./forget.ts";
 * import { runJob } from "./job.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * for (let i = 0; i < 3; i++) {
 *   await runJob("nightly", { store, newRun: true, handleSignals: false }, (job) => job.step("a", () => i));
 * }
 * const report = await forgetRuns(store, { keepLast: 1 });
 * assert.ok(report.keep.length === 1 && report.remove.length === 2);
 * assert.ok((await store.listRuns("nightly")).length === 1);
 * ```
 */
export async function forgetRuns(
  store: Store,
  options: ForgetOptions,
): Promise<ForgetReport> {
  const policyKeys: (keyof RetentionPolicy)[] = [
    "keepLast",
    "keepWithinMs",
    "keepDaily",
    "keepWeekly",
    "keepMonthly",
  ];
  for (const key of policyKeys) {
    const v = options[key];
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) {
      throw new RangeError(
        `Cannot forget runs: ${key} must be a non-negative number, found ${v}`,
      );
    }
  }
  if (policyKeys.every((k) => options[k] === undefined)) {
    throw new TypeError(
      "Cannot forget runs: no policy given; pass at least one of --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly",
    );
  }
  const total: ForgetReport = { keep: [], remove: [] };
  for (const job of options.jobs ?? await store.listJobs()) {
    const states: RunState[] = await replayJob(store, job);
    const report = applyRetention(
      states.map((s) => ({
        job,
        run: s.run,
        startedAt: s.startedAt,
        status: s.status,
      })),
      options,
    );
    total.keep.push(...report.keep);
    total.remove.push(...report.remove);
    if (!options.dryRun) {
      for (const r of report.remove) await store.deleteRun(job, r.run);
    }
  }
  return total;
}
