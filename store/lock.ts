/**
 * A job's writer lock on the filesystem: `<locksDir>/<job>.lock`.
 *
 * One process at a time may write to a job. The lock file holds a JSON
 * {@linkcode LockInfo}; it is created atomically with `link()` (which fails
 * when the file already exists), kept fresh by a heartbeat, and taken over
 * when its holder is gone (dead pid on this host, or no heartbeat for
 * `staleAfterMs`).
 *
 * Every change to an existing lock file (heartbeat, release, stale takeover,
 * `breakLock`) happens while holding a short-lived `<job>.lock.break` guard,
 * itself created with the same `link()` trick, so a check of the lock's token
 * and the change that follows cannot interleave with another process's.
 *
 * @example Acquire, inspect and release a lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { basename, dirname, join } from "node:path";
 * import { acquireLock, readLock } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock = await acquireLock(join(dir, "locks"), "nightly");
 * assert.equal((await readLock(join(dir, "locks"), "nightly"))?.token, lock.info.token);
 * await lock.release();
 * assert.equal(await readLock(join(dir, "locks"), "nightly"), undefined);
 * await rm(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { assertName } from "./name.ts";
import { constants } from "node:fs";
import {
  link,
  mkdir,
  open,
  readFile,
  rename,
  stat,
  unlink,
} from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { clearInterval, setInterval } from "node:timers";
import {
  isErrno,
  lstatNow,
  O_NOFOLLOW,
  publishFile,
  sleep,
  syncDir,
  tempPath,
  writeNewFile,
} from "./files.ts";

/**
 * What a lock file records about its holder.
 *
 * @example Read who holds a job
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { acquireLock, type LockInfo, readLock } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock = await acquireLock(dir, "nightly", { command: "cairn run nightly" });
 * const info: LockInfo | undefined = await readLock(dir, "nightly");
 * assert.equal(info?.pid, process.pid);
 * assert.equal(info?.command, "cairn run nightly");
 * await lock.release();
 * await rm(dir, { recursive: true });
 * ```
 */
export interface LockInfo {
  /** The job this lock is for. */
  job: string;
  /** `hostname()` of the holder's machine. */
  host: string;
  /** Process id of the holder. */
  pid: number;
  /** ISO time the lock was acquired. */
  startedAt: string;
  /** ISO time of the holder's last heartbeat. */
  heartbeatAt: string;
  /** Random hex string identifying this holder; changes on every acquire. */
  token: string;
  /** The command line the holder runs, for humans. */
  command?: string;
}

/**
 * Options for {@linkcode acquireLock}.
 *
 * @example Wait up to a minute for the lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { type AcquireLockOptions, acquireLock } from "./lock.ts";
 *
 * const options: AcquireLockOptions = { waitMs: 60_000, pollMs: 500 };
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock = await acquireLock(dir, "nightly", options);
 * assert.equal(lock.lost, false);
 * await lock.release();
 * await rm(dir, { recursive: true });
 * ```
 */
export interface AcquireLockOptions {
  /**
   * A lock whose heartbeat is older than this is stale and may be taken over.
   *
   * @default {600_000} (10 minutes)
   */
  staleAfterMs?: number;
  /**
   * How often the holder rewrites `heartbeatAt`. Must be less than
   * `staleAfterMs`. The timer is unref()'d, so it never keeps the process
   * alive.
   *
   * @default {Math.min(60_000, staleAfterMs / 3)}
   */
  heartbeatMs?: number;
  /**
   * How long to wait for a live holder to let go. `0` fails at once with
   * {@linkcode LockedError}; more polls every `pollMs` until the lock is free
   * or the time is up (this backs the CLI's `--wait-lock`).
   *
   * @default {0}
   */
  waitMs?: number;
  /**
   * Poll interval while waiting.
   *
   * @default {200}
   */
  pollMs?: number;
  /**
   * Take the lock even if a live process holds it. The escape hatch for a
   * lock that is known to be wrong; the old holder notices on its next
   * heartbeat (its {@linkcode JobLock.lost} becomes `true`).
   *
   * @default {false}
   */
  force?: boolean;
  /**
   * The command line to record in the lock, for humans.
   *
   * @default {undefined}
   */
  command?: string;
  /**
   * Aborts waiting for the lock; the promise rejects with `signal.reason`.
   * Has no effect once the lock is acquired.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options for {@linkcode lockStaleReason}.
 *
 * @example Judge a lock as another host would
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockStaleReason, type LockStaleReasonOptions } from "./lock.ts";
 *
 * const options: LockStaleReasonOptions = { host: "other", staleAfterMs: 60_000 };
 * const now = new Date().toISOString();
 * const info = {
 *   job: "nightly",
 *   host: "batch-1",
 *   pid: 4211,
 *   startedAt: now,
 *   heartbeatAt: now,
 *   token: "00ff",
 * };
 * assert.equal(lockStaleReason(info, options), undefined);
 * ```
 */
export interface LockStaleReasonOptions {
  /**
   * Current time in ms since the epoch.
   *
   * @default {Date.now()}
   */
  now?: number;
  /**
   * This machine's host name; the holder's pid is only checked when the lock
   * was taken on the same host.
   *
   * @default {hostname()}
   */
  host?: string;
  /**
   * A heartbeat older than this makes the lock stale.
   *
   * @default {600_000}
   */
  staleAfterMs?: number;
}

/**
 * A held job lock, returned by {@linkcode acquireLock}.
 *
 * @example Check for a lost lock before writing
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { acquireLock, type JobLock } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock: JobLock = await acquireLock(dir, "nightly");
 * try {
 *   await lock.refresh();
 *   assert.equal(lock.lost, false);
 * } finally {
 *   await lock.release();
 * }
 * await rm(dir, { recursive: true });
 * ```
 */
export interface JobLock {
  /** What the lock file records; `heartbeatAt` follows each refresh. */
  readonly info: LockInfo;
  /**
   * `true` once a refresh found that the lock file no longer carries our
   * token (someone broke or took over the lock). Stop writing when it is set.
   */
  readonly lost: boolean;
  /**
   * Rewrites `heartbeatAt` now (the timer does this every `heartbeatMs`).
   * Sets {@linkcode JobLock.lost} instead of writing if the lock is no longer
   * ours. Does nothing after release or once lost.
   */
  refresh(): Promise<void>;
  /**
   * Throws {@linkcode LockLostError} unless the lock file still carries our
   * token (one small read). Logs call it before every group commit.
   */
  assertHeld(): Promise<void>;
  /**
   * Stops the heartbeat and removes the lock file if it still carries our
   * token. Idempotent.
   */
  release(): Promise<void>;
}

/**
 * Wrap a store's lock so `held` maps `job` to it until it is released: a
 * store's logs consult `held` to fence appends by the lock's holder.
 *
 * @param held The store's map from job name to the lock it holds.
 * @param job The job the lock is for.
 * @param lock The lock just acquired.
 * @returns The lock, tracked in `held`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type JobLock, trackLock } from "./lock.ts";
 * const lock = { lost: false, refresh: async () => {}, assertHeld: async () => {}, release: async () => {} } as unknown as JobLock;
 * const held = new Map<string, JobLock>();
 * const tracked = trackLock(held, "nightly", lock);
 * assert.equal(held.get("nightly"), tracked);
 * await tracked.release();
 * assert.equal(held.has("nightly"), false);
 * ```
 */
export function trackLock(
  held: Map<string, JobLock>,
  job: string,
  lock: JobLock,
): JobLock {
  const tracked: JobLock = {
    get info() {
      return lock.info;
    },
    get lost() {
      return lock.lost;
    },
    refresh: () => lock.refresh(),
    assertHeld: () => lock.assertHeld(),
    async release() {
      await lock.release();
      if (held.get(job) === tracked) held.delete(job);
    },
  };
  held.set(job, tracked);
  return tracked;
}

const DEFAULT_STALE_AFTER_MS = 600_000;
const DEFAULT_HEARTBEAT_MS = 60_000;
const DEFAULT_POLL_MS = 200;
/** A `<job>.lock.break` guard older than this was left by a crashed process. */
const GUARD_ABANDONED_MS = 30_000;
/** How often to retry a busy guard; guards are held for milliseconds. */
const GUARD_POLL_MS = 10;
/** Longest delay `setInterval` accepts; longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Options for {@linkcode LockedError}.
 *
 * @example An unlock refusal
 * ```ts
 * import assert from "node:assert/strict";
 * import { LockedError, type LockedErrorOptions } from "./lock.ts";
 * const options: LockedErrorOptions = { action: "unlock" };
 * const now = new Date().toISOString();
 * const holder = { job: "j", host: "h", pid: 1, startedAt: now, heartbeatAt: now, token: "t" };
 * assert.match(new LockedError("j", holder, options).message, /^Cannot unlock job "j"/);
 * ```
 */
export interface LockedErrorOptions extends ErrorOptions {
  /** What was refused: opening the job, or breaking its lock. Default: `"open"`. */
  action?: "open" | "unlock";
}

/**
 * Thrown by a writer whose lock was broken or taken over: it must not write
 * again. Fencing: every append checks the lock first.
 *
 * @example Catch a lost lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { LockLostError } from "./lock.ts";
 * const error = new LockLostError("nightly", "00ff", undefined);
 * assert.equal(error.job, "nightly");
 * assert.match(error.message, /lock was removed/);
 * ```
 */
export class LockLostError extends Error {
  /** The job whose lock was lost. */
  readonly job: string;
  /** The token this writer held. */
  readonly token: string;
  /** Who holds the lock now, if anyone. */
  readonly holder: LockInfo | undefined;
  /** Always `"LockLostError"`. */
  override readonly name = "LockLostError";

  /**
   * Builds the message from the job and the new holder.
   *
   * @param job The job.
   * @param token The token this writer held.
   * @param holder The lock's current holder, if any.
   */
  constructor(job: string, token: string, holder: LockInfo | undefined) {
    super(
      holder === undefined
        ? `Cannot write to job "${job}": its lock was removed while this process held it; stopping without writing (rerun to resume)`
        : `Cannot write to job "${job}": its lock was taken over by pid ${holder.pid} on host "${holder.host}" at ${
          shortIso(holder.startedAt)
        }; stopping without writing`,
    );
    this.job = job;
    this.token = token;
    this.holder = holder;
  }
}

/**
 * Thrown when a job's lock is held by a live process. The CLI exits with
 * {@linkcode LockedError.exitCode}.
 *
 * @example Catch a held lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { LockedError } from "./lock.ts";
 *
 * const error = new LockedError("nightly", {
 *   job: "nightly",
 *   host: "batch-1",
 *   pid: 4211,
 *   startedAt: "2026-11-23T03:00:01.000Z",
 *   heartbeatAt: "2026-11-23T03:00:01.000Z",
 *   token: "00ff",
 * });
 * assert.equal(error.exitCode, 3);
 * assert.equal(
 *   error.message,
 *   'Cannot open job "nightly": locked by pid 4211 on host "batch-1" since 2026-11-23T03:00:01Z (if that process is gone, break the lock with breakLock; to wait for it, set waitMs)',
 * );
 * ```
 */
export class LockedError extends Error {
  /** The job whose lock is held. */
  readonly job: string;
  /** Who holds it. */
  readonly holder: LockInfo;
  /** Process exit code the CLI uses for this error. */
  readonly exitCode = 3;
  /** Always `"LockedError"`. */
  override readonly name = "LockedError";

  /**
   * Builds the message from the job and its holder.
   *
   * @param job The job that could not be opened.
   * @param holder The lock's current holder.
   * @param options Standard error options (`cause`).
   */
  constructor(job: string, holder: LockInfo, options?: LockedErrorOptions) {
    const by = `pid ${holder.pid} on host "${holder.host}"`;
    super(
      options?.action === "unlock"
        ? `Cannot unlock job "${job}": ${by} holds it and looks alive (last heartbeat ${
          shortIso(holder.heartbeatAt)
        }); stop that process first, or pass force: true to break the lock anyway`
        : `Cannot open job "${job}": locked by ${by} since ${
          shortIso(holder.startedAt)
        } (if that process is gone, break the lock with breakLock; to wait for it, set waitMs)`,
      options,
    );
    this.job = job;
    this.holder = holder;
  }
}

/**
 * Acquires the writer lock of `job`, creating `locksDir` if missing.
 *
 * A lock left by a dead process on this host, or one without a heartbeat for
 * `staleAfterMs`, is taken over. A live one makes this throw
 * {@linkcode LockedError} at once, or after `waitMs` of polling.
 *
 * @param locksDir The store's locks directory (`<store>/locks`).
 * @param job The job name: `[A-Za-z0-9._-]`, not starting with `.`, at most
 * 128 characters.
 * @param options See {@linkcode AcquireLockOptions}.
 * @returns The held lock; call {@linkcode JobLock.release} when done.
 * @throws {TypeError} If `job` is not a valid job name.
 * @throws {RangeError} If an option is out of range.
 * @throws {LockedError} If a live process holds the lock.
 *
 * @example Second acquire of a held lock fails
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { basename, dirname, join } from "node:path";
 * import { acquireLock, LockedError } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock = await acquireLock(dir, "nightly", { command: "cairn run nightly" });
 * await assert.rejects(acquireLock(dir, "nightly"), LockedError);
 * await lock.release();
 * const again = await acquireLock(dir, "nightly");
 * await again.release();
 * await rm(dir, { recursive: true });
 * ```
 */
export async function acquireLock(
  locksDir: string,
  job: string,
  options: AcquireLockOptions = {},
): Promise<JobLock> {
  assertName("job", job);
  const {
    staleAfterMs,
    waitMs,
    pollMs,
    heartbeatMs,
    force,
    command,
    signal,
  } = lockSettings(options);
  signal?.throwIfAborted();
  await mkdir(locksDir, { recursive: true });

  const host = hostname();
  const lockPath = lockPathOf(locksDir, job);
  const deadline = Date.now() + waitMs;
  for (;;) {
    signal?.throwIfAborted();
    const now = new Date().toISOString();
    const info: LockInfo = {
      job,
      host,
      pid: process.pid,
      startedAt: now,
      heartbeatAt: now,
      token: randomBytes(16).toString("hex"),
    };
    if (command !== undefined) info.command = command;
    if (await createExclusive(lockPath, serialize(info))) {
      return new FileJobLock(locksDir, info, heartbeatMs);
    }

    const current = await readLockFile(lockPath);
    if (current === undefined) continue; // released in between: retry now
    const stale = current.info === undefined ||
      lockStaleReason(current.info, { host, staleAfterMs }) !== undefined;
    if (stale || force) {
      await withGuard(locksDir, job, async () => {
        // Re-check under the guard: another process may have broken this
        // lock and taken a new one since we read it.
        // Acquirers create lock files without the guard, so never unlink
        // a lock we have not just read under it.
        const again = await readLockFile(lockPath);
        if (again === undefined) return;
        if (again.raw === current.raw) {
          await unlinkIfExists(lockPath);
          return;
        }
        if (again.info?.token !== current.info?.token) return;
        // Same holder, but it heartbeated: only remove it if still stale.
        if (
          force || again.info === undefined ||
          lockStaleReason(again.info, { host, staleAfterMs }) !== undefined
        ) {
          await unlinkIfExists(lockPath);
        }
      }, signal);
      continue;
    }

    const holder = current.info as LockInfo;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new LockedError(job, holder);
    await sleep(Math.min(pollMs, remaining), signal);
  }
}

/**
 * Reads the lock of `job`, without judging whether it is stale.
 *
 * @param locksDir The store's locks directory.
 * @param job The job name.
 * @returns The lock's content, or `undefined` if the job is not locked.
 * @throws {TypeError} If `job` is not a valid job name.
 * @throws {SyntaxError} If the lock file is not a valid lock.
 *
 * @example An unlocked job has no lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { basename, dirname, join } from "node:path";
 * import { readLock } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * assert.equal(await readLock(join(dir, "missing"), "nightly"), undefined);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function readLock(
  locksDir: string,
  job: string,
): Promise<LockInfo | undefined> {
  assertName("job", job);
  const lockPath = lockPathOf(locksDir, job);
  const file = await readLockFile(lockPath);
  if (file === undefined) return undefined;
  if (file.info === undefined) {
    throw new SyntaxError(
      `Cannot read lock of job "${job}": "${lockPath}" ${file.error}`,
    );
  }
  return file.info;
}

/**
 * Tells whether a lock's holder is gone.
 *
 * A lock is stale when it was taken on this host by a pid that is no longer
 * running, or when its heartbeat is older than `staleAfterMs`. A holder on
 * another host is judged by its heartbeat only.
 *
 * @param info The lock to judge.
 * @param options See {@linkcode LockStaleReasonOptions}.
 * @returns `undefined` if the holder looks alive, else why the lock is stale,
 * such as `pid 123 is not running on host "x"` or `no heartbeat for 11m`.
 *
 * @example An old heartbeat is stale
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockStaleReason } from "./lock.ts";
 *
 * const info = {
 *   job: "nightly",
 *   host: "elsewhere",
 *   pid: 4211,
 *   startedAt: "2026-11-23T03:00:00.000Z",
 *   heartbeatAt: "2026-11-23T03:00:00.000Z",
 *   token: "00ff",
 * };
 * const now = Date.parse("2026-11-23T03:11:00.000Z");
 * assert.equal(lockStaleReason(info, { now }), "no heartbeat for 11m");
 * assert.equal(lockStaleReason(info, { now: now - 600_000 }), undefined);
 * ```
 */
export function lockStaleReason(
  info: LockInfo,
  options: LockStaleReasonOptions = {},
): string | undefined {
  const {
    now = Date.now(),
    host = hostname(),
    staleAfterMs = DEFAULT_STALE_AFTER_MS,
  } = options;
  if (!Number.isSafeInteger(info.pid) || info.pid <= 0) {
    return `invalid pid ${info.pid}`;
  }
  if (info.host === host && !isProcessAlive(info.pid)) {
    return `pid ${info.pid} is not running on host "${info.host}"`;
  }
  const heartbeat = Date.parse(info.heartbeatAt);
  if (Number.isNaN(heartbeat)) {
    return `invalid heartbeat time "${info.heartbeatAt}"`;
  }
  const age = now - heartbeat;
  if (age > staleAfterMs) return `no heartbeat for ${formatAge(age)}`;
  return undefined;
}

/**
 * Options for {@linkcode breakLock}.
 *
 * @example Force a break
 * ```ts
 * import assert from "node:assert/strict";
 * import type { BreakLockOptions } from "./lock.ts";
 * const options: BreakLockOptions = { force: true };
 * assert.equal(options.force, true);
 * ```
 */
export interface BreakLockOptions {
  /**
   * Break the lock even when its holder looks alive (same host and its pid
   * running, or a fresh heartbeat). The old holder is fenced: its next
   * append fails with {@linkcode LockLostError}.
   *
   * @default {false}
   */
  force?: boolean;
  /**
   * A heartbeat older than this makes the holder stale.
   *
   * @default {600_000}
   */
  staleAfterMs?: number;
}

/**
 * Removes the lock of `job` when its holder is gone (for `cairn unlock`);
 * refuses a live holder with {@linkcode LockedError} unless `force`.
 *
 * @param locksDir The store's locks directory.
 * @param job The job name.
 * @param options `force` to break a live holder's lock.
 * @returns The removed lock, or `undefined` if there was none (or it was not
 * a readable lock; it is removed all the same).
 * @throws {TypeError} If `job` is not a valid job name.
 * @throws {LockedError} If the holder looks alive and `force` is not set.
 *
 * @example Break a held lock
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { basename, dirname, join } from "node:path";
 * import { acquireLock, breakLock } from "./lock.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-lock-"));
 * const lock = await acquireLock(dir, "nightly");
 * await assert.rejects(breakLock(dir, "nightly"), /looks alive/);
 * assert.equal((await breakLock(dir, "nightly", { force: true }))?.token, lock.info.token);
 * assert.equal(await breakLock(dir, "nightly"), undefined);
 * await lock.refresh();
 * assert.equal(lock.lost, true);
 * await lock.release();
 * await rm(dir, { recursive: true });
 * ```
 */
export async function breakLock(
  locksDir: string,
  job: string,
  options: BreakLockOptions = {},
): Promise<LockInfo | undefined> {
  assertName("job", job);
  const lockPath = lockPathOf(locksDir, job);
  if (await readLockFile(lockPath) === undefined) return undefined;
  return await withGuard(locksDir, job, async () => {
    const file = await readLockFile(lockPath);
    if (file === undefined) return undefined;
    if (
      !options.force && file.info !== undefined &&
      lockStaleReason(file.info, options) === undefined
    ) {
      throw new LockedError(job, file.info, { action: "unlock" });
    }
    await unlinkIfExists(lockPath);
    await syncDir(locksDir);
    return file.info;
  });
}

/** The lock returned by {@linkcode acquireLock}. */
class FileJobLock implements JobLock {
  #locksDir: string;
  #path: string;
  #info: LockInfo;
  #lost = false;
  #closed = false;
  #released: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;
  /** Identity of the lock file as last read with our token (see assertHeld). */
  #seen: string | undefined;
  #seenAt = 0;

  constructor(locksDir: string, info: LockInfo, heartbeatMs: number) {
    this.#locksDir = locksDir;
    this.#path = lockPathOf(locksDir, info.job);
    this.#info = info;
    this.#timer = setInterval(() => {
      // Errors (a full disk, say) are retried on the next tick; a lock that
      // is no longer ours sets `lost` and stops the timer.
      this.refresh().catch(() => {});
    }, Math.min(heartbeatMs, MAX_TIMER_MS));
    this.#timer.unref();
  }

  get info(): LockInfo {
    return { ...this.#info };
  }

  get lost(): boolean {
    return this.#lost;
  }

  refresh(): Promise<void> {
    // Join a refresh in flight rather than racing it.
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    if (this.#closed || this.#lost) return;
    await withGuard(this.#locksDir, this.#info.job, async () => {
      if (this.#closed) return;
      const file = await readLockFile(this.#path);
      if (file?.info?.token !== this.#info.token) {
        this.#lost = true;
        this.#stopTimer();
        return;
      }
      const next = { ...this.#info, heartbeatAt: new Date().toISOString() };
      await replaceAtomic(this.#path, serialize(next));
      this.#info = next;
    });
  }

  async assertHeld(): Promise<void> {
    if (!this.#lost && !this.#closed) {
      // Every change to a lock file is a new inode or a write, which changes
      // its identity; so while that is the one last read as ours, one stat
      // does (this runs before every log append). It is read in full at
      // least every FULL_READ_MS all the same.
      if (
        this.#seen !== undefined &&
        Date.now() - this.#seenAt < FULL_READ_MS &&
        identityAt(this.#path) === this.#seen
      ) return;
      const file = await readLockFile(this.#path);
      if (file?.info?.token === this.#info.token) {
        this.#seen = file.identity;
        this.#seenAt = Date.now();
        return;
      }
      this.#lost = true;
      this.#stopTimer();
    }
    const current = await readLockFile(this.#path).catch(() => undefined);
    throw new LockLostError(
      this.#info.job,
      this.#info.token,
      current?.info?.token === this.#info.token ? undefined : current?.info,
    );
  }

  release(): Promise<void> {
    // A failed release (an I/O error) may be retried; a done one is not redone.
    this.#released ??= this.#release().catch((error) => {
      this.#released = undefined;
      throw error;
    });
    return this.#released;
  }

  async #release(): Promise<void> {
    this.#closed = true;
    this.#stopTimer();
    await this.#refreshing?.catch(() => {});
    if (this.#lost) return;
    await withGuard(this.#locksDir, this.#info.job, async () => {
      const file = await readLockFile(this.#path);
      if (file?.info?.token === this.#info.token) {
        await unlinkIfExists(this.#path);
      } else {
        this.#lost = true;
      }
    });
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** A lock file as read from disk; `info` is missing if it is not valid. */
interface LockFile {
  raw: string;
  /** Of the inode read: see {@linkcode identityAt}. */
  identity?: string;
  info?: LockInfo;
  error?: string;
}

/** {@linkcode AcquireLockOptions} with their defaults, checked. */
export interface LockSettings {
  /** See {@linkcode AcquireLockOptions.staleAfterMs}. */
  staleAfterMs: number;
  /** See {@linkcode AcquireLockOptions.waitMs}. */
  waitMs: number;
  /** See {@linkcode AcquireLockOptions.pollMs}. */
  pollMs: number;
  /** See {@linkcode AcquireLockOptions.heartbeatMs}. */
  heartbeatMs: number;
  /** See {@linkcode AcquireLockOptions.force}. */
  force: boolean;
  /** See {@linkcode AcquireLockOptions.command}. */
  command: string | undefined;
  /** See {@linkcode AcquireLockOptions.signal}. */
  signal: AbortSignal | undefined;
}

/**
 * Apply the defaults of {@linkcode AcquireLockOptions} and check them: the
 * one rule every store's lock follows.
 *
 * @param options The options given.
 * @returns The settings to lock with.
 * @throws {RangeError} When a duration is out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockSettings } from "./lock.ts";
 * assert.equal(lockSettings({ staleAfterMs: 3000 }).heartbeatMs, 1000);
 * assert.throws(() => lockSettings({ staleAfterMs: 10, heartbeatMs: 20 }), RangeError);
 * ```
 */
export function lockSettings(options: AcquireLockOptions): LockSettings {
  const {
    staleAfterMs = DEFAULT_STALE_AFTER_MS,
    waitMs = 0,
    pollMs = DEFAULT_POLL_MS,
    force = false,
    command,
    signal,
  } = options;
  checkPositive("staleAfterMs", staleAfterMs);
  // Three heartbeats per stale period: a live holder never looks stale.
  const heartbeatMs = options.heartbeatMs ??
    Math.min(DEFAULT_HEARTBEAT_MS, staleAfterMs / 3);
  checkPositive("heartbeatMs", heartbeatMs);
  checkPositive("pollMs", pollMs);
  if (!(waitMs >= 0)) {
    throw new RangeError(
      `Invalid waitMs ${waitMs}: must be a number of milliseconds >= 0`,
    );
  }
  if (heartbeatMs >= staleAfterMs) {
    throw new RangeError(
      `Invalid heartbeatMs ${heartbeatMs}: must be less than staleAfterMs ${staleAfterMs}`,
    );
  }
  return {
    staleAfterMs,
    waitMs,
    pollMs,
    heartbeatMs,
    force,
    command,
    signal,
  };
}

function checkPositive(name: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be a finite number of milliseconds > 0`,
    );
  }
}

function lockPathOf(locksDir: string, job: string): string {
  return join(locksDir, `${job}.lock`);
}

function serialize(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

function tempPathFor(path: string): string {
  // Job names never start with ".", so these never clash with a lock.
  return tempPath(dirname(path), basename(path));
}

/**
 * Creates `path` with `data` only if it does not exist: a fully written and
 * synced temp file is hard-linked to `path`, which fails when it exists.
 *
 * @returns `false` if `path` already existed.
 */
async function createExclusive(path: string, data: string): Promise<boolean> {
  const temp = tempPathFor(path);
  await writeNewFile(temp, data);
  return await publishFile(temp, path, true);
}

/** Replaces `path` with `data` atomically (temp, fsync, rename, fsync dir). */
async function replaceAtomic(path: string, data: string): Promise<void> {
  const temp = tempPathFor(path);
  await writeNewFile(temp, data);
  await publishFile(temp, path);
}

async function readLockFile(path: string): Promise<LockFile | undefined> {
  let raw: string;
  let identity: string;
  try {
    ({ raw, identity } = await readSmallFile(path));
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    if (isErrno(error, "ELOOP", "EISDIR")) {
      return { raw: "", error: (error as Error).message };
    }
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    return { raw, error: `is not JSON: ${(error as Error).message}` };
  }
  const info = toLockInfo(value);
  return typeof info === "string"
    ? { raw, identity, error: info }
    : { raw, identity, info };
}

/** Longest a holder trusts an unchanged identity without reading the lock. */
const FULL_READ_MS = 1000;

/** Device, inode, size and times: unchanged while a file is. */
function identityOf(
  stat: {
    dev: number;
    ino: number;
    size: number;
    mtimeMs: number;
    ctimeMs: number;
  },
): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}

/** The identity of the file at `path`, or undefined if it cannot be had. */
function identityAt(path: string): string | undefined {
  try {
    const stat = lstatNow(path);
    return stat && identityOf(stat);
  } catch {
    return undefined;
  }
}

/** Longest lock file read: a real one is a few hundred bytes. */
const MAX_LOCK_BYTES = 64 * 1024;

/** Read a lock file without following a link, and never more than MAX_LOCK_BYTES. */
async function readSmallFile(
  path: string,
): Promise<{ raw: string; identity: string }> {
  const handle = await open(path, constants.O_RDONLY | O_NOFOLLOW);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw Object.assign(new Error("is not a regular file"), {
        code: "EISDIR",
      });
    }
    const buffer = new Uint8Array(MAX_LOCK_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, MAX_LOCK_BYTES, 0);
    return {
      raw: new TextDecoder().decode(buffer.subarray(0, bytesRead)),
      identity: identityOf(stat),
    };
  } finally {
    await handle.close();
  }
}

/** Checks the shape of a parsed lock; returns what is wrong as a string. */
function toLockInfo(value: unknown): LockInfo | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "is not a JSON object";
  }
  const record = value as Record<string, unknown>;
  for (const key of ["job", "host", "startedAt", "heartbeatAt", "token"]) {
    if (typeof record[key] !== "string") {
      return `has no string field "${key}"`;
    }
  }
  if (typeof record.pid !== "number") return 'has no number field "pid"';
  if (record.command !== undefined && typeof record.command !== "string") {
    return 'has a non-string field "command"';
  }
  const info: LockInfo = {
    job: record.job as string,
    host: record.host as string,
    pid: record.pid,
    startedAt: record.startedAt as string,
    heartbeatAt: record.heartbeatAt as string,
    token: record.token as string,
  };
  if (typeof record.command === "string") info.command = record.command;
  return info;
}

/**
 * Runs `fn` while holding `<job>.lock.break`, so that reading a lock and then
 * changing it is not interleaved with another process doing the same.
 */
async function withGuard<T>(
  locksDir: string,
  job: string,
  fn: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const guardPath = join(locksDir, `${job}.lock.break`);
  const content = serialize({
    host: hostname(),
    pid: process.pid,
    at: new Date().toISOString(),
  });
  while (!(await createExclusive(guardPath, content))) {
    signal?.throwIfAborted();
    if (!(await removeIfAbandoned(guardPath))) {
      await sleep(GUARD_POLL_MS, signal);
    }
  }
  try {
    return await fn();
  } finally {
    await unlinkIfExists(guardPath);
  }
}

/**
 * Removes a guard left by a crashed process: older than 30 s, or taken on
 * this host by a pid that is gone.
 *
 * The guard is renamed aside first, and the moved file's inode compared with
 * the one judged abandoned, so that a fresh guard which replaced it in the
 * meantime is put back rather than deleted.
 *
 * @returns `true` if the guard is gone (removed by us or by its holder).
 */
async function removeIfAbandoned(guardPath: string): Promise<boolean> {
  let judged;
  let raw;
  try {
    judged = await stat(guardPath);
    raw = await readFile(guardPath, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return true;
    throw error;
  }
  if (!isGuardAbandoned(raw, judged.mtimeMs)) return false;
  const aside = tempPathFor(guardPath);
  try {
    await rename(guardPath, aside);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return true;
    throw error;
  }
  const moved = await stat(aside);
  if (moved.ino !== judged.ino || moved.dev !== judged.dev) {
    // A live guard replaced the abandoned one: put it back.
    try {
      await link(aside, guardPath);
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
    }
  }
  await unlinkIfExists(aside);
  return true;
}

function isGuardAbandoned(raw: string, mtimeMs: number): boolean {
  if (Date.now() - mtimeMs > GUARD_ABANDONED_MS) return true;
  try {
    const { host, pid } = JSON.parse(raw) as { host?: unknown; pid?: unknown };
    return host === hostname() && typeof pid === "number" &&
      Number.isSafeInteger(pid) && pid > 0 && !isProcessAlive(pid);
  } catch {
    return false; // unreadable: wait for it to age out
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return !isErrno(error, "ESRCH");
  }
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!isErrno(error, "ENOENT")) throw error;
  }
}

/** `2026-11-23T03:00:01.000Z` -> `2026-11-23T03:00:01Z`. */
function shortIso(iso: string): string {
  return iso.replace(/\.\d+Z$/, "Z");
}

/** Formats a duration coarsely: `45s`, `11m`, `2h 5m`, `3d 4h`. */
function formatAge(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return minutes % 60 ? `${hours}h ${minutes % 60}m` : `${hours}h`;
  }
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days}d ${hours % 24}h` : `${days}d`;
}
