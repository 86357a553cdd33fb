/**
 * cairn's exact k-nearest-neighbour family: the pure, deterministic compute
 * core. Every search works on a block of query rows against the whole
 * reference and returns plain typed arrays, bit-identical however the rows
 * are blocked, so each block can become one resumable job step.
 *
 * - {@linkcode prepareReference} precomputes means and norms once.
 * - {@linkcode searchKnn} finds exact k nearest neighbours for a block.
 * - {@linkcode countWithinRadius} and {@linkcode collectWithinRadius} do
 *   fixed-radius search; {@linkcode concatRadiusBlocks} builds CSR output.
 * - {@linkcode knnGraph} and {@linkcode snnGraph} build graphs.
 * - {@linkcode planKnn} sizes blocks for a memory budget.
 * - {@linkcode recallAtK} and {@linkcode rerankExact} evaluate approximate
 *   results.
 * - {@linkcode parseNpy}, {@linkcode encodeNpy}, {@linkcode readMatrixFile}
 *   and {@linkcode writeNpyFile} move matrices in and out.
 *
 * @example Blocked self-search equals one search
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   concatKnnBlocks,
 *   matrixFrom,
 *   planKnn,
 *   prepareReference,
 *   searchKnn,
 * } from "./mod.ts";
 *
 * const points = matrixFrom(new Float32Array([0, 0, 1, 0, 0, 1, 5, 5, 6, 5]), 2);
 * const prepared = prepareReference(points, "euclidean");
 * const plan = planKnn({
 *   nRef: 5, nQuery: 5, dim: 2, k: 2, memoryBudgetBytes: 200,
 * });
 * const blocks = [];
 * for (let start = 0; start < 5; start += plan.blockRows) {
 *   const end = Math.min(5, start + plan.blockRows);
 *   blocks.push(searchKnn(prepared, points, { k: 2, start, end, excludeSelf: true }));
 * }
 * const whole = searchKnn(prepared, points, { k: 2, excludeSelf: true });
 * assert.deepEqual(concatKnnBlocks(blocks), whole);
 * assert.deepEqual(Array.from(whole.index.subarray(0, 2)), [1, 2]);
 * ```
 *
 * @module
 */

export * from "./matrix.ts";
export * from "./npy.ts";
export * from "./kernel.ts";
export * from "./search.ts";
export * from "./radius.ts";
export * from "./graph.ts";
export * from "./plan.ts";
export * from "./evaluate.ts";
