/**
 * Store benchmarks, printed side by side with a baseline measured in the same run:
 * - chunk `put` vs plain writeFile + fsync of the same bytes (target: >= 0.5x at 4 MiB);
 * - manifest appends with group commit vs one fsync per record;
 * - replay of 1,000,000 records (target: < 2 s);
 * - BLAKE3 MB/s vs node:crypto SHA-256.
 *
 * Run: `npx deno run -A bench/store.ts` or `npx bun run bench/store.ts` (`--quick` for a short run).
 * `--json` (used by bench/suite.ts) prints the text to stderr and, on stdout,
 * the put comparisons as suite rows: medians of 3 alternating rounds.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFsStore } from "../store/fs.ts";
import { blake3HexSync, blake3Ready } from "../store/hash.ts";
import { randomBytes } from "./_random_bytes.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");
const out = json ? console.error : console.log;
const suiteRows: {
  section: string;
  case: string;
  cairn: string;
  peer: string;
  peerValue: string;
  ratio: string;
}[] = [];
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2
    ? s[s.length >> 1]!
    : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const runtime = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined"
  ? "deno"
  : "bun";
const root = await fs.mkdtemp(join(tmpdir(), "cairn-bench-"));
const rows: string[][] = [];

async function time(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

function row(
  name: string,
  cairn: string,
  baseline: string,
  ratio: number,
  target = "",
) {
  rows.push([name, cairn, baseline, `${ratio.toFixed(2)}x`, target]);
}

try {
  const store = await openFsStore(join(root, "store"));
  const baseDir = join(root, "baseline");
  await fs.mkdir(baseDir);

  for (
    const [label, size, count] of [["4 KiB", 4096, quick ? 200 : 2000], [
      "64 KiB",
      65536,
      quick ? 100 : 500,
    ], [
      "4 MiB",
      4 << 20,
      quick ? 8 : 40,
    ]] as const
  ) {
    const data = Array.from(
      { length: count },
      (_, i) => randomBytes(size, i + size),
    );
    const base = await time(async () => {
      for (let i = 0; i < count; i++) {
        const h = await fs.open(join(baseDir, `${label}-${i}`), "w");
        await h.writeFile(data[i]!);
        await h.sync();
        await h.close();
      }
    });
    const cairn = await time(async () => {
      for (const d of data) await store.chunks.put(d);
    });
    const dedup = await time(async () => {
      for (const d of data) await store.chunks.put(d);
    });
    const mb = (size * count) / 1e6;
    if (json && label !== "64 KiB") {
      // Alternate fresh data through both paths; medians of three rounds.
      const bases: number[] = [base];
      const cairns: number[] = [cairn];
      for (let round = 1; round < 3; round++) {
        const fresh = Array.from(
          { length: count },
          (_, i) => randomBytes(size, i + size + round * 1_000_003),
        );
        bases.push(
          await time(async () => {
            for (let i = 0; i < count; i++) {
              const h = await fs.open(
                join(baseDir, `${label}-${round}-${i}`),
                "w",
              );
              await h.writeFile(fresh[i]!);
              await h.sync();
              await h.close();
            }
          }),
        );
        cairns.push(
          await time(async () => {
            for (const d of fresh) await store.chunks.put(d);
          }),
        );
      }
      const b = median(bases);
      const c = median(cairns);
      suiteRows.push({
        section: "store",
        case: `put ${count} × ${label} (fsync'd each)`,
        cairn: `${(mb / c).toFixed(1)} MB/s`,
        peer: "writeFile + fsync (node:fs)",
        peerValue: `${(mb / b).toFixed(1)} MB/s`,
        ratio: `${(c / b).toFixed(2)}×`,
      });
    }
    row(
      `put ${label} (${count})`,
      `${(mb / cairn).toFixed(1)} MB/s`,
      `${(mb / base).toFixed(1)} MB/s`,
      base / cairn,
      label === "4 MiB" ? ">= 0.5x" : "",
    );
    row(
      `  dedup hit ${label}`,
      `${(count / dedup).toFixed(0)} puts/s`,
      "-",
      base / dedup,
    );
  }

  const records = quick ? 2000 : 20000;
  const groupLog = await store.createLog("bench", "group");
  const group = await time(async () => {
    const pending: Promise<number>[] = [];
    for (let i = 0; i < records; i++) {
      pending.push(
        groupLog.append([{
          type: "step",
          key: `k${i}`,
          at: "2026-11-23T00:00:00Z",
        }]),
      );
      if (pending.length === 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  });
  await groupLog.close();
  const singleCount = Math.min(records, quick ? 500 : 2000);
  const singleLog = await store.createLog("bench", "single");
  const single = await time(async () => {
    for (let i = 0; i < singleCount; i++) {
      await singleLog.append([{ type: "step", key: `k${i}` }]);
    }
  });
  await singleLog.close();
  row(
    "manifest append, 64 concurrent",
    `${(records / group).toFixed(0)} rec/s`,
    `${(singleCount / single).toFixed(0)} rec/s (fsync each)`,
    (records / group) / (singleCount / single),
  );

  const replayCount = quick ? 100_000 : 1_000_000;
  const bigLog = await store.createLog("bench", "replay");
  const batch = 10_000;
  for (let i = 0; i < replayCount; i += batch) {
    await bigLog.append(
      Array.from(
        { length: batch },
        (_, j) => ({ type: "step", key: `block-${i + j}`, durationMs: j }),
      ),
    );
  }
  await bigLog.close();
  const reader = await store.readLog("bench", "replay");
  let seen = 0;
  const replay = await time(async () => {
    for await (const _ of reader.replay()) seen++;
  });
  if (seen !== replayCount) {
    throw new Error(`replayed ${seen} of ${replayCount} records`);
  }
  const rawBytes = await fs.readFile(
    join(store.location, "jobs", "bench", "replay.log"),
  );
  const readOnly = await time(async () => {
    await fs.readFile(join(store.location, "jobs", "bench", "replay.log"));
  });
  row(
    `replay ${replayCount.toLocaleString("en")} records`,
    `${replay.toFixed(2)} s`,
    `${readOnly.toFixed(2)} s (read ${(rawBytes.length / 1e6).toFixed(0)} MB)`,
    readOnly / replay,
    "< 2 s",
  );

  await blake3Ready();
  const blob = randomBytes(64 << 20, 7);
  const b3 = await time(() => {
    blake3HexSync(blob);
    return Promise.resolve();
  });
  const sha = await time(() => {
    createHash("sha256").update(blob).digest("hex");
    return Promise.resolve();
  });
  row(
    "BLAKE3 64 MiB",
    `${(64 * 1.048576 / b3).toFixed(0)} MB/s`,
    `${(64 * 1.048576 / sha).toFixed(0)} MB/s (sha256)`,
    sha / b3,
  );
} finally {
  await fs.rm(root, { recursive: true, force: true });
}

const header = ["benchmark", "cairn", "baseline", "ratio", "target"];
const widths = header.map((h, i) =>
  Math.max(h.length, ...rows.map((r) => r[i]!.length))
);
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
out(
  `cairn store bench on ${runtime}${
    quick ? " (quick)" : ""
  }; ratio > 1 means cairn is faster`,
);
out(line(header));
for (const r of rows) out(line(r));
if (json) console.log(JSON.stringify(suiteRows));
