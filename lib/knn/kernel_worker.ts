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
    scope.postMessage(
      {
        type: "done",
        job: msg.job,
        index: result.index,
        distance: result.distance,
      },
      [
        result.index.buffer as ArrayBuffer,
        result.distance.buffer as ArrayBuffer,
      ],
    );
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({
      type: "error",
      job: msg.job,
      name: e.name,
      message: e.message,
    });
  }
};
