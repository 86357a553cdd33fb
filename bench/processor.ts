/**
 * What checkpointing costs a dataset processor: `file-index` over 5,000
 * small files through `runProcessor` (fs store, checkpoints every 1000 and
 * every 100 items, output assembled at the end) against a plain loop calling
 * the same `process` and writing the same JSONL, interleaved, 5 rounds. Prints
 * each round's ratios and their medians; read the ratios, not the times.
 *
 * ```sh
 * deno run -A bench/processor.ts
 * bun run bench/processor.ts
 * ```
 *
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileIndex, runProcessor } from "../lib/processor/mod.ts";

const FILES = 5000;
const ROUNDS = 5;
const dir = await mkdtemp(join(tmpdir(), "cairn-bench-processor-"));
const input = join(dir, "in");
await mkdir(input);
for (let i = 0; i < FILES; i++) {
  await writeFile(join(input, `f${i}.txt`), `line ${i}\n`.repeat(20));
}
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const ratios: Record<string, number[]> = { "every 1000": [], "every 100": [] };
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const base = await plain();
    const r1000 = (await checkpointed(1000)) / base;
    const r100 = (await checkpointed(100)) / base;
    ratios["every 1000"]!.push(r1000);
    ratios["every 100"]!.push(r100);
    console.log(
      `round ${round}: runProcessor / plain loop = ${
        r1000.toFixed(2)
      }x (every 1000), ${r100.toFixed(2)}x (every 100)`,
    );
  }
  console.log(
    `median over ${ROUNDS} rounds, ${FILES} files: ${
      Object.entries(ratios).map(([k, v]) => `${k} ${median(v).toFixed(2)}x`)
        .join(", ")
    }`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
