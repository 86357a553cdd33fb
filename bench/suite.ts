/**
 * `deno task bench`: every benchmark section in one run, one table of
 * ratios (cairn's cost over each peer's, measured in the same run), written
 * with the machine's description to bench/RESULTS.md.
 *
 * Sections: kNN (bench/knn.ts, in this process), store put (bench/store.ts)
 * and map overhead (bench/map.ts) in child processes of the same runtime.
 * The machine may be shared: every figure is a median of alternating
 * repetitions, and only ratios from the same run should be quoted.
 *
 * Options: --quick (20,000 references only, one repetition, small map run),
 * --reps N (kNN repetitions, default 3), --no-write (print only).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchKnn } from "./knn.ts";
import { type BenchRow, renderTable, runtimeName } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    "no-write": { type: "boolean", default: false },
  },
});
const here = fileURLToPath(new URL(".", import.meta.url));
const isDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;

function log(line: string): void {
  process.stderr.write(line + "\n");
}

function machine(): string[] {
  const cpu = cpus();
  let os = `${process.platform} ${process.arch}`;
  try {
    const rel = readFileSync("/etc/os-release", "utf8").match(
      /PRETTY_NAME="([^"]+)"/,
    );
    if (rel) os = `${rel[1]} (${process.arch})`;
  } catch {
    // Not Linux: keep platform and arch.
  }
  let flagsLine = "";
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const f = info.match(/^flags\s*:(.*)$/m)?.[1] ?? "";
    flagsLine = ["avx2", "fma", "avx512f"].filter((x) =>
      f.split(" ").includes(x)
    ).join(", ");
  } catch {
    // No /proc.
  }
  const py = spawnSync(
    "/usr/bin/python3",
    [
      "-c",
      "import numpy, importlib.util as u\n" +
      "v = lambda m: __import__(m).__version__ if u.find_spec(m) else 'missing'\n" +
      "print('numpy', numpy.__version__, '· faiss', v('faiss'), '· scikit-learn', v('sklearn'))",
    ],
    { encoding: "utf8" },
  );
  return [
    `- CPU: ${cpu[0]?.model ?? "unknown"}, ${cpu.length} logical cores${
      flagsLine ? ` (${flagsLine})` : ""
    }`,
    `- Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${
      (freemem() / 2 ** 30).toFixed(1)
    } GiB free at start)`,
    `- OS: ${os}`,
    `- Runtime: ${runtimeName()}`,
    `- Peers: ${
      py.status === 0 ? py.stdout.trim() : "no /usr/bin/python3 with numpy"
    }`,
    `- Load average at start: ${
      loadavg().map((x) => x.toFixed(2)).join(", ")
    } (the machine is shared; compare ratios, not seconds)`,
  ];
}

function childRows(script: string, args: string[]): BenchRow[] | string {
  const runArgs = isDeno
    ? ["run", "-A", join(here, script), ...args]
    : ["run", join(here, script), ...args];
  const run = spawnSync(process.execPath, runArgs, {
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  const last = run.stdout.trim().split("\n").pop() ?? "";
  if (run.status !== 0 || !last.startsWith("[")) {
    return `failed (exit ${run.status}): ${run.stderr.trim().slice(-300)}`;
  }
  return JSON.parse(last) as BenchRow[];
}

const started = new Date();
const description = machine();
const rows: BenchRow[] = [];
const notes: string[] = [];

log("kNN section");
const knn = await benchKnn({
  refs: flags.quick ? [20_000] : [20_000, 100_000],
  reps: flags.reps !== undefined ? Number(flags.reps) : flags.quick ? 1 : 3,
  log,
});
rows.push(...knn.rows);
notes.push(...knn.notes);

log("store section");
const store = childRows(
  "store.ts",
  flags.quick ? ["--json", "--quick"] : [
    "--json",
  ],
);
if (typeof store === "string") {
  rows.push({
    section: "store",
    case: "put 4 KiB and 4 MiB",
    cairn: store,
    peer: "writeFile + fsync (node:fs)",
    peerValue: "-",
    ratio: "-",
  });
} else rows.push(...store);

log("map section");
const items = flags.quick ? "5000" : "20000";
const mapRows = childRows("map.ts", [
  "--json",
  "--skip-resume",
  "--items",
  items,
  "--rounds",
  flags.quick ? "1" : "3",
]);
if (typeof mapRows === "string") {
  rows.push({
    section: "map",
    case: `map ${items} items`,
    cairn: mapRows,
    peer: "plain loop, p-map",
    peerValue: "-",
    ratio: "-",
  });
} else rows.push(...mapRows);

log("kNN out-of-core section");
const ooc = childRows(
  "knn_ooc.ts",
  flags.quick
    ? [
      "--json",
      "--rows",
      "200000",
      "--queries",
      "200",
      "--budget",
      "32MB",
      "--block-rows",
      "50",
    ]
    : ["--json"],
);
if (typeof ooc === "string") {
  rows.push({
    section: "kNN out-of-core",
    case: "peak RSS of `cairn knn --memory-budget` on a streamed reference",
    cairn: ooc,
    peer: "the budget",
    peerValue: "-",
    ratio: "-",
  });
} else rows.push(...ooc);

notes.push(
  "Not measured yet: pipeline, processor and incremental (dataflow) figures; their rows join this table as those land.",
);

const table = renderTable(rows);
console.log(table);
for (const note of notes) console.log(`- ${note}`);

if (!flags["no-write"]) {
  const finished = new Date();
  const text = [
    "# Benchmark results",
    "",
    `Written by \`deno task bench\` (bench/suite.ts${
      flags.quick ? " --quick" : ""
    }) on ${started.toISOString()}, finished ${finished.toISOString()}.`,
    "",
    "## Machine",
    "",
    ...description,
    `- Load average at end: ${loadavg().map((x) => x.toFixed(2)).join(", ")}`,
    "",
    "## Results",
    "",
    "`cairn/peer` is cairn's cost over the peer's in the same run: time over time, or for throughput the inverse ratio (above 1, cairn is slower). For kNN the wall-time ratio comes first and the CPU-time ratio (process user + system seconds, all threads) in parentheses: on a loaded machine the CPU ratio is the steadier measure of the kernels at 1 thread, while the wall ratio is what 2 threads buy. kNN is 2,000 queries × 128 dimensions, k = 10, float32, Euclidean; GFLOP/s counts 2 · queries · references · dimensions over wall time.",
    "",
    table,
    "",
    "## Notes",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
  await writeFile(join(here, "RESULTS.md"), text);
  log(`wrote ${join(here, "RESULTS.md")}`);
}
