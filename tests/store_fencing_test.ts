/**
 * Fencing, unlock and the store-level fixes of issue 13, with real processes
 * where a race is involved.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { openFsStore } from "../store/fs.ts";
import { createMemoryStore } from "../store/memory.ts";
import { LockedError, LockLostError } from "../store/lock.ts";
import { repairLog } from "../store/repair_log.ts";
import { collectGarbage } from "../lib/gc.ts";
import { collectOutput, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";

const APPENDER = new URL("./fixtures/fenced_appender.ts", import.meta.url);

/** Start the appender and resolve once it has committed `lines` records. */
function startAppender(root: string, force = false, lines = 5) {
  const child = startScript(APPENDER, force ? [root, "force"] : [root]);
  const done = collectOutput(child);
  const started = new Promise<void>((resolve, reject) => {
    let seen = 0;
    child.stdout!.on("data", (d: Buffer) => {
      seen += String(d).split("\n").filter((l) => /^\d+$/.test(l)).length;
      if (seen >= lines) resolve();
    });
    done.then((r) => reject(new Error(`appender exited early: ${r.stderr}`)));
  });
  return { child, done, started };
}

async function replaySeqs(root: string): Promise<unknown[]> {
  const store = await openFsStore(root);
  const log = await store.readLog("fenced", "r");
  const bodies = [];
  for await (const e of log.replay({ verifyChain: true })) bodies.push(e.body);
  return bodies;
}

test("ManifestLog.append() in a process whose lock file was removed by hand fails with LockLostError and appends nothing more", async () => {
  const root = join(await tempDir(), "store");
  const a = startAppender(root);
  await a.started;
  await fs.rm(join(root, "locks", "fenced.lock"));
  const result = await a.done;
  assert.equal(result.code, 5, result.stderr);
  const printed = result.stdout.trim().split("\n");
  assert.equal(printed.at(-1), "LockLostError");
  const last = Number(printed.at(-2));
  const bodies = await replaySeqs(root);
  assert.equal(bodies.length, last, "nothing appended after the last commit");
});

test("a log writer is fenced when its lock file is rewritten in place with another token (the one-stat fence sees the change)", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const lock = await store.lock("j");
  const log = await store.createLog("j", "r", { n: 1 });
  // Two appends: the first reads the lock in full, the second trusts its identity.
  assert.equal(await log.append([{ n: 2 }]), 2);
  assert.equal(await log.append([{ n: 3 }]), 3);
  const path = join(root, "locks", "j.lock");
  const text = await fs.readFile(path, "utf8");
  const token = (JSON.parse(text) as { token: string }).token;
  const other = token.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  // Past the file system's timestamp granularity, as a real edit would be.
  await new Promise((resolve) => setTimeout(resolve, 30));
  const handle = await fs.open(path, "r+");
  await handle.write(text.replace(token, other), 0, "utf8");
  await handle.close();
  await assert.rejects(log.append([{ n: 4 }]), LockLostError);
  await log.close();
  await lock.release();
  assert.equal((await store.readLog("j", "r")).length, 3);
});

test("two writers on one log after a forced takeover never interleave records", async () => {
  const root = join(await tempDir(), "store");
  const a = startAppender(root);
  await a.started;
  const b = startAppender(root, true, 20);
  await b.started;
  const resultA = await a.done;
  assert.equal(resultA.code, 5, resultA.stderr);
  assert.match(resultA.stdout, /LockLostError\n$/);
  b.child.kill("SIGKILL");
  await b.done;
  // Replay checks every sequence number and chain link: interleaving fails it.
  const bodies = await replaySeqs(root) as { n: number; pid: number }[];
  assert.ok(bodies.length >= 20);
  bodies.forEach((body, i) => assert.equal(body.n, i + 1));
  // Once B's records start, A never appears again.
  const firstB = bodies.findIndex((body) => body.pid === b.child.pid);
  assert.ok(firstB > 0);
  assert.ok(bodies.slice(firstB).every((body) => body.pid === b.child.pid));
});

test("Store.breakLock() refuses a live holder with LockedError unless force", async () => {
  for (
    const store of [
      createMemoryStore(),
      await openFsStore(join(await tempDir(), "s")),
    ]
  ) {
    const lock = await store.lock("j");
    const log = await store.createLog("j", "r", { n: 1 });
    await assert.rejects(store.breakLock("j"), LockedError);
    assert.equal(await log.append([{ n: 2 }]), 2);
    await store.breakLock("j", { force: true });
    await assert.rejects(log.append([{ n: 3 }]), LockLostError);
    await assert.rejects(log.append([{ n: 3 }]), LockLostError);
    await log.close();
    await lock.release();
  }
});

test("Store.listRuns() skips an unborn run (no complete first record) and createLog() sets it aside", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const lock = await store.lock("demo");
  await (await store.createLog("demo", "run-1", { type: "run" })).close();
  const log = await store.createLog("demo", "run-2", {
    type: "run",
    pad: "x".repeat(100),
  });
  await log.close();
  const path = join(root, "jobs", "demo", "run-2.log");
  for (const size of [60, 40, 16]) {
    await fs.truncate(path, size);
    assert.deepEqual(await store.listRuns("demo"), ["run-1"], `size ${size}`);
  }
  assert.deepEqual(await store.listJobs(), ["demo"]);
  await (await store.createLog("demo", "run-3", { type: "run" })).close();
  assert.deepEqual(await store.listRuns("demo"), ["run-1", "run-3"]);
  const names = await fs.readdir(join(root, "jobs", "demo"));
  assert.ok(names.some((n) => n.startsWith("run-2.log.unborn-")), names.join());
  assert.equal((await collectGarbage(store)).runs, 2);
  await lock.release();
});

test("repairLog() cuts a log damaged in the middle and keeps the cut bytes aside", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const lock = await store.lock("j");
  const log = await store.createLog("j", "r", { n: 1 });
  await log.append([{ n: 2 }, { n: 3 }, { n: 4 }]);
  await log.close();
  await lock.release();
  const path = join(root, "jobs", "j", "r.log");
  const bytes = new Uint8Array(await fs.readFile(path));
  const frame = 32 + 4;
  bytes[bytes.length - 3 * frame + 34]! ^= 0xff; // inside record 2
  await fs.writeFile(path, bytes);
  await assert.rejects(
    store.readLog("j", "r").then(async (l) => {
      for await (const _ of l.replay()) { /* read all */ }
    }),
    /cairn repair j\/r/,
  );
  const report = await repairLog(store, { job: "j", run: "r" });
  assert.equal(report.records, 1);
  assert.equal(report.cutBytes, 3 * frame);
  assert.deepEqual(
    new Uint8Array(await fs.readFile(report.aside!)),
    bytes.subarray(bytes.length - 3 * frame),
  );
  assert.equal((await store.readLog("j", "r")).length, 1);
  assert.equal((await repairLog(store, { job: "j", run: "r" })).cutBytes, 0);
});

test("openFsStore() creates a store idempotently under 40 concurrent first opens", async () => {
  const root = join(await tempDir(), "store");
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, () => openFsStore(root)),
  );
  assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
});

test("openFsStore() explains a config of null", async () => {
  const root = join(await tempDir(), "store");
  await openFsStore(root);
  await fs.chmod(join(root, "config"), 0o644);
  await fs.writeFile(join(root, "config"), "null");
  await assert.rejects(
    openFsStore(root),
    /expected a cairn-store version 1 config/,
  );
});

test("the fs store never follows symbolic links out of the store", async () => {
  const dir = await tempDir();
  const root = join(dir, "store");
  const outside = join(dir, "outside");
  await fs.mkdir(outside);
  const store = await openFsStore(root);
  const { hash } = await store.chunks.put(new Uint8Array([1, 2, 3]));
  // A chunk linked to a device: refused, never read.
  const chunkPath = join(root, "chunks", hash.slice(0, 2), hash);
  await fs.rm(chunkPath);
  await fs.symlink("/dev/zero", chunkPath);
  await assert.rejects(
    store.chunks.get(hash),
    /not a regular file|symbolic link|ELOOP/,
  );
  // A prefix directory linked outside: gc neither lists nor deletes through it.
  const other = "ab".repeat(32);
  await fs.writeFile(join(outside, other), "precious");
  await fs.symlink(outside, join(root, "chunks", "ab"));
  const fresh = await openFsStore(root);
  await collectGarbage(fresh, { graceMs: 0 });
  assert.equal(await fs.readFile(join(outside, other), "utf8"), "precious");
  // A job directory linked outside: no log is written there.
  await fs.symlink(outside, join(root, "jobs", "x"));
  await assert.rejects(
    fresh.createLog("x", "r", { n: 1 }),
    /symbolic link|ELOOP/,
  );
  assert.deepEqual((await fs.readdir(outside)).sort(), [other]);
});

test("verifyStore() reports a run log replaced by a directory and links inside the store", async () => {
  const dir = await tempDir();
  const root = join(dir, "store");
  const store = await openFsStore(root);
  const lock = await store.lock("j");
  await (await store.createLog("j", "r", { type: "x" })).close();
  await lock.release();
  await fs.mkdir(join(root, "jobs", "j", "s.log"));
  await fs.symlink("/dev/zero", join(root, "locks", "zero.lock"));
  const { verifyStore } = await import("../lib/verify.ts");
  const report = await verifyStore(store);
  const messages = report.problems.map((p) => `${p.kind}: ${p.message}`);
  assert.ok(
    messages.some((m) => /unreadable-log: .*s\.log.*directory/.test(m)),
    messages.join("\n"),
  );
  assert.ok(
    messages.some((m) => /foreign-entry: .*zero\.lock.*symbolic link/.test(m)),
    messages.join("\n"),
  );
});

test("cairn repair JOB/RUN fixes the log that verify reports, keeping the cut bytes", async () => {
  const { runCairn } = await import("./cli_command.ts");
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  const lock = await store.lock("j");
  const log = await store.createLog("j", "r", { n: 1 });
  await log.append([{ n: 2 }, { n: 3 }]);
  await log.close();
  await lock.release();
  const path = join(root, "jobs", "j", "r.log");
  const bytes = new Uint8Array(await fs.readFile(path));
  bytes[bytes.length - 2 * 36 + 34]! ^= 0xff; // inside record 2 of 3
  await fs.writeFile(path, bytes);
  const verify = await runCairn(["--store", root, "verify"]);
  assert.equal(verify.code, 4, verify.stderr);
  assert.match(verify.stdout + verify.stderr, /cairn repair j\/r/);
  const repair = await runCairn(["--store", root, "repair", "j/r"]);
  assert.equal(repair.code, 0, repair.stderr);
  assert.match(repair.stdout, /Cut run "j\/r" to 1 records/);
  const names = await fs.readdir(join(root, "jobs", "j"));
  assert.ok(names.some((n) => n.startsWith("r.log.cut-")), names.join());
  const bad = await runCairn(["--store", root, "repair", "nope"]);
  assert.equal(bad.code, 2, bad.stderr);
});
