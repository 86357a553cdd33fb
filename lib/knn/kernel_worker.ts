/**
 * The worker side of {@linkcode openKnnPool} (kernel_threads.ts): rebuilds
 * prepared references over shared memory, then searches the row blocks it
 * is sent. Not imported by anything; started as a Worker.
 *
 * @module
 */

import type { MatrixData } from "./matrix.ts";
import type { Metric, PreparedReference, ZeroVectorPolicy } from "./kernel.ts";
import {
  adoptPackedReference,
  setWasmSlot,
  type WasmShared,
} from "./kernel_wasm.ts";
import type { KernelChoice } from "./kernel_scan.ts";
import { searchKnn } from "./search.ts";
import { StreamSearch } from "./_stream_search.ts";

/** A message from the pool to a worker. */
export type ToWorker =
  | {
    type: "reference";
    id: number;
    slot: number;
    metric: Metric;
    rows: number;
    cols: number;
    reference: MatrixData;
    mean: Float64Array;
    sqNorms: Float64Array;
    zeroVector: ZeroVectorPolicy;
    packed: WasmShared | undefined;
  }
  | { type: "drop"; id: number }
  | {
    // A worker's share of a streamed block: rows of the block's queries.
    type: "stream-open";
    job: number;
    stream: number;
    slot: number;
    meta: StreamMeta;
    queries: MatrixData;
    k: number;
    queryOffset: number;
    excludeSelf: boolean;
    kernel: KernelChoice;
  }
  | {
    // One reference tile, in shared memory, of the open stream.
    type: "stream-tile";
    job: number;
    stream: number;
    r0: number;
    data: MatrixData;
    sqNorms: Float64Array;
    packed: WasmShared | undefined;
    /** The tile buffer (0 or 1) and its memory's id, new when it grows. */
    buffer: number;
    memoryId: number;
  }
  | { type: "stream-finish"; job: number; stream: number }
  | { type: "stream-drop"; stream: number }
  | {
    type: "search";
    job: number;
    id: number;
    queries: MatrixData;
    cols: number;
    k: number;
    start: number;
    end: number;
    excludeSelf: boolean;
    kernel: KernelChoice;
  };

/** The prepared reference's fields a streamed search needs, without rows or norms. */
export interface StreamMeta {
  metric: Metric;
  rows: number;
  cols: number;
  mean: Float64Array;
  zeroVector: ZeroVectorPolicy;
}

/** A message from a worker to the pool. */
export type FromWorker =
  | { type: "done"; job: number; index: Int32Array; distance: Float32Array }
  | { type: "error"; job: number; name: string; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
const references = new Map<number, PreparedReference>();
const streams = new Map<number, StreamSearch>();
// The first copy of each tile buffer's memory: the kernel is instantiated
// once per memory object, and every post makes a new object.
const memories = new Map<
  number,
  { id: number; memory: WebAssembly.Memory }
>();
const NO_INDEX = new Int32Array(0);
const NO_DISTANCE = new Float32Array(0);

scope.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "reference") {
    setWasmSlot(msg.slot);
    const prepared: PreparedReference = {
      format: "cairn.knn.prepared",
      version: 1,
      metric: msg.metric,
      rows: msg.rows,
      cols: msg.cols,
      reference: msg.reference,
      mean: msg.mean,
      sqNorms: msg.sqNorms,
      zeroVector: msg.zeroVector,
    };
    if (msg.packed !== undefined) adoptPackedReference(prepared, msg.packed);
    references.set(msg.id, prepared);
    return;
  }
  if (msg.type === "drop") {
    references.delete(msg.id);
    return;
  }
  if (msg.type === "stream-drop") {
    streams.delete(msg.stream);
    return;
  }
  if (msg.type !== "search") {
    onStream(msg);
    return;
  }
  try {
    const prepared = references.get(msg.id);
    if (prepared === undefined) {
      throw new Error(`Cannot search: reference ${msg.id} was never sent`);
    }
    const rows = msg.queries.length / msg.cols;
    const result = searchKnn(
      prepared,
      { data: msg.queries, rows, cols: msg.cols },
      {
        k: msg.k,
        start: msg.start,
        end: msg.end,
        excludeSelf: msg.excludeSelf,
        kernel: msg.kernel,
      },
    );
    replyDone(msg.job, result);
  } catch (error) {
    replyError(msg.job, error);
  }
};

type StreamMessage = Extract<
  ToWorker,
  { type: "stream-open" | "stream-tile" | "stream-finish" }
>;

/** A streamed block's share: open it, search each tile, return its rows. */
function onStream(msg: StreamMessage): void {
  try {
    if (msg.type === "stream-open") {
      setWasmSlot(msg.slot);
      const { meta } = msg;
      const rows = msg.queries.length / meta.cols;
      streams.set(
        msg.stream,
        new StreamSearch(
          {
            format: "cairn.knn.prepared",
            version: 1,
            ...meta,
            sqNorms: new Float64Array(0),
          },
          { data: msg.queries, rows, cols: meta.cols },
          {
            k: msg.k,
            queryOffset: msg.queryOffset,
            excludeSelf: msg.excludeSelf,
            kernel: msg.kernel,
          },
        ),
      );
      acknowledge(msg.job);
      return;
    }
    const search = streams.get(msg.stream);
    if (search === undefined) {
      throw new Error(`Cannot search: stream ${msg.stream} was never opened`);
    }
    if (msg.type === "stream-tile") {
      let packed = msg.packed;
      if (packed !== undefined) {
        let held = memories.get(msg.buffer);
        if (held?.id !== msg.memoryId) {
          // A grown buffer: the old memory is let go.
          held = { id: msg.memoryId, memory: packed.memory };
          memories.set(msg.buffer, held);
        }
        packed = { ...packed, memory: held.memory };
      }
      search.addTile(msg.data, msg.r0, {
        sqNorms: msg.sqNorms,
        ...(packed === undefined ? {} : { packed }),
      });
      acknowledge(msg.job);
      return;
    }
    streams.delete(msg.stream);
    const result = search.finish();
    replyDone(msg.job, result);
  } catch (error) {
    replyError(msg.job, error);
  }
}

/** Send a finished block back, its arrays transferred. */
function replyDone(
  job: number,
  result: { index: Int32Array; distance: Float32Array },
): void {
  scope.postMessage(
    { type: "done", job, index: result.index, distance: result.distance },
    [
      result.index.buffer as ArrayBuffer,
      result.distance.buffer as ArrayBuffer,
    ],
  );
}

/** Send a failure back as its name and message. */
function replyError(job: number, error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  scope.postMessage({ type: "error", job, name: e.name, message: e.message });
}

/** Say a stream message is done: no arrays, nothing transferred. */
function acknowledge(job: number): void {
  scope.postMessage({
    type: "done",
    job,
    index: NO_INDEX,
    distance: NO_DISTANCE,
  });
}
