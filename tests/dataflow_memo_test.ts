import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runJob } from "../lib/job.ts";
import { memoIndex } from "../lib/memo.ts";
import { openStore } from "../lib/open_store.ts";
import type { Store } from "../store/store.ts";
import { tempDir } from "./temp.ts";

/** A view of a store that counts log reads (each header or replay opens one). */
function counting(store: Store): { store: Store; reads: () => number } {
  let reads = 0;
  return {
    store: {
      ...store,
      readLog: (job, run) => {
        reads++;
        return store.readLog(job, run);
      },
    },
    reads: () => reads,
  };
}

test("memoIndex() keeps a per-namespace index on disk so a new process reads no old run", async () => {
  const dir = await tempDir();
  try {
    const store = await openStore(dir);
    for (let i = 0; i < 12; i++) {
      await runJob(`other-${i % 4}`, {
        store,
        config: { i },
        newRun: true,
      }, (job) => job.step("x", () => i));
      await runJob(`memo-${i % 3}`, {
        store,
        memo: "ns@1",
        config: { i },
        newRun: true,
      }, (job) => job.step(`s${i}`, () => i * i, { memo: `key-${i}` }));
    }
    // Jobs with memo steps wrote the cache as they ran; start without it.
    await rm(join(dir, "cache"), { recursive: true });
    const cold = counting(await openStore(dir));
    const first = await memoIndex(cold.store, "ns@1");
    assert.equal(first.size, 12);
    assert.equal(
      cold.reads(),
      24 + 12,
      "every header, then each namespace run's log",
    );

    // A new store object stands for a new process: it loads the cache file.
    const warm = counting(await openStore(dir));
    const second = await memoIndex(warm.store, "ns@1");
    assert.deepEqual([...second.keys()].sort(), [...first.keys()].sort());
    assert.equal(warm.reads(), 0);

    // One more run: only its log is read.
    await runJob("memo-new", {
      store,
      memo: "ns@1",
    }, (job) => job.step("late", () => 1, { memo: "key-late" }));
    const next = counting(await openStore(dir));
    assert.ok((await memoIndex(next.store, "ns@1")).has("key-late"));
    assert.equal(next.reads(), 2, "its header and its log");

    // The cache is only a cache: without it, the logs give the same index.
    await rm(join(dir, "cache"), { recursive: true });
    const rebuilt = await memoIndex(await openStore(dir), "ns@1");
    assert.equal(rebuilt.size, 13);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
