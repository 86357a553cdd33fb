import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigChangedError,
  InterruptedError,
  MissingStepOutputError,
  openJob,
  runJob,
} from "../lib/job.ts";
import type { JobEvent } from "../lib/events.ts";
import { latestRun, replayJob, replayRun } from "../lib/replay.ts";
import { abortOnSignals } from "../lib/signals.ts";
import { createMemoryStore } from "../store/memory.ts";
import { LockedError } from "../store/lock.ts";

test("Job.step() runs each step once and resumes from the log", async () => {
  const store = createMemoryStore();
  const calls: string[] = [];
  const first = await openJob("j", { store, config: { n: 3 } });
  assert.equal(first.resumed, false);
  await first.step("a", () => (calls.push("a"), { v: 1 }));
  await first.close();
  const second = await openJob("j", { store, config: { n: 3 } });
  assert.equal(second.resumed, true);
  assert.equal(second.run, first.run);
  assert.deepEqual(await second.step("a", () => (calls.push("a"), { v: 99 })), {
    v: 1,
  });
  await second.step("b", () => (calls.push("b"), 2));
  await second.complete({ rows: 2 });
  assert.deepEqual(calls, ["a", "b"]);
  const state = await replayRun(store, "j", first.run);
  assert.equal(state.status, "completed");
  assert.equal(state.attempts, 2);
  assert.deepEqual(state.end?.summary, { rows: 2 });
});

test("openJob() on a completed run with the same config returns stored results without new records", async () => {
  const store = createMemoryStore();
  await runJob(
    "done",
    { store },
    (job) => job.step("x", () => 5),
  );
  const before = (await replayJob(store, "done"))[0]!.records;
  let called = false;
  const value = await runJob(
    "done",
    { store },
    (job) => job.step("x", () => (called = true, 6)),
  );
  assert.equal(value, 5);
  assert.equal(called, false);
  assert.equal((await replayJob(store, "done"))[0]!.records, before);
});

test("openJob() reports a changed config on an unfinished run, naming what changed", async () => {
  const store = createMemoryStore();
  const job = await openJob("cfg", {
    store,
    config: { k: 10, metric: "cosine" },
  });
  await job.close();
  await assert.rejects(
    openJob("cfg", { store, config: { k: 20, metric: "cosine" } }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigChangedError);
      assert.deepEqual(e.changes, ["config.k: 10 -> 20"]);
      assert.match(e.message, /newRun: true/);
      assert.doesNotMatch(e.message, /--new-run/);
      assert.equal(e.option, "newRun");
      return true;
    },
  );
  await assert.rejects(
    openJob("cfg", {
      store,
      config: { k: 10, metric: "cosine" },
      version: "2",
    }),
    /version: "1" -> "2"/,
  );
  const fresh = await openJob("cfg", {
    store,
    config: { k: 20, metric: "cosine" },
    newRun: true,
  });
  assert.notEqual(fresh.run, job.run);
  await fresh.complete();
  // The lock was released after the refused opens.
  assert.equal(await store.readLock("cfg"), undefined);
});

test("openJob() warns when the code changes but the version does not", async () => {
  const store = createMemoryStore();
  const job = await openJob("code", { store, code: (x: number) => x + 1 });
  await job.close();
  const events: JobEvent[] = [];
  const again = await openJob("code", {
    store,
    code: (x: number) => x + 2,
    onEvent: (e) => events.push(e),
  });
  await again.close();
  assert.ok(
    events.some((e) =>
      e.type === "warning" &&
      /changed since run .* but version "1" did not/.test(e.message)
    ),
  );
});

test("Job.step() recomputes a step whose chunk was deleted", async () => {
  const store = createMemoryStore();
  const job = await openJob("lost", { store });
  await job.step("a", () => "value");
  await job.close();
  store.chunkBytes.clear();
  const events: JobEvent[] = [];
  const again = await openJob("lost", {
    store,
    onEvent: (e) => events.push(e),
  });
  let recomputed = 0;
  assert.equal(await again.step("a", () => (recomputed++, "value")), "value");
  assert.equal(recomputed, 1);
  assert.ok(
    events.some((e) =>
      e.type === "warning" && /lost its output/.test(e.message)
    ),
  );
  await again.complete();
});

test("Job.step() retries with backoff and records each failure", async () => {
  const store = createMemoryStore();
  const job = await openJob("flaky", {
    store,
    retry: { retries: 3, initialDelayMs: 1 },
  });
  let calls = 0;
  assert.equal(
    await job.step("a", () => {
      if (++calls < 3) throw new Error(`boom ${calls}`);
      return "ok";
    }),
    "ok",
  );
  await assert.rejects(
    job.step("b", () => {
      throw new Error("always");
    }, { retry: { retries: 1, initialDelayMs: 1 } }),
    /always/,
  );
  await job.fail(new Error("b failed"));
  const state = (await replayJob(store, "flaky"))[0]!;
  assert.deepEqual(state.failures.map((f) => [f.key, f.attempt, f.willRetry]), [
    ["a", 1, true],
    ["a", 2, true],
    ["b", 1, true],
    ["b", 2, false],
  ]);
  assert.equal(state.steps.get("a")?.attempt, 3);
  assert.equal(state.status, "failed");
});

test("Job.stepStream() stores items as chunks and reads them back", async () => {
  const store = createMemoryStore();
  const job = await openJob("stream", { store, maxChunkBytes: 64 });
  const items = Array.from(
    { length: 20 },
    (_, i) => ({ i, pad: "x".repeat(i * 10) }),
  );
  assert.equal(
    await job.stepStream("s", async function* () {
      yield* items;
    }),
    20,
  );
  const back = [];
  for await (const item of job.readStream("s")) back.push(item);
  assert.deepEqual(back, items);
  await job.complete();
});

test("Job.step() reuses another run's output through the memo namespace", async () => {
  const store = createMemoryStore();
  let calls = 0;
  await runJob(
    "m1",
    { store, memo: "square@1" },
    (job) => job.step("x", () => (calls++, 49), { memo: "7" }),
  );
  const value = await runJob("m2", {
    store,
    memo: "square@1",
  }, (job) => job.step("y", () => (calls++, 0), { memo: "7" }));
  assert.equal(value, 49);
  assert.equal(calls, 1);
  const state = (await replayJob(store, "m2"))[0]!;
  assert.equal(state.steps.get("y")?.memoHit, true);
});

test("runJob() records interrupted when stopped, and no step starts after the stop", async () => {
  const store = createMemoryStore();
  const controller = new AbortController();
  let ran = 0;
  await assert.rejects(
    runJob(
      "stop",
      { store, signal: controller.signal },
      async (job) => {
        for (let i = 0; i < 10; i++) {
          await job.step(`s${i}`, () => {
            ran++;
            if (i === 2) controller.abort();
            return i;
          });
        }
      },
    ),
    (e: unknown) => e instanceof InterruptedError && e.exitCode === 130,
  );
  assert.equal(ran, 3);
  const state = (await replayJob(store, "stop"))[0]!;
  assert.equal(state.status, "interrupted");
  assert.equal(state.steps.size, 3);
  assert.equal(await store.readLock("stop"), undefined);
});

test("openJob() refuses a job locked by another holder with exit code 3", async () => {
  const store = createMemoryStore();
  const job = await openJob("busy", { store });
  await assert.rejects(
    openJob("busy", { store }),
    (e: unknown) => e instanceof LockedError && e.exitCode === 3,
  );
  await job.close();
});

test("Job.step() rejects bad keys and runJob() records failures", async () => {
  const store = createMemoryStore();
  await assert.rejects(
    runJob("bad", { store }, async (job) => {
      await assert.rejects(job.step("", () => 1), TypeError);
      throw new RangeError("the body failed");
    }),
    /the body failed/,
  );
  const state = (await replayJob(store, "bad"))[0]!;
  assert.equal(state.status, "failed");
  assert.equal(state.end?.error, "the body failed");
});

test("openJob() gives new runs ids that sort after the previous run, even within one millisecond", async () => {
  const store = createMemoryStore();
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    const job = await openJob("fast", { store, newRun: true });
    ids.push(job.run);
    await job.complete();
  }
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, 20);
  assert.match(ids[0]!, /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/);
  assert.deepEqual(await store.listRuns("fast"), ids);
});

test("runJob() recomputes a lost chunk of a completed run and completes it again", async () => {
  const store = createMemoryStore();
  const opts = { store, config: { v: 1 } };
  let calls = 0;
  const body = async (job: import("../lib/job.ts").Job) => {
    const a = await job.step("a", () => (calls++, "A"));
    const b = await job.step("b", () => (calls++, "B"));
    return a + b;
  };
  assert.equal(await runJob("heal", opts, body), "AB");
  const bHash = (await replayJob(store, "heal"))[0]!.steps.get("b")!.output;
  assert.equal(bHash.kind, "value");
  if (bHash.kind === "value") store.chunkBytes.delete(bHash.chunks[0]!.hash);
  assert.equal(await runJob("heal", opts, body), "AB");
  assert.equal(calls, 3, "only the step whose chunk was lost ran again");
  const state = (await replayJob(store, "heal"))[0]!;
  assert.equal(state.status, "completed");
  assert.equal(state.attempts, 2);
  assert.equal(
    (await replayJob(store, "heal")).length,
    1,
    "no new run was started",
  );
});

test("runJob() completes a run whose body finished even if a stop came at the end, and records its summary", async () => {
  const store = createMemoryStore();
  const controller = new AbortController();
  const result = await runJob(
    "late-stop",
    {
      store,
      signal: controller.signal,
      summarize: (n: number) => ({ total: n }),
    },
    async (job) => {
      const n = await job.step("only", () => 7);
      controller.abort(); // e.g. SIGINT while the last output file was written
      return n;
    },
  );
  assert.equal(result, 7);
  const state = (await replayJob(store, "late-stop"))[0]!;
  assert.equal(state.status, "completed");
  assert.deepEqual(state.end?.summary, { total: 7 });
  const again = await openJob("late-stop", { store });
  assert.deepEqual(again.summary, { total: 7 });
  await again.close();
});

test("Job.step() on a completed run takes a new step from another run's memo by reopening the run", async () => {
  const store = createMemoryStore();
  const opts = { store, memo: "shared@1" };
  await runJob(
    "donor",
    opts,
    (job) => job.step("x", () => "from donor", { memo: "k" }),
  );
  await runJob("taker", opts, (job) => job.step("first", () => 1));
  let calls = 0;
  const value = await runJob(
    "taker",
    opts,
    (job) => job.step("second", () => (calls++, "computed"), { memo: "k" }),
  );
  assert.equal(value, "from donor");
  assert.equal(calls, 0);
  const state = (await replayJob(store, "taker"))[0]!;
  assert.equal(state.status, "completed");
  assert.equal(state.attempts, 2);
  assert.equal(state.steps.get("second")?.memoHit, true);
});

/** Flip one bit of a stored chunk in a memory store. */
function flipBit(store: ReturnType<typeof createMemoryStore>, hash: string) {
  const entry = store.chunkBytes.get(hash)!;
  const bytes = entry.bytes.slice();
  bytes[bytes.length >> 1]! ^= 0x10;
  store.chunkBytes.set(hash, { ...entry, bytes });
}

function valueChunk(
  job: { stepRecord(key: string): { output: unknown } | undefined },
  key: string,
): string {
  const output = job.stepRecord(key)!.output as {
    kind: string;
    chunks: { hash: string }[];
  };
  assert.equal(output.kind, "value");
  return output.chunks[0]!.hash;
}

test("Job.read() reports a flipped chunk as MissingStepOutputError, deletes it, and step() recomputes it", async () => {
  const store = createMemoryStore();
  const job = await openJob("flip", { store });
  await job.step("a", () => ({ n: 1, text: "x".repeat(100) }));
  const hash = valueChunk(job, "a");
  flipBit(store, hash);
  const events: JobEvent[] = [];
  await job.close();
  const again = await openJob("flip", {
    store,
    onEvent: (e) => events.push(e),
  });
  await assert.rejects(again.read("a"), (e: unknown) => {
    assert.ok(e instanceof MissingStepOutputError);
    assert.equal(e.reason, "corrupt");
    assert.equal(e.key, "a");
    return true;
  });
  assert.equal(again.isDone("a"), false);
  assert.equal(store.chunkBytes.has(hash), false);
  assert.ok(
    events.some((e) =>
      e.type === "warning" && /lost its output/.test(e.message)
    ),
  );
  let calls = 0;
  const value = await again.step(
    "a",
    () => (calls++, { n: 1, text: "x".repeat(100) }),
  );
  assert.deepEqual(value, { n: 1, text: "x".repeat(100) });
  assert.equal(calls, 1);
  assert.equal(await again.read("a").then((v) => (v as { n: number }).n), 1);
  await assert.rejects(
    again.read("nope"),
    (e: unknown) =>
      e instanceof MissingStepOutputError && e.reason === "not-done",
  );
  await again.complete();
});

test("Job.checkStep() finds a flipped bit in a completed run only with readData, and the rerun heals it", async () => {
  const store = createMemoryStore();
  await runJob("check", { store }, async (job) => {
    await job.step("a", () => new Float64Array(64).fill(1));
    await job.step("b", () => new Float64Array(64).fill(2));
  });
  const first = (await replayJob(store, "check"))[0]!;
  const hashB = (first.steps.get("b")!.output as { chunks: { hash: string }[] })
    .chunks[0]!.hash;
  flipBit(store, hashB);
  let calls = 0;
  await runJob("check", { store }, async (job) => {
    assert.equal(job.status, "completed");
    assert.equal(await job.checkStep("a", { readData: true }), true);
    assert.equal(await job.checkStep("b"), true); // present, not read
    assert.equal(await job.checkStep("b", { readData: true }), false);
    assert.equal(job.isDone("b"), false);
    await job.step("b", () => (calls++, new Float64Array(64).fill(2)));
  });
  assert.equal(calls, 1);
  const states = await replayJob(store, "check");
  assert.equal(states.length, 1);
  assert.equal(states[0]!.status, "completed");
  // Every chunk the run references reads back intact.
  for (const step of states[0]!.steps.values()) {
    for (const ref of (step.output as { chunks: { hash: string }[] }).chunks) {
      await store.chunks.get(ref.hash);
    }
  }
});

class Point {
  x = 1;
}

test("Job.step() with stats that cannot be encoded fails only that step, with the real TypeError", async () => {
  const store = createMemoryStore();
  const job = await openJob("bad-stats", { store });
  const results = await Promise.allSettled([
    job.step("good-1", async () => {
      await new Promise((r) => setTimeout(r, 5));
      return 1;
    }),
    job.step("bad", (ctx) => {
      ctx.stats({ where: new Point() });
      return 2;
    }),
    job.step("good-2", async () => {
      await new Promise((r) => setTimeout(r, 5));
      return 3;
    }),
  ]);
  assert.equal(results[0]!.status, "fulfilled");
  assert.equal(results[2]!.status, "fulfilled");
  const bad = results[1]!;
  assert.equal(bad.status, "rejected");
  assert.ok(bad.status === "rejected" && bad.reason instanceof TypeError);
  assert.match(String(bad.reason.message), /stats of step "bad"/);
  assert.match(String(bad.reason.message), /Point/);
  // Later appends still work.
  assert.equal(await job.step("after", () => 4), 4);
  await job.complete();
  const state = (await replayJob(store, "bad-stats"))[0]!;
  assert.equal(state.status, "completed");
  assert.deepEqual([...state.steps.keys()].sort(), [
    "after",
    "good-1",
    "good-2",
  ]);
});

test("runJob() installs no signal handlers; abortOnSignals() stops it on SIGTERM with exit code 143", async () => {
  const store = createMemoryStore();
  const before = process.listenerCount("SIGINT");
  await runJob("no-handlers", { store }, async (job) => {
    assert.equal(process.listenerCount("SIGINT"), before);
    assert.equal(process.listenerCount("SIGTERM"), 0);
    await job.step("a", () => 1);
  });
  // SIGTERM: Deno's test runner takes SIGINT for itself.
  const stop = abortOnSignals({ signals: ["SIGTERM"] });
  try {
    assert.equal(stop.exitCode, undefined);
    await assert.rejects(
      runJob("sigint", { store, signal: stop.signal }, async (job) => {
        await job.step("a", () => 1);
        const aborted = new Promise((r) =>
          stop.signal.addEventListener("abort", r)
        );
        // Deno's signal listeners do not keep the event loop alive.
        const keepAlive = setInterval(() => {}, 1000);
        process.kill(process.pid, "SIGTERM");
        await aborted.finally(() => clearInterval(keepAlive));
        await job.step("b", () => 2);
      }),
      (e: unknown) => {
        assert.ok(e instanceof InterruptedError);
        assert.equal(e.signal, "SIGTERM");
        assert.equal(e.exitCode, 143);
        return true;
      },
    );
    assert.equal(stop.exitCode, 143);
  } finally {
    stop.dispose();
  }
  assert.equal(process.listenerCount("SIGTERM"), 0);
  const state = (await replayJob(store, "sigint"))[0]!;
  assert.equal(state.status, "interrupted");
  assert.equal(state.end?.error, "stopped by SIGTERM");
});

test("openJob() resumes the newest run by id even when the clock stepped back", async () => {
  const store = createMemoryStore();
  const first = await openJob("clock", { store });
  await first.step("a", () => 1);
  await first.complete();
  const RealDate = Date;
  const hourAgo = () => RealDate.now() - 3_600_000;
  class PastDate extends RealDate {
    constructor(...args: unknown[]) {
      super(...((args.length === 0 ? [hourAgo()] : args) as [number]));
    }
    static override now() {
      return hourAgo();
    }
  }
  globalThis.Date = PastDate as DateConstructor;
  let second;
  try {
    second = await openJob("clock", { store, newRun: true });
    await second.step("a", () => 1);
    await second.close(); // unfinished: the next open must resume it
  } finally {
    globalThis.Date = RealDate;
  }
  const states = await replayJob(store, "clock");
  assert.equal(states.length, 2);
  const newest = states.find((s) => s.run === second.run)!;
  const oldest = states.find((s) => s.run === first.run)!;
  assert.ok(newest.startedAt < oldest.startedAt, "the clock stepped back");
  assert.equal(latestRun(states)?.run, second.run);
  const third = await openJob("clock", { store });
  assert.equal(third.run, second.run);
  assert.ok(third.resumed);
  await third.complete();
});

test("Job.settle() gives a generator runJob's lifecycle: completed, failed or interrupted", async () => {
  const store = createMemoryStore();
  /** Yields step results as they are done, the way a map engine streams them. */
  async function* stream(name: string, signal?: AbortSignal, failAt = -1) {
    const job = await openJob(name, { store, ...(signal ? { signal } : {}) });
    try {
      for (let i = 0; i < 4; i++) {
        yield await job.step(`item-${i}`, () => {
          if (i === failAt) throw new Error(`Item ${i} failed`);
          return i * i;
        });
      }
    } catch (error) {
      await job.settle({ ok: false, error });
      throw error;
    }
    await job.settle({ ok: true, summary: { items: 4 } });
  }
  const values = [];
  for await (const v of stream("gen-ok")) values.push(v);
  assert.deepEqual(values, [0, 1, 4, 9]);
  const ok = (await replayJob(store, "gen-ok"))[0]!;
  assert.equal(ok.status, "completed");
  assert.deepEqual(ok.end?.summary, { items: 4 });

  await assert.rejects(async () => {
    for await (const _ of stream("gen-fail", undefined, 2));
  }, /Item 2 failed/);
  assert.equal((await replayJob(store, "gen-fail"))[0]!.status, "failed");

  const stop = new AbortController();
  await assert.rejects(async () => {
    for await (const v of stream("gen-stop", stop.signal)) {
      if (v === 1) stop.abort();
    }
  }, InterruptedError);
  const stopped = (await replayJob(store, "gen-stop"))[0]!;
  assert.equal(stopped.status, "interrupted");
  assert.equal(stopped.steps.size, 2);
  // The lock was released every time.
  const again = await openJob("gen-stop", { store });
  assert.ok(again.resumed);
  await again.close();
});
