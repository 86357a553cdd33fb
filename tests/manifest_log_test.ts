import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { openFsStore } from "../store/fs.ts";
import { createMemoryStore } from "../store/memory.ts";
import {
  CorruptLogError,
  FRAME_HEADER_SIZE,
  LOG_HEADER_SIZE,
  type ManifestLog,
} from "../store/manifest_log.ts";
import { tempDir } from "./temp.ts";
import { crc32c } from "../store/hash.ts";

async function bodies(log: ManifestLog): Promise<unknown[]> {
  const out = [];
  for await (const e of log.replay({ verifyChain: true })) out.push(e.body);
  return out;
}

/** A memory log with three records, and the byte offsets where each frame starts. */
async function threeRecords() {
  const store = createMemoryStore();
  const log = await store.createLog("j", "r");
  const starts = [LOG_HEADER_SIZE];
  for (const body of [{ k: "first" }, { k: "second" }, { k: "third" }]) {
    await log.append([body]);
    starts.push(store.logBytes.get("j/r")!.length);
  }
  return {
    store,
    starts,
    bytes: () => store.logBytes.get("j/r")!,
    set: (b: Uint8Array) => store.logBytes.set("j/r", b),
  };
}

const tornCases: [
  string,
  (b: Uint8Array, starts: number[]) => Uint8Array,
  string,
][] = [
  [
    "truncated header",
    (b, s) => b.subarray(0, s[2]! + 10),
    "truncated frame header",
  ],
  ["truncated payload", (b, s) => b.subarray(0, s[3]! - 2), "truncated body"],
  [
    "bad CRC at the end",
    (b, s) => flip(b, s[2]! + FRAME_HEADER_SIZE + 1),
    "checksum mismatch",
  ],
  [
    "bad length at the end",
    (b, s) => setU32(b, s[2]!, 0xfffffff0),
    "implausible body length",
  ],
  [
    "garbage appended",
    (b) =>
      concat(b, new TextEncoder().encode("garbage garbage garbage garbage!!")),
    "",
  ],
  [
    "zeros appended",
    (b) => concat(b, new Uint8Array(4096)),
    "implausible body length 0",
  ],
];

function flip(b: Uint8Array, at: number): Uint8Array {
  const c = b.slice();
  c[at]! ^= 0x40;
  return c;
}
function setU32(b: Uint8Array, at: number, v: number): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, v, true);
  return c;
}
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

for (const [name, damage, reason] of tornCases) {
  test(`ManifestLog open truncates a torn tail: ${name}`, async () => {
    const { store, starts, bytes, set } = await threeRecords();
    set(damage(bytes(), starts));
    const expectKept = name.includes("appended") ? 3 : 2;
    const reader = await store.readLog("j", "r");
    assert.ok(reader.tornTail, "a read-only open reports the torn tail");
    assert.match(reader.tornTail.reason, new RegExp(reason));
    assert.equal((await bodies(reader)).length, expectKept);
    const damagedLength = bytes().length;
    assert.equal(
      bytes().length,
      damagedLength,
      "a read-only open never changes the file",
    );
    const writer = await store.openLog("j", "r");
    assert.equal(writer.repaired?.offset, starts[expectKept]);
    assert.equal(bytes().length, starts[expectKept]);
    assert.equal(await writer.append([{ k: "after repair" }]), expectKept + 1);
    assert.deepEqual((await bodies(writer)).at(-1), { k: "after repair" });
  });
}

test("ManifestLog open reports a bad record in the middle as corruption", async () => {
  const { store, starts, bytes, set } = await threeRecords();
  set(flip(bytes(), starts[1]! + FRAME_HEADER_SIZE + 2));
  await assert.rejects(store.openLog("j", "r"), (e: unknown) => {
    assert.ok(e instanceof CorruptLogError);
    assert.equal(e.offset, starts[1]);
    assert.match(
      e.message,
      /memory:jobs\/j\/r\.log.*byte \d+.*checksum mismatch.*valid records follow/,
    );
    return true;
  });
  assert.equal(bytes().length, starts[3], "nothing was truncated");
});

test("ManifestLog.replay() with verifyChain detects a swapped record", async () => {
  const { store, starts, bytes, set } = await threeRecords();
  const b = bytes();
  const first = b.slice(starts[0]!, starts[1]!);
  const second = b.slice(starts[1]!, starts[2]!);
  // Keep sequence numbers and CRCs valid but swap bodies' links by rewriting seq fields.
  const swapped = concat(
    concat(b.slice(0, starts[0]!), second),
    concat(first, b.slice(starts[2]!)),
  );
  // Renumber and re-checksum both frames, so only the hash chain can tell.
  const view = new DataView(swapped.buffer);
  for (
    const [at, seq] of [[starts[0]!, 1n], [
      starts[0]! + second.length,
      2n,
    ]] as const
  ) {
    view.setBigUint64(at + 8, seq, true);
    const end = at + FRAME_HEADER_SIZE + view.getUint32(at, true);
    view.setUint32(at + 4, crc32c(swapped.subarray(at + 8, end)), true);
  }
  set(swapped);
  const reader = await store.readLog("j", "r");
  assert.equal(reader.tornTail, undefined);
  const plain = [];
  for await (const e of reader.replay()) plain.push(e.body);
  assert.deepEqual(plain, [{ k: "second" }, { k: "first" }, { k: "third" }]);
  await assert.rejects(bodies(reader), /does not link to record/);
});

test("ManifestLog rejects a file without the CAIRNLOG header", async () => {
  const { store, set } = await threeRecords();
  set(new TextEncoder().encode("not a log at all, really not"));
  await assert.rejects(store.readLog("j", "r"), SyntaxError);
});

test("ManifestLog on disk: group commit appends concurrent records in order", async () => {
  const store = await openFsStore(join(await tempDir(), "store"));
  const log = await store.createLog("j", "r");
  const seqs = await Promise.all(
    Array.from({ length: 50 }, (_, i) => log.append([{ i }])),
  );
  assert.deepEqual(
    [...seqs].sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  await log.close();
  const reader = await store.readLog("j", "r");
  const seen = (await bodies(reader)) as { i: number }[];
  assert.equal(seen.length, 50);
  assert.deepEqual(new Set(seen.map((b) => b.i)).size, 50);
  // Tear the file on disk and reopen for writing.
  const path = join(store.location, "jobs", "j", "r.log");
  const size = (await fs.stat(path)).size;
  await fs.truncate(path, size - 3);
  const writer = await store.openLog("j", "r");
  assert.equal(writer.length, 49);
  assert.equal(writer.repaired?.reason.startsWith("truncated body"), true);
  await writer.close();
});
