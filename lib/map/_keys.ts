// Content keys of map items and batches: BLAKE3 over deterministic CBOR.
// A batch is encoded once, as one CBOR array of argument tuples; item keys
// hash each element's byte range of that encoding.
import { encodeCanonical } from "../../store/cbor.ts";
import { blake3BytesSync, blake3Ready } from "../../store/hash.ts";

/** Bytes of an item key as recorded (a 128-bit BLAKE3 prefix). */
export const KEY_BYTES = 16;
/** Bytes of a batch hash. */
export const HASH_BYTES = 32;

export { blake3Ready };

/**
 * Deterministic CBOR of a batch of argument tuples (one array). A value that
 * cannot be encoded gets an error naming its global item index.
 */
export function encodeBatch(
  args: readonly unknown[][],
  start: number,
): Uint8Array {
  try {
    return encodeCanonical(args);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    for (let j = 0; j < args.length; j++) {
      try {
        encodeCanonical(args[j]);
      } catch (itemError) {
        throw new TypeError(
          `Cannot map item ${start + j}: its input is not CBOR-encodable (${
            (itemError as Error).message
          })`,
        );
      }
    }
    throw error;
  }
}

/** BLAKE3-256 of bytes. Call {@linkcode blake3Ready} first. */
export function hashBytes(bytes: Uint8Array): Uint8Array {
  return blake3BytesSync(bytes);
}

/** Read a CBOR head at `pos`: major type, argument, and where the content starts. */
function head(bytes: Uint8Array, pos: number): [number, number, number] {
  const b = bytes[pos]!;
  const major = b >> 5;
  const info = b & 31;
  if (info < 24) return [major, info, pos + 1];
  if (info === 24) return [major, bytes[pos + 1]!, pos + 2];
  if (info === 25) {
    return [major, (bytes[pos + 1]! << 8) | bytes[pos + 2]!, pos + 3];
  }
  if (info === 26) {
    return [
      major,
      ((bytes[pos + 1]! << 24) >>> 0) + (bytes[pos + 2]! << 16) +
      (bytes[pos + 3]! << 8) + bytes[pos + 4]!,
      pos + 5,
    ];
  }
  if (info === 27) {
    let v = 0;
    for (let k = 1; k <= 8; k++) v = v * 256 + bytes[pos + k]!;
    return [major, v, pos + 9];
  }
  throw new SyntaxError(
    `Cannot split a batch encoding: unexpected CBOR head 0x${b.toString(16)}`,
  );
}

/** Where the CBOR item starting at `pos` ends (definite lengths only, as cairn encodes). */
function itemEnd(bytes: Uint8Array, pos: number): number {
  let remaining = 1;
  while (remaining > 0) {
    const [major, arg, next] = head(bytes, pos);
    remaining--;
    pos = next;
    if (major === 2 || major === 3) pos += arg;
    else if (major === 4) remaining += arg;
    else if (major === 5) remaining += 2 * arg;
    else if (major === 6) remaining += 1;
    // Majors 0, 1 and 7 (ints, simple values, floats) are all head.
  }
  return pos;
}

/** Item keys of a batch encoding: 16 bytes per element, in order. */
export function itemKeys(batch: Uint8Array, count: number): Uint8Array {
  const keys = new Uint8Array(count * KEY_BYTES);
  let [, n, pos] = head(batch, 0);
  if (n !== count) {
    throw new RangeError(
      `Cannot split a batch encoding: ${n} items, expected ${count}`,
    );
  }
  for (let j = 0; j < count; j++) {
    const end = itemEnd(batch, pos);
    keys.set(
      blake3BytesSync(batch.subarray(pos, end)).subarray(0, KEY_BYTES),
      j * KEY_BYTES,
    );
    pos = end;
  }
  return keys;
}

/** The lookup string of item `j` (latin1 of its key bytes); "" for a zeroed (failed) key. */
export function lookupKey(keys: Uint8Array, j: number): string {
  const at = j * KEY_BYTES;
  let zero = true;
  for (let k = at; k < at + KEY_BYTES; k++) {
    if (keys[k] !== 0) {
      zero = false;
      break;
    }
  }
  if (zero) return "";
  return String.fromCharCode.apply(
    null,
    keys.subarray(at, at + KEY_BYTES) as unknown as number[],
  );
}

const HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** Lowercase hex of the first `length` bytes. */
export function toHex(bytes: Uint8Array, length = bytes.length): string {
  let s = "";
  for (let i = 0; i < length; i++) s += HEX[bytes[i]!];
  return s;
}
