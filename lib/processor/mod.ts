/**
 * Dataset processors: walk a dataset item by item, convert each item into
 * output records, and survive being stopped at any moment. A run is a job per
 * dataset (one copy at a time); every N items or T minutes, on a graceful
 * stop and on failure, a checkpoint stores the records since the previous one
 * with the seed's state; a rerun resumes after the newest intact checkpoint,
 * and the output file is assembled atomically at the end, byte-identical to
 * an uninterrupted run.
 *
 * Built-in processors: `file-index`, `jsonl-normalize` and `speech-manifest`.
 *
 * @example A processor, a run and its status
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { BaseProcessor, type ProcessContext, processorStatus } from "./mod.ts";
 *
 * class Lengths extends BaseProcessor<{ id: string; text: string }> {
 *   readonly name = "lengths";
 *   *items() {
 *     for (const text of ["a", "bb", "ccc"]) yield { id: text, text };
 *   }
 *   process(item: { id: string; text: string }, ctx: ProcessContext) {
 *     return [{ id: ctx.nextId("S"), length: item.text.length }];
 *   }
 * }
 * const dir = await mkdtemp(join(tmpdir(), "cairn-processor-"));
 * const store = "memory:processor-mod-example";
 * await new Lengths().run({ store, dataset: "texts", input: dir, out: join(dir, "out.jsonl") });
 * assert.equal(
 *   await readFile(join(dir, "out.jsonl"), "utf8"),
 *   '{"id":"S000001","length":1}\n{"id":"S000002","length":2}\n{"id":"S000003","length":3}\n',
 * );
 * assert.equal((await processorStatus("texts", { store })).state.last_generated_id, "S000003");
 * ```
 *
 * @module
 */
export { BaseProcessor } from "./base_processor.ts";
export {
  type ProcessorRunOptions,
  type ProcessorRunResult,
  resumeProcessor,
  type ResumeProcessorOptions,
  runProcessor,
  type RunProcessorOptions,
} from "./run.ts";
export {
  type CheckpointSummary,
  listProcessorDatasets,
  processedItems,
  type ProcessedItemsOptions,
  type ProcessorDataset,
  type ProcessorStatus,
  processorStatus,
  type ProcessorStatusOptions,
} from "./status.ts";
export {
  getProcessor,
  loadProcessor,
  processorNames,
  registerProcessor,
} from "./registry.ts";
export type {
  CheckpointStatus,
  ItemError,
  ProcessContext,
  Processor,
  ProcessorCheckpointState,
  ProcessorEvent,
  ProcessorItem,
  SetupContext,
} from "./types.ts";
export type { InputFile } from "./_files.ts";
export { fileIndex, type FileIndexRecord } from "./file_index.ts";
export {
  type FileReport,
  jsonlNormalize,
  type RecordItem,
} from "./jsonl_normalize.ts";
export {
  speechManifest,
  type SpeechManifestRecord,
} from "./speech_manifest.ts";
