/**
 * The conformance suite every store backend runs (in the manner of
 * unstorage's testDriver): chunks, logs and run listing behave the same
 * whatever the backend.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import {
  CorruptChunkError,
  getValue,
  MissingChunkError,
  putValue,
} from "../store/chunk_store.ts";
import type { Store } from "../store/store.ts";
import { blake3Hex } from "../store/hash.ts";
import { propertyRuns } from "./test_seed.ts";

/** A copy of log bytes with one byte flipped inside the body of record `seq`. */
export function flipInRecord(bytes: Uint8Array, seq: number): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  let pos = 16;
  for (let n = 1; n < seq; n++) pos += 32 + view.getUint32(pos, true);
  out[pos + 33]! ^= 0xff;
  return out;
}

/** What a backend's test provides. */
export interface StoreHarness {
  /** A new, empty store. */
  create(): Promise<Store>;
  /** Flip one byte of a stored chunk in place. */
  corruptChunk(store: Store, hash: string): Promise<void>;
  /** Make a chunk look `ms` older (its write or last dedup hit). */
  ageChunk(store: Store, hash: string, ms: number): Promise<void>;
  /** Flip a byte inside record `seq` of a log that has records after it. */
  damageLog(store: Store, job: string, run: string, seq: number): Promise<void>;
}

/** Register the shared conformance tests for one backend. */
export function testStoreConformance(
  backend: string,
  harness: StoreHarness,
): void {
  test(`${backend}: get(put(bytes)) returns the bytes for any input`, async () => {
    const store = await harness.create();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
        const ref = await store.chunks.put(bytes);
        assert.equal(ref.hash, await blake3Hex(bytes));
        assert.equal(ref.size, bytes.length);
        assert.deepEqual(await store.chunks.get(ref.hash), bytes);
      }),
      propertyRuns(60),
    );
  });

  test(`${backend}: putValue/getValue round-trips structured values`, async () => {
    const store = await harness.create();
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue(),
        async (value) => {
          const ref = await putValue(store.chunks, value);
          assert.deepEqual(await getValue(store.chunks, ref.hash), value);
        },
      ),
      propertyRuns(60),
    );
    const typed = {
      v: new Float32Array([1.5, -2]),
      i: new Int32Array([7]),
      b: new Uint8Array([9]),
    };
    assert.deepEqual(
      await getValue(store.chunks, (await putValue(store.chunks, typed)).hash),
      typed,
    );
  });

  test(`${backend}: concurrent puts of large chunks keep each one intact`, async () => {
    const store = await harness.create();
    const blobs = [1, 2, 3].map((k) =>
      new Uint8Array((2 << 20) + k).map((_, i) => (i * k) & 0xff)
    );
    const refs = await Promise.all(
      blobs.concat(blobs[0]!).map((b) => store.chunks.put(b)),
    );
    assert.equal(new Set(refs.map((r) => r.hash)).size, 3);
    // Two racing puts of the same bytes may both store (an atomic rename of identical content).
    assert.ok([3, 4].includes(refs.filter((r) => r.stored).length));
    for (const [i, b] of blobs.entries()) {
      assert.equal(refs[i]!.hash, await blake3Hex(b));
      assert.deepEqual(await store.chunks.get(refs[i]!.hash), b);
    }
  });

  test(`${backend}: a second put of the same bytes is a dedup hit`, async () => {
    const store = await harness.create();
    const bytes = new TextEncoder().encode("same bytes");
    const first = await store.chunks.put(bytes);
    const second = await store.chunks.put(bytes);
    assert.equal(first.stored, true);
    assert.equal(second.stored, false);
    assert.equal(second.hash, first.hash);
    const all = [];
    for await (const h of store.chunks.list()) all.push(h);
    assert.deepEqual(all, [first.hash]);
  });

  test(`${backend}: get() detects a corrupted byte`, async () => {
    const store = await harness.create();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 512 }),
        async (bytes) => {
          const { hash } = await store.chunks.put(bytes);
          await harness.corruptChunk(store, hash);
          await assert.rejects(
            store.chunks.get(hash),
            (e: unknown) => e instanceof CorruptChunkError && e.hash === hash,
          );
          assert.equal(await store.chunks.delete(hash), true);
        },
      ),
      propertyRuns(20),
    );
  });

  test(`${backend}: has, stat, delete and missing chunks`, async () => {
    const store = await harness.create();
    const { hash } = await store.chunks.put(new Uint8Array([1, 2, 3]));
    assert.equal(await store.chunks.has(hash), true);
    assert.equal((await store.chunks.stat(hash))?.size, 3);
    assert.equal(await store.chunks.delete(hash), true);
    assert.equal(await store.chunks.delete(hash), false);
    assert.equal(await store.chunks.has(hash), false);
    assert.equal(await store.chunks.stat(hash), undefined);
    await assert.rejects(store.chunks.get(hash), MissingChunkError);
    await assert.rejects(store.chunks.get("not-a-hash"), TypeError);
  });

  test(`${backend}: logs append, replay, list and delete`, async () => {
    const store = await harness.create();
    const log = await store.createLog("job-a", "run-1");
    await Promise.all([
      log.append([{ n: 1 }]),
      log.append([{ n: 2 }, { n: 3 }]),
      log.append([{ n: 4 }]),
    ]);
    await log.close();
    await assert.rejects(store.createLog("job-a", "run-1"), /exists/);
    const again = await store.openLog("job-a", "run-1");
    assert.equal(await again.append([{ n: 5 }]), 5);
    await again.close();
    const reader = await store.readLog("job-a", "run-1");
    const seen = [];
    for await (const e of reader.replay<{ n: number }>({ verifyChain: true })) {
      seen.push([e.seq, e.body.n]);
    }
    assert.deepEqual(seen, [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
    await assert.rejects(reader.append([{}]), /read-only/);
    await (await store.createLog("job-a", "run-2", { n: 1 })).close();
    await (await store.createLog("job-b", "run-1", { n: 1 })).close();
    assert.deepEqual(await store.listJobs(), ["job-a", "job-b"]);
    assert.deepEqual(await store.listRuns("job-a"), ["run-1", "run-2"]);
    await store.deleteRun("job-a", "run-1");
    assert.deepEqual(await store.listRuns("job-a"), ["run-2"]);
    await assert.rejects(store.createLog("../evil", "run"), TypeError);
  });

  test(`${backend}: locks exclude a second holder until released`, async () => {
    const store = await harness.create();
    const lock = await store.lock("job-a");
    await assert.rejects(
      store.lock("job-a"),
      (e: unknown) => (e as { exitCode?: number }).exitCode === 3,
    );
    assert.equal((await store.readLock("job-a"))?.token, lock.info.token);
    await lock.release();
    assert.equal(await store.readLock("job-a"), undefined);
    const again = await store.lock("job-a");
    await assert.rejects(
      store.breakLock("job-a"),
      (e: unknown) => (e as { exitCode?: number }).exitCode === 3,
    );
    assert.equal(
      (await store.breakLock("job-a", { force: true }))?.token,
      again.info.token,
    );
    assert.equal(
      again.lost || (await store.readLock("job-a")) === undefined,
      true,
    );
  });

  test(`${backend}: delete(notTouchedSince) keeps a chunk a dedup hit refreshed after GC judged it old`, async () => {
    const store = await harness.create();
    const bytes = new TextEncoder().encode(`chunk ${backend}`);
    const { hash } = await store.chunks.put(bytes);
    await harness.ageChunk(store, hash, 7_200_000);
    const cutoff = Date.now() - 3_600_000;
    // GC has judged it old; a writer's dedup hit lands before GC deletes.
    assert.ok((await store.chunks.stat(hash))!.mtimeMs < cutoff);
    assert.equal((await store.chunks.put(bytes)).stored, false);
    assert.equal(
      await store.chunks.delete(hash, { notTouchedSince: cutoff }),
      false,
    );
    assert.deepEqual(await store.chunks.get(hash), bytes);
    await harness.ageChunk(store, hash, 7_200_000);
    assert.equal(
      await store.chunks.delete(hash, { notTouchedSince: cutoff }),
      true,
    );
    assert.equal(await store.chunks.has(hash), false);
    // A put after the delete writes the chunk again.
    assert.equal((await store.chunks.put(bytes)).stored, true);
  });

  test(`${backend}: createLog(first) publishes the first record with the log`, async () => {
    const store = await harness.create();
    const log = await store.createLog("j", "r", { type: "run" });
    assert.equal(log.length, 1);
    assert.equal(await log.append([{ n: 2 }]), 2);
    await log.close();
    const seen = [];
    for await (const e of (await store.readLog("j", "r")).replay()) {
      seen.push(e.body);
    }
    assert.deepEqual(seen, [{ type: "run" }, { n: 2 }]);
    // A log without its first record is unborn: not listed, set aside by the next createLog.
    await (await store.createLog("j", "unborn")).close();
    assert.deepEqual(await store.listRuns("j"), ["r"]);
    await (await store.createLog("j", "s", { type: "run" })).close();
    assert.deepEqual(await store.listRuns("j"), ["r", "s"]);
  });

  test(`${backend}: a log writer is fenced once its lock is broken`, async () => {
    const store = await harness.create();
    const first = await store.lock("j");
    const log = await store.createLog("j", "r", { n: 1 });
    assert.equal(await log.append([{ n: 2 }]), 2);
    await store.breakLock("j", { force: true });
    const second = await store.lock("j");
    const again = await store.openLog("j", "r");
    await assert.rejects(
      log.append([{ n: 3 }]),
      (e: unknown) => (e as Error).name === "LockLostError",
    );
    assert.equal(await again.append([{ n: 3 }]), 3);
    await again.close();
    await log.close();
    await first.release();
    await second.release();
    assert.equal((await store.readLog("j", "r")).length, 3);
  });

  test(`${backend}: repairLog() cuts at the last good record and keeps the rest aside`, async () => {
    const store = await harness.create();
    const log = await store.createLog("j", "r", { n: 1 });
    await log.append([{ n: 2 }, { n: 3 }]);
    await log.close();
    assert.equal((await store.repairLog("j", "r")).cutBytes, 0);
    await harness.damageLog(store, "j", "r", 2);
    const report = await store.repairLog("j", "r");
    assert.equal(report.records, 1);
    assert.ok(report.cutBytes > 0 && report.aside !== undefined);
    assert.equal((await store.readLog("j", "r")).length, 1);
    assert.deepEqual(await store.listRuns("j"), ["r"]);
  });
}
