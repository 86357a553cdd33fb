/**
 * One entry point for both distance kernels: walks a query block and hands
 * the caller, reference tile by reference tile, the pairs whose lower bound
 * does not exceed the caller's per-row threshold. The WebAssembly kernel
 * filters inside its tile loop; the TypeScript kernel filters its key tiles.
 * Either way the caller decides with exact keys, so results do not depend on
 * the kernel.
 *
 * @module
 */

import {
  type PreparedReference,
  QUERY_TILE,
  type QueryBlock,
  REF_TILE,
  scanKeyTiles,
} from "./kernel.ts";
import {
  type CandidateBatch,
  type CandidateScan,
  packReference,
  scanWasm,
  WASM_QUERY_TILE,
  wasmVariant,
} from "./kernel_wasm.ts";

export type { CandidateBatch, CandidateScan };

/**
 * Which distance kernel searches use.
 *
 * - `"auto"`: the WebAssembly SIMD kernel where the runtime has it (relaxed
 *   SIMD first), else TypeScript; the `CAIRN_KNN_KERNEL` environment
 *   variable (`ts`, `wasm`, `wasm-simd`) overrides it.
 * - `"wasm"`: the WebAssembly kernel, relaxed SIMD if validated.
 * - `"wasm-simd"`: the WebAssembly kernel without relaxed SIMD.
 * - `"ts"`: the TypeScript float64 kernel.
 */
export type KernelChoice = "auto" | "wasm" | "wasm-simd" | "ts";

/** Which kernel actually ran a scan. */
export type KernelUsed = "wasm-relaxed" | "wasm-simd" | "ts";

/** Options for {@linkcode scanCandidates}. */
export interface ScanOptions {
  /** The kernel. Defaults to `"auto"`. */
  kernel?: KernelChoice;
  /** Threads that may share the packed reference. Defaults to `1`. */
  slots?: number;
}

/**
 * Largest number of query rows {@linkcode scanCandidates} passes to one
 * `startQueries` call, so callers can size per-row state.
 *
 * @example Size per-row state
 * ```ts
 * import assert from "node:assert/strict";
 * import { CANDIDATE_QUERY_TILE } from "./kernel_scan.ts";
 *
 * assert.equal(CANDIDATE_QUERY_TILE, 72);
 * ```
 */
export const CANDIDATE_QUERY_TILE: number = Math.max(
  WASM_QUERY_TILE,
  QUERY_TILE,
);

const KERNELS: readonly KernelChoice[] = ["auto", "wasm", "wasm-simd", "ts"];

/**
 * Resolves a kernel choice to the kernel that will run.
 *
 * @param choice The requested kernel (`"auto"` reads `CAIRN_KNN_KERNEL`).
 * @returns The kernel.
 * @throws {TypeError} On an unknown choice, or an unknown `CAIRN_KNN_KERNEL`.
 * @throws {RangeError} If a WebAssembly kernel is forced but the runtime lacks it.
 *
 * @example The TypeScript kernel is always there
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveKernel } from "./kernel_scan.ts";
 *
 * assert.equal(resolveKernel("ts"), "ts");
 * ```
 */
export function resolveKernel(choice: KernelChoice = "auto"): KernelUsed {
  if (!KERNELS.includes(choice)) {
    throw new TypeError(
      `Cannot search: kernel "${String(choice)}" is not supported; use ${
        KERNELS.map((k) => `"${k}"`).join(", ")
      }`,
    );
  }
  let wanted = choice;
  if (wanted === "auto") {
    const env = readEnv("CAIRN_KNN_KERNEL");
    if (env === "ts" || env === "wasm" || env === "wasm-simd") wanted = env;
    else if (env !== undefined && env !== "" && env !== "auto") {
      throw new TypeError(
        `Cannot search: CAIRN_KNN_KERNEL "${env}" is not supported; use "ts", "wasm", "wasm-simd" or "auto", or unset it`,
      );
    }
  }
  if (wanted === "ts") return "ts";
  const variant = wasmVariant();
  if (variant === undefined) {
    if (wanted === "auto") return "ts";
    throw new RangeError(
      `Cannot search with kernel "${wanted}": this runtime does not validate the WebAssembly SIMD kernel with shared memory; use kernel "auto" or "ts"`,
    );
  }
  if (wanted === "wasm-simd") return "wasm-simd";
  return variant === "relaxed" ? "wasm-relaxed" : "wasm-simd";
}

/**
 * Walks a query block and reports, per reference tile, every pair whose
 * lower bound (approximate key − slack) is at most the row's threshold.
 *
 * @param prepared The prepared reference.
 * @param block The query block, from `prepareQueries`.
 * @param scan The consumer: sets thresholds, takes candidates.
 * @param options The kernel choice.
 * @returns The kernel that ran.
 *
 * @example Every pair is a candidate under an infinite threshold
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixFrom } from "./matrix.ts";
 * import { prepareQueries, prepareReference } from "./kernel.ts";
 * import { scanCandidates } from "./kernel_scan.ts";
 *
 * const m = matrixFrom(new Float32Array([0, 1, 3, 7, 8]), 1);
 * const prepared = prepareReference(m, "sqeuclidean");
 * const block = prepareQueries(prepared, m, { start: 0, end: 5 });
 * let pairs = 0;
 * scanCandidates(prepared, block, {
 *   startQueries: () => {},
 *   candidates: (batch) => { pairs += batch.length; },
 *   endQueries: () => {},
 * });
 * assert.equal(pairs, 25);
 * ```
 */
export function scanCandidates(
  prepared: PreparedReference,
  block: QueryBlock,
  scan: CandidateScan,
  options: ScanOptions = {},
): KernelUsed {
  const kernel = resolveKernel(options.kernel);
  if (kernel !== "ts" && block.end > block.start) {
    const variant = kernel === "wasm-relaxed" ? "relaxed" : "simd";
    const shared = packReference(prepared, variant, options.slots ?? 1);
    if (shared !== undefined && scanWasm(shared, block, scan)) return kernel;
  }
  scanTs(prepared, block, scan);
  return "ts";
}

function scanTs(
  prepared: PreparedReference,
  block: QueryBlock,
  scan: CandidateScan,
): void {
  const thresholds = new Float64Array(QUERY_TILE);
  const cap = QUERY_TILE * REF_TILE;
  const batch: CandidateBatch = {
    length: 0,
    query: new Int32Array(cap),
    ref: new Int32Array(cap),
    key: new Float64Array(cap),
    slack: new Float64Array(cap),
  };
  scanKeyTiles(prepared, block, {
    startQueries(q0, q1) {
      thresholds.fill(Infinity);
      scan.startQueries(q0, q1, thresholds);
    },
    tile(
      { queryStart: q0, queryEnd: q1, refStart: r0, refEnd: r1, key, slack },
    ) {
      const width = r1 - r0;
      let n = 0;
      for (let i = 0; i < q1 - q0; i++) {
        const threshold = thresholds[i]!;
        const row = i * width;
        for (let j = 0; j < width; j++) {
          const kv = key[row + j]!;
          const sv = slack[row + j]!;
          if (kv - sv > threshold) continue;
          batch.query[n] = q0 + i;
          batch.ref[n] = r0 + j;
          batch.key[n] = kv;
          batch.slack[n] = sv;
          n++;
        }
      }
      batch.length = n;
      if (n > 0) scan.candidates(batch);
    },
    endQueries(q0, q1) {
      scan.endQueries(q0, q1);
    },
  });
}

function readEnv(name: string): string | undefined {
  try {
    return (globalThis as { process?: { env: Record<string, string> } })
      .process?.env[name];
  } catch {
    return undefined;
  }
}
