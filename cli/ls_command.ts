/**
 * `cairn ls`: jobs and their runs, summarized by `listRuns`.
 *
 * @module
 */
import { formatByteSize } from "../lib/knn/job_plan.ts";
import { listRuns } from "../lib/runs.ts";
import { type Command, EXIT } from "./command.ts";
import { jobArg, openExistingStore, plural } from "./_args.ts";
import { formatTable, shortTime } from "./_format.ts";

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
    "Lists every run of every job (or of the jobs named): kind, status, steps done/total, chunks and bytes referenced, and start time. A run whose process is gone shows as interrupted; rerun the job to resume it. The part jobs that shared workers leave (one per block) are counted per job instead of listed, unless --parts is given or they are named.",
  positionals: true,
  options: {
    latest: {
      type: "boolean",
      description: "Show only the newest run of each job",
    },
    parts: {
      type: "boolean",
      description: "List the part jobs of shared workers one by one too",
    },
  },
  examples: [
    "cairn ls",
    "cairn ls demo --latest",
    "cairn ls --json | jq '.[] | select(.status == \"failed\")'",
  ],
  async run(ctx, args) {
    const store = await openExistingStore(ctx);
    const listing = await listRuns(store, {
      ...(args.positionals.length > 0
        ? { jobs: args.positionals.map(jobArg) }
        : {}),
      latest: args.values.latest === true,
    });
    for (const job of listing.jobsWithoutRuns) {
      ctx.warn(`Job "${job}" has no runs in store "${store.location}"`);
    }
    const unreadable = new Map<string, number>();
    for (const { job } of listing.unreadable) {
      unreadable.set(job, (unreadable.get(job) ?? 0) + 1);
    }
    for (const [job, n] of unreadable) {
      ctx.warn(
        `${plural(n, "run")} of job "${job}" cannot be read; run "${
          ctx.program ?? "cairn"
        } verify ${job}"`,
      );
    }
    // Shared workers leave one small part job per block: listed one by one
    // they would bury the jobs themselves, so they are counted per job.
    const showParts = args.values.parts === true || args.positionals.length > 0;
    const entries = showParts
      ? listing.runs
      : listing.runs.filter((e) => e.partOf === null);
    const partJobs = new Map<string, Set<string>>();
    if (!showParts) {
      for (const e of listing.runs) {
        if (e.partOf === null) continue;
        const jobs = partJobs.get(e.partOf) ?? new Set();
        partJobs.set(e.partOf, jobs.add(e.job));
      }
    }
    for (const [parent, jobs] of partJobs) {
      ctx.info(
        `Job "${parent}" has ${
          plural(jobs.size, "part job")
        } from shared workers (not listed; pass --parts to list them)`,
      );
    }
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
