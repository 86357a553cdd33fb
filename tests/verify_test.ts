import { test } from "node:test";
import assert from "node:assert/strict";
import { runJob } from "../lib/job.ts";
import { subsetFilter, verifyStore } from "../lib/verify.ts";
import { collectGarbage } from "../lib/gc.ts";
import { replayJob } from "../lib/replay.ts";
import { createMemoryStore } from "../store/memory.ts";

async function storeWithRuns() {
  const store = createMemoryStore();
  for (const name of ["alpha", "beta"]) {
    await runJob(name, { store }, async (job) => {
      for (let i = 0; i < 20; i++) await job.step(`s${i}`, () => ({ name, i }));
    });
  }
  return store;
}

test("verifyStore() refuses a job name the store does not have", async () => {
  const store = await storeWithRuns();
  await assert.rejects(
    verifyStore(store, { jobs: ["gamma"] }),
    /has no such job$/,
  );
  assert.equal((await verifyStore(store, { jobs: ["beta"] })).jobs, 1);
});

test("verifyStore() names the runs of a missing chunk and a corrupt one", async () => {
  const store = await storeWithRuns();
  const [alpha] = await replayJob(store, "alpha");
  const refs = [...alpha!.steps.values()].map((s) =>
    s.output.kind === "value" ? s.output.chunks[0]!.hash : ""
  );
  store.chunkBytes.delete(refs[0]!);
  store.chunkBytes.get(refs[1]!)!.bytes[0]! ^= 1;
  const structural = await verifyStore(store);
  assert.deepEqual(structural.problems.map((p) => [p.kind, p.job, p.hash]), [[
    "missing-chunk",
    "alpha",
    refs[0],
  ]]);
  const full = await verifyStore(store, { readData: true });
  assert.deepEqual(
    full.problems.map((p) => p.kind).sort(),
    ["corrupt-chunk", "missing-chunk"],
  );
  assert.equal(full.chunksRead, 40 - 1);
});

test("verifyStore() subsets split the chunks into disjoint groups", async () => {
  const store = await storeWithRuns();
  const reads = [];
  for (let n = 1; n <= 3; n++) {
    reads.push(
      (await verifyStore(store, { readDataSubset: `${n}/3` })).chunksRead,
    );
  }
  assert.equal(reads.reduce((a, b) => a + b, 0), 40);
  assert.throws(() => subsetFilter("4/3"), RangeError);
  assert.throws(() => subsetFilter("half"), SyntaxError);
  assert.throws(() => subsetFilter("0%"), RangeError);
});

test("verifyStore() reports a torn tail as a note, and a spliced log as a problem", async () => {
  const store = await storeWithRuns();
  const [key] = [...store.logBytes.keys()].filter((k) =>
    k.startsWith("alpha/")
  );
  const bytes = store.logBytes.get(key!)!;
  store.logBytes.set(key!, bytes.subarray(0, bytes.length - 5));
  const report = await verifyStore(store);
  assert.equal(report.problems.length, 0);
  assert.match(report.notes.join("\n"), /torn tail/);
  // gc must not guess when a log cannot be read.
  store.logBytes.set(
    key!,
    new Uint8Array([...bytes.subarray(0, 40), 0xff, ...bytes.subarray(41)]),
  );
  const broken = await verifyStore(store);
  assert.deepEqual(broken.problems.map((p) => p.kind), ["unreadable-log"]);
  await assert.rejects(
    collectGarbage(store, { graceMs: 0 }),
    /run "cairn verify" first/,
  );
});
