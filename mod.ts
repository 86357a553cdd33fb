/**
 * cairn makes long batch jobs resumable, verifiable and incremental. Every
 * step writes immutable CBOR chunks to a content-addressed store (BLAKE3) and
 * appends a record to its run's manifest log; resume, verification,
 * retention, GC and memo hits are replays of that log.
 *
 * @example Steps run once, even across crashes and reruns
 * ```ts
 * import assert from "node:assert/strict";
 * import { runJob } from "./mod.ts";
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
export * from "./store/cbor.ts";
export * from "./store/chunk_store.ts";
export * from "./store/store.ts";
export * from "./store/manifest_log.ts";
export * from "./store/lock.ts";
export { createMemoryStore, type MemoryStore } from "./store/memory.ts";
export {
  openFsStore,
  type OpenFsStoreOptions,
  type StoreConfig,
} from "./store/fs.ts";
export { openS3Store, type OpenS3StoreOptions } from "./store/s3.ts";
export { blake3Hex, crc32c } from "./store/hash.ts";
export * from "./lib/open_store.ts";
export * from "./lib/records.ts";
export * from "./lib/events.ts";
export * from "./lib/job.ts";
export * from "./lib/signals.ts";
export * from "./lib/replay.ts";
export * from "./lib/retry.ts";
export * from "./lib/output.ts";
export * from "./lib/memo.ts";
export * from "./lib/verify.ts";
export * from "./lib/forget.ts";
export * from "./lib/gc.ts";
export {
  partJobName,
  runSharedParts,
  type RunSharedPartsOptions,
  type SharedPart,
  type SharedPartsReport,
} from "./lib/shared_work.ts";
export * from "./lib/duration.ts";
export * from "./lib/knn/mod.ts";
export * from "./lib/map/mod.ts";
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
export {
  AuditHooks,
  CheckpointHooks,
  type CheckpointState,
  type CheckpointStore,
  type Component,
  type ComponentContext,
  composeHooks,
  listResumable,
  loadPipelineConfig,
  LoggingHooks,
  MetricsHooks,
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
