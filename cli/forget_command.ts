/**
 * `cairn forget`: restic-style retention over runs, one flag per
 * `RetentionPolicy` option, named as restic names them.
 *
 * @module
 */
import {
  forgetRuns,
  formatCalendarDuration,
  parseCalendarDuration,
  type RetentionPolicy,
} from "../lib/forget.ts";
import {
  type Command,
  type CommandArgs,
  EXIT,
  intOption,
  stringOption,
  UsageError,
} from "./command.ts";
import {
  jobArg,
  openExistingStore,
  plural,
  warnJobsWithoutRuns,
} from "./_args.ts";
import { formatTable, shortTime } from "./_format.ts";

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
      if (ctx.quiet) return; // cron: silence on success
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
        `${dryRun ? "Would keep" : "Kept"} ${
          plural(report.keep.length, "run")
        }, ${dryRun ? "would remove" : "removed"} ${report.remove.length}`,
      );
    });
    if (report.remove.length > 0) {
      ctx.info(
        dryRun
          ? "Dry run: nothing was deleted"
          : `Run "${
            ctx.program ?? "cairn"
          } gc" to delete the chunks only the removed runs referenced`,
      );
    }
    return EXIT.ok;
  },
};
