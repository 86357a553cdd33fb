/**
 * Hashing used by the on-disk format: BLAKE3 for content addresses and
 * CRC32C (Castagnoli) for manifest-log frames.
 *
 * @module
 */
import { createBLAKE3 } from "npm:hash-wasm@^4.12.0";
import { setImmediate } from "node:timers";

type Blake3Hasher = Awaited<ReturnType<typeof createBLAKE3>>;
let hasher: Blake3Hasher | undefined;

/**
 * Prepare the BLAKE3 WASM instance; the sync hash functions need it first.
 *
 * @returns A promise that resolves once hashing is ready.
 *
 * @example Prepare hashing
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Ready, blake3HexSync } from "./hash.ts";
 * await blake3Ready();
 * assert.ok(blake3HexSync(new Uint8Array()).length === 64);
 * ```
 */
export async function blake3Ready(): Promise<void> {
  hasher ??= await createBLAKE3();
}

function readyHasher(): Blake3Hasher {
  if (hasher === undefined) {
    throw new Error(
      "Cannot hash: call blake3Ready() before the sync BLAKE3 functions",
    );
  }
  hasher.init();
  return hasher;
}

/**
 * BLAKE3-256 of `bytes` as 64 lowercase hex characters (after {@linkcode blake3Ready}).
 *
 * @param bytes The bytes to hash.
 * @returns The hex digest.
 *
 * @example Hash of empty input
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Ready, blake3HexSync } from "./hash.ts";
 * await blake3Ready();
 * assert.ok(blake3HexSync(new Uint8Array()).startsWith("af1349b9"));
 * ```
 */
export function blake3HexSync(bytes: Uint8Array): string {
  return readyHasher().update(bytes).digest("hex");
}

/**
 * BLAKE3-256 of `bytes` as raw bytes (after {@linkcode blake3Ready}).
 *
 * @param bytes The bytes to hash.
 * @returns 32 digest bytes.
 *
 * @example Raw digest
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Ready, blake3BytesSync } from "./hash.ts";
 * await blake3Ready();
 * assert.ok(blake3BytesSync(new Uint8Array([1])).length === 32);
 * ```
 */
export function blake3BytesSync(bytes: Uint8Array): Uint8Array {
  return readyHasher().update(bytes).digest("binary");
}

/**
 * BLAKE3-256 of `bytes` as hex, preparing the WASM instance if needed.
 *
 * @param bytes The bytes to hash.
 * @returns The hex digest.
 *
 * @example Hash bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Hex } from "./hash.ts";
 * assert.ok((await blake3Hex(new Uint8Array([1, 2]))).length === 64);
 * ```
 */
export async function blake3Hex(bytes: Uint8Array): Promise<string> {
  await blake3Ready();
  return blake3HexSync(bytes);
}

/**
 * BLAKE3-256 of a large buffer as hex, on its own hasher, yielding to the event
 * loop between pieces so I/O started before the call (e.g. writing the same
 * bytes to a temp file) proceeds while it hashes.
 *
 * @param bytes The bytes to hash.
 * @param pieceBytes Bytes hashed between yields. Default: 1 MiB.
 * @returns The hex digest.
 *
 * @example Same digest as the plain function
 * ```ts
 * import assert from "node:assert/strict";
 * import { blake3Hex, blake3HexYielding } from "./hash.ts";
 * const data = new Uint8Array(3_000_000).fill(7);
 * assert.ok(await blake3HexYielding(data) === await blake3Hex(data));
 * ```
 */
export async function blake3HexYielding(
  bytes: Uint8Array,
  pieceBytes = 1 << 20,
): Promise<string> {
  const own = spareHashers.pop() ?? await createBLAKE3();
  try {
    own.init();
    for (let at = 0; at < bytes.length; at += pieceBytes) {
      own.update(bytes.subarray(at, at + pieceBytes));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return own.digest("hex");
  } finally {
    spareHashers.push(own);
  }
}

/** Hashers not in use by a yielding hash; each concurrent one needs its own state. */
const spareHashers: Blake3Hasher[] = [];

const CRC_TABLES = buildCrcTables();

function buildCrcTables(): Uint32Array[] {
  const tables = Array.from({ length: 4 }, () => new Uint32Array(256));
  const t0 = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t0[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t0[n]!;
    for (let t = 1; t < 4; t++) {
      c = t0[c & 0xff]! ^ (c >>> 8);
      tables[t]![n] = c >>> 0;
    }
  }
  return tables;
}

/**
 * CRC32C (Castagnoli) of `bytes`, the checksum of manifest-log frames.
 *
 * @param bytes The bytes to checksum.
 * @returns The unsigned 32-bit CRC.
 *
 * @example The standard check value
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32c } from "./hash.ts";
 * assert.ok(crc32c(new TextEncoder().encode("123456789")) === 0xe3069283);
 * ```
 */
export function crc32c(bytes: Uint8Array): number {
  const [t0, t1, t2, t3] = CRC_TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let crc = 0xffffffff;
  let i = 0;
  const end4 = bytes.length - (bytes.length % 4);
  for (; i < end4; i += 4) {
    crc ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) |
      (bytes[i + 3]! << 24);
    crc = t3[crc & 0xff]! ^ t2[(crc >>> 8) & 0xff]! ^ t1[(crc >>> 16) & 0xff]! ^
      t0[crc >>> 24]!;
  }
  for (; i < bytes.length; i++) {
    crc = t0[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
