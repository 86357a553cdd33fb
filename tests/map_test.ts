import { test } from "node:test";
import assert from "node:assert/strict";
import {
  failuresOf,
  imap,
  map,
  map2,
  MapItemError,
  mapIter,
  mapJobName,
  pmap,
  possibly,
  quietly,
  safely,
  walk,
} from "../lib/map/mod.ts";
import type { JobEvent } from "../lib/events.ts";
import { InterruptedError } from "../lib/job.ts";
import { seededRandom } from "../lib/random.ts";
import { replayJob } from "../lib/replay.ts";
import { createMemoryStore } from "../store/memory.ts";
import { openFsStore } from "../store/fs.ts";
import { tempDir } from "./temp.ts";
import { join } from "node:path";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { collatzSteps, failOdd } from "./fixtures/map_fns.ts";

const FNS = new URL("./fixtures/map_fns.ts", import.meta.url);
const range = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => from + i);

async function jobOf(store: ReturnType<typeof createMemoryStore>) {
  const jobs = await store.listJobs();
  assert.equal(jobs.length, 1);
  return { name: jobs[0]!, runs: await replayJob(store, jobs[0]!) };
}

test("map() returns results in input order across batches and records one step per batch", async () => {
  const store = createMemoryStore();
  const items = range(1050);
  const out = await map(items, (x) => x * x, { store, batchSize: 100 });
  assert.deepEqual(out, items.map((x) => x * x));
  const { runs } = await jobOf(store);
  assert.equal(runs.length, 1);
  const run = runs[0]!;
  assert.equal(run.status, "completed");
  assert.equal(run.header.kind, "map");
  assert.equal(run.total, 11);
  assert.equal(run.steps.size, 11);
  const stats = [...run.steps.values()].map((s) => s.stats!);
  assert.deepEqual(
    stats.map((s) => s.items),
    [...Array(10).fill(100), 50],
  );
  for (const s of stats) {
    assert.equal(s.failed, 0);
    assert.equal(s.memoHits, 0);
    assert.equal(typeof s.durationMs, "number");
  }
  assert.deepEqual(run.end?.summary, {
    items: 1050,
    batches: 11,
    computed: 1050,
    memoHits: 0,
    failed: 0,
    resumedBatches: 0,
  });
});

test("map() reports progress in items and batch steps with kind, total and stats", async () => {
  const store = createMemoryStore();
  const events: JobEvent[] = [];
  await map(range(250), (x) => x, {
    store,
    batchSize: 100,
    onEvent: (e) => events.push(e),
  });
  const progress = events.filter((e) => e.type === "progress");
  assert.deepEqual(
    progress.map((e) => [e.done, e.total, e.unit]),
    [[100, 250, "items"], [200, 250, "items"], [250, 250, "items"]],
  );
  const start = events.find((e) => e.type === "run-start");
  assert.equal(start?.type === "run-start" && start.total, 3);
  assert.equal(events.filter((e) => e.type === "step-done").length, 3);
  assert.equal(events.at(-1)?.type, "run-end");
});

test("map() with an explicit job name refuses other items on an unfinished run, unless newRun", async () => {
  const store = createMemoryStore();
  const controller = new AbortController();
  await assert.rejects(
    map(range(300), (x: number) => {
      if (x === 150) controller.abort();
      return x;
    }, { store, job: "nightly", name: "ident", signal: controller.signal }),
    InterruptedError,
  );
  await assert.rejects(
    map(range(301), (x: number) => x, {
      store,
      job: "nightly",
      name: "ident",
    }),
    { name: "ConfigChangedError" },
  );
  let calls = 0;
  const out = await map(range(301), (x: number) => (calls++, x), {
    store,
    job: "nightly",
    name: "ident",
    newRun: true,
  });
  assert.deepEqual(out, range(301));
  assert.equal(calls, 201, "the batch recorded before the abort is a memo hit");
  assert.deepEqual(await store.listJobs(), ["nightly"]);
});

test("map() on an empty array returns [] without opening a job", async () => {
  const store = createMemoryStore();
  assert.deepEqual(await map([], (x: number) => x, { store }), []);
  assert.deepEqual(await store.listJobs(), []);
});

test("map() retries a flaky function (30% failures, seeded) until every item succeeds", async () => {
  const store = createMemoryStore();
  const random = seededRandom(42);
  let calls = 0;
  let failures = 0;
  const flaky = (x: number) => {
    calls++;
    if (random() < 0.3) {
      failures++;
      throw new Error(`transient failure on ${x}`);
    }
    return x + 1;
  };
  const items = range(300);
  const out = await map(items, flaky, {
    store,
    batchSize: 50,
    retries: 10,
    retryDelayMs: 1,
  });
  assert.deepEqual(out, items.map((x) => x + 1));
  assert.ok(failures > 50, `the seeded function failed ${failures} times`);
  assert.equal(calls, 300 + failures);
});

test("map() retryOn decides which errors are retried", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => {
    calls++;
    throw new TypeError(`bad ${x}`);
  };
  await assert.rejects(
    map([1], fn, {
      store,
      retries: 5,
      retryDelayMs: 1,
      retryOn: (e) => !(e instanceof TypeError),
    }),
    MapItemError,
  );
  assert.equal(calls, 1);
});

test('map() with onError "skip" records per-item errors, keeps going, and exposes failures', async () => {
  const store = createMemoryStore();
  const events: JobEvent[] = [];
  const fn = (x: number) => {
    if (x % 7 === 3) throw new Error(`no ${x}`);
    return -x;
  };
  const items = range(60);
  const out = await map(items, fn, {
    store,
    name: "seven",
    batchSize: 25,
    onError: "skip",
    retries: 1,
    retryDelayMs: 1,
    onEvent: (e) => events.push(e),
  });
  const expectedFailed = items.filter((x) => x % 7 === 3);
  const failed = failuresOf(out);
  assert.deepEqual(failed.map((f) => f.index), expectedFailed);
  for (const f of failed) {
    assert.ok(f instanceof MapItemError);
    assert.equal(f.error, `no ${f.index}`);
    assert.equal(f.attempts, 2);
    assert.match(
      f.message,
      /^Cannot map item \d+ of job "map-[0-9a-f]{16}" after 2 attempts: no \d+$/,
    );
  }
  items.forEach((x) => {
    if (x % 7 !== 3) assert.equal(out[x], -x);
  });
  assert.equal(
    events.filter((e) =>
      e.type === "warning" && e.message.endsWith("; skipped")
    ).length,
    expectedFailed.length,
  );
  const { runs } = await jobOf(store);
  const steps = [...runs[0]!.steps.values()];
  assert.equal(
    steps.reduce((n, s) => n + (s.stats!.failed as number), 0),
    expectedFailed.length,
  );
  const errors = steps.flatMap((s) =>
    (s.stats!.errors as { index: number; error: string }[] | undefined) ?? []
  );
  // A batch waiting for retries may be recorded after the next one.
  assert.deepEqual(
    errors.map((e) => e.index).sort((a, b) => a - b),
    expectedFailed,
  );
  assert.equal(runs[0]!.status, "completed");
  // Failures are not results: an identical call retries only the failed items.
  let calls = 0;
  const called: number[] = [];
  const counted = (x: number) => {
    calls++;
    called.push(x);
    return fn(x);
  };
  const skipOptions = {
    store,
    name: "seven",
    batchSize: 25,
    onError: "skip",
    retries: 1,
    retryDelayMs: 1,
  } as const;
  const again = await map(items, counted, skipOptions);
  assert.equal(
    calls,
    expectedFailed.length * 2,
    "two attempts per failed item",
  );
  assert.deepEqual([...new Set(called)].sort((a, b) => a - b), expectedFailed);
  assert.deepEqual(failuresOf(again).map((f) => f.index), expectedFailed);
  // Once the function is fixed, the next identical call fills the failed slots.
  calls = 0;
  called.length = 0;
  const fixed = await map(
    items,
    (x: number) => (calls++, called.push(x), -x),
    skipOptions,
  );
  assert.equal(calls, expectedFailed.length);
  assert.deepEqual(called.sort((a, b) => a - b), expectedFailed);
  assert.deepEqual(fixed, items.map((x) => -x));
});

test('map() with onError "stop" rejects with the item\'s error after recording it, and a rerun resumes', async () => {
  const store = createMemoryStore();
  let calls = 0;
  let broken = true;
  const fn = (x: number) => {
    calls++;
    if (broken && x === 130) throw new Error("broken item");
    return x * 2;
  };
  const items = range(300);
  const options = { store, batchSize: 50, retries: 0, name: "stopper" };
  const error = await map(items, fn, options).then(
    () => assert.fail("expected a rejection"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof MapItemError);
  assert.equal(error.index, 130);
  assert.equal(error.error, "broken item");
  const { runs } = await jobOf(store);
  assert.equal(runs[0]!.status, "failed");
  assert.ok(runs[0]!.failures.some((f) => f.error.includes("broken item")));
  assert.equal(
    runs[0]!.steps.size,
    2,
    "the two batches before the failure are recorded",
  );
  broken = false;
  calls = 0;
  assert.deepEqual(await map(items, fn, options), items.map((x) => x * 2));
  assert.equal(
    calls,
    200,
    "only the failed batch and those after it are computed",
  );
});

test("map() job names cover every item: same length, first and last but another middle differ", async () => {
  const f = (x: number) => x;
  const a = range(1000);
  const b = range(1000);
  b[500] = -1;
  const nameA = await mapJobName(a, f);
  assert.match(nameA, /^map-[0-9a-f]{16}$/);
  assert.equal(nameA, await mapJobName(range(1000), f));
  assert.notEqual(nameA, await mapJobName(b, f));
  assert.notEqual(nameA, await mapJobName(a, f, { version: "2" }));
  assert.notEqual(nameA, await mapJobName(a, (x: number) => x + 1));
  assert.notEqual(nameA, await mapJobName(a, f, { batchSize: 10 }));
  assert.equal(await mapJobName(a, f, { job: "mine" }), "mine");
  // The jobs map() actually opens follow the same names.
  const store = createMemoryStore();
  await map(a, f, { store });
  await map(b, f, { store });
  assert.deepEqual(
    (await store.listJobs()).sort(),
    [nameA, await mapJobName(b, f)].sort(),
  );
});

test("map() with concurrency gives the same results as serial, in order", async () => {
  const items = range(500);
  const fn = async (x: number) => {
    await new Promise((r) => setTimeout(r, x % 3));
    return { x, y: String(x * 3) };
  };
  const serial = await map(items, fn, { store: createMemoryStore() });
  let inFlight = 0;
  let peak = 0;
  const tracked = async (x: number) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    try {
      return await fn(x);
    } finally {
      inFlight--;
    }
  };
  const parallel = await map(items, tracked, {
    store: createMemoryStore(),
    batchSize: 40,
    concurrency: 8,
  });
  assert.deepEqual(parallel, serial);
  assert.ok(peak > 1 && peak <= 8, `peak concurrency ${peak}`);
});

test("map() with workers gives the same results as serial on Worker threads", async () => {
  const items = range(3000, 1);
  const serial = await map(items, collatzSteps, {
    store: createMemoryStore(),
    batchSize: 250,
  });
  assert.deepEqual(serial, items.map(collatzSteps));
  const viaWorkers = await map(items, collatzSteps, {
    store: createMemoryStore(),
    batchSize: 250,
    workers: { module: FNS, export: "collatzSteps", threads: 2 },
  });
  assert.deepEqual(viaWorkers, serial);
  // Worker failures are retried and skipped like local ones.
  const skipped = await map(range(10), failOdd, {
    store: createMemoryStore(),
    onError: "skip",
    retries: 1,
    retryDelayMs: 1,
    workers: { module: FNS.href, export: "failOdd", threads: 2 },
  });
  assert.deepEqual(
    failuresOf(skipped).map((f) => [f.index, f.error, f.attempts]),
    [1, 3, 5, 7, 9].map((i) => [i, `${i} is odd`, 2]),
  );
});

test("map() with workers rejects a missing export or another function", async () => {
  const store = createMemoryStore();
  await assert.rejects(
    map([1], collatzSteps, {
      store,
      workers: { module: FNS, export: "nope", threads: 1 },
    }),
    { name: "TypeError", message: /no function export "nope"/ },
  );
  await assert.rejects(
    map([1], collatzSteps, {
      store,
      workers: { module: FNS, export: "notAFunction", threads: 1 },
    }),
    { name: "TypeError", message: /it is a number/ },
  );
  await assert.rejects(
    map([1], collatzSteps, {
      store,
      workers: { module: FNS, export: "failOdd", threads: 1 },
    }),
    { name: "TypeError", message: /is not the function passed/ },
  );
  assert.deepEqual(await store.listJobs(), []);
});

test("imap() passes global indices, not per-batch ones", async () => {
  const items = range(25, 100).map(String);
  const out = await imap(items, (x, i) => `${i}:${x}`, {
    store: createMemoryStore(),
    batchSize: 4,
  });
  assert.deepEqual(out, items.map((x, i) => `${i}:${x}`));
});

test("map2(), pmap() and walk() map in parallel lists and walk for side effects", async () => {
  const store = createMemoryStore();
  assert.deepEqual(
    await map2([1, 2, 3], ["a", "b", "c"], (n, s) => s.repeat(n), {
      store,
      batchSize: 2,
    }),
    ["a", "bb", "ccc"],
  );
  await assert.rejects(
    map2([1, 2], [1], (a, b) => a + b, { store }),
    { name: "RangeError", message: /xs has 2 items and ys has 1/ },
  );
  assert.deepEqual(
    await pmap([[1, 2], [10, 20], [100, 200]], (a, b, c) => a + b + c, {
      store,
    }),
    [111, 222],
  );
  await assert.rejects(
    pmap([[1, 2], [1]], (a, b) => a + b, { store }),
    { name: "RangeError", message: /list 0 has 2 items and list 1 has 1/ },
  );
  await assert.rejects(pmap([], () => 1, { store }), TypeError);
  const seen: number[] = [];
  const result = await walk(range(7), (x) => {
    seen.push(x);
  }, { store, batchSize: 3 });
  assert.equal(result, undefined);
  assert.deepEqual(seen, range(7));
  await walk(range(7), (x) => {
    seen.push(x);
  }, { store, batchSize: 3 });
  assert.deepEqual(seen, range(7), "a finished walk does not run again");
});

test("mapIter() streams a 20,000-item generator in order with at most two batches in flight", async () => {
  const store = createMemoryStore();
  const batchSize = 100;
  let produced = 0;
  let yielded = 0;
  let peak = 0;
  function* items() {
    for (let i = 0; i < 20_000; i++) {
      produced++;
      yield i;
    }
  }
  let expected = 0;
  for await (
    const y of mapIter(items(), (x: number) => {
      peak = Math.max(peak, produced - yielded);
      return x * 2;
    }, { store, batchSize })
  ) {
    assert.equal(y, expected * 2);
    expected++;
    yielded++;
    peak = Math.max(peak, produced - yielded);
  }
  assert.equal(expected, 20_000);
  assert.ok(
    peak <= 2 * batchSize,
    `at most ${peak} items were pulled and not yet yielded`,
  );
});

test("mapIter() resumes an interrupted stream and starts a new run after a finished one", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => (calls++, x + 1);
  const options = { store, batchSize: 10, name: "inc" };
  const first: number[] = [];
  for await (const y of mapIter(range(100), fn, options)) {
    first.push(y);
    if (first.length === 35) break; // leaves the run resumable
  }
  assert.ok(calls >= 35 && calls <= 50);
  calls = 0;
  const all: number[] = [];
  for await (const y of mapIter(range(100), fn, options)) all.push(y);
  assert.deepEqual(all, range(100, 1));
  assert.ok(calls <= 70, `${calls} calls after resuming`);
  // A generator's job has no content in its name; a finished run is not reused, but its items are.
  async function* gen() {
    for (let i = 0; i < 50; i++) yield i;
  }
  calls = 0;
  const streamed: number[] = [];
  for await (const y of mapIter(gen(), fn, options)) streamed.push(y);
  assert.deepEqual(streamed, range(50, 1));
  assert.equal(calls, 0, "every item is a memo hit");
  for await (const y of mapIter(gen(), fn, options)) streamed.push(y);
  assert.equal(streamed.length, 100);
  assert.equal(calls, 0);
});

test("map() reuses items across jobs: 1,000 items, then the same plus 100 new costs 100 calls", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => (calls++, { x, sq: x * x });
  const base = range(1000);
  await map(base, fn, { store });
  assert.equal(calls, 1000);
  calls = 0;
  const grown = [...base, ...range(100, 5000)];
  const events: JobEvent[] = [];
  const out = await map(grown, fn, { store, onEvent: (e) => events.push(e) });
  assert.equal(calls, 100);
  assert.deepEqual(out, grown.map((x) => ({ x, sq: x * x })));
  assert.equal((await store.listJobs()).length, 2, "a new job");
  const runEnd = events.find((e) => e.type === "run-end");
  assert.equal(
    (runEnd as { summary: { memoHits: number } }).summary.memoHits,
    1000,
  );
  // Items in another order and batch size are still hits.
  calls = 0;
  await map([...grown].reverse(), fn, { store, batchSize: 37 });
  assert.equal(calls, 0);
  // A new version recomputes everything.
  calls = 0;
  await map(grown, fn, { store, version: "2" });
  assert.equal(calls, 1100);
});

test("map() memo keys include the function: another function over the same items recomputes", async () => {
  const store = createMemoryStore();
  const items = range(20);
  assert.deepEqual(
    await map(items, (x) => x * 2, { store }),
    items.map((x) => x * 2),
  );
  assert.deepEqual(
    await map(items, (x) => x * 3, { store }),
    items.map((x) => x * 3),
  );
});

test("map() warns when a named function's source changes but its version does not", async () => {
  const store = createMemoryStore();
  const items = range(10);
  await map(items, (x: number) => x * 2, { store, name: "scale" });
  const events: JobEvent[] = [];
  const out = await map(items, (x: number) => x * 20, {
    store,
    name: "scale",
    onEvent: (e) => events.push(e),
  });
  assert.deepEqual(out, items.map((x) => x * 2), "version is the contract");
  assert.ok(
    events.some((e) =>
      e.type === "warning" && /code .* changed/.test(e.message)
    ),
  );
  // The same holds for memo hits in another job.
  const events2: JobEvent[] = [];
  await map([...items, 99], (x: number) => x * 20, {
    store,
    name: "scale",
    onEvent: (e) => events2.push(e),
  });
  assert.ok(
    events2.some((e) =>
      e.type === "warning" &&
      /code of map function "scale" changed/.test(e.message)
    ),
  );
});

test("map() recomputes items whose memo chunk was deleted, without crashing", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => (calls++, x - 1);
  const items = range(500);
  await map(items, fn, { store });
  const { runs } = await jobOf(store);
  const victim = [...runs[0]!.steps.values()][2]!;
  assert.ok(victim.output.kind === "value");
  assert.ok(await store.chunks.delete(victim.output.chunks[0]!.hash));
  calls = 0;
  const grown = [...items, 1000];
  assert.deepEqual(await map(grown, fn, { store }), grown.map((x) => x - 1));
  assert.equal(calls, 101, "the lost batch's 100 items and the new one");
});

test("map() recomputes in place the batch a finished run lost", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => (calls++, x * 10);
  const items = range(500);
  await map(items, fn, { store });
  const { name, runs } = await jobOf(store);
  const victim = [...runs[0]!.steps.values()][3]!;
  assert.ok(victim.output.kind === "value");
  assert.ok(await store.chunks.delete(victim.output.chunks[0]!.hash));
  calls = 0;
  assert.deepEqual(await map(items, fn, { store }), items.map((x) => x * 10));
  assert.equal(calls, 100, "only the lost batch is computed again");
  const reruns = await replayJob(store, name);
  assert.equal(reruns.length, 1, "the finished run heals, no new run");
  assert.equal(reruns[0]!.status, "completed");
  assert.equal(reruns[0]!.steps.size, 5);
  calls = 0;
  assert.deepEqual(await map(items, fn, { store }), items.map((x) => x * 10));
  assert.equal(calls, 0, "the healed run is whole");
});

test("map() stops on an aborted signal with InterruptedError and resumes on the next call", async () => {
  const store = createMemoryStore();
  const controller = new AbortController();
  let calls = 0;
  const fn = (x: number) => {
    calls++;
    if (x === 250) controller.abort();
    return x;
  };
  const items = range(1000);
  await assert.rejects(
    map(items, fn, { store, signal: controller.signal, name: "abortable" }),
    InterruptedError,
  );
  const { runs } = await jobOf(store);
  assert.equal(runs[0]!.status, "interrupted");
  assert.equal(runs[0]!.steps.size, 2);
  calls = 0;
  assert.deepEqual(await map(items, fn, { store, name: "abortable" }), items);
  assert.equal(calls, 800);
});

test("map() resumes in an fs store", async () => {
  const root = join(await tempDir(), "store");
  let calls = 0;
  const fn = (x: number) => (calls++, `item-${x}`);
  const items = range(350);
  const controller = new AbortController();
  await assert.rejects(
    map(items, (x: number) => {
      if (x === 120) controller.abort();
      return fn(x);
    }, { store: root, name: "fs", signal: controller.signal }),
    InterruptedError,
  );
  calls = 0;
  const out = await map(items, fn, {
    store: await openFsStore(root),
    name: "fs",
  });
  assert.deepEqual(out, items.map((x) => `item-${x}`));
  assert.equal(calls, 250);
});

test("map() rejects bad input with clear errors", async () => {
  const store = createMemoryStore();
  const f = (x: number) => x;
  await assert.rejects(
    map("abc" as unknown as number[], f, { store }),
    { name: "TypeError", message: /items must be an array, got string/ },
  );
  await assert.rejects(
    map(new Set([1]) as unknown as number[], f, { store }),
    { name: "TypeError", message: /got Set; use Array.from\(\)/ },
  );
  await assert.rejects(map([1], f, { store, batchSize: 0 }), {
    name: "RangeError",
    message: /batchSize must be an integer from 1 to 1048576, got 0/,
  });
  await assert.rejects(map([1], f, { store, concurrency: 0 }), {
    name: "RangeError",
    message: /concurrency must be an integer from 1 up, got 0/,
  });
  await assert.rejects(map([1], f, { store, retries: -1 }), RangeError);
  await assert.rejects(
    map([1], f, { store, onError: "ignore" as "skip" }),
    TypeError,
  );
  await assert.rejects(
    map([1], 5 as unknown as typeof f, { store }),
    TypeError,
  );
  await assert.rejects(
    map([1, 2, () => 3] as unknown as number[], f, { store }),
    {
      name: "TypeError",
      message: /Cannot map item 2: its input is not CBOR-encodable/,
    },
  );
  // A result that cannot be stored names its item.
  const bad = (x: number) => (x === 4 ? () => x : x);
  await assert.rejects(map(range(6), bad, { store }), (error: unknown) => {
    assert.ok(error instanceof MapItemError);
    assert.equal(error.index, 4);
    assert.match(error.message, /item 4 .*result is not CBOR-encodable/);
    return true;
  });
  const skipped = await map(range(6), bad, { store, onError: "skip" });
  assert.deepEqual(failuresOf(skipped).map((e) => e.index), [4]);
  assert.equal(skipped[5], 5);
});

test("safely() returns results or errors as data", async () => {
  const store = createMemoryStore();
  const risky = safely((x: number) => {
    if (x < 0) throw new RangeError(`negative ${x}`);
    return Math.sqrt(x);
  });
  const out = await map([4, -1, 9], risky, { store });
  assert.deepEqual(out, [
    { result: 2, error: null },
    { result: null, error: { name: "RangeError", message: "negative -1" } },
    { result: 3, error: null },
  ]);
});

test("possibly() returns a default on failure", async () => {
  const store = createMemoryStore();
  const parse = possibly(async (s: string) => {
    await null;
    return JSON.parse(s) as unknown;
  }, "bad");
  assert.deepEqual(await map(["1", "{", "[2]"], parse, { store }), [1, "bad", [
    2,
  ]]);
});

test("quietly() captures console output and restores the console", async () => {
  const log = console.log;
  const warn = console.warn;
  const error = console.error;
  const noisy = quietly((x: number) => {
    console.log("value", x, { x });
    console.info("info");
    console.warn("warned", x);
    console.error("erred");
    return x + 1;
  });
  const out = await map([1, 2], noisy, { store: createMemoryStore() });
  assert.deepEqual(out, [
    {
      result: 2,
      output: "value 1 { x: 1 }\ninfo",
      warnings: ["warned 1"],
      messages: ["erred"],
    },
    {
      result: 3,
      output: "value 2 { x: 2 }\ninfo",
      warnings: ["warned 2"],
      messages: ["erred"],
    },
  ]);
  assert.equal(console.log, log);
  assert.equal(console.warn, warn);
  assert.equal(console.error, error);
  const throws = quietly(() => {
    console.log("before");
    throw new Error("inside");
  });
  await assert.rejects(throws(), /inside/);
  assert.equal(console.log, log);
  // Overlapping calls interleave, and the console comes back after the last.
  const slow = quietly(async (tag: string) => {
    console.log(`${tag}-start`);
    await new Promise((r) => setTimeout(r, 5));
    console.log(`${tag}-end`);
    return tag;
  });
  const [a, b] = await Promise.all([slow("a"), slow("b")]);
  assert.ok(a!.output.includes("b-start") && b!.output.includes("a-end"));
  assert.equal(console.log, log);
});

test("map() retry waits free the lane: other items start while a failed item waits", async () => {
  const store = createMemoryStore();
  const order: string[] = [];
  let firstFailed = false;
  let retried = false;
  const fn = (x: number) => {
    order.push(`${x}`);
    if (x === 0 && !firstFailed) {
      firstFailed = true;
      throw new Error("flaky");
    }
    if (x === 0) retried = true;
    // With one lane, item 1 could only start before item 0's retry if the wait freed the lane.
    if (x === 1) {
      order.push(retried ? "1 after the retry" : "1 during the wait");
    }
    return x;
  };
  const out = await map(range(6), fn, {
    store,
    concurrency: 1,
    retries: 2,
    retryDelayMs: 20,
    batchSize: 6,
  });
  assert.deepEqual(out, range(6));
  assert.ok(order.includes("1 during the wait"), order.join(","));
  assert.equal(order.filter((x) => x === "0").length, 2, "item 0: 2 calls");
  assert.equal(order[0], "0");
  assert.notEqual(order[1], "0", "the retry queues behind waiting items");
  const { runs } = await jobOf(store);
  assert.equal(runs[0]!.steps.size, 1, "the batch is recorded once");
});

test("map() retry waits free lanes across batches: 5% failures at concurrency 2 wait in parallel", async () => {
  const store = createMemoryStore();
  const attempts = new Map<number, number>();
  let waiting = 0;
  let maxWaiting = 0;
  const fn = (x: number) => {
    const n = (attempts.get(x) ?? 0) + 1;
    attempts.set(x, n);
    if (n > 1) waiting--;
    if (x % 20 === 7 && n === 1) {
      waiting++;
      maxWaiting = Math.max(maxWaiting, waiting);
      throw new Error("transient");
    }
    return x * 3;
  };
  const out = await map(range(300), fn, {
    store,
    concurrency: 2,
    batchSize: 50,
    retryDelayMs: 30,
  });
  assert.deepEqual(out, range(300).map((x) => x * 3));
  assert.equal(attempts.size, 300);
  assert.ok(
    maxWaiting > 2,
    `more items waited for a retry at once (${maxWaiting}) than there are lanes (2)`,
  );
});

test("map() progress option writes SafeMapper-style lines to a function or a writable", async () => {
  const store = createMemoryStore();
  const lines: string[] = [];
  const controller = new AbortController();
  const fn = (x: number) => {
    if (x === 150) controller.abort();
    return x;
  };
  await assert.rejects(
    map(range(400), fn, {
      store,
      name: "progress",
      signal: controller.signal,
      progress: (line) => lines.push(line),
    }),
    InterruptedError,
  );
  assert.deepEqual(lines, [
    "[25%] items 1–100 of 400",
  ]);
  let text = "";
  const writer = { write: (s: string) => (text += s) };
  assert.deepEqual(
    await map(range(400), fn, { store, name: "progress", progress: writer }),
    range(400),
  );
  assert.deepEqual(text.split("\n"), [
    "Resuming from item 101/400",
    // Batches still to compute come first; the done one is read back last.
    "[25%] items 101–200 of 400",
    "[50%] items 201–300 of 400",
    "[75%] items 301–400 of 400",
    "[100%] items 1–100 of 400",
    "",
  ]);
  const complete: string[] = [];
  await map(range(400), fn, {
    store,
    name: "progress",
    progress: (line) => complete.push(line),
  });
  assert.equal(complete.length, 4, "a finished run is read back, not resumed");
  assert.equal(complete[0], "[25%] items 1–100 of 400");
  await assert.rejects(
    map([1], (x) => x, { store, progress: 1 as never }),
    /progress must be a function or a writable/,
  );
});

test("map() recomputes a batch whose chunk has a flipped bit on an fs store", async () => {
  const root = join(await tempDir(), "store");
  let calls = 0;
  const fn = (x: number) => (calls++, { square: x * x, label: `n${x}` });
  const items = range(300);
  const expected = items.map((x) => ({ square: x * x, label: `n${x}` }));
  const store = await openFsStore(root);
  await map(items, fn, { store, name: "flip" });
  const [job] = await store.listJobs();
  const [run] = await replayJob(store, job!);
  const victim = [...run!.steps.values()][1]!;
  assert.ok(victim.output.kind === "value");
  const hash = victim.output.chunks[0]!.hash;
  const file = join(root, "chunks", hash.slice(0, 2), hash);
  const bytes = await readFile(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
  await chmod(file, 0o644);
  await writeFile(file, bytes);
  calls = 0;
  assert.deepEqual(await map(items, fn, { store, name: "flip" }), expected);
  assert.equal(calls, 100, "only the damaged batch is computed again");
  calls = 0;
  assert.deepEqual(await map(items, fn, { store, name: "flip" }), expected);
  assert.equal(calls, 0, "the healed chunk is read back");
});

test("map() results have the same key order after a resume as on a fresh run", async () => {
  const store = createMemoryStore();
  const fn = (x: number) => ({ zeta: x, alpha: -x, mid: { b: 1, a: 2 } });
  const fresh = await map(range(150), fn, { store: createMemoryStore() });
  const controller = new AbortController();
  await assert.rejects(
    map(range(150), (x: number) => {
      if (x === 120) controller.abort();
      return fn(x);
    }, { store, name: "order", signal: controller.signal }),
    InterruptedError,
  );
  const resumed = await map(range(150), fn, { store, name: "order" });
  const keysOf = (rows: unknown[]) =>
    rows.map((r) =>
      JSON.stringify(Object.keys(r as object)) +
      JSON.stringify(Object.keys((r as { mid: object }).mid))
    );
  assert.deepEqual(keysOf(resumed), keysOf(fresh));
  assert.deepEqual(resumed, fresh);
});

test("mapIter() progress lines on a resumed stream count done items without a total", async () => {
  const store = createMemoryStore();
  const options = { store, batchSize: 10, name: "stream-progress" };
  async function* gen() {
    for (let i = 0; i < 60; i++) yield i;
  }
  let seen = 0;
  for await (const _ of mapIter(gen(), (x: number) => x, options)) {
    if (++seen === 25) break;
  }
  const lines: string[] = [];
  const out: number[] = [];
  for await (
    const y of mapIter(gen(), (x: number) => x, {
      ...options,
      progress: (line) => lines.push(line),
    })
  ) out.push(y);
  assert.deepEqual(out, range(60));
  const done = Number(/^Resuming from item (\d+)$/.exec(lines[0]!)?.[1]) - 1;
  assert.ok(done >= 20 && done % 10 === 0, lines[0]);
  assert.deepEqual(lines.slice(1, 3), ["items 1–10", "items 11–20"]);
  assert.equal(lines.at(-1), "items 51–60");
});

test("map() starts the next batch while a batch's failed item waits for its retry", async () => {
  const store = createMemoryStore();
  const calls: number[] = [];
  let retried = false;
  let nextBatchDuringWait = false;
  const fn = (x: number) => {
    calls.push(x);
    if (x === 0 && calls.filter((c) => c === 0).length === 1) {
      throw new Error("flaky");
    }
    if (x === 0) retried = true;
    if (x === 5) nextBatchDuringWait = !retried;
    return x * 2;
  };
  const out = await map(range(10), fn, {
    store,
    concurrency: 1,
    batchSize: 5,
    retryDelayMs: 200,
  });
  assert.deepEqual(out, range(10).map((x) => x * 2));
  assert.ok(nextBatchDuringWait, `calls in order: ${calls.join(",")}`);
  assert.equal(calls.length, 11, "one retry, no repeated calls");
  const { runs } = await jobOf(store);
  const recorded = [...runs[0]!.steps.values()].map((s) => s.stats!.start);
  assert.deepEqual(recorded, [5, 0], "batch 0 is recorded once item 0 settles");
});
