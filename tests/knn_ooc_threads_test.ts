import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  knnJob,
  type KnnJobOptions,
  type KnnJobPlan,
  planKnnJob,
  type PlanKnnJobOptions,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import type { JobEvent } from "../lib/events.ts";
import { randomFloat32 } from "../lib/random.ts";
import { tempDir } from "./temp.ts";
import { assertKillsResume, tieHeavy } from "./knn_ooc_shared.ts";
import { testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/knn_ooc_child.ts", import.meta.url);

/** The smallest budget (in 25 kB steps) whose streamed plan passes `want`. */
function budgetFor(
  shape: { rows: number; cols: number },
  options: Omit<PlanKnnJobOptions, "memoryBudgetBytes">,
  want: (plan: KnnJobPlan) => boolean,
): number {
  for (let budget = 500_000; budget < 64e6; budget += 25_000) {
    let plan: KnnJobPlan;
    try {
      plan = planKnnJob(shape, { ...options, memoryBudgetBytes: budget });
    } catch {
      continue;
    }
    if (plan.reference === "streamed" && want(plan)) return budget;
  }
  throw new Error(`No budget gives the plan wanted for ${options.threads}`);
}

test(
  "knnJob() streaming its reference on 1, 2 and 3 threads returns the in-memory bytes, for any tile size, metric and float width",
  { timeout: 120_000 },
  async () => {
    const dir = await tempDir();
    const rows = 20_000;
    const cols = 32;
    const data = tieHeavy(rows, cols, 5);
    const ref32 = join(dir, "r32.npy");
    const ref64 = join(dir, "r64.npy");
    const queryPath = join(dir, "q.npy");
    await writeNpyFile(ref32, data, [rows, cols]);
    await writeNpyFile(ref64, Float64Array.from(data), [rows, cols]);
    // Queries: duplicates of reference rows, a zero row and others.
    await writeNpyFile(queryPath, data.slice(0, 61 * cols), [61, cols]);
    const cases = [
      { metric: "euclidean", ref: ref32 },
      { metric: "sqeuclidean", ref: ref64 },
      { metric: "cosine", ref: ref32 },
      { metric: "ip", ref: ref64 },
    ] as const;
    // Threads, tile buffers and the least tile rows wanted, or the largest
    // tiles before the reference fits in memory. Each metric runs one thread
    // and two of the three threaded plans, so each plan meets both widths.
    const one = { threads: 1, buffers: 1, tileRows: 200, large: false };
    const threaded = [
      { threads: 2, buffers: 1, tileRows: 100, large: false },
      { threads: 2, buffers: 2, tileRows: 512, large: false },
      { threads: 3, buffers: 2, tileRows: 512, large: true },
    ];
    let n = 0;
    for (const [i, c] of cases.entries()) {
      const runs = [one, threaded[i % 3]!, threaded[(i + 1) % 3]!];
      const base: KnnJobOptions = {
        k: 7,
        metric: c.metric,
        zeroVector: "one",
        query: queryPath,
        blockRows: 25,
      };
      const memory = await knnJob(c.ref, {
        ...base,
        store: `memory:ooct-mem-${n}`,
        threads: 1,
      });
      assert.equal(memory.plan.reference, "memory");
      const tiles = new Set<number>();
      for (const r of runs) {
        const planOptions = {
          k: 7,
          blockRows: 25,
          streamable: true,
          threads: r.threads,
          query: { rows: 61, cols },
        };
        const fits = (p: KnnJobPlan) =>
          p.threads === r.threads && p.tileBuffers === r.buffers;
        let budget = budgetFor(
          { rows, cols },
          planOptions,
          (p) => fits(p) && p.tileRows! >= r.tileRows,
        );
        if (r.large) {
          while (
            fits(planKnnJob({ rows, cols }, {
              ...planOptions,
              memoryBudgetBytes: budget + 25_000,
            }))
          ) budget += 25_000;
        }
        const warnings: string[] = [];
        const streamed = await knnJob(c.ref, {
          ...base,
          store: `memory:ooct-${n++}`,
          memoryBudgetBytes: budget,
          threads: r.threads,
          onEvent: (e: JobEvent) => {
            if (e.type === "warning") warnings.push(e.message);
          },
        });
        const what = `${c.metric}, ${r.threads} threads, budget ${budget}`;
        const plan = streamed.plan;
        assert.equal(plan.reference, "streamed", what);
        assert.equal(plan.threads, r.threads, what);
        assert.equal(plan.tileBuffers, r.buffers, what);
        assert.ok(plan.tileRows! < rows, what);
        assert.ok(plan.peakBytesEstimate <= budget, what);
        tiles.add(plan.tileRows!);
        assert.deepEqual(warnings, [], what);
        assert.deepEqual(streamed.index, memory.index, what);
        assert.deepEqual(streamed.distance, memory.distance, what);
        assert.deepEqual(streamed.outputs, memory.outputs, what);
      }
      assert.equal(tiles.size, runs.length, `tile sizes ${[...tiles]}`);
    }
  },
);

test(
  "knnJob() self-search of a streamed reference on 2 threads excludes each row itself and returns the in-memory bytes",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const rows = 3_000;
    const cols = 320;
    const ref = join(dir, "r.npy");
    await writeNpyFile(ref, tieHeavy(rows, cols, 9), [rows, cols]);
    const base: KnnJobOptions = { k: 5, blockRows: 250, excludeSelf: true };
    const memory = await knnJob(ref, {
      ...base,
      store: "memory:ooct-self-mem",
      threads: 1,
    });
    const budget = budgetFor({ rows, cols }, {
      k: 5,
      blockRows: 250,
      streamable: true,
      threads: 2,
    }, (p) => p.threads === 2 && p.tileRows! >= 256);
    const streamed = await knnJob(ref, {
      ...base,
      store: "memory:ooct-self",
      memoryBudgetBytes: budget,
      threads: 2,
    });
    assert.equal(streamed.plan.reference, "streamed");
    assert.equal(streamed.plan.threads, 2);
    assert.ok(streamed.plan.blocks > 1);
    assert.deepEqual(streamed.index, memory.index);
    assert.deepEqual(streamed.distance, memory.distance);
  },
);

test(
  "knnJob() streaming on threads searches on the calling thread where there is no Worker or the workers fail to start",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const rows = 20_000;
    const cols = 32;
    const ref = join(dir, "r.npy");
    const query = join(dir, "q.npy");
    await writeNpyFile(ref, randomFloat32(rows * cols, 21), [rows, cols]);
    await writeNpyFile(query, randomFloat32(40 * cols, 22), [40, cols]);
    const base: KnnJobOptions = { k: 4, query, blockRows: 20 };
    const memory = await knnJob(ref, {
      ...base,
      store: "memory:ooct-noworker-mem",
      threads: 1,
    });
    const budget = budgetFor({ rows, cols }, {
      k: 4,
      blockRows: 20,
      streamable: true,
      threads: 2,
      query: { rows: 40, cols },
    }, (p) => p.threads === 2 && p.tileBuffers === 2);
    /** A worker whose module cannot load: it reports an error, once. */
    class FailingWorker {
      onmessage: unknown = null;
      onerror: ((event: { preventDefault(): void }) => void) | null = null;
      constructor() {
        setTimeout(() => this.onerror?.({ preventDefault() {} }), 5);
      }
      postMessage(): void {}
      terminate(): void {}
    }
    const scope = globalThis as { Worker?: unknown };
    const saved = scope.Worker;
    try {
      for (
        const [name, stand] of [["none", undefined], [
          "failing",
          FailingWorker,
        ]] as const
      ) {
        scope.Worker = stand;
        const streamed = await knnJob(ref, {
          ...base,
          store: `memory:ooct-noworker-${name}`,
          memoryBudgetBytes: budget,
          threads: 2,
        });
        assert.equal(streamed.plan.threads, 2, name);
        assert.equal(streamed.computedBlocks, 2, name);
        assert.deepEqual(streamed.index, memory.index, name);
        assert.deepEqual(streamed.distance, memory.distance, name);
      }
    } finally {
      scope.Worker = saved;
    }
  },
);

test(
  "planKnnJob() of a streamed reference reports the threads it uses, within the budget, with blocks that do not depend on them",
  () => {
    const shape = { rows: 2_000_000, cols: 128 };
    const request: PlanKnnJobOptions = {
      k: 10,
      query: { rows: 1000, cols: 128 },
      memoryBudgetBytes: 256e6,
      streamable: true,
    };
    const one = planKnnJob(shape, { ...request, threads: 1 });
    const two = planKnnJob(shape, { ...request, threads: 2 });
    assert.equal(one.threads, 1);
    assert.equal(one.tileBuffers, 1);
    assert.equal(two.threads, 2);
    assert.equal(two.tileBuffers, 2);
    for (const p of [one, two]) {
      assert.equal(p.reference, "streamed");
      assert.ok(p.peakBytesEstimate <= 256e6, `${p.peakBytesEstimate}`);
      assert.equal(
        p.peakBytesEstimate,
        p.sharedBytesEstimate + p.blockBytesEstimate,
      );
    }
    // Two buffers and the workers' state take room from the tiles, never
    // from the blocks: a job's steps are the same on any thread count.
    assert.ok(two.tileRows! < one.tileRows!);
    assert.equal(two.blockRows, one.blockRows);
    assert.equal(two.passes, one.passes);
    // The smallest budget a streamed job accepts is the one-thread one; it
    // runs there on one thread, whatever threads asks for.
    let error: unknown;
    try {
      planKnnJob(shape, { ...request, threads: 2, memoryBudgetBytes: 1e6 });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof RangeError);
    const minimum = Number(/at least (\d+)/.exec(error.message)![1]);
    const tight = planKnnJob(shape, {
      ...request,
      threads: 2,
      memoryBudgetBytes: minimum,
    });
    assert.equal(tight.threads, 1);
    assert.equal(tight.tileRows, 1);
    assert.ok(tight.peakBytesEstimate <= minimum);
    for (const budget of [minimum + 4e6, minimum + 8e6, 64e6, 512e6]) {
      const at = { ...request, memoryBudgetBytes: budget };
      const p = planKnnJob(shape, { ...at, threads: 3 });
      assert.ok(p.peakBytesEstimate <= budget, `${budget}`);
      assert.equal(
        p.blockRows,
        planKnnJob(shape, { ...at, threads: 1 }).blockRows,
      );
    }
  },
);

test(
  "knnJob() warns when the budget leaves no room for the threads of a streamed reference",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const rows = 20_000;
    const cols = 32;
    const ref = join(dir, "r.npy");
    await writeNpyFile(ref, randomFloat32(rows * cols, 4), [rows, cols]);
    const query = join(dir, "q.npy");
    await writeNpyFile(query, randomFloat32(10 * cols, 5), [10, cols]);
    const budget = budgetFor({ rows, cols }, {
      k: 3,
      streamable: true,
      threads: 2,
      query: { rows: 10, cols },
    }, () => true);
    const warnings: string[] = [];
    const result = await knnJob(ref, {
      store: "memory:ooct-warn",
      k: 3,
      query,
      threads: 2,
      memoryBudgetBytes: budget,
      onEvent: (e: JobEvent) => {
        if (e.type === "warning") warnings.push(e.message);
      },
    });
    assert.equal(result.plan.threads, 1);
    assert.match(warnings.join("\n"), /runs on 1: threads = 2 is not used/);
  },
);

/** Kill points for the kill test, from one printed seed. */
const { between: random } = testRandom("knn out-of-core threads kill points");

test(
  "knnJob() streaming on 2 threads, killed with SIGKILL, resumes to the bytes of an uninterrupted in-memory run",
  { timeout: 120_000 },
  async () => {
    const dir = await tempDir();
    const rows = 40_000;
    const cols = 16;
    const ref = join(dir, "r.npy");
    const query = join(dir, "q.npy");
    await writeNpyFile(ref, randomFloat32(rows * cols, 7), [rows, cols]);
    await writeNpyFile(query, randomFloat32(1000 * cols, 8), [1000, cols]);
    const baseline = join(dir, "baseline");
    await knnJob(ref, {
      store: "memory:ooct-kill",
      query,
      k: 10,
      out: baseline,
      threads: 1,
    });
    const budget = budgetFor({ rows, cols }, {
      k: 10,
      blockRows: 50,
      streamable: true,
      threads: 2,
      query: { rows: 1000, cols },
    }, (p) => p.threads === 2 && p.tileBuffers === 2);
    const store = join(dir, "store");
    const out = join(dir, "out");
    const args = [store, ref, query, out, "50", String(budget), "2"];
    await assertKillsResume({
      child: CHILD,
      args,
      out,
      baseline,
      random,
      check: (lines) => assert.match(lines, /^plan streamed 2 threads/),
    });
  },
);
