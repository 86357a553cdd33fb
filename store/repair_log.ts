/**
 * Repairing a run log damaged in the middle (a bad record followed by good
 * ones, which replay refuses): the log is cut back to its last good record
 * and the cut bytes are kept aside, never deleted. Layout in `docs/format.md`.
 *
 * @module
 */
import type { LogRepair } from "./manifest_log.ts";
import type { Store } from "./store.ts";

/** Which run to repair. */
export interface RunRef {
  /** The job's name. */
  job: string;
  /** The run id. */
  run: string;
}

/** Options for {@linkcode repairLog}. */
export interface RepairLogOptions {
  /** How long to wait for the job's lock. Default: 0 (fail at once with `LockedError`). */
  waitMs?: number;
}

/**
 * Cut a damaged run log back to its last good record, under the job's lock.
 * The cut bytes go to `<run>.log.cut-<ms>` beside the log (a log without one
 * good record is moved whole to `<run>.log.unborn-<ms>`). A sound log is left
 * as it is (`cutBytes` is 0).
 *
 * @param store The store.
 * @param target The job and run.
 * @param options How long to wait for the lock.
 * @returns What was cut.
 * @throws {LockedError} If a live process holds the job.
 *
 * @example Repair a log with a flipped byte in its first record
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMemoryStore } from "./memory.ts";
 * import { repairLog } from "./repair_log.ts";
 * const store = createMemoryStore();
 * const log = await store.createLog("j", "r", { n: 1 });
 * await log.append([{ n: 2 }, { n: 3 }]);
 * const bytes = store.logBytes.get("j/r")!;
 * const second = bytes.length - 2 * (32 + 4); // frames of {n: 2} and {n: 3}
 * bytes[second + 34]! ^= 0xff; // inside record 2: record 3 still follows
 * const report = await repairLog(store, { job: "j", run: "r" });
 * assert.equal(report.records, 1);
 * assert.ok(report.cutBytes > 0 && report.aside !== undefined);
 * ```
 */
export async function repairLog(
  store: Store,
  target: RunRef,
  options: RepairLogOptions = {},
): Promise<LogRepair> {
  const lock = await store.lock(target.job, {
    waitMs: options.waitMs ?? 0,
    command: `repair ${target.job}/${target.run}`,
  });
  try {
    return await store.repairLog(target.job, target.run);
  } finally {
    await lock.release();
  }
}
