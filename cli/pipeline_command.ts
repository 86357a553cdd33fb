/**
 * `cairn pipeline`: run config-driven component pipelines, resume a failed
 * run by id, list the resumable runs, show a run, print a run's output.
 *
 * Progress (one line per component) goes to stderr; with the global `--json`,
 * `run` and `resume` print the run's record on stdout. A config that cannot be
 * loaded exits 2 with a message naming the file and key; a failed run exits 1.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { extname } from "node:path";
import { InterruptedError } from "../lib/job.ts";
import { abortOnSignals } from "../lib/signals.ts";
import type {
  PipelineHooks,
  PipelineRun,
  RunPipelineOptions,
} from "../lib/pipeline/mod.ts";
import type { Store } from "../store/store.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  requiredOption,
  stringOption,
  UsageError,
} from "./command.ts";
import { explicitStore } from "./_args.ts";
import { shortTime, toJsonValue } from "./_format.ts";

// The family (and its npm dependencies) loads when a subcommand runs, so
// `cairn --help` and the other commands never pay for it.
let family: typeof import("../lib/pipeline/mod.ts") | undefined;
async function pipelineFamily(): Promise<
  typeof import("../lib/pipeline/mod.ts")
> {
  return family ??= await import("../lib/pipeline/mod.ts");
}

const CONFIG_EXTENSIONS = [".conf", ".hocon", ".json", ".yaml", ".yml"];

const RUN_OPTIONS: Command["options"] = {
  audit: {
    type: "string",
    valueName: "FILE",
    description: "Append an audit trail (one JSON event a line) to FILE",
  },
  metrics: {
    type: "string",
    valueName: "FILE",
    description:
      "Write metrics in the Prometheus text format to FILE after the run (for a node exporter textfile collector)",
  },
  "metrics-json": {
    type: "string",
    valueName: "FILE",
    description: "Write the same metrics as JSON to FILE",
  },
  "allow-config-change": {
    type: "boolean",
    description:
      "Resume although the components changed: rerun from the first changed component, reuse the ones before it",
  },
};

/** Config problems are usage errors (exit 2), with CLI flag names in the hints. */
function asUsage(error: unknown): unknown {
  if (
    (family !== undefined && error instanceof family.PipelineConfigError) ||
    error instanceof SyntaxError || error instanceof RangeError
  ) return new UsageError(error.message);
  if (
    family !== undefined && error instanceof family.PipelineConfigChangedError
  ) {
    return new UsageError(
      error.message.replace(
        "pass allowConfigChange",
        "pass --allow-config-change",
      ),
    );
  }
  return error;
}

function configArg(args: CommandArgs, usage: string): string {
  const [config, ...rest] = args.positionals;
  if (config === undefined) {
    throw new UsageError(`Missing CONFIG: usage is "${usage}"`);
  }
  if (rest.length > 0) {
    throw new UsageError(
      `Unexpected argument "${rest[0]}": usage is "${usage}"`,
    );
  }
  return config;
}

function summaryLine(run: PipelineRun): string {
  const reused = run.completedComponents.filter((c) => c.reused).length;
  const base =
    `run ${run.runId}, ${run.completedComponents.length}/${run.totalComponents} components done${
      reused > 0 ? ` (${reused} reused)` : ""
    }${
      run.resumedFrom === undefined ? "" : `, resumed from ${run.resumedFrom}`
    }`;
  return run.status === "completed"
    ? `Pipeline "${run.pipelineName}" completed: ${base}`
    : `Pipeline "${run.pipelineName}" failed${
      run.failedAt === undefined
        ? ""
        : ` at ${run.failedAt.label} "${run.failedAt.name}"`
    }: ${base}${run.error === undefined ? "" : `: ${run.error}`}`;
}

/** Run or resume, with hooks, progress, signals and exit codes. */
async function execute(
  ctx: CliContext,
  args: CommandArgs,
  usage: string,
  go: (
    config: string,
    options: RunPipelineOptions,
    family: typeof import("../lib/pipeline/mod.ts"),
  ) => Promise<PipelineRun>,
): Promise<number> {
  const configPath = configArg(args, usage);
  const pipeline = await pipelineFamily();
  const { AuditHooks, composeHooks, LoggingHooks, MetricsHooks } = pipeline;
  const hooks: PipelineHooks[] = [];
  if (!ctx.json && !ctx.quiet) hooks.push(LoggingHooks.humanReadable(ctx.info));
  const audit = stringOption(args, "audit");
  if (audit !== undefined) hooks.push(AuditHooks.toFile(audit));
  const prom = stringOption(args, "metrics");
  const promJson = stringOption(args, "metrics-json");
  if (prom !== undefined || promJson !== undefined) {
    hooks.push(MetricsHooks({
      ...(prom === undefined ? {} : { prometheusFile: prom }),
      ...(promJson === undefined ? {} : { jsonFile: promJson }),
    }));
  }
  const stop = abortOnSignals({ exitOnSecondSignal: true });
  const store = await explicitStore(ctx, args);
  try {
    const run = await go(configPath, {
      ...(store === undefined ? {} : { store }),
      hooks: composeHooks(...hooks),
      signal: stop.signal,
      onEvent: (event) => {
        if (ctx.json || event.type === "warning") ctx.onEvent(event);
      },
      onLog: (entry) =>
        entry.level === "warn"
          ? ctx.warn(`${entry.component}: ${entry.message}`)
          : ctx.info(`${entry.component}: ${entry.message}`),
      ...(ctx.waitLockMs > 0 ? { lock: { waitMs: ctx.waitLockMs } } : {}),
    }, pipeline);
    ctx.result(run, () => {
      // Without --quiet the logging hook already said how the run ended.
      if (run.status !== "completed" && ctx.quiet) ctx.warn(summaryLine(run));
    });
    return run.status === "completed" ? EXIT.ok : EXIT.failed;
  } catch (error) {
    if (error instanceof InterruptedError || stop.signal.aborted) {
      const by = stop.exitCode === EXIT.sigterm ? "SIGTERM" : "SIGINT";
      ctx.warn(
        `Pipeline interrupted by ${by}; resume it with "cairn pipeline resume ${configPath} --run RUN_ID" (see "cairn pipeline ls")`,
      );
      return stop.exitCode ?? EXIT.sigint;
    }
    throw asUsage(error);
  } finally {
    stop.dispose();
  }
}

const runCommand: Command = {
  name: "run",
  summary: "Run a pipeline from its config (.conf, .json, .yaml)",
  usage:
    "cairn pipeline run CONFIG [--auto-resume] [--no-checkpoint] [--allow-config-change]",
  description:
    "Runs the components in order, storing each one's output as chunks. With checkpointing on, a failed run can be resumed by id (cairn pipeline resume), and with auto-resume a plain run continues the latest failed run. Exits 0 when the run completed, 1 when it failed, 2 when the config cannot be used.",
  options: {
    "auto-resume": {
      type: "boolean",
      description:
        "Continue the latest failed run of the pipeline (overrides checkpoint.auto-resume; --no-auto-resume starts over)",
    },
    checkpoint: {
      type: "boolean",
      description:
        "Record checkpoints (overrides checkpoint.enabled); --no-checkpoint runs without them",
    },
    ...RUN_OPTIONS,
  },
  positionals: true,
  examples: [
    "cairn pipeline run examples/pipeline/etl.conf",
    "cairn pipeline run etl.conf --auto-resume",
    "cairn pipeline run etl.conf --no-checkpoint --json",
  ],
  run: (ctx, args) =>
    execute(
      ctx,
      args,
      runCommand.usage,
      (config, options, { runPipeline }) =>
        runPipeline(config, {
          ...options,
          ...(typeof args.values["auto-resume"] === "boolean"
            ? { autoResume: args.values["auto-resume"] }
            : {}),
          ...(typeof args.values.checkpoint === "boolean"
            ? { checkpoint: args.values.checkpoint }
            : {}),
          ...(args.values["allow-config-change"] === true
            ? { allowConfigChange: true }
            : {}),
        }),
    ),
};

const resumeCommand: Command = {
  name: "resume",
  summary: "Resume a failed pipeline run by id",
  usage: "cairn pipeline resume CONFIG --run RUN_ID [--allow-config-change]",
  description:
    "Starts a new run that records resumedFrom = RUN_ID, reuses the stored outputs of the components the failed run finished, and runs the rest. Refused (exit 2) when the components changed, unless --allow-config-change.",
  options: {
    run: {
      type: "string",
      valueName: "RUN_ID",
      description: "The failed run (see cairn pipeline ls NAME)",
    },
    ...RUN_OPTIONS,
  },
  positionals: true,
  examples: [
    "cairn pipeline resume etl.conf --run 20261124T020000.000Z-1a2b3c4d",
  ],
  run: (ctx, args) => {
    const runId = requiredOption(args, "run");
    return execute(
      ctx,
      args,
      resumeCommand.usage,
      (config, options, { resumePipeline }) =>
        resumePipeline(config, runId, {
          ...options,
          ...(args.values["allow-config-change"] === true
            ? { allowConfigChange: true }
            : {}),
        }),
    );
  },
};

const lsCommand: Command = {
  name: "ls",
  summary: "List a pipeline's resumable (failed) runs",
  usage: "cairn pipeline ls NAME [--json]",
  description:
    'NAME is the pipeline-name, or a config file (then its name and checkpoint location are used). Shows each failed, interrupted or killed run that no later run resumed: run id, the component it failed at ("component 2/3"), start time and error.',
  options: {},
  positionals: true,
  examples: [
    'cairn pipeline ls "Daily ETL Pipeline"',
    "cairn pipeline ls etl.conf --json",
  ],
  async run(ctx, args) {
    const [name, ...rest] = args.positionals;
    if (name === undefined || rest.length > 0) {
      throw new UsageError(`Expected one NAME: usage is "${lsCommand.usage}"`);
    }
    let pipelineName = name;
    let store: Store | string | undefined = await explicitStore(ctx, args);
    if (
      CONFIG_EXTENSIONS.includes(extname(name).toLowerCase()) &&
      existsSync(name)
    ) {
      try {
        const { loadPipelineConfig } = await pipelineFamily();
        const config = await loadPipelineConfig(name);
        pipelineName = config.pipelineName;
        store ??= config.checkpoint.location;
      } catch (error) {
        throw asUsage(error);
      }
    }
    store ??= await ctx.store();
    const { listResumable } = await pipelineFamily();
    const runs = await listResumable(pipelineName, { store });
    ctx.result(runs, () => {
      if (runs.length === 0) {
        ctx.info(`No resumable runs of pipeline "${pipelineName}"`);
        return;
      }
      for (const run of runs) {
        ctx.out(`Run: ${run.runId}`);
        if (run.failedAt !== undefined) {
          ctx.out(`  Failed at: ${run.failedAt.label} "${run.failedAt.name}"`);
        }
        ctx.out(`  Started: ${run.startedAt}`);
        if (run.error !== undefined) ctx.out(`  Error: ${run.error}`);
      }
    });
    return EXIT.ok;
  },
};

function runIdArg(args: CommandArgs, usage: string): string {
  const [runId, ...rest] = args.positionals;
  if (runId === undefined || rest.length > 0) {
    throw new UsageError(`Expected one RUN_ID: usage is "${usage}"`);
  }
  return runId;
}

const showCommand: Command = {
  name: "show",
  summary: "Show a pipeline run's record",
  usage: "cairn pipeline show RUN_ID [--json]",
  description:
    "Shows the run's status, components done (duration, output size, reused or not), where it failed and why, and the run it resumed. --json gives the record with the fields of the seed's CheckpointState.",
  options: {},
  positionals: true,
  examples: ["cairn pipeline show 20261124T020000.000Z-1a2b3c4d --json"],
  async run(ctx, args) {
    const runId = runIdArg(args, showCommand.usage);
    const { loadPipelineRun } = await pipelineFamily();
    const run = await loadPipelineRun(runId, { store: await ctx.store() });
    if (run === undefined) {
      throw new UsageError(
        `No pipeline run "${runId}" in store "${ctx.storeLocation}"; list runs with "cairn pipeline ls NAME" or "cairn ls"`,
      );
    }
    ctx.result(run, () => {
      ctx.out(`Run:       ${run.runId}`);
      ctx.out(`Pipeline:  ${run.pipelineName} (job ${run.job})`);
      ctx.out(
        `Status:    ${run.status}${run.cleanedUp ? " (cleaned up)" : ""}`,
      );
      ctx.out(`Started:   ${shortTime(run.startedAt)}`);
      if (run.resumedFrom !== undefined) {
        ctx.out(`Resumed:   from ${run.resumedFrom}`);
      }
      ctx.out(
        `Progress:  ${run.completedComponents.length}/${run.totalComponents} components, last checkpointed index ${run.lastCheckpointedIndex}`,
      );
      for (const c of run.completedComponents) {
        ctx.out(
          `  ${c.index + 1}. ${c.name}  ${
            c.reused ? "reused" : `${c.durationMs} ms`
          }  ${c.outputBytes} bytes`,
        );
      }
      if (run.failedAt !== undefined) {
        ctx.out(`Failed at: ${run.failedAt.label} "${run.failedAt.name}"`);
      }
      for (const e of run.errors) {
        ctx.out(`Error:     component ${e.index + 1} "${e.name}": ${e.error}`);
      }
      if (run.errors.length === 0 && run.error !== undefined) {
        ctx.out(`Error:     ${run.error}`);
      }
    });
    return EXIT.ok;
  },
};

const outputCommand: Command = {
  name: "output",
  summary: "Print a run's final output (the last component's)",
  usage: "cairn pipeline output RUN_ID [--format json|jsonl]",
  description:
    "Prints the stored output of the run's last component: json (default) as one document, jsonl as one line per array item. Works for runs cleaned up after success.",
  options: {
    format: {
      type: "string",
      valueName: "FORMAT",
      description: "json (default) or jsonl",
    },
  },
  positionals: true,
  examples: [
    "cairn pipeline output 20261124T020000.000Z-1a2b3c4d --format jsonl",
  ],
  async run(ctx, args) {
    const runId = runIdArg(args, outputCommand.usage);
    const format = stringOption(args, "format") ?? "json";
    if (format !== "json" && format !== "jsonl") {
      throw new UsageError(`Invalid --format "${format}": use json or jsonl`);
    }
    let value: unknown;
    try {
      const { pipelineOutput } = await pipelineFamily();
      value = await pipelineOutput(runId, { store: await ctx.store() });
    } catch (error) {
      throw asUsage(error);
    }
    if (format === "jsonl" && Array.isArray(value)) {
      for (const item of value) ctx.out(JSON.stringify(toJsonValue(item)));
    } else ctx.out(JSON.stringify(toJsonValue(value)));
    return EXIT.ok;
  },
};

/**
 * `cairn pipeline` and its subcommands.
 *
 * @example The subcommands
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipelineCommand } from "./pipeline_command.ts";
 * assert.deepEqual(pipelineCommand.subcommands?.map((c) => c.name), ["run", "resume", "ls", "show", "output"]);
 * ```
 */
export const pipelineCommand: Command = {
  name: "pipeline",
  summary: "Config-driven component pipelines: run, resume, ls, show, output",
  usage: "cairn pipeline run|resume|ls|show|output ...",
  description:
    "Pipelines in Spark Pipeline Framework's config format (HOCON, JSON or YAML): an ordered list of components, each one's output stored as chunks, failed runs resumed from the first component that did not finish. See docs/pipeline.md.",
  options: {},
  subcommands: [
    runCommand,
    resumeCommand,
    lsCommand,
    showCommand,
    outputCommand,
  ],
  examples: [
    "cairn pipeline run examples/pipeline/etl.conf",
    'cairn pipeline ls "Orders ETL"',
    "cairn pipeline resume examples/pipeline/etl.conf --run RUN_ID",
  ],
  run: () => Promise.resolve(EXIT.usage),
};
