/**
 * The exact kNN family on the command line: `cairn knn`, `knn-graph`,
 * `radius` (resumable jobs), `knn-plan`, and the evaluation commands
 * `knn-recall` and `knn-rerank`.
 *
 * Job commands validate every input before they touch the store, report
 * progress through the job events, take the job lock with `--wait-lock`, and
 * stop gracefully on SIGINT/SIGTERM (exit 130/143; rerun the same command to
 * resume). On success they print the output paths on stdout and a one-line
 * summary on stderr (`--json`: one result object on stdout).
 *
 * @module
 */
import { parseDuration } from "../lib/duration.ts";
import {
  formatByteSize,
  knnGraphJob,
  knnJob,
  type KnnJobBaseOptions,
  type KnnJobInfo,
  type KnnJobPlan,
  knnRecall,
  knnRerank,
  METRICS,
  parseByteSize,
  planKnnJob,
  radiusJob,
  readMatrixFileInfo,
} from "../lib/knn/mod.ts";
import type { Metric, ZeroVectorPolicy } from "../lib/knn/mod.ts";
import { abortOnSignals } from "../lib/signals.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  intOption,
  numberOption,
  requiredOption,
  stringOption,
  UsageError,
} from "./command.ts";
import { formatCount } from "./_format.ts";
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomically } from "../lib/write_file_atomically.ts";

type Options = Command["options"];

const REF_OPTION: Options = {
  ref: {
    type: "string",
    valueName: "R.npy",
    description:
      "Reference matrix: .npy (float32/float64, C order, 2-D) or .fvecs",
  },
};

const QUERY_OPTION: Options = {
  query: {
    type: "string",
    valueName: "Q.npy",
    description:
      "Query matrix (same columns as --ref). Default: self-search of --ref",
  },
};

const METRIC_OPTIONS: Options = {
  metric: {
    type: "string",
    valueName: "METRIC",
    description:
      "euclidean, sqeuclidean, cosine (1 - cos) or ip (inner product, larger is nearer). Default: euclidean",
  },
  "zero-vector": {
    type: "string",
    valueName: "POLICY",
    description:
      'Cosine only: "throw" rejects zero rows, "one" gives them distance 1 to everything. Default: throw',
  },
};

const SELF_OPTIONS: Options = {
  "exclude-self": {
    type: "boolean",
    description:
      "Self-search: skip each row's own index (the default without --query)",
  },
  "include-self": {
    type: "boolean",
    description: "Self-search: keep each row's own index",
  },
};

const PLAN_OPTIONS: Options = {
  "memory-budget": {
    type: "string",
    valueName: "SIZE",
    description:
      "Memory for the search, e.g. 256MB, 2GiB. Sizes the blocks; with `cairn knn`, a .npy --ref that does not fit is streamed from its file in tiles (read once, searched by every thread) and the budget covers everything the search holds. Default: 512MiB for the blocks, reference in memory",
  },
  "block-rows": {
    type: "string",
    valueName: "N",
    description: "Query rows per block step, overriding --memory-budget",
  },
  threads: {
    type: "string",
    valueName: "N",
    description:
      "Worker threads searching each block (results do not depend on it). Default: the available cores",
  },
};

const JOB_OPTIONS: Options = {
  out: {
    type: "string",
    valueName: "DIR",
    description: "Output directory for the .npy files (created if missing)",
  },
  job: {
    type: "string",
    valueName: "NAME",
    description:
      "Job name. Default: derived from the inputs' content hashes and parameters",
  },
  "new-run": {
    type: "boolean",
    description:
      "Start a new run even if the job has an unfinished run with another config",
  },
  overwrite: {
    type: "boolean",
    description:
      "Write into an --out directory that holds .npy files of another command or job (refused by default)",
  },
};

/** The file in an --out directory that says which command wrote its .npy files. */
const OUT_MARKER = ".cairn-out.json";

/** What identifies the results in an --out directory: the command and every option that shapes them. */
function outKey(
  ctx: CliContext,
  command: string,
  args: CommandArgs,
): string {
  const ignored = new Set([
    "out",
    "overwrite",
    "json",
    "quiet",
    "color",
    "wait-lock",
    "help",
    "new-run",
    // How the work is shared does not change the results.
    "workers-shared",
    "lease",
  ]);
  const values: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(args.values).sort()) {
    if (ignored.has(name) || value === undefined) continue;
    values[name] = ["ref", "query", "candidates"].includes(name) &&
        typeof value === "string"
      ? resolve(value)
      : value;
  }
  return JSON.stringify({
    command,
    store: /^(memory:|s3a?:\/\/)/.test(ctx.storeLocation)
      ? ctx.storeLocation
      : resolve(ctx.storeLocation),
    values,
  });
}

/**
 * Refuse to write into an --out directory holding another command's or job's
 * .npy files unless --overwrite; returns the step that records this
 * command as the directory's writer once it succeeds.
 */
async function claimOut(
  ctx: CliContext,
  command: string,
  args: CommandArgs,
): Promise<(result: { job: string }) => Promise<void>> {
  const out = requiredOption(args, "out");
  const key = outKey(ctx, command, args);
  const record = (result: { job: string }) =>
    writeFileAtomically(
      join(out, OUT_MARKER),
      (write) => write(JSON.stringify({ job: result.job, key }) + "\n"),
      { mode: 0o644 },
    );
  if (args.values.overwrite === true) return record;
  const entries = await readdir(out).catch((error) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  });
  const npy = entries.filter((e) => e.endsWith(".npy"));
  if (npy.length === 0) return record;
  let marker: { job?: string; key?: string } | undefined;
  try {
    marker = JSON.parse(await readFile(join(out, OUT_MARKER), "utf8"));
  } catch {
    marker = undefined;
  }
  if (marker?.key === key) return record;
  const whose = marker?.job === undefined
    ? "cairn did not write them"
    : `they are the results of job "${marker.job}", written by another command or with other options`;
  throw new UsageError(
    `Refusing to write into --out "${out}": it holds ${npy.length} .npy file(s) (${
      npy.slice(0, 3).join(", ")
    }${
      npy.length > 3 ? ", …" : ""
    }) and ${whose}; pass --overwrite to replace them, or pick another --out`,
  );
}

function metricOf(args: CommandArgs): Metric {
  const metric = stringOption(args, "metric") ?? "euclidean";
  if (!(METRICS as readonly string[]).includes(metric)) {
    throw new UsageError(
      `Invalid --metric "${metric}": use ${METRICS.join(", ")}`,
    );
  }
  return metric as Metric;
}

function zeroVectorOf(args: CommandArgs): ZeroVectorPolicy {
  const policy = stringOption(args, "zero-vector") ?? "throw";
  if (policy !== "throw" && policy !== "one") {
    throw new UsageError(
      `Invalid --zero-vector "${policy}": use "throw" or "one"`,
    );
  }
  return policy;
}

function excludeSelfOf(args: CommandArgs): boolean | undefined {
  const exclude = args.values["exclude-self"];
  const include = args.values["include-self"];
  if (exclude === true && include === true) {
    throw new UsageError(
      "Conflicting --exclude-self and --include-self: pass one of them",
    );
  }
  if (args.values.query !== undefined && exclude === true) {
    throw new UsageError(
      "Invalid --exclude-self with --query: excluding self applies to self-search only; drop one of them",
    );
  }
  if (exclude === true || include === false) return true;
  if (include === true || exclude === false) return false;
  return undefined;
}

function planOptionsOf(
  args: CommandArgs,
): { memoryBudgetBytes?: number; blockRows?: number; threads?: number } {
  const budget = stringOption(args, "memory-budget");
  const blockRows = intOption(args, "block-rows", 1);
  const threads = intOption(args, "threads", 1);
  let memoryBudgetBytes: number | undefined;
  if (budget !== undefined) {
    try {
      memoryBudgetBytes = parseByteSize(budget);
    } catch (error) {
      throw new UsageError(
        `Invalid --memory-budget: ${(error as Error).message}`,
      );
    }
    if (memoryBudgetBytes < 1) {
      throw new UsageError(
        `Invalid --memory-budget "${budget}": expected a positive size`,
      );
    }
  }
  return {
    ...(memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes }),
    ...(blockRows === undefined ? {} : { blockRows }),
    ...(threads === undefined ? {} : { threads }),
  };
}

function kOf(args: CommandArgs): number {
  const k = intOption(args, "k", 1);
  if (k === undefined) {
    throw new UsageError("Missing --k: this command needs it");
  }
  return k;
}

/** Options shared by the three job commands. */
/** Run a job that SIGINT/SIGTERM stop cleanly (exit 130/143); a second signal exits at once. */
async function withSignalAbort<T>(
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = abortOnSignals({ exitOnSecondSignal: true });
  try {
    return await run(stop.signal);
  } finally {
    stop.dispose();
  }
}

function jobOptionsOf(ctx: CliContext, args: CommandArgs): KnnJobBaseOptions {
  const job = stringOption(args, "job");
  const excludeSelf = excludeSelfOf(args);
  return {
    // A location, not an opened store: nothing is created until the inputs check out.
    store: ctx.storeLocation,
    out: requiredOption(args, "out"),
    metric: metricOf(args),
    zeroVector: zeroVectorOf(args),
    ...(excludeSelf === undefined ? {} : { excludeSelf }),
    ...(job === undefined ? {} : { job }),
    ...(args.values["new-run"] === true ? { newRun: true } : {}),
    ...planOptionsOf(args),
    lock: { waitMs: ctx.waitLockMs },
    onEvent: (event) => ctx.onEvent(event),
  };
}

/** Print the result: paths on stdout, one summary line on stderr. */
function report(
  ctx: CliContext,
  result: KnnJobInfo,
  extra: Record<string, unknown>,
  what: string,
): void {
  const json = {
    job: result.job,
    run: result.run,
    resumed: result.resumed,
    alreadyCompleted: result.alreadyCompleted,
    ...extra,
    blocks: result.plan.blocks,
    blockRows: result.plan.blockRows,
    reference: result.plan.reference,
    ...(result.plan.tileRows === undefined
      ? {}
      : { tileRows: result.plan.tileRows }),
    computedBlocks: result.computedBlocks,
    memoBlocks: result.memoBlocks,
    prepared: result.prepared,
    files: result.files,
    outputs: result.outputs,
    written: result.written,
  };
  ctx.result(json, () => {
    for (const path of Object.values(result.files)) ctx.out(path);
    const blocks = result.plan.steps - 1;
    const how = result.alreadyCompleted
      ? `already complete, ${
        result.written.length === 0
          ? "outputs up to date"
          : `rewrote ${result.written.length} output file(s)`
      }`
      : `${result.computedBlocks} of ${blocks} block step(s) computed${
        result.memoBlocks > 0 ? `, ${result.memoBlocks} reused` : ""
      }`;
    ctx.info(`${result.job}: ${what}; ${how} (run ${result.run})`);
  });
}

const JOB_DESCRIPTION =
  "The job is keyed by the content hashes of the matrices and the parameters, so rerunning the same command resumes an interrupted run without recomputing finished blocks, and returns at once when the run is complete (rewriting an output file only if it is missing or differs). The prepared reference is shared with later jobs on the same reference. Bad input fails with exit code 2 before anything is stored; an --out directory holding another command's .npy files is refused unless --overwrite; Ctrl-C stops after the block in progress (rerun to resume).";

/**
 * `cairn knn`: exact k nearest neighbours as a resumable job.
 *
 * @example From a shell: run, interrupt, rerun to resume
 * ```sh
 * cairn knn --ref emb.npy --k 10 --out knn10/
 * ```
 *
 * @example Its options
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnCommand } from "./knn_commands.ts";
 * assert.equal(knnCommand.name, "knn");
 * assert.ok("memory-budget" in knnCommand.options && "exclude-self" in knnCommand.options);
 * ```
 */
export const knnCommand: Command = {
  name: "knn",
  summary: "Exact k nearest neighbours as a resumable job (.npy in, .npy out)",
  usage:
    "cairn knn --ref R.npy [--query Q.npy] --k K [--metric M] [--exclude-self|--include-self] --out DIR [--memory-budget 512MiB] [--block-rows N] [--job NAME] [--new-run]",
  description:
    `Finds the exact k nearest reference rows of every query row (of every reference row with no --query, excluding the row itself unless --include-self), one job step per block of query rows. Writes DIR/index.npy (rows x k, int32, 0-based, nearest first, ties to the lower index) and DIR/distance.npy (rows x k, float32; inner products for --metric ip). ${JOB_DESCRIPTION}`,
  options: {
    ...REF_OPTION,
    ...QUERY_OPTION,
    k: { type: "string", valueName: "K", description: "Neighbours per row" },
    ...METRIC_OPTIONS,
    ...SELF_OPTIONS,
    ...JOB_OPTIONS,
    ...PLAN_OPTIONS,
    "workers-shared": {
      type: "boolean",
      description:
        "Share the blocks with every other process running this command on the same store (any machine): each takes block leases, computes and commits blocks; a dead worker's blocks are taken over once its lease expires (at once on the same host); one worker then writes the outputs, byte-identical to a single process's",
    },
    lease: {
      type: "string",
      valueName: "DURATION",
      description:
        "With --workers-shared: a block lease without a heartbeat for this long is taken over. Default: 1m",
    },
  },
  examples: [
    "cairn knn --ref emb.npy --k 10 --out knn10/",
    "cairn --store s3://bucket/cairn knn --ref emb.npy --k 10 --out knn10/ --job emb-knn --workers-shared",
    "cairn knn --ref base.npy --query queries.npy --k 100 --metric cosine --out gt/ --memory-budget 2GiB",
    "cairn knn --ref base.npy --k 10 --out knn/ --job nightly-knn --wait-lock 10m",
  ],
  async run(ctx, args) {
    const ref = requiredOption(args, "ref");
    const query = stringOption(args, "query");
    const k = kOf(args);
    const lease = stringOption(args, "lease");
    let leaseMs: number | undefined;
    if (lease !== undefined) {
      try {
        leaseMs = parseDuration(lease);
      } catch (error) {
        throw new UsageError(`Invalid --lease: ${(error as Error).message}`);
      }
    }
    const claim = await claimOut(ctx, "knn", args);
    const result = await withSignalAbort((signal) =>
      knnJob(ref, {
        ...jobOptionsOf(ctx, args),
        signal,
        k,
        ...(args.values["workers-shared"] === true
          ? { sharedWorkers: true }
          : {}),
        ...(leaseMs === undefined ? {} : { leaseMs }),
        ...(query === undefined ? {} : { query }),
      })
    );
    await claim(result);
    report(
      ctx,
      result,
      { rows: result.rows, k },
      `${formatCount(result.rows)} rows x k=${k}`,
    );
    return EXIT.ok;
  },
};

/**
 * `cairn knn-graph`: an exact kNN or SNN graph as a resumable job.
 *
 * @example From a shell
 * ```sh
 * cairn knn-graph --ref emb.npy --k 15 --symmetrize mutual --out mutual/
 * ```
 *
 * @example Its options
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnGraphCommand } from "./knn_commands.ts";
 * assert.ok("symmetrize" in knnGraphCommand.options && "kind" in knnGraphCommand.options);
 * ```
 */
export const knnGraphCommand: Command = {
  name: "knn-graph",
  summary: "Exact kNN or shared-nearest-neighbour graph as a resumable job",
  usage:
    "cairn knn-graph --ref R.npy --k K [--symmetrize none|union|mutual] [--kind knn|snn] [--metric M] --out DIR",
  description:
    `Builds the graph of the reference's exact k nearest neighbours (self excluded unless --include-self), one job step per block of rows. Writes DIR/from.npy and DIR/to.npy (int32, one entry per edge) and DIR/distance.npy (float32). --symmetrize none gives exactly rows x k directed edges in row order; union and mutual give undirected edges with from < to. --kind snn writes DIR/weight.npy (int32) instead of distance.npy: the number of shared neighbours of i and j, each row counting itself, for every pair sharing at least --min-shared. ${JOB_DESCRIPTION}`,
  options: {
    ...REF_OPTION,
    k: { type: "string", valueName: "K", description: "Neighbours per row" },
    symmetrize: {
      type: "string",
      valueName: "MODE",
      description:
        "none (directed), union or mutual; kind knn only. Default: none",
    },
    kind: {
      type: "string",
      valueName: "KIND",
      description:
        "knn (edge distances) or snn (shared-neighbour weights). Default: knn",
    },
    "min-shared": {
      type: "string",
      valueName: "N",
      description: "SNN only: smallest weight that makes an edge. Default: 1",
    },
    ...METRIC_OPTIONS,
    ...SELF_OPTIONS,
    ...JOB_OPTIONS,
    ...PLAN_OPTIONS,
  },
  examples: [
    "cairn knn-graph --ref emb.npy --k 15 --out graph/",
    "cairn knn-graph --ref emb.npy --k 15 --symmetrize mutual --out mutual/",
    "cairn knn-graph --ref emb.npy --k 20 --kind snn --min-shared 5 --out snn/",
  ],
  async run(ctx, args) {
    const ref = requiredOption(args, "ref");
    const k = kOf(args);
    const symmetrize = stringOption(args, "symmetrize") ?? "none";
    if (!["none", "union", "mutual"].includes(symmetrize)) {
      throw new UsageError(
        `Invalid --symmetrize "${symmetrize}": use none, union or mutual`,
      );
    }
    const kind = stringOption(args, "kind") ?? "knn";
    if (kind !== "knn" && kind !== "snn") {
      throw new UsageError(`Invalid --kind "${kind}": use knn or snn`);
    }
    if (kind === "snn" && symmetrize !== "none") {
      throw new UsageError(
        "Invalid --symmetrize with --kind snn: an SNN graph is already undirected; drop --symmetrize",
      );
    }
    const minShared = intOption(args, "min-shared", 1);
    if (minShared !== undefined && kind !== "snn") {
      throw new UsageError(
        "Invalid --min-shared without --kind snn: it applies to SNN graphs only",
      );
    }
    const claim = await claimOut(ctx, "knn-graph", args);
    const result = await withSignalAbort((signal) =>
      knnGraphJob(ref, {
        ...jobOptionsOf(ctx, args),
        signal,
        k,
        kind,
        symmetrize: symmetrize as "none" | "union" | "mutual",
        ...(minShared === undefined ? {} : { minShared }),
      })
    );
    await claim(result);
    const shape = kind === "snn" ? "SNN" : `${symmetrize} kNN`;
    report(
      ctx,
      result,
      { edges: result.edges, k, kind, symmetrize },
      `${shape} graph with ${formatCount(result.edges)} edges, k=${k}`,
    );
    return EXIT.ok;
  },
};

/**
 * `cairn radius`: fixed-radius search as a resumable two-phase job.
 *
 * @example From a shell
 * ```sh
 * cairn radius --ref emb.npy --radius 0.5 --out near/
 * ```
 *
 * @example Its options
 * ```ts
 * import assert from "node:assert/strict";
 * import { radiusCommand } from "./knn_commands.ts";
 * assert.ok("count-only" in radiusCommand.options);
 * ```
 */
export const radiusCommand: Command = {
  name: "radius",
  summary: "Exact fixed-radius search as a resumable count-then-collect job",
  usage:
    "cairn radius --ref R.npy [--query Q.npy] --radius R [--count-only] [--metric M] --out DIR",
  description:
    `Finds every reference row within --radius (inclusive; squared units for sqeuclidean; a minimum inner product for ip) of each query row. A count phase (steps count/S-E) is followed by a collect phase (steps collect/S-E). Writes CSR output: DIR/offset.npy (rows + 1, int64; query i owns offset[i] up to offset[i+1]), DIR/index.npy (int32) and DIR/distance.npy (float32), nearest first within a row. --count-only runs only the count phase and writes DIR/counts.npy (rows, int32); a later full run reuses its counts. ${JOB_DESCRIPTION}`,
  options: {
    ...REF_OPTION,
    ...QUERY_OPTION,
    radius: {
      type: "string",
      valueName: "R",
      description: "The radius (>= 0, except for --metric ip)",
    },
    "count-only": {
      type: "boolean",
      description: "Only count matches per row (DIR/counts.npy)",
    },
    ...METRIC_OPTIONS,
    ...SELF_OPTIONS,
    ...JOB_OPTIONS,
    ...PLAN_OPTIONS,
  },
  examples: [
    "cairn radius --ref emb.npy --radius 0.5 --out near/",
    "cairn radius --ref emb.npy --radius 0.5 --count-only --out counts/",
    "cairn radius --ref base.npy --query q.npy --metric cosine --radius 0.1 --out dup/",
  ],
  async run(ctx, args) {
    const ref = requiredOption(args, "ref");
    const query = stringOption(args, "query");
    const radius = numberOption(args, "radius");
    if (radius === undefined) {
      throw new UsageError("Missing --radius: this command needs it");
    }
    const countOnly = args.values["count-only"] === true;
    const claim = await claimOut(ctx, "radius", args);
    const result = await withSignalAbort((signal) =>
      radiusJob(ref, {
        ...jobOptionsOf(ctx, args),
        signal,
        radius,
        countOnly,
        ...(query === undefined ? {} : { query }),
      })
    );
    await claim(result);
    report(
      ctx,
      result,
      {
        rows: result.rows,
        radius,
        countOnly,
        totalMatches: result.totalMatches,
      },
      `${formatCount(result.totalMatches)} matches within ${radius} for ${
        formatCount(result.rows)
      } rows${countOnly ? " (counted)" : ""}`,
    );
    return EXIT.ok;
  },
};

function planLines(plan: KnnJobPlan): string[] {
  const per = plan.kind === "radius" ? "" : `, k = ${plan.k}`;
  const lines = [
    `${plan.kind} plan: ${formatCount(plan.queryRows)} query rows x ${
      formatCount(plan.refRows)
    } reference rows x ${plan.dim} dims${per}`,
    plan.reference === "streamed"
      ? `  reference    streamed from its file in tiles of ${
        formatCount(plan.tileRows!)
      } rows, ${plan.passes} passes (read + norms + ${plan.blocks} block${
        plan.blocks === 1 ? "" : "s"
      })${
        plan.tileBuffers === 2
          ? ", next tile read while the threads search"
          : ""
      }`
      : "  reference    in memory",
    `  block rows   ${formatCount(plan.blockRows)} (${plan.blocks} block${
      plan.blocks === 1 ? "" : "s"
    }, ${plan.threads} thread${plan.threads === 1 ? "" : "s"})`,
    `  memory       ~${formatByteSize(plan.blockBytesEstimate)} per block + ~${
      formatByteSize(plan.sharedBytesEstimate)
    } shared = ~${formatByteSize(plan.peakBytesEstimate)} peak${
      plan.memoryBudgetBytes === undefined
        ? ""
        : ` (${plan.reference === "streamed" ? "" : "block "}budget ${
          formatByteSize(plan.memoryBudgetBytes)
        })`
    }`,
    `  steps        ${plan.steps} (prepare + ${plan.steps - 1} block step${
      plan.steps === 2 ? "" : "s"
    })`,
    `  chunks       ~${plan.chunkCount}`,
  ];
  if (plan.outputBytes !== undefined) {
    lines.push(`  outputs      ~${formatByteSize(plan.outputBytes)}`);
  }
  return lines;
}

/**
 * `cairn knn-plan`: print a job's execution plan.
 *
 * @example From a shell
 * ```sh
 * cairn knn-plan --ref base.npy --query q.npy --k 10 --memory-budget 256MiB --json
 * ```
 *
 * @example Plan through the command with a minimal context
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { writeNpyFile } from "../lib/knn/mod.ts";
 * import type { CliContext } from "./command.ts";
 * import { knnPlanCommand } from "./knn_commands.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-plan-"));
 * await writeNpyFile(join(dir, "r.npy"), new Float32Array(200), [100, 2]);
 * let plan: { blocks?: number } = {};
 * const ctx = { result: (value: unknown) => { plan = value as typeof plan; } } as unknown as CliContext;
 * await knnPlanCommand.run(ctx, { values: { ref: join(dir, "r.npy"), "block-rows": "30" }, positionals: [] });
 * assert.equal(plan.blocks, 4);
 * await rm(dir, { recursive: true });
 * ```
 */
export const knnPlanCommand: Command = {
  name: "knn-plan",
  summary: "Show the block size, memory, steps and chunks a kNN job would use",
  usage:
    "cairn knn-plan --ref R.npy [--query Q.npy] [--k K] [--for knn|knn-graph|radius] [--memory-budget 512MiB] [--block-rows N]",
  description:
    "Reads only the matrix headers and prints the plan the job commands would follow with the same options: whether the reference is held in memory or streamed from its file (tile rows and passes over the file), query rows per block (from the memory budget, capped at 4096 rows so progress is checkpointed often), estimated peak memory, steps and chunks. --json prints the plan object.",
  options: {
    ...REF_OPTION,
    ...QUERY_OPTION,
    k: {
      type: "string",
      valueName: "K",
      description: "Neighbours per row (not used for radius). Default: 1",
    },
    for: {
      type: "string",
      valueName: "JOB",
      description: "knn, knn-graph or radius. Default: knn",
    },
    "count-only": {
      type: "boolean",
      description: "With --for radius: plan the count phase only",
    },
    ...PLAN_OPTIONS,
  },
  examples: [
    "cairn knn-plan --ref base.npy --query q.npy --k 10 --memory-budget 256MiB",
    "cairn knn-plan --ref emb.npy --for radius --json",
  ],
  async run(ctx, args) {
    const refPath = requiredOption(args, "ref");
    const queryPath = stringOption(args, "query");
    const kind = stringOption(args, "for") ?? "knn";
    if (kind !== "knn" && kind !== "knn-graph" && kind !== "radius") {
      throw new UsageError(
        `Invalid --for "${kind}": use knn, knn-graph or radius`,
      );
    }
    if (kind === "knn-graph" && queryPath !== undefined) {
      throw new UsageError(
        "Invalid --query with --for knn-graph: a graph is a self-search",
      );
    }
    const k = intOption(args, "k", 1) ?? 1;
    const ref = await readMatrixFileInfo(refPath);
    const query = queryPath === undefined
      ? undefined
      : await readMatrixFileInfo(queryPath);
    if (query !== undefined && query.cols !== ref.cols) {
      throw new TypeError(
        `Cannot plan: query matrix "${queryPath}" has ${query.cols} columns, but reference matrix "${refPath}" has ${ref.cols}; both need the same dimension`,
      );
    }
    const plan = planKnnJob(ref, {
      kind,
      k,
      ...(query === undefined ? {} : { query }),
      ...(refPath.toLowerCase().endsWith(".npy") ? { streamable: true } : {}),
      ...(args.values["count-only"] === true ? { countOnly: true } : {}),
      ...planOptionsOf(args),
    });
    ctx.result(plan, () => {
      for (const line of planLines(plan)) ctx.out(line);
    });
    return EXIT.ok;
  },
};

/**
 * `cairn knn-recall`: recall of approximate neighbours against exact ones.
 *
 * @example From a shell
 * ```sh
 * cairn knn-recall --truth gt/ --candidates faiss_ivf.npy
 * ```
 *
 * @example Its options
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnRecallCommand } from "./knn_commands.ts";
 * assert.ok("truth" in knnRecallCommand.options && "candidates" in knnRecallCommand.options);
 * ```
 */
export const knnRecallCommand: Command = {
  name: "knn-recall",
  summary: "Recall@k of approximate neighbour lists against exact kNN results",
  usage:
    "cairn knn-recall --truth DIR|T.npy --candidates C.npy [--k K] [--k-candidates C]",
  description:
    "Compares candidate neighbour lists (an int32 or int64 .npy, one row per query, such as an approximate index's output) with exact ones (a `cairn knn` output directory, or its index.npy): the mean fraction of each row's first K true neighbours found among its first C candidates. Prints the recall on stdout.",
  options: {
    truth: {
      type: "string",
      valueName: "DIR",
      description:
        "Exact results: a `cairn knn --out` directory or an index .npy",
    },
    candidates: {
      type: "string",
      valueName: "C.npy",
      description: "Candidate indices (int32 or int64), rows x c",
    },
    k: {
      type: "string",
      valueName: "K",
      description: "True neighbours per row to look for. Default: all",
    },
    "k-candidates": {
      type: "string",
      valueName: "C",
      description: "Leading candidates per row to search. Default: all",
    },
  },
  examples: [
    "cairn knn-recall --truth gt/ --candidates faiss_ivf.npy",
    "cairn knn-recall --truth gt/ --candidates hnsw.npy --k 1 --k-candidates 10 --json",
  ],
  async run(ctx, args) {
    const truth = requiredOption(args, "truth");
    const candidates = requiredOption(args, "candidates");
    const k = intOption(args, "k", 1);
    const kCandidates = intOption(args, "k-candidates", 1);
    const result = await knnRecall(truth, candidates, {
      ...(k === undefined ? {} : { k }),
      ...(kCandidates === undefined ? {} : { kCandidates }),
    });
    ctx.result(result, () => {
      ctx.out(result.recall.toFixed(6));
      ctx.info(
        `recall@${result.k} of ${result.kCandidates} candidates over ${
          formatCount(result.rows)
        } rows: ${(100 * result.recall).toFixed(2)}%`,
      );
    });
    return EXIT.ok;
  },
};

/**
 * `cairn knn-rerank`: exact rerank of candidate lists.
 *
 * @example From a shell
 * ```sh
 * cairn knn-rerank --ref base.npy --query q.npy --candidates ivf.npy --k 10 --out reranked/
 * ```
 *
 * @example Its options
 * ```ts
 * import assert from "node:assert/strict";
 * import { knnRerankCommand } from "./knn_commands.ts";
 * assert.ok("candidates" in knnRerankCommand.options);
 * ```
 */
export const knnRerankCommand: Command = {
  name: "knn-rerank",
  summary:
    "Exactly rerank candidate neighbour lists (e.g. from an approximate index)",
  usage:
    "cairn knn-rerank --ref R.npy [--query Q.npy] --candidates C.npy --k K [--metric M] --out DIR",
  description:
    "Computes the exact distance of each query row to each of its candidates and keeps the best K, nearest first, ties to the lower index. Negative candidates are skipped and duplicates count once; rows with fewer than K valid candidates are padded with index -1 and distance inf (-inf for ip). Writes DIR/index.npy and DIR/distance.npy like `cairn knn`. Without --query the reference is the query set and each row's own index is dropped unless --include-self.",
  options: {
    ...REF_OPTION,
    ...QUERY_OPTION,
    candidates: {
      type: "string",
      valueName: "C.npy",
      description: "Candidate indices (int32 or int64), one row per query row",
    },
    k: {
      type: "string",
      valueName: "K",
      description: "Neighbours to keep. Default: candidates per row",
    },
    ...METRIC_OPTIONS,
    ...SELF_OPTIONS,
    out: {
      type: "string",
      valueName: "DIR",
      description: "Output directory (created if missing)",
    },
  },
  examples: [
    "cairn knn-rerank --ref base.npy --query q.npy --candidates ivf_top100.npy --k 10 --out reranked/",
  ],
  async run(ctx, args) {
    const ref = requiredOption(args, "ref");
    const query = stringOption(args, "query");
    const candidates = requiredOption(args, "candidates");
    const out = requiredOption(args, "out");
    const k = intOption(args, "k", 1);
    const excludeSelf = excludeSelfOf(args);
    const result = await knnRerank(ref, {
      candidates,
      out,
      metric: metricOf(args),
      zeroVector: zeroVectorOf(args),
      ...(query === undefined ? {} : { query }),
      ...(k === undefined ? {} : { k }),
      ...(excludeSelf === undefined ? {} : { excludeSelf }),
    });
    ctx.result({
      rows: result.rows,
      k: result.k,
      files: result.files,
      outputs: result.outputs,
    }, () => {
      for (const path of Object.values(result.files)) ctx.out(path);
      ctx.info(
        `knn-rerank: reranked ${
          formatCount(result.rows)
        } rows to k=${result.k}`,
      );
    });
    return EXIT.ok;
  },
};

/**
 * Every kNN command, in the order `cairn --help` lists them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KNN_COMMANDS } from "./knn_commands.ts";
 * assert.deepEqual(KNN_COMMANDS.map((c) => c.name), ["knn", "knn-graph", "radius", "knn-plan", "knn-recall", "knn-rerank"]);
 * ```
 */
export const KNN_COMMANDS: Command[] = [
  knnCommand,
  knnGraphCommand,
  radiusCommand,
  knnPlanCommand,
  knnRecallCommand,
  knnRerankCommand,
];
