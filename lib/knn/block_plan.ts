/**
 * Memory-budget planning for blocked exact kNN jobs.
 *
 * @module
 */

/** Inputs to {@linkcode planKnnBlocks}. All but `threads` are required. */
export interface PlanKnnBlocksOptions {
  /** Reference rows. */
  nRef: number;
  /** Query rows. */
  nQuery: number;
  /** Columns (dimension). */
  dim: number;
  /** Neighbours per query row. */
  k: number;
  /** Bytes one block may use for its working set. */
  memoryBudgetBytes: number;
  /**
   * Threads that will search each block (with `openKnnPool`); reported in
   * the plan. The block's working set is split between them, not multiplied.
   * Default: 1.
   */
  threads?: number;
}

/** A block plan for a kNN job. */
export interface KnnBlockPlan {
  /** Query rows per block (the last block may be shorter). */
  blockRows: number;
  /** Number of blocks, `ceil(nQuery / blockRows)`. */
  blocks: number;
  /** Threads searching each block (`searchKnn` itself uses one). */
  threads: number;
  /** Estimated working-set bytes of one full block. */
  peakBytesEstimate: number;
  /** Output chunks: one index and one distance array per block. */
  chunkCount: number;
}

/** Bytes per query row of a block's working set; see {@linkcode planKnnBlocks}. */
function bytesPerRow(nRef: number, dim: number, k: number): number {
  return 8 * nRef + 8 * dim + 24 + 8 * k;
}

/**
 * Chooses a block size so one block's working set fits a memory budget.
 *
 * The model charges each query row of a block for:
 * - its row of the distance tile, `8 × nRef` bytes: the float64 distances a
 *   GEMM-style kernel materialises, and an upper bound for the tiled kernel
 *   and for a radius block's matches (int32 index + float32 distance);
 * - its float64 kernel vector and norms, `8 × dim + 24` bytes;
 * - its outputs, `8 × k` bytes (int32 index + float32 distance).
 *
 * The reference and its prepared form are not charged: they are shared by all
 * blocks. Blocks are then evened out, so `blockRows = ceil(nQuery / blocks)`.
 *
 * @param options Sizes and the budget.
 * @returns The plan.
 * @throws {RangeError} If a size is not a positive integer, k exceeds nRef,
 *   or a single row does not fit the budget.
 *
 * @example Plan 2,000 queries against 20,000 references in 64 MiB
 * ```ts
 * import assert from "node:assert/strict";
 * import { planKnnBlocks } from "./block_plan.ts";
 *
 * const plan = planKnnBlocks({
 *   nRef: 20_000, nQuery: 2_000, dim: 128, k: 10,
 *   memoryBudgetBytes: 64 * 1024 * 1024,
 * });
 * assert.equal(plan.blocks, 5);
 * assert.equal(plan.blockRows, 400);
 * assert.ok(plan.peakBytesEstimate <= 64 * 1024 * 1024);
 * ```
 */
export function planKnnBlocks(options: PlanKnnBlocksOptions): KnnBlockPlan {
  const { nRef, nQuery, dim, k, memoryBudgetBytes } = options;
  const threads = options.threads ?? 1;
  for (
    const [name, value] of Object.entries({ nRef, nQuery, dim, k, threads })
  ) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot plan kNN: ${name} must be a positive integer, but ${name} = ${
          String(value)
        }`,
      );
    }
  }
  if (k > nRef) {
    throw new RangeError(
      `Cannot plan kNN: expected k <= reference rows, but reference rows = ${nRef}, k = ${k}`,
    );
  }
  if (
    typeof memoryBudgetBytes !== "number" || !(memoryBudgetBytes > 0) ||
    !Number.isFinite(memoryBudgetBytes)
  ) {
    throw new RangeError(
      `Cannot plan kNN: memoryBudgetBytes must be a positive number, but memoryBudgetBytes = ${
        String(memoryBudgetBytes)
      }`,
    );
  }
  const perRow = bytesPerRow(nRef, dim, k);
  const fit = Math.floor(memoryBudgetBytes / perRow);
  if (fit < 1) {
    throw new RangeError(
      `Cannot plan kNN: one query row needs ${perRow} bytes, but memoryBudgetBytes = ${memoryBudgetBytes}; raise the budget to at least ${perRow}`,
    );
  }
  const maxRows = Math.min(fit, nQuery);
  const blocks = Math.ceil(nQuery / maxRows);
  const blockRows = Math.ceil(nQuery / blocks);
  return {
    blockRows,
    blocks,
    threads,
    peakBytesEstimate: blockRows * perRow,
    chunkCount: 2 * blocks,
  };
}
