import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import {
  knnJob,
  matrixFrom,
  type Metric,
  METRICS,
  prepareReference,
  searchKnn,
} from "../lib/knn/mod.ts";
import type { KernelChoice } from "../lib/knn/kernel_scan.ts";
import { openKnnPool } from "../lib/knn/kernel_threads.ts";
import { seededRandom } from "../lib/random.ts";
import { propertyRuns } from "./test_seed.ts";

function data(rows: number, cols: number, seed: number, f64: boolean) {
  const rnd = seededRandom(seed);
  const out = f64
    ? new Float64Array(rows * cols)
    : new Float32Array(rows * cols);
  // Small integers: plenty of exact ties and duplicate rows.
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rnd() * 5) - 2;
  return matrixFrom(out, cols);
}

// One pool for the whole file: under `deno test` each new worker graph is
// type-checked, which costs seconds.
const pool = openKnnPool({ threads: 2 });

test("KnnPool.search() equals one-thread searchKnn for any block size", async () => {
  {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          n: fc.integer({ min: 2, max: 300 }),
          nq: fc.integer({ min: 1, max: 200 }),
          d: fc.integer({ min: 1, max: 9 }),
          seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          f64: fc.boolean(),
          metric: fc.constantFrom<Metric>(...METRICS),
          self: fc.boolean(),
          excludeSelf: fc.boolean(),
          kernel: fc.constantFrom<KernelChoice>("ts", "wasm", "wasm-simd"),
          blockRows: fc.integer({ min: 1, max: 120 }),
          kPick: fc.double({ min: 0, max: 1, noNaN: true }),
          from: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        async (c) => {
          const ref = data(c.n, c.d, c.seed, c.f64);
          const self = c.self || c.excludeSelf;
          const queries = self ? ref : data(c.nq, c.d, c.seed + 1, !c.f64);
          const excludeSelf = c.excludeSelf;
          const usable = ref.rows - (excludeSelf ? 1 : 0);
          const k = 1 + Math.floor(c.kPick * (usable - 1));
          const start = Math.floor(c.from * queries.rows);
          const prepared = prepareReference(ref, c.metric, {
            zeroVector: "one",
          });
          const options = { k, start, excludeSelf, kernel: c.kernel };
          const one = searchKnn(prepared, queries, {
            ...options,
            kernel: "ts",
          });
          const many = await pool.search(prepared, queries, {
            ...options,
            blockRows: c.blockRows,
          });
          assert.deepEqual(many, one);
        },
      ),
      propertyRuns(60),
    );
  }
});

test("KnnPool.search() rejects bad input from a worker with its error class", async () => {
  const ref = data(50, 3, 1, false);
  const bad = new Float32Array(30 * 3);
  bad[70] = NaN;
  {
    const prepared = prepareReference(ref, "euclidean");
    await assert.rejects(
      pool.search(prepared, matrixFrom(bad, 3), { k: 2, blockRows: 4 }),
      (e: unknown) =>
        e instanceof RangeError && /not finite|NaN/.test(e.message),
    );
    await assert.rejects(
      pool.search(prepared, ref, { k: 51 }),
      RangeError,
    );
    // The pool still works after a failed search.
    const again = await pool.search(prepared, ref, { k: 2, blockRows: 9 });
    assert.deepEqual(again, searchKnn(prepared, ref, { k: 2 }));
  }
  assert.throws(
    () => openKnnPool({ threads: 0 }),
    /threads must be a positive integer/,
  );
});

test("KnnPool.search() rejects at once when its signal aborts", async () => {
  const ref = data(400, 16, 2, false);
  try {
    const prepared = prepareReference(ref, "sqeuclidean");
    const controller = new AbortController();
    const search = pool.search(prepared, ref, {
      k: 3,
      blockRows: 1,
      signal: controller.signal,
    });
    controller.abort(new Error("stop here"));
    await assert.rejects(search, /stop here/);
  } finally {
    // The last test of the file closes the shared pool.
    pool.close();
  }
});

test("knnJob() gives the same bytes with 1 and 2 threads, and resumes across them", async () => {
  // Blocks of 1,000 × 3,000 × 16 multiply-adds: above MIN_PARALLEL_WORK,
  // so the workers run.
  const ref = data(3_000, 16, 9, false);
  // Separate stores: the per-block memo would otherwise serve the second.
  const base = { k: 5, blockRows: 1_000, job: "threads" };
  const one = await knnJob(ref, {
    ...base,
    threads: 1,
    store: "memory:knn-threads-1",
  });
  const two = await knnJob(ref, {
    ...base,
    threads: 2,
    store: "memory:knn-threads-2",
  });
  assert.equal(two.plan.threads, 2);
  assert.deepEqual(two.index, one.index);
  assert.deepEqual(two.distance, one.distance);
  assert.equal(two.computedBlocks, 3);
  // Threads are not part of the job's identity: a rerun with another count
  // finds the run complete.
  const again = await knnJob(ref, {
    ...base,
    threads: 1,
    store: "memory:knn-threads-2",
  });
  assert.ok(again.alreadyCompleted);
  assert.equal(again.computedBlocks, 0);
  assert.deepEqual(again.index, one.index);
});
