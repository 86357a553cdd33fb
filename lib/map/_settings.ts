// A map call's settings and identity: validated options with defaults, the
// derived job name and config, and the memo namespace.
import { fingerprint } from "../../store/cbor.ts";
import { POS_BITS } from "./_item_index.ts";
import {
  blake3Ready,
  encodeBatch,
  HASH_BYTES,
  hashBytes,
  toHex,
} from "./_keys.ts";
import type { MapOptions } from "./options.ts";

/** Which member of the family is running; part of the job name and memo namespace. */
export type MapOp = "map" | "map2" | "pmap" | "imap" | "walk";

/** Where the items come from: random access (arrays) or a one-pass iterator. */
export type MapSource =
  | { kind: "indexed"; length: number; at: (i: number) => unknown[] }
  | {
    kind: "stream";
    iterator: AsyncIterator<unknown> | Iterator<unknown>;
    args: (item: unknown) => unknown[];
  };

/** Validated options with their defaults filled in. */
export interface Settings {
  batchSize: number;
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  onError: "stop" | "skip";
  version: string;
  name: string;
  memo: boolean;
}

const MAX_BATCH = 2 ** POS_BITS;

function checkInteger(
  what: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot map: ${what} must be an integer from ${min}${
        max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`
      }, got ${String(value)}`,
    );
  }
  return value;
}

function checkProgress(progress: unknown): void {
  if (
    progress === undefined || typeof progress === "function" ||
    (typeof progress === "object" && progress !== null &&
      typeof (progress as { write?: unknown }).write === "function")
  ) return;
  throw new TypeError(
    `Cannot map: progress must be a function or a writable with write(), got ${
      progress === null ? "null" : typeof progress
    }`,
  );
}

/** Validate options and fill in defaults. */
export async function resolveSettings(
  fn: unknown,
  options: MapOptions,
): Promise<Settings> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot map: the function argument is a ${typeof fn}, not a function`,
    );
  }
  const onError = options.onError ?? "stop";
  if (onError !== "stop" && onError !== "skip") {
    throw new TypeError(
      `Cannot map: onError must be "stop" or "skip", got "${String(onError)}"`,
    );
  }
  const version = options.version ?? "1";
  if (typeof version !== "string" || version === "") {
    throw new TypeError(`Cannot map: version must be a non-empty string`);
  }
  if (
    options.name !== undefined &&
    (typeof options.name !== "string" || options.name === "")
  ) {
    throw new TypeError(`Cannot map: name must be a non-empty string`);
  }
  const retryDelayMs = options.retryDelayMs ?? 1000;
  if (!(Number.isFinite(retryDelayMs) && retryDelayMs >= 0)) {
    throw new RangeError(
      `Cannot map: retryDelayMs must be a finite number of at least 0, got ${
        String(retryDelayMs)
      }`,
    );
  }
  checkProgress(options.progress);
  if (options.workers !== undefined) {
    const w = options.workers;
    if (
      typeof w !== "object" || w === null || typeof w.export !== "string" ||
      !(typeof w.module === "string" || w.module instanceof URL)
    ) {
      throw new TypeError(
        `Cannot map: workers must be { module: string | URL, export: string, threads?: number }`,
      );
    }
    if (w.threads !== undefined) checkInteger("workers.threads", w.threads, 1);
  }
  return {
    batchSize: checkInteger(
      "batchSize",
      options.batchSize ?? 100,
      1,
      MAX_BATCH,
    ),
    concurrency: checkInteger("concurrency", options.concurrency ?? 1, 1),
    retries: checkInteger("retries", options.retries ?? 3, 0),
    retryDelayMs,
    onError,
    version,
    name: options.name ??
      `fn-${(await fingerprint(fn.toString())).slice(0, 12)}`,
    memo: options.memo ?? true,
  };
}

/** The memo namespace of a function identity. */
export function memoNamespace(op: MapOp, s: Settings): string {
  return `${op}:${s.name}@${s.version}`;
}

/** Content hashes of every batch of an indexed source, concatenated. */
function indexedBatchHashes(
  source: { length: number; at: (i: number) => unknown[] },
  batchSize: number,
): Uint8Array {
  const count = Math.ceil(source.length / batchSize);
  const hashes = new Uint8Array(count * HASH_BYTES);
  for (let b = 0; b < count; b++) {
    const start = b * batchSize;
    const end = Math.min(source.length, start + batchSize);
    const args: unknown[][] = [];
    for (let i = start; i < end; i++) args.push(source.at(i));
    hashes.set(hashBytes(encodeBatch(args, start)), b * HASH_BYTES);
  }
  return hashes;
}

/** The derived job name and config of a call. */
export async function jobIdentity(
  op: MapOp,
  s: Settings,
  input: string,
  items: number | null,
): Promise<{ name: string; config: Record<string, unknown> }> {
  const config = {
    op,
    name: s.name,
    batchSize: s.batchSize,
    onError: s.onError,
    items,
    input,
  };
  const hash = await fingerprint({ ...config, version: s.version });
  return { name: `${op}-${hash.slice(0, 16)}`, config };
}

/** Input hash of an indexed source (covers every item), or "stream". */
export async function inputHashOf(
  source: MapSource,
  batchSize: number,
): Promise<{ input: string; hashes?: Uint8Array }> {
  await blake3Ready();
  if (source.kind === "stream") return { input: "stream" };
  const hashes = indexedBatchHashes(source, batchSize);
  return { input: toHex(hashBytes(hashes)), hashes };
}
