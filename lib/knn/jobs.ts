/**
 * Exact kNN, kNN-graph and radius searches as resumable cairn jobs.
 *
 * A job is keyed by the content hashes of its matrices and by its parameters
 * (`k`, metric, radius, block size, ...). It records a `prepare` step (the
 * reference's means and norms, shared through the `knn` memo namespace with
 * every later job on the same reference and metric), then one step per block
 * of query rows. A killed job rerun with the same inputs resumes: finished
 * blocks are read back, never recomputed, and the `.npy` files it writes are
 * byte-identical to an uninterrupted run's. Rerunning a completed job returns
 * at once, rewriting an output file only when it is missing or differs.
 *
 * | job                  | step keys                                     | output files                                   |
 * | -------------------- | --------------------------------------------- | ---------------------------------------------- |
 * | {@linkcode knnJob}      | `prepare`, `block/S-E`                     | `index.npy` (n×k int32), `distance.npy` (n×k float32) |
 * | {@linkcode knnGraphJob} | `prepare`, `block/S-E`                     | `from.npy`, `to.npy` (int32), `distance.npy` (float32) or `weight.npy` (int32, SNN) |
 * | {@linkcode radiusJob}   | `prepare`, `count/S-E`, then `collect/S-E` | `offset.npy` (n+1 int64), `index.npy` (int32), `distance.npy` (float32); or `counts.npy` (n int32) |
 *
 * `S-E` is the block's query-row range (end exclusive). Block steps carry
 * `stats` (`rows`, `ms`, and `matches` for radius) for `cairn show`.
 *
 * @module
 */

import { join } from "node:path";
import type { JobEvent } from "../events.ts";
import { type Job, runJob, type RunJobOptions } from "../job.ts";
import { replayRun } from "../replay.ts";
import { runSharedParts } from "../shared_work.ts";
import type { StepContext } from "../job.ts";
import { fingerprint } from "../../store/cbor.ts";
import {
  CorruptChunkError,
  MissingChunkError,
} from "../../store/chunk_store.ts";
import type { AcquireLockOptions } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import {
  checkK,
  hashMatrix,
  loadSearchInputs,
  type MatrixInput,
  type SearchInputs,
} from "./_inputs.ts";
import {
  hashFile,
  openOutputs,
  type OutputFileInfo,
  type OutputSet,
  type OutputSpec,
} from "./_outputs.ts";
import { knnGraph, snnGraph, type Symmetrize } from "./graph.ts";
import { type KnnJobPlan, knnPlan, type KnnPlanOptions } from "./job_plan.ts";
import {
  type Metric,
  type PreparedReference,
  prepareReference,
  validatePrepared,
  type ZeroVectorPolicy,
} from "./kernel.ts";
import type { Matrix } from "./matrix.ts";
import {
  checkRadius,
  collectWithinRadius,
  countWithinRadius,
} from "./radius.ts";
import { type KnnBlock, searchKnn } from "./search.ts";

export type { MatrixInput } from "./_inputs.ts";
export type { OutputFileInfo } from "./_outputs.ts";

/**
 * The memo namespace every kNN job shares: prepared references and blocks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KNN_MEMO_NAMESPACE } from "./jobs.ts";
 * assert.equal(KNN_MEMO_NAMESPACE, "knn");
 * ```
 */
export const KNN_MEMO_NAMESPACE = "knn";

/**
 * Version of the kNN step code. It is part of every job's config and memo
 * key; bump it when a change alters any stored block's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KNN_CODE_VERSION } from "./jobs.ts";
 * assert.equal(typeof KNN_CODE_VERSION, "string");
 * ```
 */
export const KNN_CODE_VERSION = "1";

/** Options every kNN job accepts. */
export interface KnnJobBaseOptions extends KnnPlanOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Job name. Default: `<kind>-<first 12 hex of the config fingerprint>`. */
  job?: string;
  /**
   * Directory for the `.npy` outputs, created when missing. Default: none;
   * the result then carries the arrays instead.
   */
  out?: string;
  /** Distance metric. Default: `"euclidean"`. */
  metric?: Metric;
  /**
   * Cosine and zero vectors: `"throw"` rejects them (naming the row) before
   * the job starts; `"one"` gives them distance 1 to everything.
   * Default: `"throw"`.
   */
  zeroVector?: ZeroVectorPolicy;
  /**
   * Self-search only: skip each row's own index. Must be false (or absent)
   * with a `query`. Default: true for self-search, false with a query.
   */
  excludeSelf?: boolean;
  /** Aborting it stops the job after the block in progress; rerun to resume. */
  signal?: AbortSignal;
  /** Progress and warning events (`run-start`, `step-done`, ...). */
  onEvent?: (event: JobEvent) => void;
  /** Start a new run even if the latest one is unfinished with another config. Default: false. */
  newRun?: boolean;
  /** Lock options, e.g. `{ waitMs }`. Default: fail at once if locked. */
  lock?: AcquireLockOptions;
  /** Stop gracefully on SIGINT/SIGTERM, as `runJob` does. Default: true. */
  handleSignals?: boolean;
  /**
   * Share the blocks with other processes running the same job on the same
   * store (on any machines): each takes block leases, computes and commits
   * blocks, then one assembles the outputs while the others wait for it (see
   * `runSharedParts`). The outputs are the same bytes as a single process's.
   * Supported by {@linkcode knnJob}. Default: false.
   */
  sharedWorkers?: boolean;
  /**
   * With `sharedWorkers`: a block lease without a heartbeat for this long is
   * taken over by another worker (a dead worker on the same host is taken
   * over at once). Default: 60 000.
   */
  leaseMs?: number;
}

/** Options for {@linkcode knnJob}. */
export interface KnnJobOptions extends KnnJobBaseOptions {
  /** Query matrix or file. Default: none (self-search of the reference). */
  query?: MatrixInput;
  /** Neighbours per query row, 1 to the usable reference rows. Required. */
  k: number;
}

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

/** Where the prepared reference of a run came from. */
export type PreparedSource = "computed" | "memo" | "stored" | "unused";

/** What every kNN job returns. */
export interface KnnJobInfo {
  /** Job name. */
  job: string;
  /** Run id. */
  run: string;
  /** An earlier run (unfinished or completed) was reopened. */
  resumed: boolean;
  /** The run was already completed before this call; nothing was computed. */
  alreadyCompleted: boolean;
  /** The plan the job ran with. */
  plan: KnnJobPlan;
  /** Block steps this call computed (0 when everything was stored). */
  computedBlocks: number;
  /** Block steps reused from another run through the memo namespace. */
  memoBlocks: number;
  /** Where the prepared reference came from in this call. */
  prepared: PreparedSource;
  /** Size and BLAKE3 of each output file (also when kept in memory). */
  outputs: Record<string, OutputFileInfo>;
  /** Output file paths by name; empty without `out`. */
  files: Record<string, string>;
  /** Paths this call (re)wrote. */
  written: string[];
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
 * The content identity of a matrix: BLAKE3 of its bytes, fingerprinted with
 * its shape and dtype. Jobs are keyed by it, so the same data gives the same
 * job wherever the file lives, and changed data a new one.
 *
 * @param matrix The matrix.
 * @returns 64 hex characters.
 *
 * @example Equal data, equal hash; another dtype, another hash
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom, matrixHash } from "./mod.ts";
 * const a = await matrixHash(matrixFrom(new Float32Array([1, 2, 3, 4]), 2));
 * const b = await matrixHash(matrixFrom(new Float32Array([1, 2, 3, 4]), 2));
 * const c = await matrixHash(matrixFrom(new Float64Array([1, 2, 3, 4]), 2));
 * assert.equal(a, b);
 * assert.notEqual(a, c);
 * ```
 */
export async function matrixHash(matrix: Matrix): Promise<string> {
  return await hashMatrix(matrix);
}

/** Inputs after loading and checking, with their content hashes. */
interface Inputs extends SearchInputs {
  refHash: string;
  queryHash: string | null;
}

async function loadInputs(
  refInput: MatrixInput,
  queryInput: MatrixInput | undefined,
  options: KnnJobBaseOptions,
): Promise<Inputs> {
  const inputs = await loadSearchInputs(refInput, queryInput, options);
  return {
    ...inputs,
    refHash: await hashMatrix(inputs.ref.matrix),
    queryHash: inputs.query === undefined
      ? null
      : await hashMatrix(inputs.query.matrix),
  };
}

function planOf(
  inputs: Inputs,
  kind: "knn" | "knn-graph" | "radius",
  k: number,
  options: KnnPlanOptions & { countOnly?: boolean },
): KnnJobPlan {
  const q = inputs.query?.matrix;
  return knnPlan(inputs.ref.matrix, {
    kind,
    k,
    ...(q === undefined ? {} : { query: q }),
    ...(options.memoryBudgetBytes === undefined
      ? {}
      : { memoryBudgetBytes: options.memoryBudgetBytes }),
    ...(options.blockRows === undefined
      ? {}
      : { blockRows: options.blockRows }),
    ...(options.maxBlockRows === undefined
      ? {}
      : { maxBlockRows: options.maxBlockRows }),
    ...(options.countOnly === undefined
      ? {}
      : { countOnly: options.countOnly }),
  });
}

/** Query-row ranges of the blocks. */
function blockRanges(rows: number, blockRows: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < rows; s += blockRows) {
    out.push([s, Math.min(rows, s + blockRows)]);
  }
  return out;
}

function rangeKey(prefix: string, range: [number, number], rows: number) {
  const width = String(rows).length;
  return `${prefix}/${String(range[0]).padStart(width, "0")}-${
    String(range[1]).padStart(width, "0")
  }`;
}

/** State shared by the three job bodies. */
class KnnRun {
  readonly job: Job;
  readonly inputs: Inputs;
  readonly options: KnnJobBaseOptions;
  readonly plan: KnnJobPlan;
  computedBlocks = 0;
  memoBlocks = 0;
  preparedSource: PreparedSource = "unused";
  #prepared: Promise<PreparedReference> | undefined;

  constructor(
    job: Job,
    inputs: Inputs,
    options: KnnJobBaseOptions,
    plan: KnnJobPlan,
  ) {
    this.job = job;
    this.inputs = inputs;
    this.options = options;
    this.plan = plan;
  }

  get queries(): Matrix {
    return (this.inputs.query ?? this.inputs.ref).matrix;
  }

  get completed(): boolean {
    return this.job.status === "completed";
  }

  /** The prepared reference: the `prepare` step, memoized across jobs. */
  prepared(): Promise<PreparedReference> {
    this.#prepared ??= this.#prepare();
    return this.#prepared;
  }

  async #prepare(): Promise<PreparedReference> {
    const { ref, refHash, metric, zeroVector } = this.inputs;
    const wasDone = this.job.isDone("prepare");
    let computed = false;
    const stored = await this.job.step("prepare", (ctx) => {
      computed = true;
      const started = performance.now();
      const p = prepareReference(ref.matrix, metric, { zeroVector });
      ctx.stats({
        rows: p.rows,
        ms: Math.round(performance.now() - started),
      });
      return {
        format: p.format,
        version: p.version,
        metric: p.metric,
        rows: p.rows,
        cols: p.cols,
        mean: p.mean,
        sqNorms: p.sqNorms,
        zeroVector: p.zeroVector,
        refHash,
      };
    }, {
      memo: `prepared/${KNN_CODE_VERSION}/${refHash}/${metric}/${zeroVector}`,
    });
    this.preparedSource = computed
      ? "computed"
      : !wasDone && this.job.stepRecord("prepare")?.memoHit
      ? "memo"
      : "stored";
    if (stored.refHash !== refHash) {
      throw new Error(
        `Cannot use the stored prepared reference of job "${this.job.name}": it belongs to another matrix; rerun with newRun: true (--new-run)`,
      );
    }
    return validatePrepared({ ...stored, reference: ref.matrix.data });
  }

  /**
   * Run a phase's block steps that are not done yet.
   *
   * @param prefix Step key prefix (`block`, `count`, `collect`).
   * @param compute Computes one block.
   * @param memo The block's memo key parts, or undefined for no memo.
   */
  async runBlocks<T>(
    prefix: string,
    compute: BlockCompute<T>,
    memo: (range: [number, number]) => Record<string, unknown>,
  ): Promise<void> {
    for (const range of this.ranges) {
      const key = this.key(prefix, range);
      if (this.job.isDone(key)) continue;
      this.job.signal.throwIfAborted();
      await this.stepBlock(key, range, compute, memo);
    }
  }

  async stepBlock<T>(
    key: string,
    range: [number, number],
    compute: BlockCompute<T>,
    memo: (range: [number, number]) => Record<string, unknown>,
  ): Promise<T> {
    const prepared = await this.prepared();
    let ran = false;
    const memoKey = await blockMemoKey(this.inputs, key, range, memo);
    const value = await this.job.step(key, (ctx) => {
      ran = true;
      const started = performance.now();
      const out = compute(prepared, range[0], range[1], ctx);
      ctx.stats({
        rows: range[1] - range[0],
        ms: Math.round(performance.now() - started),
      });
      return out;
    }, { memo: memoKey });
    if (ran) this.computedBlocks++;
    else if (this.job.stepRecord(key)?.memoHit) this.memoBlocks++;
    return value;
  }

  /** Read a done block back; recompute it if its chunks went missing. */
  async readBlock<T>(
    prefix: string,
    range: [number, number],
    compute: BlockCompute<T>,
    memo: (range: [number, number]) => Record<string, unknown>,
  ): Promise<T> {
    const key = this.key(prefix, range);
    try {
      return await this.job.read<T>(key);
    } catch (error) {
      if (
        error instanceof MissingChunkError ||
        error instanceof CorruptChunkError ||
        (error instanceof RangeError && !this.job.isDone(key))
      ) {
        return await this.stepBlock(key, range, compute, memo);
      }
      throw error;
    }
  }

  get ranges(): [number, number][] {
    return blockRanges(this.plan.queryRows, this.plan.blockRows);
  }

  key(prefix: string, range: [number, number]): string {
    return rangeKey(prefix, range, this.plan.queryRows);
  }

  /**
   * For a run completed before: the summary it recorded, and which output
   * files are missing or differ from the recorded hashes (`only`, empty when
   * every file is up to date). For any other run both are undefined, and
   * `only` is undefined without `out`: every file is then written.
   *
   * @param names The job's output file names.
   */
  async previousOutputs(names: string[]): Promise<PreviousOutputs> {
    if (!this.completed) return { expected: undefined, only: undefined };
    const state = await replayRun(this.job.store, this.job.name, this.job.run);
    const expected = state.end?.summary as JobSummary | undefined;
    const out = this.options.out;
    if (out === undefined || expected?.outputs === undefined) {
      return { expected, only: undefined };
    }
    const only = new Set<string>();
    for (const name of names) {
      const want = expected.outputs[name];
      const have = await hashFile(join(out, name));
      if (
        want === undefined || have === undefined ||
        have.blake3 !== want.blake3 || have.bytes !== want.bytes
      ) only.add(name);
    }
    return { expected, only };
  }

  warn(message: string): void {
    try {
      this.options.onEvent?.({ type: "warning", job: this.job.name, message });
    } catch {
      // A broken listener must not break the job.
    }
  }

  /** Fill outputs with `fill`, commit them, and build the common result. */
  async writeOutputs(
    specs: OutputSpec[],
    fill: (set: OutputSet) => Promise<void>,
    only: ReadonlySet<string> | undefined,
    expected: JobSummary | undefined,
  ): Promise<{ info: KnnJobInfo; set: OutputSet }> {
    const out = this.options.out;
    const set = await openOutputs(specs, {
      ...(out === undefined ? {} : { dir: out }),
      ...(only === undefined ? {} : { only }),
    });
    try {
      await fill(set);
    } catch (error) {
      await set.abort();
      throw error;
    }
    const { infos, written } = await set.commit();
    if (expected?.outputs !== undefined) {
      for (const [name, info] of Object.entries(infos)) {
        const want = expected.outputs[name];
        if (want !== undefined && want.blake3 !== info.blake3) {
          this.warn(
            `Output "${name}" of job "${this.job.name}" was rebuilt with BLAKE3 ${info.blake3}, but the completed run recorded ${want.blake3}`,
          );
        }
      }
    }
    return { info: this.info(infos, written), set };
  }

  info(
    outputs: Record<string, OutputFileInfo>,
    written: string[],
  ): KnnJobInfo {
    const out = this.options.out;
    const files: Record<string, string> = {};
    if (out !== undefined) {
      for (const name of Object.keys(outputs)) files[name] = join(out, name);
    }
    return {
      job: this.job.name,
      run: this.job.run,
      resumed: this.job.resumed,
      alreadyCompleted: this.completed,
      plan: this.plan,
      computedBlocks: this.computedBlocks,
      memoBlocks: this.memoBlocks,
      prepared: this.preparedSource,
      outputs,
      files,
      written,
    };
  }

  /** Mark the run completed with a summary: every block and output is done, even if a stop just arrived. */
  async complete(summary: JobSummary): Promise<void> {
    if (!this.completed) await this.job.complete(summary);
  }
}

/** The memo key of a block step: what any job computing the same block shares. */
async function blockMemoKey(
  inputs: Inputs,
  key: string,
  range: [number, number],
  memo: (range: [number, number]) => Record<string, unknown>,
): Promise<string> {
  return `${key.split("/")[0]}/${await fingerprint({
    v: KNN_CODE_VERSION,
    ref: inputs.refHash,
    query: inputs.queryHash,
    metric: inputs.metric,
    zeroVector: inputs.zeroVector,
    excludeSelf: inputs.excludeSelf,
    start: range[0],
    end: range[1],
    ...memo(range),
  })}`;
}

/** The blocks a family can share between workers (`sharedWorkers`). */
interface SharedBlocks<T> {
  prefix: string;
  compute: BlockCompute<T>;
  memo: (range: [number, number]) => Record<string, unknown>;
}

/** Compute the blocks together with other workers, before the job itself runs. */
async function shareBlocks<T>(
  name: string,
  inputs: Inputs,
  plan: KnnJobPlan,
  shared: SharedBlocks<T>,
  options: KnnJobBaseOptions,
): Promise<void> {
  let prepared: PreparedReference | undefined;
  const parts = await Promise.all(
    blockRanges(plan.queryRows, plan.blockRows).map(async (range) => {
      const key = rangeKey(shared.prefix, range, plan.queryRows);
      return {
        key,
        memo: await blockMemoKey(inputs, key, range, shared.memo),
        compute: (ctx: StepContext) => {
          // Prepared once per process; a pure function of the reference.
          prepared ??= prepareReference(inputs.ref.matrix, inputs.metric, {
            zeroVector: inputs.zeroVector,
          });
          const started = performance.now();
          const out = shared.compute(prepared, range[0], range[1], ctx);
          ctx.stats({
            rows: range[1] - range[0],
            ms: Math.round(performance.now() - started),
          });
          return out;
        },
      };
    }),
  );
  await runSharedParts(name, parts, {
    memo: KNN_MEMO_NAMESPACE,
    version: KNN_CODE_VERSION,
    kind: "knn-block",
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
  });
}

type BlockCompute<T> = (
  prepared: PreparedReference,
  start: number,
  end: number,
  ctx: StepContext,
) => T;

/** What a completed kNN run records in its end record. */
interface JobSummary {
  outputs?: Record<string, OutputFileInfo>;
  [field: string]: unknown;
}

/** What {@linkcode KnnRun.previousOutputs} finds. */
interface PreviousOutputs {
  /** The summary of the run, when it was completed before. */
  expected: JobSummary | undefined;
  /** The output files to write; undefined for all of them. */
  only: Set<string> | undefined;
}

async function runKnnFamily<T>(
  kind: "knn" | "knn-graph" | "radius",
  inputs: Inputs,
  plan: KnnJobPlan,
  config: Record<string, unknown>,
  options: KnnJobBaseOptions,
  body: (run: KnnRun) => Promise<T>,
  shared?: SharedBlocks<unknown>,
): Promise<T> {
  const fullConfig = {
    op: kind,
    refHash: inputs.refHash,
    queryHash: inputs.queryHash,
    metric: inputs.metric,
    zeroVector: inputs.zeroVector,
    excludeSelf: inputs.excludeSelf,
    blockRows: plan.blockRows,
    ...config,
  };
  const name = options.job ??
    `${kind}-${(await fingerprint(fullConfig)).slice(0, 12)}`;
  const jobOptions: RunJobOptions = {
    kind,
    config: fullConfig,
    version: KNN_CODE_VERSION,
    memo: KNN_MEMO_NAMESPACE,
    total: plan.steps,
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.newRun === undefined ? {} : { newRun: options.newRun }),
    ...(options.lock === undefined ? {} : { lock: options.lock }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
    ...(options.handleSignals === undefined
      ? {}
      : { handleSignals: options.handleSignals }),
  };
  if (options.sharedWorkers && shared !== undefined) {
    await shareBlocks(name, inputs, plan, shared, options);
    // Every block is committed: one worker assembles, the others wait for it
    // and then find the run completed.
    jobOptions.lock = { ...options.lock, waitMs: 7 * 24 * 3_600_000 };
  }
  return await runJob(
    name,
    jobOptions,
    (job) => body(new KnnRun(job, inputs, options, plan)),
  );
}

function knnBlockCompute(k: number, excludeSelf: boolean, queries: Matrix) {
  return (
    prepared: PreparedReference,
    start: number,
    end: number,
  ): StoredKnnBlock => {
    const b = searchKnn(prepared, queries, { k, start, end, excludeSelf });
    return { index: b.index, distance: b.distance };
  };
}

interface StoredKnnBlock {
  index: Int32Array;
  distance: Float32Array;
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
 * const options = { k: 1, store: "memory:knn-job-example", handleSignals: false, blockRows: 2 };
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
  const inputs = await loadInputs(ref, options.query, options);
  const k = options.k;
  checkK(k, inputs.ref.matrix.rows, inputs.excludeSelf);
  const plan = planOf(inputs, "knn", k, options);
  const memo = () => ({ op: "knn", k });
  const queries = (inputs.query ?? inputs.ref).matrix;
  return await runKnnFamily(
    "knn",
    inputs,
    plan,
    { k },
    options,
    async (run) => {
      const compute = knnBlockCompute(k, inputs.excludeSelf, run.queries);
      const names = ["index.npy", "distance.npy"];
      const { expected, only } = await run.previousOutputs(names);
      if (only?.size === 0) {
        return { ...run.info(expected!.outputs!, []), rows: plan.queryRows, k };
      }
      if (!run.completed) await run.runBlocks("block", compute, memo);
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
      compute: knnBlockCompute(k, inputs.excludeSelf, queries),
      memo,
    },
  );
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
 * const g = await knnGraphJob(ref, { k: 1, store: "memory:graph-example", handleSignals: false });
 * assert.equal(g.edges, 5);
 * assert.deepEqual(Array.from(g.to!), [1, 0, 3, 2, 3]);
 * const u = await knnGraphJob(ref, { k: 1, symmetrize: "union", store: "memory:graph-example", handleSignals: false });
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
  const inputs = await loadInputs(ref, undefined, options);
  const k = options.k;
  checkK(k, inputs.ref.matrix.rows, inputs.excludeSelf);
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
      const compute = knnBlockCompute(k, inputs.excludeSelf, run.queries);
      const memo = () => ({ op: "knn", k });
      const third = kind === "snn" ? "weight.npy" : "distance.npy";
      const names = ["from.npy", "to.npy", third];
      const { expected, only } = await run.previousOutputs(names);
      if (only?.size === 0) {
        return {
          ...run.info(expected!.outputs!, []),
          edges: Number(expected!.edges),
        };
      }
      if (!run.completed) await run.runBlocks("block", compute, memo);
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
 * const r = await radiusJob(ref, { radius: 1, excludeSelf: false, store: "memory:radius-example", handleSignals: false });
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
  const inputs = await loadInputs(ref, options.query, options);
  const plan = planOf(inputs, "radius", 1, { ...options, countOnly });
  return await runKnnFamily(
    "radius",
    inputs,
    plan,
    { radius, countOnly },
    options,
    async (run) => {
      const excludeSelf = inputs.excludeSelf;
      const queries = run.queries;
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
      const { expected, only } = await run.previousOutputs(names);
      if (only?.size === 0) {
        return {
          ...run.info(expected!.outputs!, []),
          rows: plan.queryRows,
          totalMatches: Number(expected!.totalMatches),
        };
      }
      if (!run.completed) await run.runBlocks("count", count, memo);
      const n = plan.queryRows;
      const counts = new Int32Array(n);
      for (const range of run.ranges) {
        counts.set(await run.readBlock("count", range, count, memo), range[0]);
      }
      const totalMatches = sum(counts);
      if (!countOnly && !run.completed) {
        await run.runBlocks("collect", collect, memo);
      }
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
                } holds ${b.index.length} matches, but its count step found ${want}; rerun with newRun: true (--new-run)`,
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

function sum(values: Int32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
}
