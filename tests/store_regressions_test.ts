/**
 * Regressions from the fault campaign (issue 13): each test failed (or hung
 * past the test timeout) before its fix.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeValue, encodeValue } from "../store/cbor.ts";
import { createMemoryStore } from "../store/memory.ts";
import { testRandom } from "./test_seed.ts";

test("decodeValue() reads a 300 KB bignum (tag 2) in linear time", () => {
  const magnitude = new Uint8Array(300_000).fill(0xab);
  magnitude[0] = 0x7f;
  const bytes = new Uint8Array(6 + magnitude.length);
  bytes.set([0xc2, 0x5a, 0x00, 0x04, 0x93, 0xe0]); // tag 2, 300,000-byte string
  bytes.set(magnitude, 6);
  const value = decodeValue<bigint>(bytes);
  assert.equal(typeof value, "bigint");
  assert.equal(value >> BigInt(8 * (magnitude.length - 1)), 0x7fn);
  assert.deepEqual(encodeValue(value), bytes);
  assert.equal(decodeValue(encodeValue(-value)), -value);
});

test("decodeValue() refuses items nested 10,000 deep with a clear RangeError", () => {
  for (const head of [0x81, 0xa1, 0xc6]) { // array, map (key 0), tag 6
    const bytes = new Uint8Array(10_000).fill(head);
    if (head === 0xa1) {
      for (let i = 0; i < bytes.length; i += 2) bytes[i + 1] = 0x00;
    }
    assert.throws(() => decodeValue(bytes), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /nested more than \d+ deep/);
      return true;
    });
  }
  // A reasonable depth still decodes.
  let value: unknown = 1;
  for (let i = 0; i < 100; i++) value = [value];
  assert.deepEqual(decodeValue(encodeValue(value)), value);
});

test("decodeValue() never allocates what a header merely claims", () => {
  // An array, a map and a byte string claiming 2^40 items: each fails at the end of input.
  for (const head of [0x9b, 0xbb, 0x5b]) {
    const bytes = new Uint8Array([head, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    assert.throws(() => decodeValue(bytes), SyntaxError);
  }
});

test("ManifestLog.append() fails only the append whose record cannot be encoded", async () => {
  const store = createMemoryStore();
  const log = await store.createLog("j", "r");
  class Opaque {
    x = 1;
  }
  const results = await Promise.allSettled([
    log.append([{ ok: 1 }]),
    log.append([{ bad: new Opaque() }]),
    log.append([{ ok: 2 }]),
  ]);
  assert.equal(results[0]!.status, "fulfilled");
  assert.equal(results[2]!.status, "fulfilled");
  assert.equal(results[1]!.status, "rejected");
  const reason = (results[1] as PromiseRejectedResult).reason;
  assert.ok(reason instanceof TypeError, String(reason));
  assert.equal(await log.append([{ ok: 3 }]), 3);
  const seen = [];
  for await (const e of log.replay({ verifyChain: true })) seen.push(e.body);
  assert.deepEqual(seen, [{ ok: 1 }, { ok: 2 }, { ok: 3 }]);
});

test("ManifestLog replay scans 16 MiB of appended garbage in linear time", async () => {
  const { seed, random } = testRandom("log resync garbage");
  const store = createMemoryStore();
  const log = await store.createLog("j", "r");
  await log.append([{ a: 1 }, { b: 2 }]);
  await log.close();
  const good = store.logBytes.get("j/r")!;
  const garbage = new Uint8Array(16 << 20);
  for (let i = 0; i < garbage.length; i++) garbage[i] = random() * 256;
  // A run of small plausible lengths, the worst case for a checksum at every offset.
  for (let i = 0; i < 1 << 20; i += 4) garbage.set([0xf0, 0xff, 0x00, 0x00], i);
  const bytes = new Uint8Array(good.length + garbage.length);
  bytes.set(good);
  bytes.set(garbage, good.length);
  store.logBytes.set("j/r", bytes);
  const read = await store.readLog("j", "r");
  assert.equal(read.length, 2, `seed ${seed}`);
  assert.equal(read.tornTail?.offset, good.length, `seed ${seed}`);
});

test("writeFileAtomically() refuses to replace a symbolic link or a device", async () => {
  const { writeFileAtomically } = await import("../store/files.ts");
  const { mkdtemp, readlink, rm, writeFile, readFile, symlink } = await import(
    "node:fs/promises"
  );
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = await mkdtemp(join(tmpdir(), "cairn-atomic-"));
  try {
    const target = join(dir, "target");
    await writeFile(target, "keep");
    const link = join(dir, "link");
    await symlink(target, link);
    await assert.rejects(
      writeFileAtomically(link, (chunk) => chunk("x")),
      /symbolic link/,
    );
    assert.equal(await readlink(link), target);
    assert.equal(await readFile(target, "utf8"), "keep");
    await assert.rejects(
      writeFileAtomically("/dev/null", (chunk) => chunk("x")),
      /device/,
    );
    await writeFileAtomically(target, (chunk) => chunk("new"));
    assert.equal(await readFile(target, "utf8"), "new");
  } finally {
    await rm(dir, { recursive: true });
  }
});
