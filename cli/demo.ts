/**
 * `cairn demo`: a real job, run with `runJob`, that shows what cairn does.
 * It generates a deterministic data set (rows of pseudo-random vectors from a
 * seeded PRNG) in blocks, computes per-block statistics with a running
 * checksum, and records a summary. Each step sleeps a little so progress is
 * visible; Ctrl-C and rerun resumes, `--fail-at K` shows failure and resume.
 *
 * @module
 */
import { InterruptedError, runJob, type StepContext } from "../lib/job.ts";
import { abortOnSignals } from "../lib/signals.ts";
import type { JobEvent } from "../lib/events.ts";
import { parseDuration } from "../lib/duration.ts";
import { sleep } from "../lib/retry.ts";
import { defaultStoreLocation } from "../lib/open_store.ts";
import { seededRandom } from "../lib/random.ts";
import {
  type Command,
  EXIT,
  intOption,
  stringOption,
  UsageError,
} from "./command.ts";
import { formatCount } from "./_format.ts";

/**
 * What the demo's config records (everything that decides its results).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type DemoConfig, demoRows } from "./demo.ts";
 * const config: DemoConfig = { rows: 4, blocks: 2, dims: 2, seed: 1 };
 * assert.equal(demoRows(config, 1).length, 2);
 * ```
 */
export interface DemoConfig {
  /** Rows in the data set. */
  rows: number;
  /** Blocks the rows are cut into; each block is two steps. */
  blocks: number;
  /** Values per row. */
  dims: number;
  /** PRNG seed. */
  seed: number;
}

/**
 * Statistics of one block (or, for the summary, of every block).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blockStats, type DemoStats } from "./demo.ts";
 * const stats: DemoStats = blockStats(1, [new Float32Array([2])], undefined);
 * assert.equal(stats.max, 2);
 * ```
 */
export interface DemoStats {
  /** Block number, 1-based (0 for the summary). */
  block: number;
  /** Rows covered. */
  rows: number;
  mean: number;
  variance: number;
  min: number;
  max: number;
  /** FNV-1a 32-bit over every value's float32 bytes, chained across blocks, as hex. */
  checksum: string;
}

/**
 * The rows of one block: `dims` values per row, value `d` of a row uniform in
 * `[d, d + 1)`, rounded to float32.
 *
 * @param config The demo config.
 * @param block Block number, 1-based.
 * @returns The rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { demoRows } from "./demo.ts";
 * const rows = demoRows({ rows: 10, blocks: 2, dims: 3, seed: 7 }, 2);
 * assert.equal(rows.length, 5);
 * assert.ok(rows[0]![2]! >= 2 && rows[0]![2]! < 3);
 * ```
 */
export function demoRows(config: DemoConfig, block: number): Float32Array[] {
  const per = Math.ceil(config.rows / config.blocks);
  const start = (block - 1) * per;
  const count = Math.max(0, Math.min(per, config.rows - start));
  const next = seededRandom(config.seed * 1_000_003 + block);
  const rows: Float32Array[] = [];
  for (let r = 0; r < count; r++) {
    const row = new Float32Array(config.dims);
    for (let d = 0; d < config.dims; d++) row[d] = d + next();
    rows.push(row);
  }
  return rows;
}

function fnv1a(hash: number, bytes: Uint8Array): number {
  let h = hash >>> 0;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/**
 * Statistics of a block's values, with the checksum chained from the previous block.
 *
 * @param block Block number.
 * @param rows The block's rows.
 * @param previous The previous block's checksum (hex), or undefined for the first block.
 * @returns The statistics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blockStats } from "./demo.ts";
 * const stats = blockStats(1, [new Float32Array([1, 3])], undefined);
 * assert.equal(stats.mean, 2);
 * assert.equal(stats.variance, 1);
 * ```
 */
export function blockStats(
  block: number,
  rows: Float32Array[],
  previous: string | undefined,
): DemoStats {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  let checksum = previous === undefined ? 0x811c9dc5 : parseInt(previous, 16);
  for (const row of rows) {
    for (const v of row) {
      n++;
      sum += v;
      sumSq += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    checksum = fnv1a(
      checksum,
      new Uint8Array(row.buffer, row.byteOffset, row.byteLength),
    );
  }
  const mean = n === 0 ? 0 : sum / n;
  return {
    block,
    rows: rows.length,
    mean,
    variance: n === 0 ? 0 : Math.max(0, sumSq / n - mean * mean),
    min: n === 0 ? 0 : min,
    max: n === 0 ? 0 : max,
    checksum: checksum.toString(16).padStart(8, "0"),
  };
}

/**
 * Combine per-block statistics into the data set's.
 *
 * @param blocks The blocks' statistics, in order.
 * @param dims Values per row.
 * @returns The overall statistics (`block` is 0; the checksum is the last block's).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { combineStats } from "./demo.ts";
 * const s = combineStats([
 *   { block: 1, rows: 1, mean: 1, variance: 0, min: 1, max: 1, checksum: "01" },
 *   { block: 2, rows: 1, mean: 3, variance: 0, min: 3, max: 3, checksum: "02" },
 * ], 1);
 * assert.deepEqual([s.mean, s.variance, s.checksum], [2, 1, "02"]);
 * ```
 */
export function combineStats(blocks: DemoStats[], dims: number): DemoStats {
  let n = 0;
  let mean = 0;
  let m2 = 0;
  for (const b of blocks) {
    const nb = b.rows * dims;
    if (nb === 0) continue;
    // Chan et al.'s pairwise update of mean and sum of squared deviations.
    const delta = b.mean - mean;
    const total = n + nb;
    mean += (delta * nb) / total;
    m2 += b.variance * nb + (delta * delta * n * nb) / total;
    n = total;
  }
  return {
    block: 0,
    rows: blocks.reduce((r, b) => r + b.rows, 0),
    mean,
    variance: n === 0 ? 0 : m2 / n,
    min: Math.min(...blocks.map((b) => b.min)),
    max: Math.max(...blocks.map((b) => b.max)),
    checksum: blocks.at(-1)?.checksum ?? "811c9dc5",
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function quoteArg(text: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text)
    ? text
    : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * `cairn demo`.
 *
 * @example From a shell: fail at step 7, then resume
 * ```sh
 * cairn demo --fail-at 7; cairn demo
 * ```
 */
export const demoCommand: Command = {
  name: "demo",
  summary: "Run a small demo job (try Ctrl-C, then run it again)",
  usage: "cairn demo [--rows N] [--steps N] [--fail-at K]",
  description:
    "Runs a real job: it generates a deterministic data set of rows of pseudo-random vectors in blocks (step rows-NN), computes each block's mean, variance, min, max and a running checksum (step stats-NN), and records a summary (step summary). Each step waits a little (--delay) so progress is visible. Rerunning resumes: finished steps are reused, also after Ctrl-C or a failure; rerunning a completed demo returns at once. Changing --rows, --steps or --dims asks for --new-run while a run is unfinished.",
  options: {
    rows: {
      type: "string",
      valueName: "N",
      description: "Rows in the data set (default: 20000)",
    },
    steps: {
      type: "string",
      valueName: "N",
      description:
        "Blocks to cut the rows into; each is a rows and a stats step (default: 20)",
    },
    dims: {
      type: "string",
      valueName: "N",
      description: "Values per row (default: 8)",
    },
    "fail-at": {
      type: "string",
      valueName: "K",
      description:
        "Make the K-th step (1-based) throw, to see a failure; rerun without it to resume",
    },
    delay: {
      type: "string",
      valueName: "DURATION",
      description: "Artificial work per step (default: 80ms)",
    },
    job: {
      type: "string",
      valueName: "NAME",
      description: 'Job name (default: "demo")',
    },
    "new-run": {
      type: "boolean",
      description:
        "Start a new run instead of resuming or reusing the last one",
    },
  },
  examples: [
    "cairn demo",
    "cairn demo --fail-at 7 ; cairn demo",
    "cairn demo --rows 100000 --steps 50 --new-run",
    "cairn demo --json 2>events.jsonl",
  ],
  async run(ctx, args) {
    const config: DemoConfig = {
      rows: intOption(args, "rows", 1) ?? 20_000,
      blocks: intOption(args, "steps", 1) ?? 20,
      dims: intOption(args, "dims", 1) ?? 8,
      seed: 42,
    };
    if (config.blocks > 10_000) {
      throw new UsageError(
        `Invalid --steps "${config.blocks}": the demo takes at most 10000 blocks`,
      );
    }
    if (config.rows * config.dims > 50_000_000) {
      throw new UsageError(
        `Invalid --rows "${config.rows}": the demo keeps at most 50,000,000 values (rows × dims)`,
      );
    }
    const total = 2 * config.blocks + 1;
    const failAt = intOption(args, "fail-at", 1);
    if (failAt !== undefined && failAt > total) {
      throw new UsageError(
        `Invalid --fail-at "${failAt}": the demo has ${total} steps`,
      );
    }
    let delayMs = 80;
    const delayText = stringOption(args, "delay");
    if (delayText !== undefined) {
      try {
        delayMs = parseDuration(delayText);
      } catch (error) {
        throw new UsageError(`Invalid --delay: ${(error as Error).message}`);
      }
    }
    const name = stringOption(args, "job") ?? "demo";
    const width = Math.max(2, String(config.blocks).length);
    let computed = 0;
    let reused = 0;
    let alreadyCompleted = false;
    let stepNo = 0;
    let failedKey: string | undefined;
    const onEvent = (event: JobEvent) => {
      if (event.type === "step-failed") failedKey = event.key;
      if (event.type === "step-done") {
        if (event.cached) reused++;
        else computed++;
      }
      ctx.onEvent(event);
    };
    const storeFlag = ctx.storeLocation === defaultStoreLocation()
      ? ""
      : ` --store ${quoteArg(ctx.storeLocation)}`;
    const again = `${ctx.program ?? "cairn"} demo${
      name === "demo" ? "" : ` --job ${name}`
    }${storeFlag}`;
    let runId = "";
    let summary: DemoStats;
    // SIGINT/SIGTERM stop the job cleanly (exit 130/143); a second one exits at once.
    const stop = abortOnSignals({ exitOnSecondSignal: true });
    try {
      summary = await runJob(name, {
        signal: stop.signal,
        store: await ctx.store(),
        kind: "demo",
        config,
        version: "1",
        total,
        onEvent,
        newRun: args.values["new-run"] === true,
        lock: { waitMs: ctx.waitLockMs, command: "cairn demo" },
      }, async (job) => {
        runId = job.run;
        alreadyCompleted = job.status === "completed";
        const step = <T>(
          key: string,
          fn: (stepCtx: StepContext) => T | Promise<T>,
        ) => {
          const k = ++stepNo;
          return job.step(key, async (stepCtx) => {
            if (k === failAt) {
              throw new Error(
                `Demo failure injected at step ${k} by --fail-at`,
              );
            }
            if (delayMs > 0) await sleep(delayMs);
            return await fn(stepCtx);
          });
        };
        const stats: DemoStats[] = [];
        for (let b = 1; b <= config.blocks; b++) {
          const rows = await step(`rows-${pad(b, width)}`, (stepCtx) => {
            const block = demoRows(config, b);
            stepCtx.stats({ rows: block.length });
            return block;
          });
          stats.push(
            await step(`stats-${pad(b, width)}`, (stepCtx) => {
              const s = blockStats(b, rows, stats.at(-1)?.checksum);
              stepCtx.stats({
                mean: Number(s.mean.toFixed(4)),
                checksum: s.checksum,
              });
              return s;
            }),
          );
        }
        const result = await step(
          "summary",
          () => combineStats(stats, config.dims),
        );
        // Records the summary in the end record (a no-op for a run that was
        // already completed and computed nothing).
        if (!job.stopping) await job.complete(result);
        return result;
      });
    } catch (error) {
      if (failedKey !== undefined && !(error instanceof InterruptedError)) {
        throw new Error(
          `Job "${name}" failed at step "${failedKey}": ${
            (error as Error).message
          }; the steps before it are kept, run "${again}" to resume`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      stop.dispose();
    }
    // A completed run that lost a chunk is reopened and computes again.
    alreadyCompleted &&= computed === 0;
    const report = {
      job: name,
      run: runId,
      store: ctx.storeLocation,
      status: "completed",
      alreadyCompleted,
      steps: total,
      computed,
      reused,
      config,
      summary,
    };
    ctx.result(report, () => {
      ctx.out(
        `${name}: run ${runId} ${
          alreadyCompleted ? "was already completed" : "completed"
        }: ${
          formatCount(config.rows)
        } rows in ${config.blocks} blocks (${total} steps: ${computed} computed, ${reused} reused)`,
      );
      ctx.out(
        `mean ${summary.mean.toFixed(4)}  variance ${
          summary.variance.toFixed(4)
        }  min ${summary.min.toFixed(4)}  max ${
          summary.max.toFixed(4)
        }  checksum ${summary.checksum}`,
      );
    });
    if (alreadyCompleted) {
      ctx.info(
        `Nothing to do: the run was completed before and its results were reused. "${again} --new-run" starts over`,
      );
    }
    const next: [string, string][] = [
      [`${ctx.program ?? "cairn"} ls${storeFlag}`, "jobs and runs"],
      [
        `${ctx.program ?? "cairn"} show ${name}${storeFlag}`,
        "steps, timings and statistics",
      ],
      [
        `${ctx.program ?? "cairn"} verify --read-data${storeFlag}`,
        "re-hash every chunk",
      ],
      [
        `${
          ctx.program ?? "cairn"
        } export ${name} --format jsonl --out ${name}.jsonl${storeFlag}`,
        "step outputs as JSON lines",
      ],
    ];
    const column = Math.max(...next.map(([c]) => c.length));
    ctx.info(
      [
        `Results are in store "${ctx.storeLocation}" (job "${name}", run "${runId}"). Next, try:`,
        ...next.map(([c, what]) => `  ${c.padEnd(column)}  ${what}`),
        `Rerunning "${again}" (also after Ctrl-C or a failure) resumes: finished steps are reused.`,
      ].join("\n"),
    );
    return EXIT.ok;
  },
};
