/**
 * Jobs, runs and steps: the runtime every step family uses. Opening a job
 * takes its lock and replays the latest run's manifest; `step()` returns a
 * done step's stored output, or runs it, writes its output as chunks and only
 * then appends the done record.
 *
 * @module
 */
import { hostname } from "node:os";
import {
  type ChunkRef,
  CorruptChunkError,
  MissingChunkError,
} from "../store/chunk_store.ts";
import { encodeValue, fingerprint } from "../store/cbor.ts";
import type { AcquireLockOptions, JobLock } from "../store/lock.ts";
import type { ManifestLog } from "../store/manifest_log.ts";
import { assertName, type Store } from "../store/store.ts";
import type { JobEvent } from "./events.ts";
import { resolveStore } from "./open_store.ts";
import type {
  EndRecord,
  ManifestRecord,
  OutputRef,
  RunRecord,
  StepItems,
  StepRecord,
} from "./records.ts";
import { chunksOf } from "./records.ts";
import {
  DEFAULT_MAX_CHUNK_BYTES,
  readValueChunks,
  writeValueChunks,
} from "./output.ts";
import {
  latestRun,
  replayRun,
  type RunState,
  type RunStatus,
} from "./replay.ts";
import { retry, type RetryOptions } from "./retry.ts";
import { memoIndex } from "./memo.ts";
import { forgetRuns, type RetentionPolicy } from "./forget.ts";

/** Options for {@linkcode openJob}. */
export interface OpenJobOptions {
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** What made the run, shown by `cairn ls` ("map", "knn", …). Default: "job". */
  kind?: string;
  /** Everything that decides the results (small, CBOR-encodable). Default: `{}`. */
  config?: unknown;
  /** Version of the step code; change it when the code's results change. Default: "1". */
  version?: string;
  /**
   * The step code itself (functions or their source). Only fingerprinted: when it
   * changes but `version` does not, a `warning` event says so.
   */
  code?: unknown;
  /** Namespace in which steps with a `memo` key can reuse other runs' outputs. Default: none. */
  memo?: string;
  /** Start a new run even when the latest one could be resumed or has another config. Default: false. */
  newRun?: boolean;
  /** A new run's predecessor (a failed run it continues), recorded in its header. Default: none. */
  resumedFrom?: string;
  /** Lock options (wait, force, staleness). */
  lock?: AcquireLockOptions;
  /** Aborting it stops the job: no new steps start. */
  signal?: AbortSignal;
  /** Progress and warning events. */
  onEvent?: (event: JobEvent) => void;
  /** Expected number of steps, for progress. */
  total?: number;
  /** Retry policy for steps. Default: no retries. */
  retry?: RetryOptions;
  /** Largest chunk a step output is cut into. Default: 4 MiB. */
  maxChunkBytes?: number;
  /** Tags recorded in a new run's header, for retention (`keepTags`). Default: none. */
  tags?: string[];
  /**
   * Called once the job lock is held, before the run is chosen or created:
   * the place to pick a run to continue from the store without racing another
   * process. What it returns replaces `config` and `resumedFrom`; what it
   * throws is thrown by `openJob`, with the lock released. Default: none.
   */
  underLock?: () => Promise<UnderLockChoice | void> | UnderLockChoice | void;
}

/** What an {@linkcode OpenJobOptions.underLock} callback decides. */
export interface UnderLockChoice {
  /** Replaces the `config` option. */
  config?: unknown;
  /** Replaces the `resumedFrom` option. */
  resumedFrom?: string;
}

/** What a step function receives. */
export interface StepContext {
  /** The step's key. */
  key: string;
  /** 1-based attempt number within this process. */
  attempt: number;
  /** Aborted when the job is stopping; long steps may give up early. */
  signal: AbortSignal;
  /** Attach statistics to the step's done record. */
  stats(values: Record<string, unknown>): void;
  /** Attach per-item data (a batch's item keys) to the step's done record. */
  items(items: StepItems): void;
}

/** Options for {@linkcode Job.step}. */
export interface StepOptions {
  /** Retry policy for this step. Default: the job's. */
  retry?: RetryOptions;
  /** Key under which other runs in the job's memo namespace may reuse this output. */
  memo?: string;
}

/** The job stopped because of a signal or an abort; nothing is lost, rerun to resume. */
export class InterruptedError extends Error {
  /** The signal that stopped it, if any. */
  readonly signal: string | undefined;
  /** 130 for SIGINT, 143 for SIGTERM, else 130. */
  readonly exitCode: number;
  /**
   * Create the error for a stopped job.
   *
   * @param job The job name.
   * @param signal The signal name.
   */
  constructor(job: string, signal?: string) {
    super(
      `Job "${job}" was interrupted${
        signal ? ` by ${signal}` : ""
      }; rerun it to resume`,
    );
    this.name = "InterruptedError";
    this.signal = signal;
    this.exitCode = signal === "SIGTERM" ? 143 : 130;
  }
}

/** Options for {@linkcode Job.checkStep}. */
export interface CheckStepOptions {
  /** Read every chunk and check its hash, not only that it exists. Default: false. */
  readData?: boolean;
}

/** Why a step's output could not be read. */
export type MissingStepOutputReason = "not-done" | "missing" | "corrupt";

/**
 * A step's stored output cannot be read: the step is not done, or one of its
 * chunks is missing or corrupt. In the last two cases the job has forgotten
 * the step, so `job.step()` with the same key recomputes it.
 */
export class MissingStepOutputError extends Error {
  /** The job name. */
  readonly job: string;
  /** The step key. */
  readonly key: string;
  /** Why: not done, a chunk missing, or a chunk corrupt. */
  readonly reason: MissingStepOutputReason;
  /**
   * Create the error for a step whose output cannot be read.
   *
   * @param job The job name.
   * @param key The step key.
   * @param reason Why the output cannot be read.
   * @param options The chunk error, as `cause`.
   */
  constructor(
    job: string,
    key: string,
    reason: MissingStepOutputReason,
    options?: ErrorOptions,
  ) {
    super(
      reason === "not-done"
        ? `Cannot read step "${key}" of job "${job}": it is not done`
        : `Cannot read step "${key}" of job "${job}": a chunk of its output is ${reason}; run the step again to recompute it`,
      options,
    );
    this.name = "MissingStepOutputError";
    this.job = job;
    this.key = key;
    this.reason = reason;
  }
}

function reasonOf(
  error: MissingChunkError | CorruptChunkError,
): MissingStepOutputReason {
  return error instanceof CorruptChunkError ? "corrupt" : "missing";
}

/** The job's latest unfinished run has another config. */
export class ConfigChangedError extends Error {
  /** The run that has the other config. */
  readonly run: string;
  /** Human descriptions of what differs. */
  readonly changes: string[];
  /** The option that starts over instead: `newRun` (a CLI maps it to its flag). */
  readonly option: "newRun";
  /**
   * Create the error for a resume refused because the config changed.
   *
   * @param job The job name.
   * @param run The unfinished run.
   * @param changes What differs.
   */
  constructor(job: string, run: string, changes: string[]) {
    super(
      `Cannot resume job "${job}": run "${run}" is unfinished and was started with another config (${
        changes.join("; ")
      }); pass newRun: true to start over, or restore the old config to resume`,
    );
    this.name = "ConfigChangedError";
    this.option = "newRun";
    this.run = run;
    this.changes = changes;
  }
}

/**
 * Describe how two config values differ, path by path.
 *
 * @param before The old value.
 * @param after The new value.
 * @param path Path prefix for messages. Default: "" (top level).
 * @returns Descriptions like `config.k: 10 -> 20`, at most 5.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeChanges } from "./job.ts";
 * assert.ok(describeChanges({ config: { k: 10 } }, { config: { k: 20 } })[0] === "config.k: 10 -> 20");
 * ```
 */
export function describeChanges(
  before: unknown,
  after: unknown,
  path = "",
): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, p: string) => {
    if (out.length >= 5) return;
    const isObj = (v: unknown): v is Record<string, unknown> =>
      typeof v === "object" && v !== null && !ArrayBuffer.isView(v) &&
      !(v instanceof Map);
    if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        walk(a[k], b[k], p === "" ? k : `${p}.${k}`);
      }
      return;
    }
    const show = (v: unknown) => {
      if (v === undefined) return "(absent)";
      if (ArrayBuffer.isView(v)) {
        return `<${v.constructor.name} of ${v.byteLength} bytes>`;
      }
      const s = JSON.stringify(
        v,
        (_k, x) => typeof x === "bigint" ? x.toString() : x,
      ) ?? String(v);
      return s.length > 60 ? `${s.slice(0, 57)}...` : s;
    };
    if (show(a) !== show(b)) out.push(`${p}: ${show(a)} -> ${show(b)}`);
  };
  walk(before, after, path);
  return out.length > 0
    ? out
    : [`${path || "the value"} differs in a way JSON does not show`];
}

/**
 * A run id that sorts by start time and after `previous`:
 * `YYYYMMDDTHHMMSS.mmmZ-` plus 8 random hex characters.
 */
function newRunId(previous: string | undefined): string {
  let ms = Date.now();
  const m = previous &&
    /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z-/.exec(previous);
  if (m) {
    ms = Math.max(
      ms,
      Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!) + 1,
    );
  }
  const stamp = new Date(ms).toISOString().replace(/[-:]/g, "");
  return `${stamp}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Throw a TypeError naming the step when `stats` cannot go into a log record. */
function checkStats(job: string, key: string, stats: unknown): void {
  try {
    encodeValue(stats);
  } catch (error) {
    throw new TypeError(
      `Cannot record the stats of step "${key}" of job "${job}": ${
        errorMessage(error)
      }`,
      { cause: error },
    );
  }
}

/** The signal an abort reason names (as `abortOnSignals` sets it), if any. */
function signalNameOf(reason: unknown): string | undefined {
  const cause = reason instanceof Error ? reason.cause : undefined;
  return cause === "SIGINT" || cause === "SIGTERM" ? cause : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function codeText(code: unknown): unknown {
  if (typeof code === "function") return code.toString();
  if (Array.isArray(code)) return code.map(codeText);
  return code;
}

/**
 * Open a job: take its lock, then resume its latest run when that run is
 * unfinished (or completed) with the same config, or start a new run.
 *
 * @param name The job name (`[A-Za-z0-9._-]`, up to 128 characters).
 * @param options Store, config, version, lock and event options.
 * @returns The open job; call {@linkcode Job.complete} or {@linkcode Job.close} when done.
 *
 * @example Steps run once; a reopened job returns their stored outputs
 * ```ts
 * import assert from "node:assert/strict";
 * import { openJob } from "./job.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * let calls = 0;
 * const first = await openJob("demo", { store });
 * await first.step("square-3", () => { calls++; return 9; });
 * await first.close(); // unfinished: the next open resumes it
 * const again = await openJob("demo", { store });
 * assert.ok(await again.step("square-3", () => { calls++; return 9; }) === 9);
 * assert.ok(calls === 1 && again.resumed);
 * await again.complete();
 * ```
 */
export async function openJob(
  name: string,
  options: OpenJobOptions = {},
): Promise<Job> {
  assertName("job", name);
  const store = await resolveStore(options.store);
  const version = options.version ?? "1";
  const codeHash = options.code === undefined
    ? undefined
    : await fingerprint(codeText(options.code));
  const lock = await store.lock(name, {
    command: options.kind ?? "job",
    ...options.lock,
  });
  let job: Job | undefined;
  try {
    const choice = (await options.underLock?.()) ?? {};
    if ("config" in choice) options = { ...options, config: choice.config };
    if ("resumedFrom" in choice) {
      options = { ...options, resumedFrom: choice.resumedFrom };
    }
    const config = options.config ?? {};
    const configHash = await fingerprint({ config, version });
    const latestId = latestRun(await store.listRuns(name));
    const latest = latestId === undefined
      ? undefined
      : await replayRun(store, name, latestId);
    const warnings: string[] = [];
    let resume: RunState | undefined;
    if (latest !== undefined && !options.newRun) {
      if (latest.header.configHash === configHash) {
        resume = latest;
        if (
          codeHash !== undefined && latest.header.codeHash !== undefined &&
          latest.header.codeHash !== codeHash
        ) {
          warnings.push(
            `The code of job "${name}" changed since run "${latest.run}" but version "${version}" did not; stored results are reused. Change the version to recompute`,
          );
        }
      } else if (latest.status !== "completed") {
        throw new ConfigChangedError(
          name,
          latest.run,
          describeChanges({
            config: latest.header.config,
            version: latest.header.version,
          }, { config, version }),
        );
      }
    }
    job = new Job({
      store,
      name,
      lock,
      options,
      prior: resume,
      previousRun: latestId,
      configHash,
      codeHash,
      config,
    });
    await job.start(warnings);
    return job;
  } catch (error) {
    // A start that failed after creating the log still closes it.
    await job?.close().catch(() => {});
    await lock.release();
    throw error;
  }
}

/** What {@linkcode openJob} hands a new {@linkcode Job}. */
interface JobInit {
  store: Store;
  name: string;
  lock: JobLock;
  options: OpenJobOptions;
  /** The run to resume, if any. */
  prior: RunState | undefined;
  /** The newest existing run id; a new run's id sorts after it. */
  previousRun: string | undefined;
  configHash: string;
  codeHash: string | undefined;
  config: unknown;
}

/** An open job run. Create it with {@linkcode openJob} or {@linkcode runJob}. */
export class Job {
  /** The job name. */
  readonly name: string;
  /** The store it writes to. */
  readonly store: Store;
  /** The run id. */
  run = "";
  /** Whether an earlier run was resumed rather than a new one started. */
  readonly resumed: boolean;
  readonly #lock: JobLock;
  readonly #options: OpenJobOptions;
  readonly #prior: RunState | undefined;
  readonly #previousRun: string | undefined;
  readonly #configHash: string;
  readonly #codeHash: string | undefined;
  readonly #config: unknown;
  readonly #stop = new AbortController();
  #stopSignal: string | undefined;
  #log: ManifestLog | undefined;
  #steps = new Map<string, StepRecord>();
  #inFlight = new Map<string, Promise<unknown>>();
  #status: RunStatus = "running";
  #total: number | undefined;
  #closed = false;
  #memo: Promise<Map<string, StepRecord>> | undefined;
  #reopening: Promise<void> | undefined;
  #refused = 0;
  #summary: unknown;

  /** @internal Use {@linkcode openJob}. */
  constructor(init: JobInit) {
    this.store = init.store;
    this.name = init.name;
    this.#lock = init.lock;
    this.#options = init.options;
    this.#prior = init.prior;
    this.#previousRun = init.previousRun;
    this.resumed = init.prior !== undefined;
    this.#configHash = init.configHash;
    this.#codeHash = init.codeHash;
    this.#config = init.config;
    this.#total = init.options.total ?? init.prior?.total;
    const external = init.options.signal;
    if (external?.aborted) {
      this.stop(signalNameOf(external.reason));
    }
    external?.addEventListener(
      "abort",
      () => this.stop(signalNameOf(external.reason)),
      { once: true },
    );
  }

  /** @internal Open or create the run log and record this attempt. */
  async start(warnings: string[]): Promise<void> {
    const prior = this.#prior;
    if (prior !== undefined) {
      this.run = prior.run;
      this.#steps = new Map(prior.steps);
      this.#status = prior.status;
      this.#summary = prior.end?.summary;
      if (prior.status === "completed") {
        this.#emit({
          type: "run-start",
          job: this.name,
          run: this.run,
          resumed: true,
          done: this.#steps.size,
          ...this.#totalField(),
        });
        for (const message of warnings) {
          this.#emit({ type: "warning", job: this.name, message });
        }
        return;
      }
      this.#log = await this.store.openLog(this.name, this.run);
      if (this.#log.repaired !== undefined) {
        warnings.push(
          `Run "${this.run}" of job "${this.name}" ended with a torn record (${this.#log.repaired.reason}); dropped ${this.#log.repaired.droppedBytes} bytes at offset ${this.#log.repaired.offset}`,
        );
      }
    } else {
      this.run = newRunId(this.#previousRun);
      const header: RunRecord = {
        type: "run",
        job: this.name,
        run: this.run,
        kind: this.#options.kind ?? "job",
        configHash: this.#configHash,
        config: this.#config,
        version: this.#options.version ?? "1",
        startedAt: new Date().toISOString(),
        host: hostname(),
        pid: process.pid,
        ...(this.#options.memo === undefined
          ? {}
          : { memo: this.#options.memo }),
        ...(this.#codeHash === undefined ? {} : { codeHash: this.#codeHash }),
        ...(this.#options.tags === undefined
          ? {}
          : { tags: this.#options.tags }),
        ...(this.#options.resumedFrom === undefined
          ? {}
          : { resumedFrom: this.#options.resumedFrom }),
      };
      // Published with the log in one step: a log never exists without its header.
      this.#log = await this.store.createLog(this.name, this.run, header);
    }
    await this.#beginAttempt();
    this.#emit({
      type: "run-start",
      job: this.name,
      run: this.run,
      resumed: this.resumed,
      done: this.#steps.size,
      ...this.#totalField(),
    });
    for (const message of warnings) {
      this.#emit({ type: "warning", job: this.name, message });
    }
  }

  /**
   * A completed run that must compute again (a lost chunk, or a step it never
   * had) is reopened: a new attempt, then a new end record.
   */
  #reopen(): Promise<void> {
    this.#reopening ??= (async () => {
      this.#log = await this.store.openLog(this.name, this.run);
      await this.#beginAttempt();
    })();
    return this.#reopening;
  }

  /** Record that this process is (again) working on the run. */
  async #beginAttempt(): Promise<void> {
    this.#status = "running";
    await this.#append({
      type: "attempt",
      at: new Date().toISOString(),
      host: hostname(),
      pid: process.pid,
      ...this.#totalField(),
    });
  }

  #emitDone(key: string, cached: boolean, durationMs: number): void {
    this.#emit({
      type: "step-done",
      job: this.name,
      key,
      cached,
      durationMs,
      done: this.#steps.size,
      ...this.#totalField(),
    });
  }

  #totalField(): { total?: number } {
    return this.#total === undefined ? {} : { total: this.#total };
  }

  #emit(event: JobEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A broken listener must not break the job.
    }
  }

  async #append(record: ManifestRecord): Promise<void> {
    // Any write to a run that was completed when opened reopens it first.
    if (this.#log === undefined) await this.#reopen();
    if (this.#lock.lost) {
      throw new Error(
        `Cannot write to job "${this.name}": its lock was taken by another process; stop this one`,
      );
    }
    await this.#log!.append([record]);
  }

  /** The run's status as this process sees it. */
  get status(): RunStatus {
    return this.#status;
  }

  /** Aborted when the job is stopping. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Number of done steps. */
  get doneCount(): number {
    return this.#steps.size;
  }

  /** Expected number of steps, if known. */
  get total(): number | undefined {
    return this.#total;
  }

  /**
   * Set the expected number of steps, for progress.
   *
   * @param total The number of steps.
   */
  setTotal(total: number): void {
    this.#total = total;
  }

  /**
   * Whether a step's done record is in the log.
   *
   * @param key The step key.
   * @returns True when done.
   */
  isDone(key: string): boolean {
    return this.#steps.has(key);
  }

  /**
   * The done record of a step, if any.
   *
   * @param key The step key.
   * @returns The record.
   */
  stepRecord(key: string): StepRecord | undefined {
    return this.#steps.get(key);
  }

  /**
   * Stop the job: steps not yet started throw {@linkcode InterruptedError}; running ones see `signal` abort.
   *
   * @param signal The signal name, if a signal caused it.
   */
  stop(signal?: string): void {
    if (this.#stop.signal.aborted) return;
    this.#stopSignal = signal;
    this.#stop.abort(new InterruptedError(this.name, signal));
  }

  /** Steps refused because the job was stopping: work left undone. */
  get refusedSteps(): number {
    return this.#refused;
  }

  /** The summary of the run's last completion (this process's or an earlier one's). */
  get summary(): unknown {
    return this.#summary;
  }

  /** Whether {@linkcode Job.stop} was called (or the job's signal aborted). */
  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /**
   * Run a step once. A done step returns its stored output; a step whose
   * chunks went missing is recomputed.
   *
   * @param key A key unique within the job (1–512 characters).
   * @param fn Computes the output (any CBOR-encodable value).
   * @param options Retry and memo options.
   * @returns The output.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openJob } from "./job.ts";
   * const job = await openJob("steps", { store: "memory:step-example" });
   * assert.ok(await job.step("double", () => 2 * 21) === 42);
   * await job.complete();
   * ```
   */
  step<T>(
    key: string,
    fn: (ctx: StepContext) => T | Promise<T>,
    options: StepOptions = {},
  ): Promise<T> {
    return this.#once(key, () => this.#step(key, fn, options));
  }

  /**
   * Run `work` for `key` unless it is already running (then share its promise);
   * `#end` waits for everything tracked here.
   */
  #once<T>(key: string, work: () => Promise<T>): Promise<T> {
    if (typeof key !== "string" || key.length === 0 || key.length > 512) {
      return Promise.reject(
        new TypeError(
          `Cannot run step "${
            String(key)
          }": a step key is a string of 1 to 512 characters`,
        ),
      );
    }
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running as Promise<T>;
    const promise = work().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, promise);
    return promise;
  }

  async #step<T>(
    key: string,
    fn: (ctx: StepContext) => T | Promise<T>,
    options: StepOptions,
  ): Promise<T> {
    const done = this.#steps.get(key);
    if (done !== undefined) {
      const value = await this.#readOrForget<T>(key, done.output);
      if (value.ok) {
        this.#emitDone(key, true, 0);
        return value.value;
      }
    }
    if (options.memo !== undefined && this.#options.memo !== undefined) {
      // Loaded once per open job: runs finishing elsewhere meanwhile are seen on the next open.
      this.#memo ??= memoIndex(this.store, this.#options.memo);
      const hit = (await this.#memo).get(options.memo);
      if (hit !== undefined) {
        const value = await this.#readOrForget<T>(key, hit.output, false);
        if (value.ok) {
          await this.#record({
            ...hit,
            key,
            memo: options.memo,
            memoHit: true,
            at: new Date().toISOString(),
            attempt: 0,
          });
          this.#emitDone(key, true, 0);
          return value.value;
        }
      }
    }
    return await this.#compute(key, async (ctx) => {
      const value = await fn(ctx);
      const written = await writeValueChunks(
        this.store.chunks,
        value,
        this.#options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
      );
      return {
        value,
        output: { kind: "value", chunks: written.chunks } as OutputRef,
      };
    }, options);
  }

  /**
   * The one path for a stored output: read it (or with `check`, only check
   * its chunks). When a chunk is missing or corrupt, the corrupt copy is
   * deleted and, for the job's own steps (`own`), the step is forgotten, so
   * the next `step()` recomputes it.
   */
  async #readOrForget<T>(
    key: string,
    output: OutputRef,
    own = true,
    check?: "present" | "data",
  ): Promise<
    { ok: true; value: T } | {
      ok: false;
      error: MissingChunkError | CorruptChunkError;
    }
  > {
    try {
      if (check === undefined && output.kind === "value") {
        return {
          ok: true,
          value: await readValueChunks<T>(this.store.chunks, output.chunks),
        };
      }
      // Streams are read item by item later: check their chunks now.
      const refs = check === undefined && output.kind === "stream"
        ? output.items.map((item) => item[0]!)
        : chunksOf(output);
      for (const ref of refs) {
        if (check === "data") {
          await this.store.chunks.get(ref.hash);
        } else if (!(await this.store.chunks.has(ref.hash))) {
          throw new MissingChunkError(ref.hash, this.store.location);
        }
      }
      return { ok: true, value: undefined as T };
    } catch (error) {
      if (
        !(error instanceof MissingChunkError ||
          error instanceof CorruptChunkError)
      ) throw error;
      await this.#forgetDamaged(key, error, own);
      return { ok: false, error };
    }
  }

  /** Delete a corrupt chunk and (for own steps) forget the step that references it. */
  async #forgetDamaged(
    key: string,
    error: MissingChunkError | CorruptChunkError,
    own: boolean,
  ): Promise<void> {
    if (error instanceof CorruptChunkError) {
      // Remove the damaged copy: put() would take a same-size file for a
      // dedup hit and keep it, so the recomputed output would stay corrupt.
      await this.store.chunks.delete(error.hash).catch(() => {});
    }
    if (own && this.#steps.has(key)) {
      this.#steps.delete(key);
      this.#emit({
        type: "warning",
        job: this.name,
        message:
          `Step "${key}" of job "${this.name}" lost its output (${error.message}); recomputing it`,
      });
    }
  }

  /**
   * Check that a done step's output chunks are intact. A step whose chunks
   * are missing or (with `readData`) corrupt is forgotten, and corrupt
   * copies are deleted, so the next {@linkcode Job.step} recomputes it. Use it
   * before trusting a completed run's results without reading them.
   *
   * @param key The step key.
   * @param options `readData` also reads and hashes every chunk.
   * @returns True when the step is done and intact; false when it is not done
   *   or was just forgotten.
   *
   * @example A corrupt chunk is found, and the step recomputes
   * ```ts
   * import assert from "node:assert/strict";
   * import { openJob } from "./job.ts";
   * import { createMemoryStore } from "../store/memory.ts";
   * const store = createMemoryStore();
   * const job = await openJob("checked", { store });
   * await job.step("a", () => 1);
   * assert.equal(await job.checkStep("a", { readData: true }), true);
   * const output = job.stepRecord("a")!.output;
   * assert.ok(output.kind === "value");
   * await store.chunks.delete(output.chunks[0]!.hash);
   * assert.equal(await job.checkStep("a"), false);
   * assert.equal(job.isDone("a"), false);
   * assert.equal(await job.step("a", () => 1), 1);
   * await job.complete();
   * ```
   */
  async checkStep(
    key: string,
    options: CheckStepOptions = {},
  ): Promise<boolean> {
    const done = this.#steps.get(key);
    if (done === undefined) return false;
    const result = await this.#readOrForget(
      key,
      done.output,
      true,
      options.readData ? "data" : "present",
    );
    return result.ok;
  }

  async #record(record: StepRecord): Promise<void> {
    await this.#append(record);
    this.#steps.set(record.key, record);
  }

  async #compute<T>(
    key: string,
    produce: (ctx: StepContext) => Promise<{ value: T; output: OutputRef }>,
    options: StepOptions,
  ): Promise<T> {
    if (this.#stop.signal.aborted) {
      this.#refused++;
      throw this.#stop.signal.reason;
    }
    const policy = { retries: 0, ...this.#options.retry, ...options.retry };
    const started = performance.now();
    let stats: Record<string, unknown> | undefined;
    let items: StepItems | undefined;
    let lastAttempt = 1;
    const result = await retry(async (attempt) => {
      lastAttempt = attempt;
      stats = undefined;
      items = undefined;
      try {
        return await produce({
          key,
          attempt,
          signal: this.#stop.signal,
          stats: (s) => {
            checkStats(this.name, key, s);
            stats = { ...stats, ...s };
          },
          items: (i) => {
            if (!(i?.keys instanceof Uint8Array)) {
              throw new TypeError(
                `Cannot record the items of step "${key}" of job "${this.name}": expected "keys" to be a Uint8Array, found ${typeof i
                  ?.keys}`,
              );
            }
            items = { keys: i.keys };
          },
        });
      } catch (error) {
        const willRetry = attempt <= policy.retries &&
          !this.#stop.signal.aborted &&
          (policy.retryOn?.(error, attempt) ??
            !(error instanceof InterruptedError));
        await this.#append({
          type: "fail",
          key,
          attempt,
          error: errorMessage(error),
          at: new Date().toISOString(),
          willRetry,
        });
        this.#emit({
          type: "step-failed",
          job: this.name,
          key,
          attempt,
          error: errorMessage(error),
          willRetry,
        });
        throw error;
      }
    }, { ...policy, signal: this.#stop.signal });
    const durationMs = Math.round(performance.now() - started);
    // Checked again: the caller may have changed the objects since. A record
    // that cannot be encoded fails this step alone and is never appended.
    if (stats !== undefined) checkStats(this.name, key, stats);
    await this.#record({
      type: "step",
      key,
      output: result.output,
      durationMs,
      attempt: lastAttempt,
      at: new Date().toISOString(),
      ...(options.memo === undefined ? {} : { memo: options.memo }),
      ...(stats === undefined ? {} : { stats }),
      ...(items === undefined ? {} : { items }),
    });
    this.#emitDone(key, false, durationMs);
    return result.value;
  }

  /**
   * Record a done step whose output is chunks the caller already stored (for
   * example the nodes of a content-addressed index), so that the run keeps
   * them: `verify` checks them and `gc` never sweeps them while the run
   * exists. Recording the same key with the same chunks again writes nothing.
   *
   * @param key The step key.
   * @param refs The chunks, each already durable in this job's store.
   * @returns Nothing.
   *
   * @example Keep two chunks alive
   * ```ts
   * import assert from "node:assert/strict";
   * import { openJob } from "./job.ts";
   * import { putValue } from "../store/chunk_store.ts";
   * const job = await openJob("kept", { store: "memory:record-chunks-example" });
   * const a = await putValue(job.store.chunks, "a");
   * const b = await putValue(job.store.chunks, "b");
   * await job.recordChunks("index", [a, b]);
   * assert.equal(job.stepRecord("index")?.output.kind, "stream");
   * await job.complete();
   * ```
   */
  recordChunks(key: string, refs: readonly ChunkRef[]): Promise<void> {
    return this.#once(key, async () => {
      const items = refs.map((r) => [{ hash: r.hash, size: r.size }]);
      const done = this.#steps.get(key);
      if (
        done?.output.kind === "stream" &&
        done.output.items.length === items.length &&
        done.output.items.every((item, i) =>
          item[0]!.hash === items[i]![0]!.hash
        )
      ) return;
      if (this.#stop.signal.aborted) {
        this.#refused++;
        throw this.#stop.signal.reason;
      }
      await this.#record({
        type: "step",
        key,
        output: { kind: "stream", items },
        durationMs: 0,
        attempt: 1,
        at: new Date().toISOString(),
      });
    });
  }

  /**
   * A step whose output is a stream of items, each stored as its own chunk(s),
   * so memory stays flat. The done record is written after the last item is durable.
   *
   * @param key The step key.
   * @param fn Produces the items.
   * @param options Retry options (a retry restarts the stream).
   * @returns The number of items.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openJob } from "./job.ts";
   * const job = await openJob("streams", { store: "memory:stream-example" });
   * await job.stepStream("numbers", function* () { yield 1; yield 2; });
   * const items = [];
   * for await (const x of job.readStream<number>("numbers")) items.push(x);
   * assert.ok(items.join() === "1,2");
   * await job.complete();
   * ```
   */
  stepStream<T>(
    key: string,
    fn: (ctx: StepContext) => AsyncIterable<T> | Iterable<T>,
    options: StepOptions = {},
  ): Promise<number> {
    return this.#once(key, () => this.#stepStream(key, fn, options));
  }

  async #stepStream<T>(
    key: string,
    fn: (ctx: StepContext) => AsyncIterable<T> | Iterable<T>,
    options: StepOptions,
  ): Promise<number> {
    const done = this.#steps.get(key);
    if (
      done !== undefined && done.output.kind === "stream" &&
      (await this.#readOrForget(key, done.output)).ok
    ) {
      return done.output.items.length;
    }
    return await this.#compute(key, async (ctx) => {
      const items = [];
      for await (const item of fn(ctx)) {
        ctx.signal.throwIfAborted();
        items.push(
          (await writeValueChunks(
            this.store.chunks,
            item,
            this.#options.maxChunkBytes,
          )).chunks,
        );
      }
      return {
        value: items.length,
        output: { kind: "stream", items } as OutputRef,
      };
    }, options);
  }

  /**
   * Read a done stream step's items back, one chunk at a time.
   *
   * @param key The step key.
   * @returns The items.
   * @throws {MissingStepOutputError} When the step is not a done stream step,
   *   or an item's chunk is missing or corrupt (the step is then forgotten,
   *   so `stepStream` recomputes it).
   */
  async *readStream<T>(key: string): AsyncIterable<T> {
    const done = this.#steps.get(key);
    if (done === undefined || done.output.kind !== "stream") {
      throw new MissingStepOutputError(this.name, key, "not-done");
    }
    for (const refs of done.output.items) {
      let value: T;
      try {
        value = await readValueChunks<T>(this.store.chunks, refs);
      } catch (error) {
        throw await this.#damaged(key, error);
      }
      yield value;
    }
  }

  /**
   * Read a done step's output. It never recomputes: when the output is
   * damaged, the step is forgotten (and a corrupt chunk deleted) and a
   * {@linkcode MissingStepOutputError} says why; `step()` with the same key
   * then recomputes it. To read or recompute in one call, use `step()`.
   *
   * @param key The step key.
   * @returns The output.
   * @throws {MissingStepOutputError} When the step is not done, or its chunks
   *   are missing or corrupt.
   *
   * @example Read, or learn why not
   * ```ts
   * import assert from "node:assert/strict";
   * import { MissingStepOutputError, openJob } from "./job.ts";
   * const job = await openJob("reads", { store: "memory:read-example" });
   * await job.step("a", () => 42);
   * assert.equal(await job.read("a"), 42);
   * await assert.rejects(job.read("b"), (e) => e instanceof MissingStepOutputError && e.reason === "not-done");
   * await job.complete();
   * ```
   */
  async read<T>(key: string): Promise<T> {
    const done = this.#steps.get(key);
    if (done === undefined || done.output.kind !== "value") {
      throw new MissingStepOutputError(this.name, key, "not-done");
    }
    const result = await this.#readOrForget<T>(key, done.output);
    if (result.ok) return result.value;
    throw new MissingStepOutputError(this.name, key, reasonOf(result.error), {
      cause: result.error,
    });
  }

  /** Turn a chunk error into a MissingStepOutputError, forgetting the step. */
  async #damaged(key: string, error: unknown): Promise<unknown> {
    if (
      !(error instanceof MissingChunkError ||
        error instanceof CorruptChunkError)
    ) return error;
    await this.#forgetDamaged(key, error, true);
    return new MissingStepOutputError(this.name, key, reasonOf(error), {
      cause: error,
    });
  }

  /** Chunks referenced by done steps. */
  get chunkCount(): number {
    return new Set(
      [...this.#steps.values()].flatMap((s) =>
        chunksOf(s.output).map((c) => c.hash)
      ),
    ).size;
  }

  async #end(
    status: EndRecord["status"],
    detail: { error?: string; summary?: unknown } = {},
  ): Promise<void> {
    if (this.#log === undefined || this.#status !== "running") return;
    await Promise.allSettled([...this.#inFlight.values()]);
    await this.#append({
      type: "end",
      status,
      at: new Date().toISOString(),
      ...detail,
    });
    this.#status = status;
    this.#emit({
      type: "run-end",
      job: this.name,
      run: this.run,
      status,
      done: this.#steps.size,
      ...detail,
    });
  }

  /**
   * Mark the run completed and close the job. A completed run reopened with
   * the same config returns its steps at once.
   *
   * @param summary Optional description of the result, shown by `cairn show`.
   */
  async complete(summary?: unknown): Promise<void> {
    if (summary !== undefined && this.#status === "running") {
      this.#summary = summary;
    }
    await this.#end("completed", summary === undefined ? {} : { summary });
    await this.close();
  }

  /**
   * Mark the run failed and close the job; rerunning resumes it.
   *
   * @param error What went wrong.
   */
  async fail(error: unknown): Promise<void> {
    await this.#end("failed", { error: errorMessage(error) });
    await this.close();
  }

  /**
   * Record how the work on the run ended and close the job: the lifecycle
   * {@linkcode runJob} uses, for callers that drive a job themselves (a
   * generator yielding results, say). Work that returned completes the run
   * (unless a stop refused some step); work stopped by `signal` or
   * {@linkcode Job.stop} records the run interrupted and throws
   * {@linkcode InterruptedError}; any other failure records it failed (the
   * caller rethrows its error).
   *
   * @param outcome `{ ok: true, summary? }` when the work returned, `{ ok: false, error }` when it threw.
   * @returns Once the end is recorded and the lock released.
   * @throws {InterruptedError} When the job was stopping.
   *
   * @example Drive a job by hand
   * ```ts
   * import assert from "node:assert/strict";
   * import { openJob } from "./job.ts";
   * const job = await openJob("settled", { store: "memory:settle-example" });
   * try {
   *   await job.step("a", () => 1);
   *   await job.settle({ ok: true, summary: { steps: 1 } });
   * } catch (error) {
   *   await job.settle({ ok: false, error });
   *   throw error;
   * }
   * assert.equal(job.status, "completed");
   * ```
   */
  async settle(outcome: SettleOutcome): Promise<void> {
    try {
      // A stop that refused no step came after the work was done: the run is complete.
      if (outcome.ok && this.#refused === 0) {
        await this.complete(outcome.summary);
        return;
      }
      if (this.stopping) {
        await this.close();
        const reason = this.#stop.signal.reason;
        throw reason instanceof InterruptedError
          ? reason
          : new InterruptedError(this.name, this.#stopSignal);
      }
      await this.fail(
        outcome.ok ? new Error("Steps were refused") : outcome.error,
      );
    } finally {
      await this.close();
    }
  }

  /**
   * Close the job. An unfinished run is recorded as interrupted (resumable).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#log === undefined && this.#status === "completed") {
        // A rerun of a completed run: nothing was written, but listeners still get an end.
        this.#emit({
          type: "run-end",
          job: this.name,
          run: this.run,
          status: "completed",
          done: this.#steps.size,
        });
      }
      await this.#end(
        "interrupted",
        this.#stopSignal === undefined
          ? {}
          : { error: `stopped by ${this.#stopSignal}` },
      );
    } finally {
      await this.#log?.close();
      await this.#lock.release();
    }
  }
}

/** How the work on a run ended, for {@linkcode Job.settle}. */
export type SettleOutcome =
  | { ok: true; summary?: unknown }
  | { ok: false; error: unknown };

/** Options for {@linkcode runJob}. */
export interface RunJobOptions<T = unknown> extends OpenJobOptions {
  /** Turn the body's result into the summary recorded with the completed run. Default: none. */
  summarize?: (result: T) => unknown;
  /** A restic-style retention policy applied to this job's runs after a completed run. Default: none. */
  retain?: RetentionPolicy;
}

/**
 * Open a job, run `body`, and record how it ended: completed, failed, or
 * interrupted because `signal` aborted (then {@linkcode InterruptedError} is
 * thrown, whose `exitCode` is 130, or 143 for SIGTERM). The lock is always
 * released. No signal handlers are installed: pass
 * `signal: abortOnSignals().signal` to stop on SIGINT/SIGTERM.
 *
 * @param name The job name.
 * @param options Job options.
 * @param body The work; returns the job's result.
 * @returns What `body` returned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runJob } from "./job.ts";
 * const total = await runJob("sum", { store: "memory:run-job-example" }, async (job) => {
 *   let sum = 0;
 *   for (let i = 0; i < 3; i++) sum += await job.step(`part-${i}`, () => i * 10);
 *   return sum;
 * });
 * assert.ok(total === 30);
 * ```
 */
export async function runJob<T>(
  name: string,
  options: RunJobOptions<T>,
  body: (job: Job) => Promise<T>,
): Promise<T> {
  const job = await openJob(name, options);
  try {
    let result: T;
    let summary: unknown;
    try {
      result = await body(job);
      summary = options.summarize?.(result);
    } catch (error) {
      await job.settle({ ok: false, error });
      throw error;
    }
    await job.settle({ ok: true, summary });
    if (options.retain !== undefined) {
      await forgetRuns(job.store, { ...options.retain, jobs: [name] });
    }
    return result;
  } finally {
    await job.close();
  }
}
