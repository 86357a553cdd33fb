/**
 * `cairn dataflow run|plan|explain MODULE`: run an incremental dataflow that a
 * module exports, plan a time-range recompute, or say why a node ran. MODULE
 * exports `dataflow` (a `Dataflow`) and `inputs` (an object of input name to
 * source, or a function returning one). The CLI runs it on `--store` when
 * given, else on the store the dataflow names (whose default is the CLI's).
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type {
  Dataflow,
  DataflowResult,
  RecomputePlan,
  Time,
} from "../lib/dataflow/mod.ts";
import { InterruptedError } from "../lib/job.ts";
import { abortOnSignals } from "../lib/signals.ts";
import type { Store } from "../store/store.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  stringOption,
  UsageError,
} from "./command.ts";
import { badInputIsUsage, explicitStore } from "./_args.ts";
import { formatCount, formatTable } from "./_format.ts";

/** What a dataflow module exports. */
interface Loaded {
  dataflow: Dataflow;
  inputs: () => Promise<Record<string, unknown>>;
}

function looksLikeDataflow(value: unknown): value is Dataflow {
  const v = value as Partial<Dataflow> | null;
  return typeof v === "object" && v !== null &&
    typeof v.run === "function" && typeof v.explain === "function" &&
    Array.isArray(v.nodes);
}

function storeOption(store: Store | undefined): { store?: Store } {
  return store === undefined ? {} : { store };
}

async function load(args: CommandArgs): Promise<Loaded> {
  const path = args.positionals[0];
  if (path === undefined) {
    throw new UsageError(
      "Missing MODULE: name a file that exports `dataflow` and `inputs`",
    );
  }
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(resolve(path)).href);
  } catch (error) {
    throw new UsageError(
      `Cannot load dataflow module "${path}": ${(error as Error).message}`,
    );
  }
  const found = looksLikeDataflow(module.dataflow)
    ? module.dataflow
    : Object.values(module).find(looksLikeDataflow);
  if (found === undefined) {
    throw new UsageError(
      `Cannot find a dataflow in "${path}": export one as \`export const dataflow = new Dataflow(...)\``,
    );
  }
  const inputs = module.inputs;
  return {
    dataflow: found,
    inputs: async () => {
      const value = typeof inputs === "function" ? await inputs() : inputs;
      if (value === undefined) return {};
      if (typeof value !== "object" || value === null) {
        throw new UsageError(
          `Cannot read the inputs of "${path}": \`inputs\` must be an object of input name to data, or a function returning one`,
        );
      }
      return value as Record<string, unknown>;
    },
  };
}

function parseTime(text: string): Time {
  return /^\d+$/.test(text) ? Number(text) : text;
}

/** The plan `--source/--from/--to` ask for, or undefined without `--from`/`--to`. */
async function requestedPlan(
  store: Store | undefined,
  dataflow: Dataflow,
  args: CommandArgs,
): Promise<RecomputePlan | undefined> {
  const from = stringOption(args, "from");
  const to = stringOption(args, "to");
  const source = stringOption(args, "source");
  if (from === undefined && to === undefined) {
    if (source !== undefined) {
      throw new UsageError(
        "Missing --from and --to: --source needs a time range",
      );
    }
    return undefined;
  }
  if (from === undefined || to === undefined) {
    throw new UsageError("Missing --from or --to: give both ends of the range");
  }
  return await badInputIsUsage(() =>
    dataflow.plan({
      timeRange: { from: parseTime(from), to: parseTime(to) },
      ...(source === undefined ? {} : { source }),
    }, storeOption(store))
  );
}

const RANGE_OPTIONS = {
  source: {
    type: "string" as const,
    description: "The input whose data changed (with --from and --to)",
    valueName: "NAME",
  },
  from: {
    type: "string" as const,
    description: "First time of the changed range (an integer or a string)",
    valueName: "T",
  },
  to: {
    type: "string" as const,
    description: "Last time of the changed range, included",
    valueName: "T",
  },
};

function printRun(ctx: CliContext, result: DataflowResult): void {
  ctx.result(
    {
      run: result.run,
      time: result.time,
      nodes: result.nodes,
      warnings: result.warnings,
      written: result.written,
    },
    () => {
      const rows = Object.entries(result.nodes).map(([name, s]) => [
        name,
        s.status,
        formatCount(s.calls),
        formatCount(s.added),
        formatCount(s.changed),
        formatCount(s.removed),
      ]);
      for (
        const line of formatTable(
          ["NODE", "STATUS", "CALLS", "ADDED", "CHANGED", "REMOVED"],
          rows,
          [2, 3, 4, 5],
        )
      ) ctx.out(line);
      ctx.info(
        `Run ${result.run} (time ${result.time}) stored ${
          formatCount(result.written.chunks)
        } new index chunks, ${formatCount(result.written.bytes)} bytes`,
      );
    },
  );
}

const runCommand: Command = {
  name: "run",
  summary: "Bring a dataflow up to date: recompute only what changed",
  usage: "cairn dataflow run MODULE [--source NAME --from T --to T]",
  description:
    "MODULE exports `dataflow` (a Dataflow) and `inputs` (input name to a Record, Map, [key, value] pairs, { file, key } or { upsert, delete }; or a function returning that). The run is a job on --store (without it, on the store the dataflow was created with): it takes the lock, resumes after a kill, and shows in ls, show, verify, forget and gc. With --from and --to, only the plan's nodes run and only that time range of the source is replaced.",
  options: RANGE_OPTIONS,
  positionals: true,
  examples: [
    "cairn dataflow run examples/dataflow_orders.ts",
    "cairn dataflow run flow.ts --source events --from 2026-11-24 --to 2026-11-24",
  ],
  async run(ctx, args) {
    const store = await explicitStore(ctx, args);
    const { dataflow, inputs } = await load(args);
    const plan = await requestedPlan(store, dataflow, args);
    const data = await badInputIsUsage(inputs);
    const stop = abortOnSignals({ exitOnSecondSignal: true });
    try {
      const result = await badInputIsUsage(() =>
        dataflow.run(data as never, {
          ...storeOption(store),
          signal: stop.signal,
          ...(plan === undefined ? {} : { plan }),
        })
      );
      for (const warning of result.warnings) ctx.warn(warning);
      printRun(ctx, result);
      return EXIT.ok;
    } catch (error) {
      if (error instanceof InterruptedError || stop.signal.aborted) {
        ctx.warn(
          error instanceof Error
            ? error.message
            : "Interrupted; rerun to resume",
        );
        return stop.exitCode ?? EXIT.sigint;
      }
      throw error;
    } finally {
      stop.dispose();
    }
  },
};

const planCommand: Command = {
  name: "plan",
  summary: "The nodes a time-range recompute would run, in order",
  usage: "cairn dataflow plan MODULE [--source NAME --from T --to T]",
  description:
    "Without --source every node is planned; with it, the source and what depends on it. Sinks whose recorded frontier is at or past --to are left out. Without a range, the whole graph with each sink's frontier is shown.",
  options: RANGE_OPTIONS,
  positionals: true,
  examples: [
    "cairn dataflow plan flow.ts --source events --from 2026-11-24 --to 2026-11-24",
  ],
  async run(ctx, args) {
    const store = await explicitStore(ctx, args);
    const { dataflow } = await load(args);
    const plan = await requestedPlan(store, dataflow, args);
    const frontiers = await dataflow.frontiers(storeOption(store));
    const nodes = plan?.nodes ?? dataflow.nodes;
    ctx.result(
      {
        nodes,
        ...(plan === undefined ? {} : { timeRange: plan.timeRange }),
        ...(plan?.source === undefined ? {} : { source: plan.source }),
        frontiers: Object.fromEntries(frontiers),
      },
      () => {
        const rows = nodes.map((n, i) => [
          String(i + 1),
          n,
          dataflow.dependents(n).join(", ") || "(sink)",
          String(frontiers.get(n) ?? ""),
        ]);
        for (
          const line of formatTable(
            ["#", "NODE", "DEPENDENTS", "FRONTIER"],
            rows,
            [0],
          )
        ) ctx.out(line);
      },
    );
    return EXIT.ok;
  },
};

const explainCommand: Command = {
  name: "explain",
  summary: "Why a node ran (or did not) in the last run",
  usage: "cairn dataflow explain MODULE NODE",
  options: {},
  positionals: true,
  examples: ["cairn dataflow explain flow.ts per-customer"],
  async run(ctx, args) {
    const store = await explicitStore(ctx, args);
    const { dataflow } = await load(args);
    const node = args.positionals[1];
    if (node === undefined) {
      throw new UsageError(
        `Missing NODE: name one of ${
          dataflow.nodes.map((n) => `"${n}"`).join(", ")
        }`,
      );
    }
    const why = await badInputIsUsage(() =>
      dataflow.explain(node, storeOption(store))
    );
    ctx.result(why, () => ctx.out(why.message));
    return EXIT.ok;
  },
};

/** `cairn dataflow`: run, plan and explain incremental dataflows. */
export const dataflowCommand: Command = {
  name: "dataflow",
  summary: "Incremental dataflows: run, plan a time range, explain a node",
  usage: "cairn dataflow run|plan|explain MODULE …",
  options: {},
  examples: [
    "cairn dataflow run flow.ts",
    "cairn dataflow explain flow.ts report",
  ],
  subcommands: [runCommand, planCommand, explainCommand],
  run() {
    return Promise.resolve(EXIT.usage);
  },
};
