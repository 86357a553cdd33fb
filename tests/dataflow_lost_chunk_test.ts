import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Dataflow } from "../lib/dataflow/mod.ts";
import { replayJob } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import type { Store } from "../store/store.ts";
import { tempDir } from "./temp.ts";

interface Order {
  customer: string;
  qty: number;
}

/** input → map "clean" → groupReduce "per-customer", counting map calls. */
function flow(store: Store | string) {
  const calls = { clean: 0 };
  const df = new Dataflow("lost", { store });
  const orders = df.input<Order>("orders");
  const clean = df.map("clean", orders, (o) => {
    calls.clean++;
    return { ...o, double: o.qty * 2 };
  });
  df.groupReduce(
    "per-customer",
    clean,
    (o) => o.customer,
    (_c, rows) => rows.reduce((sum, o) => sum + o.double, 0),
  );
  return { df, calls };
}

function orders(n: number, edit = -1): Record<string, Order> {
  return Object.fromEntries(
    Array.from({ length: n }, (_, i) => [
      `o${String(i).padStart(4, "0")}`,
      { customer: `c${i % 7}`, qty: i === edit ? 1000 : i },
    ]),
  );
}

/**
 * Delete the chunks of operator `node`'s output index (its recorded refs),
 * except those the input's index shares.
 */
async function loseChunksOf(store: Store, node: string): Promise<number> {
  const [run] = (await replayJob(store, "lost")).slice(-1);
  const refsOf = (prefix: string) =>
    [...run!.steps.values()].filter((s) => s.key.startsWith(prefix))
      .flatMap((s) =>
        s.output.kind === "stream" ? s.output.items.flat() : s.output.chunks
      ).map((r) => r.hash);
  const input = new Set(refsOf("refs:orders:"));
  const own = refsOf(`refs:${node}:`).filter((h) => !input.has(h));
  for (const hash of own) await store.chunks.delete(hash);
  return own.length;
}

async function expected(input: Record<string, Order>) {
  const { df } = flow(`memory:lost-expected-${Math.random()}`);
  return (await df.run({ orders: input })).get<Map<string, number>>(
    "per-customer",
  );
}

test("Dataflow.run() recomputes, with a warning, when chunks of an operator's stored state were lost", async () => {
  const dir = join(await tempDir(), "store");
  const first = await openFsStore(dir);
  await flow(first).df.run({ orders: orders(300) });
  assert.ok(await loseChunksOf(first, "clean") > 0);
  // As a new process: nothing of the earlier run in memory.
  const store = await openFsStore(dir);
  const { df, calls } = flow(store);
  const edited = orders(300, 5);
  const result = await df.run({ orders: edited });
  assert.ok(
    result.warnings.some((w) =>
      /operator "clean" in dataflow "lost" is unreadable .*; recomputing every operator/
        .test(w)
    ),
    result.warnings.join("\n"),
  );
  assert.deepEqual(
    result.get<Map<string, number>>("per-customer"),
    await expected(edited),
  );
  // In full (the edited key may have run once before the loss was found).
  assert.ok(calls.clean >= 300 && calls.clean <= 301, `${calls.clean} calls`);
  // The next run is incremental again.
  const next = flow(store);
  const again = orders(300, 6);
  const third = await next.df.run({ orders: again });
  assert.deepEqual(third.warnings, []);
  assert.deepEqual(
    third.get<Map<string, number>>("per-customer"),
    await expected(again),
  );
  assert.ok(next.calls.clean <= 2, `${next.calls.clean} calls`);
});

test("Dataflow.run() with a delta input and lost state fails naming the operator and the fix, and a snapshot run repairs it", async () => {
  const dir = join(await tempDir(), "store");
  const first = await openFsStore(dir);
  await flow(first).df.run({ orders: orders(300) });
  assert.ok(await loseChunksOf(first, "clean") > 0);
  const store = await openFsStore(dir);
  await assert.rejects(
    flow(store).df.run({
      orders: { upsert: [["o0005", { customer: "c5", qty: 1000 }]] },
    }),
    (error: Error) => {
      assert.match(
        error.message,
        /^Cannot run dataflow "lost": the stored state of operator "clean" is unreadable \(.*\), and input "orders" \(no full snapshot given\) cannot rebuild it; rerun without a plan, with a full snapshot of every input/,
      );
      return true;
    },
  );
  const edited = orders(300, 5);
  const result = await flow(store).df.run({ orders: edited });
  assert.deepEqual(
    result.get<Map<string, number>>("per-customer"),
    await expected(edited),
  );
});
