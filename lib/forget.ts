/**
 * Retention: which runs a policy keeps, with restic's `forget` semantics
 * applied to each job's runs. Forgetting deletes run logs only; `gc` then
 * sweeps the chunks no remaining run references.
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import { replayJob, type RunState } from "./replay.ts";

/** A calendar duration as restic writes it (`1y2m3d3h`): years and months count by the calendar. */
export interface CalendarDuration {
  /** Calendar years. */
  years: number;
  /** Calendar months. */
  months: number;
  /** Days. */
  days: number;
  /** Hours. */
  hours: number;
}

/**
 * A retention policy. Every rule that is set adds runs to keep; a policy
 * with no rule set keeps nothing. Counts follow restic: 0 (or absent) means
 * the rule is off, -1 means unlimited.
 */
export interface RetentionPolicy {
  /** Keep the newest N runs (-1: all). */
  keepLast?: number;
  /** Keep the newest run of each of the last N hours that have runs (UTC; -1: every hour). */
  keepHourly?: number;
  /** Keep the newest run of each of the last N days that have runs (UTC; -1: every day). */
  keepDaily?: number;
  /** Keep the newest run of each of the last N ISO weeks that have runs (-1: every week). */
  keepWeekly?: number;
  /** Keep the newest run of each of the last N months that have runs (UTC; -1: every month). */
  keepMonthly?: number;
  /** Keep the newest run of each of the last N years that have runs (UTC; -1: every year). */
  keepYearly?: number;
  /** Keep runs started after the newest run minus this calendar duration (`1y2m3d3h`). */
  keepWithin?: string | CalendarDuration;
  /** Keep the newest run of each hour within this duration of the newest run. */
  keepWithinHourly?: string | CalendarDuration;
  /** Keep the newest run of each day within this duration of the newest run. */
  keepWithinDaily?: string | CalendarDuration;
  /** Keep the newest run of each ISO week within this duration of the newest run. */
  keepWithinWeekly?: string | CalendarDuration;
  /** Keep the newest run of each month within this duration of the newest run. */
  keepWithinMonthly?: string | CalendarDuration;
  /** Keep the newest run of each year within this duration of the newest run. */
  keepWithinYearly?: string | CalendarDuration;
  /** Keep every run that has all the tags of at least one of these lists. */
  keepTags?: string[][];
  /** Keep runs started within this many ms of the job's newest run (exact, not calendar). */
  keepWithinMs?: number;
}

/** What {@linkcode applyRetention} needs to know about a run. */
export interface RetentionCandidate {
  /** The job name. */
  job: string;
  /** The run id. */
  run: string;
  /** When the run started (ISO 8601). */
  startedAt: string;
  /** The run status; `running` runs are always kept. */
  status: string;
  /** The run's tags. Default: none. */
  tags?: string[];
}

/** A decision about one run. */
export interface RunDecision extends RetentionCandidate {
  /** Why it is kept (restic's wording, "run" for "snapshot"); empty for removed runs. */
  reasons: string[];
}

/** What {@linkcode forgetRuns} decided (and did, unless a dry run). */
export interface ForgetReport {
  /** Kept runs, newest first, with reasons. */
  keep: RunDecision[];
  /** Removed (or, in a dry run, removable) runs. */
  remove: RunDecision[];
}

/** Options for {@linkcode applyRetention}. */
export interface ApplyRetentionOptions {
  /** The current time in ms; runs after it are not the "newest" for `keepWithin*`. Default: `Date.now()`. */
  now?: number;
}

const COUNT_KEYS = [
  "keepLast",
  "keepHourly",
  "keepDaily",
  "keepWeekly",
  "keepMonthly",
  "keepYearly",
] as const;

const WITHIN_KEYS = [
  "keepWithinHourly",
  "keepWithinDaily",
  "keepWithinWeekly",
  "keepWithinMonthly",
  "keepWithinYearly",
] as const;

/** Every policy option, for "no policy given" checks. */
const POLICY_KEYS: (keyof RetentionPolicy)[] = [
  ...COUNT_KEYS,
  "keepWithin",
  ...WITHIN_KEYS,
  "keepTags",
  "keepWithinMs",
];

/**
 * Parse a restic duration: numbers with units `y` (years), `m` (months),
 * `d` (days) and `h` (hours), e.g. `1y2m3d3h`. A unit given twice keeps the last.
 *
 * @param text The duration.
 * @returns Its parts.
 *
 * @example Months are calendar months, not minutes
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCalendarDuration } from "./forget.ts";
 * assert.deepEqual(parseCalendarDuration("1y2m3d3h"), { years: 1, months: 2, days: 3, hours: 3 });
 * ```
 */
export function parseCalendarDuration(text: string): CalendarDuration {
  const d: CalendarDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const trimmed = String(text).trim();
  const parts = [...trimmed.matchAll(/(-?\d+)([ymdh])/g)];
  if (trimmed === "" || parts.map((p) => p[0]).join("") !== trimmed) {
    throw new SyntaxError(
      `Cannot parse duration "${text}": expected numbers with units y, m (months), d and h, e.g. "1y2m3d3h" or "30d"`,
    );
  }
  const unit = { y: "years", m: "months", d: "days", h: "hours" } as const;
  for (const p of parts) d[unit[p[2] as keyof typeof unit]] = Number(p[1]);
  return d;
}

/**
 * Write a calendar duration the way restic prints it (`1y1m1d`).
 *
 * @param d The duration.
 * @returns Its text; empty parts are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCalendarDuration } from "./forget.ts";
 * assert.equal(formatCalendarDuration({ years: 1, months: 1, days: 1, hours: 0 }), "1y1m1d");
 * ```
 */
export function formatCalendarDuration(d: CalendarDuration): string {
  return [
    [d.years, "y"],
    [d.months, "m"],
    [d.days, "d"],
    [d.hours, "h"],
  ].filter(([n]) => n !== 0).map(([n, u]) => `${n}${u}`).join("");
}

function toDuration(
  key: string,
  v: string | CalendarDuration | undefined,
): CalendarDuration | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string") return parseCalendarDuration(v);
  if (
    typeof v !== "object" || v === null ||
    !["years", "months", "days", "hours"].every((k) =>
      Number.isInteger((v as unknown as Record<string, unknown>)[k])
    )
  ) {
    throw new TypeError(
      `Cannot apply retention: ${key} must be a duration such as "1y2m3d3h" or {years, months, days, hours}, found ${
        JSON.stringify(v)
      }`,
    );
  }
  return v;
}

function isZero(d: CalendarDuration | undefined): boolean {
  return d === undefined ||
    (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

/** `latest` minus a calendar duration (years, months and days by the UTC calendar, then hours). */
function subtract(latest: number, d: CalendarDuration): number {
  const t = new Date(latest);
  // setUTCFullYear normalises overflowing months and days as Go's AddDate does,
  // and unlike Date.UTC never maps years 0–99 to 1900–1999.
  t.setUTCFullYear(
    t.getUTCFullYear() - d.years,
    t.getUTCMonth() - d.months,
    t.getUTCDate() - d.days,
  );
  return t.getTime() - d.hours * 3_600_000;
}

/** ISO 8601 week as year * 100 + week. */
function isoWeek(ms: number): number {
  const date = new Date(ms);
  const d = new Date(
    Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()),
  );
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return d.getUTCFullYear() * 100 + week;
}

type Bucketer = (ms: number, nr: number) => number;
const hourOf: Bucketer = (ms) => {
  const d = new Date(ms);
  return d.getUTCFullYear() * 1_000_000 + (d.getUTCMonth() + 1) * 10_000 +
    d.getUTCDate() * 100 + d.getUTCHours();
};
const dayOf: Bucketer = (ms) => Math.floor(hourOf(ms, 0) / 100);
const weekOf: Bucketer = (ms) => isoWeek(ms);
const monthOf: Bucketer = (ms) => Math.floor(hourOf(ms, 0) / 10_000);
const yearOf: Bucketer = (ms) => new Date(ms).getUTCFullYear();
const each: Bucketer = (_ms, nr) => nr;

const BUCKETERS: Record<string, [Bucketer, string]> = {
  keepLast: [each, "last"],
  keepHourly: [hourOf, "hourly"],
  keepDaily: [dayOf, "daily"],
  keepWeekly: [weekOf, "weekly"],
  keepMonthly: [monthOf, "monthly"],
  keepYearly: [yearOf, "yearly"],
  keepWithinHourly: [hourOf, "hourly"],
  keepWithinDaily: [dayOf, "daily"],
  keepWithinWeekly: [weekOf, "weekly"],
  keepWithinMonthly: [monthOf, "monthly"],
  keepWithinYearly: [yearOf, "yearly"],
};

/** Check a policy's values; throws TypeError or RangeError naming the option. */
function checkPolicy(policy: RetentionPolicy): void {
  for (const key of COUNT_KEYS) {
    const v = policy[key];
    if (v !== undefined && (!Number.isInteger(v) || v < -1)) {
      throw new RangeError(
        `Cannot apply retention: ${key} must be a whole number >= 0, or -1 for unlimited, found ${v}`,
      );
    }
  }
  const ms = policy.keepWithinMs;
  if (ms !== undefined && (!Number.isFinite(ms) || ms < 0)) {
    throw new RangeError(
      `Cannot apply retention: keepWithinMs must be a non-negative number, found ${ms}`,
    );
  }
  const tags = policy.keepTags;
  if (
    tags !== undefined &&
    (!Array.isArray(tags) ||
      !tags.every((l) =>
        Array.isArray(l) && l.every((t) => typeof t === "string")
      ))
  ) {
    throw new TypeError(
      `Cannot apply retention: keepTags must be a list of tag lists such as [["nightly"], ["a", "b"]], found ${
        JSON.stringify(tags)
      }`,
    );
  }
}

/** Whether a run has every tag of `list` (restic: an empty tag matches a run without tags). */
function hasTags(tags: string[], list: string[]): boolean {
  return list.every((t) => (t === "" && tags.length === 0) || tags.includes(t));
}

/**
 * Decide which of one job's runs a policy keeps, exactly as restic's
 * `forget` decides for snapshots: runs are taken newest first; each count
 * rule keeps the newest run of each new bucket while it has counts left (and
 * the oldest run if counts remain); `keepWithin*` rules count back from the
 * newest run that is not in the future. cairn adds one rule: runs with no
 * end record are always kept (they may be running or resumable).
 *
 * @param runs The job's runs. Runs with equal start times keep their given order.
 * @param policy The policy.
 * @param options The current time.
 * @returns Kept runs (newest first) with restic's reasons, and removed runs.
 *
 * @example Keep the newest run of each of the last 2 days
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyRetention } from "./forget.ts";
 * const run = (run: string, startedAt: string) => ({ job: "j", run, startedAt, status: "completed" });
 * const { keep, remove } = applyRetention([
 *   run("a", "2026-01-01T08:00:00Z"),
 *   run("b", "2026-01-02T08:00:00Z"),
 *   run("c", "2026-01-02T09:00:00Z"),
 * ], { keepDaily: 2 });
 * assert.deepEqual(keep.map((r) => r.run), ["c", "a"]);
 * assert.deepEqual(remove.map((r) => r.run), ["b"]);
 * ```
 */
export function applyRetention(
  runs: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  options: ApplyRetentionOptions = {},
): ForgetReport {
  checkPolicy(policy);
  const times = new Map(runs.map((r) => [r, Date.parse(r.startedAt)]));
  // Array.prototype.sort is stable, like restic's sort.Stable.
  const sorted = [...runs].sort((a, b) => times.get(b)! - times.get(a)!);
  const report: ForgetReport = { keep: [], remove: [] };
  if (sorted.length === 0) return report;
  const now = options.now ?? Date.now();
  let latest = 0;
  for (const r of sorted) {
    const t = times.get(r)!;
    if (t > latest && t < now) latest = t;
  }
  const counts = COUNT_KEYS.filter((k) => (policy[k] ?? 0) !== 0).map((k) => ({
    left: policy[k]!,
    last: -1,
    bucket: BUCKETERS[k]![0],
    reason: `${BUCKETERS[k]![1]} run`,
  }));
  const withins = WITHIN_KEYS.map((k) => ({
    k,
    d: toDuration(k, policy[k]),
  })).filter((w) => !isZero(w.d)).map(({ k, d }) => ({
    after: subtract(latest, d!),
    last: -1,
    bucket: BUCKETERS[k]![0],
    reason: `${BUCKETERS[k]![1]} within ${formatCalendarDuration(d!)}`,
  }));
  const within = toDuration("keepWithin", policy.keepWithin);
  const withinAfter = isZero(within) ? undefined : subtract(latest, within!);
  const oldest = sorted.length - 1;
  sorted.forEach((r, nr) => {
    const t = times.get(r)!;
    const reasons: string[] = [];
    if (r.status === "running") reasons.push("unfinished");
    for (const list of policy.keepTags ?? []) {
      if (hasTags(r.tags ?? [], list)) {
        reasons.push(`has tags [${list.join(", ")}]`);
      }
    }
    if (withinAfter !== undefined && t > withinAfter) {
      reasons.push(`within ${formatCalendarDuration(within!)}`);
    }
    if (
      policy.keepWithinMs !== undefined &&
      latest - t <= policy.keepWithinMs
    ) {
      reasons.push(`within ${policy.keepWithinMs}ms`);
    }
    for (const b of counts) {
      if (b.left === 0) continue;
      const val = b.bucket(t, nr);
      if (val !== b.last || nr === oldest) {
        reasons.push(val === b.last ? `oldest ${b.reason}` : b.reason);
        b.last = val;
        if (b.left > 0) b.left--;
      }
    }
    for (const b of withins) {
      if (!(t > b.after)) continue;
      const val = b.bucket(t, nr);
      if (val !== b.last || nr === oldest) {
        reasons.push(val === b.last ? `oldest ${b.reason}` : b.reason);
        b.last = val;
      }
    }
    (reasons.length > 0 ? report.keep : report.remove).push({ ...r, reasons });
  });
  return report;
}

/** Options for {@linkcode forgetRuns}. */
export interface ForgetOptions extends RetentionPolicy {
  /** Only these jobs. Default: every job. */
  jobs?: string[];
  /** Decide but delete nothing. Default: false. */
  dryRun?: boolean;
  /** The current time in ms, for `keepWithin*`. Default: `Date.now()`. */
  now?: number;
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
 *   await runJob("nightly", { store, newRun: true }, (job) => job.step("a", () => i));
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
  checkPolicy(options);
  if (POLICY_KEYS.every((k) => options[k] === undefined)) {
    throw new TypeError(
      `Cannot forget runs: no policy given; set at least one of ${
        POLICY_KEYS.join(", ")
      }`,
    );
  }
  const total: ForgetReport = { keep: [], remove: [] };
  for (const job of options.jobs ?? await store.listJobs()) {
    const states: RunState[] = await replayJob(store, job);
    // Newest run id first, so runs with equal start times keep the newer one.
    const report = applyRetention(
      states.reverse().map((s) => ({
        job,
        run: s.run,
        startedAt: s.startedAt,
        status: s.status,
        ...(s.header.tags === undefined ? {} : { tags: s.header.tags }),
      })),
      options,
      options.now === undefined ? {} : { now: options.now },
    );
    total.keep.push(...report.keep);
    total.remove.push(...report.remove);
    if (!options.dryRun) {
      for (const r of report.remove) await store.deleteRun(job, r.run);
    }
  }
  return total;
}
