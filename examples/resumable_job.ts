/**
 * A plain resumable job: the first run fails half way, the second resumes
 * from the first step that has no done record, and a third has nothing to do.
 *
 * ```sh
 * deno run -A examples/resumable_job.ts [--store DIR]   # or: bun run examples/resumable_job.ts
 * ```
 *
 * Without `--store` it uses a fresh temporary store and removes it after.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { abortOnSignals, runJob } from "../mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { store: { type: "string" } },
});
const temp = values.store === undefined
  ? await mkdtemp(join(tmpdir(), "cairn-example-"))
  : undefined;
const store = values.store ?? join(temp!, "store");

let computed = 0;
// Ctrl-C stops the job cleanly: the run is recorded interrupted, rerun to resume.
const stop = abortOnSignals({ exitOnSecondSignal: true });

/** Sum the squares of six parts; each part is one step, stored once done. */
async function nightly(failAt?: number): Promise<number> {
  return await runJob(
    "nightly-squares",
    { store, config: { parts: 6 }, signal: stop.signal },
    async (job) => {
      let sum = 0;
      for (let part = 0; part < 6; part++) {
        sum += await job.step(`part-${part}`, () => {
          if (part === failAt) throw new Error(`Part ${part} is not ready`);
          computed++;
          return part * part;
        });
      }
      return sum;
    },
  );
}

try {
  await nightly(3);
} catch (error) {
  console.log(
    `first run failed after ${computed} parts: ${(error as Error).message}`,
  );
}
computed = 0;
const total = await nightly();
console.log(`second run resumed: computed ${computed} parts, total ${total}`);
computed = 0;
await nightly();
console.log(`third run: computed ${computed} parts (already complete)`);
stop.dispose();
if (temp !== undefined) await rm(temp, { recursive: true });
