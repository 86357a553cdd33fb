/**
 * Shared workers: several processes, on any number of machines, splitting one
 * job's parts through the store. Each part is a tiny job of its own,
 * `<job>.part.<key>`, whose writer lock is the part's lease: a worker that
 * gets the lock computes the part as one memoized step and completes that
 * job (the commit); a worker that finds it locked moves on to another part.
 * A dead worker's lease goes stale (its pid is gone on the same host, or its
 * heartbeat stops for `leaseMs`) and the next worker takes the part over.
 *
 * The parts are recorded under their memo keys in a memo namespace, so the
 * job that assembles the result afterwards (any worker, under the job's own
 * lock) finds every part as a memo hit and computes nothing again: its output
 * is the same bytes as a single process's. Any family whose steps carry memo
 * keys can use this (kNN blocks do; map batches and processor items could).
 *
 * @module
 */
import { fingerprint } from "../store/cbor.ts";
import { LockedError } from "../store/lock.ts";
import type { Store } from "../store/store.ts";
import type { JobEvent } from "./events.ts";
import { runJob, type StepContext } from "./job.ts";
import { resolveStore } from "./open_store.ts";
import { replayRun } from "./replay.ts";

/** One part of a shared job. */
export interface SharedPart<T = unknown> {
  /** The step key, as the assembling job will use it (1–512 characters). */
  key: string;
  /** The step's memo key: the assembling job's step must use the same one. */
  memo: string;
  /** Computes the part's output (CBOR-encodable). */
  compute: (ctx: StepContext) => T | Promise<T>;
}

/** Options for {@linkcode runSharedParts}. */
export interface RunSharedPartsOptions {
  /** The memo namespace the assembling job reads. Required. */
  memo: string;
  /** The store, or its location. Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Version of the part code, as for `openJob`. Default: "1". */
  version?: string;
  /** What `cairn ls` shows for part jobs. Default: "part". */
  kind?: string;
  /**
   * A lease (a part job's lock) without a heartbeat for this long is taken
   * over by another worker. Heartbeats come every third of it.
   * Default: 60 000 (one minute).
   */
  leaseMs?: number;
  /** How long to wait before looking again at parts other workers hold. Default: 500. */
  pollMs?: number;
  /** Aborting it stops after the part in progress (its lease is released). Default: none. */
  signal?: AbortSignal;
  /** Events of the part jobs (`step-done` per part computed here). Default: none. */
  onEvent?: (event: JobEvent) => void;
}

/** What {@linkcode runSharedParts} did in this process. */
export interface SharedPartsReport {
  /** Parts this process computed. */
  computed: number;
  /** Parts this process found done, or reused through the memo. */
  reused: number;
  /** Times a part was held by another worker when this one looked. */
  busy: number;
}

/**
 * The name of the job that holds one part's lease and record.
 *
 * @param job The shared job's name.
 * @param key The part's step key.
 * @returns `<job>.part.<key>` with characters outside `[A-Za-z0-9._-]` replaced
 * by ".", or a hash when that would be too long.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { partJobName } from "./shared_work.ts";
 * assert.equal(await partJobName("knn-1", "block/00-10"), "knn-1.part.block.00-10");
 * ```
 */
export async function partJobName(job: string, key: string): Promise<string> {
  const name = `${job}.part.${key.replace(/[^A-Za-z0-9._-]/g, ".")}`;
  if (name.length <= 128) return name;
  return `${job.slice(0, 60)}.part.${(await fingerprint(key)).slice(0, 32)}`;
}

/**
 * The job a run is a shared-worker part of, read from its config.
 *
 * @param config A run header's config.
 * @returns The assembling job's name for a part job's run, else `undefined`.
 *
 * @example Only part jobs name a job
 * ```ts
 * import assert from "node:assert/strict";
 * import { sharedPartOf } from "./shared_work.ts";
 * assert.equal(sharedPartOf({ partOf: "knn-1", key: "block/0", memo: "m" }), "knn-1");
 * assert.equal(sharedPartOf({ k: 10 }), undefined);
 * ```
 */
export function sharedPartOf(config: unknown): string | undefined {
  if (typeof config !== "object" || config === null) return undefined;
  const { partOf, key, memo } = config as Record<string, unknown>;
  return typeof partOf === "string" && typeof key === "string" &&
      typeof memo === "string"
    ? partOf
    : undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** Whether a part job's latest run completed with the part recorded. */
async function isPartDone(
  store: Store,
  name: string,
  key: string,
): Promise<boolean> {
  const latest = (await store.listRuns(name)).at(-1);
  if (latest === undefined) return false;
  const state = await replayRun(store, name, latest).catch(() => undefined);
  return state?.status === "completed" && state.steps.has(key);
}

/**
 * Compute a job's parts together with any other processes doing the same:
 * take a part's lease, compute it, commit it; skip parts others hold; wait
 * for them; take over parts whose holder died. Resolves once every part is
 * committed (by this process or another), so the caller can then run the
 * job itself, whose steps with these memo keys are all memo hits.
 *
 * @param job The shared job's name.
 * @param parts Its parts; every worker must pass the same ones.
 * @param options Memo namespace, store, lease and polling options.
 * @returns What this process did.
 * @throws {InterruptedError} When `signal` aborts before every part is committed.
 *
 * @example Two workers share four parts; each part is computed once
 * ```ts
 * import assert from "node:assert/strict";
 * import { runSharedParts } from "./shared_work.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * let runs = 0;
 * const parts = [0, 1, 2, 3].map((i) => ({
 *   key: `part/${i}`,
 *   memo: `square/${i}`,
 *   compute: () => (runs++, i * i),
 * }));
 * const [a, b] = await Promise.all([
 *   runSharedParts("squares", parts, { memo: "demo", store }),
 *   runSharedParts("squares", parts, { memo: "demo", store }),
 * ]);
 * assert.equal(a.computed + b.computed, 4);
 * assert.equal(runs, 4);
 * ```
 */
export async function runSharedParts(
  job: string,
  parts: readonly SharedPart[],
  options: RunSharedPartsOptions,
): Promise<SharedPartsReport> {
  const store = await resolveStore(options.store);
  const leaseMs = options.leaseMs ?? 60_000;
  const pollMs = options.pollMs ?? 500;
  if (!(leaseMs > 0) || !(pollMs > 0)) {
    throw new RangeError(
      `Invalid leaseMs ${leaseMs} or pollMs ${pollMs}: both must be more than 0`,
    );
  }
  const report: SharedPartsReport = { computed: 0, reused: 0, busy: 0 };
  const names = await Promise.all(parts.map((p) => partJobName(job, p.key)));
  // Workers start at different parts, so they rarely contend.
  let pending = parts.map((_, i) => i);
  const offset = Math.floor(Math.random() * Math.max(1, pending.length));
  pending = pending.slice(offset).concat(pending.slice(0, offset));
  while (pending.length > 0) {
    const waiting: number[] = [];
    for (const i of pending) {
      if (options.signal?.aborted) throw options.signal.reason;
      const part = parts[i]!;
      const name = names[i]!;
      if (await isPartDone(store, name, part.key)) {
        report.reused++;
        continue;
      }
      let computed = false;
      try {
        await runJob(name, {
          store,
          kind: options.kind ?? "part",
          config: { partOf: job, key: part.key, memo: part.memo },
          version: options.version ?? "1",
          memo: options.memo,
          total: 1,
          lock: { staleAfterMs: leaseMs },
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          ...(options.onEvent === undefined
            ? {}
            : { onEvent: options.onEvent }),
        }, async (partJob) => {
          await partJob.step(part.key, (ctx) => {
            computed = true;
            return part.compute(ctx);
          }, { memo: part.memo });
        });
      } catch (error) {
        if (error instanceof LockedError) {
          report.busy++;
          waiting.push(i);
          continue;
        }
        throw error;
      }
      if (computed) report.computed++;
      else report.reused++;
    }
    pending = waiting;
    if (pending.length > 0) await sleep(pollMs, options.signal);
  }
  return report;
}
