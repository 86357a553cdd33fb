/**
 * CBOR as cairn stores it: plain RFC 8949 items through cbor-x for chunk and
 * record payloads, and cairn's own core deterministic encoding (RFC 8949
 * §4.2) for fingerprints, which cbor-x does not provide (it keeps map keys in
 * insertion order and does not always pick the shortest float).
 *
 * @module
 */
import { Encoder } from "npm:cbor-x@^1.6.8/encode";
import { blake3HexSync, blake3Ready } from "./hash.ts";

const codec = new Encoder({ useRecords: false, variableMapSize: true });

/**
 * Encode a value as one plain RFC 8949 CBOR item (no cbor-x extensions).
 *
 * @param value Any CBOR-encodable value: JSON-like data, `Uint8Array`, typed arrays, `Map`, `Date`, `bigint`.
 * @returns The encoded bytes.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeValue, encodeValue } from "./cbor.ts";
 * const bytes = encodeValue({ a: [1, 2] });
 * assert.ok(decodeValue<{ a: number[] }>(bytes).a[1] === 2);
 * ```
 */
export function encodeValue(value: unknown): Uint8Array {
  const out = codec.encode(value);
  // Hand back a plain Uint8Array: cbor-x may return a Node Buffer.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Decode one CBOR item.
 *
 * @param bytes The encoded bytes.
 * @returns The decoded value.
 *
 * @example Decode
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeValue, encodeValue } from "./cbor.ts";
 * assert.ok(decodeValue(encodeValue("hi")) === "hi");
 * ```
 */
export function decodeValue<T = unknown>(bytes: Uint8Array): T {
  return codec.decode(bytes) as T;
}

const TYPED_ARRAY_TAGS = new Map<unknown, number>([
  [Uint8ClampedArray, 68],
  [Uint16Array, 69],
  [Uint32Array, 70],
  [BigUint64Array, 71],
  [Int8Array, 72],
  [Int16Array, 77],
  [Int32Array, 78],
  [BigInt64Array, 79],
  [Float32Array, 85],
  [Float64Array, 86],
]);

const textEncoder = new TextEncoder();

class ByteSink {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
  byte(b: number): void {
    this.#reserve(1);
    this.#buf[this.length++] = b;
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  head(major: number, n: number | bigint): void {
    const m = major << 5;
    const v = BigInt(n);
    if (v < 24n) return this.byte(m | Number(v));
    if (v < 0x100n) {
      this.byte(m | 24);
      this.byte(Number(v));
    } else if (v < 0x10000n) {
      this.#reserve(3);
      this.#buf[this.length] = m | 25;
      this.#view.setUint16(this.length + 1, Number(v));
      this.length += 3;
    } else if (v < 0x100000000n) {
      this.#reserve(5);
      this.#buf[this.length] = m | 26;
      this.#view.setUint32(this.length + 1, Number(v));
      this.length += 5;
    } else {
      this.#reserve(9);
      this.#buf[this.length] = m | 27;
      this.#view.setBigUint64(this.length + 1, v);
      this.length += 9;
    }
  }
  float(x: number): void {
    this.#reserve(9);
    const at = this.length;
    const half = toFloat16Bits(x);
    if (half !== undefined) {
      this.#buf[at] = 0xf9;
      this.#view.setUint16(at + 1, half);
      this.length += 3;
    } else if (Math.fround(x) === x) {
      this.#buf[at] = 0xfa;
      this.#view.setFloat32(at + 1, x);
      this.length += 5;
    } else {
      this.#buf[at] = 0xfb;
      this.#view.setFloat64(at + 1, x);
      this.length += 9;
    }
  }
  result(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

/** The float16 bits for `x` when float16 holds it exactly, else undefined. */
function toFloat16Bits(x: number): number | undefined {
  if (Number.isNaN(x)) return 0x7e00;
  if (x === Infinity) return 0x7c00;
  if (x === -Infinity) return 0xfc00;
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const exp = Math.floor(Math.log2(a));
  if (exp > 15 || exp < -24) return undefined;
  if (exp >= -14) {
    const mant = a / 2 ** exp - 1;
    const m = mant * 1024;
    if (!Number.isInteger(m)) return undefined;
    return sign | ((exp + 15) << 10) | m;
  }
  const m = a / 2 ** -24;
  if (!Number.isInteger(m)) return undefined;
  return sign | m;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function describeType(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    return value.constructor?.name ?? "object";
  }
  return typeof value;
}

function encodeCanonicalInto(
  sink: ByteSink,
  value: unknown,
  path: string,
  seen: Set<object>,
): void {
  switch (typeof value) {
    case "number":
      if (
        Number.isInteger(value) && !Object.is(value, -0) &&
        Math.abs(value) < 2 ** 64
      ) {
        return value >= 0
          ? sink.head(0, value)
          : sink.head(1, -1n - BigInt(value));
      }
      return sink.float(value);
    case "bigint":
      if (value >= 0n && value < 2n ** 64n) return sink.head(0, value);
      if (value < 0n && value >= -(2n ** 64n)) return sink.head(1, -1n - value);
      return encodeBignum(sink, value);
    case "string": {
      const b = textEncoder.encode(value);
      sink.head(3, b.length);
      return sink.bytes(b);
    }
    case "boolean":
      return sink.byte(value ? 0xf5 : 0xf4);
    case "object":
      if (value === null) return sink.byte(0xf6);
      return encodeCanonicalObject(sink, value, path, seen);
    default:
      throw new TypeError(
        `Cannot fingerprint ${path}: ${typeof value} is not encodable; use null, a string or a number instead`,
      );
  }
}

function encodeBignum(sink: ByteSink, value: bigint): void {
  let v = value < 0n ? -1n - value : value;
  const bytes: number[] = [];
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  sink.head(6, value < 0n ? 3 : 2);
  sink.head(2, bytes.length);
  sink.bytes(Uint8Array.from(bytes));
}

function encodeCanonicalObject(
  sink: ByteSink,
  value: object,
  path: string,
  seen: Set<object>,
): void {
  if (seen.has(value)) {
    throw new TypeError(
      `Cannot fingerprint ${path}: the value contains a cycle`,
    );
  }
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    sink.head(2, value.length);
    return sink.bytes(value);
  }
  if (ArrayBuffer.isView(value)) {
    const tag = TYPED_ARRAY_TAGS.get(value.constructor);
    if (tag === undefined) {
      throw new TypeError(
        `Cannot fingerprint ${path}: ${describeType(value)} is not supported`,
      );
    }
    sink.head(6, tag);
    sink.head(2, value.byteLength);
    return sink.bytes(
      new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    );
  }
  if (value instanceof Date) {
    sink.head(6, 1);
    return encodeCanonicalInto(sink, value.getTime() / 1000, path, seen);
  }
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      sink.head(4, value.length);
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) {
          throw new TypeError(
            `Cannot fingerprint ${path}[${i}]: sparse array hole; fill it with null`,
          );
        }
        encodeCanonicalInto(sink, value[i], `${path}[${i}]`, seen);
      }
      return;
    }
    let entries: [Uint8Array, unknown, string][];
    if (value instanceof Map) {
      entries = [...value].map((
        [k, v],
      ) => [
        canonicalBytes(k, `${path} key`, seen),
        v,
        `${path}.get(${String(k)})`,
      ]);
    } else {
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(
          `Cannot fingerprint ${path}: ${
            describeType(value)
          } instances are not encodable; convert it to a plain object, array or Map`,
        );
      }
      entries = Object.keys(value).map((k) => [
        canonicalBytes(k, path, seen),
        (value as Record<string, unknown>)[k],
        `${path}.${k}`,
      ]);
    }
    entries.sort((a, b) => compareBytes(a[0], b[0]));
    for (let i = 1; i < entries.length; i++) {
      if (compareBytes(entries[i - 1]![0], entries[i]![0]) === 0) {
        throw new TypeError(
          `Cannot fingerprint ${path}: two map keys encode to the same bytes`,
        );
      }
    }
    sink.head(5, entries.length);
    for (const [k, v, p] of entries) {
      sink.bytes(k);
      encodeCanonicalInto(sink, v, p, seen);
    }
  } finally {
    seen.delete(value);
  }
}

function canonicalBytes(
  value: unknown,
  path: string,
  seen: Set<object>,
): Uint8Array {
  const sink = new ByteSink();
  encodeCanonicalInto(sink, value, path, seen);
  return sink.result();
}

/**
 * Encode `value` as RFC 8949 §4.2.1 core deterministic CBOR: map keys sorted
 * by their encoded bytes, shortest integer and float forms.
 *
 * Policy, so that equal values give equal bytes: every NaN encodes as the
 * quiet NaN `f97e00`; `-0` stays distinct from `0` (as `Object.is` sees it);
 * integral numbers below 2^64 encode as integers, so `5` and `5n` are equal;
 * `Date` is tag 1 over epoch seconds; typed arrays use RFC 8746 tags over
 * their little-endian bytes. `undefined`, functions, symbols, class
 * instances, sparse arrays and cycles are rejected with a `TypeError`.
 *
 * @param value The value to encode.
 * @returns The deterministic encoding.
 *
 * @example Key order does not matter
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeCanonical } from "./cbor.ts";
 * const a = encodeCanonical({ a: 1, b: 2 });
 * const b = encodeCanonical({ b: 2, a: 1 });
 * assert.ok(a.join() === b.join());
 * ```
 */
export function encodeCanonical(value: unknown): Uint8Array {
  return canonicalBytes(value, "value", new Set());
}

/**
 * The fingerprint of a value: BLAKE3 over its {@linkcode encodeCanonical} bytes, as hex.
 *
 * @param value The value to fingerprint.
 * @returns 64 hex characters.
 *
 * @example Equal values, equal fingerprints
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprint } from "./cbor.ts";
 * assert.ok(await fingerprint({ x: 1, y: [2] }) === await fingerprint({ y: [2], x: 1 }));
 * ```
 */
export async function fingerprint(value: unknown): Promise<string> {
  const bytes = encodeCanonical(value);
  await blake3Ready();
  return blake3HexSync(bytes);
}
