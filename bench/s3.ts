/**
 * S3 backend benchmarks against a real server (Ceph RGW from
 * scripts/rgw_start.sh), each beside a peer measured in the same run:
 * - chunk `put` and `get` throughput vs plain signed PUT/GET of the same bytes
 *   (cairn adds hashing, the conditional create and, on get, re-hashing);
 * - one kNN job with 2 shared worker processes vs 1 (`sharedWorkers`).
 *
 * Run: `eval "$(bash scripts/rgw_start.sh)"`, then
 * `npx deno run -A bench/s3.ts` or `npx bun run bench/s3.ts` (`--quick` for a short run).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { knnJob, writeNpyFile } from "../lib/knn/mod.ts";
import { randomFloat32 } from "../lib/random.ts";
import { createS3Client, parseS3Url } from "../store/_s3_client.ts";
import { openS3Store } from "../store/s3.ts";
import { randomBytes } from "./_random_bytes.ts";

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const args = process.argv.slice(2);

if (args[0] === "--worker") {
  // One shared worker: bench/s3.ts --worker STORE REF OUT BLOCK_ROWS
  const [, store, ref, out, blockRows] = args;
  await knnJob(ref!, {
    store: store!,
    out: out!,
    k: 10,
    blockRows: Number(blockRows),
    job: "bench-shared",
    sharedWorkers: true,
  });
  process.exit(0);
}

const quick = args.includes("--quick");
const bucket = process.env.CAIRN_S3_BUCKET;
if (!process.env.AWS_ENDPOINT_URL || !bucket) {
  console.error(
    'bench/s3.ts needs an S3 server: eval "$(bash scripts/rgw_start.sh)" first (sets AWS_ENDPOINT_URL and CAIRN_S3_BUCKET)',
  );
  process.exit(2);
}
const runtime = isDeno ? "deno" : "bun";
const rows: string[][] = [];
const prefix = `bench-${Date.now()}`;
const raw = createS3Client(parseS3Url(`s3://${bucket}/${prefix}/raw`));
await raw.createBucket();

/** Run `fn` over the items with `width` in flight; seconds taken. */
async function timed<T>(
  items: T[],
  width: number,
  fn: (item: T) => Promise<unknown>,
): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
  return (performance.now() - start) / 1000;
}

function row(name: string, cairn: string, peer: string, ratio: number) {
  rows.push([name, cairn, peer, `${ratio.toFixed(2)}x`]);
}

const mbps = (bytes: number, s: number) =>
  `${(bytes / s / 1e6).toFixed(1)} MB/s`;

const store = await openS3Store(`s3://${bucket}/${prefix}/store`);
for (
  const [label, size, count] of [
    ["4 KiB", 4096, quick ? 100 : 400],
    ["256 KiB", 262144, quick ? 40 : 160],
    ["4 MiB", 4 << 20, quick ? 8 : 32],
  ] as const
) {
  const blobs = Array.from(
    { length: count },
    (_, i) => randomBytes(size, i + 1),
  );
  const keys = blobs.map((_, i) => `${prefix}/raw/${label}/${i}`);
  const total = size * count;
  const rawPut = await timed(
    blobs.map((b, i) => [b, keys[i]!] as const),
    8,
    ([b, k]) => raw.put(k, b),
  );
  const hashes: string[] = [];
  const put = await timed(
    blobs,
    8,
    async (b) => hashes.push((await store.chunks.put(b)).hash),
  );
  row(
    `chunk put ${label} x${count} (8 in flight)`,
    mbps(total, put),
    mbps(total, rawPut),
    rawPut / put,
  );
  const rawGet = await timed(keys, 8, (k) => raw.get(k));
  const get = await timed(hashes, 8, (h) => store.chunks.get(h));
  row(
    `chunk get ${label} x${count} (8 in flight)`,
    mbps(total, get),
    mbps(total, rawGet),
    rawGet / get,
  );
  const dedup = await timed(blobs, 8, (b) => store.chunks.put(b));
  row(
    `chunk put ${label}, all dedup hits`,
    mbps(total, dedup),
    mbps(total, rawPut),
    rawPut / dedup,
  );
}

// kNN: 1 shared worker vs 2, each a separate process on a fresh prefix.
const dir = await fs.mkdtemp(join(tmpdir(), "cairn-bench-s3-"));
const n = quick ? 4000 : 12000;
const ref = join(dir, "ref.npy");
await writeNpyFile(ref, randomFloat32(n * 64, 3, { min: -1, max: 1 }), [n, 64]);
const blockRows = n / 16;
const self = fileURLToPath(import.meta.url);

function worker(storeUrl: string, out: string): Promise<void> {
  const argv = isDeno
    ? [
      "run",
      "-A",
      "--quiet",
      self,
      "--worker",
      storeUrl,
      ref,
      out,
      String(blockRows),
    ]
    : ["run", self, "--worker", storeUrl, ref, out, String(blockRows)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on(
      "close",
      (code) =>
        code === 0 ? resolve() : reject(new Error(`worker exited ${code}`)),
    );
  });
}

async function sharedRun(workers: number): Promise<number> {
  const url = `s3://${bucket}/${prefix}/knn-${workers}`;
  const start = performance.now();
  await Promise.all(
    Array.from(
      { length: workers },
      (_, i) => worker(url, join(dir, `out-${workers}-${i}`)),
    ),
  );
  return (performance.now() - start) / 1000;
}

const one = await sharedRun(1);
const two = await sharedRun(2);
const same = Buffer.compare(
  await fs.readFile(join(dir, "out-1-0", "index.npy")),
  await fs.readFile(join(dir, "out-2-1", "index.npy")),
) === 0;
row(
  `kNN ${n}x64 k=10, 16 blocks: 2 shared workers vs 1${
    same ? "" : " (OUTPUTS DIFFER)"
  }`,
  `${two.toFixed(2)} s`,
  `${one.toFixed(2)} s`,
  one / two,
);
await fs.rm(dir, { recursive: true, force: true });

const header = ["benchmark", "cairn", "peer", "ratio"];
const widths = header.map((h, i) =>
  Math.max(h.length, ...rows.map((r) => r[i]!.length))
);
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
console.log(
  `S3 (${process.env.AWS_ENDPOINT_URL}) on ${runtime}${
    quick ? " (quick)" : ""
  }; peers: plain signed PUT/GET, and 1 worker; ratio > 1 means cairn (or 2 workers) is faster`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));
