/**
 * {@linkcode knnGraphJob}: an exact kNN or SNN graph as a resumable job.
 *
 * @module
 */

import { checkK, type MatrixInput } from "./_inputs.ts";
import {
  knnBlockCompute,
  loadInputs,
  planOf,
  runKnnFamily,
} from "./_harness.ts";
import type { OutputSet } from "./_outputs.ts";
import { knnGraph, snnGraph, type Symmetrize } from "./graph.ts";
import type { KnnJobBaseOptions, KnnJobInfo } from "./jobs.ts";
import type { KnnBlock } from "./search.ts";

/** Options for {@linkcode knnGraphJob}. */
export interface KnnGraphJobOptions extends KnnJobBaseOptions {
  /** Neighbours per row. Required. */
  k: number;
  /**
   * For `kind: "knn"`: `"none"` (directed, exactly n·k edges in row order),
   * `"union"` or `"mutual"` (undirected, `from < to`). Default: `"none"`.
   */
  symmetrize?: Symmetrize;
  /**
   * `"knn"`: kNN graph with edge distances (`distance.npy`). `"snn"`:
   * shared-nearest-neighbour graph (`from < to`), whose `weight.npy` holds
   * |N⁺(i) ∩ N⁺(j)| where N⁺(i) is i's k neighbours plus i. Default: `"knn"`.
   */
  kind?: "knn" | "snn";
  /** SNN only: smallest weight that makes an edge. Default: 1. */
  minShared?: number;
}

/** Result of {@linkcode knnGraphJob}. */
export interface KnnGraphJobResult extends KnnJobInfo {
  /** Number of edges. */
  edges: number;
  /** Without `out`: source rows. */
  from?: Int32Array;
  /** Without `out`: target rows. */
  to?: Int32Array;
  /** Without `out`, kind "knn": edge distances. */
  distance?: Float32Array;
  /** Without `out`, kind "snn": edge weights. */
  weight?: Int32Array;
}

/**
 * An exact kNN graph of the reference as a resumable job: one self-search
 * step per block of rows (shared through the memo with {@linkcode knnJob}
 * self-searches of the same data, metric, k and block size), then the edges.
 *
 * Outputs (1-D arrays, one entry per edge):
 * - `kind: "knn"`: `from.npy`, `to.npy` (int32) and `distance.npy`
 *   (float32). With `symmetrize: "none"` there are exactly rows·k directed
 *   edges in row order, streamed block by block; `"union"` and `"mutual"`
 *   give undirected edges with `from < to`, sorted, as `knnGraph` does.
 * - `kind: "snn"`: `from.npy`, `to.npy` and `weight.npy` (int32, the shared
 *   neighbour count, see `snnGraph`); no `distance.npy`.
 *
 * @param ref The reference matrix or its path.
 * @param options k, symmetrize, kind, metric, plan, store and job options.
 * @returns The edges (or their files) and what this call computed.
 * @throws {InterruptedError} When stopped; rerun to resume.
 * @throws {TypeError} On an unknown `symmetrize` or `kind`, or `symmetrize` with `kind: "snn"`.
 *
 * @example A directed graph has rows·k edges
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnGraphJob, matrixFrom } from "./mod.ts";
 * const ref = matrixFrom(new Float64Array([0, 1, 5, 6, 20]), 1);
 * const g = await knnGraphJob(ref, { k: 1, store: "memory:graph-example" });
 * assert.equal(g.edges, 5);
 * assert.deepEqual(Array.from(g.to!), [1, 0, 3, 2, 3]);
 * const u = await knnGraphJob(ref, { k: 1, symmetrize: "union", store: "memory:graph-example" });
 * assert.deepEqual(Array.from(u.from!), [0, 2, 3]);
 * assert.equal(u.computedBlocks, 0); // the blocks came from the directed job's memo
 * ```
 */
export async function knnGraphJob(
  ref: MatrixInput,
  options: KnnGraphJobOptions,
): Promise<KnnGraphJobResult> {
  const symmetrize = options.symmetrize ?? "none";
  const kind = options.kind ?? "knn";
  if (kind !== "knn" && kind !== "snn") {
    throw new TypeError(
      `Cannot build graph: kind "${
        String(kind)
      }" is not supported; use "knn" or "snn"`,
    );
  }
  if (!["none", "union", "mutual"].includes(symmetrize)) {
    throw new TypeError(
      `Cannot build graph: symmetrize "${
        String(symmetrize)
      }" is not supported; use "none", "union" or "mutual"`,
    );
  }
  if (kind === "snn" && symmetrize !== "none") {
    throw new TypeError(
      `Cannot build graph: symmetrize "${symmetrize}" applies to kind "knn" only; an SNN graph is already undirected`,
    );
  }
  const minShared = options.minShared ?? 1;
  if (!Number.isSafeInteger(minShared) || minShared < 1) {
    throw new RangeError(
      `Cannot build SNN graph: minShared must be a positive whole number, but minShared = ${
        String(minShared)
      }`,
    );
  }
  const inputs = await loadInputs(ref, undefined, {
    ...options,
    kind: "knn-graph",
  });
  const k = options.k;
  checkK(k, inputs.refRows, inputs.excludeSelf);
  const plan = planOf(inputs, "knn-graph", k, options);
  const config = kind === "snn"
    ? { k, kind, minShared }
    : { k, kind, symmetrize };
  return await runKnnFamily(
    "knn-graph",
    inputs,
    plan,
    config,
    options,
    async (run) => {
      const compute = knnBlockCompute(
        k,
        inputs.excludeSelf,
        run.queries!,
        run.pool,
      );
      const memo = () => ({ op: "knn", k });
      const third = kind === "snn" ? "weight.npy" : "distance.npy";
      const names = ["from.npy", "to.npy", third];
      await run.checkStored(["block"]);
      const previous = await run.previousOutputs(names);
      const { expected, only } = previous;
      // Recomputes only the blocks a check above found damaged.
      await run.runBlocks("block", compute, memo);
      const unchanged = await run.finishUnchanged(
        previous,
        (summary) => ({ edges: Number(summary.edges) }),
      );
      if (unchanged !== undefined) return unchanged;
      const n = plan.queryRows;
      let edges: number;
      let written: { info: KnnJobInfo; set: OutputSet };
      if (kind === "knn" && symmetrize === "none") {
        edges = n * k;
        written = await run.writeOutputs(
          [
            { name: "from.npy", descr: "<i4", shape: [edges] },
            { name: "to.npy", descr: "<i4", shape: [edges] },
            { name: "distance.npy", descr: "<f4", shape: [edges] },
          ],
          async (set) => {
            for (const range of run.ranges) {
              const b = await run.readBlock("block", range, compute, memo);
              const from = new Int32Array(b.index.length);
              for (let e = 0; e < from.length; e++) {
                from[e] = range[0] + Math.floor(e / k);
              }
              await set.sink("from.npy").append(from);
              await set.sink("to.npy").append(b.index);
              await set.sink("distance.npy").append(b.distance);
            }
          },
          only,
          expected,
        );
      } else {
        const whole: KnnBlock = {
          metric: inputs.metric,
          start: 0,
          rows: n,
          k,
          index: new Int32Array(n * k),
          distance: new Float32Array(n * k),
        };
        for (const range of run.ranges) {
          const b = await run.readBlock("block", range, compute, memo);
          whole.index.set(b.index, range[0] * k);
          whole.distance.set(b.distance, range[0] * k);
        }
        const graph = kind === "snn"
          ? snnGraph(whole, { minShared })
          : knnGraph(whole, { symmetrize });
        edges = graph.from.length;
        written = await run.writeOutputs(
          [
            { name: "from.npy", descr: "<i4", shape: [edges] },
            { name: "to.npy", descr: "<i4", shape: [edges] },
            {
              name: third,
              descr: kind === "snn" ? "<i4" : "<f4",
              shape: [edges],
            },
          ],
          async (set) => {
            await set.sink("from.npy").append(graph.from);
            await set.sink("to.npy").append(graph.to);
            await set.sink(third).append(
              "weight" in graph ? graph.weight : graph.distance,
            );
          },
          only,
          expected,
        );
      }
      const { info, set } = written;
      await run.complete({
        rows: n,
        k,
        metric: inputs.metric,
        kind,
        ...(kind === "snn" ? { minShared } : { symmetrize }),
        edges,
        blocks: plan.blocks,
        outputs: info.outputs,
      });
      const result: KnnGraphJobResult = { ...info, edges };
      if (options.out === undefined) {
        result.from = set.sink("from.npy").array as Int32Array;
        result.to = set.sink("to.npy").array as Int32Array;
        if (kind === "snn") {
          result.weight = set.sink("weight.npy").array as Int32Array;
        } else {
          result.distance = set.sink("distance.npy").array as Float32Array;
        }
      }
      return result;
    },
  );
}
