/**
 * Benchmark: cairn's exact kNN against FAISS IndexFlatL2 and scikit-learn's
 * brute force, at 1 and 2 threads, for 20,000 and 100,000 references of 128
 * dimensions (2,000 queries, k = 10), in-process and whole-process.
 *
 * Run alone with `deno run -A bench/knn.ts [--quick] [--reps N]`, or as part
 * of `deno task bench` (bench/suite.ts). Seeded data goes to bench/data/
 * (gitignored) as .npy; bench/knn_peers.py times the peers on the same
 * files. Peers come from Debian (scripts/install_peers.sh); a missing peer is
 * reported in its row, never skipped.
 *
 * - in-process: search time measured inside each process, the reference
 *   already loaded and prepared (cairn: `prepareReference` plus a warm-up
 *   search that packs the WebAssembly copy and starts the workers; FAISS:
 *   `index.add`); median of the repetitions, cairn and peers alternating.
 * - whole-process: wall time of `cairn knn --ref --query --k --out` on a
 *   fresh store against a Python process that loads the same files, searches
 *   and saves index and distance .npy files.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  openKnnPool,
  parseNpyHeader,
  prepareReference,
  readMatrixFile,
  resolveKernel,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import { gaussianRandom, seededRandom } from "../lib/random.ts";
import {
  type BenchRow,
  median,
  ratio,
  renderTable,
  runtimeName,
  seconds,
} from "./_table.ts";

const N_QUERY = 2_000;
const DIM = 128;
const K = 10;
const FAR_ROWS = 5_000;
const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..");
const dataDir = join(here, "data");

/** Options for {@linkcode benchKnn}. */
export interface BenchKnnOptions {
  /** Reference sizes. Defaults to 20,000 and 100,000. */
  refs?: number[];
  /** Thread counts. Defaults to 1 and 2. */
  threads?: number[];
  /** Repetitions per measurement. Defaults to 3. */
  reps?: number;
  /** Progress lines go here. Defaults to stderr. */
  log?: (line: string) => void;
}

/** What {@linkcode benchKnn} found besides the rows. */
export interface BenchKnnResult {
  rows: BenchRow[];
  notes: string[];
  python: string | undefined;
}

function defaultLog(line: string): void {
  process.stderr.write(line + "\n");
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

/** The python that imports numpy and the most peers, if any. */
export function findPython(): { python?: string; peers: number } {
  const candidates = [process.env.PYTHON, "/usr/bin/python3", "python3"]
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
  return best === undefined ? { peers: 0 } : { python: best, peers: bestScore };
}

function threadEnv(threads: number): Record<string, string> {
  const n = String(threads);
  return {
    ...process.env as Record<string, string>,
    OMP_NUM_THREADS: n,
    OPENBLAS_NUM_THREADS: n,
    MKL_NUM_THREADS: n,
  };
}

interface PeerResult {
  peer: string;
  label?: string;
  status: string;
  build_s?: number;
  search_s?: number[];
  search_cpu_s?: number[];
  self_first?: number;
}

function runPeers(
  python: string,
  args: string[],
  threads: number,
): PeerResult[] {
  const run = spawnSync(python, [join(here, "knn_peers.py"), ...args], {
    encoding: "utf8",
    env: threadEnv(threads),
    maxBuffer: 1 << 20,
  });
  if (run.status !== 0) {
    return [{
      peer: "peers",
      status: `failed (exit ${run.status}): ${run.stderr.trim().slice(-300)}`,
    }];
  }
  return run.stdout.split("\n").filter((l) => l.trim() !== "").map((l) =>
    JSON.parse(l) as PeerResult
  );
}

const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** Wall seconds of a child process, and its CPU seconds where measurable. */
function wall(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): { wall: number; cpu: number } {
  const [exe, argv] = TIME === undefined
    ? [cmd, args]
    : [TIME, ["-f", "cairn-bench-cpu %U %S", cmd, ...args]];
  const t0 = performance.now();
  const run = spawnSync(exe, argv, {
    encoding: "utf8",
    env,
    maxBuffer: 1 << 24,
  });
  const s = (performance.now() - t0) / 1000;
  if (run.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${run.status}: ${
        run.stderr.slice(-500)
      }`,
    );
  }
  const m = /cairn-bench-cpu ([\d.]+) ([\d.]+)/.exec(run.stderr);
  return { wall: s, cpu: m ? Number(m[1]) + Number(m[2]) : NaN };
}

/** The command line that runs the cairn CLI under this runtime. */
function cairnCommand(): [string, string[]] {
  const cli = join(root, "cli", "main.ts");
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) {
    return [process.execPath, ["run", "-A", "--quiet", cli]];
  }
  return [process.execPath, ["run", cli]];
}

/**
 * Runs the kNN section.
 *
 * @param options Sizes, threads, repetitions.
 * @returns Table rows and notes.
 */
export async function benchKnn(
  options: BenchKnnOptions = {},
): Promise<BenchKnnResult> {
  const refs = options.refs ?? [20_000, 100_000];
  const threadCounts = options.threads ?? [1, 2];
  const reps = options.reps ?? 3;
  const log = options.log ?? defaultLog;
  const rows: BenchRow[] = [];
  const overhead: BenchRow[] = [];
  const notes: string[] = [];
  const { python, peers } = findPython();
  if (python === undefined) {
    notes.push(
      "No python3 with numpy: every peer row says so (run scripts/install_peers.sh).",
    );
  } else if (peers < 2) {
    notes.push(
      `${python} lacks a peer: its rows say which (run scripts/install_peers.sh).`,
    );
  }
  const kernel = resolveKernel("auto");
  notes.push(
    `cairn kernel: ${kernel} on ${runtimeName()}; in-process figures are medians of ${reps} alternating repetitions.`,
  );
  const [cairnCmd, cairnArgs] = cairnCommand();
  const help = spawnSync(cairnCmd, [...cairnArgs, "knn", "--help"], {
    encoding: "utf8",
  });
  const cliThreads = help.stdout.includes("--threads");

  await mkdir(dataDir, { recursive: true });
  const queryPath = join(dataDir, `queries_${N_QUERY}x${DIM}.npy`);
  const farPath = join(dataDir, `far_${FAR_ROWS}x${DIM}.npy`);
  await writeNpyFile(queryPath, clustered(N_QUERY, 2), [N_QUERY, DIM]);
  await writeNpyFile(farPath, farFromOrigin(FAR_ROWS, 3), [FAR_ROWS, DIM]);
  const queries = await readMatrixFile(queryPath);
  const scratch = await mkdtemp(join(tmpdir(), "cairn-bench-knn-"));
  try {
    for (const nRef of refs) {
      const refPath = join(dataDir, `ref_${nRef}x${DIM}.npy`);
      await writeNpyFile(refPath, clustered(nRef, 1), [nRef, DIM]);
      const ref = await readMatrixFile(refPath);
      const flop = 2 * N_QUERY * nRef * DIM;
      const inProcess = new Map<number, number>();
      const size = `${nRef.toLocaleString("en-US")} refs`;
      for (const threads of threadCounts) {
        log(`kNN ${size}, ${threads} thread(s), in-process`);
        const pool = openKnnPool({ threads });
        const cairnTimes: number[] = [];
        const cairnCpu: number[] = [];
        const peerTimes = new Map<string, number[]>();
        const peerCpu = new Map<string, number[]>();
        const peerInfo = new Map<string, PeerResult>();
        let index: Int32Array | undefined;
        try {
          const prepared = prepareReference(ref, "euclidean");
          await pool.search(prepared, queries, { k: K, end: 64 });
          for (let rep = 0; rep < reps; rep++) {
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            const result = await pool.search(prepared, queries, { k: K });
            cairnTimes.push((performance.now() - t0) / 1000);
            const c = process.cpuUsage(c0);
            cairnCpu.push((c.user + c.system) / 1e6);
            index = result.index;
            if (python === undefined) continue;
            const far = rep === 0 && nRef === refs[0] && threads === 1
              ? [farPath]
              : [];
            for (
              const r of runPeers(python, [
                "--threads",
                String(threads),
                "--reps",
                "1",
                refPath,
                queryPath,
                String(K),
                scratch,
                ...far,
              ], threads)
            ) {
              peerInfo.set(r.peer, { ...peerInfo.get(r.peer), ...r });
              if (r.status === "ok") {
                const list = peerTimes.get(r.peer) ?? [];
                list.push(...r.search_s!);
                peerTimes.set(r.peer, list);
                const cpu = peerCpu.get(r.peer) ?? [];
                cpu.push(...(r.search_cpu_s ?? []));
                peerCpu.set(r.peer, cpu);
              }
            }
          }
        } finally {
          pool.close();
        }
        const cairnMedian = median(cairnTimes);
        inProcess.set(threads, cairnMedian);
        const cairnCpuMedian = median(cairnCpu);
        const cairnCell = `${seconds(cairnMedian)} (${
          (flop / cairnMedian / 1e9).toFixed(1)
        } GFLOP/s); CPU ${seconds(cairnCpuMedian)}`;
        const caseName = `${size}, ${threads} thread${
          threads > 1 ? "s" : ""
        }, in-process search`;
        if (python === undefined) {
          for (const peer of ["FAISS IndexFlatL2", "scikit-learn brute"]) {
            rows.push({
              section: "kNN",
              case: caseName,
              cairn: cairnCell,
              peer,
              peerValue: "missing: no python3 with numpy",
              ratio: "-",
            });
          }
          continue;
        }
        for (const [peer, info] of peerInfo) {
          const times = peerTimes.get(peer);
          if (info.status !== "ok" || times === undefined) {
            rows.push({
              section: "kNN",
              case: caseName,
              cairn: cairnCell,
              peer,
              peerValue: info.status,
              ratio: "-",
            });
            continue;
          }
          const m = median(times);
          const cpu = peerCpu.get(peer) ?? [];
          const mc = cpu.length > 0 ? median(cpu) : NaN;
          rows.push({
            section: "kNN",
            case: caseName,
            cairn: cairnCell,
            peer: info.label ?? peer,
            peerValue: `${seconds(m)} (${
              (flop / m / 1e9).toFixed(1)
            } GFLOP/s); CPU ${seconds(mc)}`,
            ratio: `${ratio(cairnMedian, m)} (CPU ${
              ratio(cairnCpuMedian, mc)
            })`,
          });
          if (index !== undefined && threads === threadCounts[0]) {
            const theirs = await readIndexNpy(
              join(scratch, `${peer}_index.npy`),
            );
            notes.push(
              `${size}: ${
                info.label ?? peer
              } returns the same neighbour sets as cairn for ${
                (100 * setsAgree(index, theirs, K)).toFixed(2)
              }% of queries (float32 ties and rounding).`,
            );
          }
          if (info.self_first !== undefined) {
            notes.push(
              `${info.label ?? peer}: ${
                (100 * info.self_first).toFixed(1)
              }% of ${FAR_ROWS} points at 1000 ± 0.1 find themselves first (cairn: 100%, exact).`,
            );
          }
        }
      }
      for (const threads of threadCounts) {
        const caseName = `${size}, ${threads} thread${
          threads > 1 ? "s" : ""
        }, whole process`;
        log(`kNN ${size}, ${threads} thread(s), whole process`);
        if (threads > 1 && !cliThreads) {
          rows.push({
            section: "kNN",
            case: caseName,
            cairn: "missing: `cairn knn` has no --threads yet",
            peer: "FAISS IndexFlatL2",
            peerValue: "-",
            ratio: "-",
          });
          continue;
        }
        const cairnTimes: { wall: number; cpu: number }[] = [];
        const peerTimes: { wall: number; cpu: number }[] = [];
        let peerStatus = "ok";
        for (let rep = 0; rep < reps; rep++) {
          const run = join(scratch, `whole-${nRef}-${threads}-${rep}`);
          await mkdir(run, { recursive: true });
          cairnTimes.push(wall(cairnCmd, [
            ...cairnArgs,
            "knn",
            "--ref",
            refPath,
            "--query",
            queryPath,
            "--k",
            String(K),
            "--out",
            join(run, "out"),
            "--store",
            join(run, "store"),
            "-q",
            ...(cliThreads ? ["--threads", String(threads)] : []),
          ], threadEnv(threads)));
          if (python === undefined) {
            peerStatus = "missing: no python3 with numpy";
          } else if (peers === 0) {
            peerStatus = "missing: faiss (run scripts/install_peers.sh)";
          } else {
            try {
              peerTimes.push(wall(python, [
                join(here, "knn_peers.py"),
                "--whole",
                "faiss",
                "--threads",
                String(threads),
                refPath,
                queryPath,
                String(K),
                run,
              ], threadEnv(threads)));
            } catch (e) {
              peerStatus = `failed: ${(e as Error).message.slice(-200)}`;
            }
          }
          await rm(run, { recursive: true, force: true });
        }
        const c = median(cairnTimes.map((t) => t.wall));
        const cc = median(cairnTimes.map((t) => t.cpu));
        const ok = peerStatus === "ok" && peerTimes.length > 0;
        const p = ok ? median(peerTimes.map((t) => t.wall)) : NaN;
        const pc = ok ? median(peerTimes.map((t) => t.cpu)) : NaN;
        const kernel = inProcess.get(threads);
        if (kernel !== undefined) {
          overhead.push({
            section: "kNN CLI",
            case: `${size}, ${threads} thread${
              threads > 1 ? "s" : ""
            }: whole \`cairn knn\` over its search (goal <= 1.3×)`,
            cairn: seconds(c),
            peer: "cairn's in-process search",
            peerValue: seconds(kernel),
            ratio: ratio(c, kernel),
          });
        }
        rows.push({
          section: "kNN",
          case: caseName,
          cairn: `${seconds(c)}; CPU ${seconds(cc)}`,
          peer: "FAISS IndexFlatL2 (python3, load + search + save)",
          peerValue: ok ? `${seconds(p)}; CPU ${seconds(pc)}` : peerStatus,
          ratio: ok ? `${ratio(c, p)} (CPU ${ratio(cc, pc)})` : "-",
        });
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { rows: [...rows, ...overhead], notes, python };
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: "boolean", default: false },
      reps: { type: "string" },
    },
  });
  const result = await benchKnn({
    refs: flags.quick ? [20_000] : undefined,
    reps: flags.reps !== undefined ? Number(flags.reps) : flags.quick ? 1 : 3,
  } as BenchKnnOptions);
  console.log(renderTable(result.rows));
  for (const note of result.notes) console.log(`- ${note}`);
}
