/**
 * Running a pipeline as a cairn job: one step per component, whose output is
 * stored as chunks and handed to the next component. A resumed run is a new
 * run that records `resumedFrom` and reuses the stored outputs of the
 * components the failed run finished (through the job's memo namespace,
 * keyed by the run's lineage, the component list up to that component and
 * the chunks of its input), so only the failed component and its successors
 * run again.
 *
 * @module
 */
import { fingerprint } from "../../store/cbor.ts";
import type { AcquireLockOptions } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import type { JobEvent } from "../events.ts";
import { describeChanges, type Job, openJob, runJob } from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { readValueChunks } from "../output.ts";
import type { OutputRef } from "../records.ts";
import { readRunHeader, replayRun } from "../replay.ts";
import {
  type ComponentContext,
  resolveComponents,
  type ResolvedComponent,
} from "./component.ts";
import { loadPipelineConfig, type PipelineConfig } from "./config.ts";
import type { HookInfo, PipelineHooks } from "./hooks.ts";
import {
  completedFrom,
  componentKey,
  lastCheckpointed,
  PIPELINE_KIND,
  pipelineRunOf,
  pipelineRuns,
  resumableOf,
  type StoredPipelineConfig,
} from "./_records.ts";
import {
  type CompletedComponent,
  type ComponentFailure,
  loadPipelineRun,
  pipelineJobName,
  type PipelineRun,
  type PipelineStatus,
} from "./state.ts";

/** A message a component logged through `ctx.logger`. */
export interface ComponentLogEntry {
  /** "info" or "warn". */
  level: "info" | "warn";
  /** The component's `instance-name`. */
  component: string;
  /** The message. */
  message: string;
}

/** Options for {@linkcode runPipeline} and {@linkcode resumePipeline}. */
export interface RunPipelineOptions {
  /** The store, or its location. Default: `checkpoint.location`, else `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Lifecycle hooks (compose several with `composeHooks`). Default: none. */
  hooks?: PipelineHooks;
  /** Override `checkpoint.auto-resume`. Default: the config's. */
  autoResume?: boolean;
  /** Override `checkpoint.enabled`; false runs without checkpoints. Default: the config's. */
  checkpoint?: boolean;
  /** Resume even though the components changed: rerun from the first changed one. Default: false. */
  allowConfigChange?: boolean;
  /** Aborting it stops the run (recorded as interrupted, resumable). */
  signal?: AbortSignal;
  /** Job events (run-start, step-done, warning, …), including failed hooks as warnings. */
  onEvent?: (event: JobEvent) => void;
  /** Where components' `ctx.logger` messages go. Default: nowhere. */
  onLog?: (entry: ComponentLogEntry) => void;
  /** Lock options (wait for another run of the same pipeline). */
  lock?: AcquireLockOptions;
}

/** A resume was refused because the components changed since the failed run. */
export class PipelineConfigChangedError extends Error {
  /** The run that was to be resumed. */
  readonly runId: string;
  /** What changed, one description each. */
  readonly changes: string[];
  /**
   * Make the error.
   *
   * @param pipelineName The pipeline.
   * @param runId The failed run.
   * @param changes What changed.
   */
  constructor(pipelineName: string, runId: string, changes: string[]) {
    super(
      `Cannot resume pipeline "${pipelineName}" from run "${runId}": its components changed since (${
        changes.join("; ")
      }); pass allowConfigChange to rerun from the first changed component, or restore the old config`,
    );
    this.name = "PipelineConfigChangedError";
    this.runId = runId;
    this.changes = changes;
  }
}

class ComponentsFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ComponentsFailed";
  }
}

function storedComponents(
  config: PipelineConfig,
): StoredPipelineConfig["components"] {
  return config.components.map((c) => ({
    "instance-type": c.instanceType,
    "instance-name": c.instanceName,
    "instance-config": c.instanceConfig,
  }));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What a run continues from, if anything. */
interface Source {
  run: PipelineRun;
  config: StoredPipelineConfig;
}

async function prepare(
  configOrPath: PipelineConfig | string,
  options: RunPipelineOptions,
): Promise<
  {
    config: PipelineConfig;
    components: ResolvedComponent[];
    store: Store;
    job: string;
    checkpoint: boolean;
  }
> {
  const config = typeof configOrPath === "string"
    ? await loadPipelineConfig(configOrPath)
    : configOrPath;
  const components = await resolveComponents(config.components, {
    baseDir: config.baseDir,
    ...(config.file === undefined ? {} : { file: config.file }),
  });
  const store = await resolveStore(options.store ?? config.checkpoint.location);
  return {
    config,
    components,
    store,
    job: await pipelineJobName(config.pipelineName),
    checkpoint: options.checkpoint ?? config.checkpoint.enabled,
  };
}

function checkUnchanged(
  config: PipelineConfig,
  source: Source,
  allow: boolean | undefined,
): void {
  const before = source.config.components;
  const after = storedComponents(config);
  if (allow) return;
  const changes: string[] = [];
  if (before.length !== after.length) {
    changes.push(
      `${before.length} components -> ${after.length} components`,
    );
  }
  const same = JSON.stringify(before) === JSON.stringify(after);
  if (!same) {
    for (
      const change of describeChanges(before, after, "pipeline-components")
    ) {
      if (!change.includes("in a way JSON does not show")) changes.push(change);
    }
  }
  if (changes.length > 0) {
    throw new PipelineConfigChangedError(
      config.pipelineName,
      source.run.runId,
      changes,
    );
  }
}

/**
 * Run a pipeline. With checkpointing and `auto-resume` on, continue the
 * latest failed run of the pipeline instead of starting over.
 *
 * @param config A loaded config, or the path of a `.conf`, `.json` or `.yaml` file.
 * @param options Store, hooks, overrides, signal and events.
 * @returns The run's record (`status` "completed" or "failed").
 * @throws {PipelineConfigError} When a component cannot be made.
 * @throws {PipelineConfigChangedError} When auto-resume finds changed components.
 * @throws {InterruptedError} When `signal` aborted (from the runtime); the run stays resumable.
 *
 * @example Run a pipeline of registered components
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig, registerComponent, runPipeline } from "./mod.ts";
 * registerComponent("numbers", () => ({ run: () => [1, 2, 3] }));
 * registerComponent("sum", () => ({ run: (xs: number[]) => xs.reduce((a, b) => a + b, 0) }));
 * const config = parsePipelineConfig({
 *   pipeline: {
 *     "pipeline-name": "Sum example",
 *     "pipeline-components": [
 *       { "instance-type": "numbers", "instance-name": "Numbers" },
 *       { "instance-type": "sum", "instance-name": "Sum" },
 *     ],
 *   },
 * });
 * const run = await runPipeline(config, { store: "memory:run-pipeline-example" });
 * assert.equal(run.status, "completed");
 * assert.equal(run.completedComponents.length, 2);
 * ```
 */
export async function runPipeline(
  config: PipelineConfig | string,
  options: RunPipelineOptions = {},
): Promise<PipelineRun> {
  const prepared = await prepare(config, options);
  const auto = options.autoResume ?? prepared.config.checkpoint.autoResume;
  // Picked under the job lock, so two invocations never resume one run.
  const pick = async (): Promise<Source | undefined> => {
    if (!prepared.checkpoint || !auto) return undefined;
    const runs = await pipelineRuns(prepared.store, prepared.job);
    const latest = resumableOf(runs.map((r) => r.run))[0];
    if (latest === undefined) return undefined;
    const found = runs.find((r) => r.run.runId === latest.runId)!;
    const source = {
      run: latest,
      config: found.state.header.config as StoredPipelineConfig,
    };
    checkUnchanged(prepared.config, source, options.allowConfigChange);
    return source;
  };
  return await execute(prepared, pick, options);
}

/**
 * Resume a failed run by id: a new run records `resumedFrom = runId`, reuses
 * the stored outputs of the components the failed run finished, and runs the
 * rest.
 *
 * @param config A loaded config, or its file path.
 * @param runId The failed (or interrupted, or killed) run.
 * @param options Store, hooks, `allowConfigChange`, signal and events.
 * @returns The new run's record.
 * @throws {RangeError} When the run does not exist, is not this pipeline's, or cannot be resumed.
 * @throws {PipelineConfigChangedError} When the components changed and `allowConfigChange` is not set.
 *
 * @example Resume a failed run by id
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig, registerComponent, resumePipeline, runPipeline } from "./mod.ts";
 * let ready = false;
 * registerComponent("flaky", () => ({ run: () => { if (!ready) throw new Error("Not ready"); return "ok"; } }));
 * const config = parsePipelineConfig({
 *   pipeline: {
 *     "pipeline-name": "Resume example",
 *     checkpoint: { enabled: true },
 *     "pipeline-components": [{ "instance-type": "flaky", "instance-name": "Flaky" }],
 *   },
 * });
 * const store = "memory:resume-pipeline-example";
 * const failed = await runPipeline(config, { store });
 * assert.equal(failed.status, "failed");
 * ready = true;
 * const resumed = await resumePipeline(config, failed.runId, { store });
 * assert.equal(resumed.resumedFrom, failed.runId);
 * ```
 */
export async function resumePipeline(
  config: PipelineConfig | string,
  runId: string,
  options: RunPipelineOptions = {},
): Promise<PipelineRun> {
  const prepared = await prepare(config, options);
  const name = prepared.config.pipelineName;
  const refuse = (why: string): never => {
    throw new RangeError(
      `Cannot resume run "${runId}" of pipeline "${name}": ${why}`,
    );
  };
  if (!prepared.checkpoint) {
    refuse(
      "checkpointing is off for this run; set checkpoint.enabled = true in the config",
    );
  }
  // Checked under the job lock, so two invocations never resume one run.
  const pick = async (): Promise<Source> => {
    const runs = await pipelineRuns(prepared.store, prepared.job);
    const found = runs.find((r) => r.run.runId === runId);
    if (found === undefined) {
      const elsewhere = await loadPipelineRun(runId, { store: prepared.store });
      if (elsewhere !== undefined) {
        refuse(
          `it is a run of pipeline "${elsewhere.pipelineName}"${
            elsewhere.cleanedUp ? ", completed and cleaned up" : ""
          }`,
        );
      }
      refuse(`no such run in store "${prepared.store.location}"`);
    }
    const run = found!.run;
    if (run.status === "completed") refuse("it completed; nothing to resume");
    if (run.status === "running") {
      refuse("it is still running in another process");
    }
    if (!run.checkpoint) refuse("it ran with checkpointing off");
    const later = runs.find((r) => r.run.resumedFrom === runId);
    if (later !== undefined) {
      refuse(
        `run "${later.run.runId}" already resumed it (${later.run.status}); resume that one instead`,
      );
    }
    const source = {
      run,
      config: found!.state.header.config as StoredPipelineConfig,
    };
    checkUnchanged(prepared.config, source, options.allowConfigChange);
    return source;
  };
  return await execute(prepared, pick, options);
}

async function execute(
  prepared: Awaited<ReturnType<typeof prepare>>,
  pick: () => Promise<Source | undefined>,
  options: RunPipelineOptions,
): Promise<PipelineRun> {
  const { config, components, store, job, checkpoint } = prepared;
  const stored = storedComponents(config);
  const total = stored.length;
  const fps = await Promise.all(stored.map((s) => fingerprint(s)));
  // Both are set under the job lock (the runtime's underLock), before the run exists.
  let source: Source | undefined;
  let header: StoredPipelineConfig = {
    pipelineName: config.pipelineName,
    components: stored,
    lineage: "",
    checkpoint,
    failFast: config.failFast,
  };
  const hooks = options.hooks ?? {};
  const completed: CompletedComponent[] = [];
  const errors: ComponentFailure[] = [];
  const startedAt = new Date().toISOString();
  let runId = "";
  let finalValue: unknown;

  const snapshot = (status: PipelineStatus): PipelineRun => ({
    runId,
    pipelineName: config.pipelineName,
    job,
    startedAt,
    completedComponents: [...completed],
    lastCheckpointedIndex: lastCheckpointed(completed),
    totalComponents: total,
    status,
    errors: [...errors],
    ...(source === undefined ? {} : { resumedFrom: source.run.runId }),
    checkpoint,
    cleanedUp: false,
  });
  const info = (index?: number, extra: Partial<HookInfo> = {}): HookInfo => ({
    runId,
    pipelineName: config.pipelineName,
    state: snapshot("running"),
    ...(index === undefined
      ? {}
      : { componentName: stored[index]!["instance-name"] }),
    ...extra,
  });
  const callHook = async <K extends keyof PipelineHooks>(
    method: K,
    ...args: Parameters<NonNullable<PipelineHooks[K]>>
  ): Promise<void> => {
    const fn = hooks[method] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn !== "function") return;
    try {
      await fn.apply(hooks, args);
    } catch (error) {
      try {
        options.onEvent?.({
          type: "warning",
          job,
          message:
            `Hook ${method} of pipeline "${config.pipelineName}" failed: ${
              message(error)
            }`,
        });
      } catch {
        // A broken listener must not break the run.
      }
    }
  };
  const context = (
    j: Job,
    index: number,
    signal: AbortSignal,
    memo: string,
  ): ComponentContext => {
    const name = stored[index]!["instance-name"];
    const log = (level: "info" | "warn") => (text: string) => {
      try {
        options.onLog?.({ level, component: name, message: String(text) });
      } catch {
        // A broken listener must not break the component.
      }
    };
    return {
      runId,
      pipelineName: config.pipelineName,
      name,
      index,
      total,
      logger: { info: log("info"), warn: log("warn") },
      signal,
      step: async (key, fn) =>
        await j.step(
          `${index}/${key}`,
          fn,
          checkpoint
            ? {
              memo: await fingerprint({ lineage: header.lineage, memo, key }),
            }
            : {},
        ),
    };
  };

  let thrown: unknown;
  try {
    await runJob(job, {
      store,
      kind: PIPELINE_KIND,
      newRun: true,
      total,
      ...(checkpoint ? { memo: `pipeline/${job}` } : {}),
      underLock: async () => {
        source = await pick();
        header = {
          ...header,
          lineage: source?.config.lineage ?? crypto.randomUUID(),
        };
        return {
          config: header,
          ...(source === undefined ? {} : { resumedFrom: source.run.runId }),
        };
      },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.lock === undefined ? {} : { lock: options.lock }),
    }, async (j) => {
      runId = j.run;
      await callHook("beforePipeline", config, info());
      let input: unknown = undefined;
      let inputRef: OutputRef | { failed: number } | null = null;
      for (const [index, { component }] of components.entries()) {
        const spec = stored[index]!;
        const key = componentKey(index, spec["instance-name"]);
        const memo = await fingerprint({
          lineage: header.lineage,
          components: fps.slice(0, index + 1),
          input: inputRef,
        });
        let ran = false;
        let durationMs = 0;
        try {
          const value = await j.step(key, async (ctx) => {
            ran = true;
            await callHook(
              "beforeComponent",
              config,
              index,
              total,
              info(index),
            );
            const started = performance.now();
            const out = await component.run(
              input,
              context(j, index, ctx.signal, memo),
            );
            durationMs = Math.round(performance.now() - started);
            return out;
          }, checkpoint ? { memo } : {});
          const record = j.stepRecord(key)!;
          const entry = completedFrom(index, spec, record);
          completed.push(entry);
          if (ran) {
            await callHook(
              "afterComponent",
              config,
              index,
              total,
              durationMs,
              info(index, { outputBytes: entry.outputBytes }),
            );
          } else {
            await callHook(
              "onComponentReused",
              config,
              index,
              total,
              info(index, { outputBytes: entry.outputBytes }),
            );
          }
          input = value;
          inputRef = record.output;
        } catch (error) {
          if (j.stopping) throw error;
          errors.push({
            index,
            name: spec["instance-name"],
            error: message(error),
          });
          await callHook(
            "onComponentFailure",
            config,
            index,
            error,
            info(index),
          );
          if (config.failFast) break;
          input = undefined;
          inputRef = { failed: index };
        }
      }
      if (errors.length > 0) {
        throw new ComponentsFailed(
          errors.map((e) =>
            `component ${e.index + 1}/${total} "${e.name}" failed: ${e.error}`
          ).join("; "),
        );
      }
      finalValue = input;
    });
  } catch (error) {
    if (!(error instanceof ComponentsFailed)) thrown = error;
    if (runId === "") throw error; // the run never started (locked, bad store)
  }
  let result = pipelineRunOf(await replayRun(store, job, runId));
  if (
    thrown === undefined && result.status === "completed" &&
    config.checkpoint.cleanupOnSuccess
  ) {
    result = await cleanUp(store, job, header, result, finalValue, options);
  }
  await callHook("afterPipeline", config, result, {
    runId,
    pipelineName: config.pipelineName,
    state: result,
  });
  if (thrown !== undefined) throw thrown;
  return result;
}

/**
 * cleanup-on-success: record a small completed run holding only the final
 * output and the run's record, then forget the run with the component records
 * and the failed runs it continued.
 * Killed in between, both stay, and nothing is lost.
 */
async function cleanUp(
  store: Store,
  job: string,
  header: StoredPipelineConfig,
  result: PipelineRun,
  finalValue: unknown,
  options: RunPipelineOptions,
): Promise<PipelineRun> {
  const kept: PipelineRun = {
    ...result,
    cleanedUp: true,
    completedComponents: result.completedComponents.map((c) => {
      const { outputChunks: _, ...rest } = c;
      return rest;
    }),
  };
  const compact = await openJob(job, {
    store,
    kind: PIPELINE_KIND,
    config: { ...header, compactOf: result.runId },
    newRun: true,
    ...(options.lock === undefined ? {} : { lock: options.lock }),
  });
  try {
    await compact.step("output", () => finalValue);
    await compact.complete(kept);
  } finally {
    await compact.close();
  }
  await store.deleteRun(job, result.runId);
  // The failed runs this one continued are superseded: forget them too.
  const runs = new Set(await store.listRuns(job));
  for (let id = result.resumedFrom; id !== undefined && runs.has(id);) {
    const previous = (await readRunHeader(store, job, id)).resumedFrom;
    await store.deleteRun(job, id);
    id = previous;
  }
  return pipelineRunOf(await replayRun(store, job, compact.run));
}

/**
 * The final output of a run: the stored output of its last component.
 *
 * @param runId The run id (a cleaned-up run's output is still kept).
 * @param options The store.
 * @returns The value the last component returned.
 * @throws {RangeError} When the run does not exist or its last component did not finish.
 *
 * @example Read a run's final output
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig, pipelineOutput, registerComponent, runPipeline } from "./mod.ts";
 * registerComponent("answer", () => ({ run: () => ({ answer: 42 }) }));
 * const config = parsePipelineConfig({
 *   pipeline: { "pipeline-name": "Output example", "pipeline-components": [{ "instance-type": "answer" }] },
 * });
 * const store = "memory:pipeline-output-example";
 * const run = await runPipeline(config, { store });
 * assert.deepEqual(await pipelineOutput(run.runId, { store }), { answer: 42 });
 * ```
 */
export async function pipelineOutput(
  runId: string,
  options: { store?: Store | string } = {},
): Promise<unknown> {
  const store = await resolveStore(options.store);
  const run = await loadPipelineRun(runId, { store });
  if (run === undefined) {
    throw new RangeError(
      `Cannot read the output of run "${runId}": no such pipeline run in store "${store.location}"`,
    );
  }
  const last = run.completedComponents.find((c) =>
    c.index === run.totalComponents - 1
  );
  if (last?.outputChunks === undefined) {
    throw new RangeError(
      `Cannot read the output of run "${runId}": its last component did not finish (status ${run.status})`,
    );
  }
  return await readValueChunks(store.chunks, last.outputChunks);
}
