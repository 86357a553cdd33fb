/**
 * Function adverbs in the manner of purrr: wrap a function so that it
 * reports errors or captures console output as plain, CBOR-encodable data,
 * ready to be mapped with {@linkcode map}.
 *
 * @module
 */
import { format } from "node:util";

/** What a {@linkcode safely} wrapped function returns: a result or an error, never both. */
export type SafelyResult<R> =
  | { result: R; error: null }
  | { result: null; error: { name: string; message: string } };

function describeError(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}

/**
 * Wrap `fn` so it never throws: it returns `{ result, error: null }` on
 * success and `{ result: null, error: { name, message } }` on failure. A
 * wrapped function never fails, so the map family neither retries nor skips it.
 *
 * @param fn The function to wrap (sync or async).
 * @returns The wrapped, always-async function.
 *
 * @example Parse errors become data
 * ```ts
 * import assert from "node:assert/strict";
 * import { safely } from "./wrappers.ts";
 * const parse = safely((s: string) => JSON.parse(s) as unknown);
 * assert.deepEqual(await parse("[1]"), { result: [1], error: null });
 * assert.ok((await parse("{")).error?.name === "SyntaxError");
 * ```
 */
export function safely<A extends unknown[], R>(
  fn: (...args: A) => R | PromiseLike<R>,
): (...args: A) => Promise<SafelyResult<R>> {
  return async function safelyWrapped(...args: A): Promise<SafelyResult<R>> {
    try {
      return { result: await fn(...args), error: null };
    } catch (error) {
      return { result: null, error: describeError(error) };
    }
  };
}

/**
 * Wrap `fn` so a failure returns `otherwise` instead of throwing.
 *
 * @param fn The function to wrap (sync or async).
 * @param otherwise The value returned when `fn` throws.
 * @returns The wrapped, always-async function.
 *
 * @example Fall back to null
 * ```ts
 * import assert from "node:assert/strict";
 * import { possibly } from "./wrappers.ts";
 * const toInt = possibly((s: string) => {
 *   if (!/^\d+$/.test(s)) throw new Error("not a number");
 *   return Number(s);
 * }, null);
 * assert.ok(await toInt("42") === 42 && await toInt("x") === null);
 * ```
 */
export function possibly<A extends unknown[], R, D>(
  fn: (...args: A) => R | PromiseLike<R>,
  otherwise: D,
): (...args: A) => Promise<R | D> {
  return async function possiblyWrapped(...args: A): Promise<R | D> {
    try {
      return await fn(...args);
    } catch {
      return otherwise;
    }
  };
}

/** What a {@linkcode quietly} wrapped function returns. */
export interface QuietlyResult<R> {
  /** What the function returned. */
  result: R;
  /** Text written with `console.log`, `console.info` and `console.debug`, one line per call. */
  output: string;
  /** Messages written with `console.warn`. */
  warnings: string[];
  /** Messages written with `console.error`. */
  messages: string[];
}

interface Capture {
  output: string[];
  warnings: string[];
  messages: string[];
}

type ConsoleMethod = "log" | "info" | "debug" | "warn" | "error";
const METHODS: ConsoleMethod[] = ["log", "info", "debug", "warn", "error"];
const active = new Set<Capture>();
let saved: Record<ConsoleMethod, (...args: unknown[]) => void> | undefined;

function startCapture(capture: Capture): void {
  active.add(capture);
  if (saved !== undefined) return;
  saved = {} as Record<ConsoleMethod, (...args: unknown[]) => void>;
  for (const method of METHODS) {
    saved[method] = console[method];
    console[method] = (...args: unknown[]) => {
      const line = format(...args);
      for (const c of active) {
        if (method === "warn") c.warnings.push(line);
        else if (method === "error") c.messages.push(line);
        else c.output.push(line);
      }
    };
  }
}

function stopCapture(capture: Capture): void {
  active.delete(capture);
  if (active.size > 0 || saved === undefined) return;
  for (const method of METHODS) console[method] = saved[method];
  saved = undefined;
}

/**
 * Wrap `fn` so the console output it makes is captured and returned with its
 * result instead of printed. `console` is restored when the call ends (also
 * when it throws; the error propagates). While several wrapped calls run at
 * once (async, `concurrency` > 1), each captures everything written until it
 * ends, so their captures interleave; run with `concurrency: 1` for exact
 * attribution.
 *
 * @param fn The function to wrap (sync or async).
 * @returns The wrapped, always-async function.
 *
 * @example Capture what a function prints
 * ```ts
 * import assert from "node:assert/strict";
 * import { quietly } from "./wrappers.ts";
 * const noisy = quietly((x: number) => {
 *   console.log("working on", x);
 *   console.warn("careful");
 *   return x * 2;
 * });
 * const out = await noisy(21);
 * assert.deepEqual(out, { result: 42, output: "working on 21", warnings: ["careful"], messages: [] });
 * ```
 */
export function quietly<A extends unknown[], R>(
  fn: (...args: A) => R | PromiseLike<R>,
): (...args: A) => Promise<QuietlyResult<R>> {
  return async function quietlyWrapped(...args: A): Promise<QuietlyResult<R>> {
    const capture: Capture = { output: [], warnings: [], messages: [] };
    startCapture(capture);
    try {
      const result = await fn(...args);
      return {
        result,
        output: capture.output.join("\n"),
        warnings: capture.warnings,
        messages: capture.messages,
      };
    } finally {
      stopCapture(capture);
    }
  };
}
