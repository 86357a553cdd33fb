/**
 * The WebAssembly SIMD kernel: float32 dot products of 4 query rows × 8
 * reference rows per register tile, with the candidate filter fused into the
 * tile loop (lib/knn/wasm/kernel.wat).
 *
 * The reference is packed once per prepared reference into a shared
 * `WebAssembly.Memory` (a `SharedArrayBuffer`), so worker threads search it
 * without copying. Each pair's lower bound carries a rigorous float32 error
 * bound on top of the float64 one of the TypeScript kernel, so the exact
 * recheck still decides every result and the answers stay bit-identical.
 *
 * @module
 */

import type { PreparedReference, QueryBlock } from "./kernel.ts";
import { RELAXED_WASM, SIMD_WASM } from "./wasm/kernel_bytes.ts";

/** Which WebAssembly kernel variant runs. */
export type WasmVariant = "relaxed" | "simd";

/** Query rows per kernel call (a multiple of the 4- and 6-row register tiles). */
export const WASM_QUERY_TILE = 72;
/** Reference rows per kernel call (a multiple of the 8-row register tile). */
export const WASM_REF_TILE = 512;

const FIRST_REF_TILE = 64;
const R_GROUP = 8;
const OUT_RECORDS = WASM_QUERY_TILE * WASM_REF_TILE;
const PAGE = 65536;
const MAX_PAGES = 65536;
const U32 = 2 ** -24;
const U64 = 2 ** -53;
// Scaled query values above this fall back to the TypeScript kernel, far
// below float32 overflow even after d products are summed.
const MAX_SCALED = 2 ** 90;

/**
 * Scratch bytes one searching thread needs in a packed reference's memory.
 *
 * @param d Columns.
 * @returns Bytes per slot.
 *
 * @example About half a megabyte at 128 dimensions
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmScratchBytes } from "./kernel_wasm.ts";
 *
 * assert.ok(wasmScratchBytes(128) > 512 * 1024);
 * ```
 */
export function wasmScratchBytes(d: number): number {
  return align(WASM_QUERY_TILE * d * 4) + WASM_QUERY_TILE * 16 + 192 +
    OUT_RECORDS * 16;
}

/**
 * Everything a thread needs to search a packed reference; only numbers and
 * the shared memory, so it can be posted to a worker.
 */
export interface WasmShared {
  /** The shared memory holding the packed reference and per-thread scratch. */
  memory: WebAssembly.Memory;
  /** Kernel variant compiled against this memory. */
  variant: WasmVariant;
  /** Reference rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Byte offset of the packed reference. */
  refPtr: number;
  /** Byte offset of `radd − rslack` per reference row (f64). */
  rloPtr: number;
  /** Byte offset of each reference row's additive key term (f64). */
  raddPtr: number;
  /** Byte offset of each reference row's slack term (f64). */
  rslackPtr: number;
  /** Byte offset of the first per-thread scratch slot. */
  slotPtr: number;
  /** Bytes per scratch slot. */
  slotBytes: number;
  /** Scratch slots: threads that may search at once. */
  slots: number;
  /** Power of two the kernel vectors are multiplied by before rounding. */
  vecScale: number;
  /** The matching key scale (vecScale² except for cosine). */
  keyScale: number;
  /** 2 for the Euclidean metrics, 1 otherwise. */
  mult: number;
  /** Per-unit slack coefficient applied to the scaled squared norms. */
  coef: number;
  /** The metric's kind, as the key formula needs it. */
  kind: "euclid" | "cosine" | "ip";
}

type ScanFn = (
  q: number,
  nq: number,
  ref: number,
  r0: number,
  nr: number,
  d: number,
  qlo: number,
  thr: number,
  rlo: number,
  mult: number,
  tmp: number,
  out: number,
) => number;

let detected: { variant: WasmVariant | undefined } | undefined;
const modules = new Map<WasmVariant, WebAssembly.Module>();
const instances = new WeakMap<WebAssembly.Memory, Kernel>();
const packed = new WeakMap<PreparedReference, Map<WasmVariant, WasmShared>>();
const adopted = new WeakMap<PreparedReference, WasmShared>();
let threadSlot = 0;

/**
 * Detects the best WebAssembly kernel this runtime validates: relaxed SIMD,
 * then plain simd128, else none (shared memory is required too).
 *
 * @returns The variant, or `undefined` when only the TypeScript kernel runs.
 *
 * @example Deno and Bun run one of the variants
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmVariant } from "./kernel_wasm.ts";
 *
 * assert.ok(["relaxed", "simd", undefined].includes(wasmVariant()));
 * ```
 */
export function wasmVariant(): WasmVariant | undefined {
  if (detected !== undefined) return detected.variant;
  let variant: WasmVariant | undefined;
  try {
    if (
      typeof WebAssembly === "object" &&
      typeof SharedArrayBuffer === "function"
    ) {
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      if (WebAssembly.validate(decode(RELAXED_WASM))) variant = "relaxed";
      else if (WebAssembly.validate(decode(SIMD_WASM))) variant = "simd";
    }
  } catch {
    variant = undefined;
  }
  detected = { variant };
  return variant;
}

/**
 * Sets the scratch slot this thread uses in every shared reference memory;
 * worker `i` of a pool uses slot `i + 1`, the main thread slot 0.
 *
 * @param slot The slot index.
 */
export function setWasmSlot(slot: number): void {
  threadSlot = slot;
}

/**
 * Packs a prepared reference for the WebAssembly kernel (once per prepared
 * object and variant, then cached) into a shared memory with `slots` scratch
 * slots.
 *
 * @param prepared The prepared reference.
 * @param variant The kernel variant.
 * @param slots Scratch slots (threads that may search it at once).
 * @param reuse A packed reference whose memory may be overwritten when it is
 *   large enough (tiles of a reference streamed from a file); its contents
 *   are then no longer valid. Default: none, a new memory.
 * @returns The packed reference, or `undefined` if it does not fit in 4 GiB.
 */
export function packReference(
  prepared: PreparedReference,
  variant: WasmVariant,
  slots = 1,
  reuse?: WasmShared,
): WasmShared | undefined {
  const own = adopted.get(prepared);
  if (own !== undefined && own.variant === variant && own.slots >= slots) {
    return own;
  }
  let byVariant = packed.get(prepared);
  const cached = byVariant?.get(variant);
  if (cached !== undefined && cached.slots >= slots) return cached;
  const { rows: n, cols: d, metric, reference, mean, sqNorms } = prepared;
  const nPad = Math.ceil(n / R_GROUP) * R_GROUP;
  const refPtr = 64;
  const rloPtr = align(refPtr + nPad * d * 4);
  const raddPtr = rloPtr + nPad * 8;
  const rslackPtr = raddPtr + nPad * 8;
  const slotPtr = align(rslackPtr + nPad * 8);
  const slotBytes = wasmScratchBytes(d);
  const total = slotPtr + slots * slotBytes;
  const pages = Math.ceil(total / PAGE);
  if (pages > MAX_PAGES) return undefined;
  const kind = metric === "cosine"
    ? "cosine"
    : metric === "ip"
    ? "ip"
    : "euclid";
  // The largest kernel value: rounding is monotone, so for the centred
  // metrics it sits at a column's minimum or maximum.
  let maxAbs = 0;
  if (kind !== "cosine") {
    const lo = new Float64Array(d).fill(Infinity);
    const hi = new Float64Array(d).fill(-Infinity);
    for (let r = 0; r < n; r++) {
      const base = r * d;
      for (let c = 0; c < d; c++) {
        const y = reference[base + c]!;
        if (y < lo[c]!) lo[c] = y;
        if (y > hi[c]!) hi[c] = y;
      }
    }
    for (let c = 0; c < d; c++) {
      const m = kind === "euclid" ? mean[c]! : 0;
      maxAbs = Math.max(maxAbs, Math.abs(lo[c]! - m), Math.abs(hi[c]! - m));
    }
  }
  // A power of two keeps scaling exact; it puts the largest value in (0.5, 1].
  const vecScale = maxAbs > 0 ? 2 ** -Math.ceil(Math.log2(maxAbs)) : 1;
  const keyScale = kind === "cosine" ? 1 : vecScale * vecScale;
  // Keys scaled out of float64's normal range would lose the exact scaling.
  if (!(keyScale < 2 ** 1000 && keyScale > 2 ** -1000)) return undefined;
  const mult = kind === "euclid" ? 2 : 1;
  // Float64 part as in computeKeyTile, plus the float32 rounding of both
  // vectors and the float32 sum of d products (with a 2× margin).
  const coef = (16 * d + 128) * U64 + (4 * d + 32) * U32;
  const reused = reuse !== undefined && reuse.variant === variant &&
    reuse.memory.buffer.byteLength >= total;
  const memory = reused ? reuse.memory : new WebAssembly.Memory({
    initial: pages,
    maximum: pages,
    shared: true,
  });
  const f32 = new Float32Array(memory.buffer, refPtr, nPad * d);
  // A reused memory holds the previous tile: padding and skipped rows must read 0.
  if (reused) {
    f32.fill(0);
    new Float64Array(memory.buffer, rloPtr, 3 * nPad).fill(0);
  }
  // Kernel vectors exactly as the float64 kernel forms them, then scaled.
  for (let r = 0; r < n; r++) {
    const src = r * d;
    const base = (r >> 3) * d * R_GROUP + (r & 7);
    if (kind === "euclid") {
      for (let c = 0; c < d; c++) {
        f32[base + c * R_GROUP] = (reference[src + c]! - mean[c]!) * vecScale;
      }
    } else if (kind === "ip") {
      for (let c = 0; c < d; c++) {
        f32[base + c * R_GROUP] = reference[src + c]! * vecScale;
      }
    } else {
      const sq = sqNorms[r]!;
      if (sq === 0) continue;
      const norm = Math.sqrt(sq);
      for (let c = 0; c < d; c++) {
        f32[base + c * R_GROUP] = reference[src + c]! / norm;
      }
    }
  }
  const rlo = new Float64Array(memory.buffer, rloPtr, nPad);
  const radd = new Float64Array(memory.buffer, raddPtr, nPad);
  const rslack = new Float64Array(memory.buffer, rslackPtr, nPad);
  for (let r = 0; r < n; r++) {
    const s = sqNorms[r]!;
    const rn = kind === "cosine" ? (s === 0 ? 0 : 1) : s * keyScale;
    radd[r] = kind === "euclid" ? rn : 0;
    rslack[r] = coef * rn;
    rlo[r] = radd[r]! - rslack[r]!;
  }
  const shared: WasmShared = {
    memory,
    variant,
    rows: n,
    cols: d,
    refPtr,
    rloPtr,
    raddPtr,
    rslackPtr,
    slotPtr,
    slotBytes,
    slots,
    vecScale,
    keyScale,
    mult,
    coef,
    kind,
  };
  if (byVariant === undefined) {
    byVariant = new Map();
    packed.set(prepared, byVariant);
  }
  byVariant.set(variant, shared);
  return shared;
}

/**
 * Makes a prepared reference (rebuilt in a worker) use a reference already
 * packed by another thread.
 *
 * @param prepared The worker's prepared reference.
 * @param shared The packed reference posted by the main thread.
 */
export function adoptPackedReference(
  prepared: PreparedReference,
  shared: WasmShared,
): void {
  adopted.set(prepared, shared);
}

/** One reference tile's candidate pairs, reused between calls. */
export interface CandidateBatch {
  /** Valid entries. */
  length: number;
  /** Global query row of each entry. */
  query: Int32Array;
  /** Reference row of each entry. */
  ref: Int32Array;
  /** Approximate key (smaller is nearer). */
  key: Float64Array;
  /** Bound on |key − exact key|. */
  slack: Float64Array;
}

/** What a candidate scan calls; see `scanCandidates` in kernel_scan.ts. */
export interface CandidateScan {
  /**
   * Before query rows `queryStart..queryEnd`: fill `thresholds[i]` for row
   * `queryStart + i`; pairs whose lower bound exceeds it are skipped.
   */
  startQueries(
    queryStart: number,
    queryEnd: number,
    thresholds: Float64Array,
  ): void;
  /** Candidates of the next reference tile; may lower the thresholds. */
  candidates(batch: Readonly<CandidateBatch>): void;
  /** After the last reference tile of the rows. */
  endQueries(queryStart: number, queryEnd: number): void;
}

/**
 * Runs a candidate scan of a query block with the WebAssembly kernel.
 *
 * @param shared The packed reference.
 * @param block The query block.
 * @param scan The consumer.
 * @returns `false` (having called nothing) if the block's values are out of
 *   the kernel's safe range, so the caller must use the TypeScript kernel.
 */
export function scanWasm(
  shared: WasmShared,
  block: QueryBlock,
  scan: CandidateScan,
): boolean {
  const { vectors } = block;
  const vs = shared.vecScale;
  for (let i = 0; i < vectors.length; i++) {
    if (Math.abs(vectors[i]! * vs) > MAX_SCALED) return false;
  }
  const { run, group } = instance(shared);
  const { memory, cols: d, rows: nRef, keyScale, mult, coef, kind } = shared;
  const buf = memory.buffer;
  const slot = shared.slotPtr +
    Math.min(threadSlot, shared.slots - 1) * shared.slotBytes;
  const qPtr = slot;
  const qloPtr = align(qPtr + WASM_QUERY_TILE * d * 4);
  const thrPtr = qloPtr + WASM_QUERY_TILE * 8;
  const tmpPtr = thrPtr + WASM_QUERY_TILE * 8;
  const outPtr = tmpPtr + 192;
  const qf32 = new Float32Array(buf, qPtr, WASM_QUERY_TILE * d);
  const qlo = new Float64Array(buf, qloPtr, WASM_QUERY_TILE);
  const thr = new Float64Array(buf, thrPtr, WASM_QUERY_TILE);
  const outI32 = new Int32Array(buf, outPtr, OUT_RECORDS * 4);
  const outF64 = new Float64Array(buf, outPtr, OUT_RECORDS * 2);
  const radd = new Float64Array(buf, shared.raddPtr, nRef);
  const rslack = new Float64Array(buf, shared.rslackPtr, nRef);
  const qadd = new Float64Array(WASM_QUERY_TILE);
  const qslack = new Float64Array(WASM_QUERY_TILE);
  const thresholds = new Float64Array(WASM_QUERY_TILE);
  const batch: CandidateBatch = {
    length: 0,
    query: new Int32Array(OUT_RECORDS),
    ref: new Int32Array(OUT_RECORDS),
    key: new Float64Array(OUT_RECORDS),
    slack: new Float64Array(OUT_RECORDS),
  };
  // Underflow of float32 subnormals is absolute, not relative: bound it.
  const tiny = (8 * d + 64) * 2 ** -149;
  for (let q0 = block.start; q0 < block.end; q0 += WASM_QUERY_TILE) {
    const q1 = Math.min(block.end, q0 + WASM_QUERY_TILE);
    const nq = q1 - q0;
    thresholds.fill(Infinity);
    scan.startQueries(q0, q1, thresholds);
    qf32.fill(0, 0, Math.ceil(nq / group) * group * d);
    for (let i = 0; i < nq; i++) {
      const src = (q0 - block.start + i) * d;
      const base = Math.floor(i / group) * d * group + (i % group);
      let qmax = 0;
      for (let c = 0; c < d; c++) {
        const v = vectors[src + c]! * vs;
        qf32[base + c * group] = v;
        const a = Math.abs(v);
        if (a > qmax) qmax = a;
      }
      const kn = block.kernelSqNorms[q0 - block.start + i]!;
      const qn = kind === "cosine" ? kn : kn * keyScale;
      qadd[i] = kind === "euclid" ? qn : kind === "cosine" ? 1 : 0;
      qslack[i] = coef * qn + mult * tiny * (2 + qmax);
      qlo[i] = qadd[i]! - qslack[i]!;
    }
    // A short first tile sets the thresholds before the flood of
    // candidates an infinite threshold lets through.
    for (let r0 = 0, nr = 0; r0 < nRef; r0 += nr) {
      nr = Math.min(r0 === 0 ? FIRST_REF_TILE : WASM_REF_TILE, nRef - r0);
      for (let i = 0; i < nq; i++) thr[i] = thresholds[i]! * keyScale;
      const count = run(
        qPtr,
        nq,
        shared.refPtr + r0 * d * 4,
        r0,
        nr,
        d,
        qloPtr,
        thrPtr,
        shared.rloPtr,
        mult,
        tmpPtr,
        outPtr,
      );
      for (let e = 0; e < count; e++) {
        const i = outI32[4 * e]!;
        const r = outI32[4 * e + 1]!;
        const dot = outF64[2 * e + 1]!;
        let key = (qadd[i]! + radd[r]!) - mult * dot;
        if (kind === "euclid" && key < 0) key = 0;
        batch.query[e] = q0 + i;
        batch.ref[e] = r;
        batch.key[e] = key / keyScale;
        batch.slack[e] = (qslack[i]! + rslack[r]!) / keyScale;
      }
      batch.length = count;
      if (count > 0) scan.candidates(batch);
    }
    scan.endQueries(q0, q1);
  }
  return true;
}

interface Kernel {
  run: ScanFn;
  /** Query rows per register tile of `run`. */
  group: number;
}

function instance(shared: WasmShared): Kernel {
  let kernel = instances.get(shared.memory);
  if (kernel !== undefined) return kernel;
  let module = modules.get(shared.variant);
  if (module === undefined) {
    const bytes = decode(
      shared.variant === "relaxed" ? RELAXED_WASM : SIMD_WASM,
    );
    module = new WebAssembly.Module(bytes);
    modules.set(shared.variant, module);
  }
  const inst = new WebAssembly.Instance(module, {
    env: { memory: shared.memory },
  });
  // Measured here: V8 (Deno) gains about 10% from 12 accumulators with
  // relaxed (fused) multiply-add; JavaScriptCore (Bun) and unfused plain
  // SIMD lose 3 to 7% to register spills, so they keep 8.
  const isDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  kernel = shared.variant === "relaxed" && isDeno
    ? { run: inst.exports.scan6 as ScanFn, group: 6 }
    : { run: inst.exports.scan as ScanFn, group: 4 };
  instances.set(shared.memory, kernel);
  return kernel;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function align(n: number): number {
  return Math.ceil(n / 64) * 64;
}
