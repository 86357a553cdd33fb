import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  collectWithinRadius,
  concatRadiusBlocks,
  countWithinRadius,
  defaultThreads,
  encodeNpy,
  knnGraph,
  knnGraphJob,
  knnJob,
  type KnnJobOptions,
  knnRecall,
  knnRerank,
  type Matrix,
  matrixFrom,
  type Metric,
  parseByteSize,
  parseIntNpy,
  parseNpy,
  parseNpyHeader,
  planKnnJob,
  prepareReference,
  radiusJob,
  searchKnn,
  snnGraph,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import type { JobEvent } from "../lib/events.ts";
import { ConfigChangedError, InterruptedError } from "../lib/job.ts";
import { replayRun } from "../lib/replay.ts";
import { openStore } from "../lib/open_store.ts";
import { verifyStore } from "../lib/verify.ts";
import { randomFloat32 } from "../lib/random.ts";
import { createMemoryStore } from "../store/memory.ts";
import type { Store } from "../store/store.ts";
import { EXIT } from "../cli/command.ts";
import type { CliContext, CommandArgs } from "../cli/command.ts";
import { knnCommand, knnPlanCommand } from "../cli/knn_commands.ts";
import { runScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";

/** A seeded random matrix with a few exact duplicate rows (ties). */
function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const data = randomFloat32(rows * cols, seed, { min: -1, max: 1 });
  for (let r = 3; r < rows; r += 17) {
    data.copyWithin(r * cols, (r - 3) * cols, (r - 2) * cols);
  }
  return matrixFrom(data, cols);
}

async function stores(): Promise<[string, () => Promise<Store>][]> {
  const root = await tempDir();
  let n = 0;
  return [
    ["memory", () => Promise.resolve(createMemoryStore())],
    ["fs", () => openStore(join(root, `store-${n++}`))],
  ];
}

function computedSteps(events: JobEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === "step-done" && !e.cached ? [e.key] : []
  );
}

test("knnJob() equals searchKnn for self and query searches on memory and fs stores", async () => {
  const ref = randomMatrix(300, 8, 1);
  const query = randomMatrix(70, 8, 2);
  for (const [name, open] of await stores()) {
    const store = await open();
    const out = join(await tempDir(), "self");
    const self = await knnJob(ref, {
      store,
      k: 5,
      blockRows: 64,
      out,
    });
    const want = searchKnn(prepareReference(ref, "euclidean"), ref, {
      k: 5,
      excludeSelf: true,
    });
    assert.equal(self.plan.blocks, 5, name);
    assert.equal(self.computedBlocks, 5, name);
    assert.deepEqual(
      new Uint8Array(await readFile(join(out, "index.npy"))),
      encodeNpy(want.index, [300, 5]),
      `${name}: index.npy is the pure result, byte for byte`,
    );
    assert.deepEqual(
      new Uint8Array(await readFile(join(out, "distance.npy"))),
      encodeNpy(want.distance, [300, 5]),
    );
    assert.deepEqual(self.files, {
      "index.npy": join(out, "index.npy"),
      "distance.npy": join(out, "distance.npy"),
    });
    for (
      const metric of ["euclidean", "sqeuclidean", "cosine", "ip"] as const
    ) {
      const got = await knnJob(ref, {
        store,
        query,
        k: 7,
        metric,
        blockRows: 20,
      });
      const exact = searchKnn(prepareReference(ref, metric), query, { k: 7 });
      assert.deepEqual(got.index, exact.index, `${name} ${metric}`);
      assert.deepEqual(got.distance, exact.distance, `${name} ${metric}`);
      assert.equal(got.plan.blocks, 4);
    }
  }
});

test("knnJob() matches a float64 brute force on a tiny case", async () => {
  const data = new Float64Array([
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2,
    0,
    1,
    1,
    1,
    -1,
    0,
    0.5,
    3,
    3,
    3,
    0.1,
    0.1,
    0,
    2,
    0,
    0,
    0,
    0,
    1e-9,
    1,
    0,
    0,
    5,
    -2,
    1,
    0.3,
    0.3,
    0.3,
  ]);
  const ref = matrixFrom(data, 3);
  const k = 4;
  for (const metric of ["euclidean", "sqeuclidean"] as Metric[]) {
    const got = await knnJob(ref, {
      store: createMemoryStore(),
      k,
      metric,
      blockRows: 5,
    });
    for (let i = 0; i < ref.rows; i++) {
      const cand: [number, number][] = [];
      for (let j = 0; j < ref.rows; j++) {
        if (j === i) continue;
        let s = 0;
        for (let c = 0; c < 3; c++) {
          const t = data[i * 3 + c]! - data[j * 3 + c]!;
          s += t * t;
        }
        cand.push([metric === "euclidean" ? Math.sqrt(s) : s, j]);
      }
      cand.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      for (let j = 0; j < k; j++) {
        assert.equal(got.index![i * k + j], cand[j]![1], `row ${i} pos ${j}`);
        assert.equal(got.distance![i * k + j], Math.fround(cand[j]![0]));
      }
    }
  }
});

test("knnGraphJob() equals knnGraph and snnGraph; directed graphs have n*k edges in row order", async () => {
  const ref = randomMatrix(150, 6, 3);
  const store = createMemoryStore();
  const whole = searchKnn(prepareReference(ref, "euclidean"), ref, {
    k: 4,
    excludeSelf: true,
  });
  for (const symmetrize of ["none", "union", "mutual"] as const) {
    const out = join(await tempDir(), symmetrize);
    const got = await knnGraphJob(ref, {
      store,
      k: 4,
      symmetrize,
      blockRows: 40,
      out,
    });
    const want = knnGraph(whole, { symmetrize });
    assert.equal(got.edges, want.from.length);
    if (symmetrize === "none") assert.equal(got.edges, 150 * 4);
    const from = parseIntNpy(
      new Uint8Array(await readFile(got.files["from.npy"]!)),
    );
    assert.deepEqual(from.data, want.from);
    assert.deepEqual(
      new Uint8Array(await readFile(join(out, "to.npy"))),
      encodeNpy(want.to, [want.to.length]),
    );
    assert.deepEqual(
      new Uint8Array(await readFile(join(out, "distance.npy"))),
      encodeNpy(want.distance, [want.distance.length]),
    );
  }
  const snn = await knnGraphJob(ref, {
    store,
    k: 4,
    kind: "snn",
    minShared: 2,
    blockRows: 40,
  });
  const wantSnn = snnGraph(whole, { minShared: 2 });
  assert.deepEqual(snn.from, wantSnn.from);
  assert.deepEqual(snn.to, wantSnn.to);
  assert.deepEqual(snn.weight, wantSnn.weight);
  assert.equal(snn.distance, undefined);
  assert.equal(
    snn.computedBlocks,
    0,
    "blocks came from the first graph job's memo",
  );
  await assert.rejects(
    knnGraphJob(ref, {
      store,
      k: 4,
      kind: "snn",
      symmetrize: "union",
    }),
    /applies to kind "knn" only/,
  );
});

test("radiusJob() counts, then collects, equal to the pure functions; phases show in step keys", async () => {
  const ref = randomMatrix(200, 4, 5);
  const query = randomMatrix(90, 4, 6);
  for (const [name, open] of await stores()) {
    const store = await open();
    const events: JobEvent[] = [];
    const out = join(await tempDir(), "radius");
    const got = await radiusJob(ref, {
      store,
      query,
      radius: 0.6,
      blockRows: 25,
      out,
      onEvent: (e) => events.push(e),
    });
    const p = prepareReference(ref, "euclidean");
    const want = concatRadiusBlocks([
      collectWithinRadius(p, query, { radius: 0.6, start: 0, end: 50 }),
      collectWithinRadius(p, query, { radius: 0.6, start: 50, end: 90 }),
    ]);
    assert.ok(want.index.length > 100, "the radius finds matches");
    const file = (f: string) =>
      readFile(join(out, f)).then((b) => new Uint8Array(b));
    assert.deepEqual(
      await file("offset.npy"),
      encodeNpy(want.offset, [91]),
      name,
    );
    assert.deepEqual(
      await file("index.npy"),
      encodeNpy(want.index, [want.index.length]),
    );
    assert.deepEqual(
      await file("distance.npy"),
      encodeNpy(want.distance, [want.distance.length]),
    );
    assert.equal(got.totalMatches, want.index.length);
    const keys = computedSteps(events);
    assert.deepEqual(keys.slice(0, 5), [
      "prepare",
      "count/00-25",
      "count/25-50",
      "count/50-75",
      "count/75-90",
    ]);
    assert.deepEqual(keys.slice(5), [
      "collect/00-25",
      "collect/25-50",
      "collect/50-75",
      "collect/75-90",
    ]);
    const state = await replayRun(store, got.job, got.run);
    const summary = state.end?.summary as Record<string, unknown>;
    assert.equal(summary.totalMatches, want.index.length);
    assert.equal(summary.phase, "collect");
    assert.deepEqual(state.steps.get("count/25-50")?.stats?.rows, 25);

    const counted = await radiusJob(ref, {
      store,
      query,
      radius: 0.6,
      blockRows: 25,
      countOnly: true,
      out: join(out, "counts"),
    });
    assert.equal(
      counted.computedBlocks,
      0,
      "counts come from the full job's memo",
    );
    const counts = parseIntNpy(await file("counts/counts.npy"));
    assert.deepEqual(counts.data, countWithinRadius(p, query, { radius: 0.6 }));
    assert.equal(counted.totalMatches, want.index.length);
  }
});

test("knnJob() rerun of a completed job computes no block and rewrites only missing or changed outputs", async () => {
  const ref = randomMatrix(120, 5, 7);
  const store = createMemoryStore();
  const out = join(await tempDir(), "out");
  const options: KnnJobOptions = { store, k: 3, blockRows: 30, out };
  const first = await knnJob(ref, options);
  const index = await readFile(join(out, "index.npy"));
  const distance = await readFile(join(out, "distance.npy"));
  const events: JobEvent[] = [];
  const again = await knnJob(ref, {
    ...options,
    onEvent: (e) => events.push(e),
  });
  assert.equal(again.run, first.run);
  assert.ok(again.alreadyCompleted);
  assert.equal(again.computedBlocks, 0);
  assert.deepEqual(computedSteps(events), []);
  assert.deepEqual(again.written, []);
  assert.deepEqual(again.outputs, first.outputs);

  await rm(join(out, "distance.npy"));
  await writeFile(join(out, "index.npy"), "garbage");
  const third = await knnJob(ref, options);
  assert.equal(third.computedBlocks, 0);
  assert.deepEqual(third.written.sort(), [
    join(out, "distance.npy"),
    join(out, "index.npy"),
  ]);
  assert.deepEqual(await readFile(join(out, "index.npy")), index);
  assert.deepEqual(await readFile(join(out, "distance.npy")), distance);

  await rm(join(out, "distance.npy"));
  const fourth = await knnJob(ref, options);
  assert.deepEqual(fourth.written, [join(out, "distance.npy")]);
  assert.deepEqual(await readFile(join(out, "distance.npy")), distance);

  const inMemory = await knnJob(
    ref,
    { store, k: 3, blockRows: 30 },
  );
  assert.equal(inMemory.computedBlocks, 0);
  assert.deepEqual(
    encodeNpy(inMemory.index!, [120, 3]),
    new Uint8Array(index),
  );
});

test("knnJob() resumes an interrupted run: finished blocks are not recomputed and outputs are byte-identical", async () => {
  const ref = randomMatrix(200, 6, 8);
  const query = randomMatrix(100, 6, 9);
  const base = await knnJob(ref, {
    store: createMemoryStore(),
    query,
    k: 6,
    blockRows: 10,
    out: join(await tempDir(), "base"),
  });
  const store = createMemoryStore();
  const out = join(await tempDir(), "resumed");
  const stop = new AbortController();
  const computed: string[] = [];
  await assert.rejects(
    knnJob(ref, {
      store,
      query,
      k: 6,
      blockRows: 10,
      out,
      signal: stop.signal,
      onEvent(e) {
        if (e.type === "step-done" && !e.cached) {
          computed.push(e.key);
          if (computed.length === 4) stop.abort();
        }
      },
    }),
    InterruptedError,
  );
  assert.deepEqual(computed, [
    "prepare",
    "block/000-010",
    "block/010-020",
    "block/020-030",
  ]);
  await assert.rejects(stat(join(out, "index.npy")), /ENOENT/);
  const events: JobEvent[] = [];
  const resumed = await knnJob(ref, {
    store,
    query,
    k: 6,
    blockRows: 10,
    out,
    onEvent: (e) => events.push(e),
  });
  assert.ok(resumed.resumed && !resumed.alreadyCompleted);
  assert.equal(resumed.computedBlocks, 7);
  assert.equal(resumed.prepared, "stored");
  assert.ok(!computedSteps(events).some((k) => computed.includes(k)));
  for (const name of ["index.npy", "distance.npy"]) {
    assert.deepEqual(
      await readFile(join(out, name)),
      await readFile(base.files[name]!),
    );
  }
  assert.deepEqual(resumed.outputs, base.outputs);
});

test("knnJob() keys a job by its data and parameters; another config on a named unfinished run needs newRun", async () => {
  const ref = randomMatrix(60, 4, 10);
  const store = createMemoryStore();
  const a = await knnJob(ref, { store, k: 3 });
  const b = await knnJob(ref, { store, k: 4 });
  assert.notEqual(a.job, b.job, "changing k is a different config and job");
  assert.match(a.job, /^knn-[0-9a-f]{12}$/);
  const other = randomMatrix(60, 4, 11);
  const c = await knnJob(other, { store, k: 3 });
  assert.notEqual(a.job, c.job, "other data is another job");
  const d = await knnJob(matrixFrom(ref.data.slice(), 4), {
    store,
    k: 3,
  });
  assert.equal(d.job, a.job, "equal data is the same job");
  assert.ok(d.alreadyCompleted);

  const stop = new AbortController();
  stop.abort();
  await assert.rejects(
    knnJob(ref, { store, k: 3, job: "named", signal: stop.signal }),
    InterruptedError,
  );
  await assert.rejects(
    knnJob(ref, { store, k: 5, job: "named" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigChangedError);
      assert.deepEqual(error.changes, ["config.k: 3 -> 5"]);
      return true;
    },
  );
  const fresh = await knnJob(ref, {
    store,
    k: 5,
    job: "named",
    newRun: true,
  });
  assert.equal(fresh.rows, 60);
});

test("knnJob() reuses the prepared reference of earlier jobs on the same reference", async () => {
  const ref = randomMatrix(80, 5, 12);
  for (const [name, open] of await stores()) {
    const store = await open();
    const first = await knnJob(ref, {
      store,
      query: randomMatrix(10, 5, 13),
      k: 2,
    });
    assert.equal(first.prepared, "computed", name);
    const second = await knnJob(ref, {
      store,
      query: randomMatrix(12, 5, 14),
      k: 2,
    });
    assert.equal(second.prepared, "memo", name);
    const prepare = (await replayRun(store, second.job, second.run)).steps.get(
      "prepare",
    );
    assert.equal(prepare?.memoHit, true);
    const cosine = await knnJob(ref, {
      store,
      query: randomMatrix(12, 5, 14),
      k: 2,
      metric: "cosine",
    });
    assert.equal(cosine.prepared, "computed", "another metric prepares again");
  }
});

test("knn jobs reject bad input with clear errors before touching the store", async () => {
  const dir = await tempDir();
  const good = randomMatrix(20, 3, 15);
  const nan = randomMatrix(20, 3, 16);
  nan.data[7 * 3 + 1] = NaN;
  const inf = randomMatrix(20, 3, 16);
  inf.data[11 * 3] = -Infinity;
  const zero = randomMatrix(20, 3, 17);
  zero.data.fill(0, 9 * 3, 10 * 3);
  await writeNpyFile(join(dir, "good.npy"), good.data, [20, 3]);
  await writeNpyFile(join(dir, "nan.npy"), nan.data, [20, 3]);
  await writeNpyFile(join(dir, "int.npy"), new Int32Array(6), [2, 3]);
  await writeNpyFile(join(dir, "empty.npy"), new Float32Array(0), [0, 3]);
  const fortran = encodeNpy(new Float32Array(6), [2, 3]);
  const at = new TextDecoder().decode(fortran).indexOf("False");
  fortran.set(new TextEncoder().encode("True "), at);
  await writeFile(join(dir, "fortran.npy"), fortran);
  assert.equal(parseNpyHeader(fortran).fortranOrder, true);
  await writeFile(join(dir, "file"), "not a directory");
  const store = createMemoryStore();
  const fsStore = join(dir, "never-created");
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    [
      "NaN",
      () => knnJob(nan, { store, k: 2 }),
      /reference matrix: row 7 column 1 is NaN/,
    ],
    [
      "NaN file",
      () => knnJob(join(dir, "nan.npy"), { store: fsStore, k: 2 }),
      /nan\.npy": row 7 column 1 is NaN/,
    ],
    [
      "Inf query",
      () => knnJob(good, { store, query: inf, k: 2 }),
      /query matrix: row 11 column 0 is -Infinity/,
    ],
    [
      "dimension",
      () => knnJob(good, { store, query: randomMatrix(4, 2, 1), k: 2 }),
      /query matrix has 2 columns, but reference matrix has 3/,
    ],
    [
      "k = 0",
      () => knnJob(good, { store, k: 0 }),
      /expected k >= 1, but k = 0/,
    ],
    ["k = -1", () => knnGraphJob(good, { store, k: -1 }), /expected k >= 1/],
    [
      "k = rows with excludeSelf",
      () => knnJob(good, { store, k: 20 }),
      /usable reference rows = 19 \(20 rows, excluding self\), k = 20/,
    ],
    [
      "k > rows",
      () => knnJob(good, { store, query: good, k: 21 }),
      /reference rows = 20, k = 21/,
    ],
    [
      "empty matrix",
      () =>
        knnJob({ data: new Float32Array(0), rows: 0, cols: 3 }, {
          store,
          k: 1,
        }),
      /is empty \(0 × 3\)/,
    ],
    [
      "empty file",
      () => knnJob(join(dir, "empty.npy"), { store, k: 1 }),
      /shape \(0, 3\) is empty/,
    ],
    [
      "int dtype",
      () => knnJob(join(dir, "int.npy"), { store, k: 1 }),
      /dtype "<i4" is not supported/,
    ],
    [
      "fortran",
      () => knnJob(join(dir, "fortran.npy"), { store, k: 1 }),
      /Fortran order/,
    ],
    [
      "radius < 0",
      () => radiusJob(good, { store, radius: -0.5 }),
      /radius must be >= 0/,
    ],
    [
      "radius NaN",
      () => radiusJob(good, { store, radius: NaN }),
      /radius must be a finite number/,
    ],
    [
      "cosine zero vector",
      () => knnJob(zero, { store, k: 2, metric: "cosine" }),
      /reference matrix with cosine: row 9 is a zero vector.*zeroVector: "one"/,
    ],
    [
      "cosine zero query",
      () =>
        radiusJob(good, { store, query: zero, radius: 0.1, metric: "cosine" }),
      /query matrix with cosine: row 9 is a zero vector/,
    ],
    [
      "missing file",
      () => knnJob(join(dir, "nope.npy"), { store: fsStore, k: 1 }),
      /nope\.npy": it does not exist/,
    ],
    [
      "out is a file",
      () => knnJob(good, { store, k: 1, out: join(dir, "file") }),
      /it is a file, not a directory/,
    ],
    [
      "metric",
      () => knnJob(good, { store, k: 1, metric: "l2" as Metric }),
      /Cannot use metric "l2": "l2" is not supported/,
    ],
    [
      "excludeSelf with query",
      () => knnJob(good, { store, query: good, k: 1, excludeSelf: true }),
      /excludeSelf applies to self-search only/,
    ],
  ];
  for (const [name, run, message] of cases) {
    await assert.rejects(run(), message, name);
  }
  assert.deepEqual(await store.listJobs(), [], "nothing was stored");
  await assert.rejects(
    stat(fsStore),
    /ENOENT/,
    "the fs store was never created",
  );

  const allowed = await knnJob(zero, {
    store,
    k: 2,
    metric: "cosine",
    zeroVector: "one",
  });
  assert.equal(
    allowed.distance![9 * 2],
    1,
    "a zero row is at distance 1 under zeroVector one",
  );
});

test("planKnnJob() sizes blocks from the memory budget, and jobs follow it", async () => {
  const plan = planKnnJob({ rows: 20_000, cols: 128 }, {
    query: { rows: 2_000, cols: 128 },
    k: 10,
    memoryBudgetBytes: 64 * 1024 * 1024,
  });
  assert.equal(plan.blockRows, 400);
  assert.equal(plan.blocks, 5);
  assert.equal(plan.threads, defaultThreads());
  assert.equal(plan.steps, 6);
  const three = planKnnJob({ rows: 20_000, cols: 128 }, {
    query: { rows: 2_000, cols: 128 },
    k: 10,
    memoryBudgetBytes: 64 * 1024 * 1024,
    threads: 3,
  });
  assert.equal(three.threads, 3);
  // Threads share one copy of the reference: more of them cost scratch only.
  assert.ok(
    three.sharedBytesEstimate - plan.sharedBytesEstimate < 8 * 1024 * 1024,
  );
  assert.equal(
    planKnnJob({ rows: 50, cols: 4 }, { kind: "radius", threads: 3 }).threads,
    1,
  );
  assert.throws(
    () => planKnnJob({ rows: 50, cols: 4 }, { threads: 0 }),
    /threads must be a positive whole number/,
  );
  assert.ok(plan.blockBytesEstimate <= 64 * 1024 * 1024);
  assert.equal(
    plan.peakBytesEstimate,
    plan.blockBytesEstimate + plan.sharedBytesEstimate,
  );
  assert.equal(
    planKnnJob({ rows: 1000, cols: 8 }, {
      query: { rows: 8192, cols: 8 },
      k: 5,
    })
      .blockRows,
    4096,
    "capped at maxBlockRows",
  );
  assert.equal(planKnnJob({ rows: 50, cols: 2 }, { blockRows: 7 }).blocks, 8);
  assert.equal(planKnnJob({ rows: 50, cols: 2 }, { kind: "radius" }).steps, 3);
  assert.equal(
    planKnnJob({ rows: 50, cols: 2 }, { kind: "radius", countOnly: true })
      .steps,
    2,
  );
  assert.throws(
    () => planKnnJob({ rows: 1000, cols: 8 }, { memoryBudgetBytes: 100 }),
    /raise the budget/,
  );
  assert.equal(parseByteSize("1.5KiB"), 1536);

  const ref = randomMatrix(100, 4, 18);
  const budget = 3 * (8 * 100 + 8 * 4 + 24 + 8 * 2);
  const job = await knnJob(ref, {
    store: createMemoryStore(),
    k: 2,
    memoryBudgetBytes: budget,
  });
  assert.equal(job.plan.blockRows, 3);
  assert.equal(job.plan.blocks, 34);
  assert.equal(job.computedBlocks, 34);
});

test("knnRecall() and knnRerank() evaluate candidate lists against exact results", async () => {
  const ref = randomMatrix(150, 6, 19);
  const query = randomMatrix(40, 6, 20);
  const dir = await tempDir();
  const truth = await knnJob(ref, {
    store: createMemoryStore(),
    query,
    k: 5,
    out: join(dir, "truth"),
  });
  const exact20 = searchKnn(prepareReference(ref, "euclidean"), query, {
    k: 20,
  });
  // Candidates: the true top 20 in reverse order, with one id dropped per row, as int64.
  const cand = new BigInt64Array(40 * 20);
  for (let i = 0; i < 40; i++) {
    for (let j = 0; j < 20; j++) {
      cand[i * 20 + j] = BigInt(exact20.index[i * 20 + (19 - j)]!);
    }
    if (i % 2 === 0) cand[i * 20 + 19] = -1n; // drop the nearest
  }
  await writeNpyFile(join(dir, "cand.npy"), cand, [40, 20]);
  const recall = await knnRecall(join(dir, "truth"), join(dir, "cand.npy"));
  assert.equal(recall.rows, 40);
  assert.equal(recall.recall, 1 - 20 / (40 * 5));
  const head = await knnRecall(
    truth.files["index.npy"]!,
    join(dir, "cand.npy"),
    {
      kCandidates: 5,
    },
  );
  assert.ok(head.recall < 0.5, "the first five candidates are the worst ones");

  const reranked = await knnRerank(ref, {
    query,
    candidates: join(dir, "cand.npy"),
    k: 5,
    out: join(dir, "rerank"),
  });
  const want = searchKnn(prepareReference(ref, "euclidean"), query, { k: 5 });
  for (let i = 0; i < 40; i++) {
    const row = Array.from(reranked.index.subarray(i * 5, i * 5 + 5));
    const exact = Array.from(want.index.subarray(i * 5, i * 5 + 5));
    assert.deepEqual(
      row,
      i % 2 === 0 ? [...exact.slice(1), exact20.index[i * 20 + 5]!] : exact,
    );
  }
  const written = parseIntNpy(
    new Uint8Array(await readFile(reranked.files["index.npy"]!)),
  );
  assert.deepEqual(written.data, reranked.index);
  await assert.rejects(
    knnRecall(join(dir, "truth"), {
      data: new Int32Array(3),
      rows: 3,
      cols: 1,
    }),
    /truth has 40 rows, but candidates have 3/,
  );
  await assert.rejects(
    knnRerank(ref, { query, candidates: join(dir, "cand.npy"), k: 21 }),
    /expected 1 <= k <= 20/,
  );
  const parsed = parseNpy(await readFile(join(dir, "rerank", "distance.npy")));
  assert.deepEqual(parsed.data, reranked.distance);
});

function fakeContext(storeLocation: string) {
  const out: string[] = [];
  const info: string[] = [];
  const events: JobEvent[] = [];
  const results: unknown[] = [];
  const ctx: CliContext = {
    store: () => openStore(storeLocation),
    storeLocation,
    json: false,
    quiet: false,
    waitLockMs: 0,
    out: (t) => out.push(t),
    info: (t) => info.push(t),
    warn: (t) => info.push(t),
    onEvent: (e) => events.push(e),
    result(value, human) {
      results.push(value);
      human();
    },
  };
  return { ctx, out, info, events, results };
}

function cliArgs(values: CommandArgs["values"]): CommandArgs {
  return { values, positionals: [] };
}

test("cairn knn and knn-plan run through their Command objects", async () => {
  const dir = await tempDir();
  const ref = randomMatrix(90, 4, 21);
  await writeNpyFile(join(dir, "ref.npy"), ref.data, [90, 4]);
  const fake = fakeContext(join(dir, "store"));
  const code = await knnCommand.run(
    fake.ctx,
    cliArgs({
      ref: join(dir, "ref.npy"),
      k: "3",
      out: join(dir, "out"),
      "block-rows": "40",
    }),
  );
  assert.equal(code, EXIT.ok);
  assert.deepEqual(fake.out, [
    join(dir, "out", "index.npy"),
    join(dir, "out", "distance.npy"),
  ]);
  assert.match(
    fake.info.at(-1)!,
    /90 rows x k=3; 3 of 3 block step\(s\) computed/,
  );
  assert.ok(fake.events.some((e) => e.type === "run-start" && e.total === 4));
  const want = searchKnn(prepareReference(ref, "euclidean"), ref, {
    k: 3,
    excludeSelf: true,
  });
  assert.deepEqual(
    new Uint8Array(await readFile(join(dir, "out", "index.npy"))),
    encodeNpy(want.index, [90, 3]),
  );
  const plan = fakeContext(join(dir, "store"));
  await knnPlanCommand.run(
    plan.ctx,
    cliArgs({
      ref: join(dir, "ref.npy"),
      k: "3",
      "block-rows": "40",
      threads: "1",
    }),
  );
  assert.equal((plan.results[0] as { blocks: number }).blocks, 3);
  assert.match(plan.out.join("\n"), /block rows\s+40 \(3 blocks, 1 thread\)/);
  const two = fakeContext(join(dir, "store"));
  await knnPlanCommand.run(
    two.ctx,
    cliArgs({ ref: join(dir, "ref.npy"), k: "3", threads: "2" }),
  );
  assert.match(two.out.join("\n"), /block rows\s+90 \(1 block, 2 threads\)/);
});

const CLI = new URL("../cli/main.ts", import.meta.url);

test(
  "cairn knn reports bad input with a message and a non-zero exit code, and runs jobs",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const ref = randomMatrix(50, 3, 22);
    const nan = randomMatrix(50, 3, 23);
    nan.data[4 * 3 + 2] = NaN;
    await writeNpyFile(join(dir, "ref.npy"), ref.data, [50, 3]);
    await writeNpyFile(join(dir, "nan.npy"), nan.data, [50, 3]);
    const store = join(dir, "store");
    const run = (...args: string[]) =>
      runScript(CLI, ["--store", store, ...args]);
    const results = await Promise.all([
      run(
        "knn",
        "--ref",
        join(dir, "nan.npy"),
        "--k",
        "2",
        "--out",
        join(dir, "o"),
      ),
      run(
        "knn",
        "--ref",
        join(dir, "ref.npy"),
        "--k",
        "0",
        "--out",
        join(dir, "o"),
      ),
      run(
        "knn",
        "--ref",
        join(dir, "missing.npy"),
        "--k",
        "2",
        "--out",
        join(dir, "o"),
      ),
      run(
        "radius",
        "--ref",
        join(dir, "ref.npy"),
        "--radius",
        "-1",
        "--out",
        join(dir, "o"),
      ),
    ]);
    const [nanRun, kRun, missingRun, radiusRun] = results;
    // Bad input is exit 2: rerunning as is cannot help.
    assert.equal(nanRun!.code, EXIT.usage);
    assert.match(nanRun!.stderr, /nan\.npy": row 4 column 2 is NaN/);
    assert.equal(kRun!.code, EXIT.usage);
    assert.match(kRun!.stderr, /Invalid --k "0"/);
    assert.equal(missingRun!.code, EXIT.usage);
    assert.match(missingRun!.stderr, /missing\.npy": it does not exist/);
    assert.equal(radiusRun!.code, EXIT.usage);
    assert.match(radiusRun!.stderr, /radius must be >= 0/);
    await assert.rejects(stat(store), /ENOENT/, "no store was created");

    const ok = await run(
      "knn",
      "--ref",
      join(dir, "ref.npy"),
      "--k",
      "4",
      "--out",
      join(dir, "o"),
      "--json",
    );
    assert.equal(ok.code, EXIT.ok, ok.stderr);
    const result = JSON.parse(ok.stdout) as {
      computedBlocks: number;
      files: Record<string, string>;
    };
    assert.equal(result.computedBlocks, 1);
    assert.equal(result.files["index.npy"], join(dir, "o", "index.npy"));
    const help = await runScript(CLI, ["knn", "--help"]);
    assert.equal(help.code, EXIT.ok);
    assert.match(help.stdout, /Examples:\n {2}cairn knn --ref/);
  },
);

/** Flip one bit in the middle of each chunk's file in an fs store (real bytes on disk). */
async function flipChunkFiles(root: string, hashes: Iterable<string>) {
  for (const hash of hashes) {
    const path = join(root, "chunks", hash.slice(0, 2), hash);
    await chmod(path, 0o644).catch(() => {});
    const bytes = new Uint8Array(await readFile(path));
    bytes[bytes.length >> 1]! ^= 0x04;
    await writeFile(path, bytes);
  }
}

/** Chunk hashes of the given steps of a run, by step key. */
async function stepChunks(
  store: Store,
  job: string,
  run: string,
  keys: (key: string) => boolean,
): Promise<Map<string, string[]>> {
  const state = await replayRun(store, job, run);
  const out = new Map<string, string[]>();
  for (const [key, step] of state.steps) {
    if (!keys(key)) continue;
    const refs = step.output.kind === "value"
      ? step.output.chunks
      : step.output.items.flat();
    out.set(key, refs.map((r) => r.hash));
  }
  return out;
}

test("knnJob() rerun after bit flips recomputes every corrupt block and leaves no corrupt chunk referenced", async () => {
  const ref = randomMatrix(200, 6, 11);
  const root = join(await tempDir(), "store");
  const store = await openStore(root);
  const out = join(await tempDir(), "out");
  const options: KnnJobOptions = { store, k: 4, blockRows: 40, out };
  const first = await knnJob(ref, options);
  assert.equal(first.computedBlocks, 5);
  const index = await readFile(join(out, "index.npy"));
  const distance = await readFile(join(out, "distance.npy"));
  const chunks = await stepChunks(store, first.job, first.run, () => true);
  assert.equal(chunks.size, 6, "prepare and 5 blocks");
  await flipChunkFiles(root, [...chunks.values()].flat());
  const before = await verifyStore(store, { readData: true });
  assert.ok(before.problems.length >= 6, "verify sees the flipped chunks");

  const healed = await knnJob(ref, options);
  assert.equal(healed.run, first.run);
  assert.equal(healed.computedBlocks, 5, "every corrupt block recomputed");
  assert.equal(healed.prepared, "computed");
  assert.equal(healed.alreadyCompleted, false);
  assert.deepEqual(await readFile(join(out, "index.npy")), index);
  assert.deepEqual(await readFile(join(out, "distance.npy")), distance);
  const after = await verifyStore(store, { readData: true });
  assert.deepEqual(after.problems, [], "no corrupt chunk is referenced");
  const state = await replayRun(store, first.job, first.run);
  assert.equal(state.status, "completed");

  const again = await knnJob(ref, options);
  assert.ok(again.alreadyCompleted && again.computedBlocks === 0);
});

test("knnJob() and radiusJob() heal flipped chunks of an unfinished run and of both radius phases", async () => {
  const ref = randomMatrix(160, 5, 12);
  const root = join(await tempDir(), "store");
  const store = await openStore(root);
  // An unfinished kNN run (stopped after 2 blocks), arrays kept in memory.
  const stop = new AbortController();
  let blocks = 0;
  const options: KnnJobOptions = { store, k: 3, blockRows: 40, job: "half" };
  await assert.rejects(
    knnJob(ref, {
      ...options,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === "step-done" && e.key.startsWith("block/")) {
          if (++blocks === 2) stop.abort();
        }
      },
    }),
    InterruptedError,
  );
  const runs = await store.listRuns("half");
  const done = await stepChunks(store, "half", runs[0]!, (k) => k !== "");
  assert.equal(done.size, 3, "prepare and 2 blocks");
  await flipChunkFiles(root, [...done.values()].flat());
  const resumed = await knnJob(ref, options);
  assert.equal(resumed.run, runs[0]);
  assert.equal(resumed.computedBlocks, 4, "2 corrupt and 2 new blocks");
  const p = prepareReference(ref, "euclidean");
  assert.deepEqual(
    resumed.index,
    searchKnn(p, ref, { k: 3, excludeSelf: true }).index,
  );
  assert.deepEqual((await verifyStore(store, { readData: true })).problems, []);

  // A completed radius run with flips in the count and the collect phase.
  const radius = await radiusJob(ref, {
    store,
    radius: 0.9,
    blockRows: 40,
    job: "ball",
  });
  const phases = await stepChunks(
    store,
    "ball",
    radius.run,
    (k) => k === "count/000-040" || k === "collect/120-160",
  );
  assert.equal(phases.size, 2);
  await flipChunkFiles(root, [...phases.values()].flat());
  const again = await radiusJob(ref, {
    store,
    radius: 0.9,
    blockRows: 40,
    job: "ball",
  });
  assert.equal(again.computedBlocks, 2);
  assert.deepEqual(again.index, radius.index);
  assert.deepEqual(again.offset, radius.offset);
  assert.deepEqual((await verifyStore(store, { readData: true })).problems, []);
});
