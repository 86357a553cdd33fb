/**
 * Out-of-core kNN: peak RSS of `cairn knn --memory-budget` on a reference
 * far larger than the budget (default 2,000,000 × 128 float32, 1 GB, with
 * 1,000 queries), against the budget; the fixed overhead, as the peak RSS of
 * the same job in memory on a small reference; and a SIGKILL mid-run then a
 * resume, whose outputs are compared byte for byte with the uninterrupted
 * run's. Then the same streamed job on `--threads N` worker threads (default
 * 2): its peak RSS against the budget, its speedup over the 1-thread run of
 * the same invocation, and its outputs compared with the 1-thread run's; and
 * the fixed overhead on N threads (the workers' own runtimes).
 *
 * Run: `deno run -A bench/knn_ooc.ts [--rows N] [--queries N]
 * [--budget 256MB] [--threads N] [--json]`.
 * The reference is written to a temp directory in chunks and deleted after.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { encodeNpyHeader, writeNpyFile } from "../lib/io/npy.ts";
import { parseByteSize, planKnnJob } from "../lib/knn/job_plan.ts";
import { checkIntegerFlags } from "./_measure.ts";
import type { BenchRow } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    rows: { type: "string", default: "2000000" },
    queries: { type: "string", default: "1000" },
    budget: { type: "string", default: "256MB" },
    "block-rows": { type: "string", default: "250" },
    threads: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});

const DIM = 128;
const K = 10;
const SMALL_ROWS = 20_000;
const root = fileURLToPath(new URL("..", import.meta.url));
const isDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

function log(line: string): void {
  process.stderr.write(line + "\n");
}

/** Deterministic float32 values in [-1, 1). */
function fill(out: Float32Array, seed: number): number {
  let a = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return a;
}

/** Write a rows × DIM float32 .npy in 16 MiB chunks. */
async function writeBig(path: string, rows: number, seed: number) {
  const file = await open(path, "w");
  try {
    await file.write(encodeNpyHeader("<f4", [rows, DIM]));
    const chunkRows = Math.floor((16 << 20) / (DIM * 4));
    const chunk = new Float32Array(chunkRows * DIM);
    let state = seed;
    for (let r = 0; r < rows; r += chunkRows) {
      const n = Math.min(chunkRows, rows - r);
      state = fill(chunk, state);
      await file.write(new Uint8Array(chunk.buffer, 0, n * DIM * 4));
    }
  } finally {
    await file.close();
  }
}

function cairnArgs(args: string[]): [string, string[]] {
  const cli = join(root, "cli", "main.ts");
  return [
    process.execPath,
    isDeno ? ["run", "-A", "--quiet", cli, ...args] : ["run", cli, ...args],
  ];
}

/** Run the CLI to completion: wall seconds, peak RSS bytes, and its JSON result. */
async function measured(
  args: string[],
): Promise<
  {
    wall: number;
    rss: number;
    /** CPU seconds (user + system); NaN without /usr/bin/time. */
    cpu: number;
    result: Record<string, unknown>;
  }
> {
  const [cmd, argv] = cairnArgs(args);
  const started = performance.now();
  if (TIME !== undefined) {
    const format = "cairn-bench-rss %M cpu %U %S";
    const run = spawnSync(TIME, ["-f", format, cmd, ...argv], {
      encoding: "utf8",
      maxBuffer: 1 << 24,
    });
    const wall = (performance.now() - started) / 1000;
    if (run.status !== 0) {
      throw new Error(`cairn ${args.join(" ")}: ${run.stderr.slice(-500)}`);
    }
    const m = /cairn-bench-rss (\d+) cpu ([\d.]+) ([\d.]+)/.exec(run.stderr);
    return {
      wall,
      rss: Number(m?.[1]) * 1024,
      cpu: Number(m?.[2]) + Number(m?.[3]),
      result: JSON.parse(run.stdout),
    };
  }
  // No /usr/bin/time: poll the child's high-water mark while it runs.
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let rss = 0;
  const poll = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      rss = Math.max(rss, kb * 1024);
    } catch {
      // Exited between polls.
    }
  }, 50);
  const code = await new Promise<number | null>((r) => child.on("close", r));
  clearInterval(poll);
  if (code !== 0) throw new Error(`cairn ${args.join(" ")}: ${stderr}`);
  return {
    wall: (performance.now() - started) / 1000,
    rss,
    cpu: NaN,
    result: JSON.parse(stdout),
  };
}

/** Start the CLI and SIGKILL it after `seconds`; resolves once it is gone. */
async function killAfter(args: string[], seconds: number): Promise<boolean> {
  const [cmd, argv] = cairnArgs(args);
  const child = spawn(cmd, argv, { stdio: "ignore" });
  let exited = false;
  const done = new Promise<void>((r) =>
    child.on("close", () => {
      exited = true;
      r();
    })
  );
  const timer = setTimeout(() => child.kill("SIGKILL"), seconds * 1000);
  await done;
  clearTimeout(timer);
  return exited && child.signalCode === "SIGKILL";
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

const rows = Number(flags.rows);
const queries = Number(flags.queries);
checkIntegerFlags("out-of-core kNN", [
  ["rows", rows, 1],
  ["queries", queries, 1],
  ["block-rows", Number(flags["block-rows"]), 1],
  ["threads", Number(flags.threads), 1],
]);
const budgetText = flags.budget;
const budget = parseByteSize(budgetText);
const dir = await mkdtemp(join(tmpdir(), "cairn-bench-ooc-"));
const out: BenchRow[] = [];
try {
  const ref = join(dir, "ref.npy");
  const small = join(dir, "small.npy");
  const query = join(dir, "query.npy");
  log(`writing a ${rows} x ${DIM} float32 reference`);
  await writeBig(ref, rows, 1);
  await writeBig(small, SMALL_ROWS, 1);
  const q = new Float32Array(queries * DIM);
  fill(q, 99);
  await writeNpyFile(query, q, [queries, DIM]);
  const common = (name: string, threads = 1) => [
    "--store",
    join(dir, `store-${name}`),
    "--json",
    "knn",
    "--query",
    query,
    "--k",
    String(K),
    "--threads",
    String(threads),
    "--out",
    join(dir, `out-${name}`),
  ];
  const streamArgs = (name: string, threads = 1) => [
    ...common(name, threads),
    "--ref",
    ref,
    "--memory-budget",
    budgetText,
    "--block-rows",
    flags["block-rows"],
  ];

  log("in memory, small reference (the fixed overhead)");
  const mem = await measured([...common("small"), "--ref", small]);
  log(`  ${mib(mem.rss)} peak RSS, ${mem.wall.toFixed(1)} s`);

  log(`streamed under --memory-budget ${budgetText}`);
  const streamed = await measured(streamArgs("full"));
  const tileRows = streamed.result.tileRows;
  if (streamed.result.reference !== "streamed") {
    throw new Error(`the job was not streamed: ${JSON.stringify(streamed)}`);
  }
  log(
    `  ${mib(streamed.rss)} peak RSS, ${
      streamed.wall.toFixed(1)
    } s, tiles of ${tileRows} rows`,
  );

  log("killed at 60% of that wall time, then resumed");
  const killed = await killAfter(streamArgs("kill"), 0.6 * streamed.wall);
  const resumed = await measured(streamArgs("kill"));
  let same = true;
  for (const name of ["index.npy", "distance.npy"]) {
    const a = await readFile(join(dir, "out-full", name));
    const b = await readFile(join(dir, "out-kill", name));
    if (Buffer.compare(a, b) !== 0) same = false;
    const cmp = spawnSync("cmp", [
      join(dir, "out-full", name),
      join(dir, "out-kill", name),
    ]);
    if (cmp.status !== null && cmp.status !== 0) same = false;
  }
  log(
    `  killed: ${killed}; resumed computed ${resumed.result.computedBlocks} of ${resumed.result.blocks} blocks; outputs identical: ${same}`,
  );

  const threads = Number(flags.threads);
  log(`streamed on ${threads} threads`);
  const many = await measured(streamArgs("threads", threads));
  let sameMany = true;
  for (const name of ["index.npy", "distance.npy"]) {
    const a = await readFile(join(dir, "out-full", name));
    const b = await readFile(join(dir, "out-threads", name));
    if (Buffer.compare(a, b) !== 0) sameMany = false;
  }
  // The CLI's result does not carry the threads: the plan it followed does.
  const manyPlan = planKnnJob({ rows, cols: DIM }, {
    k: K,
    query: { rows: queries, cols: DIM },
    memoryBudgetBytes: budget,
    blockRows: Number(flags["block-rows"]),
    threads,
    streamable: true,
  });
  const speedup = streamed.wall / many.wall;
  // On a shared machine the wall time depends on the other processes; the
  // CPU seconds show what the threads cost beside it.
  const cpuRatio = many.cpu / streamed.cpu;
  log(
    `  ${mib(many.rss)} peak RSS, ${many.wall.toFixed(1)} s (${
      speedup.toFixed(2)
    }× faster than the 1-thread run), ${many.cpu.toFixed(1)} CPU s (${
      cpuRatio.toFixed(2)
    }× the 1-thread run's ${
      streamed.cpu.toFixed(1)
    }), ${manyPlan.threads} threads, tiles of ${many.result.tileRows} rows; outputs identical: ${sameMany}`,
  );
  log(`in memory, small reference, ${threads} threads (the fixed overhead)`);
  const memMany = await measured([
    ...common("small-threads", threads),
    "--ref",
    small,
  ]);
  log(`  ${mib(memMany.rss)} peak RSS, ${memMany.wall.toFixed(1)} s`);

  const size = `${rows.toLocaleString("en-US")} × ${DIM} refs (${
    (rows * DIM * 4 / 1e9).toFixed(1)
  } GB), ${queries.toLocaleString("en-US")} queries`;
  out.push({
    section: "kNN out-of-core",
    case:
      `${size}, --memory-budget ${budgetText}, 1 thread: peak RSS (tiles of ${tileRows} rows)`,
    cairn: `${mib(streamed.rss)} (${streamed.wall.toFixed(1)} s)`,
    peer: "the budget",
    peerValue: mib(budget),
    ratio: `${(streamed.rss / budget).toFixed(2)}×`,
  });
  out.push({
    section: "kNN out-of-core",
    case: `fixed overhead: the same job in memory on ${
      SMALL_ROWS.toLocaleString("en-US")
    } refs`,
    cairn: `${mib(mem.rss)} (${mem.wall.toFixed(1)} s)`,
    peer: "streamed peak minus the budget",
    peerValue: mib(Math.max(0, streamed.rss - budget)),
    ratio: "-",
  });
  out.push({
    section: "kNN out-of-core",
    case:
      `${size}, --memory-budget ${budgetText}, --threads ${threads} (the plan: ${manyPlan.threads}): peak RSS (tiles of ${many.result.tileRows} rows; outputs ${
        sameMany ? "byte-identical to" : "DIFFER from"
      } 1 thread's)`,
    cairn: `${mib(many.rss)} (${many.wall.toFixed(1)} s)`,
    peer: "the budget; speedup over the 1-thread run (CPU seconds)",
    peerValue: `${mib(budget)}; ${speedup.toFixed(2)}× faster (${
      many.cpu.toFixed(1)
    } vs ${streamed.cpu.toFixed(1)} CPU s)`,
    ratio: `${(many.rss / budget).toFixed(2)}×`,
  });
  out.push({
    section: "kNN out-of-core",
    case: `fixed overhead on ${threads} threads: the same job in memory on ${
      SMALL_ROWS.toLocaleString("en-US")
    } refs`,
    cairn: `${mib(memMany.rss)} (${memMany.wall.toFixed(1)} s)`,
    peer: `${threads}-thread streamed peak minus the budget`,
    peerValue: mib(Math.max(0, many.rss - budget)),
    ratio: "-",
  });
  out.push({
    section: "kNN out-of-core",
    case:
      `SIGKILL at 60% of the run, then rerun: resumed run computed ${resumed.result.computedBlocks} of ${resumed.result.blocks} blocks`,
    cairn: same ? "outputs byte-identical (cmp)" : "outputs DIFFER",
    peer: "the uninterrupted run",
    peerValue: `${streamed.wall.toFixed(1)} s`,
    ratio: `${
      ((0.6 * streamed.wall + resumed.wall) / streamed.wall).toFixed(2)
    }× wall`,
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
if (flags.json) console.log(JSON.stringify(out));
else for (const row of out) console.log(Object.values(row).join(" | "));
