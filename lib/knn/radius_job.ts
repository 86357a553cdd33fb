/**
 * {@linkcode radiusJob}: exact fixed-radius search as a resumable two-phase job.
 *
 * @module
 */

import type { MatrixInput } from "./_inputs.ts";
import {
  type BlockCompute,
  loadInputs,
  planOf,
  runKnnFamily,
  type StoredKnnBlock,
  sum,
} from "./_harness.ts";
import type { OutputSpec } from "./_outputs.ts";
import type { KnnJobBaseOptions, KnnJobInfo } from "./jobs.ts";
import {
  checkRadius,
  collectWithinRadius,
  countWithinRadius,
} from "./radius.ts";

/** Options for {@linkcode radiusJob}. */
export interface RadiusJobOptions extends KnnJobBaseOptions {
  /** Query matrix or file. Default: none (self-search). */
  query?: MatrixInput;
  /**
   * Radius, inclusive, in the metric's units (squared for `sqeuclidean`; a
   * minimum inner product for `ip`, where any finite value is allowed).
   * Required.
   */
  radius: number;
  /** Only count matches per query row (`counts.npy`). Default: false. */
  countOnly?: boolean;
}

/** Result of {@linkcode radiusJob}. */
export interface RadiusJobResult extends KnnJobInfo {
  /** Query rows. */
  rows: number;
  /** Matches over all query rows. */
  totalMatches: number;
  /** Without `out`: matches per query row. */
  counts?: Int32Array;
  /** Without `out` and not count-only: CSR offsets, rows + 1. */
  offset?: BigInt64Array;
  /** Without `out` and not count-only: matching reference rows. */
  index?: Int32Array;
  /** Without `out` and not count-only: matching distances. */
  distance?: Float32Array;
}

/**
 * Exact fixed-radius search as a resumable two-phase job: a count phase
 * (`count/S-E` steps, matches per query row), then a collect phase
 * (`collect/S-E` steps). Outputs are CSR: `offset.npy` (rows + 1, int64;
 * query i owns `offset[i]` up to `offset[i+1]`), `index.npy` (int32) and
 * `distance.npy` (float32), nearest first within a row. With `countOnly`,
 * only the count phase runs and `counts.npy` (rows, int32) is written. The
 * completed run's summary records `totalMatches`.
 *
 * @param ref The reference matrix or its path.
 * @param options Radius, query, countOnly, metric, plan, store and job options.
 * @returns The outputs and what this call computed.
 * @throws {RangeError} On a negative or non-finite radius (any finite radius for `ip`).
 * @throws {InterruptedError} When stopped; rerun to resume.
 *
 * @example Count, then collect, within radius 1
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom, radiusJob } from "./mod.ts";
 * const ref = matrixFrom(new Float64Array([0, 1, 2, 10]), 1);
 * const r = await radiusJob(ref, { radius: 1, excludeSelf: false, store: "memory:radius-example" });
 * assert.equal(r.totalMatches, 8);
 * assert.deepEqual(Array.from(r.offset!), [0n, 2n, 5n, 7n, 8n]);
 * assert.deepEqual(Array.from(r.index!), [0, 1, 1, 0, 2, 2, 1, 3]);
 * ```
 */
export async function radiusJob(
  ref: MatrixInput,
  options: RadiusJobOptions,
): Promise<RadiusJobResult> {
  const radius = options.radius;
  checkRadius(
    radius,
    options.metric ?? "euclidean",
    "pass a non-negative radius",
  );
  const countOnly = options.countOnly ?? false;
  const inputs = await loadInputs(ref, options.query, {
    ...options,
    kind: "radius",
  });
  const plan = planOf(inputs, "radius", 1, { ...options, countOnly });
  return await runKnnFamily(
    "radius",
    inputs,
    plan,
    { radius, countOnly },
    options,
    async (run) => {
      const excludeSelf = inputs.excludeSelf;
      const queries = run.queries!;
      const memo = () => ({ op: "radius", radius });
      const count: BlockCompute<Int32Array> = (prepared, start, end, ctx) => {
        const counts = countWithinRadius(prepared, queries, {
          radius,
          start,
          end,
          excludeSelf,
        });
        ctx.stats({ matches: sum(counts) });
        return counts;
      };
      const collect: BlockCompute<StoredKnnBlock> = (
        prepared,
        start,
        end,
        ctx,
      ) => {
        const b = collectWithinRadius(prepared, queries, {
          radius,
          start,
          end,
          excludeSelf,
        });
        ctx.stats({ matches: b.index.length });
        return { index: b.index, distance: b.distance };
      };
      const names = countOnly
        ? ["counts.npy"]
        : ["offset.npy", "index.npy", "distance.npy"];
      await run.checkStored(countOnly ? ["count"] : ["count", "collect"]);
      const previous = await run.previousOutputs(names);
      const { expected, only } = previous;
      // Recomputes only the blocks a check above found damaged.
      await run.runBlocks("count", count, memo);
      if (only?.size === 0 && !countOnly) {
        await run.runBlocks("collect", collect, memo);
      }
      const unchanged = await run.finishUnchanged(
        previous,
        (summary) => ({
          rows: plan.queryRows,
          totalMatches: Number(summary.totalMatches),
        }),
      );
      if (unchanged !== undefined) return unchanged;
      const n = plan.queryRows;
      const counts = new Int32Array(n);
      for (const range of run.ranges) {
        counts.set(await run.readBlock("count", range, count, memo), range[0]);
      }
      const totalMatches = sum(counts);
      if (!countOnly) await run.runBlocks("collect", collect, memo);
      const specs: OutputSpec[] = countOnly
        ? [{ name: "counts.npy", descr: "<i4", shape: [n] }]
        : [
          { name: "offset.npy", descr: "<i8", shape: [n + 1] },
          { name: "index.npy", descr: "<i4", shape: [totalMatches] },
          { name: "distance.npy", descr: "<f4", shape: [totalMatches] },
        ];
      const { info, set } = await run.writeOutputs(
        specs,
        async (set) => {
          if (countOnly) {
            await set.sink("counts.npy").append(counts);
            return;
          }
          const offset = new BigInt64Array(n + 1);
          let at = 0;
          for (let i = 0; i < n; i++) {
            at += counts[i]!;
            offset[i + 1] = BigInt(at);
          }
          await set.sink("offset.npy").append(offset);
          for (const range of run.ranges) {
            const b = await run.readBlock("collect", range, collect, memo);
            const want = sum(counts.subarray(range[0], range[1]));
            if (b.index.length !== want) {
              throw new Error(
                `Cannot assemble radius job "${run.job.name}": block ${
                  run.key("collect", range)
                } holds ${b.index.length} matches, but its count step found ${want}; rerun with newRun: true`,
              );
            }
            await set.sink("index.npy").append(b.index);
            await set.sink("distance.npy").append(b.distance);
          }
        },
        only,
        expected,
      );
      await run.complete({
        rows: n,
        radius,
        metric: inputs.metric,
        excludeSelf,
        phase: countOnly ? "count" : "collect",
        totalMatches,
        blocks: plan.blocks,
        outputs: info.outputs,
      });
      const result: RadiusJobResult = { ...info, rows: n, totalMatches };
      if (options.out === undefined) {
        if (countOnly) {
          result.counts = set.sink("counts.npy").array as Int32Array;
        } else {
          result.counts = counts;
          result.offset = set.sink("offset.npy").array as BigInt64Array;
          result.index = set.sink("index.npy").array as Int32Array;
          result.distance = set.sink("distance.npy").array as Float32Array;
        }
      }
      return result;
    },
  );
}
