import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import { decodeValue, encodeValue } from "../store/cbor.ts";
import {
  collectWithinRadius,
  concatKnnBlocks,
  concatRadiusBlocks,
  countWithinRadius,
  type KnnBlock,
  knnGraph,
  type Matrix,
  matrixFrom,
  type Metric,
  METRICS,
  planKnnBlocks,
  prepareReference,
  recallAtK,
  rerankExact,
  searchKnn,
  snnGraph,
  validatePrepared,
} from "../lib/knn/mod.ts";
import type { KernelChoice } from "../lib/knn/kernel_scan.ts";
import { gaussianRandom, seededRandom } from "../lib/random.ts";
import { propertyRuns } from "./test_seed.ts";

// ---------------------------------------------------------------------------
// A plain float64 brute-force reference, written independently of the kernel.
// ---------------------------------------------------------------------------

/** Exact key (smaller is nearer), straight from the definitions. */
function bruteKey(
  metric: Metric,
  x: ArrayLike<number>,
  xo: number,
  y: ArrayLike<number>,
  yo: number,
  d: number,
): number {
  if (metric === "euclidean" || metric === "sqeuclidean") {
    let s = 0;
    for (let c = 0; c < d; c++) {
      const t = x[xo + c]! - y[yo + c]!;
      s += t * t;
    }
    return s;
  }
  let dot = 0;
  let nx = 0;
  let ny = 0;
  for (let c = 0; c < d; c++) {
    dot += x[xo + c]! * y[yo + c]!;
    nx += x[xo + c]! * x[xo + c]!;
    ny += y[yo + c]! * y[yo + c]!;
  }
  if (metric === "ip") return -dot;
  if (nx === 0 || ny === 0) return 1; // the zeroVector: "one" convention
  return Math.min(2, Math.max(0, 1 - dot / Math.sqrt(nx * ny)));
}

function bruteDistance(metric: Metric, key: number): number {
  return metric === "euclidean" ? Math.sqrt(key) : metric === "ip" ? -key : key;
}

/** All (key, index) pairs of one query, sorted nearest first, ties by index. */
function bruteRow(
  metric: Metric,
  ref: Matrix,
  queries: Matrix,
  q: number,
  excludeSelf: boolean,
): { r: number; key: number }[] {
  const out: { r: number; key: number }[] = [];
  for (let r = 0; r < ref.rows; r++) {
    if (excludeSelf && r === q) continue;
    out.push({
      r,
      key: bruteKey(
        metric,
        queries.data,
        q * queries.cols,
        ref.data,
        r * ref.cols,
        ref.cols,
      ),
    });
  }
  out.sort((a, b) => a.key - b.key || a.r - b.r);
  return out;
}

function bruteKnn(
  metric: Metric,
  ref: Matrix,
  queries: Matrix,
  k: number,
  excludeSelf: boolean,
): { index: Int32Array; distance: Float32Array } {
  const index = new Int32Array(queries.rows * k);
  const distance = new Float32Array(queries.rows * k);
  for (let q = 0; q < queries.rows; q++) {
    const row = bruteRow(metric, ref, queries, q, excludeSelf);
    for (let j = 0; j < k; j++) {
      index[q * k + j] = row[j]!.r;
      distance[q * k + j] = bruteDistance(metric, row[j]!.key);
    }
  }
  return { index, distance };
}

function bruteRadius(
  metric: Metric,
  ref: Matrix,
  queries: Matrix,
  radius: number,
  excludeSelf: boolean,
): { counts: number[]; index: number[]; distance: number[] } {
  const counts: number[] = [];
  const index: number[] = [];
  const distance: number[] = [];
  for (let q = 0; q < queries.rows; q++) {
    let count = 0;
    for (const { r, key } of bruteRow(metric, ref, queries, q, excludeSelf)) {
      const dist = bruteDistance(metric, key);
      const hit = metric === "ip" ? dist >= radius : dist <= radius;
      if (!hit) continue;
      count++;
      index.push(r);
      distance.push(Math.fround(dist));
    }
    counts.push(count);
  }
  return { counts, index, distance };
}

// ---------------------------------------------------------------------------
// Data generation.
// ---------------------------------------------------------------------------

type Mode = "int" | "float" | "dup" | "offset";

function makeMatrix(
  rows: number,
  cols: number,
  seed: number,
  mode: Mode,
  f64: boolean,
): Matrix {
  const rnd = seededRandom(seed);
  const data = f64
    ? new Float64Array(rows * cols)
    : new Float32Array(rows * cols);
  const pool = Math.max(1, Math.floor(rows / 3));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let v: number;
      if (mode === "int") v = Math.floor(rnd() * 5) - 2;
      else if (mode === "float") v = rnd() * 2 - 1;
      else if (mode === "offset") v = 1000 + 0.1 * (rnd() - 0.5);
      else {
        // Rows copied from a small pool of integer rows: many duplicates.
        const src = Math.floor(seededRandom(seed + r)() * pool);
        v = Math.floor(seededRandom(seed * 31 + src * 7 + c)() * 3) - 1;
      }
      data[r * cols + c] = v;
    }
  }
  return matrixFrom(data, cols);
}

/** Splits 0..n into consecutive ranges at the given cut points. */
function ranges(n: number, cuts: number[]): [number, number][] {
  const points = [
    ...new Set([0, ...cuts.map((c) => Math.floor(c * (n + 1))), n]),
  ]
    .filter((p) => p >= 0 && p <= n)
    .sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    out.push([points[i]!, points[i + 1]!]);
  }
  if (out.length === 0) out.push([0, n]);
  return out;
}

const caseArb = fc.record({
  n: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 40 }) },
    { weight: 1, arbitrary: fc.integer({ min: 250, max: 600 }) },
  ),
  nq: fc.integer({ min: 1, max: 70 }),
  d: fc.integer({ min: 1, max: 13 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  mode: fc.constantFrom<Mode>("int", "float", "dup", "offset"),
  f64: fc.boolean(),
  metric: fc.constantFrom<Metric>(...METRICS),
  self: fc.boolean(),
  excludeSelf: fc.boolean(),
  kMax: fc.boolean(),
  kPick: fc.double({ min: 0, max: 1, noNaN: true }),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), {
    maxLength: 4,
  }),
  // The whole search and the blocked one use independently drawn kernels,
  // so every kernel meets the brute force and the others.
  kernel: fc.constantFrom<KernelChoice>("ts", "wasm", "wasm-simd"),
  blockKernel: fc.constantFrom<KernelChoice>("ts", "wasm", "wasm-simd"),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function setUp(c: Case): {
  ref: Matrix;
  queries: Matrix;
  excludeSelf: boolean;
} {
  const ref = makeMatrix(c.n, c.d, c.seed, c.mode, c.f64);
  const self = c.self || c.excludeSelf;
  const queries = self
    ? ref
    : makeMatrix(c.nq, c.d, c.seed + 1, c.mode, !c.f64);
  return { ref, queries, excludeSelf: c.excludeSelf && c.n >= 2 };
}

// ---------------------------------------------------------------------------
// searchKnn
// ---------------------------------------------------------------------------

test("searchKnn() equals float64 brute force, blocked or not, for every metric", () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const { ref, queries, excludeSelf } = setUp(c);
      const usable = ref.rows - (excludeSelf ? 1 : 0);
      const k = c.kMax
        ? usable
        : 1 + Math.min(usable - 1, Math.floor(c.kPick * usable));
      const prepared = prepareReference(ref, c.metric, { zeroVector: "one" });
      const whole = searchKnn(prepared, queries, {
        k,
        excludeSelf,
        kernel: c.kernel,
      });
      const expected = bruteKnn(c.metric, ref, queries, k, excludeSelf);
      assert.deepEqual(whole.index, expected.index);
      assert.deepEqual(whole.distance, expected.distance);
      const blocks = ranges(queries.rows, c.cuts).map(([start, end]) =>
        searchKnn(prepared, queries, {
          k,
          start,
          end,
          excludeSelf,
          kernel: c.blockKernel,
        })
      );
      assert.deepEqual(concatKnnBlocks(blocks), whole);
    }),
    propertyRuns(250),
  );
});

test("searchKnn() finds each point itself first far from the origin", () => {
  // 2,000 × 64 points of spread 0.1 around 1000: the norms trick without
  // centring and reranking loses the self match for many of them.
  const rnd = seededRandom(7);
  const rows = 2000;
  const cols = 64;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    data[i] = 1000 + 0.1 * gaussianRandom(rnd);
  }
  const points = matrixFrom(data, cols);
  for (const metric of ["euclidean", "sqeuclidean"] as const) {
    const result = searchKnn(prepareReference(points, metric), points, {
      k: 2,
    });
    for (let i = 0; i < rows; i++) {
      assert.equal(result.index[2 * i], i, `${metric}: row ${i}`);
      assert.equal(result.distance[2 * i], 0);
    }
  }
  // Spot-check a few rows against brute force.
  const sample = matrixFrom(data.slice(0, 5 * cols), cols);
  const got = searchKnn(prepareReference(points, "euclidean"), sample, {
    k: 5,
  });
  const want = bruteKnn("euclidean", points, sample, 5, false);
  assert.deepEqual(got.index, want.index);
  assert.deepEqual(got.distance, want.distance);
});

test("searchKnn() breaks ties by the lower reference index", () => {
  const points = matrixFrom(new Float64Array([0, 2, -2, 2, -2, 0]), 1);
  const result = searchKnn(prepareReference(points, "euclidean"), points, {
    k: 5,
    start: 0,
    end: 1,
    excludeSelf: true,
  });
  assert.deepEqual(Array.from(result.index), [5, 1, 2, 3, 4]);
  const ip = searchKnn(
    prepareReference(matrixFrom(new Float32Array([1, 3, 3, 2]), 1), "ip"),
    matrixFrom(new Float32Array([2]), 1),
    { k: 4 },
  );
  assert.deepEqual(Array.from(ip.index), [1, 2, 3, 0]);
  assert.deepEqual(Array.from(ip.distance), [6, 6, 4, 2]);
});

test("searchKnn() gives cosine distance 1 to zero vectors with zeroVector one", () => {
  const ref = matrixFrom(new Float64Array([0, 0, 1, 0, 0, 1]), 2);
  const prepared = prepareReference(ref, "cosine", { zeroVector: "one" });
  const result = searchKnn(prepared, ref, { k: 3 });
  assert.deepEqual(Array.from(result.index), [0, 1, 2, 1, 0, 2, 2, 0, 1]);
  assert.deepEqual(Array.from(result.distance), [1, 1, 1, 0, 1, 1, 0, 1, 1]);
});

test("searchKnn() survives a CBOR round trip of the prepared reference", () => {
  const ref = makeMatrix(30, 5, 3, "float", false);
  for (const metric of METRICS) {
    const prepared = prepareReference(ref, metric);
    const decoded = validatePrepared(decodeValue(encodeValue(prepared)));
    assert.ok(decoded.reference instanceof Float32Array);
    assert.ok(decoded.sqNorms instanceof Float64Array);
    assert.deepEqual(
      searchKnn(decoded, ref, { k: 4, excludeSelf: true }),
      searchKnn(prepared, ref, { k: 4, excludeSelf: true }),
    );
  }
});

test("searchKnn() rejects bad input with clear errors", () => {
  const ref = matrixFrom(new Float64Array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]), 2);
  const prepared = prepareReference(ref, "euclidean");
  assert.throws(() => searchKnn(prepared, ref, { k: 8 }), {
    name: "RangeError",
    message:
      "Cannot search: expected k <= usable reference rows, but reference rows = 5, k = 8",
  });
  assert.throws(
    () => searchKnn(prepared, ref, { k: 5, excludeSelf: true }),
    {
      name: "RangeError",
      message:
        "Cannot search: expected k <= usable reference rows, but usable reference rows = 4 (5 rows, excluding self), k = 5",
    },
  );
  assert.throws(() => searchKnn(prepared, ref, { k: 0 }), /k >= 1, but k = 0/);
  assert.throws(() => searchKnn(prepared, ref, { k: 1.5 }), RangeError);
  assert.throws(
    () => searchKnn(prepared, matrixFrom(new Float64Array(3), 3), { k: 1 }),
    {
      name: "TypeError",
      message: "Cannot search: query has 3 columns, but the reference has 2",
    },
  );
  assert.throws(
    () => searchKnn(prepared, ref, { k: 1, start: 3, end: 9 }),
    RangeError,
  );
  assert.throws(
    () =>
      searchKnn(prepared, matrixFrom(new Float64Array(4), 2), {
        k: 1,
        excludeSelf: true,
      }),
    /Cannot exclude self: the query matrix has 2 rows, but the reference has 5/,
  );
  const bad = matrixFrom(new Float64Array([0, 0, 1, Infinity, 2, 2]), 2);
  assert.throws(() => searchKnn(prepared, bad, { k: 1 }), {
    name: "RangeError",
    message:
      "Cannot use query matrix: row 1 column 1 is Infinity; remove or impute non-finite values",
  });
  // Outside the block, the bad row is not touched.
  searchKnn(prepared, bad, { k: 1, start: 2, end: 3 });
});

test("prepareReference() rejects non-finite values and cosine zero vectors", () => {
  const data = new Float32Array(20 * 4).fill(1);
  data[17 * 4 + 3] = NaN;
  assert.throws(() => prepareReference(matrixFrom(data, 4), "euclidean"), {
    name: "RangeError",
    message:
      "Cannot use reference matrix: row 17 column 3 is NaN; remove or impute non-finite values",
  });
  const zero = matrixFrom(new Float64Array([1, 0, 0, 0, 0, 1]), 2);
  assert.throws(() => prepareReference(zero, "cosine"), {
    name: "RangeError",
    message:
      'Cannot prepare reference matrix for cosine: row 1 is a zero vector; remove it or pass zeroVector: "one" to give it distance 1 to everything',
  });
  prepareReference(zero, "euclidean");
  const ok = prepareReference(
    matrixFrom(new Float64Array([1, 1]), 2),
    "cosine",
  );
  assert.throws(
    () => searchKnn(ok, zero, { k: 1 }),
    /Cannot search with cosine: query row 1 is a zero vector/,
  );
  assert.throws(
    () => prepareReference(zero, "manhattan" as Metric),
    /Cannot use metric "manhattan"/,
  );
  assert.throws(() => matrixFrom(new Float32Array(0), 3), /0 rows/);
  assert.throws(
    () => validatePrepared({ format: "cairn.knn.prepared", version: 2 }),
    TypeError,
  );
});

// ---------------------------------------------------------------------------
// Radius search
// ---------------------------------------------------------------------------

test("countWithinRadius() and collectWithinRadius() equal brute force", () => {
  fc.assert(
    fc.property(
      caseArb,
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.boolean(),
      (c, pick, onBoundary) => {
        const { ref, queries, excludeSelf } = setUp(c);
        const prepared = prepareReference(ref, c.metric, {
          zeroVector: "one",
        });
        // Take the radius from a real distance, so the boundary is exercised.
        const q = Math.min(queries.rows - 1, Math.floor(pick * queries.rows));
        const row = bruteRow(c.metric, ref, queries, q, false);
        const at =
          row[Math.min(row.length - 1, Math.floor(pick * row.length))]!;
        let radius = bruteDistance(c.metric, at.key);
        if (!onBoundary) radius = radius * (1 + pick / 10) + pick / 100;
        if (c.metric !== "ip") radius = Math.max(0, radius);
        const expected = bruteRadius(
          c.metric,
          ref,
          queries,
          radius,
          excludeSelf,
        );
        const counts = countWithinRadius(prepared, queries, {
          radius,
          excludeSelf,
          kernel: c.kernel,
        });
        assert.deepEqual(Array.from(counts), expected.counts);
        const blocks = ranges(queries.rows, c.cuts).map(([start, end]) =>
          collectWithinRadius(prepared, queries, {
            radius,
            start,
            end,
            excludeSelf,
            kernel: c.blockKernel,
          })
        );
        const csr = concatRadiusBlocks(blocks);
        assert.deepEqual(Array.from(csr.index), expected.index);
        assert.deepEqual(Array.from(csr.distance), expected.distance);
        let total = 0n;
        for (let i = 0; i < queries.rows; i++) {
          assert.equal(csr.offset[i], total);
          total += BigInt(expected.counts[i]!);
        }
        assert.equal(csr.offset[queries.rows], total);
        for (const b of blocks) {
          assert.equal(
            b.index.length,
            b.counts.reduce((s, x) => s + x, 0),
          );
        }
      },
    ),
    propertyRuns(150),
  );
});

test("countWithinRadius() rejects a negative radius except for ip", () => {
  const m = matrixFrom(new Float64Array([0, 1, -2]), 1);
  assert.throws(
    () =>
      countWithinRadius(prepareReference(m, "euclidean"), m, { radius: -1 }),
    {
      name: "RangeError",
      message:
        'Cannot search within radius: radius must be >= 0 for metric "euclidean", but radius = -1',
    },
  );
  assert.throws(
    () =>
      collectWithinRadius(prepareReference(m, "sqeuclidean"), m, {
        radius: NaN,
      }),
    /radius must be a finite number/,
  );
  const ip = countWithinRadius(prepareReference(m, "ip"), m, { radius: -1 });
  assert.deepEqual(Array.from(ip), [3, 2, 2]);
});

// ---------------------------------------------------------------------------
// Graphs
// ---------------------------------------------------------------------------

function edgeKey(a: number, b: number): string {
  return `${Math.min(a, b)}-${Math.max(a, b)}`;
}

test("knnGraph() symmetrisation keeps its invariants", () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const n = Math.max(2, Math.min(c.n, 80));
      const ref = makeMatrix(n, c.d, c.seed, c.mode, c.f64);
      const excludeSelf = c.excludeSelf;
      const usable = ref.rows - (excludeSelf ? 1 : 0);
      const k = 1 + Math.min(usable - 1, Math.floor(c.kPick * usable));
      const knn = searchKnn(
        prepareReference(ref, c.metric, { zeroVector: "one" }),
        ref,
        { k, excludeSelf },
      );
      const none = knnGraph(knn);
      assert.equal(none.from.length, ref.rows * k);
      for (let e = 0; e < none.from.length; e++) {
        assert.equal(none.from[e], Math.floor(e / k));
      }
      assert.deepEqual(none.to, knn.index);
      const directed = new Set<string>();
      for (let e = 0; e < none.from.length; e++) {
        if (none.from[e] !== none.to[e]) {
          directed.add(`${none.from[e]}>${none.to[e]}`);
        }
      }
      const union = knnGraph(knn, { symmetrize: "union" });
      const mutual = knnGraph(knn, { symmetrize: "mutual" });
      const wantUnion = new Set<string>();
      const wantMutual = new Set<string>();
      for (const d of directed) {
        const [a, b] = d.split(">").map(Number) as [number, number];
        wantUnion.add(edgeKey(a, b));
        if (directed.has(`${b}>${a}`)) wantMutual.add(edgeKey(a, b));
      }
      for (
        const [g, want] of [[union, wantUnion], [mutual, wantMutual]] as const
      ) {
        assert.equal(g.from.length, want.size);
        for (let e = 0; e < g.from.length; e++) {
          assert.ok(g.from[e]! < g.to[e]!);
          assert.ok(want.has(edgeKey(g.from[e]!, g.to[e]!)));
          if (e > 0) {
            assert.ok(
              g.from[e - 1]! < g.from[e]! ||
                (g.from[e - 1] === g.from[e] && g.to[e - 1]! < g.to[e]!),
            );
          }
        }
      }
      assert.ok(mutual.from.length <= union.from.length);
      // The SNN graph against its definition.
      const snn = snnGraph(knn);
      const hoods: Set<number>[] = [];
      for (let i = 0; i < ref.rows; i++) {
        hoods.push(
          new Set([i, ...Array.from(knn.index.subarray(i * k, (i + 1) * k))]),
        );
      }
      let expected = 0;
      let e = 0;
      for (let i = 0; i < ref.rows; i++) {
        const hi = hoods[i]!;
        for (let j = i + 1; j < ref.rows; j++) {
          let w = 0;
          for (const m of hoods[j]!) if (hi.has(m)) w++;
          if (w === 0) continue;
          expected++;
          assert.deepEqual([snn.from[e], snn.to[e], snn.weight[e]], [i, j, w]);
          e++;
        }
      }
      assert.equal(snn.from.length, expected);
    }),
    propertyRuns(100),
  );
});

// ---------------------------------------------------------------------------
// Planning and evaluation
// ---------------------------------------------------------------------------

test("planKnnBlocks() fits the budget and covers every row", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.integer({ min: 1, max: 2048 }),
      fc.integer({ min: 1, max: 100 }),
      fc.integer({ min: 1, max: 2 ** 40 }),
      (nRef, nQuery, dim, kRaw, budget) => {
        const k = Math.min(kRaw, nRef);
        const perRow = 8 * nRef + 8 * dim + 24 + 8 * k;
        const opts = { nRef, nQuery, dim, k, memoryBudgetBytes: budget };
        if (perRow > budget) {
          assert.throws(
            () => planKnnBlocks(opts),
            /Cannot plan kNN: one query row/,
          );
          return;
        }
        const plan = planKnnBlocks(opts);
        assert.ok(plan.blockRows >= 1 && plan.blockRows <= nQuery);
        assert.ok(plan.peakBytesEstimate <= budget);
        assert.equal(plan.blocks, Math.ceil(nQuery / plan.blockRows));
        assert.ok((plan.blocks - 1) * plan.blockRows < nQuery);
        assert.equal(plan.threads, 1);
        assert.equal(plan.chunkCount, 2 * plan.blocks);
      },
    ),
    propertyRuns(300),
  );
  assert.throws(
    () =>
      planKnnBlocks({
        nRef: 5,
        nQuery: 1,
        dim: 2,
        k: 6,
        memoryBudgetBytes: 1e9,
      }),
    /reference rows = 5, k = 6/,
  );
});

test("rerankExact() recovers the exact result from noisy candidates", () => {
  const ref = makeMatrix(300, 7, 11, "int", false);
  const queries = makeMatrix(40, 7, 12, "float", true);
  for (const metric of METRICS) {
    const prepared = prepareReference(ref, metric, { zeroVector: "one" });
    const exact = searchKnn(prepared, queries, { k: 5 });
    const wide = searchKnn(prepared, queries, { k: 12 });
    // Shuffle each row's 12 candidates and add junk: -1 and duplicates.
    const rnd = seededRandom(5);
    const width = 15;
    const candidates = new Int32Array(40 * width);
    for (let i = 0; i < 40; i++) {
      const row = Array.from(wide.index.subarray(i * 12, (i + 1) * 12));
      for (let j = row.length - 1; j > 0; j--) {
        const t = Math.floor(rnd() * (j + 1));
        [row[j], row[t]] = [row[t]!, row[j]!];
      }
      row.push(-1, row[0]!, row[1]!);
      candidates.set(row, i * width);
    }
    const blocks: KnnBlock[] = [];
    for (const [start, end] of [[0, 13], [13, 40]] as const) {
      blocks.push(
        rerankExact(prepared, queries, {
          candidates: candidates.subarray(start * width, end * width),
          k: 5,
          start,
          end,
        }),
      );
    }
    assert.deepEqual(concatKnnBlocks(blocks), exact);
    assert.equal(recallAtK(exact, wide, { kCandidates: 12 }), 1);
    assert.equal(recallAtK(wide, exact, { kCandidates: 5 }), 5 / 12);
  }
  const prepared = prepareReference(ref, "euclidean");
  const padded = rerankExact(prepared, queries, {
    candidates: new Int32Array(40).fill(-1).fill(3, 0, 1),
    k: 2,
  });
  assert.deepEqual(Array.from(padded.index.subarray(0, 4)), [3, -1, -1, -1]);
  assert.equal(padded.distance[1], Infinity);
  assert.throws(
    () =>
      rerankExact(prepared, queries, {
        candidates: new Int32Array(40).fill(300),
      }),
    /candidate 300 of query row 0 is out of range/,
  );
});
