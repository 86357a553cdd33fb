import { test } from "node:test";
import assert from "node:assert/strict";
import { openS3Store } from "../store/s3.ts";
import type { Store } from "../store/store.ts";
import { flipInRecord, testStoreConformance } from "./store_conformance.ts";
import { freshS3Url, rawClient, s3 } from "./s3_env.ts";

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
