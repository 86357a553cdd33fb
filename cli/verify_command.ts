/**
 * `cairn verify`: check the store like restic's `check`.
 *
 * @module
 */
import { formatByteSize } from "../lib/knn/job_plan.ts";
import { subsetFilter, verifyStore } from "../lib/verify.ts";
import { type Command, EXIT, stringOption, UsageError } from "./command.ts";
import {
  jobArg,
  openExistingStore,
  plural,
  warnJobsWithoutRuns,
} from "./_args.ts";

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
        throw new UsageError(
          (error as Error).message.replace(
            "readDataSubset",
            "--read-data-subset",
          ),
        );
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
        // --quiet (cron): silent when all is well, the problems otherwise.
        if (ctx.quiet && report.problems.length === 0) return;
        if (!ctx.quiet) {
          ctx.out(
            `Checked ${plural(report.jobs, "job")}, ${
              plural(report.runs, "run")
            }, ${plural(report.chunks, "chunk")}; re-hashed ${
              plural(report.chunksRead, "chunk")
            } (${formatByteSize(report.bytesRead, { fixedDecimal: true })})`,
          );
        }
        for (const p of report.problems) {
          ctx.out(`${p.kind} ${p.job}/${p.run}: ${p.message}`);
        }
        if (report.problems.length === 0) {
          ctx.out("No problems found");
        } else {
          ctx.out(
            `Found ${plural(report.problems.length, "problem")}: ${
              plural(damagedChunks.size, "damaged chunk")
            } in ${plural(damagedRuns.size, "run")}`,
          );
        }
      },
    );
    if (report.problems.length > 0) {
      ctx.warn(
        `The store has problems: rerun the affected jobs to recompute the damaged steps (a run whose log cannot be read can be removed with "${
          ctx.program ?? "cairn"
        } forget")`,
      );
      return EXIT.verifyProblems;
    }
    return EXIT.ok;
  },
};
