/**
 * Streamed kNN blocks on worker threads. The calling thread reads each
 * reference tile once (positioned reads) into shared memory and packs it once
 * for the WebAssembly kernel; every worker searches its share of the block's
 * query rows against it, keeping those rows' running candidates between
 * tiles; the shares' final top-k are then put back in row order. With two
 * tile buffers, the next tile is read and packed while the workers search
 * the current one. Internal to `lib/knn/`.
 *
 * A query row's candidates, bounds and exact keys depend only on that row
 * and the reference rows (the tiles are the same on every thread), never on
 * which thread holds the row or how the rows are split, so the answers are
 * the one-thread search's, bit for bit. Without Web Workers (Node), or when a
 * worker cannot run, the block is searched on the calling thread.
 *
 * @module
 */

import type { NpyMatrixFile } from "../io/npy.ts";
import type { Matrix, MatrixData } from "./matrix.ts";
import { type KernelChoice, resolveKernel } from "./kernel_scan.ts";
import { startKnnWorker, workerError } from "./kernel_threads.ts";
import { packReference, type WasmShared } from "./kernel_wasm.ts";
import type { FromWorker, ToWorker } from "./kernel_worker.ts";
import {
  forEachTile,
  openStreamedFile,
  type StreamedReference,
} from "./_ref_file.ts";
import { type PreparedMeta, StreamSearch } from "./_stream_search.ts";

/** One streamed block: the query rows' neighbours and how to read the tiles. */
export interface StreamBlockOptions {
  /** Neighbours per row. */
  k: number;
  /** Global row number of the block's first query row. */
  queryOffset: number;
  /** Skip reference row `queryOffset + i` for query row `i`. */
  excludeSelf: boolean;
  /** The distance kernel. Default: `"auto"`. */
  kernel?: KernelChoice;
  /** The reference file. */
  ref: StreamedReference;
  /** Reference rows per tile. */
  tileRows: number;
  /** Tile buffers: 2 reads the next tile while the workers search. */
  tileBuffers: number;
  /** Checked between tiles. */
  signal?: AbortSignal;
}

/** The top-k of a block's rows, rows × k. */
export interface StreamBlockResult {
  index: Int32Array;
  distance: Float32Array;
}

/** Searches streamed blocks; one per job (it keeps the tile buffers). */
export interface StreamPool {
  /** Threads searching each block. */
  readonly threads: number;
  /** The k nearest reference rows of every query row of the block. */
  searchBlock(
    meta: PreparedMeta,
    queries: Matrix,
    options: StreamBlockOptions,
  ): Promise<StreamBlockResult>;
  /** Stops the workers. */
  close(): void;
}

interface Member {
  worker: Worker;
  waiting: { resolve(msg: FromWorker): void; reject(error: Error): void }[];
}

interface TileBuffer {
  data: MatrixData;
  sqNorms: Float64Array;
  packed: WasmShared | undefined;
}

interface LoadedTile {
  r0: number;
  data: MatrixData;
  sqNorms: Float64Array;
  packed: WasmShared | undefined;
}

/** Rejects what the workers had in hand when the pool broke. */
class PoolBroken extends Error {}

/**
 * Open a pool searching streamed blocks on `threads` workers (started on the
 * first block; with 1, none).
 *
 * @param threads Worker threads.
 * @returns The pool; close it when done.
 */
export function openStreamPool(threads: number): StreamPool {
  let members: Member[] = [];
  let broken = false;
  let closed = false;
  let nextJob = 1;
  let nextStream = 1;
  let nextMemory = 1;
  const memoryIds = new WeakMap<WebAssembly.Memory, number>();
  const buffers: TileBuffer[] = [];
  // The calling thread's tile buffer and packing memory, kept between blocks.
  const tiles: { buffer?: MatrixData } = {};
  const packing = {};

  const breakPool = (): void => {
    broken = true;
    const waiting = members.flatMap((m) => m.waiting.splice(0));
    for (const m of members) m.worker.terminate();
    members = [];
    // The calling thread reads into its own buffer from now on.
    buffers.length = 0;
    for (const w of waiting) w.reject(new PoolBroken());
  };

  const start = (): void => {
    for (let i = 0; i < threads; i++) {
      const member: Member = { worker: startKnnWorker(), waiting: [] };
      member.worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const msg = event.data;
        const w = member.waiting.shift();
        if (w === undefined) return;
        if (msg.type === "done") w.resolve(msg);
        else w.reject(workerError(msg));
      };
      // A worker that cannot run must not fail the job: the block is
      // searched again on the calling thread.
      member.worker.onerror = (event: Event) => {
        event.preventDefault?.();
        breakPool();
      };
      members.push(member);
    }
  };

  const send = (
    member: Member,
    msg: ToWorker,
    transfer: Transferable[] = [],
  ): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      member.waiting.push({ resolve, reject });
      member.worker.postMessage(msg, transfer);
    });

  const local = async (
    meta: PreparedMeta,
    queries: Matrix,
    options: StreamBlockOptions,
  ): Promise<StreamBlockResult> => {
    const { ref } = options;
    const itemSize = ref.descr === "<f4" ? 4 : 8;
    const search = new StreamSearch(meta, queries, {
      k: options.k,
      queryOffset: options.queryOffset,
      excludeSelf: options.excludeSelf,
      packing,
      ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
    });
    await forEachTile(
      ref,
      options.tileRows * ref.cols * itemSize,
      (tile, r0) => {
        options.signal?.throwIfAborted();
        search.addTile(tile, r0);
      },
      tiles,
    );
    return search.finish();
  };

  const onWorkers = async (
    meta: PreparedMeta,
    queries: Matrix,
    options: StreamBlockOptions,
  ): Promise<StreamBlockResult> => {
    const { ref, tileRows, k } = options;
    const n = queries.rows;
    const d = queries.cols;
    const used = resolveKernel(options.kernel ?? "auto");
    // The workers run the kernel resolved here, whatever their environment.
    const kernel: KernelChoice = used === "wasm-relaxed" ? "wasm" : used;
    const per = Math.ceil(n / Math.min(threads, n));
    const parts = Math.ceil(n / per);
    if (members.length === 0) start();
    const active = members.slice(0, parts);
    const stream = nextStream++;
    const opened = active.map((member, i) => {
      const s = i * per;
      const part = queries.data.slice(s * d, Math.min(n, s + per) * d);
      return send(member, {
        type: "stream-open",
        job: nextJob++,
        stream,
        slot: i + 1,
        meta: {
          metric: meta.metric,
          rows: meta.rows,
          cols: meta.cols,
          mean: meta.mean,
          zeroVector: meta.zeroVector,
        },
        queries: part,
        k,
        queryOffset: options.queryOffset + s,
        excludeSelf: options.excludeSelf,
        kernel,
      }, [part.buffer as ArrayBuffer]);
    });
    const count = Math.max(1, Math.min(2, options.tileBuffers));
    const item = ref.descr === "<f4" ? 4 : 8;
    for (let b = 0; b < count; b++) {
      const have = buffers[b];
      if (
        have === undefined || have.data.length < tileRows * d ||
        have.data.BYTES_PER_ELEMENT !== item
      ) {
        const raw = new SharedArrayBuffer(tileRows * d * item);
        buffers[b] = {
          data: item === 4 ? new Float32Array(raw) : new Float64Array(raw),
          sqNorms: new Float64Array(new SharedArrayBuffer(tileRows * 8)),
          packed: have?.packed,
        };
      }
    }
    let file: NpyMatrixFile | undefined;
    const load = async (r0: number, buf: TileBuffer): Promise<LoadedTile> => {
      const r1 = Math.min(ref.rows, r0 + tileRows);
      const data = await file!.read(r0, r1, buf.data);
      const sqNorms = buf.sqNorms.subarray(0, r1 - r0);
      sqNorms.set(meta.sqNorms.subarray(r0, r1));
      let packed: WasmShared | undefined;
      if (used !== "ts") {
        packed = packReference(
          { ...meta, rows: r1 - r0, reference: data, sqNorms },
          used === "wasm-relaxed" ? "relaxed" : "simd",
          threads + 1,
          buf.packed,
        );
        if (packed !== undefined) {
          buf.packed = packed;
          if (!memoryIds.has(packed.memory)) {
            memoryIds.set(packed.memory, nextMemory++);
          }
        }
      }
      return { r0, data, sqNorms, packed };
    };
    try {
      await Promise.all(opened);
      file = await openStreamedFile(ref);
      // A tile is posted as soon as it is loaded, so a worker that finishes
      // one goes on to the next without waiting for the others; a buffer is
      // loaded again once every worker is done with the tile it held.
      const searched: Promise<unknown>[] = [];
      for (let t = 0, r0 = 0; r0 < ref.rows; t++, r0 += tileRows) {
        if (t >= count) await searched[t - count];
        const tile = await load(r0, buffers[t % count]!);
        options.signal?.throwIfAborted();
        const done = Promise.all(active.map((member) =>
          send(member, {
            type: "stream-tile",
            job: nextJob++,
            stream,
            r0: tile.r0,
            data: tile.data,
            sqNorms: tile.sqNorms,
            packed: tile.packed,
            buffer: t % count,
            memoryId: tile.packed === undefined
              ? 0
              : memoryIds.get(tile.packed.memory) ?? 0,
          })
        ));
        // Awaited later, in order; a failure is rethrown there.
        done.catch(() => {});
        searched.push(done);
      }
      await Promise.all(searched);
      const shares = await Promise.all(
        active.map((member) =>
          send(member, { type: "stream-finish", job: nextJob++, stream })
        ),
      );
      const index = new Int32Array(n * k);
      const distance = new Float32Array(n * k);
      shares.forEach((msg, i) => {
        if (msg.type !== "done") return;
        index.set(msg.index, i * per * k);
        distance.set(msg.distance, i * per * k);
      });
      return { index, distance };
    } catch (error) {
      for (const member of members) {
        member.worker.postMessage({ type: "stream-drop", stream });
      }
      throw error;
    } finally {
      await file?.close();
    }
  };

  return {
    threads,
    async searchBlock(meta, queries, options) {
      if (closed) {
        throw new RangeError("Cannot search: the streamed kNN pool is closed");
      }
      // Runtimes without Web Workers (Node) search on the calling thread.
      if (
        threads === 1 || broken || queries.rows === 0 ||
        typeof Worker !== "function"
      ) return await local(meta, queries, options);
      try {
        return await onWorkers(meta, queries, options);
      } catch (error) {
        if (!(error instanceof PoolBroken)) throw error;
        return await local(meta, queries, options);
      }
    },
    close() {
      closed = true;
      for (const m of members) m.worker.terminate();
      for (const m of members) {
        for (const w of m.waiting.splice(0)) {
          w.reject(
            new Error("Cannot search: the streamed kNN pool was closed"),
          );
        }
      }
      members = [];
    },
  };
}
