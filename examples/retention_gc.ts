/**
 * Retention and garbage collection from the library: three daily runs of a
 * job, then `forgetRuns` keeps the latest, `collectGarbage` sweeps the
 * chunks only the forgotten runs referenced, and `verifyStore` re-hashes
 * what is left. The same as `cairn forget --keep-last 1`, `cairn gc
 * --grace 0s` and `cairn verify --read-data`.
 *
 * ```sh
 * deno run -A examples/retention_gc.ts [--store DIR]   # or: bun run examples/retention_gc.ts
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
import {
  abortOnSignals,
  collectGarbage,
  forgetRuns,
  openStore,
  runJob,
  verifyStore,
} from "../mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { store: { type: "string" } },
});
const temp = values.store === undefined
  ? await mkdtemp(join(tmpdir(), "cairn-example-"))
  : undefined;
const store = await openStore(values.store ?? join(temp!, "store"));

// Ctrl-C stops a job cleanly: its run is recorded interrupted.
const stop = abortOnSignals({ exitOnSecondSignal: true });
for (const day of ["2026-11-21", "2026-11-22", "2026-11-23"]) {
  await runJob(
    "daily-report",
    { store, config: { day }, newRun: true, signal: stop.signal },
    async (job) => {
      const rows = await job.step(
        "rows",
        () => Array.from({ length: 1000 }, (_, i) => `${day} row ${i}`),
      );
      return await job.step("count", () => rows.length);
    },
  );
}

stop.dispose();

const forgot = await forgetRuns(store, { jobs: ["daily-report"], keepLast: 1 });
// graceMs: 0 sweeps at once; the default grace period protects chunks that a
// job running right now has written but not yet recorded.
const gc = await collectGarbage(store, { graceMs: 0 });
const check = await verifyStore(store, { readData: true });
console.log(
  `kept ${forgot.keep.length} run, forgot ${forgot.remove.length}; gc swept ${gc.swept} chunks (${gc.sweptBytes} bytes); verify: ${check.problems.length} problems in ${check.chunks} chunks`,
);
if (temp !== undefined) await rm(temp, { recursive: true });
