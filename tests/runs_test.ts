import { test } from "node:test";
import assert from "node:assert/strict";
import { openJob } from "../lib/job.ts";
import { foldRun } from "../lib/replay.ts";
import { listRuns, newestRun, resolveRun } from "../lib/runs.ts";
import { exportRun } from "../lib/io/export.ts";
import { createMemoryStore } from "../store/memory.ts";

function header(run: string, startedAt: string) {
  return {
    type: "run",
    job: "j",
    run,
    kind: "job",
    configHash: "",
    config: {},
    version: "1",
    startedAt,
    host: "h",
    pid: 1,
  } as const;
}

test("newestRun() picks the greatest run id even when the clock stepped back", () => {
  const older = foldRun("j", "20261124T030000.000Z-aaaa", [
    header("20261124T030000.000Z-aaaa", "2026-11-24T03:00:00.000Z"),
  ]);
  // Started later by id, but the wall clock had stepped back a day.
  const newer = foldRun("j", "20261124T030001.000Z-bbbb", [
    header("20261124T030001.000Z-bbbb", "2026-11-23T03:00:01.000Z"),
  ]);
  assert.equal(newestRun([newer, older]), newer);
  assert.equal(newestRun([older, newer]), newer);
  assert.equal(newestRun([]), undefined);
});

test("listRuns() and resolveRun() agree with openJob on the newest run", async () => {
  const store = createMemoryStore();
  const runs: string[] = [];
  for (let i = 0; i < 3; i++) {
    const job = await openJob("daily", { store, newRun: true });
    await job.step("a", () => i);
    await job.complete();
    runs.push(job.run);
  }
  const { runs: listed } = await listRuns(store, { latest: true });
  assert.deepEqual(listed.map((r) => r.run), [runs[2]]);
  assert.equal((await resolveRun(store, "daily")).state.run, runs[2]);
  assert.equal((await resolveRun(store, "daily", "latest")).latest, true);
  const first = await resolveRun(store, "daily", runs[0]);
  assert.equal(first.latest, false);
  const resumed = await openJob("daily", { store });
  assert.equal(resumed.run, runs[2], "openJob reopens the same newest run");
  await resumed.close();
  await assert.rejects(resolveRun(store, "daily", "2"), /Ambiguous run "2"/);
  await assert.rejects(resolveRun(store, "daily", "x"), RangeError);
  await assert.rejects(resolveRun(store, "nope"), /has no runs/);
});

test("exportRun() exports a named run, not only the newest", async () => {
  const store = createMemoryStore();
  const ids: string[] = [];
  for (const v of [1, 2]) {
    const job = await openJob("exp", { store, newRun: true });
    await job.step("v", () => v);
    await job.complete();
    ids.push(job.run);
  }
  let text = "";
  const write = (part: string | Uint8Array) => {
    text += String(part);
    return Promise.resolve();
  };
  const report = await exportRun(store, "exp", { run: ids[0]!, write });
  assert.equal(report.run, ids[0]);
  assert.equal(text, '{"key":"v","value":1}\n');
  await assert.rejects(
    exportRun(store, "exp", { write, steps: ["nope"] }),
    RangeError,
  );
  await assert.rejects(
    exportRun(store, "exp", { write, out: "x" }),
    /exactly one of `out` and `write`/,
  );
});
