// The ordered window: batches computing plus done ones read ahead, each handed
// out in the order it was planned. A batch holds a compute slot until every
// item has had its first attempt: while its failed items wait for retries, the
// next batch starts (the lanes still bound the items in flight).
import type { BatchOut, BatchPlan } from "./_batch.ts";

/** How the window plans, classifies and runs batches. */
export interface WindowSpec {
  next: () => Promise<BatchPlan | undefined>;
  isDone: (key: string) => boolean;
  /** Run a batch; `attempted()` frees its compute slot early. */
  run: (b: BatchPlan, attempted: () => void) => Promise<BatchOut>;
  concurrency: number;
  readAhead: number;
}

/**
 * Yield each batch's output in plan order. A failed batch stops the planning;
 * on any exit the batches still in flight are settled first. `state.exhausted`
 * tells whether the planner ran dry.
 */
export async function* orderedWindow(
  spec: WindowSpec,
  state: { exhausted: boolean },
): AsyncGenerator<BatchOut> {
  const size = spec.concurrency + Math.max(0, spec.readAhead);
  const window: Promise<BatchOut>[] = [];
  let computing = 0;
  let halted = false;
  let lookahead: BatchPlan | undefined;
  let failure: { error: unknown } | undefined;
  const fill = async () => {
    while (!halted && window.length < size) {
      // Pull no further than a free compute slot allows, so a stream holds at most the window.
      if (lookahead === undefined) {
        if (state.exhausted || computing >= spec.concurrency) return;
        lookahead = await spec.next();
        if (lookahead === undefined) return void (state.exhausted = true);
      }
      const done = spec.isDone(lookahead.key);
      if (!done && computing >= spec.concurrency) return;
      let promise: Promise<BatchOut>;
      if (done) promise = spec.run(lookahead, () => {});
      else {
        computing++;
        let held = true;
        const release = () => {
          if (!held) return;
          held = false;
          computing--;
          void refill();
        };
        promise = spec.run(lookahead, release);
        // A failed batch halts planning before its slot could start another.
        promise.then(release, () => (halted = true));
      }
      lookahead = undefined;
      promise.catch(() => (halted = true));
      window.push(promise);
    }
  };
  // One fill at a time: the planner is not reentrant.
  let filling = Promise.resolve();
  const refill = () =>
    filling = filling.then(fill).catch((error) => {
      failure ??= { error };
      halted = true;
    });
  try {
    await refill();
    while (window.length > 0 || failure !== undefined) {
      if (failure !== undefined) throw failure.error;
      const out = await window.shift()!;
      await refill();
      yield out;
    }
  } finally {
    halted = true;
    await filling;
    await Promise.allSettled(window);
  }
}
