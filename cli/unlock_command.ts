/**
 * `cairn unlock`: break a lock left by a crashed or unreachable process.
 *
 * @module
 */
import { unlockJob } from "../lib/unlock.ts";
import { type Command, EXIT } from "./command.ts";
import { jobArg, onePositional, openExistingStore } from "./_args.ts";
import { shortTime } from "./_format.ts";

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
  usage: "cairn unlock [--force] JOB",
  description:
    "Removes the job's lock when its holder is gone and prints what was removed. Locks of dead processes on this host, or without a heartbeat for 10 minutes, are taken over automatically, so this is for holders you know are gone. A holder that looks alive (a live pid on this host, or a recent heartbeat) is refused with exit code 3 unless --force is given; a forced-out holder is fenced and stops before its next write.",
  positionals: true,
  options: {
    force: {
      type: "boolean",
      description:
        "Remove the lock even if its holder looks alive (e.g. a host you know is down)",
    },
  },
  examples: ["cairn unlock nightly", "cairn unlock --force nightly"],
  async run(ctx, args) {
    const job = jobArg(onePositional(args, "JOB"));
    const store = await openExistingStore(ctx);
    const report = await unlockJob(store, job, {
      force: args.values.force === true,
    });
    const removed = report.removed;
    ctx.result(report, () => {
      if (removed === null) {
        ctx.out(`Job "${job}" was not locked`);
      } else {
        ctx.out(
          `Removed the lock of job "${job}": pid ${removed.pid} on host "${removed.host}" since ${
            shortTime(removed.startedAt)
          }, last heartbeat ${shortTime(removed.heartbeatAt)}${
            removed.command ? `, command "${removed.command}"` : ""
          }${report.staleReason === null ? "" : ` (${report.staleReason})`}`,
        );
      }
    });
    if (report.holderWasAlive && removed !== null) {
      ctx.warn(
        `The holder (pid ${removed.pid} on host "${removed.host}") looked alive; it was forced out and stops before its next write`,
      );
    }
    return EXIT.ok;
  },
};
