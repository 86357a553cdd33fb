/**
 * GC against a job whose steps reuse stored chunks through dedup hits
 * (issue 13, finding 2): with real processes, nothing the job records is
 * ever swept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { forgetRuns } from "../lib/forget.ts";
import { collectGarbage, MIN_LIVE_GRACE_MS } from "../lib/gc.ts";
import { openJob } from "../lib/job.ts";
import { verifyStore } from "../lib/verify.ts";
import { openFsStore } from "../store/fs.ts";
import { collectOutput, runScript, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { LONG } from "./test_seed.ts";

const CHILD = new URL("./fixtures/dedup_child.ts", import.meta.url);
// Each gc beside the job scans every chunk: the cost grows as STEPS².
const STEPS = LONG ? 2000 : 200;

async function ageChunks(root: string, ms: number): Promise<number> {
  const then = new Date(Date.now() - ms);
  let n = 0;
  for (const prefix of await readdir(join(root, "chunks"))) {
    for (const name of await readdir(join(root, "chunks", prefix))) {
      await utimes(join(root, "chunks", prefix, name), then, then);
      n++;
    }
  }
  return n;
}

test("collectGarbage() running beside a job whose steps are dedup hits never sweeps a chunk the job records", async () => {
  const root = join(await tempDir(), "store");
  await openFsStore(root);
  const seed = await runScript(CHILD, [root, String(STEPS)]);
  assert.equal(seed.code, 0, seed.stderr);
  const store = await openFsStore(root);
  await forgetRuns(store, { jobs: ["dedup"], keepLast: 0 });
  // Unreferenced and two hours old: every chunk is a GC candidate.
  assert.ok((await ageChunks(root, 7_200_000)) >= STEPS);
  for (let round = 0; round < 2; round++) {
    const child = startScript(CHILD, [root, String(STEPS)]);
    const result = collectOutput(child);
    let finished = false;
    result.then(() => (finished = true));
    let gcs = 0;
    while (!finished) {
      await collectGarbage(store);
      gcs++;
    }
    const { code, stderr } = await result;
    assert.equal(code, 0, stderr);
    assert.ok(gcs > 0);
    const report = await verifyStore(store, { readData: true });
    assert.deepEqual(report.problems, [], `round ${round} after ${gcs} gcs`);
    await forgetRuns(store, { jobs: ["dedup"], keepLast: 1 });
    await ageChunks(root, 7_200_000);
  }
  // No job running: forget, then gc reclaims at once, with no flag.
  await forgetRuns(store, { jobs: ["dedup"], keepLast: 0 });
  const report = await collectGarbage(store);
  assert.equal(report.appliedGraceMs, 0);
  assert.ok(report.swept >= STEPS);
  let left = 0;
  for await (const _ of store.chunks.list()) left++;
  assert.equal(left, 0);
});

test("collectGarbage() keeps unreferenced chunks younger than 1 minute while a job holds a lock, even with graceMs 0", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const recent = await store.chunks.put(new TextEncoder().encode("recent"));
  const old = await store.chunks.put(new TextEncoder().encode("old"));
  const at = (hash: string) => join(root, "chunks", hash.slice(0, 2), hash);
  const secondsAgo = (s: number) => new Date(Date.now() - s * 1000);
  await utimes(at(recent.hash), secondsAgo(30), secondsAgo(30));
  await utimes(at(old.hash), secondsAgo(120), secondsAgo(120));
  // A step put `recent` 30 s ago and has not recorded it yet.
  const job = await openJob("writer", { store });
  try {
    const report = await collectGarbage(store, { graceMs: 0 });
    assert.equal(report.appliedGraceMs, MIN_LIVE_GRACE_MS);
    assert.equal(report.swept, 1);
    assert.equal(report.young, 1);
    assert.equal(await store.chunks.has(recent.hash), true);
    assert.equal(await store.chunks.has(old.hash), false);
  } finally {
    await job.close();
  }
  // No lock held: the cutoff is gc's start, so `recent` goes too.
  const after = await collectGarbage(store, { graceMs: 0 });
  assert.equal(after.appliedGraceMs, 0);
  assert.equal(await store.chunks.has(recent.hash), false);
});
