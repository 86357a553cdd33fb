/**
 * Job locks on S3 as lease objects: `<prefix>locks/<job>.lock` holds the
 * same JSON {@linkcode LockInfo} as the fs lock file. Every change is a
 * compare-and-swap: created with `If-None-Match: *`, then heartbeats, a
 * stale takeover, a release and `breakLock` each PUT with `If-Match` on the
 * ETag last read or written. A released lease is not deleted (S3 has no
 * conditional delete) but replaced by a tombstone, which counts as free.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { clearInterval, setInterval } from "node:timers";
import type { S3Client } from "./_s3_client.ts";
import {
  type AcquireLockOptions,
  type BreakLockOptions,
  type JobLock,
  LockedError,
  type LockInfo,
  LockLostError,
  lockSettings,
  lockStaleReason,
} from "./lock.ts";
import { assertName } from "./name.ts";

const MAX_LEASE_BYTES = 64 * 1024;

/** A lease as read: its ETag, and its holder unless it is a tombstone or unreadable. */
interface Lease {
  etag: string;
  info: LockInfo | undefined;
  error?: string;
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n");
}

function parseLease(body: Uint8Array): { info?: LockInfo; error?: string } {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    return { error: `is not JSON: ${(error as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: "is not a JSON object" };
  }
  const record = value as Record<string, unknown>;
  if (typeof record.released === "string") return {}; // a tombstone: free
  for (const key of ["job", "host", "startedAt", "heartbeatAt", "token"]) {
    if (typeof record[key] !== "string") {
      return { error: `has no string field "${key}"` };
    }
  }
  if (typeof record.pid !== "number") {
    return { error: 'has no number field "pid"' };
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
  return { info };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** Job leases in one S3 store. */
export interface S3Leases {
  acquire(job: string, options?: AcquireLockOptions): Promise<JobLock>;
  read(job: string): Promise<LockInfo | undefined>;
  list(): Promise<LockInfo[]>;
  breakLock(
    job: string,
    options?: BreakLockOptions,
  ): Promise<LockInfo | undefined>;
}

/**
 * The lease operations of an S3 store whose locks live under `locksPrefix`.
 *
 * @param client The S3 client.
 * @param locksPrefix Key prefix of the lease objects, ending in "/".
 * @returns The lease operations.
 */
export function s3Leases(client: S3Client, locksPrefix: string): S3Leases {
  const keyOf = (job: string) => `${locksPrefix}${assertName("job", job)}.lock`;

  async function readLease(job: string): Promise<Lease | undefined> {
    const got = await client.get(keyOf(job), { maxBytes: MAX_LEASE_BYTES });
    if (got === undefined) return undefined;
    const parsed = parseLease(got.body);
    return {
      etag: got.etag,
      info: parsed.info,
      ...(parsed.error === undefined ? {} : { error: parsed.error }),
    };
  }

  async function acquire(
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
    const host = hostname();
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
        ...(command === undefined ? {} : { command }),
      };
      const created = await client.put(keyOf(job), encode(info), {
        ifAbsent: true,
      });
      if (created.written) {
        return new S3JobLock(
          client,
          keyOf(job),
          info,
          created.etag,
          heartbeatMs,
        );
      }
      const current = await readLease(job);
      if (current === undefined) continue; // gone in between: try again now
      const free = current.info === undefined ||
        lockStaleReason(current.info, { host, staleAfterMs }) !== undefined;
      if (free || force) {
        // Compare-and-swap: only one of several takers wins this ETag.
        const taken = await client.put(keyOf(job), encode(info), {
          ifMatch: current.etag,
        });
        if (taken.written) {
          return new S3JobLock(
            client,
            keyOf(job),
            info,
            taken.etag,
            heartbeatMs,
          );
        }
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new LockedError(job, current.info!);
      await sleep(Math.min(pollMs, remaining), signal);
    }
  }

  async function read(job: string): Promise<LockInfo | undefined> {
    const lease = await readLease(job);
    if (lease?.error !== undefined) {
      throw new SyntaxError(
        `Cannot read lock of job "${job}": "${keyOf(job)}" ${lease.error}`,
      );
    }
    return lease?.info;
  }

  async function list(): Promise<LockInfo[]> {
    const out: LockInfo[] = [];
    for await (const object of client.list(locksPrefix)) {
      const name = object.key.slice(locksPrefix.length);
      if (!name.endsWith(".lock")) continue;
      const info = await read(name.slice(0, -5)).catch(() => undefined);
      if (info !== undefined) out.push(info);
    }
    return out;
  }

  async function breakLease(
    job: string,
    options: BreakLockOptions = {},
  ): Promise<LockInfo | undefined> {
    for (;;) {
      const current = await readLease(job);
      if (current === undefined) return undefined;
      if (current.info === undefined && current.error === undefined) {
        return undefined; // already free
      }
      if (
        !options.force && current.info !== undefined &&
        lockStaleReason(current.info, options) === undefined
      ) {
        throw new LockedError(job, current.info, { action: "unlock" });
      }
      const broken = await client.put(keyOf(job), tombstone(), {
        ifMatch: current.etag,
      });
      if (broken.written) return current.info;
    }
  }

  return { acquire, read, list, breakLock: breakLease };
}

function tombstone(): Uint8Array {
  return encode({ released: new Date().toISOString() });
}

/** A held lease; every write is conditional on the ETag this holder last wrote. */
class S3JobLock implements JobLock {
  readonly #client: S3Client;
  readonly #key: string;
  #info: LockInfo;
  #etag: string;
  #lost = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy: Promise<void> = Promise.resolve();

  constructor(
    client: S3Client,
    key: string,
    info: LockInfo,
    etag: string,
    heartbeatMs: number,
  ) {
    this.#client = client;
    this.#key = key;
    this.#info = info;
    this.#etag = etag;
    this.#timer = setInterval(() => {
      this.refresh().catch(() => {});
    }, Math.min(heartbeatMs, 2 ** 31 - 1));
    this.#timer.unref();
  }

  get info(): LockInfo {
    return { ...this.#info };
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** Run changes one at a time: each needs the ETag the previous one wrote. */
  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#busy.then(fn);
    this.#busy = next.catch(() => {});
    return next;
  }

  refresh(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed || this.#lost) return;
      const next = { ...this.#info, heartbeatAt: new Date().toISOString() };
      const written = await this.#client.put(this.#key, encode(next), {
        ifMatch: this.#etag,
      });
      if (!written.written) {
        this.#lose();
        return;
      }
      this.#etag = written.etag;
      this.#info = next;
    });
  }

  async assertHeld(): Promise<void> {
    let holder: LockInfo | undefined;
    if (!this.#lost && !this.#closed) {
      const got = await this.#client.get(this.#key, {
        maxBytes: MAX_LEASE_BYTES,
      });
      holder = got && parseLease(got.body).info;
      if (holder?.token === this.#info.token) return;
      this.#lose();
    }
    throw new LockLostError(
      this.#info.job,
      this.#info.token,
      holder?.token === this.#info.token ? undefined : holder,
    );
  }

  release(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    return this.#serial(async () => {
      if (this.#closed) return;
      this.#closed = true;
      if (this.#lost) return;
      const done = await this.#client.put(this.#key, tombstone(), {
        ifMatch: this.#etag,
      });
      if (!done.written) this.#lost = true;
    });
  }

  #lose(): void {
    this.#lost = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
