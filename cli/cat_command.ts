/**
 * `cairn cat`: print a chunk decoded as JSON.
 *
 * @module
 */
import { assertHashPrefix, resolveChunkHash } from "../lib/chunks.ts";
import { getValue } from "../store/chunk_store.ts";
import { type Command, EXIT, UsageError } from "./command.ts";
import { onePositional, openExistingStore, writeStdout } from "./_args.ts";
import { jsonText } from "./_format.ts";

/**
 * `cairn cat`: print a chunk.
 *
 * @example From a shell
 * ```sh
 * cairn cat "$(cairn show demo --json | jq -r '.steps[0].refs[0].hash')"
 * ```
 */
export const catCommand: Command = {
  name: "cat",
  summary: "Print a chunk decoded as JSON",
  usage: "cairn cat HASH",
  description:
    "Reads a chunk (checking its hash; HASH may be a unique prefix) and prints its CBOR value as JSON: typed arrays become arrays of numbers, bigints and 64-bit integer arrays become decimal strings, byte strings (Uint8Array) become base64 strings, Maps with non-string keys become [key, value] pairs, Dates become ISO strings, and undefined, NaN and Infinity become null. A piece of a large output is a byte string, so it prints as base64. --raw writes the chunk's bytes unchanged.",
  positionals: true,
  options: {
    raw: {
      type: "boolean",
      description: "Write the chunk's CBOR bytes to stdout unchanged",
    },
  },
  examples: [
    "cairn cat 3f2a91c0",
    "cairn show demo --json | jq -r '.steps[0].key'",
    "cairn cat HASH --raw > chunk.cbor",
  ],
  async run(ctx, args) {
    const prefix = onePositional(args, "HASH");
    try {
      assertHashPrefix(prefix);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const store = await openExistingStore(ctx);
    const hash = await resolveChunkHash(store.chunks, prefix);
    if (args.values.raw === true) {
      await writeStdout(await store.chunks.get(hash));
      return EXIT.ok;
    }
    const value = await getValue(store.chunks, hash);
    ctx.out(jsonText(value, ctx.json ? undefined : 2));
    return EXIT.ok;
  },
};
