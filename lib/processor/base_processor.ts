/**
 * `BaseProcessor`: a class with the checkpointing built in, so a new
 * processor only writes `items` and `process`.
 *
 * @module
 */
import {
  type ProcessorRunResult,
  resumeProcessor,
  type ResumeProcessorOptions,
  runProcessor,
  type RunProcessorOptions,
} from "./run.ts";
import type {
  ProcessContext,
  Processor,
  ProcessorItem,
  SetupContext,
} from "./types.ts";

/**
 * A processor to subclass: implement `name`, `items` and `process`; `run`
 * and `resume` checkpoint, resume and retry through {@linkcode runProcessor}.
 *
 * @example A processor in a few lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { BaseProcessor } from "./base_processor.ts";
 * import type { ProcessContext } from "./types.ts";
 *
 * class Words extends BaseProcessor<{ id: string; word: string }> {
 *   readonly name = "words";
 *   *items() {
 *     for (const word of ["alpha", "beta", ""]) yield { id: `w-${word}`, word };
 *   }
 *   process(item: { id: string; word: string }, ctx: ProcessContext) {
 *     if (item.word === "") return ctx.skip("empty"), [];
 *     return [{ id: ctx.nextId("W"), length: item.word.length }];
 *   }
 * }
 * const dir = await mkdtemp(join(tmpdir(), "cairn-base-"));
 * const result = await new Words().run({
 *   store: "memory:base-processor-example",
 *   dataset: "words",
 *   input: dir,
 *   out: join(dir, "words.jsonl"),
 * });
 * assert.equal(result.state.statistics.skipped_count, 1);
 * assert.equal(result.state.last_generated_id, "W000002");
 * ```
 */
export abstract class BaseProcessor<I extends ProcessorItem = ProcessorItem>
  implements Processor<I> {
  /** Registry name. */
  abstract readonly name: string;
  /** Version of `process`. Default: "1". */
  readonly version: string = "1";

  /**
   * The items of `input`, in a deterministic order with stable ids.
   *
   * @param input The input path.
   * @param ctx Dataset, parameters and signal.
   * @returns The items.
   */
  abstract items(
    input: string,
    ctx: SetupContext,
  ): AsyncIterable<I> | Iterable<I>;

  /**
   * The output records of one item; throw to count it as an error.
   *
   * @param item The item.
   * @param ctx State, ids, skip and parameters.
   * @returns The records.
   */
  abstract process(
    item: I,
    ctx: ProcessContext,
  ): unknown[] | undefined | Promise<unknown[] | undefined>;

  /**
   * Run this processor over a dataset with checkpoints.
   *
   * @param options Dataset, input, output and run options.
   * @returns What the run did.
   */
  run(options: RunProcessorOptions): Promise<ProcessorRunResult> {
    return runProcessor(this, options);
  }

  /**
   * Resume this processor's latest run on a dataset.
   *
   * @param dataset The dataset name.
   * @param options Checkpoint id and run options.
   * @returns What the run did.
   */
  resume(
    dataset: string,
    options: ResumeProcessorOptions = {},
  ): Promise<ProcessorRunResult> {
    return resumeProcessor(dataset, { ...options, processor: this });
  }
}
