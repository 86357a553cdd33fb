// The engine behind the map family: content-keyed batches, one step each, an
// ordered window of batches in flight, per-item retries and memo hits. This
// file only orchestrates; each part lives in its own module:
// _settings (options, identity), _plan (batching), _memo_lookup, _lanes and
// _batch (execution with retry), _assemble (results), _window, _progress,
// and _run (the only contact with the job runtime).
import { fingerprint } from "../../store/cbor.ts";
import type { JobEvent } from "../events.ts";
import type { OpenJobOptions } from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { batchRunner, emptySummary, type MapSummary } from "./_assemble.ts";
import { batchOf } from "./_batch_record.ts";
import type { BatchOut } from "./_batch.ts";
import { createBatchEnv } from "./_env.ts";
import { batchKeys, createPlanner } from "./_plan.ts";
import { createWorkerPool, type WorkerPool } from "./_pool.ts";
import { progressLines } from "./_progress.ts";
import { endMapRun, openMapRun } from "./_run.ts";
import {
  inputHashOf,
  jobIdentity,
  type MapOp,
  type MapSource,
  memoNamespace,
  resolveSettings,
} from "./_settings.ts";
import { orderedWindow } from "./_window.ts";
import type { MapOptions } from "./options.ts";

export type { BatchOut } from "./_batch.ts";
export type { MapSummary } from "./_assemble.ts";
export {
  inputHashOf,
  jobIdentity,
  type MapOp,
  type MapSource,
  resolveSettings,
} from "./_settings.ts";

/** A request to the engine. */
export interface MapRequest {
  op: MapOp;
  source: MapSource;
  fn: (...args: unknown[]) => unknown;
  options: MapOptions;
  /** Whether results are kept (false for `walk`). */
  keepResults: boolean;
  /** Done batches read ahead of the consumer, beyond the computing window. */
  readAhead: number;
  /** Whether batches are planned in input order (`mapIter`); else pending batches go first. */
  ordered: boolean;
}

async function startPool(
  options: MapOptions,
  fn: (...args: unknown[]) => unknown,
): Promise<WorkerPool | undefined> {
  if (options.workers === undefined) return undefined;
  const pool = createWorkerPool(options.workers, fn.toString());
  await pool.ready.catch(async (error) => {
    await pool.close();
    throw error;
  });
  return pool;
}

/** Run a map call and yield each batch's results in input order; returns the summary. */
export async function* runMap(
  request: MapRequest,
): AsyncGenerator<BatchOut, MapSummary> {
  const { op, source, fn, options } = request;
  const s = await resolveSettings(fn, options);
  const summary = emptySummary();
  if (source.kind === "indexed" && source.length === 0) return summary;
  const total = source.kind === "indexed" ? source.length : undefined;
  const { input, hashes } = await inputHashOf(source, s.batchSize);
  const identity = await jobIdentity(op, s, input, total ?? null);
  const store = await resolveStore(options.store);
  const emit = (event: JobEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken listener must not break the call.
    }
  };
  const keys = hashes && batchKeys(hashes);
  const namespace = memoNamespace(op, s);
  const openOptions: OpenJobOptions = {
    store,
    kind: "map",
    config: identity.config,
    version: s.version,
    code: fn,
    memo: namespace,
    onEvent: emit,
    ...(keys === undefined ? {} : { total: keys.length }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.newRun ? { newRun: true } : {}),
  };
  const pool = await startPool(options, fn);
  const job = await openMapRun(options.job ?? identity.name, openOptions, keys)
    .catch(async (error) => {
      await pool?.close();
      throw error;
    });
  const isDone = (key: string) => {
    const record = job.stepRecord(key);
    return record !== undefined && batchOf(record) !== undefined;
  };
  const lines = progressLines(options.progress, total);
  // A stream's done batches are full ones: a finished stream starts a new run.
  if (job.status !== "completed") {
    lines.resuming(
      keys === undefined
        ? job.doneCount * s.batchSize
        : keys.filter(isDone).reduce(
          (n, k) => n + ((job.stepRecord(k)!.stats?.items as number) ?? 0),
          0,
        ),
    );
  }
  const concurrency = Math.max(s.concurrency, pool?.threads ?? 0);
  const env = createBatchEnv({
    settings: s,
    options,
    fn,
    pool,
    concurrency,
    keepResults: request.keepResults,
    store,
    namespace,
    codeHash: await fingerprint(fn.toString()),
    job: { name: job.name, run: job.run },
    warn: (message) => emit({ type: "warning", job: job.name, message }),
  });
  const state = { exhausted: false };
  const batches = orderedWindow({
    next: createPlanner(
      source,
      s.batchSize,
      hashes,
      request.ordered ? undefined : (key) => !isDone(key),
    ),
    isDone,
    run: batchRunner(job, env, summary),
    concurrency,
    readAhead: request.readAhead,
  }, state);
  let ended = false;
  try {
    for await (const out of batches) {
      summary.batches++;
      summary.items += out.count;
      emit({
        type: "progress",
        job: job.name,
        done: summary.items,
        ...(total === undefined ? {} : { total }),
        unit: "items",
      });
      lines.batch(out.start, out.count, summary.items);
      yield out;
    }
    ended = true;
    await endMapRun(job, { summary });
    return summary;
  } catch (error) {
    if (ended) throw error;
    ended = true;
    return await endMapRun(job, { error }) as never;
  } finally {
    // A consumer that stopped early leaves the run resumable.
    if (!ended) await job.close();
    await pool?.close();
    if (source.kind === "stream" && !state.exhausted) {
      await Promise.resolve(source.iterator.return?.()).catch(() => {});
    }
  }
}
