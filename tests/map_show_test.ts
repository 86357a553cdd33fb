import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { map } from "../lib/map/map.ts";
import { describeMapRun, describeMapStep } from "../lib/map/describe.ts";
import { replayJob } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import { createMemoryStore } from "../store/memory.ts";
import { runCairn } from "./cli_command.ts";
import { tempDir } from "./temp.ts";

async function mapWithFailures(store: string, items: number[]) {
  return await map(items, (x: number) => {
    const until = performance.now() + 0.3; // some real work, so every batch takes time
    while (performance.now() < until);
    if (x % 7 === 3) throw new Error(`no luck with ${x}`);
    return x + 1;
  }, { store, job: "squares", batchSize: 10, onError: "skip", retries: 0 });
}

test("describeMapRun() counts done, failed and pending items and lists failures", async () => {
  const store = join(await tempDir(), "store");
  await mapWithFailures(store, Array.from({ length: 35 }, (_, i) => i));
  const [run] = await replayJob(await openFsStore(store), "squares");
  const progress = describeMapRun(run!)!;
  assert.equal(progress.total, 35);
  assert.equal(progress.failed, 5);
  assert.equal(progress.done, 30);
  assert.equal(progress.pending, 0);
  assert.deepEqual(progress.failures.map((f) => f.index), [3, 10, 17, 24, 31]);
  assert.equal(progress.failures[0]!.error, "no luck with 3");
  assert.ok(progress.computed === 35 && progress.itemsPerSecond !== null);
});

test("cairn show describes a map run: items, failures and rate", async () => {
  const store = join(await tempDir(), "store");
  await mapWithFailures(store, Array.from({ length: 35 }, (_, i) => i));
  const human = await runCairn(["--store", store, "show", "squares"]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(
    human.stdout,
    /Items: +35 total: 30 done, 5 failed, 0 pending; 0 memo hits/,
  );
  assert.match(human.stdout, /Rate: +[\d,]+ items\/s/);
  assert.match(
    human.stdout,
    /Item failures \(5\):\n {2}item 3: no luck with 3/,
  );
  assert.doesNotMatch(human.stdout, /itemKeys/);
  const json = await runCairn(["--store", store, "show", "squares", "--json"]);
  const report = JSON.parse(json.stdout);
  assert.equal(report.items.done, 30);
  assert.equal(report.items.failures.length, 5);
});

test("describeMapStep() gives show a batch's stats without per-item data, and its failures", async () => {
  const store = join(await tempDir(), "store");
  await mapWithFailures(store, Array.from({ length: 20 }, (_, i) => i));
  const [run] = await replayJob(await openFsStore(store), "squares");
  const [first, second] = [...run!.steps.values()];
  const view = describeMapStep(run!, first!)!;
  assert.deepEqual(Object.keys(view.stats).sort(), [
    "computed",
    "durationMs",
    "failed",
    "items",
    "memoHits",
    "start",
  ]);
  assert.equal(view.stats.failed, 1);
  assert.deepEqual(view.failures, [{ index: 3, error: "no luck with 3" }]);
  assert.deepEqual(describeMapStep(run!, second!)!.failures, [
    { index: 10, error: "no luck with 10" },
    { index: 17, error: "no luck with 17" },
  ]);
  const other = { ...run!, header: { ...run!.header, kind: "job" } };
  assert.equal(describeMapStep(other, first!), undefined);
});

test("map() records a batch's item keys in the step record's typed items field, not in its stats", async () => {
  const store = createMemoryStore();
  await map([1, 2, 3, 4, 5], (x: number) => x * 3, { store, batchSize: 2 });
  const [job] = await store.listJobs();
  const [run] = await replayJob(store, job!);
  const steps = [...run!.steps.values()];
  assert.deepEqual(steps.map((s) => s.items?.keys.length), [32, 32, 16]);
  for (const step of steps) assert.ok(!("itemKeys" in (step.stats ?? {})));
});

test("map() still reads runs that kept item keys in stats.itemKeys (written before the items field)", async () => {
  const store = createMemoryStore();
  let calls = 0;
  const fn = (x: number) => (calls++, x * x);
  const base = Array.from({ length: 30 }, (_, i) => i);
  await map(base, fn, { store, batchSize: 10 });
  // Rewrite the run as an older cairn wrote it.
  const [job] = await store.listJobs();
  const [runId] = await store.listRuns(job!);
  const records: Record<string, unknown>[] = [];
  const reader = await store.readLog(job!, runId!);
  for await (const e of reader.replay<Record<string, unknown>>()) {
    const r = e.body;
    if (r.type !== "step") records.push(r);
    else {
      const { items, stats, ...rest } = r as {
        items: { keys: Uint8Array };
        stats: Record<string, unknown>;
      };
      records.push({ ...rest, stats: { ...stats, itemKeys: items.keys } });
    }
  }
  await reader.close();
  const lock = await store.lock(job!);
  await store.deleteRun(job!, runId!);
  const log = await store.createLog(job!, runId!, records[0]);
  await log.append(records.slice(1));
  await log.close();
  await lock.release();
  const [legacy] = await replayJob(store, job!);
  assert.ok(
    [...legacy!.steps.values()].every((s) =>
      s.items === undefined && s.stats?.itemKeys instanceof Uint8Array
    ),
  );
  calls = 0;
  const square = (x: number) => x * x;
  assert.deepEqual(
    await map(base, fn, { store, batchSize: 10 }),
    base.map(square),
  );
  assert.equal(calls, 0, "the completed legacy run is reused");
  calls = 0;
  const grown = [...base, 100, 101];
  assert.deepEqual(await map(grown, fn, { store }), grown.map(square));
  assert.equal(calls, 2, "the legacy run's item keys are memo hits");
  const human = await describeStepsOf(store, job!);
  assert.ok(human.every((keys) => !keys.includes("itemKeys")));
});

async function describeStepsOf(
  store: ReturnType<typeof createMemoryStore>,
  job: string,
): Promise<string[][]> {
  const [run] = await replayJob(store, job);
  return [...run!.steps.values()].map((s) =>
    Object.keys(describeMapStep(run!, s)!.stats)
  );
}
