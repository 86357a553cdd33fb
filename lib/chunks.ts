/**
 * Finding chunks by a prefix of their hash, the way runs are found by a
 * prefix of their id.
 *
 * @module
 */
import type { ChunkStore } from "../store/chunk_store.ts";

/**
 * The full hash of the one stored chunk whose hash starts with `prefix`.
 *
 * @param chunks The chunk store.
 * @param prefix A full hash, or a unique prefix of one (lowercase hex).
 * @returns The full hash.
 * @throws {TypeError} If `prefix` is not 1 to 64 lowercase hex characters.
 * @throws {RangeError} If no chunk hash starts with it, or several do (the
 * message lists some).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveChunkHash } from "./chunks.ts";
 * import { putValue } from "../store/chunk_store.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const { chunks } = createMemoryStore();
 * const ref = await putValue(chunks, "hello");
 * assert.equal(await resolveChunkHash(chunks, ref.hash.slice(0, 8)), ref.hash);
 * ```
 */
export async function resolveChunkHash(
  chunks: ChunkStore,
  prefix: string,
): Promise<string> {
  assertHashPrefix(prefix);
  if (prefix.length === 64) return prefix;
  const matches: string[] = [];
  for await (const hash of chunks.list()) {
    if (hash.startsWith(prefix)) matches.push(hash);
  }
  if (matches.length === 0) {
    throw new RangeError(
      `Cannot find chunk "${prefix}": no stored chunk hash starts with it`,
    );
  }
  if (matches.length > 1) {
    matches.sort();
    throw new RangeError(
      `Ambiguous chunk "${prefix}": it starts ${matches.length} chunk hashes (${
        matches.slice(0, 5).join(", ")
      }${matches.length > 5 ? ", …" : ""}); give more characters`,
    );
  }
  return matches[0]!;
}

/**
 * Check that `prefix` can name chunks: 1 to 64 lowercase hex characters.
 *
 * @param prefix A full chunk hash or a prefix of one.
 * @returns The same string.
 * @throws {TypeError} If it is anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertHashPrefix } from "./chunks.ts";
 * assert.equal(assertHashPrefix("3f2a"), "3f2a");
 * assert.throws(() => assertHashPrefix("xyz"), TypeError);
 * ```
 */
export function assertHashPrefix(prefix: string): string {
  if (!/^[0-9a-f]{1,64}$/.test(prefix)) {
    throw new TypeError(
      `Cannot use chunk hash "${
        prefix.length > 80 ? `${prefix.slice(0, 80)}…` : prefix
      }": expected 64 lowercase hex characters, or a unique prefix of them`,
    );
  }
  return prefix;
}
