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
 * - {@linkcode planKnnBlocks} sizes blocks for a memory budget.
 * - {@linkcode recallAtK} and {@linkcode rerankExact} evaluate approximate
 *   results.
 * - {@linkcode parseNpy}, {@linkcode encodeNpy}, {@linkcode readMatrixFile}
 *   and {@linkcode writeNpyFile} move matrices in and out.
 *
 * On top of the core, resumable jobs (one step per block of query rows,
 * keyed by the matrices' content hashes ({@linkcode hashMatrix}); see `jobs.ts`):
 * - {@linkcode knnJob}, {@linkcode knnGraphJob} and {@linkcode radiusJob}
 *   run searches as cairn jobs that resume after a crash and write `.npy`
 *   outputs byte-identical to an uninterrupted run's;
 * - {@linkcode planKnnJob} shows the block size, memory, steps and chunks a job
 *   will use;
 * - {@linkcode knnRecall} and {@linkcode knnRerank} evaluate approximate
 *   neighbour lists stored as `.npy` files.
 *
 * @example Blocked self-search equals one search
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   concatKnnBlocks,
 *   matrixFrom,
 *   planKnnBlocks,
 *   prepareReference,
 *   searchKnn,
 * } from "./mod.ts";
 *
 * const points = matrixFrom(new Float32Array([0, 0, 1, 0, 0, 1, 5, 5, 6, 5]), 2);
 * const prepared = prepareReference(points, "euclidean");
 * const plan = planKnnBlocks({
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

export {
  hashMatrix,
  type Matrix,
  type MatrixData,
  matrixFrom,
  validateFinite,
  type ValidateFiniteOptions,
} from "./matrix.ts";
export {
  encodeNpy,
  encodeNpyHeader,
  type IntTable,
  type MatrixFileInfo,
  NPY_READ_DTYPES,
  type NpyHeader,
  type NpyWritable,
  parseIntNpy,
  parseNpy,
  parseNpyHeader,
  readIntFile,
  readMatrixFile,
  readMatrixFileInfo,
  writeNpyFile,
} from "../io/npy.ts";
export { parseFvecs, type ParseFvecsOptions } from "../io/fvecs.ts";
// kernel.ts's lower-level pieces (prepareQueries, computeKeyTile, exactKey,
// checkRange, ...) serve search.ts, radius.ts and evaluate.ts and are not
// re-exported here.
export {
  type Metric,
  METRICS,
  type PreparedReference,
  type PrepareOptions,
  prepareReference,
  validatePrepared,
  type ValidatePreparedOptions,
  type ZeroVectorPolicy,
} from "./kernel.ts";
export {
  concatKnnBlocks,
  type KnnBlock,
  type KnnOptions,
  searchKnn,
} from "./search.ts";
export {
  type KernelChoice,
  type KernelUsed,
  resolveKernel,
} from "./kernel_scan.ts";
export {
  defaultThreads,
  type KnnPool,
  type KnnPoolOptions,
  MIN_PARALLEL_WORK,
  openKnnPool,
  type PoolSearchOptions,
} from "./kernel_threads.ts";
export {
  collectWithinRadius,
  concatRadiusBlocks,
  countWithinRadius,
  type RadiusBlock,
  type RadiusOptions,
  type RadiusResult,
} from "./radius.ts";
export {
  type EdgeList,
  knnGraph,
  type KnnGraphOptions,
  type SnnEdgeList,
  snnGraph,
  type SnnGraphOptions,
  type Symmetrize,
} from "./graph.ts";
export {
  type KnnBlockPlan,
  planKnnBlocks,
  type PlanKnnBlocksOptions,
} from "./block_plan.ts";
export {
  type IndexTable,
  recallAtK,
  type RecallOptions,
  rerankExact,
  type RerankOptions,
} from "./evaluate.ts";
export {
  DEFAULT_MAX_BLOCK_ROWS,
  DEFAULT_MEMORY_BUDGET_BYTES,
  formatByteSize,
  type FormatByteSizeOptions,
  type KnnBlockSizeOptions,
  type KnnJobPlan,
  type MatrixShape,
  parseByteSize,
  planKnnJob,
  type PlanKnnJobOptions,
} from "./job_plan.ts";
export {
  KNN_CODE_VERSION,
  KNN_MEMO_NAMESPACE,
  type KnnJobBaseOptions,
  type KnnJobInfo,
  type MatrixInput,
  type OutputFileInfo,
  type PreparedSource,
} from "./jobs.ts";
export { knnJob, type KnnJobOptions, type KnnJobResult } from "./knn_job.ts";
export {
  knnGraphJob,
  type KnnGraphJobOptions,
  type KnnGraphJobResult,
} from "./graph_job.ts";
export {
  radiusJob,
  type RadiusJobOptions,
  type RadiusJobResult,
} from "./radius_job.ts";
export {
  type IndexInput,
  knnRecall,
  type KnnRecallOptions,
  type KnnRecallResult,
  knnRerank,
  type KnnRerankOptions,
  type KnnRerankResult,
} from "./evaluate_files.ts";
