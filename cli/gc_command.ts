/**
 * `cairn gc`: mark and sweep unreferenced chunks.
 *
 * @module
 */
import { formatDuration } from "../lib/duration.ts";
import { collectGarbage } from "../lib/gc.ts";
import { formatByteSize } from "../lib/knn/job_plan.ts";
import { type Command, EXIT } from "./command.ts";
import { durationArg, openExistingStore, plural } from "./_args.ts";

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
    "Marks every chunk referenced by a run log, then deletes the others that are older than the grace period, and old temp files. Safe to interrupt at any point, and safe beside running jobs as long as the grace period is longer than a step takes (default 1h; while a job runs, at least 1m).",
  options: {
    "dry-run": {
      type: "boolean",
      description: "Report what would be deleted; delete nothing",
    },
    grace: {
      type: "string",
      valueName: "DURATION",
      description:
        "Keep unreferenced chunks younger than this (default: 1h; at least 1m while a job is running, 0s when none is)",
    },
  },
  examples: [
    "cairn gc --dry-run",
    "cairn forget --keep-last 5 && cairn gc",
    "cairn gc --grace 5m",
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
      if (ctx.quiet) return; // cron: silence on success
      ctx.out(
        `Marked ${plural(report.referenced, "chunk")} referenced by ${
          plural(report.runs, "run")
        }`,
      );
      ctx.out(
        `${dryRun ? "Would delete" : "Deleted"} ${
          plural(report.swept, "unreferenced chunk")
        } (${
          formatByteSize(report.sweptBytes, { fixedDecimal: true })
        }); kept ${report.young} younger than the grace period (${
          formatDuration(report.appliedGraceMs)
        })${
          dryRun ? "" : `; removed ${plural(report.tempRemoved, "temp file")}`
        }`,
      );
    });
    return EXIT.ok;
  },
};
