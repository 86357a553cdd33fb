/**
 * `cairn processor`: the dataset processors family (`run`, `resume`,
 * `status`, `ls`).
 *
 * @module
 */
import { type Command, EXIT } from "./command.ts";
import {
  processorResumeCommand,
  processorRunCommand,
} from "./processor_run.ts";
import {
  processorLsCommand,
  processorStatusCommand,
} from "./processor_status.ts";

/**
 * `cairn processor`.
 *
 * @example Its subcommands
 * ```ts
 * import assert from "node:assert/strict";
 * import { processorCommand } from "./processor_command.ts";
 * assert.deepEqual(processorCommand.subcommands!.map((c) => c.name), ["run", "resume", "status", "ls"]);
 * ```
 */
export const processorCommand: Command = {
  name: "processor",
  summary:
    "Resumable dataset processors: file-index, jsonl-normalize, speech-manifest",
  usage: "cairn processor run|resume|status|ls ...",
  description:
    "Walks a dataset item by item with checkpoints every N items or T minutes and on SIGINT/SIGTERM; a rerun or resume continues after the newest intact checkpoint, and the output is byte-identical to an uninterrupted run.",
  options: {},
  examples: [
    "cairn processor run file-index --dataset photos --input ./photos --out photos.jsonl",
    "cairn processor status photos --json",
    "cairn processor ls",
  ],
  subcommands: [
    processorRunCommand,
    processorResumeCommand,
    processorStatusCommand,
    processorLsCommand,
  ],
  run: () => Promise.resolve(EXIT.usage),
};
