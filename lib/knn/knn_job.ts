/**
 * {@linkcode knnJob}: exact k nearest neighbours as a resumable job.
 *
 * @module
 */

import { checkK, type MatrixInput } from "./_inputs.ts";
import {
  knnBlockCompute,
  loadInputs,
  planOf,
  runKnnFamily,
  streamedBlockCompute,
} from "./_harness.ts";
import type { KnnJobBaseOptions, KnnJobInfo } from "./jobs.ts";

/** Options for {@linkcode knnJob}. */
export interface KnnJobOptions extends KnnJobBaseOptions {
  /** Query matrix or file. Default: none (self-search of the reference). */
  query?: MatrixInput;
  /** Neighbours per query row, 1 to the usable reference rows. Required. */
  k: number;
}

/** Result of {@linkcode knnJob}. */
export interface KnnJobResult extends KnnJobInfo {
  /** Query rows. */
  rows: number;
  /** Neighbours per row. */
  k: number;
  /** Without `out`: neighbour indices, rows × k, nearest first. */
  index?: Int32Array;
  /** Without `out`: distances (inner products for `ip`), rows × k. */
  distance?: Float32Array;
}

/**
 * Exact k nearest neighbours as a resumable job, one step per block of query
 * rows. Writes `index.npy` (rows × k, int32, 0-based, nearest first, ties to
 * the lower index) and `distance.npy` (rows × k, float32; inner products for
 * `ip`) to `out`, or returns the arrays when `out` is absent.
 *
 * Bad input fails before the store is touched: non-finite values (naming the
 * row), a dimension mismatch, k out of 1..usable rows, an empty matrix, an
 * unsupported file, cosine zero vectors (unless `zeroVector: "one"`), a
 * missing file, or an output directory that is a file.
 *
 * @param ref The reference matrix or its `.npy`/`.fvecs` path.
 * @param options k, query, metric, plan, store and job options.
 * @returns The outputs and what this call computed.
 * @throws {InterruptedError} When stopped by `signal` or SIGINT/SIGTERM; rerun to resume.
 * @throws {ConfigChangedError} When `job` names an unfinished run with another config (pass `newRun`).
 *
 * @example Self-search, then a rerun that computes nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnJob, matrixFrom } from "./mod.ts";
 * const ref = matrixFrom(new Float32Array([0, 0, 1, 0, 5, 5, 6, 5]), 2);
 * const options = { k: 1, store: "memory:knn-job-example", blockRows: 2 };
 * const first = await knnJob(ref, options);
 * assert.deepEqual(Array.from(first.index!), [1, 0, 3, 2]);
 * assert.equal(first.computedBlocks, 2);
 * const again = await knnJob(ref, options);
 * assert.ok(again.alreadyCompleted && again.computedBlocks === 0);
 * assert.deepEqual(again.index, first.index);
 * ```
 */
export async function knnJob(
  ref: MatrixInput,
  options: KnnJobOptions,
): Promise<KnnJobResult> {
  const inputs = await loadInputs(ref, options.query, {
    ...options,
    kind: "knn",
  });
  const k = options.k;
  checkK(k, inputs.refRows, inputs.excludeSelf);
  const plan = planOf(inputs, "knn", k, options);
  const memo = () => ({ op: "knn", k });
  const queries = (inputs.query ?? inputs.ref)?.matrix;
  return await runKnnFamily(
    "knn",
    inputs,
    plan,
    { k },
    options,
    async (run) => {
      const compute = inputs.refFile === undefined
        ? knnBlockCompute(k, inputs.excludeSelf, run.queries!, run.pool)
        : streamedBlockCompute(k, inputs, plan, run.streamPool);
      if (
        inputs.refFile !== undefined && (options.threads ?? 1) > plan.threads
      ) {
        run.warn(
          `The reference of job "${run.job.name}" is streamed from its file (it does not fit memoryBudgetBytes = ${options.memoryBudgetBytes}), and the budget leaves no room for the state of more threads, so it runs on ${plan.threads}: threads = ${options.threads} is not used; raise memoryBudgetBytes (planKnnJob shows the threads a budget gives)`,
        );
      }
      // The outputs take the blocks computed now without reading them back.
      run.keepFresh = true;
      const names = ["index.npy", "distance.npy"];
      await run.checkStored(["block"]);
      const previous = await run.previousOutputs(names);
      const { expected, only } = previous;
      // Recomputes only the blocks a check above found damaged.
      await run.runBlocks("block", compute, memo);
      const unchanged = await run.finishUnchanged(
        previous,
        () => ({ rows: plan.queryRows, k }),
      );
      if (unchanged !== undefined) return unchanged;
      const n = plan.queryRows;
      const { info, set } = await run.writeOutputs(
        [
          { name: "index.npy", descr: "<i4", shape: [n, k] },
          { name: "distance.npy", descr: "<f4", shape: [n, k] },
        ],
        async (set) => {
          for (const range of run.ranges) {
            const b = await run.readBlock("block", range, compute, memo);
            await set.sink("index.npy").append(b.index);
            await set.sink("distance.npy").append(b.distance);
          }
        },
        only,
        expected,
      );
      await run.complete({
        rows: n,
        k,
        metric: inputs.metric,
        excludeSelf: inputs.excludeSelf,
        blocks: plan.blocks,
        outputs: info.outputs,
      });
      const result: KnnJobResult = { ...info, rows: n, k };
      if (options.out === undefined) {
        result.index = set.sink("index.npy").array as Int32Array;
        result.distance = set.sink("distance.npy").array as Float32Array;
      }
      return result;
    },
    {
      prefix: "block",
      compute: queries === undefined
        ? streamedBlockCompute(k, inputs, plan)
        : knnBlockCompute(k, inputs.excludeSelf, queries),
      memo,
    },
  );
}
