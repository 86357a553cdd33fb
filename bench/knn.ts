/**
 * Benchmark: cairn's exact kNN against FAISS IndexFlatL2 and scikit-learn.
 *
 * Run with `deno run -A bench/knn.ts` or `bun run bench/knn.ts`; add
 * `--large` for a 100,000-row reference. Seeded data goes to bench/data/
 * (gitignored) as .npy; bench/knn_peers.py times the peers on the same files.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  concatKnnBlocks,
  type KnnBlock,
  parseNpyHeader,
  planKnnBlocks,
  prepareReference,
  readMatrixFile,
  recallAtK,
  searchKnn,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import { gaussianRandom, seededRandom } from "../lib/random.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    large: { type: "boolean", default: false },
    k: { type: "string", default: "10" },
  },
});

const K = Number(flags.k);
const N_REF = flags.large ? 100_000 : 20_000;
const N_QUERY = 2_000;
const DIM = 128;
const FAR_ROWS = 5_000;
const BUDGET = 256 * 1024 * 1024;
const here = fileURLToPath(new URL(".", import.meta.url));
const dataDir = join(here, "data");

function log(message: string): void {
  process.stderr.write(message + "\n");
}

/** Points around 64 random cluster centres, float32. */
function clustered(rows: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const centres = new Float64Array(64 * DIM).map(() => gaussianRandom(rnd));
  const out = new Float32Array(rows * DIM);
  for (let r = 0; r < rows; r++) {
    const c = Math.floor(rnd() * 64);
    for (let j = 0; j < DIM; j++) {
      out[r * DIM + j] = centres[c * DIM + j]! + 0.35 * gaussianRandom(rnd);
    }
  }
  return out;
}

/** Points of spread 0.1 around 1000 in every coordinate, float32. */
function farFromOrigin(rows: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  return new Float32Array(rows * DIM).map(() =>
    1000 + 0.1 * gaussianRandom(rnd)
  );
}

/** Reads an int32 or int64 2-D .npy written by the peers. */
async function readIndexNpy(path: string): Promise<Int32Array> {
  const bytes = new Uint8Array(await readFile(path));
  const header = parseNpyHeader(bytes);
  const count = header.shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset + header.dataOffset);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = header.descr === "<i8"
      ? Number(view.getBigInt64(8 * i, true))
      : view.getInt32(4 * i, true);
  }
  return out;
}

/** Fraction of rows whose neighbour sets are identical. */
function setsAgree(a: Int32Array, b: Int32Array, k: number): number {
  const rows = a.length / k;
  let same = 0;
  for (let i = 0; i < rows; i++) {
    const x = Array.from(a.subarray(i * k, (i + 1) * k)).sort((p, q) => p - q);
    const y = Array.from(b.subarray(i * k, (i + 1) * k)).sort((p, q) => p - q);
    if (x.every((v, j) => v === y[j])) same++;
  }
  return same / rows;
}

/** Picks the python that can import numpy and the most peers. */
function findPython(): string | undefined {
  const candidates = [process.env.PYTHON, "python3", "/usr/bin/python3"]
    .filter((p): p is string => p !== undefined && p !== "");
  let best: string | undefined;
  let bestScore = -1;
  const probe = "import importlib.util as u, numpy; " +
    "print(sum(u.find_spec(m) is not None for m in ('faiss', 'sklearn')))";
  for (const python of candidates) {
    const run = spawnSync(python, ["-c", probe], { encoding: "utf8" });
    if (run.status !== 0) continue;
    const score = Number(run.stdout.trim());
    if (score > bestScore) {
      best = python;
      bestScore = score;
    }
  }
  return best;
}

function runtimeName(): string {
  const g = globalThis as {
    Deno?: { version: { deno: string } };
    Bun?: { version: string };
  };
  if (g.Deno) return `Deno ${g.Deno.version.deno}`;
  if (g.Bun) return `Bun ${g.Bun.version}`;
  return `Node ${process.version}`;
}

interface Row {
  engine: string;
  build: number;
  search: number;
  agree: string;
  recall: string;
  selfFirst: string;
}

await mkdir(dataDir, { recursive: true });
const refPath = join(dataDir, `ref_${N_REF}x${DIM}.npy`);
const queryPath = join(dataDir, `queries_${N_QUERY}x${DIM}.npy`);
const farPath = join(dataDir, `far_${FAR_ROWS}x${DIM}.npy`);
log(`writing seeded data to ${dataDir}`);
await writeNpyFile(refPath, clustered(N_REF, 1), [N_REF, DIM]);
await writeNpyFile(queryPath, clustered(N_QUERY, 2), [N_QUERY, DIM]);
await writeNpyFile(farPath, farFromOrigin(FAR_ROWS, 3), [FAR_ROWS, DIM]);

const ref = await readMatrixFile(refPath);
const queries = await readMatrixFile(queryPath);
log(`cairn on ${runtimeName()}: ${N_QUERY} × ${N_REF} × ${DIM}, k = ${K}`);
const t0 = performance.now();
const prepared = prepareReference(ref, "euclidean");
const t1 = performance.now();
const plan = planKnnBlocks({
  nRef: N_REF,
  nQuery: N_QUERY,
  dim: DIM,
  k: K,
  memoryBudgetBytes: BUDGET,
});
const blocks: KnnBlock[] = [];
for (let start = 0; start < N_QUERY; start += plan.blockRows) {
  const end = Math.min(N_QUERY, start + plan.blockRows);
  blocks.push(searchKnn(prepared, queries, { k: K, start, end }));
}
const cairn = concatKnnBlocks(blocks);
const t2 = performance.now();
await writeNpyFile(join(dataDir, "cairn_index.npy"), cairn.index, [
  N_QUERY,
  K,
]);
log(
  `  ${plan.blocks} blocks of ${plan.blockRows} rows: ${
    ((t2 - t1) / 1000).toFixed(2)
  } s`,
);

const far = await readMatrixFile(farPath);
const t3 = performance.now();
const farSelf = searchKnn(prepareReference(far, "euclidean"), far, { k: 1 });
const t4 = performance.now();
let selfHits = 0;
for (let i = 0; i < FAR_ROWS; i++) if (farSelf.index[i] === i) selfHits++;
log(
  `  far-from-origin self-search (${FAR_ROWS} rows): ${
    ((t4 - t3) / 1000).toFixed(2)
  } s`,
);

const rows: Row[] = [{
  engine: `cairn (${runtimeName()})`,
  build: (t1 - t0) / 1000,
  search: (t2 - t1) / 1000,
  agree: "1.0000",
  recall: "1.0000",
  selfFirst: (selfHits / FAR_ROWS).toFixed(4),
}];

const python = findPython();
const notes: string[] = [];
if (python === undefined) {
  notes.push("peers skipped: no python3 with numpy found");
} else {
  log(`peers with ${python}`);
  const run = spawnSync(
    python,
    [
      join(here, "knn_peers.py"),
      refPath,
      queryPath,
      String(K),
      dataDir,
      farPath,
    ],
    {
      encoding: "utf8",
      env: {
        ...process.env,
        OMP_NUM_THREADS: "1",
        OPENBLAS_NUM_THREADS: "1",
        MKL_NUM_THREADS: "1",
      },
      maxBuffer: 1 << 20,
    },
  );
  if (run.status !== 0) {
    notes.push(`peers failed (exit ${run.status}): ${run.stderr.trim()}`);
  }
  for (const line of run.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const r = JSON.parse(line) as {
      peer: string;
      label?: string;
      status: string;
      build_s?: number;
      search_s?: number;
      self_first?: number;
    };
    if (r.status !== "ok") {
      notes.push(`${r.peer}: ${r.status}`);
      continue;
    }
    const index = await readIndexNpy(join(dataDir, `${r.peer}_index.npy`));
    const table = { index, k: K };
    rows.push({
      engine: `${r.label ?? r.peer} (1 thread)`,
      build: r.build_s!,
      search: r.search_s!,
      agree: setsAgree(cairn.index, index, K).toFixed(4),
      recall: recallAtK(cairn, table).toFixed(4),
      selfFirst: r.self_first === undefined ? "-" : r.self_first.toFixed(4),
    });
  }
}

const cairnSearch = rows[0]!.search;
const header = [
  "engine",
  "build s",
  "search s",
  "cairn/peer",
  "same sets",
  "recall@k",
  "self first (far)",
];
const body = rows.map((r) => [
  r.engine,
  r.build.toFixed(3),
  r.search.toFixed(3),
  (cairnSearch / r.search).toFixed(1) + "×",
  r.agree,
  r.recall,
  r.selfFirst,
]);
const widths = header.map((h, i) =>
  Math.max(h.length, ...body.map((row) => row[i]!.length))
);
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
    .join("  ");
console.log(
  `exact kNN, ${N_QUERY} queries × ${N_REF} references × ${DIM} dims, k = ${K}, float32 data`,
);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of body) console.log(line(row));
console.log(
  `"cairn/peer" is cairn's search time over the peer's; "same sets" is the fraction of queries whose ${K} neighbours match cairn's as a set; "self first (far)" is the fraction of ${FAR_ROWS} points at 1000 ± 0.1 that find themselves first.`,
);
for (const note of notes) console.log(note);
