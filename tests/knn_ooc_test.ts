import { test } from "node:test";
import assert from "node:assert/strict";
import { open } from "node:fs/promises";
import { join } from "node:path";
import {
  defaultThreads,
  encodeNpyHeader,
  knnJob,
  type KnnJobOptions,
  planKnnJob,
  type PlanKnnJobOptions,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import type { JobEvent } from "../lib/events.ts";
import { randomFloat32 } from "../lib/random.ts";
import { runScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { assertKillsResume, tieHeavy } from "./knn_ooc_shared.ts";
import { LONG, testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/knn_ooc_child.ts", import.meta.url);
const CLI = new URL("../cli/main.ts", import.meta.url);

/**
 * The smallest budget a streamed job accepts, from the plan errors that name
 * it: one row, then (with `blockRows`) a whole block.
 */
function minimumBudget(
  shape: { rows: number; cols: number },
  options: Omit<PlanKnnJobOptions, "memoryBudgetBytes">,
): number {
  let budget = 1000;
  for (;;) {
    try {
      planKnnJob(shape, { ...options, memoryBudgetBytes: budget });
      return budget;
    } catch (error) {
      assert.ok(error instanceof RangeError, `budget ${budget} is refused`);
      assert.match(error.message, /memoryBudgetBytes/);
      const next = Number(/at least (\d+)/.exec(error.message)![1]);
      assert.ok(next > budget);
      budget = next;
    }
  }
}

test(
  "knnJob() streaming the reference in tiles returns the in-memory bytes, for any tile size, metric and thread count",
  { timeout: 120_000 },
  async () => {
    const dir = await tempDir();
    // Self-search costs rows²: the default run halves the rows, with smaller
    // self-search budgets so that each still streams in a distinct tile size.
    const rows = LONG ? 6000 : 3000;
    const cols = 64;
    const data = tieHeavy(rows, cols, 11);
    const ref32 = join(dir, "r32.npy");
    const ref64 = join(dir, "r64.npy");
    const queryPath = join(dir, "q.npy");
    await writeNpyFile(ref32, data, [rows, cols]);
    await writeNpyFile(ref64, Float64Array.from(data), [rows, cols]);
    await writeNpyFile(queryPath, data.slice(0, 90 * cols), [90, cols]);
    const cases = [
      { metric: "euclidean", ref: ref32, query: queryPath },
      { metric: "sqeuclidean", ref: ref64, query: undefined },
      { metric: "cosine", ref: ref32, query: undefined },
      { metric: "ip", ref: ref32, query: queryPath },
    ] as const;
    let run = 0;
    for (const c of cases) {
      const base: KnnJobOptions = {
        k: 6,
        metric: c.metric,
        zeroVector: "one",
        blockRows: 300,
        ...(c.query === undefined ? {} : { query: c.query }),
      };
      const memory = await knnJob(c.ref, {
        ...base,
        store: `memory:ooc-mem-${run}`,
        threads: 2,
      });
      assert.equal(memory.plan.reference, "memory");
      const minimum = minimumBudget({ rows, cols }, {
        k: 6,
        blockRows: 300,
        streamable: true,
        threads: 1,
        ...(c.query === undefined ? {} : { query: { rows: 90, cols } }),
      });
      const tiles = new Set<number>();
      // Self-search blocks each walk every tile: keep their tiles larger.
      const extras = c.query === undefined
        ? (LONG ? [30_000, 150_000, 900_000] : [30_000, 60_000, 100_000])
        : [1_500, 20_000, 250_000];
      for (const extra of extras) {
        const warnings: string[] = [];
        const streamed = await knnJob(c.ref, {
          ...base,
          store: `memory:ooc-${run++}`,
          memoryBudgetBytes: minimum + extra,
          threads: extra === extras[0] ? 2 : 1,
          onEvent: (e: JobEvent) => {
            if (e.type === "warning") warnings.push(e.message);
          },
        });
        const what = `${c.metric}, budget ${minimum + extra}`;
        assert.equal(streamed.plan.reference, "streamed", what);
        assert.ok(streamed.plan.tileRows! < rows, what);
        assert.equal(streamed.plan.threads, 1);
        tiles.add(streamed.plan.tileRows!);
        assert.deepEqual(streamed.index, memory.index, what);
        assert.deepEqual(streamed.distance, memory.distance, what);
        assert.deepEqual(streamed.outputs, memory.outputs, what);
        if (extra === extras[0]) {
          assert.match(
            warnings.join("\n"),
            /runs on 1: threads = 2 is not used/,
          );
        }
      }
      assert.equal(tiles.size, 3, `three tile sizes (${[...tiles]})`);
    }
  },
);

test(
  "knnJob() streamed and in-memory runs of one reference share the prepared reference through the memo",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const data = tieHeavy(3000, 64, 3);
    const ref = join(dir, "r.npy");
    const query = join(dir, "q.npy");
    await writeNpyFile(ref, data, [3000, 64]);
    await writeNpyFile(query, data.subarray(0, 100 * 64), [100, 64]);
    const store = join(dir, "store");
    const memory = await knnJob(ref, { store, query, k: 4, threads: 1 });
    assert.equal(memory.prepared, "computed");
    const minimum = minimumBudget({ rows: 3000, cols: 64 }, {
      k: 4,
      query: { rows: 100, cols: 64 },
      streamable: true,
      threads: 1,
    });
    const streamed = await knnJob(ref, {
      store,
      query,
      k: 4,
      threads: 1,
      memoryBudgetBytes: minimum + 100_000,
    });
    assert.equal(streamed.plan.reference, "streamed");
    assert.equal(streamed.prepared, "memo");
    assert.deepEqual(streamed.index, memory.index);
  },
);

test(
  "knnJob() refuses a memory budget too small to stream one row, and cairn knn exits 2 naming the minimum",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const ref = join(dir, "r.npy");
    await writeNpyFile(ref, randomFloat32(3000 * 16, 5), [3000, 16]);
    const error = await knnJob(ref, {
      store: "memory:ooc-small",
      k: 3,
      memoryBudgetBytes: 2000,
    }).then(() => undefined, (e: unknown) => e as Error);
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /memoryBudgetBytes = 2000 is too small/);
    const minimum = Number(/at least (\d+)/.exec(error.message)![1]);
    assert.ok(minimum > 3000 * 8, `the minimum covers the norms (${minimum})`);
    const cli = await runScript(CLI, [
      "--store",
      join(dir, "store"),
      "knn",
      "--ref",
      ref,
      "--k",
      "3",
      "--out",
      join(dir, "out"),
      "--memory-budget",
      "2000",
    ]);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /memoryBudgetBytes = 2000 is too small/);
    assert.match(cli.stderr, new RegExp(`at least ${minimum}`));
    assert.match(cli.stderr, /--memory-budget/);
  },
);

test(
  "planKnnJob() and cairn knn-plan plan a 2,000,000 x 128 reference streamed under 256MB",
  { timeout: 60_000 },
  async () => {
    const budget = 256e6;
    const plan = planKnnJob({ rows: 2_000_000, cols: 128 }, {
      k: 10,
      query: { rows: 1000, cols: 128 },
      memoryBudgetBytes: budget,
      streamable: true,
    });
    assert.equal(plan.reference, "streamed");
    assert.equal(plan.threads, defaultThreads());
    assert.ok(plan.peakBytesEstimate <= budget);
    // Threads read the next tile while searching: two tiles in the budget.
    assert.ok(plan.tileRows! > 20_000 && plan.tileRows! < 2_000_000);
    assert.equal(plan.passes, plan.blocks + 2);
    const self = planKnnJob({ rows: 2_000_000, cols: 128 }, {
      k: 10,
      memoryBudgetBytes: budget,
      streamable: true,
    });
    assert.equal(self.reference, "streamed");
    assert.equal(self.blocks, Math.ceil(2_000_000 / self.blockRows));
    assert.ok(self.peakBytesEstimate <= budget);
    // The CLI reads only the header: a sparse file of the full size will do.
    const dir = await tempDir();
    const ref = join(dir, "big.npy");
    const header = encodeNpyHeader("<f4", [2_000_000, 128]);
    const file = await open(ref, "w");
    await file.write(header);
    await file.truncate(header.length + 2_000_000 * 128 * 4);
    await file.close();
    const cli = await runScript(CLI, [
      "knn-plan",
      "--ref",
      ref,
      "--k",
      "10",
      "--memory-budget",
      "256MB",
      "--json",
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const printed = JSON.parse(cli.stdout);
    assert.deepEqual(printed, self);
  },
);

/** Kill points for the kill test, from one printed seed. */
const { between: random } = testRandom("knn out-of-core kill points");

test(
  "knnJob() streaming its reference, killed with SIGKILL, resumes to the bytes of an uninterrupted in-memory run",
  { timeout: 120_000 },
  async () => {
    const dir = await tempDir();
    const ref = join(dir, "r.npy");
    const query = join(dir, "q.npy");
    await writeNpyFile(ref, randomFloat32(20_000 * 16, 7), [20_000, 16]);
    await writeNpyFile(query, randomFloat32(1000 * 16, 8), [1000, 16]);
    const baseline = join(dir, "baseline");
    await knnJob(ref, {
      store: "memory:ooc-kill",
      query,
      k: 10,
      out: baseline,
    });
    const budget = String(3_000_000);
    const store = join(dir, "store");
    const out = join(dir, "out");
    const args = [store, ref, query, out, "50", budget, "1"];
    await assertKillsResume({ child: CHILD, args, out, baseline, random });
  },
);
