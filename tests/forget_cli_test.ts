import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCairn } from "./cli_command.ts";
import { tempDir } from "./temp.ts";

test("cairn forget takes restic's flags: --keep-tag, --keep-last -1, --keep-within-daily with calendar months", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  await writeFile(join(dir, "a.txt"), "a\n");
  for (const tags of [["--tag", "release"], [], []]) {
    const run = await runCairn([
      "--store",
      store,
      "processor",
      "run",
      "file-index",
      "--dataset",
      "tagged",
      "--input",
      join(dir, "a.txt"),
      "--out",
      join(dir, "out.jsonl"),
      "--new-run",
      "--max-checkpoints",
      "100",
      ...tags,
    ]);
    assert.equal(run.code, 0, run.stderr);
  }
  const forget = (...flags: string[]) =>
    runCairn([
      "--store",
      store,
      "forget",
      "--json",
      "--dry-run",
      ...flags,
    ]);
  const all = JSON.parse((await forget("--keep-last", "-1")).stdout);
  assert.equal(all.keep.length, 3);
  const daily = JSON.parse((await forget("--keep-within-daily", "1m")).stdout);
  const days = new Set(
    [...daily.keep, ...daily.remove].map((r: { startedAt: string }) =>
      r.startedAt.slice(0, 10)
    ),
  );
  if (days.size === 1) {
    // restic keeps the newest run of the day, and the oldest run as well.
    assert.deepEqual(
      daily.keep.map((r: { reasons: string[] }) => r.reasons),
      [["daily within 1m"], ["oldest daily within 1m"]],
    );
  }
  const tagged = await forget("--keep-last", "1", "--keep-tag", "release");
  const report = JSON.parse(tagged.stdout);
  assert.equal(report.keep.length, 2);
  assert.deepEqual(
    report.keep.map((r: { reasons: string[] }) => r.reasons),
    [["last run"], ["has tags [release]"]],
  );
  const bad = await forget("--keep-within-weekly", "3w");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid --keep-within-weekly/);
});
