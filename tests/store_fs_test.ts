import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { openFsStore, sweepTemp } from "../store/fs.ts";
import { flipInRecord, testStoreConformance } from "./store_conformance.ts";
import { tempDir } from "./temp.ts";

testStoreConformance("fs", {
  create: async () => openFsStore(join(await tempDir(), "store")),
  async corruptChunk(store, hash) {
    const path = join(store.location, "chunks", hash.slice(0, 2), hash);
    await fs.chmod(path, 0o644);
    const bytes = await fs.readFile(path);
    bytes[0]! ^= 0xff;
    await fs.writeFile(path, bytes);
  },
  async ageChunk(store, hash, ms) {
    const then = new Date(Date.now() - ms);
    const path = join(store.location, "chunks", hash.slice(0, 2), hash);
    await fs.utimes(path, then, then);
  },
  async damageLog(store, job, run, seq) {
    const path = join(store.location, "jobs", job, `${run}.log`);
    await fs.writeFile(
      path,
      flipInRecord(new Uint8Array(await fs.readFile(path)), seq),
    );
  },
});

test("openFsStore() writes a versioned config and read-only chunk files", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const config = JSON.parse(await fs.readFile(join(root, "config"), "utf8"));
  assert.deepEqual(config, {
    format: "cairn-store",
    version: 1,
    hash: "blake3-256",
    encoding: "cbor",
  });
  const { hash } = await store.chunks.put(new Uint8Array([42]));
  const mode =
    (await fs.stat(join(root, "chunks", hash.slice(0, 2), hash))).mode & 0o777;
  assert.equal(
    mode & 0o222,
    0,
    `chunk file mode ${mode.toString(8)} should not be writable`,
  );
  assert.deepEqual(await fs.readdir(join(root, "tmp")), []);
});

test("openFsStore() refuses a non-empty directory that is not a store", async () => {
  const root = await tempDir();
  await fs.writeFile(join(root, "notes.txt"), "mine");
  await assert.rejects(openFsStore(root), /not empty and has no cairn config/);
  assert.equal(await fs.readFile(join(root, "notes.txt"), "utf8"), "mine");
});

test("openFsStore() rejects a config of another version", async () => {
  const root = join(await tempDir(), "store");
  await openFsStore(root);
  await fs.chmod(join(root, "config"), 0o644);
  await fs.writeFile(
    join(root, "config"),
    JSON.stringify({ format: "cairn-store", version: 9, hash: "blake3-256" }),
  );
  await assert.rejects(
    openFsStore(root),
    /expected a cairn-store version 1 config/,
  );
});

test("sweepTemp() removes only old temp files", async () => {
  const root = join(await tempDir(), "store");
  await openFsStore(root);
  const old = join(root, "tmp", "old.tmp");
  await fs.writeFile(old, "x");
  const past = new Date(Date.now() - 3_600_000);
  await fs.utimes(old, past, past);
  await fs.writeFile(join(root, "tmp", "new.tmp"), "y");
  assert.equal(await sweepTemp(root, 60_000), 1);
  assert.deepEqual(await fs.readdir(join(root, "tmp")), ["new.tmp"]);
});
