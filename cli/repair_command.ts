/**
 * `cairn repair JOB/RUN`: cut a run log damaged in the middle back to its
 * last good record, keeping the cut bytes aside.
 *
 * @module
 */
import { repairLog } from "../store/repair_log.ts";
import { assertName } from "../store/name.ts";
import { type Command, EXIT, UsageError } from "./command.ts";

/**
 * `cairn repair`: repair a damaged run log.
 *
 * @example From a shell
 * ```sh
 * cairn repair nightly/20261123T030001.000Z
 * ```
 */
export const repairCommand: Command = {
  name: "repair",
  summary: "Cut a damaged run log back to its last good record",
  usage: "cairn repair JOB/RUN",
  description:
    'Use it when a command reports a log whose bad record is followed by good ones. The log is cut at its last good record; the cut bytes are kept beside it as "<run>.log.cut-<ms>" (a log without one good record is moved whole to "<run>.log.unborn-<ms>"), never deleted. Steps recorded after the cut are computed again by the next run. Takes the job\'s lock, so it exits 3 while the job runs.',
  positionals: true,
  options: {},
  examples: ["cairn repair nightly/20261123T030001.000Z"],
  async run(ctx, args) {
    if (args.positionals.length !== 1) {
      throw new UsageError(
        `Expected one JOB/RUN argument, found ${args.positionals.length}`,
      );
    }
    const target = args.positionals[0]!;
    const slash = target.indexOf("/");
    if (slash < 0) {
      throw new UsageError(
        `Cannot repair "${
          target.slice(0, 80)
        }": expected JOB/RUN, as printed by the error that named the log`,
      );
    }
    const job = assertName("job", target.slice(0, slash));
    const run = assertName("run", target.slice(slash + 1));
    const store = await ctx.store();
    if (!(await store.listRuns(job)).includes(run)) {
      throw new RangeError(
        `Cannot repair run "${run}" of job "${job}": the store at "${store.location}" has no such run; "cairn ls ${job}" lists them`,
      );
    }
    const report = await repairLog(store, { job, run }, {
      waitMs: ctx.waitLockMs,
    });
    ctx.result({ job, run, ...report }, () => {
      if (report.cutBytes === 0) {
        ctx.out(
          `Run "${job}/${run}" is sound: ${report.records} records, nothing cut`,
        );
      } else {
        ctx.out(
          `Cut run "${job}/${run}" to ${report.records} records at byte ${report.offset} (${report.reason}); kept the ${report.cutBytes} cut bytes in "${report.aside}"`,
        );
      }
    });
    return EXIT.ok;
  },
};
