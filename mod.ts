/**
 * cairn makes long batch jobs resumable, verifiable and incremental. Every
 * step writes immutable CBOR chunks to a content-addressed store (BLAKE3) and
 * appends a record to its run's manifest log; resume, verification,
 * retention, GC and memo hits are replays of that log.
 *
 * This entry point holds the runtime (jobs, stores, runs, maintenance) and
 * each family's main names. Each family's entry point has the rest
 * (`@cairn/cairn/map`, `@cairn/cairn/knn`, `@cairn/cairn/pipeline`,
 * `@cairn/cairn/processor`, `@cairn/cairn/dataflow`), and the low-level store
 * and format pieces are in `@cairn/cairn/store`.
 *
 * @example Steps run once, even across crashes and reruns
 * ```ts
 * import assert from "node:assert/strict";
 * import { runJob } from "@cairn/cairn";
 * const sum = await runJob("doc-example", { store: "memory:" }, async (job) => {
 *   let total = 0;
 *   for (let i = 0; i < 4; i++) total += await job.step(`part-${i}`, () => i * i);
 *   return total;
 * });
 * assert.ok(sum === 14);
 * ```
 *
 * @module
 */

// Jobs: the runtime.
export {
  type CheckStepOptions,
  ConfigChangedError,
  InterruptedError,
  type Job,
  openJob,
  type OpenJobOptions,
  runJob,
  type RunJobOptions,
  type SettleOutcome,
  type StepContext,
  type StepOptions,
  type UnderLockChoice,
} from "./lib/job.ts";
export type { JobEvent } from "./lib/events.ts";
export {
  abortOnSignals,
  type AbortOnSignalsOptions,
  type SignalAbort,
} from "./lib/signals.ts";
export type { RetryOptions } from "./lib/retry.ts";
export {
  runSharedParts,
  type RunSharedPartsOptions,
  type SharedPart,
  type SharedPartsReport,
} from "./lib/shared_work.ts";
export { fingerprint } from "./store/cbor.ts";

// Errors callers catch.
export { LockedError, type LockInfo } from "./store/lock.ts";
export { CorruptChunkError, MissingChunkError } from "./store/chunk_store.ts";

// What a run's log holds (Job.stepRecord, forget's decisions).
export type { RunState, RunStatus } from "./lib/replay.ts";
export type {
  EndRecord,
  FailRecord,
  OutputRef,
  RunRecord,
  StepItems,
  StepRecord,
} from "./lib/records.ts";

// Stores.
export {
  defaultStoreLocation,
  openStore,
  type OpenStoreOptions,
} from "./lib/open_store.ts";
// The Store interface; the types it refers to are in @cairn/cairn/store.
export type { Store } from "./store/store.ts";

// Runs: listing, unlocking, exporting.
export {
  listRuns,
  type ListRunsOptions,
  newestRun,
  type RunListing,
  type RunSummary,
} from "./lib/runs.ts";
export {
  unlockJob,
  type UnlockJobOptions,
  type UnlockReport,
} from "./lib/unlock.ts";
export {
  type ExportFormat,
  type ExportReport,
  exportRun,
  type ExportRunOptions,
} from "./lib/io/export.ts";

// Maintenance: verify, forget, gc.
export {
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  verifyStore,
} from "./lib/verify.ts";
export {
  applyRetention,
  type ApplyRetentionOptions,
  type CalendarDuration,
  type ForgetOptions,
  type ForgetReport,
  forgetRuns,
  type RetentionCandidate,
  type RetentionPolicy,
  type RunDecision,
} from "./lib/forget.ts";
export { collectGarbage, type GcOptions, type GcReport } from "./lib/gc.ts";

// The map family (more in @cairn/cairn/map).
export {
  failuresOf,
  imap,
  map,
  map2,
  MapItemError,
  mapIter,
  type MapOptions,
  type MapProgress,
  type MapResult,
  type MapResults,
  type MapWorkers,
  pmap,
  possibly,
  quietly,
  type QuietlyResult,
  safely,
  type SafelyResult,
  walk,
} from "./lib/map/mod.ts";

// The kNN family (more in @cairn/cairn/knn).
export {
  knnGraphJob,
  type KnnGraphJobOptions,
  type KnnGraphJobResult,
  knnJob,
  type KnnJobOptions,
  type KnnJobPlan,
  type KnnJobResult,
  knnRecall,
  type KnnRecallOptions,
  type KnnRecallResult,
  knnRerank,
  type KnnRerankOptions,
  type KnnRerankResult,
  type Matrix,
  matrixFrom,
  type MatrixInput,
  type Metric,
  planKnnJob,
  type PlanKnnJobOptions,
  radiusJob,
  type RadiusJobOptions,
  type RadiusJobResult,
} from "./lib/knn/mod.ts";

// The pipeline family (hooks, checkpoint stores and run state in
// @cairn/cairn/pipeline).
export {
  type Component,
  type ComponentContext,
  loadPipelineConfig,
  parsePipelineConfig,
  type PipelineConfig,
  PipelineConfigChangedError,
  PipelineConfigError,
  type PipelineHooks,
  pipelineOutput,
  type PipelineRun,
  registerComponent,
  resumePipeline,
  runPipeline,
  type RunPipelineOptions,
} from "./lib/pipeline/mod.ts";

// The dataset processors family (built-in processors, the registry and
// checkpoint details in @cairn/cairn/processor).
export {
  BaseProcessor,
  type ProcessContext,
  type Processor,
  type ProcessorItem,
  type ProcessorRunResult,
  type ProcessorStatus,
  processorStatus,
  registerProcessor,
  resumeProcessor,
  type ResumeProcessorOptions,
  runProcessor,
  type RunProcessorOptions,
} from "./lib/processor/mod.ts";

// The dataflow family (operators' options, time-range plans and
// consolidate in @cairn/cairn/dataflow).
export {
  type Collection,
  Dataflow,
  type DataflowOptions,
  type DataflowResult,
} from "./lib/dataflow/mod.ts";
