// One batch computed: memo hits first, then the other items on the shared
// lanes, then the record assembled (results chunk, typed stats, outputs).
import { decodeValue, encodeValue } from "../../store/cbor.ts";
import { InterruptedError } from "../job.ts";
import type { ResultsChunk } from "./_batch_record.ts";
import { encodeBatch, itemKeys, KEY_BYTES } from "./_keys.ts";
import type { ItemRetry, RunItem } from "./_lanes.ts";
import type { MemoLookup } from "./_memo_lookup.ts";
import type { MapBatchStats } from "./describe.ts";
import { MapItemError } from "./options.ts";

/** A batch to run: its place in the input, arguments and step key. */
export interface BatchPlan {
  index: number;
  start: number;
  args: unknown[][];
  hash: Uint8Array;
  key: string;
  /** The batch's encoding, when it was made while planning (streams). */
  encoded?: Uint8Array;
}

/** A batch of results in input order. */
export interface BatchOut {
  start: number;
  /** Number of items in the batch. */
  count: number;
  /** The results (empty when results are not kept, as for `walk`). */
  values: unknown[];
}

/** What every batch of a call shares. */
export interface BatchEnv {
  job: string;
  onError: "stop" | "skip";
  keepResults: boolean;
  retry: ItemRetry;
  runItem: RunItem;
  call: (args: unknown[]) => unknown;
  /** Memo hits, or undefined when `memo` is off. */
  lookup: MemoLookup | undefined;
  /** Batches whose items are settled and whose output is being written. */
  writing: { count: number };
  warn: (message: string) => void;
}

/** A computed batch: what to store, what to record, what to return. */
export interface BatchResult {
  chunk: ResultsChunk;
  stats: MapBatchStats;
  /** The step record's `items.keys`: 16 bytes per item, zeroed for failures. */
  keys: Uint8Array;
  out: BatchOut;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isPlain(v: unknown): boolean {
  return !((typeof v === "object" && v !== null) || typeof v === "function" ||
    typeof v === "symbol");
}

/**
 * Store form of the results: failed slots null, non-encodable results turned
 * into failures naming the item. Returns the encoding when it was made.
 */
function storable(
  env: BatchEnv,
  b: BatchPlan,
  stored: unknown[],
  errors: Map<number, [string, number]>,
): Uint8Array | undefined {
  if (stored.every(isPlain)) return undefined;
  try {
    return encodeValue(stored);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
  for (let j = 0; j < stored.length; j++) {
    try {
      encodeValue(stored[j]);
    } catch (itemError) {
      const message = `its result is not CBOR-encodable (${
        errorMessage(itemError)
      }); return plain data: objects, arrays, strings, numbers, typed arrays, Map, Date or bigint`;
      if (env.onError === "stop") {
        throw new MapItemError(b.start + j, message, 1, env.job);
      }
      errors.set(j, [message, 1]);
      stored[j] = null;
    }
  }
  return encodeValue(stored);
}

/**
 * Compute batch `b`; rejects with a MapItemError (onError "stop") or
 * InterruptedError. `attempted()` is called once every item has had its first
 * attempt and some wait for a retry, so the next batch may start meanwhile.
 */
export async function computeBatch(
  env: BatchEnv,
  b: BatchPlan,
  signal: AbortSignal,
  attempted: () => void,
): Promise<BatchResult> {
  const started = performance.now();
  const n = b.args.length;
  const keys = itemKeys(b.encoded ?? encodeBatch(b.args, b.start), n);
  const values: unknown[] = new Array(n);
  const have = new Uint8Array(n);
  const memoHits = env.lookup === undefined
    ? 0
    : await env.lookup(keys, values, have);
  const errors = new Map<number, [string, number]>();
  let stopped = false;
  let interrupted = false;
  let computed = 0;
  let unattempted = n - memoHits;
  let unsettled = unattempted;
  let retrying = false;
  const firstDone = (retry: boolean) => {
    retrying ||= retry;
    if (--unattempted === 0 && retrying) attempted();
  };
  let settled!: () => void;
  const all = new Promise<void>((resolve) => (settled = resolve));
  if (unsettled === 0) settled();
  for (let j = 0; j < n; j++) {
    if (have[j] !== 0) continue;
    const args = b.args[j]!;
    let tried = false;
    env.runItem(
      () => {
        if (!tried) computed++;
        tried = true;
        return env.call(args);
      },
      env.retry,
      signal,
      () => stopped || interrupted,
      firstDone,
      (o) => {
        if (o.kind === "ok") values[j] = o.value;
        else if (o.kind === "interrupted") interrupted = true;
        else if (o.kind === "failed") {
          errors.set(j, [errorMessage(o.error), o.attempts]);
          if (env.onError === "stop") stopped = true;
        }
        if (--unsettled === 0) settled();
      },
    );
  }
  await all;
  if (interrupted) throw signal.reason ?? new InterruptedError(env.job);
  const first = [...errors.keys()].sort((x, y) => x - y)[0];
  if (env.onError === "stop" && first !== undefined) {
    const [message, attempts] = errors.get(first)!;
    throw new MapItemError(b.start + first, message, attempts, env.job);
  }
  const stored = env.keepResults ? values.slice() : new Array(n).fill(null);
  for (const j of errors.keys()) stored[j] = null;
  const encoded = storable(env, b, stored, errors);
  // Results come back as a resumed call reads them (object keys in stored order).
  const out = env.keepResults
    ? (encoded === undefined ? stored.slice() : decodeValue<unknown[]>(encoded))
    : [];
  const failed = [...errors].sort((x, y) => x[0] - y[0]);
  for (const [j, [message, attempts]] of failed) {
    // A failed item is never a memo hit: its key is zeroed.
    keys.fill(0, j * KEY_BYTES, (j + 1) * KEY_BYTES);
    const error = new MapItemError(b.start + j, message, attempts, env.job);
    if (env.keepResults) out[j] = error;
    env.warn(`${error.message}; skipped`);
  }
  return {
    chunk: { v: 1, results: stored, errors: failed.map(([j, [m]]) => [j, m]) },
    stats: {
      start: b.start,
      items: n,
      failed: failed.length,
      memoHits,
      computed,
      durationMs: Math.round(performance.now() - started),
      ...(failed.length === 0 ? {} : {
        errors: failed.slice(0, 20).map(([j, [message]]) => ({
          index: b.start + j,
          error: message.length > 500 ? `${message.slice(0, 497)}...` : message,
        })),
      }),
    },
    keys,
    out: { start: b.start, count: n, values: out },
  };
}
