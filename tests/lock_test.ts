import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  acquireLock,
  breakLock,
  LockedError,
  type LockInfo,
  lockStaleReason,
  readLock,
} from "../store/lock.ts";

const CHILD = fileURLToPath(
  new URL("./fixtures/lock_child.ts", import.meta.url),
);
const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
/** No process has a pid this large (Linux caps pids at 2^22). */
const DEAD_PID = 2 ** 30;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-lock-test-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function lockInfo(overrides: Partial<LockInfo> = {}): LockInfo {
  const now = new Date().toISOString();
  return {
    job: "nightly",
    host: hostname(),
    pid: process.pid,
    startedAt: now,
    heartbeatAt: now,
    token: "0123456789abcdef",
    ...overrides,
  };
}

async function writeLock(locksDir: string, info: LockInfo): Promise<void> {
  await mkdir(locksDir, { recursive: true });
  await writeFile(join(locksDir, `${info.job}.lock`), JSON.stringify(info));
}

interface Child {
  process: ChildProcess;
  /** Resolves with the first stdout line matching `pattern`. */
  line(pattern: RegExp): Promise<string>;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stdout(): string;
  stderr(): string;
}

/** Spawns tests/fixtures/lock_child.ts with the runtime running this test. */
function spawnChild(args: string[]): Child {
  const runArgs = IS_DENO ? ["run", "-A", CHILD] : ["run", CHILD];
  const child = spawn(process.execPath, [...runArgs, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let out = "";
  let err = "";
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  function check(): void {
    for (const waiter of [...waiters]) {
      const line = out.split("\n").find((l) => waiter.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  }
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    check();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    (resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
    },
  );
  return {
    process: child,
    exited,
    stdout: () => out,
    stderr: () => err,
    line(pattern) {
      return within(
        new Promise<string>((resolve) => {
          waiters.push({ pattern, resolve });
          check();
        }),
        15_000,
        () => `child never printed ${pattern}; stdout: ${out}; stderr: ${err}`,
      );
    },
  };
}

/** Rejects if `promise` has not settled after `ms` (guards against hangs). */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  message: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function exitOf(child: Child): Promise<
  { code: number | null; signal: string | null }
> {
  try {
    return await within(child.exited, 15_000, () => "child did not exit");
  } catch (error) {
    child.process.kill("SIGKILL");
    await child.exited;
    throw error;
  }
}

test("acquireLock() lets exactly one of two racing processes win", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    for (let round = 0; round < 3; round++) {
      // Odd rounds race for a stale lock (old heartbeat) instead of none.
      if (round % 2 === 1) {
        const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
        await writeLock(locksDir, lockInfo({ heartbeatAt: hourAgo }));
      }
      const children = [
        spawnChild(["race", locksDir, "nightly"]),
        spawnChild(["race", locksDir, "nightly"]),
      ];
      try {
        // Barrier: both are started and waiting before either tries.
        await Promise.all(children.map((c) => c.line(/^ready$/)));
        for (const c of children) c.process.stdin?.end("go\n");
        const results = await Promise.all(
          children.map((c) => c.line(/^(won|locked)$/)),
        );
        assert.deepEqual(results.sort(), ["locked", "won"], `round ${round}`);
        for (const c of children) {
          assert.deepEqual(await exitOf(c), { code: 0, signal: null });
        }
      } finally {
        for (const c of children) c.process.kill("SIGKILL");
      }
      assert.equal(await readLock(locksDir, "nightly"), undefined);
      assert.deepEqual(await readdir(locksDir), []);
    }
  });
});

test("acquireLock() takes over the lock of a SIGKILLed holder", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const child = spawnChild(["hold", locksDir, "nightly"]);
    let token: string;
    try {
      token = (await child.line(/^acquired /)).slice("acquired ".length);
      await assert.rejects(acquireLock(locksDir, "nightly"), LockedError);
    } finally {
      child.process.kill("SIGKILL");
    }
    // Wait for the exit so the child is reaped, not a zombie.
    assert.equal((await exitOf(child)).signal, "SIGKILL");

    const left = await readLock(locksDir, "nightly");
    assert.equal(left?.token, token);
    assert.equal(left?.pid, child.process.pid);
    assert.equal(left?.command, "hold");
    assert.equal(
      lockStaleReason(left!),
      `pid ${child.process.pid} is not running on host "${hostname()}"`,
    );

    const lock = await acquireLock(locksDir, "nightly");
    try {
      const now = await readLock(locksDir, "nightly");
      assert.equal(now?.pid, process.pid);
      assert.equal(now?.token, lock.info.token);
      assert.notEqual(now?.token, token);
    } finally {
      await lock.release();
    }
  });
});

test("acquireLock() heartbeat timer does not keep the process alive", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const child = spawnChild(["exit", locksDir, "nightly"]);
    const line = await child.line(/^acquired /);
    assert.deepEqual(await exitOf(child), { code: 0, signal: null });
    // Never released: the lock is left behind and is stale (pid gone).
    const left = await readLock(locksDir, "nightly");
    assert.equal(left?.token, line.slice("acquired ".length));
    assert.match(lockStaleReason(left!) ?? "", /is not running/);
  });
});

test("acquireLock() takes over a lock whose heartbeat is old", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const old = lockInfo({
      heartbeatAt: new Date(Date.now() - 3_600_000 - 5_000).toISOString(),
    });
    await writeLock(locksDir, old);
    assert.equal(lockStaleReason(old), "no heartbeat for 1h");
    assert.equal(lockStaleReason(old, { staleAfterMs: 7_200_000 }), undefined);

    const lock = await acquireLock(locksDir, "nightly");
    try {
      assert.notEqual(lock.info.token, old.token);
      assert.equal(
        (await readLock(locksDir, "nightly"))?.token,
        lock.info.token,
      );
    } finally {
      await lock.release();
    }
  });
});

test("acquireLock() throws LockedError with exitCode 3 for a live holder", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const live = lockInfo({
      host: hostname(),
      startedAt: "2026-11-23T03:00:01.000Z",
      command: "cairn run nightly",
    });
    await writeLock(locksDir, live);
    const error = await acquireLock(locksDir, "nightly").then(
      () => assert.fail("acquired a live lock"),
      (error: unknown) => error,
    );
    assert.ok(error instanceof LockedError);
    assert.equal(error.exitCode, 3);
    assert.equal(error.name, "LockedError");
    assert.equal(error.job, "nightly");
    assert.deepEqual(error.holder, live);
    assert.equal(
      error.message,
      `Cannot open job "nightly": locked by pid ${process.pid} on host "${hostname()}" since 2026-11-23T03:00:01Z (if that process is gone, break the lock with breakLock; to wait for it, set waitMs)`,
    );
    // The holder's file is untouched and nothing else is left behind.
    assert.deepEqual(await readLock(locksDir, "nightly"), live);
    assert.deepEqual(await readdir(locksDir), ["nightly.lock"]);
  });
});

test("acquireLock() with force takes a live holder's lock", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const first = await acquireLock(locksDir, "nightly");
    const second = await acquireLock(locksDir, "nightly", { force: true });
    try {
      assert.equal(
        (await readLock(locksDir, "nightly"))?.token,
        second.info.token,
      );
      await first.refresh();
      assert.equal(first.lost, true);
      assert.equal(second.lost, false);
    } finally {
      await first.release();
      await second.release();
    }
    assert.equal(await readLock(locksDir, "nightly"), undefined);
  });
});

test("acquireLock() with waitMs gets the lock once the holder releases", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const holder = await acquireLock(locksDir, "nightly");
    const released = new Promise<void>((resolve, reject) => {
      setTimeout(() => holder.release().then(resolve, reject), 300);
    });
    const [short, long] = await Promise.allSettled([
      acquireLock(locksDir, "nightly", { waitMs: 100, pollMs: 20 }),
      acquireLock(locksDir, "nightly", { waitMs: 5_000, pollMs: 20 }),
    ]);
    await released;
    assert.equal(short.status, "rejected");
    assert.ok(short.reason instanceof LockedError);
    assert.equal(short.reason.holder.token, holder.info.token);
    assert.equal(long.status, "fulfilled");
    try {
      assert.equal(
        (await readLock(locksDir, "nightly"))?.token,
        long.value.info.token,
      );
    } finally {
      await long.value.release();
    }
  });
});

test("acquireLock() stops waiting when the signal aborts", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const holder = await acquireLock(locksDir, "nightly");
    try {
      const reason = new Error("Stop waiting");
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(
        acquireLock(locksDir, "nightly", {
          waitMs: 10_000,
          signal: controller.signal,
        }),
        (error) => error === reason,
      );
      await assert.rejects(
        acquireLock(locksDir, "other", { signal: controller.signal }),
        (error) => error === reason,
      );
    } finally {
      await holder.release();
    }
  });
});

test("acquireLock() lets exactly one of many concurrent calls win", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    for (const stale of [false, true]) {
      if (stale) await writeLock(locksDir, lockInfo({ pid: DEAD_PID }));
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () => acquireLock(locksDir, "nightly")),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      assert.equal(won.length, 1, `stale: ${stale}`);
      for (const r of lost) assert.ok(r.reason instanceof LockedError);
      assert.deepEqual(await readdir(locksDir), ["nightly.lock"]);
      await won[0]!.value.release();
      assert.deepEqual(await readdir(locksDir), []);
    }
  });
});

test("acquireLock() takes over a corrupt lock file", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    await mkdir(locksDir);
    await writeFile(join(locksDir, "nightly.lock"), "{not json");
    await assert.rejects(readLock(locksDir, "nightly"), SyntaxError);
    const lock = await acquireLock(locksDir, "nightly");
    await lock.release();
    await writeFile(join(locksDir, "nightly.lock"), "[]");
    assert.equal(await breakLock(locksDir, "nightly"), undefined);
    assert.deepEqual(await readdir(locksDir), []);
  });
});

test("acquireLock() removes an abandoned break guard", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    await writeLock(locksDir, lockInfo({ pid: DEAD_PID }));
    const guard = join(locksDir, "nightly.lock.break");
    // Left by a live pid, but 60 s old.
    await writeFile(guard, JSON.stringify({ host: hostname(), pid: 1 }));
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(guard, minuteAgo, minuteAgo);
    const lock = await acquireLock(locksDir, "nightly");
    await lock.release();
    // Fresh, but left by a dead pid on this host.
    await writeLock(locksDir, lockInfo({ pid: DEAD_PID }));
    await writeFile(guard, JSON.stringify({ host: hostname(), pid: DEAD_PID }));
    assert.equal((await breakLock(locksDir, "nightly"))?.pid, DEAD_PID);
    assert.deepEqual(await readdir(locksDir), []);
  });
});

test("JobLock.refresh() rewrites heartbeatAt and keeps the token", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const lock = await acquireLock(locksDir, "nightly", {
      command: "cairn run nightly",
    });
    try {
      const before = await readLock(locksDir, "nightly");
      await new Promise((resolve) => setTimeout(resolve, 5));
      await lock.refresh();
      const after = await readLock(locksDir, "nightly");
      assert.ok(after !== undefined && before !== undefined);
      assert.ok(after.heartbeatAt > before.heartbeatAt);
      assert.deepEqual(after, { ...before, heartbeatAt: after.heartbeatAt });
      assert.deepEqual(lock.info, after);
      assert.equal(lock.lost, false);
      assert.deepEqual(await readdir(locksDir), ["nightly.lock"]);
    } finally {
      await lock.release();
    }
  });
});

test("acquireLock() heartbeat timer refreshes the lock", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const lock = await acquireLock(locksDir, "nightly", { heartbeatMs: 10 });
    try {
      const first = lock.info.heartbeatAt;
      const deadline = Date.now() + 5_000;
      let seen = first;
      while (seen === first && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        seen = (await readLock(locksDir, "nightly"))?.heartbeatAt ?? first;
      }
      assert.ok(seen > first, "heartbeatAt never changed");
    } finally {
      await lock.release();
    }
    assert.equal(await readLock(locksDir, "nightly"), undefined);
  });
});

test("JobLock.release() does not remove a lock taken over by another holder", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");

    // refresh() first: it notices and marks the lock lost.
    const a = await acquireLock(locksDir, "nightly");
    assert.equal(
      (await breakLock(locksDir, "nightly", { force: true }))?.token,
      a.info.token,
    );
    const b = await acquireLock(locksDir, "nightly");
    const bFile = await readFile(join(locksDir, "nightly.lock"), "utf8");
    await a.refresh();
    assert.equal(a.lost, true);
    await a.release();
    await a.release();
    assert.equal(await readFile(join(locksDir, "nightly.lock"), "utf8"), bFile);

    // release() straight away leaves the new holder alone too.
    assert.equal(
      (await breakLock(locksDir, "nightly", { force: true }))?.token,
      b.info.token,
    );
    const c = await acquireLock(locksDir, "nightly");
    await b.release();
    assert.equal((await readLock(locksDir, "nightly"))?.token, c.info.token);
    await b.refresh();
    assert.equal(b.lost, true);

    await c.release();
    assert.equal(c.lost, false);
    assert.equal(await readLock(locksDir, "nightly"), undefined);
    assert.equal(await breakLock(locksDir, "nightly"), undefined);
  });
});

test("lockStaleReason() judges pids only on the same host", () => {
  const now = Date.parse("2026-11-23T03:11:00.000Z");
  const info = lockInfo({
    pid: DEAD_PID,
    host: "elsewhere",
    heartbeatAt: "2026-11-23T03:00:00.000Z",
  });
  assert.equal(lockStaleReason(info, { now: now - 60_000 }), undefined);
  assert.equal(
    lockStaleReason(info, { now: now - 60_000, host: "elsewhere" }),
    `pid ${DEAD_PID} is not running on host "elsewhere"`,
  );
  assert.equal(lockStaleReason(info, { now }), "no heartbeat for 11m");
  assert.equal(
    lockStaleReason({ ...info, pid: process.pid, host: hostname() }, {
      now: now - 60_000,
    }),
    undefined,
  );
  assert.equal(
    lockStaleReason({ ...info, heartbeatAt: "yesterday" }),
    'invalid heartbeat time "yesterday"',
  );
  assert.equal(lockStaleReason({ ...info, pid: 0 }), "invalid pid 0");
});

test("acquireLock() rejects invalid job names with TypeError", async () => {
  await withTempDir(async (dir) => {
    const locksDir = join(dir, "locks");
    const invalid: unknown[] = [
      "",
      ".hidden",
      "..",
      "a/b",
      "../escape",
      "a b",
      "nightly\n",
      "é",
      "x".repeat(129),
      "y".repeat(100_000),
      42,
      undefined,
    ];
    for (const job of invalid) {
      await assert.rejects(
        acquireLock(locksDir, job as string),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message.startsWith("Cannot use job name ") &&
          (typeof job !== "string" ||
            error.message.includes(
              job.length > 60
                ? `(${job.length} characters)`
                : `"${JSON.stringify(job).slice(1, -1)}"`,
            )),
        `job ${JSON.stringify(job)}`,
      );
      await assert.rejects(readLock(locksDir, job as string), TypeError);
      await assert.rejects(breakLock(locksDir, job as string), TypeError);
    }
    await assert.rejects(acquireLock(locksDir, ""), {
      message:
        'Cannot use job name "": use 1 to 128 characters from A-Z, a-z, 0-9, ".", "_" and "-", not starting with "." or "-"',
    });
    await assert.rejects(acquireLock(locksDir, ".x"), {
      message:
        'Cannot use job name ".x": use 1 to 128 characters from A-Z, a-z, 0-9, ".", "_" and "-", not starting with "." or "-"',
    });
    for (const job of ["x".repeat(128), "nightly-2.0_B", "_x", "x-"]) {
      const lock = await acquireLock(locksDir, job);
      await lock.release();
    }
    await assert.rejects(
      acquireLock(locksDir, "ok", { heartbeatMs: 600_000 }),
      RangeError,
    );
    await assert.rejects(
      acquireLock(locksDir, "ok", { waitMs: -1 }),
      RangeError,
    );
  });
});
