/**
 * `cairn forget`: restic-style retention over runs.
 *
 * @module
 */
import { forgetRuns, type RetentionPolicy } from "../lib/forget.ts";
import { type Command, EXIT, intOption, UsageError } from "./command.ts";
import {
  durationArg,
  jobArg,
  openExistingStore,
  plural,
  warnJobsWithoutRuns,
} from "./_args.ts";
import { formatTable, shortTime } from "./_format.ts";

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
    "cairn forget --keep-last N | --keep-within DURATION | --keep-daily N | --keep-weekly N | --keep-monthly N [--dry-run] [JOB...]",
  description:
    'Applies restic-style retention to each job\'s runs (or only the jobs named). Every rule given adds runs to keep; unfinished runs are always kept. Forgetting deletes run logs only; run "cairn gc" afterwards to delete the chunks no remaining run references.',
  positionals: true,
  options: {
    "keep-last": {
      type: "string",
      valueName: "N",
      description: "Keep the newest N runs",
    },
    "keep-within": {
      type: "string",
      valueName: "DURATION",
      description:
        "Keep runs started within DURATION (e.g. 7d) of the job's newest run",
    },
    "keep-daily": {
      type: "string",
      valueName: "N",
      description: "Keep the newest run of each of the last N days with runs",
    },
    "keep-weekly": {
      type: "string",
      valueName: "N",
      description: "Keep the newest run of each of the last N weeks with runs",
    },
    "keep-monthly": {
      type: "string",
      valueName: "N",
      description: "Keep the newest run of each of the last N months with runs",
    },
    "dry-run": {
      type: "boolean",
      description: "Show what would be removed; delete nothing",
    },
  },
  examples: [
    "cairn forget --keep-last 3",
    "cairn forget --keep-daily 7 --keep-weekly 4 --dry-run",
    "cairn forget --keep-within 30d nightly && cairn gc",
  ],
  async run(ctx, args) {
    const policy: RetentionPolicy = {};
    const last = intOption(args, "keep-last");
    const within = durationArg(args, "keep-within");
    const daily = intOption(args, "keep-daily");
    const weekly = intOption(args, "keep-weekly");
    const monthly = intOption(args, "keep-monthly");
    if (last !== undefined) policy.keepLast = last;
    if (within !== undefined) policy.keepWithinMs = within;
    if (daily !== undefined) policy.keepDaily = daily;
    if (weekly !== undefined) policy.keepWeekly = weekly;
    if (monthly !== undefined) policy.keepMonthly = monthly;
    if (Object.keys(policy).length === 0) {
      throw new UsageError(
        "Missing a retention policy: pass at least one of --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly",
      );
    }
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
