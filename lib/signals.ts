/**
 * Turning SIGINT and SIGTERM into an `AbortSignal`. The library never installs
 * signal handlers itself: a CLI or script opts in here and passes the signal
 * to `runJob`, `mapBatches`, `knnJob`, …, which then stop cleanly (the run is
 * recorded as interrupted and its lock released).
 *
 * @module
 */

/** Options for {@linkcode abortOnSignals}. */
export interface AbortOnSignalsOptions {
  /**
   * Exit the process at once (with 130 or 143) when a second signal arrives
   * while the first one's clean stop is still under way. Default: false.
   */
  exitOnSecondSignal?: boolean;
  /** The signals to watch. Default: `["SIGINT", "SIGTERM"]`. */
  signals?: ("SIGINT" | "SIGTERM")[];
}

/** What {@linkcode abortOnSignals} returns. */
export interface SignalAbort {
  /** Aborted when the first watched signal arrives; its reason names the signal. */
  signal: AbortSignal;
  /** 130 after SIGINT, 143 after SIGTERM; undefined while no signal arrived. */
  readonly exitCode: number | undefined;
  /** Remove the handlers; call it when the work is done. */
  dispose(): void;
}

/**
 * The shell's exit code for a process stopped by a signal: 128 plus its number.
 *
 * @param signal `"SIGINT"` or `"SIGTERM"`.
 * @returns 130 for SIGINT, 143 for SIGTERM.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signalExitCode } from "./signals.ts";
 * assert.equal(signalExitCode("SIGINT"), 130);
 * assert.equal(signalExitCode("SIGTERM"), 143);
 * ```
 */
export function signalExitCode(signal: "SIGINT" | "SIGTERM"): number {
  return signal === "SIGTERM" ? 143 : 130;
}

/**
 * Watch SIGINT and SIGTERM until disposed: the first one aborts `signal`
 * (its reason is an `Error` naming the signal) and sets `exitCode`.
 *
 * @param options Which signals, and whether a second one exits at once.
 * @returns The abort signal, the exit code to use, and `dispose`.
 *
 * @example Pass the signal to a job, and dispose when done
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortOnSignals } from "./signals.ts";
 * import { runJob } from "./job.ts";
 * const stop = abortOnSignals();
 * try {
 *   const n = await runJob("signals-example", { store: "memory:signals", signal: stop.signal }, (job) => job.step("a", () => 1));
 *   assert.equal(n, 1);
 *   assert.equal(stop.exitCode, undefined);
 * } finally {
 *   stop.dispose();
 * }
 * ```
 */
export function abortOnSignals(
  options: AbortOnSignalsOptions = {},
): SignalAbort {
  const controller = new AbortController();
  const names = options.signals ?? ["SIGINT", "SIGTERM"];
  let exitCode: number | undefined;
  const handlers = names.map((name) => {
    const handler = () => {
      if (exitCode !== undefined) {
        if (options.exitOnSecondSignal) process.exit(signalExitCode(name));
        return;
      }
      exitCode = signalExitCode(name);
      controller.abort(new Error(`Stopped by ${name}`, { cause: name }));
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  let disposed = false;
  return {
    signal: controller.signal,
    get exitCode() {
      return exitCode;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}
