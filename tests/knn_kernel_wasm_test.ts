import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  compileKernel,
  KERNEL_BYTES,
  KERNEL_SOURCE,
  renderKernelModule,
} from "../scripts/build_wasm.ts";
import {
  collectWithinRadius,
  type Matrix,
  matrixFrom,
  type Metric,
  METRICS,
  prepareReference,
  searchKnn,
} from "../lib/knn/mod.ts";
import { prepareQueries } from "../lib/knn/kernel.ts";
import {
  type KernelChoice,
  resolveKernel,
  scanCandidates,
} from "../lib/knn/kernel_scan.ts";
import { wasmVariant } from "../lib/knn/kernel_wasm.ts";
import { gaussianRandom, seededRandom } from "../lib/random.ts";
import { runScript } from "./child_process.ts";

const RESOLVE_CHILD = new URL(
  "./fixtures/resolve_kernel_child.ts",
  import.meta.url,
);

const KERNELS: KernelChoice[] = ["ts", "wasm", "wasm-simd"];

function gaussian(rows: number, cols: number, seed: number, scale = 1, at = 0) {
  const rnd = seededRandom(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    data[i] = at + scale * gaussianRandom(rnd);
  }
  return matrixFrom(data, cols);
}

/** Exact float64 neighbours of one query row, ties to the lower index. */
function bruteRow(
  metric: Metric,
  ref: Matrix,
  x: Matrix,
  q: number,
  k: number,
) {
  const d = ref.cols;
  const keys: { r: number; key: number }[] = [];
  for (let r = 0; r < ref.rows; r++) {
    let ss = 0, dot = 0, nx = 0, ny = 0;
    for (let c = 0; c < d; c++) {
      const a = x.data[q * d + c]!;
      const b = ref.data[r * d + c]!;
      ss += (a - b) * (a - b);
      dot += a * b;
      nx += a * a;
      ny += b * b;
    }
    const key = metric === "ip"
      ? -dot
      : metric === "cosine"
      ? Math.min(2, Math.max(0, 1 - dot / Math.sqrt(nx * ny)))
      : ss;
    keys.push({ r, key });
  }
  keys.sort((a, b) => a.key - b.key || a.r - b.r);
  return keys.slice(0, k).map((e) => e.r);
}

test("compileKernel() rebuilds lib/knn/wasm/kernel_bytes.ts byte for byte", async () => {
  const source = await readFile(KERNEL_SOURCE, "utf8");
  const binaries = await compileKernel(source);
  assert.ok(WebAssembly.validate(binaries.simd as Uint8Array<ArrayBuffer>));
  const generated = await readFile(KERNEL_BYTES, "utf8");
  assert.equal(
    generated,
    renderKernelModule(binaries),
    "lib/knn/wasm/kernel_bytes.ts is stale: run deno run -A scripts/build_wasm.ts",
  );
  // The plain build really has no relaxed instruction: 0xfd 0x85 0x02 is
  // f32x4.relaxed_madd's opcode.
  const has = (b: Uint8Array) =>
    b.some((v, i) => v === 0xfd && b[i + 1] === 0x85 && b[i + 2] === 0x02);
  assert.equal(has(binaries.simd), false);
  assert.equal(has(binaries.relaxed), true);
});

test("wasmVariant() finds the WebAssembly kernel on Deno and Bun", () => {
  assert.notEqual(wasmVariant(), undefined);
  assert.equal(resolveKernel("ts"), "ts");
  assert.equal(resolveKernel("wasm-simd"), "wasm-simd");
  assert.match(resolveKernel("wasm"), /^wasm-(relaxed|simd)$/);
  assert.throws(
    () => resolveKernel("gpu" as KernelChoice),
    /kernel "gpu" is not supported/,
  );
});

test("scanCandidates() reports the kernel that ran", () => {
  const ref = gaussian(50, 5, 1);
  const prepared = prepareReference(ref, "euclidean");
  const block = prepareQueries(prepared, ref, { start: 0, end: 50 });
  const seen = new Set<number>();
  const scan = {
    startQueries: () => {},
    candidates: (b: { length: number; ref: Int32Array }) => {
      for (let e = 0; e < b.length; e++) seen.add(b.ref[e]!);
    },
    endQueries: () => {},
  };
  assert.equal(scanCandidates(prepared, block, scan, { kernel: "ts" }), "ts");
  assert.equal(
    scanCandidates(prepared, block, scan, { kernel: "wasm-simd" }),
    "wasm-simd",
  );
  assert.equal(seen.size, 50);
});

test("searchKnn() gives identical results with every kernel at 128 dimensions", () => {
  // Clustered data, n not a multiple of 8, queries not a multiple of 4.
  const ref = gaussian(2_003, 128, 11);
  const queries = gaussian(67, 128, 12);
  for (const metric of METRICS) {
    const prepared = prepareReference(ref, metric);
    const results = KERNELS.map((kernel) =>
      searchKnn(prepared, queries, { k: 7, kernel })
    );
    for (const r of results.slice(1)) assert.deepEqual(r, results[0]);
    for (const q of [0, 33, 66]) {
      assert.deepEqual(
        Array.from(results[0]!.index.subarray(q * 7, q * 7 + 7)),
        bruteRow(metric, ref, queries, q, 7),
        `${metric} row ${q}`,
      );
    }
  }
});

test("searchKnn() with the WebAssembly kernel finds each far point itself first", () => {
  const points = gaussian(1_500, 37, 5, 0.1, 1000);
  for (const kernel of ["wasm", "wasm-simd"] as const) {
    const result = searchKnn(prepareReference(points, "euclidean"), points, {
      k: 3,
      kernel,
    });
    for (let i = 0; i < points.rows; i++) {
      assert.equal(result.index[3 * i], i, `${kernel}: row ${i}`);
      assert.equal(result.distance[3 * i], 0);
    }
  }
});

test("searchKnn() agrees across kernels on tiny, huge and subnormal values", () => {
  // Values that float32 cannot hold unscaled: the kernel scales by a power
  // of two, and subnormals get an absolute error bound.
  for (const scale of [1e-30, 1e-12, 1e30]) {
    const rnd = seededRandom(3);
    const data = new Float64Array(300 * 6);
    for (let i = 0; i < data.length; i++) {
      // Every tenth row is 2^-140 smaller still, under float32's normal
      // range even after scaling.
      const row = Math.floor(i / 6);
      data[i] = scale * (row % 10 === 0 ? 2 ** -140 : 1) *
        Math.round(gaussianRandom(rnd) * 4);
    }
    const m = matrixFrom(data, 6);
    for (const metric of METRICS) {
      const prepared = prepareReference(m, metric, { zeroVector: "one" });
      const [a, b, c] = KERNELS.map((kernel) =>
        searchKnn(prepared, m, { k: 9, kernel })
      );
      assert.deepEqual(b, a, `${metric} at ${scale}: wasm`);
      assert.deepEqual(c, a, `${metric} at ${scale}: wasm-simd`);
      const radius = metric === "ip" ? 0 : a!.distance[4]!;
      const [ra, rb] = (["ts", "wasm"] as const).map((kernel) =>
        collectWithinRadius(prepared, m, { radius, kernel })
      );
      assert.deepEqual(rb, ra, `${metric} radius at ${scale}`);
    }
  }
});

test("resolveKernel() follows CAIRN_KNN_KERNEL only for auto", async () => {
  const resolve = async (env: string, ...choices: string[]) =>
    (await runScript(RESOLVE_CHILD, choices, { CAIRN_KNN_KERNEL: env })).stdout
      .trim().split("\n");
  assert.deepEqual(await resolve("ts", "auto", "wasm-simd"), [
    "ts",
    "wasm-simd",
  ]);
  assert.deepEqual(await resolve("wasm-simd", "auto"), ["wasm-simd"]);
  const [unknown, explicit] = await resolve("nonsense", "auto", "ts");
  assert.match(unknown!, /^TypeError: .*CAIRN_KNN_KERNEL "nonsense"/);
  assert.equal(explicit, "ts");
});
