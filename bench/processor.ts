/**
 * What checkpointing costs a dataset processor: `file-index` over 5,000
 * small files through `runProcessor` (fs store, checkpoints every 1000 and
 * every 100 items, output assembled at the end) against a plain loop calling
 * the same `process` and writing the same JSONL, interleaved, 5 rounds. Prints
 * each round's ratios and the medians; read the ratios, not the times.
 *
 * ```sh
 * deno run -A bench/processor.ts
 * bun run bench/processor.ts
 * ```
 *
 * Options: --files N (5000), --rounds N (5), --quick (1,000 files, 3 rounds),
 * --json (for bench/suite.ts: the text goes to stderr and, on stdout, one
 * suite row per checkpoint interval: median times, and the ratio of the
 * medians).
 *
 * @module
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileIndex, runProcessor } from "../lib/processor/mod.ts";
import { checkIntegerFlags } from "./_measure.ts";
import { type BenchRow, median, ratio, runtimeName } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    files: { type: "string" },
    rounds: { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const FILES = Number(flags.files ?? (flags.quick ? 1000 : 5000));
const ROUNDS = Number(flags.rounds ?? (flags.quick ? 3 : 5));
checkIntegerFlags("processor", [["files", FILES, 1], ["rounds", ROUNDS, 1]]);
const say = flags.json ? console.error : console.log;
const EVERY = [1000, 100] as const;
const dir = await mkdtemp(join(tmpdir(), "cairn-bench-processor-"));
const input = join(dir, "in");
const ctx = {
  dataset: "bench",
  params: {},
  signal: new AbortController().signal,
  state: {},
  nextId: () => "",
  skip: () => {},
};

async function plain(): Promise<number> {
  const started = performance.now();
  const lines: string[] = [];
  for await (const item of fileIndex.items(input, ctx)) {
    for (const r of (await fileIndex.process(item, ctx)) ?? []) {
      lines.push(JSON.stringify(r));
    }
  }
  await writeFile(join(dir, "plain.jsonl"), lines.join("\n") + "\n");
  return performance.now() - started;
}

async function checkpointed(every: number): Promise<number> {
  await rm(join(dir, "store"), { recursive: true, force: true });
  const started = performance.now();
  await runProcessor(fileIndex, {
    store: join(dir, "store"),
    dataset: "bench",
    input,
    out: join(dir, "out.jsonl"),
    checkpointEvery: every,
  });
  return performance.now() - started;
}

const times = {
  plain: [] as number[],
  1000: [] as number[],
  100: [] as number[],
};
try {
  await mkdir(input);
  for (let i = 0; i < FILES; i++) {
    await writeFile(join(input, `f${i}.txt`), `line ${i}\n`.repeat(20));
  }
  // Warm up both paths once, and check they write the same records.
  await plain();
  await checkpointed(100);
  const [mine, theirs] = await Promise.all(
    ["out.jsonl", "plain.jsonl"].map((f) => readFile(join(dir, f), "utf8")),
  );
  if (mine !== theirs) {
    throw new Error("runProcessor and the plain loop wrote different JSONL");
  }
  say(
    `processor bench on ${runtimeName()}: file-index over ${FILES} files, median of ${ROUNDS} interleaved rounds`,
  );
  for (let round = 1; round <= ROUNDS; round++) {
    const base = await plain();
    times.plain.push(base);
    const line: string[] = [];
    for (const every of EVERY) {
      const ms = await checkpointed(every);
      times[every].push(ms);
      line.push(`${(ms / base).toFixed(2)}x (every ${every})`);
    }
    say(`round ${round}: runProcessor / plain loop = ${line.join(", ")}`);
  }
  const base = median(times.plain);
  say(
    `medians: plain loop ${base.toFixed(0)} ms; ${
      EVERY.map((every) => {
        const ms = median(times[every]);
        return `every ${every}: ${ms.toFixed(0)} ms, ${ratio(ms, base)}`;
      }).join("; ")
    }`,
  );
  if (flags.json) {
    const rows: BenchRow[] = EVERY.map((every) => ({
      section: "processor",
      case: `file-index over ${
        FILES.toLocaleString("en-US")
      } small files, checkpoint every ${every}`,
      cairn: `${median(times[every]).toFixed(0)} ms`,
      peer: "plain loop over the same process, same JSONL",
      peerValue: `${base.toFixed(0)} ms`,
      ratio: ratio(median(times[every]), base),
    }));
    console.log(JSON.stringify(rows));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
