/**
 * Breaking a job's lock left by a crashed or unreachable process, without
 * letting a second writer in beside a live one.
 *
 * @module
 */
import { type LockInfo, lockStaleReason } from "../store/lock.ts";
import type { Store } from "../store/store.ts";

/**
 * Options for {@linkcode unlockJob}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { UnlockJobOptions } from "./unlock.ts";
 * const options: UnlockJobOptions = { force: false };
 * assert.equal(options.force, false);
 * ```
 */
export interface UnlockJobOptions {
  /**
   * Remove the lock even when its holder looks alive (a holder on another
   * host known to be gone). The holder, if it still runs, is fenced: it stops
   * at its next append or heartbeat.
   *
   * @default {false}
   */
  force?: boolean;
}

/**
 * What {@linkcode unlockJob} removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { UnlockReport } from "./unlock.ts";
 * const report: UnlockReport = { job: "x", removed: null, holderWasAlive: false, staleReason: null };
 * assert.equal(report.removed, null);
 * ```
 */
export interface UnlockReport {
  /** The job. */
  job: string;
  /** The lock removed, or null when there was none. */
  removed: LockInfo | null;
  /** Whether the holder looked alive (only with `force`). */
  holderWasAlive: boolean;
  /** Why the lock counted as stale, when it did. */
  staleReason: string | null;
}

/**
 * Remove a job's lock whose holder is gone. A holder that looks alive (a live
 * pid on this host, or a recent heartbeat) is refused unless `force` is set.
 *
 * @param store The store.
 * @param job The job name.
 * @param options See {@linkcode UnlockJobOptions}.
 * @returns What was removed.
 * @throws {LockedError} If the holder looks alive and `force` is not set.
 *
 * @example A live holder is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { unlockJob } from "./unlock.ts";
 * import { openJob } from "./job.ts";
 * import { LockedError } from "../store/lock.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("held", { store });
 * await assert.rejects(unlockJob(store, "held"), LockedError);
 * await job.close();
 * assert.equal((await unlockJob(store, "held")).removed, null);
 * ```
 */
export async function unlockJob(
  store: Store,
  job: string,
  options: UnlockJobOptions = {},
): Promise<UnlockReport> {
  // The store refuses a live holder with LockedError unless forced.
  const removed = await store.breakLock(job, { force: options.force ?? false });
  const reason = removed === undefined ? undefined : lockStaleReason(removed);
  return {
    job,
    removed: removed ?? null,
    holderWasAlive: removed !== undefined && reason === undefined,
    staleReason: reason ?? null,
  };
}
