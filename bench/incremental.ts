// Incremental recompute against a full recompute, in the same process, on
// fs stores in a temp directory; and the memo index of a store with many runs.
//
//   npx deno run -A bench/incremental.ts        npx bun run bench/incremental.ts
//
// Options: --keys N (100000), --edit N (100, i.e. 0.1%), --work-ms X (0.1),
// --runs N (1000, for the memo index).
//
// The dataflow: input (N keys) -> map (a busy-wait of --work-ms per record,
// spinning on performance.now()) -> groupReduce over 1,000 customers -> a
// node (the top ten). "full" is a first run on a fresh store with the edited
// data; "incremental" brings the first store up to date after editing --edit
// random keys, given either the whole snapshot (diffed against the stored
// version) or only the delta { upsert }. Bytes written are the chunks newly
// stored plus the growth of the run's manifest log. Ratios are what to read:
// absolute times depend on this shared machine.
import { readdir, rm, stat } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Dataflow } from "../lib/dataflow/mod.ts";
import { runJob } from "../lib/job.ts";
import { memoIndex } from "../lib/memo.ts";
import { openStore } from "../lib/open_store.ts";
import { seededRandom } from "../lib/random.ts";
import type { Store } from "../store/store.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    keys: { type: "string", default: "100000" },
    edit: { type: "string", default: "100" },
    "work-ms": { type: "string", default: "0.1" },
    runs: { type: "string", default: "1000" },
  },
});
const KEYS = Number(flags.keys);
const EDIT = Number(flags.edit);
const WORK_MS = Number(flags["work-ms"]);
const RUNS = Number(flags.runs);

interface Order {
  customer: string;
  qty: number;
  price: number;
}

function work(): void {
  const end = performance.now() + WORK_MS;
  while (performance.now() < end) { /* the per-record cost */ }
}

/** A store whose chunk writes are counted. */
function counted(store: Store): { store: Store; written: () => number } {
  let bytes = 0;
  const chunks = store.chunks;
  return {
    store: {
      ...store,
      chunks: {
        put: async (b) => {
          const put = await chunks.put(b);
          if (put.stored) bytes += put.size;
          return put;
        },
        get: (h) => chunks.get(h),
        has: (h) => chunks.has(h),
        stat: (h) => chunks.stat(h),
        list: () => chunks.list(),
        delete: (h) => chunks.delete(h),
      },
    },
    written: () => bytes,
  };
}

function flow(store: Store): Dataflow {
  const df = new Dataflow("bench-orders", { store });
  const orders = df.input<Order>("orders");
  const totals = df.map("totals", orders, (o) => {
    work();
    return { customer: o.customer, total: o.qty * o.price };
  });
  const perCustomer = df.groupReduce(
    "per-customer",
    totals,
    (o) => o.customer,
    (_c, rows) => rows.reduce((s, o) => s + o.total, 0),
  );
  df.node(
    "top",
    [perCustomer],
    (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10),
  );
  return df;
}

async function logBytes(root: string, job: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(join(root, "jobs", job))) {
    total += (await stat(join(root, "jobs", job, f))).size;
  }
  return total;
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    n += entry.isDirectory() ? await countFiles(join(dir, entry.name)) : 1;
  }
  return n;
}

const random = seededRandom(7);
const key = (i: number) => `order-${String(i).padStart(7, "0")}`;
const data = new Map<string, Order>();
for (let i = 0; i < KEYS; i++) {
  data.set(key(i), {
    customer: `c${Math.floor(random() * 1000)}`,
    qty: 1 + (i % 5),
    price: 1 + (i % 17),
  });
}
function edit(contiguous: boolean): Map<string, Order> {
  const changed = new Map<string, Order>();
  const start = Math.floor(random() * (KEYS - EDIT));
  while (changed.size < EDIT) {
    const i = contiguous ? start + changed.size : Math.floor(random() * KEYS);
    const old = data.get(key(i))!;
    changed.set(key(i), { ...old, qty: old.qty + 1 });
  }
  for (const [k, v] of changed) data.set(k, v);
  return changed;
}

const dir = await mkdtemp(join(tmpdir(), "cairn-bench-incremental-"));
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
try {
  console.log(
    `${KEYS} keys, ${EDIT}-key edits (${
      (100 * EDIT / KEYS).toFixed(2)
    }%), ${WORK_MS} ms per record`,
  );
  const rootA = join(dir, "a");
  const a = counted(await openStore(rootA));
  const dfA = flow(a.store);
  let t = performance.now();
  const first = await dfA.run({ orders: new Map(data) });
  const firstMs = performance.now() - t;
  const totalChunks = await countFiles(join(rootA, "chunks"));
  console.log(
    `first run: ${fmt(firstMs)}, ${
      first.nodes.totals!.calls
    } map calls, ${totalChunks} chunks (${kib(a.written())})`,
  );

  const measure = async (
    label: string,
    input: unknown,
    contiguous: boolean,
  ) => {
    const bytesBefore = a.written();
    const logBefore = await logBytes(rootA, "bench-orders");
    const start = performance.now();
    const result = await dfA.run({ orders: input as Map<string, Order> });
    const ms = performance.now() - start;
    const chunkBytes = a.written() - bytesBefore;
    const log = (await logBytes(rootA, "bench-orders")) - logBefore;
    console.log(
      `incremental, ${label}${
        contiguous ? ", contiguous keys" : ", random keys"
      }: ${fmt(ms)}, ${result.nodes.totals!.calls} map calls, ${
        result.nodes["per-customer"]!.calls
      } groups; wrote ${result.written.chunks} index chunks (${
        (100 * result.written.chunks / totalChunks).toFixed(2)
      }% of ${totalChunks}), ${kib(chunkBytes)} of chunks + ${kib(log)} of log`,
    );
    return ms;
  };
  const snapshotMs = await measure(
    "snapshot input",
    (edit(false), new Map(data)),
    false,
  );
  const deltaMs = await measure("delta input", { upsert: edit(false) }, false);
  await measure("delta input", { upsert: edit(true) }, true);

  // A new process: no in-memory index cache, no materialized outputs.
  const cold = flow(await openStore(rootA));
  const changed = edit(false);
  t = performance.now();
  await cold.run({ orders: { upsert: changed } }, { materialize: false });
  const coldMs = performance.now() - t;
  console.log(
    `incremental in a fresh Dataflow (new process), delta input: ${
      fmt(coldMs)
    }`,
  );

  const b = await openStore(join(dir, "b"));
  t = performance.now();
  await flow(b).run({ orders: new Map(data) });
  const fullMs = performance.now() - t;
  console.log(`full recompute on a fresh store: ${fmt(fullMs)}`);
  console.log(
    `ratio full / incremental: ${
      (fullMs / deltaMs).toFixed(0)
    }x with a delta input, ${
      (fullMs / snapshotMs).toFixed(0)
    }x with a snapshot input, ${
      (fullMs / coldMs).toFixed(0)
    }x in a fresh process (target >= 50x)`,
  );
  console.log(
    `snapshot / delta input time: ${(snapshotMs / deltaMs).toFixed(1)}x`,
  );

  // The memo index of a store with many runs, opened by a new process.
  const rootM = join(dir, "memo");
  const m = await openStore(rootM);
  for (let i = 0; i < RUNS; i++) {
    const inNamespace = i % 2 === 0;
    await runJob(`job-${i % 50}`, {
      store: m,
      config: { i },
      newRun: true,
      ...(inNamespace ? { memo: "bench@1" } : {}),
    }, (job) => job.step("s", () => i, inNamespace ? { memo: `k${i}` } : {}));
  }
  await rm(join(rootM, "cache"), { recursive: true, force: true });
  t = performance.now();
  const coldIndex = await memoIndex(await openStore(rootM), "bench@1");
  const coldIndexMs = performance.now() - t;
  t = performance.now();
  const warmIndex = await memoIndex(await openStore(rootM), "bench@1");
  const warmIndexMs = performance.now() - t;
  console.log(
    `memo index over ${RUNS} runs (${coldIndex.size} entries): ${
      coldIndexMs.toFixed(1)
    } ms from the logs, ${warmIndexMs.toFixed(1)} ms from the cache file (${
      (coldIndexMs / warmIndexMs).toFixed(1)
    }x); same entries: ${warmIndex.size === coldIndex.size}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
