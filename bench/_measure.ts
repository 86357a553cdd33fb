/**
 * What the bench scripts share besides the table: timing a call, a
 * calibrated busy-wait standing in for CPU work, and checking integer flags.
 *
 * @module
 */

/**
 * Run `fn` and return its wall time in ms with its value.
 *
 * @param fn What to time.
 * @returns `[ms, value]`.
 */
export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

/**
 * A function that keeps the calling thread busy for `ms`: it spins on
 * `performance.now()` until a deadline, less the measured cost of one
 * `performance.now()` call. A deadline keeps the work's wall time fixed even
 * when the JIT tier changes or a shared machine preempts the process (an
 * arithmetic loop calibrated once drifted 2 to 4× between call sites).
 *
 * @param ms The busy time per call.
 * @returns The busy function.
 */
export function busyWork(ms: number): () => void {
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) performance.now();
  const nowCost = (performance.now() - start) / 100_000;
  const spin = Math.max(0, ms - nowCost);
  return () => {
    const end = performance.now() + spin;
    while (performance.now() < end) {
      // Busy: the simulated CPU work.
    }
  };
}

/**
 * Throw a RangeError naming the flag unless each value is an integer of at
 * least its minimum.
 *
 * @param bench The benchmark's name, for the message.
 * @param flags `[flag name, value, minimum]` triples.
 */
export function checkIntegerFlags(
  bench: string,
  flags: readonly (readonly [string, number, number])[],
): void {
  for (const [name, value, min] of flags) {
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(
        `Cannot run the ${bench} benchmark: --${name} must be an integer >= ${min}, found "${value}"`,
      );
    }
  }
}
