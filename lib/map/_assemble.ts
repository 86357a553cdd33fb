// Result assembly: a batch's outputs in input order, whether computed now or
// read back, with the call's summary counts kept on the way.
import type { Job } from "../job.ts";
import type { ResultsChunk } from "./_batch_record.ts";
import {
  type BatchEnv,
  type BatchOut,
  type BatchPlan,
  computeBatch,
} from "./_batch.ts";
import { batchStep } from "./_run.ts";
import { MapItemError } from "./options.ts";

/** What a finished call did, also the run's end summary. */
export interface MapSummary {
  items: number;
  batches: number;
  computed: number;
  memoHits: number;
  failed: number;
  /** Batches read back from this run's earlier attempts. */
  resumedBatches: number;
}

/** A summary with every count at zero. */
export function emptySummary(): MapSummary {
  return {
    items: 0,
    batches: 0,
    computed: 0,
    memoHits: 0,
    failed: 0,
    resumedBatches: 0,
  };
}

/** Read-back outputs: failed slots hold their MapItemError (attempts unknown: 0). */
function readValues(
  chunk: ResultsChunk,
  start: number,
  job: string,
  keep: boolean,
): unknown[] {
  if (!keep) return [];
  const values = chunk.results.slice();
  for (const [pos, message] of chunk.errors) {
    values[pos] = new MapItemError(start + pos, message, 0, job);
  }
  return values;
}

/**
 * Runs one batch through the job: its stored results when it is done and
 * readable, else computed and recorded. `env.writing` counts batches whose
 * items are settled and whose output is being written.
 */
export function batchRunner(
  job: Job,
  env: BatchEnv,
  summary: MapSummary,
): (b: BatchPlan, attempted: () => void) => Promise<BatchOut> {
  return async (b, attempted) => {
    let out: BatchOut | undefined;
    try {
      const { chunk } = await batchStep(job, b, async (signal, record) => {
        const result = await computeBatch(env, b, signal, attempted);
        record(result.stats, result.keys);
        summary.computed += result.stats.computed;
        summary.memoHits += result.stats.memoHits;
        summary.failed += result.stats.failed;
        out = result.out;
        env.writing.count++;
        return result.chunk;
      });
      if (out !== undefined) return out;
      summary.resumedBatches++;
      summary.failed += chunk.errors.length;
      const values = readValues(chunk, b.start, job.name, env.keepResults);
      return { start: b.start, count: b.args.length, values };
    } finally {
      if (out !== undefined) env.writing.count--;
    }
  };
}
