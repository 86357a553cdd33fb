// Batches whose items are done wait here briefly and are then written
// together. Their chunk writes run side by side, so one event-loop turn
// between CPU-bound items moves every write of the group a step forward, and
// their step records reach the manifest log in one group-committed append
// (one fence, one write, one fdatasync) instead of one append each. A waiting
// batch keeps its compute slot, so no more batches are in flight than before.

/** Holds finished batches until their group is written; see {@linkcode createWriteGroup}. */
export interface WriteGroup {
  /** A batch started computing. */
  started(): void;
  /** A batch stopped computing without a result (failed or interrupted). */
  abandoned(): void;
  /** A batch's items are done: resolves when it may be written. */
  ready(): Promise<void>;
}

/**
 * Release waiting batches once `size` wait, once no batch is computing (none
 * would join), or `maxWaitMs` after the first began to wait (slow batches are
 * not held back, as their writes cost little next to their work).
 */
export function createWriteGroup(size: number, maxWaitMs: number): WriteGroup {
  let computing = 0;
  let waiting: (() => void)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const release = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const go = waiting;
    waiting = [];
    for (const resolve of go) resolve();
  };
  const check = () => {
    if (waiting.length >= size || (waiting.length > 0 && computing === 0)) {
      release();
    }
  };
  return {
    started() {
      computing++;
    },
    abandoned() {
      computing--;
      check();
    },
    ready() {
      computing--;
      const ready = new Promise<void>((resolve) => waiting.push(resolve));
      check();
      if (waiting.length > 0) timer ??= setTimeout(release, maxWaitMs);
      return ready;
    },
  };
}
