/**
 * Every script in examples/ runs under the runtime running the tests, exits
 * 0 and prints its result line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runScript } from "./child_process.ts";

const DIR = new URL("../examples/", import.meta.url);

/** A line each example must print. */
const EXPECTED: Record<string, RegExp> = {
  "resumable_job.ts":
    /^first run failed after 3 parts: Part 3 is not ready\nsecond run resumed: computed 3 parts, total 55\nthird run: computed 0 parts \(already complete\)$/m,
  "map_batches.ts":
    /^first call: 39 ok, 1 failed, 48 calls; .*No score for id 13\nsecond call: 43 results, 6 calls/m,
  "knn_resumable.ts":
    /^resumed run \S+: computed 10 of 13 blocks\n(.*\n)*rerun: already complete = true, computed 0$/m,
  "retention_gc.ts":
    /^kept 1 run, forgot 2; gc swept 2 chunks \(\d+ bytes\); verify: 0 problems in 2 chunks$/m,
};

const examples = readdirSync(fileURLToPath(DIR)).filter((f) =>
  f.endsWith(".ts")
).sort();

test("examples/ has an expected result line for every example", () => {
  assert.deepEqual(examples, Object.keys(EXPECTED).sort());
});

for (const name of examples) {
  test(`examples/${name} runs and prints its result`, async () => {
    const result = await runScript(new URL(name, DIR), [], { NO_COLOR: "1" });
    assert.equal(result.code, 0, `${name} failed:\n${result.stderr}`);
    const expected = EXPECTED[name];
    assert.ok(expected !== undefined, `add ${name} to EXPECTED`);
    assert.match(result.stdout, expected);
  });
}
