/**
 * `deno task bench`: every benchmark section in one run, one table of
 * ratios (cairn's cost over each peer's, measured in the same run), written
 * with the machine's description to bench/RESULTS.md.
 *
 * Sections: kNN (bench/knn.ts, in this process); in child processes of the
 * same runtime, each falling back to a row saying why when it fails: store
 * put (bench/store.ts), map overhead (bench/map.ts), pipeline runs and
 * resumes (bench/pipeline.ts), dataset processor checkpoints
 * (bench/processor.ts), incremental dataflow updates and the memo index
 * (bench/incremental.ts), and the out-of-core kNN job's peak RSS
 * (bench/knn_ooc.ts).
 * The machine may be shared: every figure is a median of alternating
 * repetitions, and only ratios from the same run should be quoted.
 *
 * Options: --quick (20,000 references only, one repetition, small runs of
 * the other sections),
 * --reps N (kNN repetitions, default 3), --no-write (print only), --only
 * LIST (comma-separated section names, e.g. "pipeline,processor"; print
 * only, RESULTS.md is left as it is).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseArgs, stripVTControlCharacters } from "node:util";
import { benchKnn } from "./knn.ts";
import { type BenchRow, renderTable, runtimeName } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    "no-write": { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const SECTIONS = [
  "kNN",
  "store",
  "map",
  "pipeline",
  "processor",
  "incremental",
  "kNN out-of-core",
];
const only = flags.only?.split(",").map((s) => s.trim());
for (const name of only ?? []) {
  if (!SECTIONS.includes(name)) {
    throw new RangeError(
      `Cannot run the benchmark suite: --only names "${name}", which is not a section; sections: ${
        SECTIONS.map((s) => `"${s}"`).join(", ")
      }`,
    );
  }
}
/** Whether a section runs: all of them, unless --only lists some. */
function wanted(name: string): boolean {
  return only === undefined || only.includes(name);
}
// A partial table must not replace the full one in bench/RESULTS.md.
const write = !flags["no-write"] && only === undefined;
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
    // One line, no colours, no "|": the reason goes into a Markdown table cell.
    const why = stripVTControlCharacters(run.stderr).trim()
      .replace(/\s+/g, " ").replaceAll("|", "/");
    return `failed (exit ${run.status}): ${why.slice(-300)}`;
  }
  return JSON.parse(last) as BenchRow[];
}

const started = new Date();
const description = machine();
const rows: BenchRow[] = [];
const notes: string[] = [];

if (wanted("kNN")) {
  log("kNN section");
  const knn = await benchKnn({
    refs: flags.quick ? [20_000] : [20_000, 100_000],
    reps: flags.reps !== undefined ? Number(flags.reps) : flags.quick ? 1 : 3,
    log,
  });
  rows.push(...knn.rows);
  notes.push(...knn.notes);
}

/** Runs a child section and adds its rows, or one row saying why it failed. */
function section(
  title: string,
  script: string,
  args: string[],
  fallback: Omit<BenchRow, "cairn" | "peerValue" | "ratio">,
): void {
  if (!wanted(title)) return;
  log(`${title} section`);
  const got = childRows(script, ["--json", ...args]);
  if (typeof got === "string") {
    rows.push({ ...fallback, cairn: got, peerValue: "-", ratio: "-" });
  } else rows.push(...got);
}

section("store", "store.ts", flags.quick ? ["--quick"] : [], {
  section: "store",
  case: "put 4 KiB and 4 MiB",
  peer: "writeFile + fsync (node:fs)",
});

const items = flags.quick ? "5000" : "100000";
section("map", "map.ts", [
  "--skip-resume",
  "--items",
  items,
  "--rounds",
  flags.quick ? "1" : "3",
], {
  section: "map",
  case: `map ${items} items`,
  peer: "plain loop, p-map",
});

section("pipeline", "pipeline.ts", flags.quick ? ["--quick"] : [], {
  section: "pipeline",
  case: "checkpointed run and resume",
  peer: "plain loop, full checkpointed run",
});

section("processor", "processor.ts", flags.quick ? ["--quick"] : [], {
  section: "processor",
  case: "file-index, checkpoint every 1000 and 100",
  peer: "plain loop over the same process",
});

section(
  "incremental",
  "incremental.ts",
  flags.quick ? ["--quick"] : ["--rounds", "3"],
  {
    section: "incremental",
    case: "dataflow update after a 0.1% edit, memo index",
    peer: "full recompute, index rebuilt from the logs",
  },
);

section(
  "kNN out-of-core",
  "knn_ooc.ts",
  flags.quick
    ? [
      "--rows",
      "200000",
      "--queries",
      "200",
      "--budget",
      "32MB",
      "--block-rows",
      "50",
    ]
    : [],
  {
    section: "kNN out-of-core",
    case: "peak RSS of `cairn knn --memory-budget` on a streamed reference",
    peer: "the budget",
  },
);

const table = renderTable(rows);
console.log(table);
for (const note of notes) console.log(`- ${note}`);

if (write) {
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
    "`cairn/peer` is cairn's cost over the peer's in the same run: time over time, or for throughput the inverse ratio (above 1, cairn is slower). For kNN the wall-time ratio comes first and the CPU-time ratio (process user + system seconds, all threads) in parentheses: on a loaded machine the CPU ratio is the steadier measure of the kernels at 1 thread, while the wall ratio is what 2 threads buy. kNN is 2,000 queries × 128 dimensions, k = 10, float32, Euclidean; GFLOP/s counts 2 · queries · references · dimensions over wall time. For a resume or an incremental update the peer is the full run it saves, so a ratio below 1 is the saving.",
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
