/**
 * `cairn processor run` and `cairn processor resume`: a dataset processor as
 * a resumable, checkpointed job. SIGINT/SIGTERM stop after the current item
 * with a final checkpoint (exit 130/143); rerun or resume to continue.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseDuration } from "../lib/duration.ts";
import { abortOnSignals } from "../lib/signals.ts";
import type {
  ProcessorEvent,
  ProcessorRunOptions,
  ProcessorRunResult,
} from "../lib/processor/mod.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  intOption,
  requiredOption,
  stringOption,
  UsageError,
} from "./command.ts";
import { badInputIsUsage } from "./_args.ts";

type Options = Command["options"];

// The family (and its npm dependencies) loads when a subcommand runs, so
// `cairn --help` and the other commands never pay for it.
const processorFamily = () => import("../lib/processor/mod.ts");

const RUN_OPTIONS: Options = {
  "checkpoint-every": {
    type: "string",
    valueName: "N",
    description: "Write a checkpoint every N items (default 1000)",
  },
  "checkpoint-interval": {
    type: "string",
    valueName: "DURATION",
    description:
      "Write a checkpoint when DURATION passed since the last one (default 5m)",
  },
  "max-checkpoints": {
    type: "string",
    valueName: "N",
    description:
      "Checkpoints kept as restore points per dataset; older runs are forgotten (default 10)",
  },
  "max-retries": {
    type: "string",
    valueName: "N",
    description:
      "Retries after a failure, each from the newest checkpoint (default 3)",
  },
  "retry-delay": {
    type: "string",
    valueName: "DURATION",
    description: "Wait before each retry (default 5s)",
  },
};

function durationOption(args: CommandArgs, name: string): number | undefined {
  const text = stringOption(args, name);
  if (text === undefined) return undefined;
  try {
    const ms = parseDuration(text);
    if (!(ms > 0) && name !== "retry-delay") throw new RangeError("zero");
    return ms;
  } catch (error) {
    throw new UsageError(
      `Invalid --${name} "${text}": ${
        error instanceof SyntaxError
          ? error.message
          : "expected a positive duration"
      }`,
    );
  }
}

/** What the run and resume commands share: frequency, retries, lock, events, signals. */
function runOptionsOf(
  ctx: CliContext,
  args: CommandArgs,
  signal: AbortSignal,
): ProcessorRunOptions {
  const every = intOption(args, "checkpoint-every", 1);
  const intervalMs = durationOption(args, "checkpoint-interval");
  const max = intOption(args, "max-checkpoints", 1);
  const retries = intOption(args, "max-retries", 0);
  const delay = durationOption(args, "retry-delay");
  return {
    store: ctx.storeLocation,
    lock: { waitMs: ctx.waitLockMs },
    signal,
    onEvent: (event) => renderEvent(ctx, event),
    ...(every === undefined ? {} : { checkpointEvery: every }),
    ...(intervalMs === undefined ? {} : { checkpointIntervalMs: intervalMs }),
    ...(max === undefined ? {} : { maxCheckpoints: max }),
    ...(retries === undefined ? {} : { maxRetries: retries }),
    ...(delay === undefined ? {} : { retryDelayMs: delay }),
  };
}

function renderEvent(ctx: CliContext, event: ProcessorEvent): void {
  if (ctx.json) {
    // The renderer writes any event as a JSON line with a timestamp.
    ctx.onEvent(event as Parameters<CliContext["onEvent"]>[0]);
    return;
  }
  switch (event.type) {
    case "checkpoint": {
      const of = event.total === undefined ? "" : `/${event.total}`;
      ctx.info(
        `${event.dataset}: checkpoint ${event.checkpointId} (${event.status}): ${event.processed}${of} items, ${event.items} since the last`,
      );
      break;
    }
    case "resume":
      ctx.info(
        event.checkpointId === ""
          ? `${event.dataset}: starting over from the first item`
          : `${event.dataset}: resuming from checkpoint ${event.checkpointId} at item ${event.position}`,
      );
      break;
    case "item-error":
      ctx.info(`${event.dataset}: item ${event.id} failed: ${event.error}`);
      break;
    case "retry":
      ctx.warn(
        `${event.dataset}: attempt ${event.attempt} failed (${event.error}); retry ${event.attempt}/${event.maxRetries} from the newest checkpoint in ${
          Math.round(event.delayMs / 100) / 10
        }s`,
      );
      break;
    case "warning":
      ctx.onEvent(event);
      break;
    default:
      break;
  }
}

function report(ctx: CliContext, result: ProcessorRunResult): void {
  const s = result.state.statistics;
  ctx.result(result, () => {
    ctx.out(result.out);
    ctx.info(
      `${result.dataset}: ${
        result.alreadyCompleted ? "already completed" : "completed"
      }: ${result.state.processed_count} items (${s.success_count} ok, ${s.error_count} errors, ${s.skipped_count} skipped), ${result.records} records in ${result.out}`,
    );
  });
}

/** A processor name, or MODULE#EXPORT made absolute so `resume` finds it from anywhere. */
function moduleSpec(spec: string): string | undefined {
  if (!spec.includes("#") && !/\.(ts|js|mjs|mts)$/.test(spec)) return undefined;
  const hash = spec.lastIndexOf("#");
  const path = hash < 0 ? spec : spec.slice(0, hash);
  const name = hash < 0 ? "default" : spec.slice(hash + 1);
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !isAbsolute(path)
    ? path
    : pathToFileURL(resolve(path)).href;
  return `${url}#${name}`;
}

/**
 * `cairn processor run`.
 *
 * @example From a shell
 * ```sh
 * cairn processor run file-index --dataset photos --input ./photos --out photos.jsonl
 * ```
 */
export const processorRunCommand: Command = {
  name: "run",
  summary: "Run a processor over a dataset with checkpoints",
  usage:
    "cairn processor run PROCESSOR --dataset NAME --input PATH --out FILE [--checkpoint-every N] [--checkpoint-interval DURATION] [--max-checkpoints N] [--max-retries N] [--schema FILE] [--tag TAG]",
  description:
    "PROCESSOR is file-index, jsonl-normalize, speech-manifest, or MODULE#EXPORT. One run per dataset at a time (exit 3 for a second copy). A rerun of the same command resumes the unfinished run after its newest intact checkpoint; SIGINT/SIGTERM write a final checkpoint and exit 130/143. The output file is written atomically when the last item is done.",
  positionals: true,
  options: {
    dataset: {
      type: "string",
      valueName: "NAME",
      description: "Dataset name (one run at a time per dataset)",
    },
    input: {
      type: "string",
      valueName: "PATH",
      description: "Input directory or file",
    },
    out: {
      type: "string",
      valueName: "FILE",
      description: "Output JSONL file, written atomically at the end",
    },
    ...RUN_OPTIONS,
    schema: {
      type: "string",
      valueName: "FILE",
      description: "JSON Schema for jsonl-normalize",
    },
    tag: {
      type: "string",
      multiple: true,
      valueName: "TAG",
      description: "Tag the run (for forget --keep-tag); repeatable",
    },
    "new-run": {
      type: "boolean",
      description: "Start over even if an unfinished or completed run exists",
    },
  },
  examples: [
    "cairn processor run file-index --dataset photos --input ./photos --out photos.jsonl",
    "cairn processor run jsonl-normalize --dataset users --input users/ --schema user.schema.json --out users.jsonl",
    "cairn processor run speech-manifest --dataset giga --input corpus/ --out manifest.jsonl --checkpoint-every 500",
  ],
  async run(ctx, args) {
    const [spec, ...extra] = args.positionals;
    if (spec === undefined) {
      throw new UsageError(
        "Missing PROCESSOR: name one of file-index, jsonl-normalize, speech-manifest, or MODULE#EXPORT",
      );
    }
    if (extra.length > 0) {
      throw new UsageError(`Unexpected argument "${extra[0]}"`);
    }
    const dataset = requiredOption(args, "dataset");
    const input = requiredOption(args, "input");
    const out = requiredOption(args, "out");
    const schemaFile = stringOption(args, "schema");
    const module = moduleSpec(spec);
    const { getProcessor, loadProcessor, runProcessor } =
      await processorFamily();
    const processor = await badInputIsUsage(() =>
      module === undefined ? getProcessor(spec) : loadProcessor(module)
    );
    if (processor.name === "jsonl-normalize" && schemaFile === undefined) {
      throw new UsageError(
        "Missing --schema: jsonl-normalize needs a JSON Schema file",
      );
    }
    const params: Record<string, unknown> = {};
    if (schemaFile !== undefined) {
      params.schema = await readFile(schemaFile, "utf8").catch((error) => {
        throw new UsageError(
          `Cannot read --schema "${schemaFile}": ${(error as Error).message}`,
        );
      });
    }
    const tags = args.values.tag;
    const abort = abortOnSignals({ exitOnSecondSignal: true });
    try {
      const result = await badInputIsUsage(() =>
        runProcessor(processor, {
          ...runOptionsOf(ctx, args, abort.signal),
          dataset,
          input,
          out,
          params,
          ...(module === undefined ? {} : { module }),
          ...(Array.isArray(tags) ? { tags: tags.map(String) } : {}),
          ...(args.values["new-run"] === true ? { newRun: true } : {}),
        })
      );
      report(ctx, result);
      return EXIT.ok;
    } finally {
      abort.dispose();
    }
  },
};

/**
 * `cairn processor resume`.
 *
 * @example From a shell
 * ```sh
 * cairn processor resume photos --checkpoint photos_20261125120000123_4
 * ```
 */
export const processorResumeCommand: Command = {
  name: "resume",
  summary:
    "Resume a dataset's latest run, from its newest or a given checkpoint",
  usage: "cairn processor resume DATASET [--checkpoint ID]",
  description:
    "Continues the dataset's latest run with the processor, input, output and parameters it was started with, after its newest intact checkpoint or the one named (see cairn processor ls). A resume records a 'resuming' checkpoint first.",
  positionals: true,
  options: {
    checkpoint: {
      type: "string",
      valueName: "ID",
      description: "Checkpoint id to resume from (an older one too)",
    },
    ...RUN_OPTIONS,
  },
  examples: [
    "cairn processor resume photos",
    "cairn processor resume photos --checkpoint photos_20261125120000123_4",
  ],
  async run(ctx, args) {
    const [dataset, ...extra] = args.positionals;
    if (dataset === undefined) throw new UsageError("Missing DATASET");
    if (extra.length > 0) {
      throw new UsageError(`Unexpected argument "${extra[0]}"`);
    }
    const checkpoint = stringOption(args, "checkpoint");
    const { resumeProcessor } = await processorFamily();
    const abort = abortOnSignals({ exitOnSecondSignal: true });
    try {
      const result = await badInputIsUsage(() =>
        resumeProcessor(dataset, {
          ...runOptionsOf(ctx, args, abort.signal),
          ...(checkpoint === undefined ? {} : { checkpoint }),
        })
      );
      report(ctx, result);
      return EXIT.ok;
    } finally {
      abort.dispose();
    }
  },
};
