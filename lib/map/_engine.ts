// The engine behind the map family: content-keyed batches, one step each, an
// ordered window of batches in flight, per-item retries and memo hits. This
// file only orchestrates; each part lives in its own module.
import { setImmediate } from "node:timers";
import { fingerprint } from "../../store/cbor.ts";
import type { JobEvent } from "../events.ts";
import type { OpenJobOptions } from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { batchOf, type ResultsChunk } from "./_batch_record.ts";
import { type BatchEnv, type BatchOut, computeBatch } from "./_batch.ts";
import { createLanes } from "./_lanes.ts";
import { createMemoLookup } from "./_memo_lookup.ts";
import { batchKeys, createPlanner } from "./_plan.ts";
import { createWorkerPool, type WorkerPool } from "./_pool.ts";
import { progressLines } from "./_progress.ts";
import { batchStep, endMapRun, openMapRun } from "./_run.ts";
import {
  inputHashOf,
  jobIdentity,
  type MapOp,
  type MapSource,
  memoNamespace,
  resolveSettings,
} from "./_settings.ts";
import { MapItemError, type MapOptions } from "./options.ts";

export type { BatchOut } from "./_batch.ts";
export {
  inputHashOf,
  jobIdentity,
  type MapOp,
  type MapSource,
  resolveSettings,
} from "./_settings.ts";

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

/** How long CPU-bound items run between yields to I/O (ms): short while a batch is being written. */
const TICK_WRITING_MS = 0.25;
const TICK_IDLE_MS = 2;

/** Run a map call and yield each batch's results in input order; returns the summary. */
export async function* runMap(
  request: MapRequest,
): AsyncGenerator<BatchOut, MapSummary> {
  const { op, source, fn, options } = request;
  const s = await resolveSettings(fn, options);
  const summary: MapSummary = {
    items: 0,
    batches: 0,
    computed: 0,
    memoHits: 0,
    failed: 0,
    resumedBatches: 0,
  };
  if (source.kind === "indexed" && source.length === 0) return summary;
  const total = source.kind === "indexed" ? source.length : undefined;
  const { input, hashes } = await inputHashOf(source, s.batchSize);
  const identity = await jobIdentity(op, s, input, total ?? null);
  const codeHash = await fingerprint(fn.toString());
  const store = await resolveStore(options.store);
  const emit = (event: JobEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken listener must not break the call.
    }
  };
  const keys = hashes && batchKeys(hashes);
  const openOptions: OpenJobOptions = {
    store,
    kind: "map",
    config: identity.config,
    version: s.version,
    code: fn,
    memo: memoNamespace(op, s),
    onEvent: emit,
    ...(keys === undefined ? {} : { total: keys.length }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.newRun ? { newRun: true } : {}),
  };
  let pool: WorkerPool | undefined;
  if (options.workers !== undefined) {
    pool = createWorkerPool(options.workers, fn.toString());
    await pool.ready.catch(async (error) => {
      await pool!.close();
      throw error;
    });
  }
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
  lines.resuming(
    (keys ?? []).reduce(
      (n, k) => n + (isDone(k) ? job.stepRecord(k)!.stats!.items as number : 0),
      0,
    ),
  );
  const warned = new Set<string>();
  const warn = (message: string) =>
    emit({ type: "warning", job: job.name, message });
  let writing = 0;
  let lastTick = performance.now();
  const concurrency = Math.max(s.concurrency, pool?.threads ?? 0);
  const env: BatchEnv = {
    job: job.name,
    onError: s.onError,
    keepResults: request.keepResults,
    retry: {
      retries: s.retries,
      initialDelayMs: s.retryDelayMs,
      ...(options.retryOn === undefined ? {} : { retryOn: options.retryOn }),
    },
    runItem: createLanes(concurrency),
    call: pool === undefined
      ? (args) => fn(...args)
      : (args) => pool!.call(args),
    lookup: !s.memo ? undefined : createMemoLookup(
      store,
      memoNamespace(op, s),
      { job: job.name, run: job.run },
      (src) => {
        const id = `${src.job}/${src.run}`;
        if (src.codeHash === undefined || src.codeHash === codeHash) return;
        if (warned.has(id)) return;
        warned.add(id);
        warn(
          `The code of map function "${s.name}" changed since run "${src.run}" of job "${src.job}" but version "${s.version}" did not; its stored results are reused. Change the version to recompute`,
        );
      },
    ),
    pause: () => {
      const now = performance.now();
      if (now - lastTick <= (writing > 0 ? TICK_WRITING_MS : TICK_IDLE_MS)) {
        return undefined;
      }
      lastTick = now;
      return new Promise<void>((resolve) => setImmediate(resolve));
    },
    warn,
  };

  const readValues = (chunk: ResultsChunk, start: number): unknown[] => {
    if (!request.keepResults) return [];
    const values = chunk.results.slice();
    for (const [pos, message] of chunk.errors) {
      values[pos] = new MapItemError(start + pos, message, 0, job.name);
    }
    return values;
  };
  const runBatch = async (b: Parameters<typeof computeBatch>[1]) => {
    let out: BatchOut | undefined;
    try {
      const { chunk } = await batchStep(job, b, async (signal, stats) => {
        const result = await computeBatch(env, b, signal);
        stats(result.stats);
        summary.computed += result.stats.computed;
        summary.memoHits += result.stats.memoHits;
        summary.failed += result.stats.failed;
        out = result.out;
        writing++;
        return result.chunk;
      });
      if (out !== undefined) return out;
      summary.resumedBatches++;
      summary.failed += chunk.errors.length;
      return {
        start: b.start,
        count: b.args.length,
        values: readValues(chunk, b.start),
      };
    } finally {
      if (out !== undefined) writing--;
    }
  };

  // The ordered window: up to `concurrency` batches computing, plus read-ahead.
  const next = createPlanner(
    source,
    s.batchSize,
    hashes,
    request.ordered ? undefined : (key) => !isDone(key),
  );
  const windowSize = concurrency + Math.max(0, request.readAhead);
  const window: Promise<BatchOut>[] = [];
  let computing = 0;
  let halted = false;
  let exhausted = false;
  let lookahead: Awaited<ReturnType<typeof next>>;
  const fill = async () => {
    while (!halted && window.length < windowSize) {
      // Pull no further than a free compute slot allows, so a stream holds at most the window.
      if (lookahead === undefined) {
        if (exhausted || computing >= concurrency) return;
        lookahead = await next();
        if (lookahead === undefined) return void (exhausted = true);
      }
      const done = isDone(lookahead.key);
      if (!done && computing >= concurrency) return;
      const promise = done
        ? runBatch(lookahead)
        : (computing++, runBatch(lookahead).finally(() => computing--));
      lookahead = undefined;
      promise.catch(() => (halted = true));
      window.push(promise);
    }
  };
  let ended = false;
  try {
    await fill();
    while (window.length > 0) {
      const out = await window.shift()!;
      await fill();
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
    halted = true;
    await Promise.allSettled(window);
    return await endMapRun(job, { error }) as never;
  } finally {
    halted = true;
    await Promise.allSettled(window);
    // A consumer that stopped early leaves the run resumable.
    if (!ended) await job.close();
    await pool?.close();
    if (source.kind === "stream" && !exhausted) {
      await Promise.resolve(source.iterator.return?.()).catch(() => {});
    }
  }
}
