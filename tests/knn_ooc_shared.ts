/**
 * What the out-of-core kNN tests share: data for the tie-break rules, and the
 * kill-and-resume check of a streamed job run by a child script.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { seededRandom } from "../lib/random.ts";
import { killAfterLines, runScript, startScript } from "./child_process.ts";

/**
 * Small integer-valued rows (many ties), a few exact duplicates and a zero
 * row (for cosine with `zeroVector: "one"`): every tie-break rule is
 * exercised.
 *
 * @param rows Rows (at least 101).
 * @param cols Columns.
 * @param seed The random seed.
 * @returns Row-major float32 data.
 */
export function tieHeavy(
  rows: number,
  cols: number,
  seed: number,
): Float32Array {
  const random = seededRandom(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 4) - 1;
  for (const [from, to] of [[3, 40], [3, 41], [100, 7]] as const) {
    data.copyWithin(to * cols, from * cols, (from + 1) * cols);
  }
  data.fill(0, 9 * cols, 10 * cols);
  return data;
}

/** What {@linkcode assertKillsResume} runs and compares. */
export interface KillsResumeCase {
  /** The child script: prints a line per step and `done` at the end. */
  child: URL;
  /** Its arguments. */
  args: string[];
  /** Where it writes index.npy and distance.npy. */
  out: string;
  /** The uninterrupted run's outputs, to compare with. */
  baseline: string;
  /** Kill points, from the test's printed seed. */
  random: (min: number, max: number) => number;
  /** A check of the lines a killed child printed. */
  check?: (lines: string) => void;
}

/**
 * SIGKILL the child at seeded points (at least twice), rerun it to the end,
 * and assert that the rerun resumed (recomputed fewer than 20 blocks) and
 * wrote the baseline's bytes.
 *
 * @param c The case.
 */
export async function assertKillsResume(c: KillsResumeCase): Promise<void> {
  let kills = 0;
  for (let round = 0; round < 3; round++) {
    const lines = await killAfterLines(
      startScript(c.child, c.args),
      c.random(2, 8),
    );
    c.check?.(lines);
    if (lines.includes("done\n")) break;
    kills++;
  }
  assert.ok(kills >= 2, `the job was killed mid-run (${kills} kills)`);
  const last = await runScript(c.child, c.args);
  assert.equal(last.code, 0, last.stderr);
  assert.ok(
    last.stdout.split("\n").filter((l) => l.startsWith("step block/"))
      .length < 20,
    "the resumed run did not recompute every block",
  );
  for (const name of ["index.npy", "distance.npy"]) {
    assert.deepEqual(
      await readFile(join(c.out, name)),
      await readFile(join(c.baseline, name)),
      `${name} is byte-identical to the uninterrupted in-memory run's`,
    );
  }
}
