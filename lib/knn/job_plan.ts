/**
 * Execution plans for cairn's kNN jobs: how many query rows each block step
 * takes, how much memory that needs, and how many steps and chunks the job
 * will write. Every job ({@linkcode knnJob}, `knnGraphJob`, `radiusJob`)
 * takes the same {@linkcode KnnBlockSizeOptions} and plans with
 * {@linkcode planKnnJob}, so `cairn knn-plan` shows exactly what a job will do.
 *
 * @module
 */

import { DEFAULT_MAX_CHUNK_BYTES } from "../output.ts";
import { planKnnBlocks } from "./block_plan.ts";
import { defaultThreads } from "./kernel_threads.ts";
import { wasmScratchBytes } from "./kernel_wasm.ts";

/**
 * Default memory budget of one block's working set: 512 MiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MEMORY_BUDGET_BYTES } from "./job_plan.ts";
 * assert.equal(DEFAULT_MEMORY_BUDGET_BYTES, 512 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MEMORY_BUDGET_BYTES = 512 * 1024 * 1024;

/**
 * Default cap on rows per block, so long jobs checkpoint often: 4096.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_BLOCK_ROWS } from "./job_plan.ts";
 * assert.equal(DEFAULT_MAX_BLOCK_ROWS, 4096);
 * ```
 */
export const DEFAULT_MAX_BLOCK_ROWS = 4096;

/** How blocks are sized; every kNN job accepts these. */
export interface KnnBlockSizeOptions {
  /**
   * Bytes one block's working set may use; see `planKnnBlocks` for the model.
   * Ignored when `blockRows` is given. Default: 512 MiB.
   */
  memoryBudgetBytes?: number;
  /** Query rows per block, overriding the budget. Default: from the budget. */
  blockRows?: number;
  /**
   * Most rows per block when sizing from the budget, so that progress is
   * checkpointed often. Default: 4096.
   */
  maxBlockRows?: number;
}

/** The shape of a matrix: a {@linkcode Matrix} or a file's header info. */
export interface MatrixShape {
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
}

/** What {@linkcode planKnnJob} plans for. */
export interface PlanKnnJobOptions extends KnnBlockSizeOptions {
  /** The job. Default: `"knn"`. */
  kind?: "knn" | "knn-graph" | "radius";
  /** The query matrix's shape. Default: the reference's (self-search). */
  query?: MatrixShape;
  /** Neighbours per row (not used by radius plans). Default: 1. */
  k?: number;
  /** Radius plans: only the count phase. Default: false. */
  countOnly?: boolean;
  /**
   * Worker threads searching each block (kNN and kNN-graph jobs; radius jobs
   * use one). Default: the available cores.
   */
  threads?: number;
  /**
   * The reference is a `.npy` file that a kNN job streams in tiles when
   * `memoryBudgetBytes` is given and the reference does not fit in it (see
   * {@linkcode KnnJobPlan.reference}). Default: false.
   */
  streamable?: boolean;
}

/** A job's execution plan. */
export interface KnnJobPlan {
  /** The job it is for. */
  kind: "knn" | "knn-graph" | "radius";
  /** Reference rows. */
  refRows: number;
  /** Query rows (the reference's for self-search). */
  queryRows: number;
  /** Columns. */
  dim: number;
  /** Neighbours per row (1 for radius plans). */
  k: number;
  /** Query rows per block step (the last block may be shorter). */
  blockRows: number;
  /** Number of query blocks. */
  blocks: number;
  /** Worker threads searching each block (radius jobs: 1). */
  threads: number;
  /** The budget the plan was made for (undefined when `blockRows` was given). */
  memoryBudgetBytes: number | undefined;
  /** Estimated working set of one full block. */
  blockBytesEstimate: number;
  /**
   * Estimated memory shared by all blocks: the input matrices (copied once
   * into shared memory when threads > 1), the WebAssembly kernel's float32
   * copy of the reference with its per-thread scratch, and the norms. (The
   * TypeScript fallback kernel uses a float64 copy instead: 8 bytes a value.)
   */
  sharedBytesEstimate: number;
  /** `sharedBytesEstimate + blockBytesEstimate`. */
  peakBytesEstimate: number;
  /** Steps the job records: `prepare`, then one per block (two for radius). */
  steps: number;
  /** Estimated chunks the steps write (radius: assuming at most k matches per row). */
  chunkCount: number;
  /** Bytes of the output files (undefined for radius, which depends on the matches). */
  outputBytes: number | undefined;
  /**
   * `"memory"`: the reference is loaded whole. `"streamed"`: it stays in its
   * `.npy` file and every block reads it in tiles of `tileRows` rows (once,
   * shared by the block's `threads`); the memory estimates then cover
   * everything the search holds.
   */
  reference: "memory" | "streamed";
  /** Streamed: reference rows per tile; undefined when in memory. */
  tileRows: number | undefined;
  /**
   * Streamed: tiles held at once, 2 when the next tile is read while the
   * threads search the current one (the budget allowing), else 1;
   * undefined when in memory.
   */
  tileBuffers: number | undefined;
  /**
   * Reads of the reference file: 1 in memory; streamed, one reading pass
   * (hash, checks, column sums), one norms pass (skipped when the prepared
   * reference is stored), then one per block.
   */
  passes: number;
}

/**
 * Parse a byte size such as `512MiB`, `1.5GiB`, `64MB` or `1000000`.
 *
 * Binary units (KiB, MiB, GiB, TiB, or K, M, G, T) are powers of 1024;
 * decimal ones (kB, MB, GB, TB) powers of 1000; a bare number is bytes.
 *
 * @param text The size.
 * @returns Bytes, rounded down to a whole number.
 * @throws {SyntaxError} If the text is not a size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseByteSize } from "./job_plan.ts";
 * assert.equal(parseByteSize("512MiB"), 512 * 1024 * 1024);
 * assert.equal(parseByteSize("2G"), 2 * 1024 ** 3);
 * assert.equal(parseByteSize("64MB"), 64_000_000);
 * assert.throws(() => parseByteSize("lots"), SyntaxError);
 * ```
 */
export function parseByteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const units: Record<string, number> = {
    "": 1,
    b: 1,
    k: 1024,
    kib: 1024,
    m: 1024 ** 2,
    mib: 1024 ** 2,
    g: 1024 ** 3,
    gib: 1024 ** 3,
    t: 1024 ** 4,
    tib: 1024 ** 4,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
  };
  const unit = match === null ? undefined : units[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) {
    throw new SyntaxError(
      `Cannot parse byte size "${text}": expected a number with an optional unit, such as "512MiB", "2GiB" or "64MB"`,
    );
  }
  return Math.floor(Number(match[1]) * unit);
}

/** Options for {@linkcode formatByteSize}. */
export interface FormatByteSizeOptions {
  /**
   * Keep the one decimal of a value below 10 units even when it is `.0`
   * (`1.0 KiB` rather than `1 KiB`), as the CLI's tables do. Default: `false`.
   */
  fixedDecimal?: boolean;
}

/**
 * Format a byte count with binary units, such as `512 MiB`: one decimal
 * below 10 units, whole units from 10.
 *
 * @param bytes The count.
 * @param options Whether to keep a `.0` decimal.
 * @returns A short string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatByteSize } from "./job_plan.ts";
 * assert.equal(formatByteSize(512 * 1024 * 1024), "512 MiB");
 * assert.equal(formatByteSize(1536), "1.5 KiB");
 * assert.equal(formatByteSize(100), "100 B");
 * assert.equal(formatByteSize(1024), "1 KiB");
 * assert.equal(formatByteSize(1024, { fixedDecimal: true }), "1.0 KiB");
 * ```
 */
export function formatByteSize(
  bytes: number,
  options: FormatByteSizeOptions = {},
): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = value < 10 ? value.toFixed(1) : String(Math.round(value));
  const shown = options.fixedDecimal === true ? text : text.replace(/\.0$/, "");
  return `${shown} ${units[unit]}`;
}

function checkPositiveInt(name: string, value: unknown): number {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < 1
  ) {
    throw new RangeError(
      `Cannot plan kNN job: ${name} must be a positive whole number, but ${name} = ${
        String(value)
      }`,
    );
  }
  return value;
}

/**
 * Plan a kNN, kNN-graph or radius job: block size from a memory budget (or
 * as given), peak memory, steps and chunks.
 *
 * Without `blockRows`, blocks are sized with `planKnnBlocks` for the budget, capped
 * at `maxBlockRows`, then evened out so all blocks but the last are equal.
 *
 * @param ref The reference matrix, or just its shape.
 * @param request The job kind, query shape, k and plan options.
 * @returns The plan.
 * @throws {RangeError} If a size is not a positive whole number, or one row does not fit the budget.
 *
 * @example Plan 2,000 queries against 20,000 references
 * ```ts
 * import assert from "node:assert/strict";
 * import { planKnnJob } from "./job_plan.ts";
 * const plan = planKnnJob({ rows: 20_000, cols: 128 }, {
 *   query: { rows: 2_000, cols: 128 }, k: 10, memoryBudgetBytes: 64 * 1024 * 1024,
 * });
 * assert.equal(plan.blockRows, 400);
 * assert.equal(plan.blocks, 5);
 * assert.equal(plan.steps, 6);
 * assert.equal(plan.outputBytes, 2 * (128 + 2_000 * 10 * 4));
 * ```
 */
export function planKnnJob(
  ref: MatrixShape,
  request: PlanKnnJobOptions = {},
): KnnJobPlan {
  const kind = request.kind ?? "knn";
  if (kind !== "knn" && kind !== "knn-graph" && kind !== "radius") {
    throw new TypeError(
      `Cannot plan kNN job: kind "${
        String(kind)
      }" is not supported; use "knn", "knn-graph" or "radius"`,
    );
  }
  const refRows = checkPositiveInt("reference rows", ref.rows);
  const dim = checkPositiveInt("columns", ref.cols);
  const queryRows = checkPositiveInt(
    "query rows",
    request.query?.rows ?? refRows,
  );
  const k = kind === "radius" ? 1 : checkPositiveInt("k", request.k ?? 1);
  if (k > refRows) {
    throw new RangeError(
      `Cannot plan kNN job: expected k <= reference rows, but reference rows = ${refRows}, k = ${k}`,
    );
  }
  const threads = kind === "radius"
    ? 1
    : checkPositiveInt("threads", request.threads ?? defaultThreads());
  if (streamsReference(ref, { ...request, kind, threads })) {
    return planStreamed(kind, refRows, queryRows, dim, k, threads, request);
  }
  const perRow = 8 * refRows + 8 * dim + 24 + 8 * k;
  let blockRows: number;
  let budget: number | undefined;
  if (request.blockRows !== undefined) {
    blockRows = Math.min(
      checkPositiveInt("blockRows", request.blockRows),
      queryRows,
    );
  } else {
    budget = request.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES;
    const cap = checkPositiveInt(
      "maxBlockRows",
      request.maxBlockRows ?? DEFAULT_MAX_BLOCK_ROWS,
    );
    const plan = planKnnBlocks({
      nRef: refRows,
      nQuery: queryRows,
      dim,
      k,
      memoryBudgetBytes: budget,
    });
    const rows = Math.min(plan.blockRows, cap);
    blockRows = Math.ceil(queryRows / Math.ceil(queryRows / rows));
  }
  const blockBytesEstimate = blockRows * perRow;
  const sharedBytesEstimate = inMemorySharedBytes(
    refRows,
    dim,
    request.query === undefined ? undefined : queryRows,
    threads,
  );
  return {
    ...common(kind, refRows, queryRows, dim, k, blockRows, request),
    threads,
    memoryBudgetBytes: budget,
    blockBytesEstimate,
    sharedBytesEstimate,
    peakBytesEstimate: sharedBytesEstimate + blockBytesEstimate,
    reference: "memory",
    tileRows: undefined,
    tileBuffers: undefined,
    passes: 1,
  };
}

/** Memory an in-memory search shares between its blocks. */
function inMemorySharedBytes(
  refRows: number,
  dim: number,
  queryRows: number | undefined,
  threads: number,
): number {
  return refRows * dim * 4 + // the reference (float32)
    (queryRows === undefined ? 0 : queryRows * dim * 4) +
    // With threads, both copied once into SharedArrayBuffers.
    (threads > 1
      ? refRows * dim * 4 + (queryRows === undefined ? 0 : queryRows * dim * 4)
      : 0) +
    refRows * dim * 4 + refRows * 24 + // the WebAssembly kernel's packed copy
    (threads + 1) * wasmScratchBytes(dim) + // its per-thread scratch
    refRows * 16 + dim * 8; // norms and mean
}

/**
 * Whether a job streams its reference: a kNN job on a `.npy` file (see
 * {@linkcode PlanKnnJobOptions.streamable}) given a `memoryBudgetBytes`
 * that the in-memory reference (with its kernel copy and norms) exceeds.
 *
 * @param ref The reference's shape.
 * @param request The plan request.
 * @returns True to stream.
 *
 * @example A 1 GB reference streams under a 256 MB budget
 * ```ts
 * import assert from "node:assert/strict";
 * import { streamsReference } from "./job_plan.ts";
 * const ref = { rows: 2_000_000, cols: 128 };
 * assert.ok(streamsReference(ref, { streamable: true, memoryBudgetBytes: 256e6 }));
 * assert.ok(!streamsReference(ref, { streamable: true }));
 * ```
 */
export function streamsReference(
  ref: MatrixShape,
  request: PlanKnnJobOptions,
): boolean {
  if (
    request.streamable !== true || (request.kind ?? "knn") !== "knn" ||
    request.memoryBudgetBytes === undefined
  ) return false;
  const threads = request.threads ?? defaultThreads();
  const shared = inMemorySharedBytes(
    ref.rows,
    ref.cols,
    request.query?.rows,
    Number.isSafeInteger(threads) && threads > 0 ? threads : 1,
  );
  return shared > request.memoryBudgetBytes;
}

/** The plan fields that do not depend on where the reference is. */
function common(
  kind: "knn" | "knn-graph" | "radius",
  refRows: number,
  queryRows: number,
  dim: number,
  k: number,
  blockRows: number,
  request: PlanKnnJobOptions,
) {
  const blocks = Math.ceil(queryRows / blockRows);
  const phases = kind === "radius" && !request.countOnly ? 2 : 1;
  const chunksOf = (bytes: number) =>
    Math.max(1, Math.ceil(bytes / DEFAULT_MAX_CHUNK_BYTES));
  const preparedChunks = chunksOf(refRows * 8 + dim * 8 + 256);
  const blockChunks = kind === "radius"
    ? chunksOf(blockRows * 4 + 64) +
      (phases === 2 ? chunksOf(blockRows * k * 8 + 64) : 0)
    : chunksOf(blockRows * k * 8 + 64);
  const header = 128;
  let outputBytes: number | undefined;
  if (kind === "knn") outputBytes = 2 * (header + queryRows * k * 4);
  else if (kind === "knn-graph") outputBytes = 3 * (header + queryRows * k * 4);
  else if (request.countOnly) outputBytes = header + queryRows * 4;
  return {
    kind,
    refRows,
    queryRows,
    dim,
    k,
    blockRows,
    blocks,
    steps: 1 + phases * blocks,
    chunkCount: preparedChunks + blocks * blockChunks,
    outputBytes,
  };
}

/**
 * The plan of a streamed reference: the budget covers everything the search
 * holds. Fixed: the norms (twice, as the prepare step encodes them), the
 * means, the query matrix, the kernel's scratch and the results. Per query
 * row of a block: its kernel vector and norms, its heap and candidates, its
 * outputs (twice, encoded), and for self-search its raw row. Per reference
 * row of a tile: the raw row, the kernel's float32 copy and bounds, and the
 * float64 copy of the TypeScript fallback kernel.
 *
 * The block rows come from this one-thread model, so that a job's blocks
 * (and its config, resume and memo keys) do not depend on `threads`. With
 * threads, the tiles then take what is left of the budget after the
 * threads' extra state: per worker, its kernel scratch in each packed tile
 * and its candidate batches; per block row, the copy of the row handed to
 * its worker; per tile row, its norm in shared memory, a second buffer
 * (raw, packed and norm) to read the next tile into while the workers
 * search, and each worker's float64 copy for the TypeScript kernel. Without
 * room for one tile row of that, the job runs on one thread.
 */
function planStreamed(
  kind: "knn" | "knn-graph" | "radius",
  refRows: number,
  queryRows: number,
  dim: number,
  k: number,
  threads: number,
  request: PlanKnnJobOptions,
): KnnJobPlan {
  const budget = request.memoryBudgetBytes!;
  const item = 8; // float64 files need it; float32 ones use less
  const scratch = wasmScratchBytes(dim);
  const fixed = 16 * refRows + 24 * dim +
    (request.query === undefined ? 0 : queryRows * dim * item) +
    scratch + queryRows * k * 8 + (1 << 20);
  const perBlockRow = 8 * dim + 24 + 8 * k + 20 * (4 * k + 64) + 24 * k +
    (request.query === undefined ? dim * item : 0);
  const perTileRow = (item + 12) * dim + 24;
  const minimum = fixed + perBlockRow + perTileRow;
  if (budget < minimum) {
    throw new RangeError(
      `Cannot plan kNN job: memoryBudgetBytes = ${budget} is too small to stream the reference (${refRows} × ${dim}): the norms, one query row and one reference row need ${minimum} bytes; raise memoryBudgetBytes to at least ${minimum}`,
    );
  }
  const avail = budget - fixed;
  let blockRows: number;
  if (request.blockRows !== undefined) {
    blockRows = Math.min(
      checkPositiveInt("blockRows", request.blockRows),
      queryRows,
    );
    if (blockRows * perBlockRow + perTileRow > avail) {
      const need = fixed + blockRows * perBlockRow + perTileRow;
      throw new RangeError(
        `Cannot plan kNN job: blockRows = ${blockRows} does not fit memoryBudgetBytes = ${budget} with a streamed reference: it needs ${need} bytes; lower blockRows or raise memoryBudgetBytes to at least ${need}`,
      );
    }
  } else {
    const cap = checkPositiveInt(
      "maxBlockRows",
      request.maxBlockRows ?? DEFAULT_MAX_BLOCK_ROWS,
    );
    // Half the room at most for the block, so the tiles stay large.
    const fit = Math.max(1, Math.floor(avail / 2 / perBlockRow));
    const rows = Math.min(fit, cap, queryRows);
    blockRows = Math.ceil(queryRows / Math.ceil(queryRows / rows));
  }
  // One thread, unless the threads' extra state leaves room for a tile.
  let used = 1;
  let buffers = 1;
  let fixedBytes = fixed;
  let blockBytesEstimate = blockRows * perBlockRow;
  let tileRowBytes = perTileRow;
  let tileRows = Math.min(
    refRows,
    Math.floor((avail - blockBytesEstimate) / perTileRow),
  );
  if (threads > 1) {
    const withThreads = (tileBuffers: number) => {
      const fixedT = fixed - scratch +
        tileBuffers * (threads + 1) * scratch + // packed tiles' scratch slots
        threads * (1 << 20); // each worker's candidate batches
      const blockT = blockRows * (perBlockRow + dim * item);
      const rowT = tileBuffers * ((item + 4) * dim + 24 + 8) +
        threads * 8 * dim;
      const rows = Math.min(
        refRows,
        Math.floor((budget - fixedT - blockT) / rowT),
      );
      return { fixedT, blockT, rowT, rows };
    };
    const single = withThreads(1);
    const double = withThreads(2);
    // A second buffer when there is more than one tile and room for tiles
    // of at least a kernel tile (512 rows).
    const pick = single.rows >= refRows
      ? single
      : double.rows >= Math.min(refRows, 512)
      ? double
      : single;
    if (pick.rows >= 1) {
      used = threads;
      buffers = pick === double ? 2 : 1;
      fixedBytes = pick.fixedT;
      blockBytesEstimate = pick.blockT;
      tileRowBytes = pick.rowT;
      tileRows = pick.rows;
    }
  }
  // Whole 8-row groups of the WebAssembly kernel, when there is room.
  if (tileRows >= 8 && tileRows < refRows) tileRows -= tileRows % 8;
  const sharedBytesEstimate = fixedBytes + tileRows * tileRowBytes;
  const plan = common(kind, refRows, queryRows, dim, k, blockRows, request);
  return {
    ...plan,
    threads: used,
    memoryBudgetBytes: budget,
    blockBytesEstimate,
    sharedBytesEstimate,
    peakBytesEstimate: sharedBytesEstimate + blockBytesEstimate,
    reference: "streamed",
    tileRows,
    tileBuffers: buffers,
    passes: 2 + plan.blocks,
  };
}
