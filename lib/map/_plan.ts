// Batching: which batch comes next, with its arguments, content hash and key.
import { batchKeyOf } from "./_batch_record.ts";
import type { BatchPlan } from "./_batch.ts";
import { encodeBatch, HASH_BYTES, hashBytes } from "./_keys.ts";
import type { MapSource } from "./_settings.ts";

/** The step keys of an indexed input's batches, from their concatenated hashes. */
export function batchKeys(hashes: Uint8Array): string[] {
  const keys: string[] = [];
  for (let b = 0; b < hashes.length / HASH_BYTES; b++) {
    keys.push(batchKeyOf(b, hashes.subarray(b * HASH_BYTES)));
  }
  return keys;
}

/**
 * A planner handing out batches until the input ends. With `keys` (an
 * indexed input whose order need not be kept), batches that are not done
 * come first, so a resumed call reaches new work before reading done ones.
 */
export function createPlanner(
  source: MapSource,
  batchSize: number,
  hashes: Uint8Array | undefined,
  pendingFirst: ((key: string) => boolean) | undefined,
): () => Promise<BatchPlan | undefined> {
  let nextIndex = 0;
  let nextStart = 0;
  let order: number[] | undefined;
  let orderAt = 0;
  if (pendingFirst !== undefined && hashes !== undefined) {
    const keys = batchKeys(hashes);
    const todo = keys.flatMap((k, b) => pendingFirst(k) ? [b] : []);
    const done = keys.flatMap((k, b) => pendingFirst(k) ? [] : [b]);
    order = todo.concat(done);
  }
  return async () => {
    if (order !== undefined) {
      if (orderAt >= order.length) return undefined;
      nextIndex = order[orderAt++]!;
      nextStart = nextIndex * batchSize;
    }
    const start = nextStart;
    const args: unknown[][] = [];
    if (source.kind === "indexed") {
      const end = Math.min(source.length, start + batchSize);
      for (let i = start; i < end; i++) args.push(source.at(i));
    } else {
      while (args.length < batchSize) {
        const r = await source.iterator.next();
        if (r.done) break;
        args.push(source.args(r.value));
      }
    }
    if (args.length === 0) return undefined;
    let encoded: Uint8Array | undefined;
    let hash: Uint8Array;
    if (hashes !== undefined) {
      hash = hashes.subarray(
        nextIndex * HASH_BYTES,
        (nextIndex + 1) * HASH_BYTES,
      );
    } else {
      encoded = encodeBatch(args, start);
      hash = hashBytes(encoded);
    }
    const plan: BatchPlan = {
      index: nextIndex,
      start,
      args,
      hash,
      key: batchKeyOf(nextIndex, hash),
      ...(encoded === undefined ? {} : { encoded }),
    };
    nextIndex++;
    nextStart += args.length;
    return plan;
  };
}
