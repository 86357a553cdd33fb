// The engine behind the map family: content-keyed batches, one step each, an
// ordered window of batches in flight, per-item retries and per-item memo hits.
import { setImmediate } from "node:timers";
import { encodeValue, fingerprint } from "../../store/cbor.ts";
import {
  CorruptChunkError,
  MissingChunkError,
} from "../../store/chunk_store.ts";
import type { Store } from "../../store/store.ts";
import type { JobEvent } from "../events.ts";
import {
  InterruptedError,
  type Job,
  openJob,
  type OpenJobOptions,
} from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { readValueChunks } from "../output.ts";
import { retry } from "../retry.ts";
import {
  batchOf,
  buildItemIndex,
  isResultsChunk,
  type ItemIndex,
  POS_BITS,
  type ResultsChunk,
  unpackSlot,
} from "./_item_index.ts";
import {
  blake3Ready,
  encodeBatch,
  HASH_BYTES,
  hashBytes,
  itemKeys,
  KEY_BYTES,
  lookupKey,
  toHex,
} from "./_keys.ts";
import { createWorkerPool, type WorkerPool } from "./_pool.ts";
import { MapItemError, type MapOptions } from "./options.ts";

/** Which member of the family is running; part of the job name and memo namespace. */
export type MapOp = "map" | "map2" | "pmap" | "imap" | "walk";

/** Where the items come from: random access (arrays) or a one-pass iterator. */
export type MapSource =
  | { kind: "indexed"; length: number; at: (i: number) => unknown[] }
  | {
    kind: "stream";
    iterator: AsyncIterator<unknown> | Iterator<unknown>;
    args: (item: unknown) => unknown[];
  };

/** A batch of results in input order. */
export interface BatchOut {
  start: number;
  /** Number of items in the batch. */
  count: number;
  /** The results (empty when results are not kept, as for `walk`). */
  values: unknown[];
}

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
function emptySummary(): MapSummary {
  return {
    items: 0,
    batches: 0,
    computed: 0,
    memoHits: 0,
    failed: 0,
    resumedBatches: 0,
  };
}

interface Settings {
  batchSize: number;
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  onError: "stop" | "skip";
  version: string;
  name: string;
  memo: boolean;
}

interface BatchPlan {
  index: number;
  start: number;
  args: unknown[][];
  hash: Uint8Array;
  key: string;
  /** The batch's encoding, when it was made while planning (streams). */
  encoded?: Uint8Array;
}

const MAX_BATCH = 2 ** POS_BITS;
/**
 * How often CPU-bound items yield to the event loop (ms). Each yield lets one
 * pending I/O completion through, and a batch write is a chain of about a dozen
 * fs operations, so yield often while a write is in flight and rarely otherwise.
 */
const TICK_WRITING_MS = 0.25;
const TICK_IDLE_MS = 2;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkInteger(
  what: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot map: ${what} must be an integer from ${min}${
        max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`
      }, got ${String(value)}`,
    );
  }
  return value;
}

/** Validate options and fill in defaults. */
export async function resolveSettings(
  fn: unknown,
  options: MapOptions,
): Promise<Settings> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot map: the function argument is a ${typeof fn}, not a function`,
    );
  }
  const onError = options.onError ?? "stop";
  if (onError !== "stop" && onError !== "skip") {
    throw new TypeError(
      `Cannot map: onError must be "stop" or "skip", got "${String(onError)}"`,
    );
  }
  const version = options.version ?? "1";
  if (typeof version !== "string" || version === "") {
    throw new TypeError(`Cannot map: version must be a non-empty string`);
  }
  if (
    options.name !== undefined &&
    (typeof options.name !== "string" || options.name === "")
  ) {
    throw new TypeError(`Cannot map: name must be a non-empty string`);
  }
  const retryDelayMs = options.retryDelayMs ?? 1000;
  if (!(Number.isFinite(retryDelayMs) && retryDelayMs >= 0)) {
    throw new RangeError(
      `Cannot map: retryDelayMs must be a finite number of at least 0, got ${
        String(retryDelayMs)
      }`,
    );
  }
  if (options.workers !== undefined) {
    const w = options.workers;
    if (
      typeof w !== "object" || w === null || typeof w.export !== "string" ||
      !(typeof w.module === "string" || w.module instanceof URL)
    ) {
      throw new TypeError(
        `Cannot map: workers must be { module: string | URL, export: string, threads?: number }`,
      );
    }
    if (w.threads !== undefined) checkInteger("workers.threads", w.threads, 1);
  }
  return {
    batchSize: checkInteger(
      "batchSize",
      options.batchSize ?? 100,
      1,
      MAX_BATCH,
    ),
    concurrency: checkInteger("concurrency", options.concurrency ?? 1, 1),
    retries: checkInteger("retries", options.retries ?? 3, 0),
    retryDelayMs,
    onError,
    version,
    name: options.name ??
      `fn-${(await fingerprint(fn.toString())).slice(0, 12)}`,
    memo: options.memo ?? true,
  };
}

/** The memo namespace of a function identity. */
export function memoNamespace(op: MapOp, s: Settings): string {
  return `${op}:${s.name}@${s.version}`;
}

/** Content hashes of every batch of an indexed source, concatenated. */
function indexedBatchHashes(
  source: { length: number; at: (i: number) => unknown[] },
  batchSize: number,
): Uint8Array {
  const count = Math.ceil(source.length / batchSize);
  const hashes = new Uint8Array(count * HASH_BYTES);
  for (let b = 0; b < count; b++) {
    const start = b * batchSize;
    const end = Math.min(source.length, start + batchSize);
    const args: unknown[][] = [];
    for (let i = start; i < end; i++) args.push(source.at(i));
    hashes.set(hashBytes(encodeBatch(args, start)), b * HASH_BYTES);
  }
  return hashes;
}

/** The derived job name and config of a call. */
export async function jobIdentity(
  op: MapOp,
  s: Settings,
  input: string,
  items: number | null,
): Promise<{ name: string; config: Record<string, unknown> }> {
  const config = {
    op,
    name: s.name,
    batchSize: s.batchSize,
    onError: s.onError,
    items,
    input,
  };
  const hash = await fingerprint({ ...config, version: s.version });
  return { name: `${op}-${hash.slice(0, 16)}`, config };
}

/** Input hash of an indexed source (covers every item), or "stream". */
export async function inputHashOf(
  source: MapSource,
  batchSize: number,
): Promise<{ input: string; hashes?: Uint8Array }> {
  await blake3Ready();
  if (source.kind === "stream") return { input: "stream" };
  const hashes = indexedBatchHashes(source, batchSize);
  return { input: toHex(hashBytes(hashes)), hashes };
}

function batchKeyOf(index: number, hash: Uint8Array): string {
  return `b${String(index).padStart(6, "0")}-${toHex(hash, 8)}`;
}

/**
 * Runs queued tasks in FIFO order on at most `size` lanes. Each lane pulls
 * the next task when its current one ends, so a task costs no promise of
 * its own while it waits. Tasks must not reject.
 */
function createLanes(size: number): (task: () => Promise<void>) => void {
  const queue: (() => Promise<void>)[] = [];
  let head = 0;
  let lanes = 0;
  const lane = async () => {
    try {
      while (head < queue.length) {
        const task = queue[head]!;
        queue[head++] = undefined as never;
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        await task();
      }
    } finally {
      lanes--;
    }
  };
  return (task) => {
    queue.push(task);
    if (lanes < size) {
      lanes++;
      void lane();
    }
  };
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
  /**
   * Whether batches must come out in input order (`mapIter`). When false and
   * the source is an array, batches still to compute go first, so a resumed
   * call reaches new work without reading every done batch before it.
   */
  ordered: boolean;
}

/**
 * Run a map call batch by batch and yield each batch's results in input
 * order. Returns the summary when the source is exhausted.
 */
export async function* runMap(
  request: MapRequest,
): AsyncGenerator<BatchOut, MapSummary> {
  const { op, source, fn, options } = request;
  const s = await resolveSettings(fn, options);
  if (source.kind === "indexed" && source.length === 0) return emptySummary();
  const { input, hashes } = await inputHashOf(source, s.batchSize);
  const identity = await jobIdentity(
    op,
    s,
    input,
    source.kind === "indexed" ? source.length : null,
  );
  const jobName = options.job ?? identity.name;
  const namespace = memoNamespace(op, s);
  const codeHash = await fingerprint(fn.toString());
  const store: Store = await resolveStore(options.store);
  const emit = (event: JobEvent) => {
    try {
      options.progress?.(event);
    } catch {
      // A broken listener must not break the call.
    }
  };
  const batchCount = source.kind === "indexed"
    ? Math.ceil(source.length / s.batchSize)
    : undefined;
  const openOptions: OpenJobOptions = {
    store,
    kind: "map",
    config: identity.config,
    version: s.version,
    code: fn,
    memo: namespace,
    onEvent: emit,
    ...(batchCount === undefined ? {} : { total: batchCount }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.newRun ? { newRun: true } : {}),
  };

  let pool: WorkerPool | undefined;
  if (options.workers !== undefined) {
    pool = createWorkerPool(options.workers, fn.toString());
    try {
      await pool.ready;
    } catch (error) {
      await pool.close();
      throw error;
    }
  }
  let job: Job;
  try {
    job = await openJob(jobName, openOptions);
    if (job.status === "completed" && !(await completeRunIsIntact(job))) {
      // A finished run cannot take new steps: start over, reusing what survives via memo.
      await job.close();
      job = await openJob(jobName, { ...openOptions, newRun: true });
    }
  } catch (error) {
    await pool?.close();
    throw error;
  }

  async function completeRunIsIntact(j: Job): Promise<boolean> {
    if (hashes === undefined) return false;
    const count = hashes.length / HASH_BYTES;
    for (let at = 0; at < count; at += 32) {
      const checks: Promise<boolean>[] = [];
      for (let b = at; b < Math.min(count, at + 32); b++) {
        const key = batchKeyOf(b, hashes.subarray(b * HASH_BYTES));
        const record = j.stepRecord(key);
        const chunks = record && batchOf(record);
        if (chunks === undefined) return false;
        checks.push(
          Promise.all(chunks.results.map((c) => store.chunks.has(c.hash)))
            .then((has) => has.every(Boolean)),
        );
      }
      if (!(await Promise.all(checks)).every(Boolean)) return false;
    }
    return true;
  }

  const concurrency = pool === undefined
    ? s.concurrency
    : Math.max(s.concurrency, pool.threads);
  const schedule = createLanes(concurrency);
  const retryOptions = {
    retries: s.retries,
    initialDelayMs: s.retryDelayMs,
    ...(options.retryOn === undefined ? {} : { retryOn: options.retryOn }),
  };
  const call = pool === undefined
    ? (args: unknown[]) => fn(...args)
    : (args: unknown[]) => pool!.call(args);
  const summary = emptySummary();
  let lastTick = performance.now();
  /** Batches whose items are done and whose output is being written. */
  let writing = 0;
  let index: Promise<ItemIndex> | undefined;
  const resultCache = new Map<number, Promise<ResultsChunk | undefined>>();
  const warnedRuns = new Set<string>();

  const toValues = (chunk: ResultsChunk, start: number): unknown[] => {
    const values = request.keepResults ? chunk.results.slice() : [];
    for (const [pos, message] of chunk.errors) {
      const error = new MapItemError(start + pos, message, 0, job.name);
      if (request.keepResults) values[pos] = error;
    }
    return values;
  };

  /** Results of an indexed batch, or undefined when unreadable (its items are then recomputed). */
  const indexedResults = (
    idx: ItemIndex,
    batch: number,
  ): Promise<ResultsChunk | undefined> => {
    let cached = resultCache.get(batch);
    if (cached === undefined) {
      cached = readValueChunks<unknown>(store.chunks, idx.batches[batch]!)
        .then((v) => isResultsChunk(v) ? v : undefined, () => undefined);
      if (resultCache.size >= 8) {
        resultCache.delete(resultCache.keys().next().value!);
      }
      resultCache.set(batch, cached);
    }
    return cached;
  };

  const computeBatch = async (b: BatchPlan): Promise<BatchOut> => {
    let out: BatchOut | undefined;
    await job.step(b.key, async (ctx): Promise<ResultsChunk> => {
      const started = performance.now();
      const n = b.args.length;
      const keys = itemKeys(b.encoded ?? encodeBatch(b.args, b.start), n);
      const values: unknown[] = new Array(n);
      const have = new Uint8Array(n);
      let memoHits = 0;
      if (s.memo) {
        index ??= buildItemIndex(store, namespace, {
          job: job.name,
          run: job.run,
        });
        const idx = await index;
        if (idx.slots.size > 0) {
          const byBatch = new Map<number, [number, number][]>();
          for (let j = 0; j < n; j++) {
            const slot = idx.slots.get(lookupKey(keys, j));
            if (slot === undefined) continue;
            const { batch, pos } = unpackSlot(slot);
            let list = byBatch.get(batch);
            if (list === undefined) byBatch.set(batch, list = []);
            list.push([j, pos]);
          }
          for (const [batch, pairs] of byBatch) {
            const chunk = await indexedResults(idx, batch);
            if (chunk === undefined) continue;
            const src = idx.batchSource[batch]!;
            for (const [j, pos] of pairs) {
              if (pos >= chunk.results.length) continue;
              values[j] = chunk.results[pos];
              have[j] = 1;
              memoHits++;
            }
            const runId = `${src.job}/${src.run}`;
            if (
              src.codeHash !== undefined && src.codeHash !== codeHash &&
              !warnedRuns.has(runId)
            ) {
              warnedRuns.add(runId);
              emit({
                type: "warning",
                job: job.name,
                message:
                  `The code of map function "${s.name}" changed since run "${src.run}" of job "${src.job}" but version "${s.version}" did not; its stored results are reused. Change the version to recompute`,
              });
            }
          }
        }
      }
      const errors: [number, string][] = [];
      const attemptsOf = new Map<number, number>();
      let stopped = false;
      let interrupted = false;
      let computed = 0;
      const runItem = async (j: number) => {
        if (stopped || interrupted) return;
        if (ctx.signal.aborted) {
          interrupted = true;
          return;
        }
        const args = b.args[j]!;
        let attempts = 1;
        computed++;
        try {
          try {
            values[j] = await call(args);
          } catch (first) {
            // Only a failure pays for the retry machinery: attempt 1 replays it.
            values[j] = await retry(async (attempt) => {
              attempts = attempt;
              if (attempt === 1) throw first;
              return await call(args);
            }, { ...retryOptions, signal: ctx.signal });
          }
        } catch (error) {
          if (ctx.signal.aborted || error instanceof InterruptedError) {
            interrupted = true;
            return;
          }
          errors.push([j, errorMessage(error)]);
          attemptsOf.set(j, attempts);
          if (s.onError === "stop") stopped = true;
        }
        const now = performance.now();
        if (now - lastTick > (writing > 0 ? TICK_WRITING_MS : TICK_IDLE_MS)) {
          // Let I/O callbacks (earlier batches' writes) run between CPU-bound items.
          lastTick = now;
          await tick();
        }
      };
      let left = 0;
      for (let j = 0; j < n; j++) if (have[j] === 0) left++;
      if (left > 0) {
        await new Promise<void>((resolve) => {
          for (let j = 0; j < n; j++) {
            if (have[j] !== 0) continue;
            schedule(async () => {
              try {
                await runItem(j);
              } catch {
                // runItem records every failure itself; a listener error must not hang the batch.
              }
              if (--left === 0) resolve();
            });
          }
        });
      }
      if (interrupted) {
        throw ctx.signal.reason ?? new InterruptedError(job.name);
      }
      errors.sort((x, y) => x[0] - y[0]);
      if (s.onError === "stop" && errors.length > 0) {
        const [j, message] = errors[0]!;
        throw new MapItemError(
          b.start + j,
          message,
          attemptsOf.get(j) ?? 0,
          job.name,
        );
      }
      const stored = request.keepResults
        ? values.slice()
        : new Array<null>(n).fill(null);
      for (const [j] of errors) stored[j] = null;
      // Check encodability up front so an error names the item, not the batch
      // (primitives other than symbols always encode).
      try {
        if (
          stored.some((v) =>
            (typeof v === "object" && v !== null) || typeof v === "function" ||
            typeof v === "symbol"
          )
        ) encodeValue(stored);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error;
        for (let j = 0; j < n; j++) {
          try {
            encodeValue(stored[j]);
          } catch (itemError) {
            const message = `its result is not CBOR-encodable (${
              errorMessage(itemError)
            }); return plain data: objects, arrays, strings, numbers, typed arrays, Map, Date or bigint`;
            if (s.onError === "stop") {
              throw new MapItemError(b.start + j, message, 1, job.name);
            }
            errors.push([j, message]);
            attemptsOf.set(j, 1);
            stored[j] = null;
          }
        }
        errors.sort((x, y) => x[0] - y[0]);
      }
      // A failed item is never a memo hit: its key is zeroed.
      for (const [j] of errors) {
        keys.fill(0, j * KEY_BYTES, (j + 1) * KEY_BYTES);
      }
      const durationMs = Math.round(performance.now() - started);
      ctx.stats({
        start: b.start,
        items: n,
        failed: errors.length,
        memoHits,
        computed,
        durationMs,
        ...(errors.length === 0 ? {} : {
          errors: errors.slice(0, 20).map(([j, message]) => ({
            index: b.start + j,
            error: message.length > 500
              ? `${message.slice(0, 497)}...`
              : message,
          })),
        }),
        itemKeys: keys,
      });
      const outValues = request.keepResults ? values : [];
      for (const [j, message] of errors) {
        const error = new MapItemError(
          b.start + j,
          message,
          attemptsOf.get(j) ?? 0,
          job.name,
        );
        if (request.keepResults) outValues[j] = error;
        emit({
          type: "warning",
          job: job.name,
          message: `${error.message}; skipped`,
        });
      }
      summary.computed += computed;
      summary.memoHits += memoHits;
      summary.failed += errors.length;
      out = { start: b.start, count: n, values: outValues };
      writing++;
      return { v: 1, results: stored, errors };
    }).finally(() => {
      if (out !== undefined) writing--;
    });
    // The step was already done (another path recorded it): read it back.
    return out ?? await readBatch(b, false);
  };

  const readBatch = async (
    b: BatchPlan,
    fallback: boolean,
  ): Promise<BatchOut> => {
    const chunks = batchOf(job.stepRecord(b.key)!)!;
    let value: unknown;
    try {
      value = await readValueChunks<unknown>(store.chunks, chunks.results);
    } catch (error) {
      if (
        fallback &&
        (error instanceof MissingChunkError ||
          error instanceof CorruptChunkError)
      ) {
        // The step's output is gone or damaged: checkStep forgets the step
        // (deleting a corrupt copy), and it is recomputed, also in a
        // completed run (a write reopens it).
        await job.checkStep(b.key, { readData: true });
        return await computeBatch(b);
      }
      throw error;
    }
    if (!isResultsChunk(value, b.args.length)) {
      throw new SyntaxError(
        `Cannot read batch "${b.key}" of job "${job.name}": its results chunk has an unexpected shape; forget the run and rerun`,
      );
    }
    summary.resumedBatches++;
    summary.failed += value.errors.length;
    return {
      start: b.start,
      count: b.args.length,
      values: toValues(value, b.start),
    };
  };

  // The ordered window: up to `concurrency` batches computing, plus read-ahead.
  const windowSize = concurrency + Math.max(0, request.readAhead);
  const window: { promise: Promise<BatchOut> }[] = [];
  let computing = 0;
  let halted = false;
  let nextIndex = 0;
  let nextStart = 0;
  let exhausted = false;
  let order: number[] | undefined;
  let orderAt = 0;
  if (!request.ordered && hashes !== undefined) {
    const pendingFirst: number[] = [];
    const doneLater: number[] = [];
    for (let b = 0; b < hashes.length / HASH_BYTES; b++) {
      const record = job.stepRecord(
        batchKeyOf(b, hashes.subarray(b * HASH_BYTES, (b + 1) * HASH_BYTES)),
      );
      (record !== undefined && batchOf(record) !== undefined
        ? doneLater
        : pendingFirst)
        .push(b);
    }
    order = pendingFirst.concat(doneLater);
  }
  let lookahead: BatchPlan | undefined;

  const pullBatch = async (): Promise<BatchPlan | undefined> => {
    const args: unknown[][] = [];
    if (order !== undefined) {
      if (orderAt >= order.length) return undefined;
      nextIndex = order[orderAt++]!;
      nextStart = nextIndex * s.batchSize;
    }
    const start = nextStart;
    if (source.kind === "indexed") {
      const end = Math.min(source.length, start + s.batchSize);
      for (let i = start; i < end; i++) args.push(source.at(i));
    } else {
      while (args.length < s.batchSize) {
        const r = await source.iterator.next();
        if (r.done) break;
        args.push(source.args(r.value));
      }
    }
    if (args.length === 0) return undefined;
    let encoded: Uint8Array | undefined;
    let hash: Uint8Array;
    if (hashes !== undefined) {
      hash = hashes.subarray(
        nextIndex * HASH_BYTES,
        (nextIndex + 1) * HASH_BYTES,
      );
    } else {
      encoded = encodeBatch(args, start);
      hash = hashBytes(encoded);
    }
    const plan: BatchPlan = {
      index: nextIndex,
      start,
      args,
      hash,
      key: batchKeyOf(nextIndex, hash),
      ...(encoded === undefined ? {} : { encoded }),
    };
    nextIndex++;
    nextStart += args.length;
    return plan;
  };

  const fill = async () => {
    while (!halted && window.length < windowSize) {
      if (lookahead === undefined) {
        // Pull no further than a free compute slot allows, so a stream holds at most the window.
        if (exhausted || computing >= concurrency) return;
        lookahead = await pullBatch();
        if (lookahead === undefined) {
          exhausted = true;
          return;
        }
      }
      const record = job.stepRecord(lookahead.key);
      const done = record !== undefined && batchOf(record) !== undefined;
      if (!done && computing >= concurrency) return;
      const b = lookahead;
      lookahead = undefined;
      let promise: Promise<BatchOut>;
      if (done) {
        promise = readBatch(b, true);
      } else {
        computing++;
        promise = computeBatch(b).finally(() => computing--);
      }
      promise.catch(() => (halted = true));
      window.push({ promise });
    }
  };

  let finished = false;
  try {
    await fill();
    while (window.length > 0) {
      const out = await window.shift()!.promise;
      await fill();
      summary.batches++;
      summary.items += out.count;
      emit({
        type: "progress",
        job: job.name,
        done: summary.items,
        ...(source.kind === "indexed" ? { total: source.length } : {}),
        unit: "items",
      });
      yield out;
    }
    await job.complete(summary);
    finished = true;
    return summary;
  } catch (error) {
    halted = true;
    await Promise.allSettled(window.map((w) => w.promise));
    if (job.stopping) {
      await job.close();
      throw job.signal.reason instanceof InterruptedError
        ? job.signal.reason
        : new InterruptedError(job.name);
    }
    await job.fail(error);
    throw error;
  } finally {
    halted = true;
    if (!finished) await Promise.allSettled(window.map((w) => w.promise));
    await job.close();
    await pool?.close();
    if (source.kind === "stream" && !exhausted) {
      await Promise.resolve(source.iterator.return?.()).catch(() => {});
    }
  }
}
