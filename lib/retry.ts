/**
 * Retrying with exponential backoff and jitter.
 *
 * @module
 */

/** Options for {@linkcode retry}. */
export interface RetryOptions {
  /** Retries after the first attempt. Default: 3. */
  retries?: number;
  /** Delay before the first retry, in ms. Default: 1000. */
  initialDelayMs?: number;
  /** Largest delay, in ms. Default: 30000. */
  maxDelayMs?: number;
  /** Growth of the delay per retry. Default: 2. */
  factor?: number;
  /** Random spread of each delay, as a fraction (0.1 = ±10%). Default: 0.1. */
  jitter?: number;
  /** Whether an error is worth retrying. Default: every error except an abort. */
  retryOn?: (error: unknown, attempt: number) => boolean;
  /** Stops waiting and retrying. */
  signal?: AbortSignal;
  /** Called before each retry. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Wait `ms`, or reject early when `signal` aborts.
 *
 * @param ms Milliseconds.
 * @param signal Optional abort signal.
 * @returns A promise that resolves after the delay.
 *
 * @example
 * ```ts
 * import { sleep } from "./retry.ts";
 * await sleep(1);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The delay before retry number `attempt` (1-based).
 *
 * @param attempt Which retry.
 * @param options Backoff options.
 * @returns Milliseconds to wait.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoffDelay } from "./retry.ts";
 * assert.ok(backoffDelay(3, { initialDelayMs: 100, jitter: 0 }) === 400);
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: RetryOptions = {},
): number {
  const {
    initialDelayMs = 1000,
    maxDelayMs = 30_000,
    factor = 2,
    jitter = 0.1,
  } = options;
  const base = Math.min(maxDelayMs, initialDelayMs * factor ** (attempt - 1));
  return Math.max(0, base * (1 + jitter * (2 * Math.random() - 1)));
}

function isAbort(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === "AbortError" ||
    (error as { name?: string } | null)?.name === "InterruptedError";
}

/**
 * Call `fn` until it succeeds, retrying failures with exponential backoff and jitter.
 *
 * @param fn The operation; receives the 1-based attempt number.
 * @param options Retry policy.
 * @returns What `fn` returned.
 *
 * @example A flaky call succeeds on the third try
 * ```ts
 * import assert from "node:assert/strict";
 * import { retry } from "./retry.ts";
 * let calls = 0;
 * const value = await retry(() => {
 *   if (++calls < 3) throw new Error("flaky");
 *   return "ok";
 * }, { initialDelayMs: 1 });
 * assert.ok(value === "ok" && calls === 3);
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => T | Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { retries = 3, retryOn = (e: unknown) => !isAbort(e), signal } =
    options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt > retries || !retryOn(error, attempt) || signal?.aborted) {
        throw error;
      }
      const delay = backoffDelay(attempt, options);
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
