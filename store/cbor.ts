/**
 * CBOR as cairn stores it. Every chunk, record and fingerprint uses one
 * encoding: RFC 8949 core deterministic CBOR (§4.2.1) with sorted map keys and
 * shortest forms, so equal values give equal bytes and equal chunk hashes.
 * The items are plain RFC 8949 (cbor-x and other decoders read them; the
 * tests check that against cbor-x). cairn encodes and decodes them itself so
 * that `mod.ts` has no dependency that a URL import could fail to resolve.
 *
 * @module
 */
import { blake3HexSync, blake3Ready } from "./hash.ts";

/**
 * Encode a value as one deterministic CBOR item, for chunks and records.
 * Like {@linkcode encodeCanonical}, but `undefined` is allowed (simple value 23).
 *
 * @param value JSON-like data, `undefined`, `Uint8Array`, typed arrays, `Map`, `Date`, `bigint`.
 * @returns The encoded bytes.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeValue, encodeValue } from "./cbor.ts";
 * const bytes = encodeValue({ a: [1, 2], b: new Float32Array([0.5]) });
 * assert.deepEqual(decodeValue(bytes), { a: [1, 2], b: new Float32Array([0.5]) });
 * ```
 */
export function encodeValue(value: unknown): Uint8Array {
  sharedSink.length = 0;
  encodeInto(sharedSink, value, () => "value", {
    verb: "encode",
    allowUndefined: true,
    seen: new Set(),
  });
  return sharedSink.result();
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
  text(value: string): void {
    // ASCII fast path: most keys and values in records are short ASCII.
    if (value.length < 24) {
      let ascii = true;
      for (let i = 0; i < value.length; i++) {
        if (value.charCodeAt(i) > 0x7f) ascii = false;
      }
      if (ascii) {
        this.#reserve(1 + value.length);
        this.#buf[this.length++] = 0x60 | value.length;
        for (let i = 0; i < value.length; i++) {
          this.#buf[this.length++] = value.charCodeAt(i);
        }
        return;
      }
    }
    const b = textEncoder.encode(value);
    this.head(3, b.length);
    this.bytes(b);
  }
  head(major: number, n: number | bigint): void {
    const m = major << 5;
    if (typeof n === "number" && n < 0x100000000) {
      this.#reserve(5);
      const at = this.length;
      if (n < 24) {
        this.#buf[at] = m | n;
        this.length += 1;
      } else if (n < 0x100) {
        this.#buf[at] = m | 24;
        this.#buf[at + 1] = n;
        this.length += 2;
      } else if (n < 0x10000) {
        this.#buf[at] = m | 25;
        this.#view.setUint16(at + 1, n);
        this.length += 3;
      } else {
        this.#buf[at] = m | 26;
        this.#view.setUint32(at + 1, n);
        this.length += 5;
      }
      return;
    }
    const v = BigInt(n);
    if (v < 0x100000000n) return this.head(major, Number(v));
    this.#reserve(9);
    this.#buf[this.length] = m | 27;
    this.#view.setBigUint64(this.length + 1, v);
    this.length += 9;
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
    const out = this.#buf.slice(0, this.length);
    if (this.#buf.length > 1 << 24) {
      // Do not keep a huge buffer alive after one large value.
      this.#buf = new Uint8Array(256);
      this.#view = new DataView(this.#buf.buffer);
    }
    return out;
  }
}

/** Encoding is synchronous and never re-entered, so one growable buffer serves every call. */
const sharedSink = new ByteSink();

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

/** How an encode call treats the edge cases: fingerprints refuse `undefined`. */
interface EncodeMode {
  verb: "encode" | "fingerprint";
  allowUndefined: boolean;
  seen: Set<object>;
}

/** Error paths are built only when an error needs one. */
type Path = () => string;

function encodeInto(
  sink: ByteSink,
  value: unknown,
  path: Path,
  mode: EncodeMode,
): void {
  switch (typeof value) {
    case "number":
      if (
        Number.isInteger(value) && !Object.is(value, -0) &&
        Math.abs(value) < 2 ** 64
      ) {
        if (value >= 0 && value < 24) return sink.byte(value);
        return value >= 0
          ? sink.head(0, value)
          : sink.head(1, -1n - BigInt(value));
      }
      return sink.float(value);
    case "bigint":
      if (value >= 0n && value < 2n ** 64n) return sink.head(0, value);
      if (value < 0n && value >= -(2n ** 64n)) return sink.head(1, -1n - value);
      return encodeBignum(sink, value);
    case "string":
      return sink.text(value);
    case "boolean":
      return sink.byte(value ? 0xf5 : 0xf4);
    case "object":
      if (value === null) return sink.byte(0xf6);
      return encodeObject(sink, value, path, mode);
    case "undefined":
      if (mode.allowUndefined) return sink.byte(0xf7);
      // falls through
    default:
      throw new TypeError(
        `Cannot ${mode.verb} ${path()}: ${typeof value} is not encodable; use null, a string or a number instead`,
      );
  }
}

function encodeBignum(sink: ByteSink, value: bigint): void {
  // Through hex: linear in the number's size (shifting byte by byte is quadratic).
  let hex = (value < 0n ? -1n - value : value).toString(16);
  if (hex.length % 2 === 1) hex = "0" + hex;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  sink.head(6, value < 0n ? 3 : 2);
  sink.head(2, bytes.length);
  sink.bytes(bytes);
}

/** UTF-8 of recently seen map keys: records repeat the same few keys. */
const keyCache = new Map<string, Uint8Array>();

function utf8Key(key: string): Uint8Array {
  let bytes = keyCache.get(key);
  if (bytes === undefined) {
    bytes = textEncoder.encode(key);
    if (keyCache.size > 4096) keyCache.clear();
    keyCache.set(key, bytes);
  }
  return bytes;
}

/** Core deterministic order of text-string keys: shorter UTF-8 first, then bytewise. */
function compareTextKeys(a: Uint8Array, b: Uint8Array): number {
  return a.length - b.length || compareBytes(a, b);
}

function encodeObject(
  sink: ByteSink,
  value: object,
  path: Path,
  mode: EncodeMode,
): void {
  if (mode.seen.has(value)) {
    throw new TypeError(
      `Cannot ${mode.verb} ${path()}: the value contains a cycle`,
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
        `Cannot ${mode.verb} ${path()}: ${
          describeType(value)
        } is not supported`,
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
    return encodeInto(sink, value.getTime() / 1000, path, mode);
  }
  mode.seen.add(value);
  try {
    if (Array.isArray(value)) {
      sink.head(4, value.length);
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) {
          throw new TypeError(
            `Cannot ${mode.verb} ${path()}[${i}]: sparse array hole; fill it with null`,
          );
        }
        encodeInto(sink, value[i], () => `${path()}[${i}]`, mode);
      }
      return;
    }
    if (value instanceof Map) return encodeMap(sink, value, path, mode);
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(
        `Cannot ${mode.verb} ${path()}: ${
          describeType(value)
        } instances are not encodable; convert it to a plain object, array or Map`,
      );
    }
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).map((
      k,
    ): [string, Uint8Array] => [k, utf8Key(k)]);
    keys.sort((a, b) => compareTextKeys(a[1], b[1]));
    sink.head(5, keys.length);
    for (const [k, bytes] of keys) {
      sink.head(3, bytes.length);
      sink.bytes(bytes);
      encodeInto(sink, record[k], () => `${path()}.${k}`, mode);
    }
  } finally {
    mode.seen.delete(value);
  }
}

function encodeMap(
  sink: ByteSink,
  value: Map<unknown, unknown>,
  path: Path,
  mode: EncodeMode,
): void {
  const entries = [...value].map(([k, v]): [Uint8Array, unknown, Path] => {
    const keySink = new ByteSink();
    encodeInto(keySink, k, () => `${path()} key`, mode);
    return [keySink.result(), v, () => `${path()}.get(${String(k)})`];
  });
  entries.sort((a, b) => compareBytes(a[0], b[0]));
  for (let i = 1; i < entries.length; i++) {
    if (compareBytes(entries[i - 1]![0], entries[i]![0]) === 0) {
      throw new TypeError(
        `Cannot ${mode.verb} ${path()}: two map keys encode to the same bytes`,
      );
    }
  }
  sink.head(5, entries.length);
  for (const [k, v, p] of entries) {
    sink.bytes(k);
    encodeInto(sink, v, p, mode);
  }
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
  sharedSink.length = 0;
  encodeInto(sharedSink, value, () => "value", {
    verb: "fingerprint",
    allowUndefined: false,
    seen: new Set(),
  });
  return sharedSink.result();
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

const TYPED_ARRAY_BY_TAG = new Map<
  number,
  { new (buffer: ArrayBuffer): ArrayBufferView; BYTES_PER_ELEMENT: number }
>(
  [...TYPED_ARRAY_TAGS].map(([ctor, tag]) => [tag, ctor as never]),
);
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Reads one CBOR item; positions are checked so truncated input is an error, never a wrong value. */
/** Deepest nesting of arrays, maps and tags the decoder accepts. */
const MAX_CBOR_DEPTH = 512;

const HEX = Array.from(
  { length: 256 },
  (_, b) => b.toString(16).padStart(2, "0"),
);

class CborReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #depth = 0;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(n: number): number {
    const at = this.pos;
    if (at + n > this.#bytes.length) {
      throw new SyntaxError(
        `Cannot decode CBOR: item ends after byte ${this.#bytes.length}, needs ${
          at + n - this.#bytes.length
        } more`,
      );
    }
    this.pos += n;
    return at;
  }

  /** The argument of a head; -1 means indefinite length. */
  #argument(info: number): number | bigint {
    if (info < 24) return info;
    switch (info) {
      case 24:
        return this.#bytes[this.#need(1)]!;
      case 25:
        return this.#view.getUint16(this.#need(2));
      case 26:
        return this.#view.getUint32(this.#need(4));
      case 27: {
        return this.#view.getBigUint64(this.#need(8));
      }
      case 31:
        return -1;
      default:
        throw new SyntaxError(
          `Cannot decode CBOR: reserved additional information ${info} at byte ${
            this.pos - 1
          }`,
        );
    }
  }

  #length(info: number, what: string): number {
    const n = this.#argument(info);
    if (typeof n === "bigint" && n > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new SyntaxError(
        `Cannot decode CBOR: ${what} length ${n} is too large`,
      );
    }
    return Number(n);
  }

  #isBreak(): boolean {
    if (this.#bytes[this.pos] === 0xff) {
      this.pos++;
      return true;
    }
    return false;
  }

  #chunks(major: number, info: number): Uint8Array {
    const n = this.#length(info, "string");
    if (n >= 0) {
      const at = this.#need(n);
      return this.#bytes.subarray(at, at + n);
    }
    const parts: Uint8Array[] = [];
    while (!this.#isBreak()) {
      const ib = this.#bytes[this.#need(1)]!;
      if (ib >> 5 !== major || (ib & 31) === 31) {
        throw new SyntaxError(
          "Cannot decode CBOR: bad chunk in an indefinite-length string",
        );
      }
      parts.push(this.#chunks(major, ib & 31));
    }
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  #text(info: number): string {
    if (info < 24) {
      // Short ASCII strings (most map keys) skip the TextDecoder.
      const at = this.#need(info);
      const part = this.#bytes.subarray(at, at + info);
      for (let i = 0; i < info; i++) {
        if (part[i]! > 0x7f) return textDecoder.decode(part);
      }
      return String.fromCharCode.apply(null, part as unknown as number[]);
    }
    return textDecoder.decode(this.#chunks(3, info));
  }

  item(): unknown {
    const ib = this.#bytes[this.#need(1)]!;
    if (ib < 24) return ib;
    const major = ib >> 5;
    if (major < 4 || major === 7) return this.#scalar(ib);
    // Containers recurse: bound the depth so hostile input gets a clear error, not a stack overflow.
    if (++this.#depth > MAX_CBOR_DEPTH) {
      throw new RangeError(
        `Cannot decode CBOR: items are nested more than ${MAX_CBOR_DEPTH} deep at byte ${
          this.pos - 1
        }`,
      );
    }
    try {
      return this.#scalar(ib);
    } finally {
      this.#depth--;
    }
  }

  #scalar(ib: number): unknown {
    const major = ib >> 5;
    const info = ib & 31;
    switch (major) {
      case 0:
      case 1: {
        const n = this.#argument(info);
        if (n === -1) {
          throw new SyntaxError(
            "Cannot decode CBOR: indefinite-length integer",
          );
        }
        if (typeof n === "number") return major === 0 ? n : -1 - n;
        const v = major === 0 ? n : -1n - n;
        // A number when a double holds it exactly (so 2 ** 60 comes back as a number), else a bigint.
        return BigInt(Number(v)) === v ? Number(v) : v;
      }
      case 2:
        return this.#chunks(2, info).slice();
      case 3:
        return this.#text(info);
      case 4: {
        const n = this.#length(info, "array");
        const out: unknown[] = [];
        if (n >= 0) { for (let i = 0; i < n; i++) out.push(this.item()); }
        else while (!this.#isBreak()) out.push(this.item());
        return out;
      }
      case 5:
        return this.#map(this.#length(info, "map"));
      case 6:
        return this.#tagged(this.#argument(info));
      default:
        return this.#simple(info);
    }
  }

  #map(n: number): unknown {
    let object: Record<string, unknown> | undefined = {};
    let map: Map<unknown, unknown> | undefined;
    for (let i = 0; n < 0 ? !this.#isBreak() : i < n; i++) {
      const key = this.item();
      const value = this.item();
      if (object !== undefined && typeof key === "string") {
        if (key === "__proto__") {
          // Keep it an own property instead of changing the prototype.
          Object.defineProperty(object, key, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else object[key] = value;
        continue;
      }
      if (map === undefined) {
        map = new Map(Object.entries(object ?? {}));
        object = undefined;
      }
      map.set(key, value);
    }
    return object ?? map;
  }

  #tagged(tag: number | bigint): unknown {
    const at = this.pos;
    const content = this.item();
    if (tag === 0 && typeof content === "string") return new Date(content);
    if (
      tag === 1 && (typeof content === "number" || typeof content === "bigint")
    ) return new Date(Number(content) * 1000);
    if ((tag === 2 || tag === 3) && content instanceof Uint8Array) {
      // One hex parse: linear, where shifting byte by byte is quadratic.
      let hex = "0x0";
      for (let i = 0; i < content.length; i += 8192) {
        hex += Array.from(
          content.subarray(i, i + 8192),
          (b) => HEX[b]!,
        ).join("");
      }
      const v = BigInt(hex);
      return tag === 2 ? v : -1n - v;
    }
    const ctor = typeof tag === "number"
      ? TYPED_ARRAY_BY_TAG.get(tag)
      : undefined;
    if (tag === 64 && content instanceof Uint8Array) return content;
    if (ctor !== undefined && content instanceof Uint8Array) {
      if (content.length % ctor.BYTES_PER_ELEMENT !== 0) {
        throw new SyntaxError(
          `Cannot decode CBOR: tag ${tag} holds ${content.length} bytes, not a multiple of ${ctor.BYTES_PER_ELEMENT}`,
        );
      }
      return new ctor(
        content.buffer.byteLength === content.length
          ? content.buffer as ArrayBuffer
          : content.slice().buffer,
      );
    }
    throw new SyntaxError(
      `Cannot decode CBOR: tag ${tag} at byte ${at} is not supported`,
    );
  }

  #simple(info: number): unknown {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25:
        return float16(this.#view.getUint16(this.#need(2)));
      case 26:
        return this.#view.getFloat32(this.#need(4));
      case 27:
        return this.#view.getFloat64(this.#need(8));
      default: {
        // Info 24 holds the simple value in the next byte; 28-31 are reserved
        // or a break outside an indefinite-length item.
        const at = this.pos - 1;
        const value = info === 24 ? this.#view.getUint8(this.#need(1)) : info;
        throw new SyntaxError(
          info < 24 || info === 24
            ? `Cannot decode CBOR: simple value ${value} at byte ${at} is not supported`
            : `Cannot decode CBOR: additional information ${info} of major type 7 at byte ${at} is not well-formed`,
        );
      }
    }
  }
}

function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Decode exactly one CBOR item. Maps with only text keys become plain
 * objects (keys in their encoded order), other maps `Map`s; RFC 8746
 * typed-array tags become typed arrays; integers a double cannot hold exactly
 * become `bigint`. Truncated input, trailing bytes and
 * unknown tags are a `SyntaxError`.
 *
 * @param bytes The encoded bytes.
 * @returns The decoded value.
 *
 * @example Decode
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeValue, encodeValue } from "./cbor.ts";
 * assert.equal(decodeValue(encodeValue("hi")), "hi");
 * ```
 */
export function decodeValue<T = unknown>(bytes: Uint8Array): T {
  const reader = new CborReader(bytes);
  const value = reader.item();
  if (reader.pos !== bytes.length) {
    throw new SyntaxError(
      `Cannot decode CBOR: ${bytes.length - reader.pos} bytes follow the item`,
    );
  }
  return value as T;
}
