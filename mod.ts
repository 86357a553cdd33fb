/**
 * cairn makes long batch jobs resumable, verifiable and incremental. Every
 * step writes immutable CBOR chunks to a content-addressed store (BLAKE3) and
 * appends a record to its run's manifest log; resume, verification,
 * retention, GC and memo hits are replays of that log.
 *
 * This entry point holds what a user of jobs, map and kNN needs. The families
 * also have their own entry points (`@cairn/cairn/map`, `@cairn/cairn/knn`,
 * `@cairn/cairn/pipeline`, `@cairn/cairn/processor`, `@cairn/cairn/dataflow`),
 * and the low-level store and format pieces are in `@cairn/cairn/store`.
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
  partJobName,
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
export type { Store } from "./store/store.ts";
// Types the Store interface and the options above refer to (the functions
// that work on them are in @cairn/cairn/store).
export type {
  ChunkRef,
  ChunkStat,
  ChunkStore,
  DeleteChunkOptions,
  GetChunkOptions,
  PutResult,
} from "./store/chunk_store.ts";
export type {
  LogEntry,
  LogRepair,
  ManifestLog,
  ReplayOptions,
  TailRepair,
} from "./store/manifest_log.ts";
export type {
  AcquireLockOptions,
  BreakLockOptions,
  JobLock,
} from "./store/lock.ts";

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
  type IndexInput,
  type IntTable,
  type KnnBlockSizeOptions,
  knnGraphJob,
  type KnnGraphJobOptions,
  type KnnGraphJobResult,
  knnJob,
  type KnnJobBaseOptions,
  type KnnJobInfo,
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
  type MatrixData,
  matrixFrom,
  type MatrixInput,
  type MatrixShape,
  type Metric,
  type OutputFileInfo,
  planKnnJob,
  type PlanKnnJobOptions,
  type PreparedSource,
  radiusJob,
  type RadiusJobOptions,
  type RadiusJobResult,
  type Symmetrize,
  type ZeroVectorPolicy,
} from "./lib/knn/mod.ts";

// The pipeline family (more in @cairn/cairn/pipeline).
export {
  type AuditFileOptions,
  AuditHooks,
  type CheckpointConfig,
  CheckpointHooks,
  type CheckpointState,
  type CheckpointStore,
  type CompletedComponent,
  type Component,
  type ComponentContext,
  type ComponentFailure,
  type ComponentLogEntry,
  type ComponentLogger,
  type ComponentSpec,
  type ComponentType,
  composeHooks,
  type HookInfo,
  type LineWriter,
  listResumable,
  loadPipelineConfig,
  LoggingHooks,
  MetricsHooks,
  type MetricsHooksOptions,
  type MetricsHooksResult,
  type PipelineConfig,
  PipelineConfigChangedError,
  PipelineConfigError,
  type PipelineHooks,
  pipelineOutput,
  type PipelineRun,
  type PipelineStatus,
  type PipelineStoreOptions,
  registerComponent,
  resumePipeline,
  runPipeline,
  type RunPipelineOptions,
} from "./lib/pipeline/mod.ts";
// The dataset processors family (its built-in processors are in
// "@cairn/cairn/processor" and, by name, in getProcessor).
export { BaseProcessor } from "./lib/processor/base_processor.ts";
export {
  type ProcessorRunOptions,
  type ProcessorRunResult,
  resumeProcessor,
  type ResumeProcessorOptions,
  runProcessor,
  type RunProcessorOptions,
} from "./lib/processor/run.ts";
export {
  type CheckpointSummary,
  listProcessorDatasets,
  processedItems,
  type ProcessedItemsOptions,
  type ProcessorDataset,
  type ProcessorStatus,
  processorStatus,
  type ProcessorStatusOptions,
} from "./lib/processor/status.ts";
export {
  getProcessor,
  loadProcessor,
  processorNames,
  registerProcessor,
} from "./lib/processor/registry.ts";
export type {
  CheckpointStatus,
  ItemError,
  ProcessContext,
  Processor,
  ProcessorCheckpointState,
  ProcessorEvent,
  ProcessorItem,
  SetupContext,
} from "./lib/processor/types.ts";
// The dataflow family (more in @cairn/cairn/dataflow).
export {
  type Collection,
  consolidate,
  Dataflow,
  type DataflowOptions,
  type DataflowResult,
  type Explanation,
  type InputDelta,
  type InputFile,
  type InputOptions,
  type InputSource,
  type InputValue,
  type Node as DataflowNode,
  type NodeStats,
  type OperatorOptions,
  type PlanGraph,
  planRecompute,
  type ReadOptions,
  type RecomputePlan,
  type RecomputeRequest,
  type RunOptions,
  type Time,
  type TimeRange,
  timeRangeContains,
  type Update,
} from "./lib/dataflow/mod.ts";
