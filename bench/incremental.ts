// Incremental recompute against a full recompute, in the same process, on
// fs stores in a temp directory; and the memo index of a store with many runs.
//
//   npx deno run -A bench/incremental.ts        npx bun run bench/incremental.ts
//
// Options: --keys N (100000), --edit N (100, i.e. 0.1%), --work-ms X (0.1),
// --runs N (1000, for the memo index), --rounds N (1), --quick (5,000 keys,
// 5-key edits, 100 runs, 3 rounds), --json (for bench/suite.ts: the text goes
// to stderr and, on stdout, the comparisons as suite rows, medians over the
// rounds).
//
// The dataflow: input (N keys) -> map (a busy-wait of --work-ms per record,
// spinning on performance.now()) -> groupReduce over 1,000 customers -> a
// node (the top ten). "full" is a first run on a fresh store with the edited
// data; "incremental" brings the first store up to date after editing --edit
// random keys, given either the whole snapshot (diffed against the stored
// version) or only the delta { upsert }. Each round edits and measures the
// incremental updates, then a full recompute of the same data (whose top ten
// must equal the incremental result's), then an update by a fresh Dataflow
// object (no in-memory index cache). Bytes written are the chunks newly
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
import { checkIntegerFlags } from "./_measure.ts";
import { type BenchRow, median, ratio, runtimeName } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    keys: { type: "string" },
    edit: { type: "string" },
    "work-ms": { type: "string" },
    runs: { type: "string" },
    rounds: { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const quick = flags.quick;
const KEYS = Number(flags.keys ?? (quick ? 5000 : 100_000));
const EDIT = Number(flags.edit ?? (quick ? 5 : 100));
const WORK_MS = Number(flags["work-ms"] ?? 0.1);
const RUNS = Number(flags.runs ?? (quick ? 100 : 1000));
const ROUNDS = Number(flags.rounds ?? (quick ? 3 : 1));
checkIntegerFlags("incremental", [
  ["keys", KEYS, 2],
  ["edit", EDIT, 1],
  ["runs", RUNS, 2],
  ["rounds", ROUNDS, 1],
]);
if (EDIT >= KEYS) {
  throw new RangeError(
    `Cannot run the incremental benchmark: --edit must be below --keys (${KEYS}), found "${EDIT}"`,
  );
}
if (!(WORK_MS >= 0)) {
  throw new RangeError(
    `Cannot run the incremental benchmark: --work-ms must be a number >= 0, found "${WORK_MS}"`,
  );
}
const say = flags.json ? console.error : console.log;

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
  say(
    `incremental bench on ${runtimeName()}: ${KEYS} keys, ${EDIT}-key edits (${
      (100 * EDIT / KEYS).toFixed(2)
    }%), ${WORK_MS} ms per record, median of ${ROUNDS} round(s)`,
  );
  const rootA = join(dir, "a");
  const a = counted(await openStore(rootA));
  const dfA = flow(a.store);
  let t = performance.now();
  const first = await dfA.run({ orders: new Map(data) });
  const firstMs = performance.now() - t;
  const totalChunks = await countFiles(join(rootA, "chunks"));
  say(
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
    say(
      `incremental, ${label}${
        contiguous ? ", contiguous keys" : ", random keys"
      }: ${fmt(ms)}, ${result.nodes.totals!.calls} map calls, ${
        result.nodes["per-customer"]!.calls
      } groups; wrote ${result.written.chunks} index chunks (${
        (100 * result.written.chunks / totalChunks).toFixed(2)
      }% of ${totalChunks}), ${kib(chunkBytes)} of chunks + ${kib(log)} of log`,
    );
    return { ms, bytes: chunkBytes + log, result };
  };

  const m = {
    snapshot: [] as number[],
    delta: [] as number[],
    deltaBytes: [] as number[],
    cold: [] as number[],
    full: [] as number[],
    fullBytes: [] as number[],
  };
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) say(`round ${round}:`);
    const snapshot = await measure(
      "snapshot input",
      (edit(false), new Map(data)),
      false,
    );
    const delta = await measure(
      "delta input",
      { upsert: edit(false) },
      false,
    );
    const last = await measure("delta input", { upsert: edit(true) }, true);
    m.snapshot.push(snapshot.ms);
    m.delta.push(delta.ms);
    m.deltaBytes.push(delta.bytes);

    // The same data computed from scratch on a fresh store.
    const rootB = join(dir, `b${round}`);
    const b = counted(await openStore(rootB));
    t = performance.now();
    const full = await flow(b.store).run({ orders: new Map(data) });
    const fullMs = performance.now() - t;
    const fullBytes = b.written() + await logBytes(rootB, "bench-orders");
    m.full.push(fullMs);
    m.fullBytes.push(fullBytes);
    if (
      JSON.stringify(full.get("top")) !== JSON.stringify(last.result.get("top"))
    ) {
      throw new Error(
        "The incremental update and the full recompute gave different top tens",
      );
    }
    say(
      `full recompute on a fresh store: ${fmt(fullMs)}, ${
        kib(fullBytes)
      } written`,
    );
    await rm(rootB, { recursive: true, force: true });

    // A fresh Dataflow, as a new process would have: no in-memory index cache,
    // no materialized outputs.
    const cold = flow(await openStore(rootA));
    const changed = edit(false);
    t = performance.now();
    await cold.run({ orders: { upsert: changed } }, { materialize: false });
    const coldMs = performance.now() - t;
    m.cold.push(coldMs);
    say(`incremental in a fresh Dataflow, delta input: ${fmt(coldMs)}`);
  }
  const fullMs = median(m.full);
  const deltaMs = median(m.delta);
  const snapshotMs = median(m.snapshot);
  const coldMs = median(m.cold);
  say(
    `ratio full / incremental: ${
      (fullMs / deltaMs).toFixed(0)
    }x with a delta input, ${
      (fullMs / snapshotMs).toFixed(0)
    }x with a snapshot input, ${
      (fullMs / coldMs).toFixed(0)
    }x in a fresh Dataflow (target >= 50x)`,
  );
  say(`snapshot / delta input time: ${(snapshotMs / deltaMs).toFixed(1)}x`);

  // The memo index of a store with many runs, opened by a new process.
  const rootM = join(dir, "memo");
  const store = await openStore(rootM);
  for (let i = 0; i < RUNS; i++) {
    const inNamespace = i % 2 === 0;
    await runJob(`job-${i % 50}`, {
      store,
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
  if (warmIndex.size !== coldIndex.size) {
    throw new Error(
      `The memo index from its cache file has ${warmIndex.size} entries, from the logs ${coldIndex.size}`,
    );
  }
  say(
    `memo index over ${RUNS} runs (${coldIndex.size} entries): ${
      coldIndexMs.toFixed(1)
    } ms from the logs, ${warmIndexMs.toFixed(1)} ms from the cache file (${
      (coldIndexMs / warmIndexMs).toFixed(1)
    }x)`,
  );

  if (flags.json) {
    const n = KEYS.toLocaleString("en-US");
    const what = `${EDIT} of ${n} keys edited, ${WORK_MS} ms per record`;
    const peer = "full recompute on a fresh store";
    const full = fmt(fullMs);
    const rows: BenchRow[] = [
      {
        section: "incremental",
        case: `update, delta input (${what})`,
        cairn: fmt(deltaMs),
        peer,
        peerValue: full,
        ratio: ratio(deltaMs, fullMs),
      },
      {
        section: "incremental",
        case: `update, snapshot input diffed (${what})`,
        cairn: fmt(snapshotMs),
        peer,
        peerValue: full,
        ratio: ratio(snapshotMs, fullMs),
      },
      {
        section: "incremental",
        case: `update by a fresh Dataflow, delta input (${what})`,
        cairn: fmt(coldMs),
        peer,
        peerValue: full,
        ratio: ratio(coldMs, fullMs),
      },
      {
        section: "incremental",
        case: `bytes written (chunks + log), delta input (${what})`,
        cairn: kib(median(m.deltaBytes)),
        peer,
        peerValue: kib(median(m.fullBytes)),
        ratio: ratio(median(m.deltaBytes), median(m.fullBytes)),
      },
      {
        section: "incremental",
        case: `memo index of a store with ${
          RUNS.toLocaleString("en-US")
        } runs, read from its cache file`,
        cairn: `${warmIndexMs.toFixed(1)} ms`,
        peer: "the same index rebuilt from the runs' logs (cache deleted)",
        peerValue: `${coldIndexMs.toFixed(1)} ms`,
        ratio: ratio(warmIndexMs, coldIndexMs),
      },
    ];
    console.log(JSON.stringify(rows));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
