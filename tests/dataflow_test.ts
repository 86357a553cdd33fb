import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  consolidate,
  Dataflow,
  planRecompute,
  timeRangeContains,
  type Update,
} from "../lib/dataflow/mod.ts";
import { collectGarbage } from "../lib/gc.ts";
import { forgetRuns } from "../lib/forget.ts";
import { openStore } from "../lib/open_store.ts";
import { verifyStore } from "../lib/verify.ts";
import { replayRun } from "../lib/replay.ts";

interface Order {
  customer: string;
  qty: number;
  price: number;
}
interface Customer {
  name: string;
}

let stores = 0;
const fresh = () => `memory:dataflow-test-${++stores}`;

/** The example dataflow, with call counters. */
function ordersFlow(store: string, version = "1") {
  const calls = { clean: 0, per: 0, report: 0, top: 0 };
  const df = new Dataflow("orders", { store });
  const orders = df.input<Order>("orders");
  const customers = df.input<Customer>("customers");
  const clean = df.map("clean", orders, (o) => {
    calls.clean++;
    return { ...o, total: o.qty * o.price };
  }, { version });
  const perCustomer = df.groupReduce(
    "per-customer",
    clean,
    (o) => o.customer,
    (_customer, rows) => {
      calls.per++;
      return rows.reduce((sum, o) => sum + o.total, 0);
    },
  );
  const report = df.join("report", perCustomer, customers, (total, c) => {
    calls.report++;
    return { name: c.name, total };
  });
  df.node("top", [report], (r) => {
    calls.top++;
    return [...r.values()].sort((a, b) => b.total - a.total).slice(0, 2)
      .map((x) => x.name);
  });
  return { df, calls };
}

const ORDERS: Record<string, Order> = {
  o1: { customer: "c1", qty: 2, price: 5 },
  o2: { customer: "c2", qty: 1, price: 7 },
  o3: { customer: "c1", qty: 1, price: 1 },
  o4: { customer: "c3", qty: 3, price: 3 },
};
const CUSTOMERS: Record<string, Customer> = {
  c1: { name: "Ann" },
  c2: { name: "Bob" },
  c3: { name: "Cy" },
};

test("Dataflow.run() computes the issue's example and then only what changed", async () => {
  const { df, calls } = ordersFlow(fresh());
  const first = await df.run({ orders: ORDERS, customers: CUSTOMERS });
  assert.deepEqual(
    first.get("report"),
    new Map([
      ["c1", { name: "Ann", total: 11 }],
      ["c2", { name: "Bob", total: 7 }],
      ["c3", { name: "Cy", total: 9 }],
    ]),
  );
  assert.deepEqual(first.get("top"), ["Ann", "Cy"]);
  assert.deepEqual(first.nodes.clean, {
    status: "ran",
    calls: 4,
    added: 4,
    changed: 0,
    removed: 0,
  });
  Object.assign(calls, { clean: 0, per: 0, report: 0, top: 0 });
  const second = await df.run({
    orders: { ...ORDERS, o2: { customer: "c2", qty: 3, price: 7 } },
  });
  assert.deepEqual(calls, { clean: 1, per: 1, report: 1, top: 1 });
  assert.equal(second.nodes.customers!.status, "hit");
  assert.equal(second.nodes.clean!.changed, 1);
  assert.deepEqual(second.get("top"), ["Bob", "Ann"]);
  // An earlier result keeps its outputs.
  assert.equal(first.get<Map<string, Order>>("clean").get("o2")!.qty, 1);
  assert.equal(second.get<Map<string, Order>>("clean").get("o2")!.qty, 3);
  assert.equal(second.time, 2);
});

test("Dataflow.map() runs 10 times for 10 edited keys out of 10,000", async () => {
  let calls = 0;
  const df = new Dataflow("ten", { store: fresh() });
  const input = df.input<number>("numbers");
  df.map("square", input, (x) => (calls++, x * x));
  const data = new Map<string, number>();
  for (let i = 0; i < 10_000; i++) data.set(`n${i}`, i);
  await df.run({ numbers: data });
  assert.equal(calls, 10_000);
  calls = 0;
  for (let i = 0; i < 10; i++) data.set(`n${i * 997}`, -i - 1);
  const result = await df.run({ numbers: data });
  assert.equal(calls, 10);
  assert.equal(result.nodes.square!.calls, 10);
  assert.equal(result.nodes.square!.changed, 10);
  assert.equal(result.get<Map<string, number>>("square").get("n997"), 4);
});

test("Dataflow.groupReduce() reduces only the groups that received a change", async () => {
  const reduced: string[] = [];
  const df = new Dataflow("groups", { store: fresh() });
  const rows = df.input<{ g: string; v: number }>("rows");
  df.groupReduce("sum", rows, (r) => r.g, (g, values) => {
    reduced.push(g);
    return values.reduce((s, r) => s + r.v, 0);
  });
  const data: Record<string, { g: string; v: number }> = {};
  for (let i = 0; i < 100; i++) data[`r${i}`] = { g: `g${i % 10}`, v: i };
  await df.run({ rows: data });
  assert.equal(reduced.length, 10);
  reduced.length = 0;
  // r3 moves from g3 to g7; r15 changes inside g5.
  const result = await df.run({
    rows: { upsert: { r3: { g: "g7", v: 3 }, r15: { g: "g5", v: 1000 } } },
  });
  assert.deepEqual(reduced.sort(), ["g3", "g5", "g7"]);
  assert.equal(result.nodes.sum!.changed, 3);
  const updates = [];
  for await (const u of df.changes("sum")) updates.push(u);
  // Each touched group: a retraction of its old output and an insertion of the new one.
  assert.equal(updates.filter((u) => u.diff === -1).length, 3);
  assert.equal(updates.filter((u) => u.diff === 1).length, 3);
  assert.deepEqual(
    updates.filter((u) => u.key === "g5").map((u) => [u.value, u.diff]),
    [[15 + 25 + 35 + 45 + 55 + 65 + 75 + 85 + 95 + 5, -1], [
      1000 + 25 + 35 + 45 + 55 + 65 + 75 + 85 + 95 + 5,
      1,
    ]],
  );
});

test("Dataflow.run() cuts off everything downstream of an unchanged group output", async () => {
  let downstream = 0;
  const df = new Dataflow("cutoff", { store: fresh() });
  const rows = df.input<{ g: string; v: number }>("rows");
  const max = df.groupReduce(
    "max",
    rows,
    (r) => r.g,
    (_g, values) => Math.max(...values.map((r) => r.v)),
  );
  const label = df.map("label", max, (m) => (downstream++, `max ${m}`));
  df.node("all", [label], (m) => (downstream++, [...m.values()].join()));
  await df.run({ rows: { a: { g: "x", v: 5 }, b: { g: "x", v: 9 } } });
  downstream = 0;
  // a goes from 5 to 6: the max of group x stays 9.
  const result = await df.run({ rows: { upsert: { a: { g: "x", v: 6 } } } });
  assert.equal(result.nodes.max!.status, "cutoff");
  assert.equal(result.nodes.max!.calls, 1);
  assert.equal(result.nodes.label!.status, "hit");
  assert.equal(result.nodes.all!.status, "hit");
  assert.equal(downstream, 0);
  const why = await df.explain("max");
  assert.match(why.message, /cut off/);
  assert.deepEqual(why.inputs[0]!.keys, ["a"]);
});

test("Dataflow operator version reruns exactly that operator and its dependents", async () => {
  const store = fresh();
  const first = ordersFlow(store, "1");
  await first.df.run({ orders: ORDERS, customers: CUSTOMERS });
  const second = ordersFlow(store, "2");
  const result = await second.df.run();
  assert.equal(second.calls.clean, 4, "every key of the bumped map");
  assert.equal(result.nodes.clean!.status, "cutoff", "same outputs");
  assert.equal(result.nodes.orders!.status, "hit");
  assert.equal(result.nodes["per-customer"]!.status, "hit");
  const why = await second.df.explain("clean");
  assert.equal(why.reason, "version");
  assert.deepEqual(why.version, { before: "1", after: "2" });

  // A version whose code changes the output reruns the dependents too.
  const df = new Dataflow("orders", { store });
  const orders = df.input<Order>("orders");
  const customers = df.input<Customer>("customers");
  let perCalls = 0;
  const clean = df.map(
    "clean",
    orders,
    (o) => ({ ...o, total: o.qty * o.price * 2 }),
    { version: "3" },
  );
  const per = df.groupReduce(
    "per-customer",
    clean,
    (o) => o.customer,
    (_c, rows) => {
      perCalls++;
      return rows.reduce((s, o) => s + o.total, 0);
    },
  );
  const side = df.map("side", customers, (c) => c.name.length);
  df.join("report", per, customers, (total, c) => ({ name: c.name, total }));
  const third = await df.run();
  assert.equal(perCalls, 3);
  assert.equal(third.nodes.side!.calls, 3, "a new operator runs once");
  const fourth = await df.run();
  assert.equal(fourth.nodes.side!.status, "hit");
  void side;
});

test("Dataflow warns when an operator's code changes but its version does not", async () => {
  const store = fresh();
  const make = (fn: (x: number) => number) => {
    const df = new Dataflow("warn", { store });
    df.map("m", df.input<number>("in"), fn);
    return df;
  };
  await make((x) => x * 2).run({ in: { a: 1 } });
  const result = await make((x) => x * 3).run({ in: { a: 1 } });
  assert.equal(result.warnings.length, 1);
  assert.match(
    result.warnings[0]!,
    /code of operator "m".*version "1" did not/,
  );
  assert.equal(result.get<Map<string, number>>("m").get("a"), 2);
});

test("Dataflow deterministic: false runs on every run; fingerprint ignores volatile fields", async () => {
  let stamp = 0;
  const df = new Dataflow("volatile", { store: fresh() });
  const input = df.input<number>("in");
  const stamped = df.map("stamped", input, (x) => ({ x, at: ++stamp }), {
    deterministic: false,
    fingerprint: (o) => o.x,
  });
  let after = 0;
  df.map("after", stamped, (o) => (after++, o.x + 1));
  const snap = df.node(
    "snap",
    [input],
    (m) => ({ size: m.size, at: ++stamp }),
    {
      fingerprint: (o) => o.size,
    },
  );
  df.node("after-snap", [snap], (s) => (after++, s.size));
  await df.run({ in: { a: 1, b: 2 } });
  after = 0;
  const again = await df.run();
  assert.equal(again.nodes.stamped!.calls, 2);
  assert.equal(again.nodes.stamped!.status, "cutoff");
  assert.equal(
    again.nodes.snap!.status,
    "hit",
    "deterministic node, same input",
  );
  assert.equal(after, 0);
  const changed = await df.run({ in: { a: 1, b: 3 } });
  assert.equal(changed.nodes.snap!.status, "cutoff", "size is the same");
  assert.equal(changed.nodes["after-snap"]!.status, "hit");
  assert.equal(changed.nodes.after!.calls, 1);
});

test("Dataflow.node() is memoised on the content of its inputs across runs", async () => {
  let calls = 0;
  const df = new Dataflow("memo-node", { store: fresh() });
  const input = df.input<number>("in");
  df.node(
    "sum",
    [input],
    (m) => (calls++, [...m.values()].reduce((a, b) => a + b, 0)),
  );
  await df.run({ in: { a: 1 } });
  await df.run({ in: { a: 2 } });
  const back = await df.run({ in: { a: 1 } });
  assert.equal(calls, 2, "the first input came back: a memo hit");
  assert.equal(back.nodes.sum!.status, "hit");
  assert.equal(back.get("sum"), 1);
});

test("Dataflow inputs: delete and re-add, deltas, JSONL and CSV files", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-dataflow-"));
  try {
    const df = new Dataflow("inputs", { store: fresh() });
    const input = df.input<Record<string, unknown>>("in");
    df.map("id", input, (v) => v);
    await df.run({ in: [["a", { v: 1 }], ["b", { v: 2 }]] });
    let r = await df.run({ in: { delete: ["a"] } });
    assert.deepEqual([...r.get<Map<string, unknown>>("id").keys()], ["b"]);
    assert.equal(r.nodes.id!.removed, 1);
    r = await df.run({ in: { upsert: new Map([["a", { v: 1 }]]) } });
    assert.deepEqual([...r.get<Map<string, unknown>>("id").keys()], ["a", "b"]);
    await writeFile(
      join(dir, "in.jsonl"),
      '{"id":"x","v":1}\n\n{"id":"y","v":2}\n',
    );
    r = await df.run({ in: { file: join(dir, "in.jsonl"), key: "id" } });
    assert.deepEqual(
      r.get("id"),
      new Map([["x", { id: "x", v: 1 }], ["y", { id: "y", v: 2 }]]),
    );
    await writeFile(join(dir, "in.csv"), 'id,name\nx,"Ann, A."\nz,Bo\n');
    r = await df.run({ in: { file: join(dir, "in.csv"), key: "id" } });
    assert.deepEqual(
      r.get("id"),
      new Map([["x", { id: "x", name: "Ann, A." }], ["z", {
        id: "z",
        name: "Bo",
      }]]),
    );
    assert.deepEqual(r.nodes.in, {
      status: "ran",
      calls: 0,
      added: 1,
      changed: 1,
      removed: 1,
    });
    await writeFile(join(dir, "bad.jsonl"), '{"id":"x"}\n{oops\n');
    await assert.rejects(
      df.run({ in: { file: join(dir, "bad.jsonl"), key: "id" } }),
      (e: Error) =>
        e instanceof SyntaxError && /line 2 is not JSON/.test(e.message),
    );
    await assert.rejects(
      df.run({ in: { file: join(dir, "in.csv"), key: "nope" } }),
      /has no string or number field "nope" \(the key option\)/,
    );
    // The failed runs lost nothing: the stored input is the CSV's.
    r = await df.run();
    assert.deepEqual([...r.get<Map<string, unknown>>("id").keys()], ["x", "z"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("Dataflow.run() refuses bad input with errors naming the fix", async () => {
  const df = new Dataflow("bad", { store: fresh() });
  const input = df.input<number>("in");
  df.map("m", input, () => undefined as unknown as number);
  await assert.rejects(
    df.run({ nope: {} }),
    /"nope" is not one of its inputs \("in"\)/,
  );
  await assert.rejects(
    df.run({ in: { a: undefined } as never }),
    /delete it with/,
  );
  await assert.rejects(
    df.run({ in: { a: 1 } }),
    /returned undefined; return null/,
  );
  assert.throws(() => df.map("m", input, (x) => x), /name is taken/);
  assert.throws(() => new Dataflow("no spaces"), TypeError);
});

test("consolidate() sums the updates of consecutive runs", async () => {
  const df = new Dataflow("consolidate", { store: fresh() });
  df.map("m", df.input<number>("in"), (x) => x * 10);
  const all: Update[] = [];
  for (const data of [{ a: 1, b: 2 }, { a: 1, b: 3 }, { b: 3, c: 4 }]) {
    await df.run({ in: data });
    for await (const u of df.changes("m")) all.push(u);
  }
  assert.deepEqual(
    consolidate(all).map((u) => [u.key, u.value, u.diff]),
    [["b", 30, 1], ["c", 40, 1]],
  );
  assert.equal(all.find((u) => u.key === "c")!.time, 3);
});

test("Dataflow runs are jobs: locked, listed, verified, forgotten and collected safely", async () => {
  const store = await openStore(fresh());
  const { df } = ordersFlow(store.location);
  for (let i = 1; i <= 3; i++) {
    await df.run({
      orders: { ...ORDERS, o1: { customer: "c1", qty: i, price: 5 } },
      customers: CUSTOMERS,
    });
  }
  const runs = await store.listRuns("orders");
  assert.equal(runs.length, 3);
  const last = await replayRun(store, "orders", runs.at(-1)!);
  assert.equal(last.header.kind, "dataflow");
  assert.equal(last.status, "completed");
  await forgetRuns(store, { keepLast: 1 });
  const gc = await collectGarbage(store, { graceMs: 0 });
  assert.ok(gc.swept > 0, "older index chunks were swept");
  assert.equal(
    (await verifyStore(store, { readData: true })).problems.length,
    0,
  );
  // A fresh process (a new Dataflow) is still incremental on what survived.
  const again = ordersFlow(store.location);
  const result = await again.df.run({
    orders: { ...ORDERS, o1: { customer: "c1", qty: 9, price: 5 } },
  });
  assert.equal(again.calls.clean, 1);
  assert.equal(
    result.get<Map<string, { total: number }>>("report").get("c1")!.total,
    46,
  );
});

test("Dataflow stores named memory:NAME are per name", async () => {
  const a = new Dataflow("per-name", { store: "memory:df-name-a" });
  a.map("m", a.input<number>("in"), (x) => x);
  await a.run({ in: { x: 1 } });
  const b = new Dataflow("per-name", { store: "memory:df-name-b" });
  b.map("m", b.input<number>("in"), (x) => x);
  const result = await b.run();
  assert.equal(result.time, 1);
  assert.equal(result.get<Map<string, number>>("m").size, 0);
});

test("timeRangeContains() contains both endpoints", () => {
  const range = { from: 10, to: 20 };
  assert.ok(timeRangeContains(range, 10));
  assert.ok(timeRangeContains(range, 15));
  assert.ok(timeRangeContains(range, 20));
  assert.ok(!timeRangeContains(range, 9));
  assert.ok(!timeRangeContains(range, 21));
});

test("planRecompute() with no source plans all nodes", () => {
  const plan = planRecompute({ timeRange: { from: 1, to: 10 } }, {
    nodes: ["a", "b", "c"],
    dependents: () => [],
  });
  assert.deepEqual(plan.nodes, ["a", "b", "c"]);
});

test("planRecompute() with a source plans the source and its downstream", () => {
  const deps: Record<string, string[]> = { a: ["b"], b: ["c"], c: [], d: [] };
  const plan = planRecompute({ timeRange: { from: 1, to: 10 }, source: "a" }, {
    nodes: ["a", "b", "c", "d"],
    dependents: (n) => deps[n]!,
  });
  assert.deepEqual(plan.nodes, ["a", "b", "c"]);
});

test("planRecompute() excludes a sink whose frontier covers the range", () => {
  const graph = {
    nodes: ["a", "b"],
    dependents: (n: string) => (n === "a" ? ["b"] : []),
  };
  const request = { timeRange: { from: 1, to: 10 }, source: "a" };
  assert.deepEqual(
    planRecompute(request, { ...graph, frontiers: new Map([["b", 15]]) }).nodes,
    ["a"],
  );
  assert.deepEqual(
    planRecompute(request, { ...graph, frontiers: new Map([["b", 10]]) }).nodes,
    ["a"],
    "a frontier at the range's end covers it",
  );
  assert.deepEqual(
    planRecompute(request, { ...graph, frontiers: new Map([["b", 9]]) }).nodes,
    ["a", "b"],
  );
});

test("Dataflow.plan() and a planned run recompute only the range's partitions", async () => {
  const store = fresh();
  const make = () => {
    let calls = 0;
    const df = new Dataflow("daily", { store });
    const events = df.input<{ day: string; n: number }>("events", {
      time: (e) => e.day,
    });
    const doubled = df.map(
      "doubled",
      events,
      (e) => (calls++, { ...e, n: e.n * 2 }),
    );
    df.groupReduce(
      "per-day",
      doubled,
      (e) => e.day,
      (_d, rows) => rows.reduce((s, e) => s + e.n, 0),
    );
    df.node("total", [events], (m) => m.size);
    return { df, calls: () => calls };
  };
  const { df, calls } = make();
  const events: Record<string, { day: string; n: number }> = {};
  for (let i = 0; i < 30; i++) {
    events[`e${i}`] = { day: `2026-11-0${1 + (i % 3)}`, n: i };
  }
  await df.run({ events });
  assert.deepEqual(
    await df.frontiers(),
    new Map([["per-day", "2026-11-03"], ["total", "2026-11-03"]]),
  );
  const plan = await df.plan({
    source: "events",
    timeRange: { from: "2026-11-02", to: "2026-11-02" },
  });
  // Both sinks cover 2026-11-02 already.
  assert.deepEqual(plan.nodes, ["events", "doubled"]);
  const all = await df.plan({
    timeRange: { from: "2026-11-04", to: "2026-11-04" },
  });
  assert.deepEqual(all.nodes, ["events", "doubled", "per-day", "total"]);
  // Day 4 arrives; the snapshot holds only that day, and other days are kept.
  const before = calls();
  const result = await df.run(
    {
      events: {
        d1: { day: "2026-11-04", n: 5 },
        d2: { day: "2026-11-04", n: 6 },
      },
    },
    { plan: all },
  );
  assert.equal(calls() - before, 2);
  assert.equal(
    result.get<Map<string, number>>("per-day").get("2026-11-04"),
    22,
  );
  assert.equal(result.get<Map<string, number>>("per-day").size, 4);
  assert.equal(result.get("total"), 32);
  assert.equal((await df.frontiers()).get("per-day"), "2026-11-04");
  // Replacing day 2 with fewer events deletes the missing ones of that day only.
  const day2 = await df.plan({
    source: "events",
    timeRange: { from: "2026-11-02", to: "2026-11-02" },
  });
  const replaced = await df.run({
    events: { e1: { day: "2026-11-02", n: 100 } },
  }, {
    plan: { ...day2, nodes: [...day2.nodes, "per-day"] },
  });
  assert.equal(
    replaced.get<Map<string, number>>("per-day").get("2026-11-02"),
    200,
  );
  assert.equal(replaced.nodes.total!.status, "skipped");
  assert.equal(replaced.get<Map<string, unknown>>("events").size, 23);
  // The skipped sink catches up on the next full run.
  const caught = await df.run();
  assert.equal(caught.get("total"), 23);
});
