// The ordered window: up to `concurrency` batches computing plus done ones
// read ahead, each handed out in the order it was planned.
import type { BatchOut, BatchPlan } from "./_batch.ts";

/** How the window plans, classifies and runs batches. */
export interface WindowSpec {
  next: () => Promise<BatchPlan | undefined>;
  isDone: (key: string) => boolean;
  run: (b: BatchPlan) => Promise<BatchOut>;
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
      const promise = done
        ? spec.run(lookahead)
        : (computing++, spec.run(lookahead).finally(() => computing--));
      lookahead = undefined;
      promise.catch(() => (halted = true));
      window.push(promise);
    }
  };
  try {
    await fill();
    while (window.length > 0) {
      const out = await window.shift()!;
      await fill();
      yield out;
    }
  } finally {
    halted = true;
    await Promise.allSettled(window);
  }
}
