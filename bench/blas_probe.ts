/**
 * Probe for the native-BLAS decision (issue 14): is a system OpenBLAS,
 * called through Deno's or Bun's FFI, worth an opt-in kNN accelerator?
 *
 *   OPENBLAS_NUM_THREADS=1 npx deno run -A bench/blas_probe.ts
 *   OPENBLAS_NUM_THREADS=1 npx bun run bench/blas_probe.ts
 *
 * Options: --refs N (20000), --queries N (2000), --reps N (3), --lib PATH
 * (libopenblas.so.0), --no-faiss.
 *
 * Not part of the library. On the bench/knn.ts problem (2,000 queries ×
 * 20,000 references × 128 dimensions, float32, euclidean, k = 10, 1 thread)
 * it times, in one process and alternating repetitions:
 *
 * - cairn: `openKnnPool({ threads: 1 }).search` (the WebAssembly kernel with
 *   its fused candidate filter and exact float64 recheck);
 * - BLAS: `cblas_sgemm` of query blocks against the reference, then what
 *   cairn would need on top to stay exact: a rigorous float32 error bound per
 *   pair, the k-th smallest upper bound per query, the candidates whose lower
 *   bound reaches it, and the exact float64 recheck with cairn's own
 *   `exactKey` and tie-break, so its answer can be compared bit for bit;
 * - FAISS IndexFlatL2 at 1 thread (bench/knn_peers.py), when python3 has it.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  exactKey,
  keyToDistance,
  type PreparedReference,
  prepareQueries,
  prepareReference,
} from "../lib/knn/kernel.ts";
import { resolveKernel } from "../lib/knn/kernel_scan.ts";
import { openKnnPool } from "../lib/knn/kernel_threads.ts";
import { matrixFrom } from "../lib/knn/matrix.ts";
import { writeNpyFile } from "../lib/io/npy.ts";
import { gaussianRandom, seededRandom } from "../lib/random.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    refs: { type: "string", default: "20000" },
    queries: { type: "string", default: "2000" },
    reps: { type: "string", default: "3" },
    lib: { type: "string", default: "libopenblas.so.0" },
    "no-faiss": { type: "boolean", default: false },
  },
});
const N_REF = Number(flags.refs);
const N_QUERY = Number(flags.queries);
const REPS = Number(flags.reps);
const DIM = 128;
const K = 10;
/** Query rows per sgemm call: a 256 × 20,000 float32 tile is 20 MB. */
const GEMM_ROWS = 256;
const U32 = 2 ** -24;
const U64 = 2 ** -53;

type Sgemm = (
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
) => void;

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** C = A · Bᵀ (row-major; A is m × k, B is n × k) through cblas_sgemm. */
async function loadSgemm(lib: string): Promise<Sgemm> {
  // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
  if (isDeno) {
    const Deno = (globalThis as unknown as {
      Deno: {
        dlopen: (
          path: string,
          symbols: Record<string, { parameters: string[]; result: string }>,
        ) => { symbols: Record<string, (...args: unknown[]) => unknown> };
      };
    }).Deno;
    const { symbols } = Deno.dlopen(lib, {
      cblas_sgemm: {
        parameters: [
          "i32",
          "i32",
          "i32",
          "i32",
          "i32",
          "i32",
          "f32",
          "buffer",
          "i32",
          "buffer",
          "i32",
          "f32",
          "buffer",
          "i32",
        ],
        result: "void",
      },
      openblas_set_num_threads: { parameters: ["i32"], result: "void" },
    });
    symbols.openblas_set_num_threads!(1);
    return (m, n, k, a, b, c) =>
      void symbols.cblas_sgemm!(101, 111, 112, m, n, k, 1, a, k, b, k, 0, c, n);
  }
  const ffi = await import("bun:ffi" as string) as {
    dlopen: (
      path: string,
      symbols: Record<string, { args: string[]; returns: string }>,
    ) => { symbols: Record<string, (...args: unknown[]) => unknown> };
    ptr: (array: ArrayBufferView) => number;
  };
  const { symbols } = ffi.dlopen(lib, {
    cblas_sgemm: {
      args: [
        "i32",
        "i32",
        "i32",
        "i32",
        "i32",
        "i32",
        "f32",
        "ptr",
        "i32",
        "ptr",
        "i32",
        "f32",
        "ptr",
        "i32",
      ],
      returns: "void",
    },
    openblas_set_num_threads: { args: ["i32"], returns: "void" },
  });
  symbols.openblas_set_num_threads!(1);
  return (m, n, k, a, b, c) =>
    void symbols.cblas_sgemm!(
      101,
      111,
      112,
      m,
      n,
      k,
      1,
      ffi.ptr(a),
      k,
      ffi.ptr(b),
      k,
      0,
      ffi.ptr(c),
      n,
    );
}

interface Timing {
  gemm: number;
  gemmCpu: number;
  select: number;
  recheck: number;
  candidates: number;
}

/**
 * Exact kNN through sgemm: keys ‖x‖² + ‖y‖² − 2⟨x, y⟩ from float32 dot
 * products, each with a rigorous bound, then cairn's exact recheck.
 */
function blasSearch(
  sgemm: Sgemm,
  prepared: PreparedReference,
  query: Float32Array,
  ref: Float32Array,
  timing: Timing,
): { index: Int32Array; distance: Float32Array } {
  const nq = query.length / DIM;
  const nr = ref.length / DIM;
  const qNorm = new Float64Array(nq);
  const qSq = new Float64Array(nq);
  const rNorm = new Float64Array(nr);
  const rSq = new Float64Array(nr);
  const norms = (
    m: Float32Array,
    rows: number,
    sq: Float64Array,
    n: Float64Array,
  ) => {
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let c = 0; c < DIM; c++) s += m[i * DIM + c]! * m[i * DIM + c]!;
      sq[i] = s;
      n[i] = Math.sqrt(s);
    }
  };
  norms(query, nq, qSq, qNorm);
  norms(ref, nr, rSq, rNorm);
  // |fl32(⟨x, y⟩) − ⟨x, y⟩| <= γ_d ‖x‖‖y‖ for any summation order, with
  // γ_d = d·u/(1 − d·u); the float64 combination adds a few u64 of the sum.
  const gamma = (DIM * U32) / (1 - DIM * U32);
  const block = prepareQueries(prepared, matrixFrom(query, DIM), {
    start: 0,
    end: nq,
  });
  const index = new Int32Array(nq * K);
  const distance = new Float32Array(nq * K);
  const dots = new Float32Array(GEMM_ROWS * nr);
  const upper = new Float64Array(K);
  const lower = new Float64Array(nr);
  for (let q0 = 0; q0 < nq; q0 += GEMM_ROWS) {
    const rows = Math.min(GEMM_ROWS, nq - q0);
    let t = performance.now();
    const c = cpuSeconds();
    sgemm(
      rows,
      nr,
      DIM,
      query.subarray(q0 * DIM, (q0 + rows) * DIM),
      ref,
      dots,
    );
    timing.gemm += performance.now() - t;
    timing.gemmCpu += cpuSeconds() - c;
    for (let i = 0; i < rows; i++) {
      const q = q0 + i;
      const qs = qSq[q]!;
      const qn = qNorm[q]!;
      const o = i * nr;
      t = performance.now();
      // One pass: each pair's lower bound is kept, and the k smallest upper
      // bounds (a sorted array: k is small) give the candidate limit.
      upper.fill(Infinity);
      let top = Infinity;
      for (let r = 0; r < nr; r++) {
        const rs = rSq[r]!;
        const xy = qn * rNorm[r]!;
        const key = qs + rs - 2 * dots[o + r]!;
        const err = 2 * gamma * xy + 4 * U64 * (qs + rs + 2 * xy);
        lower[r] = key - err;
        const ub = key + err;
        if (ub < top) {
          let j = K - 1;
          while (j > 0 && upper[j - 1]! > ub) {
            upper[j] = upper[j - 1]!;
            j--;
          }
          upper[j] = ub;
          top = upper[K - 1]!;
        }
      }
      const cand: number[] = [];
      for (let r = 0; r < nr; r++) if (lower[r]! <= top) cand.push(r);
      const t2 = performance.now();
      timing.select += t2 - t;
      timing.candidates += cand.length;
      const exact = cand.map((r) => [exactKey(prepared, block, q, r), r]);
      exact.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
      for (let j = 0; j < K; j++) {
        index[q * K + j] = exact[j]![1]!;
        distance[q * K + j] = keyToDistance("euclidean", exact[j]![0]!);
      }
      timing.recheck += performance.now() - t2;
    }
  }
  return { index, distance };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const random = seededRandom(20261126);
const fill = (n: number) => {
  const a = new Float32Array(n * DIM);
  for (let i = 0; i < a.length; i++) a[i] = gaussianRandom(random);
  return a;
};
const ref = fill(N_REF);
const query = fill(N_QUERY);
const runtime = isDeno
  ? `deno ${
    (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno
      .version.deno
  }`
  : `bun ${(process.versions as Record<string, string>).bun}`;
console.log(
  `BLAS probe on ${runtime}: ${N_QUERY} queries × ${N_REF} refs × ${DIM} dims, k = ${K}, 1 thread, median of ${REPS} alternating reps`,
);

let sgemm: Sgemm | undefined;
let blasError = "";
try {
  sgemm = await loadSgemm(flags.lib);
} catch (error) {
  blasError = (error as Error).message;
  console.log(`OpenBLAS missing (${flags.lib}): ${blasError}`);
}

const prepared = prepareReference(matrixFrom(ref, DIM), "euclidean");
const queries = matrixFrom(query, DIM);
const pool = openKnnPool({ threads: 1 });
await pool.search(prepared, queries, { k: K, end: 64 });
const cairnWall: number[] = [];
const cairnCpu: number[] = [];
const blasWall: number[] = [];
const blasCpu: number[] = [];
const parts: Timing[] = [];
let identical: boolean | undefined;
for (let rep = 0; rep < REPS; rep++) {
  let t = performance.now();
  let c = cpuSeconds();
  const cairn = await pool.search(prepared, queries, { k: K });
  cairnWall.push((performance.now() - t) / 1000);
  cairnCpu.push(cpuSeconds() - c);
  if (sgemm === undefined) continue;
  const timing: Timing = {
    gemm: 0,
    gemmCpu: 0,
    select: 0,
    recheck: 0,
    candidates: 0,
  };
  t = performance.now();
  c = cpuSeconds();
  const blas = blasSearch(sgemm, prepared, query, ref, timing);
  blasWall.push((performance.now() - t) / 1000);
  blasCpu.push(cpuSeconds() - c);
  parts.push(timing);
  const same = blas.index.every((v, i) => v === cairn.index[i]) &&
    blas.distance.every((v, i) => Object.is(v, cairn.distance[i]));
  identical = (identical ?? true) && same;
}
pool.close();

const gflops = (s: number) => (2 * N_QUERY * N_REF * DIM / s / 1e9).toFixed(1);
console.log(
  `cairn ${resolveKernel("auto")}: ${median(cairnWall).toFixed(3)} s (${
    gflops(median(cairnWall))
  } GFLOP/s), CPU ${median(cairnCpu).toFixed(3)} s`,
);
if (sgemm !== undefined) {
  const gemm = median(parts.map((p) => p.gemm)) / 1000;
  const gemmCpu = median(parts.map((p) => p.gemmCpu));
  const select = median(parts.map((p) => p.select)) / 1000;
  const recheck = median(parts.map((p) => p.recheck)) / 1000;
  const cand = parts[0]!.candidates / N_QUERY;
  console.log(
    `OpenBLAS sgemm + bound + select + exact recheck: ${
      median(blasWall).toFixed(3)
    } s, CPU ${median(blasCpu).toFixed(3)} s; sgemm alone ${
      gemm.toFixed(3)
    } s (${gflops(gemm)} GFLOP/s), CPU ${
      gemmCpu.toFixed(3)
    } s; bounds and selection ${select.toFixed(3)} s, recheck ${
      recheck.toFixed(3)
    } s (${cand.toFixed(1)} candidates per query)`,
  );
  console.log(
    `results bit-identical to cairn's: ${identical}; cairn / BLAS end to end: ${
      (median(cairnWall) / median(blasWall)).toFixed(2)
    }× wall, ${
      (median(cairnCpu) / median(blasCpu)).toFixed(2)
    }× CPU; cairn / sgemm alone: ${
      (median(cairnWall) / gemm).toFixed(2)
    }× wall, ${(median(cairnCpu) / gemmCpu).toFixed(2)}× CPU`,
  );
}

if (!flags["no-faiss"]) {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const python = ["/usr/bin/python3", "python3"].find((p) =>
    spawnSync(p, ["-c", "import faiss"]).status === 0
  );
  if (python === undefined) {
    console.log(
      "FAISS: missing (python3 cannot import faiss; run scripts/install_peers.sh)",
    );
  } else {
    const dir = await mkdtemp(join(tmpdir(), "cairn-blas-probe-"));
    try {
      await writeNpyFile(join(dir, "ref.npy"), ref, [N_REF, DIM]);
      await writeNpyFile(join(dir, "q.npy"), query, [N_QUERY, DIM]);
      const run = spawnSync(python, [
        join(here, "knn_peers.py"),
        "--threads",
        "1",
        "--reps",
        String(REPS),
        "--peers",
        "faiss",
        join(dir, "ref.npy"),
        join(dir, "q.npy"),
        String(K),
        dir,
      ], {
        encoding: "utf8",
        env: {
          ...process.env,
          OMP_NUM_THREADS: "1",
          OPENBLAS_NUM_THREADS: "1",
        },
      });
      const line = run.stdout.split("\n").find((l) => l.includes('"faiss"'));
      const out = line ? JSON.parse(line) : undefined;
      if (out?.status !== "ok") {
        console.log(`FAISS: ${out?.status ?? run.stderr.slice(-300)}`);
      } else {
        const s = median(out.search_s as number[]);
        console.log(
          `FAISS IndexFlatL2: ${s.toFixed(3)} s (${gflops(s)} GFLOP/s), CPU ${
            median(out.search_cpu_s as number[]).toFixed(3)
          } s; cairn / FAISS ${(median(cairnWall) / s).toFixed(2)}×${
            blasWall.length
              ? `, BLAS path / FAISS ${(median(blasWall) / s).toFixed(2)}×`
              : ""
          }`,
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
if (!existsSync("/usr/lib/x86_64-linux-gnu/libopenblas.so.0") && blasError) {
  console.log("Install OpenBLAS with: apt-get install libopenblas0-pthread");
}
