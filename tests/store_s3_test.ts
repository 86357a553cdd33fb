import { test } from "node:test";
import assert from "node:assert/strict";
import { openS3Store } from "../store/s3.ts";
import { CorruptChunkError } from "../store/chunk_store.ts";
import type { Store } from "../store/store.ts";
import { flipInRecord, testStoreConformance } from "./store_conformance.ts";
import { freshS3Url, rawClient, s3 } from "./s3_env.ts";
import { startIgnoringS3 } from "./fixtures/s3_fake.ts";
import { testRandom } from "./test_seed.ts";
import { collectOutput, killAfterLines, startScript } from "./child_process.ts";

const skip = s3.skip;
const clientOf = (store: Store) => rawClient(store.location);
const prefixOf = (store: Store) => clientOf(store).location.prefix;

if (skip !== undefined) {
  test("openS3Store() conformance on Ceph RGW", { skip }, () => {});
} else {
  testStoreConformance("s3", {
    create: async () => await openS3Store(await freshS3Url(), { env: s3.env! }),
    async corruptChunk(store, hash) {
      const client = clientOf(store);
      const key = `${prefixOf(store)}chunks/${hash.slice(0, 2)}/${hash}`;
      const bytes = (await client.get(key))!.body;
      bytes[0]! ^= 0xff;
      await client.put(key, bytes);
    },
    async ageChunk(store, hash, ms) {
      const client = clientOf(store);
      const key = `${prefixOf(store)}chunks/${hash.slice(0, 2)}/${hash}`;
      await client.copy(key, key, { "cairn-touched": String(Date.now() - ms) });
    },
    async damageLog(store, job, run, seq) {
      const client = clientOf(store);
      const dir = `${prefixOf(store)}jobs/${job}/${run}.log/`;
      const log = await store.readLog(job, run);
      const keys = [];
      for await (const o of client.list(dir)) keys.push(o.key);
      const parts = [];
      for (const key of keys) parts.push((await client.get(key))!.body);
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) bytes.set(p, at), at += p.length;
      await log.close();
      for (const key of keys.slice(1)) await client.delete(key);
      await client.put(keys[0]!, flipInRecord(bytes, seq));
    },
  });
}

test(
  "openS3Store() refuses a prefix whose config is another format",
  { skip },
  async () => {
    const url = await freshS3Url();
    const client = rawClient(url);
    await client.put(
      `${client.location.prefix}config`,
      new TextEncoder().encode('{"format":"x"}'),
    );
    await assert.rejects(
      openS3Store(url, { env: s3.env! }),
      /expected a cairn-store version 1 config/,
    );
  },
);

test("openS3Store() refuses a server that ignores If-None-Match, naming it", async () => {
  const fake = await startIgnoringS3();
  try {
    await assert.rejects(
      openS3Store("s3://bucket/p", {
        env: {
          AWS_ENDPOINT_URL: fake.url,
          AWS_ACCESS_KEY_ID: "a",
          AWS_SECRET_ACCESS_KEY: "s",
        },
        client: { attempts: 1 },
      }),
      (error: Error) =>
        /ignores conditional writes/.test(error.message) &&
        error.message.includes(fake.url),
    );
  } finally {
    await fake.close();
  }
});

test(
  "openLog() on S3: of 16 racing writers exactly one wins each record, and the log replays cleanly",
  { skip },
  async () => {
    const url = await freshS3Url("race");
    const stores = await Promise.all(
      Array.from({ length: 16 }, () => openS3Store(url, { env: s3.env! })),
    );
    await (await stores[0]!.createLog("race", "r", { round: 0 })).close();
    const rounds = 4;
    for (let round = 1; round <= rounds; round++) {
      // Every writer opens the log as it stands, then all append record N at once.
      const logs = await Promise.all(stores.map((s) => s.openLog("race", "r")));
      assert.ok(logs.every((log) => log.length === round));
      const results = await Promise.allSettled(
        logs.map((log, writer) => log.append([{ round, writer }])),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1, `round ${round}: ${won.length} writers won`);
      for (const r of results) {
        if (r.status === "rejected") {
          assert.match(String(r.reason), /another writer appended segment/);
        }
      }
      await Promise.all(logs.map((log) => log.close()));
    }
    const seen: unknown[] = [];
    const reader = await stores[0]!.readLog("race", "r");
    for await (
      const e of reader.replay<{ round: number }>({ verifyChain: true })
    ) {
      seen.push([e.seq, e.body.round]);
    }
    assert.deepEqual(
      seen,
      Array.from({ length: rounds + 1 }, (_, i) => [i + 1, i]),
    );
  },
);

test(
  "lock() on S3 takes over the lease of a SIGKILLed writer, whose acknowledged records all stay",
  { skip },
  async () => {
    const url = await freshS3Url("lease");
    const child = startScript(
      new URL("./fixtures/s3_lease_child.ts", import.meta.url),
      [url],
      s3.env!,
    );
    const printed = await killAfterLines(child, 3);
    const acked = printed.trim().split("\n").map(Number).filter((n) => n > 0);
    assert.ok(acked.length >= 3, `child printed ${JSON.stringify(printed)}`);
    const store = await openS3Store(url, { env: s3.env! });
    // Its pid is gone on this host, so the lease is free at once.
    const lock = await store.lock("leased", { waitMs: 10_000 });
    const log = await store.openLog("leased", "r");
    assert.ok(log.length >= acked.at(-1)!);
    await log.append([{ n: log.length + 1, pid: process.pid }]);
    await log.close();
    await lock.release();
    const ns: number[] = [];
    const reader = await store.readLog("leased", "r");
    for await (const e of reader.replay<{ n: number }>({ verifyChain: true })) {
      ns.push(e.body.n);
    }
    assert.deepEqual(ns, ns.map((_, i) => i + 1));
  },
);

test(
  "lock() on S3 takes over a lease whose heartbeat expired, and fences a live holder it forced out",
  { skip },
  async () => {
    const url = await freshS3Url("expiry");
    const client = rawClient(url);
    const old = new Date(Date.now() - 60_000).toISOString();
    // A holder on another machine that stopped renewing a minute ago.
    await client.put(
      `${client.location.prefix}locks/leased.lock`,
      new TextEncoder().encode(JSON.stringify({
        job: "leased",
        host: "elsewhere",
        pid: 4211,
        startedAt: old,
        heartbeatAt: old,
        token: "00ff",
      })),
    );
    const store = await openS3Store(url, { env: s3.env! });
    await assert.rejects(
      store.lock("leased"),
      (e: Error) => e.name === "LockedError",
    );
    const lock = await store.lock("leased", { staleAfterMs: 30_000 });
    assert.equal((await store.readLock("leased"))?.token, lock.info.token);
    await (await store.createLog("leased", "r", { n: 1 })).close();
    await lock.release();
    assert.equal(await store.readLock("leased"), undefined);
    // A live writer forced out stops before its next append.
    const child = startScript(
      new URL("./fixtures/s3_lease_child.ts", import.meta.url),
      [url],
      s3.env!,
    );
    const ended = collectOutput(child);
    await new Promise<void>((resolve) => {
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        if (out.split("\n").length > 3) {
          resolve();
        }
      });
    });
    const taker = await store.lock("leased", { force: true });
    const result = await ended;
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stdout, /LockLostError\n$/);
    const log = await store.openLog("leased", "r");
    const n = await log.append([{ n: log.length + 1, pid: process.pid }]);
    await log.close();
    await taker.release();
    const ns: number[] = [];
    for await (
      const e of (await store.readLog("leased", "r")).replay<{ n: number }>({
        verifyChain: true,
      })
    ) {
      ns.push(e.body.n);
    }
    assert.equal(ns.length, n);
    assert.deepEqual(ns, ns.map((_, i) => i + 1));
  },
);

test(
  "chunks.get({ size }) on S3 never reads much more than the recorded size of an oversized object",
  { skip },
  async () => {
    const url = await freshS3Url("bounded");
    let received = 0;
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (response.body === null) return response;
      const counted = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            received += chunk.length;
            controller.enqueue(chunk);
          },
        }),
      );
      return new Response(counted, response);
    };
    const store = await openS3Store(url, {
      env: s3.env!,
      client: { fetch: counting },
    });
    const { hash } = await store.chunks.put(new Uint8Array([1, 2, 3]));
    // Something replaced the 3-byte chunk with 16 MiB.
    const client = rawClient(url);
    await client.put(
      `${client.location.prefix}chunks/${hash.slice(0, 2)}/${hash}`,
      new Uint8Array(16 << 20),
    );
    received = 0;
    await assert.rejects(
      store.chunks.get(hash, { size: 3 }),
      (e: unknown) => e instanceof CorruptChunkError && e.hash === hash,
    );
    assert.ok(received < 4 << 20, `read ${received} bytes of a 16 MiB object`);
  },
);

test(
  "chunks.put() racing GC's delete(notTouchedSince) on S3 never loses a chunk it reported stored or deduplicated",
  { skip },
  async () => {
    const url = await freshS3Url("gcrace");
    const [writer, gc] = await Promise.all([
      openS3Store(url, { env: s3.env! }),
      openS3Store(url, { env: s3.env! }),
    ]);
    const client = rawClient(url);
    const { between } = testRandom("s3 gc race delays");
    let deleted = 0;
    let hits = 0;
    for (let i = 0; i < 30; i++) {
      const bytes = new TextEncoder().encode(`race ${i} ${url}`);
      const { hash } = await writer.chunks.put(bytes);
      const key = `${client.location.prefix}chunks/${hash.slice(0, 2)}/${hash}`;
      await client.copy(key, key, {
        "cairn-touched": String(Date.now() - 7_200_000),
      });
      const cutoff = Date.now() - 3_600_000;
      const delay = between(0, 12);
      const [put, removed] = await Promise.all([
        new Promise((r) => setTimeout(r, delay)).then(() =>
          writer.chunks.put(bytes)
        ),
        gc.chunks.delete(hash, { notTouchedSince: cutoff }),
      ]);
      if (removed) deleted++;
      if (!put.stored) hits++;
      assert.deepEqual(
        await writer.chunks.get(hash),
        bytes,
        `round ${i}: put said stored=${put.stored}, delete said ${removed}`,
      );
    }
    // Both outcomes happened, or the race was not exercised.
    assert.ok(
      deleted > 0 && hits > 0,
      `deleted ${deleted}, dedup hits ${hits}`,
    );
  },
);
