// The map engine's only contact with the job runtime: opening and ending its
// run (Job.settle, runJob's lifecycle) and reading or computing one batch step
// (Job.step, the runtime's one read-or-recompute path for missing or corrupt
// chunks).
import { type Job, openJob, type OpenJobOptions } from "../job.ts";
import { batchOf, isResultsChunk, type ResultsChunk } from "./_batch_record.ts";
import type { BatchPlan } from "./_batch.ts";

/**
 * Open the job's run. A completed run is reused only when `keys` (the batch
 * keys of an indexed input) are all recorded without failed items: failures
 * are not results, so a new run retries them, taking every other item from
 * the finished run through the memo. A stream's finished run is never reused.
 */
export async function openMapRun(
  name: string,
  options: OpenJobOptions,
  keys: string[] | undefined,
): Promise<Job> {
  const job = await openJob(name, options);
  if (job.status !== "completed" || reusable(job, keys)) return job;
  await job.close();
  return await openJob(name, { ...options, newRun: true });
}

function reusable(job: Job, keys: string[] | undefined): boolean {
  if (keys === undefined) return false;
  return keys.every((key) => {
    const record = job.stepRecord(key);
    const batch = record && batchOf(record);
    return batch !== undefined && batch.failed === 0;
  });
}

/**
 * The batch's stored results, or, when it is not done or its chunk is missing
 * or corrupt, the results `compute` records (job.step reads or recomputes).
 */
export async function batchStep(
  job: Job,
  b: BatchPlan,
  compute: (
    signal: AbortSignal,
    record: (stats: object, keys: Uint8Array) => void,
  ) => Promise<ResultsChunk>,
): Promise<{ chunk: ResultsChunk; computed: boolean }> {
  let computed = false;
  const chunk = await job.step(b.key, async (ctx) => {
    const value = await compute(
      ctx.signal,
      (stats, keys) => {
        ctx.stats(stats as Record<string, unknown>);
        ctx.items({ keys });
      },
    );
    computed = true;
    return value;
  });
  if (!computed && !isResultsChunk(chunk, b.args.length)) {
    throw new SyntaxError(
      `Cannot read batch "${b.key}" of job "${job.name}": its results chunk has an unexpected shape; forget the run and rerun`,
    );
  }
  return { chunk, computed };
}

/**
 * End the run through the runtime's lifecycle: completed with `summary`, or,
 * after `error`, interrupted (InterruptedError when the job was stopping) or
 * failed (the error is rethrown). Always closes the job.
 */
export async function endMapRun(
  job: Job,
  outcome: { summary: unknown } | { error: unknown },
): Promise<void> {
  if ("summary" in outcome) {
    return await job.settle({ ok: true, summary: outcome.summary });
  }
  await job.settle({ ok: false, error: outcome.error });
  throw outcome.error;
}
