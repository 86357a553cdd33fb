import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyRetention,
  forgetRuns,
  parseCalendarDuration,
  type RetentionPolicy,
} from "../lib/forget.ts";
import { runJob } from "../lib/job.ts";
import { createMemoryStore } from "../store/memory.ts";
import { RESTIC_SNAPSHOTS, RESTIC_VECTORS } from "./forget_restic_vectors.ts";

const candidates = RESTIC_SNAPSHOTS.map(([startedAt, tags], i) => ({
  job: "restic",
  run: String(i),
  startedAt,
  status: "completed",
  tags,
}));

for (const [n, vector] of RESTIC_VECTORS.entries()) {
  test(
    `applyRetention keeps exactly restic's set for policy ${n} ${
      JSON.stringify(vector.policy)
    }`,
    () => {
      const report = applyRetention(
        candidates,
        vector.policy as RetentionPolicy,
        { now: Date.parse("2026-11-25T00:00:00Z") },
      );
      assert.deepEqual(report.keep.map((r) => Number(r.run)), vector.keep);
      assert.deepEqual(
        report.keep.map((r) => r.reasons),
        vector.reasons.map((l) => l.map((s) => s.replace("snapshot", "run"))),
      );
      assert.equal(
        report.keep.length + report.remove.length,
        RESTIC_SNAPSHOTS.length,
      );
    },
  );
}

test("applyRetention ignores runs in the future when counting keepWithin back", () => {
  const runs = ["2026-01-01", "2026-01-05", "2026-03-01"].map((d, i) => ({
    job: "j",
    run: `r${i}`,
    startedAt: `${d}T00:00:00Z`,
    status: "completed",
  }));
  const report = applyRetention(runs, { keepWithin: "3d" }, {
    now: Date.parse("2026-01-10T00:00:00Z"),
  });
  // The newest run not in the future is 2026-01-05; the future run is after the cut too.
  assert.deepEqual(report.keep.map((r) => r.run), ["r2", "r1"]);
});

test("applyRetention always keeps unfinished runs", () => {
  const report = applyRetention([
    {
      job: "j",
      run: "a",
      startedAt: "2026-01-01T00:00:00Z",
      status: "running",
    },
    {
      job: "j",
      run: "b",
      startedAt: "2026-01-02T00:00:00Z",
      status: "completed",
    },
  ], { keepLast: 1 });
  assert.deepEqual(report.keep.map((r) => [r.run, r.reasons]), [
    ["b", ["last run"]],
    ["a", ["unfinished"]],
  ]);
});

test("applyRetention refuses counts below -1 and bad tag lists", () => {
  assert.throws(() => applyRetention([], { keepDaily: -2 }), /keepDaily/);
  assert.throws(
    () => applyRetention([], { keepTags: ["a"] as unknown as string[][] }),
    /keepTags/,
  );
});

test("parseCalendarDuration refuses units restic does not know", () => {
  assert.throws(() => parseCalendarDuration("2w"), SyntaxError);
  assert.throws(() => parseCalendarDuration("5"), SyntaxError);
  assert.deepEqual(parseCalendarDuration(" 13d23h "), {
    years: 0,
    months: 0,
    days: 13,
    hours: 23,
  });
});

test("forgetRuns keeps runs by tag (keepTags) across a real store", async () => {
  const store = createMemoryStore();
  const tagsOf = [["weekly"], [], ["weekly", "prod"], []];
  for (const [i, tags] of tagsOf.entries()) {
    await runJob(
      "tagged",
      { store, newRun: true, tags },
      (job) => job.step("a", () => i),
    );
  }
  const report = await forgetRuns(store, { keepTags: [["weekly"]] });
  assert.equal(report.keep.length, 2);
  assert.ok(report.keep.every((r) => r.tags?.includes("weekly")));
  assert.equal((await store.listRuns("tagged")).length, 2);
});

test("runJob with retain applies the policy to the job's runs after completing", async () => {
  const store = createMemoryStore();
  for (let i = 0; i < 4; i++) {
    await runJob(
      "retained",
      { store, newRun: true, retain: { keepLast: 2 } },
      (job) => job.step("a", () => i),
    );
  }
  assert.equal((await store.listRuns("retained")).length, 2);
});
