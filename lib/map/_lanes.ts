// Items run on at most `size` lanes, first come first served. A failed item
// waits for its retry off the lanes, so the wait holds up no other item; the
// retry then queues behind the items already waiting.
import { InterruptedError } from "../job.ts";
import { backoffDelay, sleep } from "../retry.ts";

/** How an item ended. */
export type ItemOutcome =
  | { kind: "ok"; value: unknown }
  | { kind: "failed"; error: unknown; attempts: number }
  | { kind: "skipped" }
  | { kind: "interrupted" };

/** Retry policy of an item. */
export interface ItemRetry {
  retries: number;
  initialDelayMs: number;
  retryOn?: (error: unknown, attempt: number) => boolean;
}

/** Runs items on lanes; see {@linkcode createLanes}. */
export type RunItem = (
  call: () => unknown,
  policy: ItemRetry,
  signal: AbortSignal,
  skip: () => boolean,
  firstDone: (retrying: boolean) => void,
  done: (outcome: ItemOutcome) => void,
) => void;

function isAbort(error: unknown): boolean {
  return error instanceof InterruptedError ||
    (error instanceof Error && error.name === "AbortError");
}

/**
 * Lanes shared by every batch of a call. Each lane pulls the next queued
 * attempt when its current one ends, so a queued item costs no promise of its
 * own. `skip()` is asked before each attempt (a stopped batch skips the rest);
 * `firstDone(retrying)` is called once the item's first attempt is over.
 * `pause()` may hold a lane between attempts to let I/O through.
 */
export function createLanes(
  size: number,
  pause: () => Promise<void> | undefined = () => undefined,
): RunItem {
  const queue: (() => Promise<void>)[] = [];
  let head = 0;
  let lanes = 0;
  const lane = async () => {
    try {
      while (head < queue.length) {
        const task = queue[head]!;
        queue[head++] = undefined as never;
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        await task();
        // Let I/O (earlier batches' writes) through between CPU-bound items.
        await pause();
      }
    } finally {
      lanes--;
    }
  };
  const schedule = (task: () => Promise<void>) => {
    queue.push(task);
    if (lanes < size) {
      lanes++;
      void lane();
    }
  };
  return (call, policy, signal, skip, firstDone, done) => {
    let first = true;
    const resolve = (outcome: ItemOutcome) => {
      done(outcome);
      if (first) (first = false, firstDone(false));
    };
    const attempt = (n: number) =>
      schedule(async () => {
        if (signal.aborted) return resolve({ kind: "interrupted" });
        if (skip()) return resolve({ kind: "skipped" });
        try {
          resolve({ kind: "ok", value: await call() });
        } catch (error) {
          if (signal.aborted || isAbort(error)) {
            return resolve({ kind: "interrupted" });
          }
          const retryOn = policy.retryOn ?? (() => true);
          let again = false;
          try {
            again = n <= policy.retries && retryOn(error, n);
          } catch (retryOnError) {
            return resolve({
              kind: "failed",
              error: retryOnError,
              attempts: n,
            });
          }
          if (!again) return resolve({ kind: "failed", error, attempts: n });
          // Wait off the lane: it takes the next item meanwhile.
          if (first) (first = false, firstDone(true));
          sleep(backoffDelay(n, policy), signal).then(
            () => attempt(n + 1),
            () => resolve({ kind: "interrupted" }),
          );
        }
      });
    attempt(1);
  };
}
