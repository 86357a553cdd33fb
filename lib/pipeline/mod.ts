/**
 * Pipelines: an ordered list of components declared in a config file (HOCON,
 * JSON or YAML, in Spark Pipeline Framework's format), run as a cairn job with
 * each component's output stored as chunks. A failed run resumes from the
 * first component that did not finish, handing it the stored output of the
 * last one that did.
 *
 * @example Run, fail, resume
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig, registerComponent, resumePipeline, runPipeline } from "./mod.ts";
 * let extracts = 0;
 * let broken = true;
 * registerComponent("mod-extract", () => ({ run: () => (extracts++, [3, 1, 2]) }));
 * registerComponent("mod-sort", () => ({
 *   run: (rows: number[]) => {
 *     if (broken) throw new Error("Sorter is broken");
 *     return [...rows].sort();
 *   },
 * }));
 * const config = parsePipelineConfig({
 *   pipeline: {
 *     "pipeline-name": "Module example",
 *     checkpoint: { enabled: true },
 *     "pipeline-components": [
 *       { "instance-type": "mod-extract", "instance-name": "Extract" },
 *       { "instance-type": "mod-sort", "instance-name": "Sort" },
 *     ],
 *   },
 * });
 * const store = "memory:pipeline-mod-example";
 * const failed = await runPipeline(config, { store });
 * assert.equal(failed.failedAt?.label, "component 2/2");
 * broken = false;
 * const resumed = await resumePipeline(config, failed.runId, { store });
 * assert.equal(resumed.status, "completed");
 * assert.equal(extracts, 1, "Extract's stored output was reused");
 * ```
 *
 * @module
 */
export {
  type CheckpointConfig,
  type ComponentSpec,
  loadPipelineConfig,
  parsePipelineConfig,
  type ParsePipelineConfigOptions,
  type PipelineConfig,
  PipelineConfigError,
} from "./config.ts";
export {
  type Component,
  type ComponentContext,
  type ComponentLogger,
  type ComponentType,
  registerComponent,
  resolveComponents,
  type ResolveComponentsOptions,
  type ResolvedComponent,
} from "./component.ts";
export { composeHooks, type HookInfo, type PipelineHooks } from "./hooks.ts";
export {
  CheckpointHooks,
  type CheckpointStore,
  createMemoryCheckpointStore,
} from "./checkpoint_hooks.ts";
export { type LineWriter, LoggingHooks } from "./logging_hooks.ts";
export { type AuditFileOptions, AuditHooks } from "./audit_hooks.ts";
export {
  MetricsHooks,
  type MetricsHooksOptions,
  type MetricsHooksResult,
} from "./metrics_hooks.ts";
export {
  type ComponentLogEntry,
  PipelineConfigChangedError,
  pipelineOutput,
  resumePipeline,
  runPipeline,
  type RunPipelineOptions,
} from "./run.ts";
export {
  type CheckpointState,
  type CompletedComponent,
  type ComponentFailure,
  listResumable,
  loadPipelineRun,
  pipelineJobName,
  type PipelineRun,
  type PipelineStatus,
  type PipelineStoreOptions,
} from "./state.ts";
