/**
 * Running a dataset processor as a resumable job: items are processed in
 * order, and every N items or T ms (and on a graceful stop or a failure) a
 * checkpoint step stores their output records with the seed's state. A rerun
 * resumes after the newest intact checkpoint; the output file is assembled
 * from the checkpoints, atomically, when the last item is done.
 *
 * @module
 */
import { stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { makeDirs, removeDeadTemps } from "../../store/files.ts";
import { CorruptLogError } from "../../store/manifest_log.ts";
import { LockedError } from "../../store/lock.ts";
import type { AcquireLockOptions } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import { forgetRuns, type RetentionPolicy } from "../forget.ts";
import {
  ConfigChangedError,
  InterruptedError,
  type Job,
  MissingStepOutputError,
  openJob,
} from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { replayJob, replayRun } from "../replay.ts";
import { sleep } from "../retry.ts";
import { writeFileAtomically } from "../write_file_atomically.ts";
import {
  type CheckpointData,
  type CheckpointEntry,
  checkpointId,
  checkpointKey,
  checkpointsOf,
  datasetJob,
  DEFAULT_MAX_CHECKPOINTS,
  lineageOf,
  metaOf,
  PROCESSOR_KIND,
  type ProcessorRunConfig,
  RECENT_ERRORS,
  seedOrder,
  STATE_VERSION,
} from "./_checkpoint.ts";
import { inputFingerprint } from "./_files.ts";
import { getProcessor, loadProcessor } from "./registry.ts";
import type {
  CheckpointStatus,
  ItemError,
  Processor,
  ProcessorCheckpointState,
  ProcessorEvent,
  ProcessorItem,
  SetupContext,
} from "./types.ts";

/** Options shared by {@linkcode runProcessor} and {@linkcode resumeProcessor}. */
export interface ProcessorRunOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Write a checkpoint after this many items. Default: 1000. */
  checkpointEvery?: number;
  /** Write a checkpoint when this many ms passed since the last one. Default: 300000 (5 minutes). */
  checkpointIntervalMs?: number;
  /** Checkpoints kept as restore points per dataset; older runs are forgotten. Default: 10. */
  maxCheckpoints?: number;
  /** Retries after a failure, each resuming from the newest checkpoint. Default: 3. */
  maxRetries?: number;
  /** Wait before each retry, in ms. Default: 5000. */
  retryDelayMs?: number;
  /** Aborting it stops after the current item, writes a final checkpoint and rejects with `InterruptedError`. */
  signal?: AbortSignal;
  /** Checkpoint, resume, retry, item-error and warning events. */
  onEvent?: (event: ProcessorEvent) => void;
  /** Lock options (wait, staleness). Default: fail at once when another process holds the dataset. */
  lock?: AcquireLockOptions;
  /** Tags recorded with a new run, for `forget --keep-tag`. Default: none. */
  tags?: string[];
  /** A restic-style policy applied to the dataset's runs after each run. Default: none. */
  retain?: RetentionPolicy;
}

/** Options for {@linkcode runProcessor}. */
export interface RunProcessorOptions extends ProcessorRunOptions {
  /** The dataset name: one run at a time per dataset. */
  dataset: string;
  /** The input path (a directory or file, as the processor expects). */
  input: string;
  /** The output file (JSONL), written atomically when the run completes. */
  out: string;
  /** Processor parameters, recorded with the run. Default: `{}`. */
  params?: Record<string, unknown>;
  /** Resume from this checkpoint id (an older one too) instead of the newest. Default: the newest intact one. */
  fromCheckpoint?: string;
  /** Start a new run even when the latest one could be resumed or has completed. Default: false. */
  newRun?: boolean;
  /** `MODULE#EXPORT` the processor came from, recorded so `resume` can load it. Default: none (a registered name). */
  module?: string;
}

/** What a processor run did. */
export interface ProcessorRunResult {
  /** The dataset name. */
  dataset: string;
  /** The run id in the dataset's job. */
  run: string;
  /** The seed state of the final checkpoint. */
  state: ProcessorCheckpointState;
  /** The output file. */
  out: string;
  /** Records in the output file. */
  records: number;
  /** Whether the run continued an earlier one. */
  resumed: boolean;
  /** Whether the run had completed before and nothing was computed. */
  alreadyCompleted: boolean;
  /** Attempts made (1 plus the retries used). */
  attempts: number;
}

function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) {
    throw new RangeError(
      `Cannot run processor: ${name} must be a whole number >= ${min}, found ${v}`,
    );
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether a failure may pass on a retry (bad input, locks and interruptions will not). */
function retryable(error: unknown): boolean {
  return !(error instanceof InterruptedError || error instanceof LockedError ||
    error instanceof ConfigChangedError || error instanceof CorruptLogError ||
    error instanceof TypeError || error instanceof RangeError ||
    error instanceof SyntaxError);
}

/**
 * Run a processor over a dataset with checkpoints, resuming the dataset's
 * unfinished run if there is one. Failures are retried `maxRetries` times
 * from the newest checkpoint. A graceful stop (`signal`) writes a final
 * checkpoint, then rejects with `InterruptedError`; a second copy on the same
 * dataset rejects with `LockedError`.
 *
 * @param processor The processor.
 * @param options Dataset, input, output, checkpoint frequency and retries.
 * @returns What the run did.
 *
 * @example Index numbers, checkpointing every 2 items
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { runProcessor } from "./run.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-proc-"));
 * const squares = {
 *   name: "squares",
 *   *items() { for (let i = 1; i <= 5; i++) yield { id: `n${i}`, n: i }; },
 *   process: (item: { id: string; n: number }, ctx: { nextId(p: string): string }) =>
 *     [{ id: ctx.nextId("S"), square: item.n * item.n }],
 * };
 * const result = await runProcessor(squares, {
 *   store: "memory:processor-run-example",
 *   dataset: "numbers",
 *   input: dir,
 *   out: join(dir, "squares.jsonl"),
 *   checkpointEvery: 2,
 * });
 * assert.equal(result.state.processed_count, 5);
 * const lines = (await readFile(join(dir, "squares.jsonl"), "utf8")).trim().split("\n");
 * assert.deepEqual(JSON.parse(lines[4]!), { id: "S000005", square: 25 });
 * ```
 */
export async function runProcessor<I extends ProcessorItem>(
  processor: Processor<I>,
  options: RunProcessorOptions,
): Promise<ProcessorRunResult> {
  if (
    typeof processor !== "object" || processor === null ||
    typeof processor.name !== "string" ||
    typeof processor.items !== "function" ||
    typeof processor.process !== "function"
  ) {
    throw new TypeError(
      "Cannot run processor: expected an object with name, items() and process()",
    );
  }
  for (const key of ["dataset", "input", "out"] as const) {
    if (typeof options[key] !== "string" || options[key] === "") {
      throw new TypeError(
        `Cannot run processor "${processor.name}": ${key} must be a non-empty string, found ${
          JSON.stringify(options[key])
        }`,
      );
    }
  }
  datasetJob(options.dataset);
  checkInt("checkpointEvery", options.checkpointEvery, 1);
  checkInt("maxCheckpoints", options.maxCheckpoints, 1);
  checkInt("maxRetries", options.maxRetries, 0);
  const interval = options.checkpointIntervalMs;
  if (interval !== undefined && !(interval > 0)) {
    throw new RangeError(
      `Cannot run processor: checkpointIntervalMs must be a positive number, found ${interval}`,
    );
  }
  const store = await resolveStore(options.store);
  const config: ProcessorRunConfig = {
    processor: processor.name,
    ...(options.module === undefined ? {} : { module: options.module }),
    input: resolve(options.input),
    out: resolve(options.out),
    params: options.params ?? {},
  };
  const emit = (event: ProcessorEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken listener must not break the run.
    }
  };
  const maxRetries = options.maxRetries ?? 3;
  let from = options.fromCheckpoint;
  for (let attempt = 1;; attempt++) {
    try {
      const result = await attemptRun(processor, config, {
        ...options,
        store,
        emit,
        from,
        newRun: attempt === 1 && options.newRun === true,
      });
      return { ...result, attempts: attempt };
    } catch (error) {
      if (
        !retryable(error) || attempt > maxRetries || options.signal?.aborted
      ) throw error;
      const delayMs = options.retryDelayMs ?? 5000;
      emit({
        type: "retry",
        dataset: options.dataset,
        attempt,
        maxRetries,
        delayMs,
        error: message(error),
      });
      await sleep(delayMs, options.signal).catch(() => {
        throw new InterruptedError(
          datasetJob(options.dataset),
          signalName(options.signal),
        );
      });
      from = undefined;
    }
  }
}

interface AttemptOptions extends ProcessorRunOptions {
  store: Store;
  dataset: string;
  emit: (event: ProcessorEvent) => void;
  from: string | undefined;
  newRun: boolean;
}

/** The signal name an abort carries, if any (as `abortOnSignals` or a plain name gives it). */
function signalName(signal: AbortSignal | undefined): string | undefined {
  const reason: unknown = signal?.reason;
  if (reason instanceof InterruptedError) return reason.signal;
  const name = reason instanceof Error ? reason.cause : reason;
  return name === "SIGINT" || name === "SIGTERM" ? name : undefined;
}

async function fileExists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

/** Write the records of `lineage` to `out` as JSON lines, atomically. */
async function assemble(
  job: Job,
  lineage: readonly CheckpointEntry[],
  out: string,
): Promise<number> {
  let records = 0;
  // Directories made here are fsynced into their parents, or a power cut
  // could lose the output the run reported written.
  await makeDirs(dirname(out));
  // A writer killed here before left its temp file; the dataset lock is ours.
  await removeDeadTemps(dirname(out), basename(out));
  await writeFileAtomically(out, async (chunk) => {
    for (const entry of lineage) {
      const data = await job.read<CheckpointData>(entry.key);
      for (const line of data.lines) {
        await chunk(`${line}\n`);
        records++;
      }
    }
  });
  return records;
}

/** Forget the dataset's other runs that hold none of its newest `max` checkpoints. */
async function pruneDataset(
  store: Store,
  job: string,
  current: string,
  max: number,
): Promise<void> {
  const runs = await replayJob(store, job);
  const all = runs.flatMap((r) =>
    checkpointsOf(r.steps).map((c) => ({
      run: r.run,
      at: c.at,
      seq: c.meta.seq,
    }))
  ).sort((a, b) =>
    b.at.localeCompare(a.at) || b.run.localeCompare(a.run) || b.seq - a.seq
  );
  const kept = new Set(all.slice(0, max).map((c) => c.run));
  for (const r of runs) {
    if (r.run === current || r.status === "running" || kept.has(r.run)) {
      continue;
    }
    await store.deleteRun(job, r.run);
  }
}

async function attemptRun<I extends ProcessorItem>(
  processor: Processor<I>,
  config: ProcessorRunConfig,
  options: AttemptOptions,
): Promise<Omit<ProcessorRunResult, "attempts">> {
  const { dataset, emit, signal } = options;
  const name = datasetJob(dataset);
  const every = options.checkpointEvery ?? 1000;
  const intervalMs = options.checkpointIntervalMs ?? 300_000;
  const maxCheckpoints = options.maxCheckpoints ?? DEFAULT_MAX_CHECKPOINTS;
  // No signal for the job: this loop stops between items itself, so that the
  // final checkpoint can still be written.
  const open = (newRun: boolean) =>
    openJob(name, {
      store: options.store,
      kind: PROCESSOR_KIND,
      config,
      version: processor.version ?? "1",
      newRun,
      ...(options.lock === undefined ? {} : { lock: options.lock }),
      ...(options.tags === undefined ? {} : { tags: options.tags }),
      onEvent: (e) => {
        if (e.type === "warning") emit(e);
      },
    });
  const input = await inputFingerprint(config.input);
  let job = await open(options.newRun);
  const before = (job.summary as { input?: string } | undefined)?.input;
  if (
    job.status === "completed" && options.from === undefined &&
    before !== undefined && before !== input
  ) {
    // Its output is not this input's: process the input again.
    emit({
      type: "warning",
      job: name,
      message:
        `The input "${config.input}" of dataset "${dataset}" changed since run "${job.run}" completed (files, sizes or modification times differ); processing it again in a new run`,
    });
    await job.close();
    job = await open(true);
  }
  let onFailure: ((error: unknown) => Promise<unknown>) | undefined;
  try {
    const entries: CheckpointEntry[] = [];
    for (let seq = 1;; seq++) {
      const key = checkpointKey(seq);
      const record = job.stepRecord(key);
      const meta = metaOf(record);
      if (meta === undefined) break;
      entries.push({ key, meta, at: record!.at });
    }
    let seq = entries.length;
    let startKey: string | undefined;
    if (options.from !== undefined) {
      const found = entries.find((e) =>
        e.meta.state.checkpoint_id === options.from
      );
      const restorable = entries.slice(-maxCheckpoints);
      if (found === undefined) {
        throw new RangeError(
          `Cannot resume dataset "${dataset}" from checkpoint "${options.from}": its latest run has no such checkpoint; see "cairn processor ls" for the ids`,
        );
      }
      if (!restorable.includes(found)) {
        throw new RangeError(
          `Cannot resume dataset "${dataset}" from checkpoint "${options.from}": only the newest ${maxCheckpoints} checkpoints are restore points (maxCheckpoints)`,
        );
      }
      startKey = found.key;
    }
    let lineage = lineageOf(entries, startKey);
    let fallback: string | undefined;
    for (const [i, entry] of lineage.entries()) {
      try {
        await job.read(entry.key);
        continue;
      } catch (error) {
        // read() forgot the step and removed a corrupt chunk; anything else is not ours to handle.
        if (!(error instanceof MissingStepOutputError)) throw error;
      }
      const prev = lineage[i - 1];
      fallback =
        `Checkpoint "${entry.meta.state.checkpoint_id}" of dataset "${dataset}" is damaged (its output chunks are missing or corrupt); falling back to ${
          prev === undefined
            ? "the start"
            : `checkpoint "${prev.meta.state.checkpoint_id}"`
        }`;
      emit({ type: "warning", job: name, message: fallback });
      lineage = lineage.slice(0, i);
      break;
    }
    const base = lineage.at(-1)?.meta;
    if (
      job.status === "completed" && fallback === undefined &&
      options.from === undefined && base?.state.status === "completed"
    ) {
      const summary = job.summary as { records?: number } | undefined;
      const records = await fileExists(config.out)
        ? summary?.records ?? 0
        : await assemble(job, lineage, config.out);
      return {
        dataset,
        run: job.run,
        state: seedOrder(base.state),
        out: config.out,
        records,
        resumed: true,
        alreadyCompleted: true,
      };
    }

    const setup: SetupContext = {
      dataset,
      params: config.params,
      signal: signal ?? new AbortController().signal,
    };
    await processor.setup?.(config.input, setup);
    const total = (await processor.count?.(config.input, setup)) ??
      base?.state.processor_state.total_items ?? null;
    const startedAt = base?.state.start_time ?? new Date().toISOString();
    const counters: Record<string, number> = { ...base?.counters };
    const recentErrors: ItemError[] = [...(base?.recentErrors ?? [])];
    const datasetState: Record<string, unknown> = structuredClone(
      base?.state.processor_state.dataset_specific_state ?? {},
    );
    const stats = {
      success: base?.state.statistics.success_count ?? 0,
      error: base?.state.statistics.error_count ?? 0,
      skipped: base?.state.statistics.skipped_count ?? 0,
      ms: (base?.state.statistics.processing_time_seconds ?? 0) * 1000,
    };
    let position = base?.state.processor_state.current_position ?? 0;
    let lastProcessed = base?.state.last_processed_id ?? null;
    let lastGenerated = base?.state.last_generated_id ?? null;
    let ids: string[] = [];
    let lines: string[] = [];
    let lastCheckpointAt = Date.now();

    const writeCheckpoint = async (
      status: CheckpointStatus,
      error: string | null = null,
      note?: string,
    ): Promise<ProcessorCheckpointState> => {
      const at = new Date();
      seq++;
      const key = checkpointKey(seq);
      const processed = stats.success + stats.error + stats.skipped;
      const state: ProcessorCheckpointState = {
        checkpoint_id: checkpointId(dataset, job.run, seq),
        dataset,
        processor: processor.name,
        start_time: startedAt,
        last_update: at.toISOString(),
        processed_count: processed,
        last_processed_id: lastProcessed,
        last_generated_id: lastGenerated,
        status,
        error,
        processor_state: {
          current_position: position,
          total_items: total,
          dataset_specific_state: structuredClone(datasetState),
        },
        statistics: {
          success_count: stats.success,
          error_count: stats.error,
          skipped_count: stats.skipped,
          processing_time_seconds: Math.round(stats.ms) / 1000,
          average_processing_time_per_item_ms: processed === 0
            ? 0
            : Math.round((stats.ms / processed) * 1000) / 1000,
        },
        version: STATE_VERSION,
      };
      const meta = {
        seq,
        prev: lineage.at(-1)?.key ?? null,
        state,
        counters: { ...counters },
        recentErrors: [...recentErrors],
        items: ids.length,
        maxCheckpoints,
        ...(note === undefined ? {} : { fallback: note }),
      };
      const data: CheckpointData = { state, ids, lines };
      await job.step(key, (ctx) => {
        ctx.stats({ processor: meta });
        return data;
      });
      lineage.push({ key, meta, at: at.toISOString() });
      emit({
        type: "checkpoint",
        dataset,
        checkpointId: state.checkpoint_id,
        status,
        processed,
        items: ids.length,
        ...(total === null ? {} : { total }),
      });
      ids = [];
      lines = [];
      lastCheckpointAt = Date.now();
      return state;
    };

    onFailure = (error) => writeCheckpoint("failed", message(error));
    if (base !== undefined || fallback !== undefined) {
      await writeCheckpoint("resuming", null, fallback);
      emit({
        type: "resume",
        dataset,
        checkpointId: base?.state.checkpoint_id ?? "",
        position,
        ...(fallback === undefined ? {} : { fallback }),
      });
    }

    let stopped = false;
    let index = 0;
    // A due checkpoint is written once the next item arrives: when there is
    // none, the final `completed` checkpoint carries those items instead of
    // following an `in_progress` one with none.
    let due = false;
    for await (const item of processor.items(config.input, setup)) {
      if (index < position) {
        if (index === position - 1 && item.id !== lastProcessed) {
          throw new RangeError(
            `Cannot resume dataset "${dataset}": its input changed: item ${position} is "${item.id}" but the checkpoint says "${lastProcessed}"; start over with newRun (--new-run)`,
          );
        }
        index++;
        continue;
      }
      if (due) {
        due = false;
        await writeCheckpoint("in_progress");
      }
      if (signal?.aborted) {
        stopped = true;
        break;
      }
      if (typeof item?.id !== "string" || item.id === "") {
        throw new TypeError(
          `Cannot process dataset "${dataset}": item ${
            index + 1
          } of processor "${processor.name}" has no string id`,
        );
      }
      let skipped = false;
      const started = performance.now();
      try {
        const out = await processor.process(item, {
          ...setup,
          state: datasetState,
          nextId: (prefix: string) => {
            const n = (counters[prefix] ?? 0) + 1;
            counters[prefix] = n;
            lastGenerated = `${prefix}${String(n).padStart(6, "0")}`;
            return lastGenerated;
          },
          skip: () => {
            skipped = true;
          },
        });
        if (skipped) stats.skipped++;
        else {
          stats.success++;
          for (const record of out ?? []) {
            const line = JSON.stringify(record);
            if (line === undefined) {
              throw new TypeError(
                `Cannot store a record of item "${item.id}": it is not JSON (found ${typeof record})`,
              );
            }
            lines.push(line);
          }
        }
      } catch (error) {
        if (signal?.aborted) {
          stopped = true;
          break;
        }
        stats.error++;
        const itemError = { id: item.id, error: message(error) };
        recentErrors.push(itemError);
        if (recentErrors.length > RECENT_ERRORS) recentErrors.shift();
        emit({ type: "item-error", dataset, ...itemError });
      }
      stats.ms += performance.now() - started;
      index++;
      position = index;
      lastProcessed = item.id;
      ids.push(item.id);
      due = ids.length >= every || Date.now() - lastCheckpointAt >= intervalMs;
    }
    if (!stopped && index < position) {
      throw new RangeError(
        `Cannot resume dataset "${dataset}": its input changed: it has ${index} items but the checkpoint is at item ${position}; start over with newRun (--new-run)`,
      );
    }
    if (stopped) {
      await writeCheckpoint("in_progress");
      throw new InterruptedError(name, signalName(signal));
    }
    const state = await writeCheckpoint("completed");
    const written = await assemble(job, lineage, config.out);
    await pruneDataset(options.store, name, job.run, maxCheckpoints);
    await job.complete({
      processed: state.processed_count,
      records: written,
      input,
    });
    return {
      dataset,
      run: job.run,
      state,
      out: config.out,
      records: written,
      resumed: job.resumed,
      alreadyCompleted: false,
    };
  } catch (error) {
    if (error instanceof InterruptedError) {
      await pruneDataset(options.store, name, job.run, maxCheckpoints)
        .catch(() => {});
      throw error;
    }
    if (onFailure !== undefined && job.status === "running") {
      // Keep what was processed since the last checkpoint, and say why the run stopped.
      await onFailure(error).catch(() => {});
    }
    await job.fail(error);
    throw error;
  } finally {
    await job.close();
    if (options.retain !== undefined) {
      await forgetRuns(options.store, { ...options.retain, jobs: [name] });
    }
  }
}

/** Options for {@linkcode resumeProcessor}. */
export interface ResumeProcessorOptions extends ProcessorRunOptions {
  /** Resume from this checkpoint id (an older one too). Default: the newest intact one. */
  checkpoint?: string;
  /** The processor to use. Default: the one the run recorded, from the registry or its module. */
  processor?: Processor<ProcessorItem>;
}

/**
 * Resume a dataset's latest run with the processor, input, output and
 * parameters it was started with; a resume records a `resuming` checkpoint
 * first.
 *
 * @param dataset The dataset name.
 * @param options Store, checkpoint id and run options.
 * @returns What the run did.
 *
 * @example Resume from an older checkpoint
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { resumeProcessor, runProcessor } from "./run.ts";
 * import { processorStatus } from "./status.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-resume-"));
 * const store = "memory:processor-resume-example";
 * const letters = {
 *   name: "letters",
 *   *items() { for (const c of "abcd") yield { id: c }; },
 *   process: (item: { id: string }) => [item.id.toUpperCase()],
 * };
 * await runProcessor(letters, { store, dataset: "abc", input: dir, out: join(dir, "o.jsonl"), checkpointEvery: 1 });
 * const { checkpoints } = await processorStatus("abc", { store });
 * const second = checkpoints[1]!.checkpoint_id;
 * const again = await resumeProcessor("abc", { store, checkpoint: second, processor: letters });
 * assert.equal(again.state.processed_count, 4);
 * assert.equal(again.records, 4);
 * ```
 */
export async function resumeProcessor(
  dataset: string,
  options: ResumeProcessorOptions = {},
): Promise<ProcessorRunResult> {
  const name = datasetJob(dataset);
  const store = await resolveStore(options.store);
  const latest = (await store.listRuns(name)).at(-1);
  if (latest === undefined) {
    throw new RangeError(
      `Cannot resume dataset "${dataset}": it has no runs; start one with runProcessor`,
    );
  }
  const state = await replayRun(store, name, latest);
  const config = state.header.config as ProcessorRunConfig;
  const processor = options.processor ??
    (config.module !== undefined
      ? await loadProcessor(config.module)
      : await getProcessor(config.processor));
  const { checkpoint, processor: _, ...rest } = options;
  return await runProcessor(processor, {
    ...rest,
    store,
    dataset,
    input: config.input,
    out: config.out,
    params: config.params,
    ...(config.module === undefined ? {} : { module: config.module }),
    ...(checkpoint === undefined ? {} : { fromCheckpoint: checkpoint }),
  });
}
