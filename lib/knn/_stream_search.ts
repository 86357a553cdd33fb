/**
 * Exact kNN of one block of query rows against a reference that arrives in
 * tiles (read from a file), keeping every row's running top-k between tiles.
 *
 * Each tile is searched with the same kernels as an in-memory reference
 * (`scanCandidates` on a prepared tile), and a candidate's exact key is
 * computed while its tile is in memory. The final answer of a row is its k
 * best candidates by (exact key, reference index); the candidate filter only
 * prunes with rigorous bounds, so the results are bit-identical to
 * `searchKnn` on the whole reference, for any tile size. Internal to
 * `lib/knn/`.
 *
 * @module
 */

import {
  exactKey,
  keyToDistance,
  type PreparedReference,
  prepareQueries,
  type QueryBlock,
} from "./kernel.ts";
import {
  type KernelChoice,
  resolveKernel,
  scanCandidates,
} from "./kernel_scan.ts";
import {
  adoptPackedReference,
  packReference,
  type WasmShared,
} from "./kernel_wasm.ts";
import { offerUpperBound } from "./_heap.ts";
import type { Matrix, MatrixData } from "./matrix.ts";

/** A prepared reference without its rows: what a streamed search keeps. */
export type PreparedMeta = Omit<PreparedReference, "reference">;

/** Options of a {@linkcode StreamSearch}. */
export interface StreamSearchOptions {
  /** Neighbours per row. */
  k: number;
  /** Global row number of the block's first query row (for `excludeSelf`). */
  queryOffset: number;
  /** Skip reference row `queryOffset + i` for query row `i`. */
  excludeSelf: boolean;
  /** The distance kernel. Default: `"auto"`. */
  kernel?: KernelChoice;
  /**
   * Holds the WebAssembly memory the tiles are packed into, shared by the
   * searches of one job so that each block does not allocate its own.
   * Default: a memory of this search's own.
   */
  packing?: { shared?: WasmShared };
}

/** What {@linkcode StreamSearch.addTile} may be given with a tile. */
export interface TileExtras {
  /** The tile's squared norms. Default: from the prepared reference. */
  sqNorms?: Float64Array;
  /** The tile packed for the WebAssembly kernel. Default: packed here. */
  packed?: WasmShared;
}

/** Candidates of one query row: reference row, lower bound, exact key. */
interface Row {
  index: Int32Array;
  lower: Float64Array;
  exact: Float64Array;
  length: number;
}

/** The running search of one query block over reference tiles. */
export class StreamSearch {
  readonly #meta: PreparedMeta;
  readonly #block: QueryBlock;
  readonly #k: number;
  readonly #offset: number;
  readonly #excludeSelf: boolean;
  readonly #kernel: KernelChoice;
  readonly #heaps: Float64Array;
  readonly #heapSizes: Int32Array;
  readonly #thresholds: Float64Array;
  readonly #rows: Row[] = [];
  readonly #packing: { shared?: WasmShared };

  /**
   * @param meta The prepared reference's metric, mean and norms.
   * @param queries The block's query rows (local: row 0 is the block's first).
   * @param options k, the block's global offset, `excludeSelf`, the kernel.
   */
  constructor(
    meta: PreparedMeta,
    queries: Matrix,
    options: StreamSearchOptions,
  ) {
    this.#meta = meta;
    this.#k = options.k;
    this.#offset = options.queryOffset;
    this.#excludeSelf = options.excludeSelf;
    this.#kernel = options.kernel ?? "auto";
    this.#packing = options.packing ?? {};
    const asPrepared = {
      ...meta,
      reference: new Float32Array(0),
    } as PreparedReference;
    this.#block = prepareQueries(asPrepared, queries, {
      start: 0,
      end: queries.rows,
    });
    const n = queries.rows;
    this.#heaps = new Float64Array(n * this.#k);
    this.#heapSizes = new Int32Array(n);
    this.#thresholds = new Float64Array(n).fill(Infinity);
    for (let i = 0; i < n; i++) {
      const cap = 4 * this.#k + 64;
      this.#rows.push({
        index: new Int32Array(cap),
        lower: new Float64Array(cap),
        exact: new Float64Array(cap),
        length: 0,
      });
    }
  }

  /**
   * Searches the block against reference rows `r0 .. r0 + rows`.
   *
   * @param data The tile's rows, row-major (reused by the caller afterwards).
   * @param r0 Global index of its first row.
   * @param given The tile's norms and its packed copy, when another thread
   *   prepared them (a worker's share of a block); by default, the norms
   *   come from the prepared reference and the tile is packed here.
   */
  addTile(data: MatrixData, r0: number, given: TileExtras = {}): void {
    const meta = this.#meta;
    const d = meta.cols;
    const rows = data.length / d;
    const tile: PreparedReference = {
      ...meta,
      rows,
      reference: data,
      sqNorms: given.sqNorms ?? meta.sqNorms.subarray(r0, r0 + rows),
    };
    const k = this.#k;
    const heaps = this.#heaps;
    const heapSizes = this.#heapSizes;
    const thresholds = this.#thresholds;
    const block = this.#block;
    const self = this.#excludeSelf ? this.#offset - r0 : NaN;
    // One shared memory for every tile, packed over again.
    const used = resolveKernel(this.#kernel);
    if (given.packed !== undefined) {
      adoptPackedReference(tile, given.packed);
    } else if (used !== "ts") {
      const packed = packReference(
        tile,
        used === "wasm-relaxed" ? "relaxed" : "simd",
        1,
        this.#packing.shared,
      );
      if (packed !== undefined) this.#packing.shared = packed;
    }
    let q0 = 0;
    let tileThresholds: Float64Array = new Float64Array(0);
    scanCandidates(tile, block, {
      startQueries(queryStart, queryEnd, rowThresholds) {
        q0 = queryStart;
        tileThresholds = rowThresholds;
        for (let i = 0; i < queryEnd - queryStart; i++) {
          rowThresholds[i] = thresholds[queryStart + i]!;
        }
      },
      candidates: (batch) => {
        const { query, ref, key, slack } = batch;
        for (let e = 0; e < batch.length; e++) {
          const q = query[e]!;
          const r = ref[e]!;
          if (r - q === self) continue;
          const threshold = thresholds[q]!;
          const kv = key[e]!;
          const sv = slack[e]!;
          const lower = kv - sv;
          if (lower > threshold) continue;
          this.#push(q, r0 + r, lower, exactKey(tile, block, q, r), threshold);
          offerUpperBound(heaps, heapSizes, thresholds, q, k, kv + sv);
          tileThresholds[q - q0] = thresholds[q]!;
        }
      },
      endQueries() {},
    }, { kernel: this.#kernel, slots: given.packed?.slots ?? 1 });
  }

  /**
   * The k nearest of every row, nearest first, ties to the lower index.
   *
   * @returns Indices and distances, rows × k.
   */
  finish(): { index: Int32Array; distance: Float32Array } {
    const k = this.#k;
    const n = this.#rows.length;
    const index = new Int32Array(n * k);
    const distance = new Float32Array(n * k);
    for (let q = 0; q < n; q++) {
      const c = this.#rows[q]!;
      const threshold = this.#heaps[q * k]!;
      const order: number[] = [];
      for (let i = 0; i < c.length; i++) {
        if (c.lower[i]! <= threshold) order.push(i);
      }
      order.sort((a, b) =>
        c.exact[a]! - c.exact[b]! || c.index[a]! - c.index[b]!
      );
      for (let j = 0; j < k; j++) {
        const o = order[j]!;
        index[q * k + j] = c.index[o]!;
        distance[q * k + j] = keyToDistance(this.#meta.metric, c.exact[o]!);
      }
    }
    return { index, distance };
  }

  /** Appends a candidate, first dropping those that can no longer qualify. */
  #push(
    q: number,
    r: number,
    lower: number,
    exact: number,
    threshold: number,
  ): void {
    let c = this.#rows[q]!;
    if (c.length === c.index.length) {
      let kept = 0;
      for (let i = 0; i < c.length; i++) {
        if (c.lower[i]! <= threshold) {
          c.index[kept] = c.index[i]!;
          c.lower[kept] = c.lower[i]!;
          c.exact[kept] = c.exact[i]!;
          kept++;
        }
      }
      c.length = kept;
      if (kept * 2 > c.index.length) {
        const cap = c.index.length * 2;
        const grown: Row = {
          index: new Int32Array(cap),
          lower: new Float64Array(cap),
          exact: new Float64Array(cap),
          length: kept,
        };
        grown.index.set(c.index.subarray(0, kept));
        grown.lower.set(c.lower.subarray(0, kept));
        grown.exact.set(c.exact.subarray(0, kept));
        this.#rows[q] = c = grown;
      }
    }
    c.index[c.length] = r;
    c.lower[c.length] = lower;
    c.exact[c.length] = exact;
    c.length++;
  }
}
