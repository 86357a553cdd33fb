/**
 * Exact kNN on every core: row blocks run on Worker threads (Deno and Bun)
 * that share the reference through `SharedArrayBuffer`s, the raw rows for
 * the exact recheck and the packed float32 copy for the WebAssembly kernel.
 *
 * Every query row's answer is exact and computed independently of the
 * others, so results are bit-identical for any thread count and block size.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import type { Matrix, MatrixData } from "./matrix.ts";
import type { PreparedReference } from "./kernel.ts";
import { checkRange, checkSelf } from "./kernel.ts";
import { type KernelChoice, resolveKernel } from "./kernel_scan.ts";
import { packReference, type WasmShared } from "./kernel_wasm.ts";
import type { FromWorker, ToWorker } from "./kernel_worker.ts";
import {
  concatKnnBlocks,
  type KnnBlock,
  type KnnOptions,
  searchKnn,
} from "./search.ts";

/** Options for {@linkcode openKnnPool}. */
export interface KnnPoolOptions {
  /**
   * Worker threads. Defaults to the available cores
   * (`os.availableParallelism()`). With 1, searches run on the calling
   * thread and no worker starts.
   */
  threads?: number;
}

/** Options for {@linkcode KnnPool.search}. */
export interface PoolSearchOptions extends KnnOptions {
  /**
   * Query rows per task handed to a worker; results do not depend on it.
   * Defaults to an even split into 4 tasks per thread, rounded up to a
   * multiple of 64; a search smaller than {@linkcode MIN_PARALLEL_WORK} then
   * runs on the calling thread. Given, the workers always run.
   */
  blockRows?: number;
  /** Aborts the search: pending tasks are dropped and the promise rejects. */
  signal?: AbortSignal;
}

/** A set of worker threads for exact kNN searches; see {@linkcode openKnnPool}. */
export interface KnnPool {
  /** Threads the pool searches with. */
  readonly threads: number;
  /**
   * Searches query rows `start..end` like `searchKnn`, split into row
   * blocks across the threads.
   */
  search(
    prepared: PreparedReference,
    queries: Matrix,
    options: PoolSearchOptions,
  ): Promise<KnnBlock>;
  /** Stops the workers; the pool cannot search afterwards. */
  close(): void;
}

/**
 * The default thread count: the cores available to this process.
 *
 * @returns At least 1.
 *
 * @example At least one thread
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultThreads } from "./kernel_threads.ts";
 *
 * assert.ok(defaultThreads() >= 1);
 * ```
 */
export function defaultThreads(): number {
  try {
    return Math.max(1, availableParallelism());
  } catch {
    return 1;
  }
}

/**
 * Multiply-adds (query rows × reference rows × columns) below which a search
 * without an explicit `blockRows` skips the workers: starting them costs more.
 *
 * @example A 100 × 1,000 × 16 search stays on the calling thread
 * ```ts
 * import assert from "node:assert/strict";
 * import { MIN_PARALLEL_WORK } from "./kernel_threads.ts";
 *
 * assert.ok(100 * 1_000 * 16 < MIN_PARALLEL_WORK);
 * ```
 */
export const MIN_PARALLEL_WORK = 20_000_000;

/**
 * The error a worker reported, rebuilt on this thread with its class
 * (RangeError and TypeError keep theirs, so callers map them to exit codes).
 *
 * @param msg The worker's error message.
 * @returns The error to reject with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerError } from "./kernel_threads.ts";
 * const e = workerError({ type: "error", job: 1, name: "RangeError", message: "k too large" });
 * assert.ok(e instanceof RangeError);
 * assert.equal(e.message, "k too large");
 * ```
 */
export function workerError(
  msg: Extract<FromWorker, { type: "error" }>,
): Error {
  const ctor = msg.name === "RangeError"
    ? RangeError
    : msg.name === "TypeError"
    ? TypeError
    : Error;
  return new ctor(msg.message);
}

/**
 * Starts one kNN worker thread (kernel_worker.ts), wherever this module
 * runs from: source, the npm build or a Bun single binary.
 *
 * @returns The worker; terminate it when done.
 *
 * @example Start and stop a worker
 * ```ts
 * import assert from "node:assert/strict";
 * import { startKnnWorker } from "./kernel_threads.ts";
 *
 * const worker = startKnnWorker();
 * assert.equal(typeof worker.postMessage, "function");
 * worker.terminate();
 * ```
 */
export function startKnnWorker(): Worker {
  // scripts/build_npm.ts rewrites this literal for the .js build. A Bun
  // single binary bundles everything into one file and embeds the worker
  // (an extra entry point of `bun build --compile`) under its own path.
  let url = new URL("./kernel_worker.ts", import.meta.url);
  if (import.meta.url.startsWith("file:///$bunfs/")) {
    url = new URL("file:///$bunfs/root/lib/knn/kernel_worker.js");
  }
  return new Worker(url.href, { type: "module" });
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

interface Task {
  start: number;
  end: number;
  resolve(block: KnnBlock): void;
  reject(error: Error): void;
  /** The same block on the calling thread, if the workers cannot run. */
  local(): KnnBlock;
}

interface Sent {
  id: number;
  packed: WasmShared | undefined;
  reference: MatrixData;
}

/**
 * Opens a pool of worker threads for exact kNN searches.
 *
 * Close it when done: live workers keep the process running.
 *
 * @param options The thread count.
 * @returns The pool.
 * @throws {RangeError} If `threads` is not a positive integer.
 *
 * @example Two threads give the same answer as one
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareReference } from "./kernel.ts";
 * import { searchKnn } from "./search.ts";
 * import { openKnnPool } from "./kernel_threads.ts";
 *
 * const m = matrixFrom(new Float32Array(400).map((_, i) => (i * 37) % 101), 4);
 * const prepared = prepareReference(m, "euclidean");
 * const pool = openKnnPool({ threads: 2 });
 * try {
 *   const many = await pool.search(prepared, m, { k: 3, blockRows: 7 });
 *   assert.deepEqual(many, searchKnn(prepared, m, { k: 3 }));
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export function openKnnPool(options: KnnPoolOptions = {}): KnnPool {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new RangeError(
      `Cannot open kNN pool: threads must be a positive integer, but threads = ${
        String(threads)
      }`,
    );
  }
  const slots: Slot[] = [];
  const queue: { task: Task; msg: ToWorker }[] = [];
  const pending = new Map<number, Task>();
  const sent = new WeakMap<PreparedReference, Sent>();
  const sharedQueries = new WeakMap<MatrixData, MatrixData>();
  let nextId = 1;
  let nextJob = 1;
  let closed = false;
  let broken = false;

  const start = (): void => {
    for (let i = 0; i < threads; i++) {
      const worker = startKnnWorker();
      const slot: Slot = { worker, busy: false };
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const msg = event.data;
        const task = pending.get(msg.job);
        pending.delete(msg.job);
        slot.busy = false;
        pump();
        if (task === undefined) return;
        if (msg.type === "done") {
          task.resolve({
            metric: "euclidean",
            start: task.start,
            rows: task.end - task.start,
            k: 0,
            index: msg.index,
            distance: msg.distance,
          });
        } else task.reject(workerError(msg));
      };
      // A worker that cannot run (say, a bundle without its entry point)
      // must not fail the search: the pool finishes on the calling thread.
      worker.onerror = (event: Event) => {
        event.preventDefault?.();
        fallBack();
      };
      slots.push(slot);
    }
  };

  const fallBack = (): void => {
    broken = true;
    for (const slot of slots) slot.worker.terminate();
    slots.length = 0;
    const tasks = [...pending.values(), ...queue.splice(0).map((q) => q.task)];
    pending.clear();
    for (const task of tasks) {
      try {
        task.resolve(task.local());
      } catch (error) {
        task.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
  };

  const pump = (): void => {
    for (const slot of slots) {
      if (slot.busy) continue;
      const next = queue.shift();
      if (next === undefined) return;
      slot.busy = true;
      const job = (next.msg as { job: number }).job;
      pending.set(job, next.task);
      slot.worker.postMessage(next.msg);
    }
  };

  const share = (data: MatrixData): MatrixData => {
    if (data.buffer instanceof SharedArrayBuffer) return data;
    const cached = sharedQueries.get(data);
    if (cached !== undefined) return cached;
    const buf = new SharedArrayBuffer(data.byteLength);
    const copy = data instanceof Float32Array
      ? new Float32Array(buf)
      : new Float64Array(buf);
    copy.set(data);
    sharedQueries.set(data, copy);
    return copy;
  };

  const sendReference = (
    prepared: PreparedReference,
    kernel: KernelChoice,
  ): Sent => {
    const used = resolveKernel(kernel);
    const variant = used === "wasm-relaxed"
      ? "relaxed"
      : used === "wasm-simd"
      ? "simd"
      : undefined;
    const packed = variant === undefined
      ? undefined
      : packReference(prepared, variant, threads + 1);
    const have = sent.get(prepared);
    if (have !== undefined && have.packed === packed) return have;
    const reference = share(prepared.reference);
    const entry: Sent = { id: nextId++, packed, reference };
    slots.forEach((slot, i) => {
      const msg: ToWorker = {
        type: "reference",
        id: entry.id,
        slot: i + 1,
        metric: prepared.metric,
        rows: prepared.rows,
        cols: prepared.cols,
        reference,
        mean: prepared.mean,
        sqNorms: prepared.sqNorms,
        zeroVector: prepared.zeroVector,
        packed,
      };
      slot.worker.postMessage(msg);
    });
    sent.set(prepared, entry);
    return entry;
  };

  return {
    threads,
    async search(prepared, queries, searchOptions) {
      if (closed) {
        throw new RangeError("Cannot search: the kNN pool is closed");
      }
      const first = searchOptions.start ?? 0;
      const last = searchOptions.end ?? queries.rows;
      const excludeSelf = searchOptions.excludeSelf ?? false;
      const kernel = searchOptions.kernel ?? "auto";
      checkRange(first, last, queries.rows);
      checkSelf(prepared, queries, excludeSelf);
      const k = searchOptions.k;
      // Runtimes without Web Workers (Node) search on the calling thread.
      const small = searchOptions.blockRows === undefined &&
        (last - first) * prepared.rows * prepared.cols < MIN_PARALLEL_WORK;
      if (
        threads === 1 || last - first === 0 || typeof Worker !== "function" ||
        broken || small
      ) {
        searchOptions.signal?.throwIfAborted();
        return searchKnn(prepared, queries, searchOptions);
      }
      // Validate k, the columns and the values once, up front, as searchKnn does.
      searchKnn(prepared, queries, { ...searchOptions, end: first });
      const rows = last - first;
      const blockRows = searchOptions.blockRows ??
        Math.ceil(rows / (4 * threads) / 64) * 64;
      if (!Number.isSafeInteger(blockRows) || blockRows < 1) {
        throw new RangeError(
          `Cannot search: blockRows must be a positive integer, but blockRows = ${
            String(blockRows)
          }`,
        );
      }
      if (slots.length === 0) start();
      const ref = sendReference(prepared, kernel);
      const data = queries.data === prepared.reference
        ? ref.reference
        : share(queries.data);
      const tasks: Promise<KnnBlock>[] = [];
      for (let s = first; s < last; s += blockRows) {
        const e = Math.min(last, s + blockRows);
        tasks.push(
          new Promise<KnnBlock>((resolve, reject) => {
            const job = nextJob++;
            queue.push({
              task: {
                start: s,
                end: e,
                resolve,
                reject,
                local: () =>
                  searchKnn(prepared, queries, {
                    k,
                    start: s,
                    end: e,
                    excludeSelf,
                    kernel,
                  }),
              },
              msg: {
                type: "search",
                job,
                id: ref.id,
                queries: data,
                cols: queries.cols,
                k,
                start: s,
                end: e,
                excludeSelf,
                kernel,
              },
            });
          }),
        );
      }
      const signal = searchOptions.signal;
      const onAbort = () => {
        const reason = signal?.reason instanceof Error
          ? signal.reason
          : new Error("Cannot search: aborted");
        for (const { task } of queue.splice(0)) task.reject(reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      pump();
      try {
        const blocks = await Promise.all(tasks);
        signal?.throwIfAborted();
        return concatKnnBlocks(
          blocks.map((b) => ({ ...b, metric: prepared.metric, k })),
        );
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    },
    close() {
      closed = true;
      for (const slot of slots) slot.worker.terminate();
      slots.length = 0;
      for (const task of pending.values()) {
        task.reject(new Error("Cannot search: the kNN pool was closed"));
      }
      pending.clear();
    },
  };
}
