/**
 * The run harness the kNN jobs share: loading and hashing inputs, planning,
 * the `prepare` step, block steps keyed by query-row range (memoized across
 * jobs), output files, and the completed-run checks. Internal to `lib/knn/`.
 *
 * @module
 */

import { join } from "node:path";
import { type Job, runJob, type RunJobOptions } from "../job.ts";
import type { StepContext } from "../job.ts";
import { replayRun } from "../replay.ts";
import { runSharedParts } from "../shared_work.ts";
import { fingerprint } from "../../store/cbor.ts";
import { extname } from "node:path";
import { hashMatrix } from "../io/matrix.ts";
import { readMatrixFileInfo } from "../io/npy.ts";
import {
  checkSameDim,
  checkZeroRows,
  type LoadedMatrix,
  loadMatrix,
  type MatrixInput,
  resolveSearchOptions,
  type SearchInputs,
} from "./_inputs.ts";
import {
  readMatrixPass,
  readRows,
  streamedMean,
  type StreamedReference,
  streamSqNorms,
} from "./_ref_file.ts";
import { openStreamPool, type StreamPool } from "./_stream_pool.ts";
import {
  hashFile,
  openOutputs,
  type OutputFileInfo,
  type OutputSet,
  type OutputSpec,
} from "./_outputs.ts";
import {
  type KnnBlockSizeOptions,
  type KnnJobPlan,
  planKnnJob,
  streamsReference,
} from "./job_plan.ts";
import {
  KNN_CODE_VERSION,
  KNN_MEMO_NAMESPACE,
  type KnnJobBaseOptions,
  type KnnJobInfo,
  type PreparedSource,
} from "./jobs.ts";
import {
  type Metric,
  type PreparedReference,
  prepareReference,
  validatePrepared,
  type ZeroVectorPolicy,
} from "./kernel.ts";
import type { Matrix } from "./matrix.ts";
import { searchKnn } from "./search.ts";
import { type KnnPool, openKnnPool } from "./kernel_threads.ts";

/** Stored blocks checked at once on a rerun of a completed run. */
const CHECK_CONCURRENCY = 8;

/** Inputs after loading and checking, with their content hashes. */
export interface Inputs extends Omit<SearchInputs, "ref"> {
  /** The reference in memory; undefined when it is streamed. */
  ref: LoadedMatrix | undefined;
  /** A reference left in its `.npy` file, read in tiles by every block. */
  refFile: StreamedReference | undefined;
  refRows: number;
  refCols: number;
  refHash: string;
  queryHash: string | null;
}

/** What a job's loading needs to know to choose how to hold the reference. */
export interface LoadOptions extends KnnJobBaseOptions {
  /** The job kind (only kNN jobs stream). */
  kind: "knn" | "knn-graph" | "radius";
}

/**
 * Check the options, then read and hash the inputs: a `.npy` file in one
 * pass (hashed while it is read), kept in memory, or (a kNN job whose
 * reference does not fit `memoryBudgetBytes`) left in its file.
 */
export async function loadInputs(
  refInput: MatrixInput,
  queryInput: MatrixInput | undefined,
  options: LoadOptions,
): Promise<Inputs> {
  const resolved = await resolveSearchOptions(
    queryInput !== undefined,
    options,
  );
  const rejectZero = resolved.metric === "cosine" &&
    resolved.zeroVector === "throw";
  let streamed = false;
  if (isNpyPath(refInput) && options.memoryBudgetBytes !== undefined) {
    const info = await readMatrixFileInfo(refInput);
    const query = queryInput === undefined
      ? undefined
      : typeof queryInput === "string"
      ? await readMatrixFileInfo(queryInput)
      : queryInput;
    streamed = streamsReference(info, {
      kind: options.kind,
      streamable: true,
      memoryBudgetBytes: options.memoryBudgetBytes,
      ...(query === undefined || typeof query.rows !== "number"
        ? {}
        : { query: { rows: query.rows, cols: query.cols } }),
      ...(options.threads === undefined ? {} : { threads: options.threads }),
    });
  }
  let ref: LoadedMatrix | undefined;
  let refFile: StreamedReference | undefined;
  let refHash: string;
  const refLabel = typeof refInput === "string"
    ? `reference matrix "${refInput}"`
    : "reference matrix";
  if (isNpyPath(refInput)) {
    const pass = await readMatrixPass(refInput, {
      label: refLabel,
      keep: !streamed,
      // Kept matrices are checked below, in the order of in-memory inputs.
      rejectZero: streamed && rejectZero,
    });
    refHash = pass.hash;
    if (pass.matrix === undefined) refFile = pass.file;
    else ref = { matrix: pass.matrix, label: refLabel };
  } else {
    ref = await loadMatrix(refInput, "reference");
    refHash = await hashMatrix(ref.matrix);
  }
  let query: LoadedMatrix | undefined;
  let queryHash: string | null = null;
  if (isNpyPath(queryInput)) {
    const label = `query matrix "${queryInput}"`;
    const pass = await readMatrixPass(queryInput, {
      label,
      keep: true,
      rejectZero: false,
    });
    query = { matrix: pass.matrix!, label };
    queryHash = pass.hash;
  } else if (queryInput !== undefined) {
    query = await loadMatrix(queryInput, "query");
    queryHash = await hashMatrix(query.matrix);
  }
  const shape = ref ??
    { matrix: { rows: refFile!.rows, cols: refFile!.cols }, label: refLabel };
  if (query !== undefined) checkSameDim(shape as LoadedMatrix, query);
  if (ref !== undefined) {
    checkZeroRows(ref, resolved.metric, resolved.zeroVector);
  }
  if (query !== undefined) {
    checkZeroRows(query, resolved.metric, resolved.zeroVector);
  }
  return {
    ...resolved,
    ref,
    refFile,
    refRows: shape.matrix.rows,
    refCols: shape.matrix.cols,
    query,
    refHash,
    queryHash,
  };
}

function isNpyPath(input: MatrixInput | undefined): input is string {
  return typeof input === "string" && extname(input).toLowerCase() === ".npy";
}

/** The reference in memory; jobs that never stream it call this. */
export function refMatrix(inputs: Inputs): LoadedMatrix {
  if (inputs.ref === undefined) {
    throw new Error("Cannot search: the reference was not loaded in memory");
  }
  return inputs.ref;
}

export function planOf(
  inputs: Inputs,
  kind: "knn" | "knn-graph" | "radius",
  k: number,
  options: KnnBlockSizeOptions & { countOnly?: boolean; threads?: number },
): KnnJobPlan {
  const q = inputs.query?.matrix;
  return planKnnJob({ rows: inputs.refRows, cols: inputs.refCols }, {
    kind,
    k,
    ...(q === undefined ? {} : { query: q }),
    ...(inputs.refFile === undefined ? {} : { streamable: true }),
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
    ...(options.threads === undefined ? {} : { threads: options.threads }),
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
export class KnnRun {
  readonly job: Job;
  readonly inputs: Inputs;
  readonly options: KnnJobBaseOptions;
  readonly plan: KnnJobPlan;
  /** The run was completed when this call opened it. */
  readonly completedBefore: boolean;
  computedBlocks = 0;
  memoBlocks = 0;
  preparedSource: PreparedSource = "unused";
  /** Worker threads for the blocks, when the plan has more than one. */
  pool: KnnPool | undefined;
  /** Searches the blocks of a streamed reference, on the plan's threads. */
  streamPool: StreamPool | undefined;
  #prepared: Promise<PreparedReference> | undefined;
  /**
   * Keep the blocks this call computes until the outputs take them, instead
   * of reading them back from the store (their size is the outputs').
   */
  keepFresh = false;
  readonly #fresh = new Map<string, unknown>();

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
    this.completedBefore = job.status === "completed";
  }

  /** The query matrix; undefined for a self-search of a streamed reference. */
  get queries(): Matrix | undefined {
    return (this.inputs.query ?? this.inputs.ref)?.matrix;
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
    const { ref, refFile, refHash, metric, zeroVector } = this.inputs;
    const wasDone = this.job.isDone("prepare");
    let computed = false;
    const stored = await this.job.step("prepare", async (ctx) => {
      computed = true;
      const started = performance.now();
      const p = ref === undefined
        ? await prepareStreamed(refFile!, metric, zeroVector)
        : prepareReference(ref.matrix, metric, { zeroVector });
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
        `Cannot use the stored prepared reference of job "${this.job.name}": it belongs to another matrix; rerun with newRun: true`,
      );
    }
    if (ref === undefined) {
      // The rows stay in the file: blocks read them in tiles.
      return validatePrepared({ ...stored, reference: NO_ROWS }, {
        withoutReference: true,
      });
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
    const value = await this.job.step(key, async (ctx) => {
      ran = true;
      const started = performance.now();
      const out = await compute(prepared, range[0], range[1], ctx);
      ctx.stats({
        rows: range[1] - range[0],
        ms: Math.round(performance.now() - started),
      });
      return out;
    }, { memo: memoKey });
    if (ran) {
      this.computedBlocks++;
      if (this.keepFresh) this.#fresh.set(key, value);
    } else if (this.job.stepRecord(key)?.memoHit) this.memoBlocks++;
    return value;
  }

  /**
   * A block's output: read back when stored intact, else computed now.
   * `job.step` is the runtime's one read-or-recompute path: a missing or
   * corrupt chunk is deleted, the step forgotten and recomputed.
   */
  readBlock<T>(
    prefix: string,
    range: [number, number],
    compute: BlockCompute<T>,
    memo: (range: [number, number]) => Record<string, unknown>,
  ): Promise<T> {
    const key = this.key(prefix, range);
    // Computed by this call: the value it stored, without reading it back.
    if (this.#fresh.has(key)) {
      const value = this.#fresh.get(key) as T;
      this.#fresh.delete(key);
      return Promise.resolve(value);
    }
    return this.stepBlock(key, range, compute, memo);
  }

  /**
   * For a run completed before this call: read and hash every chunk of its
   * steps (`prepare` and the given phases), so that a rerun never trusts a
   * corrupt block because the output files still look right. Damaged steps
   * are forgotten (corrupt chunks deleted); `prepare` is recomputed here, the
   * blocks by the next {@linkcode KnnRun.runBlocks}.
   *
   * @param prefixes The phases' step key prefixes.
   */
  async checkStored(prefixes: string[]): Promise<void> {
    if (!this.completedBefore) return;
    const keys = prefixes.flatMap((p) =>
      this.ranges.map((r) => this.key(p, r))
    );
    if (!(await this.job.checkStep("prepare", { readData: true }))) {
      await this.prepared();
    }
    // Several at a time: each check is a read and a hash, mostly waiting on I/O.
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        await this.job.checkStep(keys[next++]!, { readData: true });
      }
    };
    await Promise.all(Array.from({ length: CHECK_CONCURRENCY }, worker));
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
    if (!this.completedBefore) {
      return { expected: undefined, only: undefined };
    }
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

  /**
   * When every output file of a run completed before is up to date: record
   * the run complete and return its result, without reading the blocks again.
   *
   * @param previous What {@linkcode KnnRun.previousOutputs} found.
   * @param fields The job's own result fields, from the recorded summary.
   * @returns The result, or undefined when some file must be written.
   */
  async finishUnchanged<R>(
    previous: PreviousOutputs,
    fields: (summary: JobSummary) => R,
  ): Promise<(KnnJobInfo & R) | undefined> {
    const { expected, only } = previous;
    if (only?.size !== 0 || expected?.outputs === undefined) return undefined;
    const result = { ...this.info(expected.outputs, []), ...fields(expected) };
    await this.complete(expected);
    return result;
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
export interface SharedBlocks<T> {
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
          prepared ??= prepareReference(
            refMatrix(inputs).matrix,
            inputs.metric,
            {
              zeroVector: inputs.zeroVector,
            },
          );
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

export type BlockCompute<T> = (
  prepared: PreparedReference,
  start: number,
  end: number,
  ctx: StepContext,
) => T | Promise<T>;

/** What a completed kNN run records in its end record. */
export interface JobSummary {
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

export async function runKnnFamily<T>(
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
  };
  if (
    options.sharedWorkers && shared !== undefined && inputs.ref === undefined
  ) {
    throw new RangeError(
      `Cannot share the blocks of job "${name}" between workers: its reference is streamed from its file (it does not fit memoryBudgetBytes = ${options.memoryBudgetBytes}), and sharedWorkers needs it in memory; raise memoryBudgetBytes or drop sharedWorkers`,
    );
  }
  if (options.sharedWorkers && shared !== undefined) {
    await shareBlocks(name, inputs, plan, shared, options);
    // Every block is committed: one worker assembles, the others wait for it
    // and then find the run completed.
    jobOptions.lock = { ...options.lock, waitMs: 7 * 24 * 3_600_000 };
  }
  // A block is still one step: its rows are split between the threads.
  const streamed = plan.reference === "streamed";
  const pool = kind !== "radius" && plan.threads > 1 && !streamed
    ? openKnnPool({ threads: plan.threads })
    : undefined;
  const streamPool = streamed ? openStreamPool(plan.threads) : undefined;
  try {
    return await runJob(name, jobOptions, (job) => {
      const run = new KnnRun(job, inputs, options, plan);
      run.pool = pool;
      run.streamPool = streamPool;
      return body(run);
    });
  } finally {
    pool?.close();
    streamPool?.close();
  }
}

/** The prepared reference of a streamed job: the rows stay in the file. */
const NO_ROWS = new Float32Array(0);

/** The prepared form of a streamed reference: means from the reading pass, then a norms pass. */
async function prepareStreamed(
  refFile: StreamedReference,
  metric: Metric,
  zeroVector: ZeroVectorPolicy,
): Promise<PreparedReference> {
  const mean = streamedMean(refFile, metric);
  const sqNorms = await streamSqNorms(
    refFile,
    mean,
    metric === "cosine" && zeroVector === "throw",
  );
  return {
    format: "cairn.knn.prepared",
    version: 1,
    metric,
    rows: refFile.rows,
    cols: refFile.cols,
    reference: NO_ROWS,
    mean,
    sqNorms,
    zeroVector,
  };
}

/**
 * The block compute of a kNN job whose reference is streamed: the block's
 * query rows against every tile of the file, in order, on the plan's threads.
 *
 * @param pool Searches the blocks, keeping the tile buffers between them.
 *   Default: one of the call's own, with the plan's threads.
 */
export function streamedBlockCompute(
  k: number,
  inputs: Inputs,
  plan: KnnJobPlan,
  pool?: StreamPool,
) {
  const refFile = inputs.refFile!;
  return async (
    prepared: PreparedReference,
    start: number,
    end: number,
    ctx?: StepContext,
  ): Promise<StoredKnnBlock> => {
    const { reference: _rows, ...meta } = prepared;
    const q = inputs.query?.matrix;
    const queries = q === undefined ? await readRows(refFile, start, end) : {
      data: q.data.subarray(start * q.cols, end * q.cols),
      rows: end - start,
      cols: q.cols,
    };
    const options = {
      k,
      queryOffset: start,
      excludeSelf: inputs.excludeSelf,
      ref: refFile,
      tileRows: plan.tileRows!,
      tileBuffers: plan.tileBuffers ?? 1,
      ...(ctx === undefined ? {} : { signal: ctx.signal }),
    };
    if (pool !== undefined) return pool.searchBlock(meta, queries, options);
    const own = openStreamPool(plan.threads);
    try {
      return await own.searchBlock(meta, queries, options);
    } finally {
      own.close();
    }
  };
}

export function knnBlockCompute(
  k: number,
  excludeSelf: boolean,
  queries: Matrix,
  pool?: KnnPool,
) {
  return async (
    prepared: PreparedReference,
    start: number,
    end: number,
  ): Promise<StoredKnnBlock> => {
    const options = { k, start, end, excludeSelf };
    const b = pool === undefined
      ? searchKnn(prepared, queries, options)
      : await pool.search(prepared, queries, options);
    return { index: b.index, distance: b.distance };
  };
}

export interface StoredKnnBlock {
  index: Int32Array;
  distance: Float32Array;
}

/** Sum of the counts. */
export function sum(values: Int32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
}
