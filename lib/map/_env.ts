// What every batch of a call shares: the lanes, the function (local or on
// Workers), memo lookup with its code-edit warning, and the I/O yield.
import { setImmediate } from "node:timers";
import type { Store } from "../../store/store.ts";
import type { BatchEnv } from "./_batch.ts";
import { createLanes } from "./_lanes.ts";
import { createMemoLookup } from "./_memo_lookup.ts";
import type { WorkerPool } from "./_pool.ts";
import type { Settings } from "./_settings.ts";
import type { MapOptions } from "./options.ts";

/**
 * How long CPU-bound items run between yields to the event loop (ms). Each
 * yield lets one pending I/O completion through, and a batch write is a chain
 * of about a dozen fs operations, so yield often while a write is in flight.
 */
const TICK_WRITING_MS = 0.25;
const TICK_IDLE_MS = 2;

/** The parts of a call a batch environment is made from. */
export interface EnvSpec {
  settings: Settings;
  options: MapOptions;
  fn: (...args: unknown[]) => unknown;
  pool: WorkerPool | undefined;
  concurrency: number;
  keepResults: boolean;
  store: Store;
  namespace: string;
  codeHash: string;
  job: { name: string; run: string };
  warn: (message: string) => void;
}

/** Build the environment every batch of a call runs in. */
export function createBatchEnv(spec: EnvSpec): BatchEnv {
  const { settings: s, options, pool, fn, warn } = spec;
  const warned = new Set<string>();
  const writing = { count: 0 };
  let lastTick = performance.now();
  const pause = () => {
    const now = performance.now();
    const every = writing.count > 0 ? TICK_WRITING_MS : TICK_IDLE_MS;
    if (now - lastTick <= every) return undefined;
    lastTick = now;
    return new Promise<void>((resolve) => setImmediate(resolve));
  };
  return {
    job: spec.job.name,
    onError: s.onError,
    keepResults: spec.keepResults,
    retry: {
      retries: s.retries,
      initialDelayMs: s.retryDelayMs,
      ...(options.retryOn === undefined ? {} : { retryOn: options.retryOn }),
    },
    runItem: createLanes(spec.concurrency, pause),
    call: pool !== undefined
      ? (args) => pool.call(args)
      // Most map functions take one argument: skip the spread for them.
      : (args) => args.length === 1 ? fn(args[0]) : fn(...args),
    lookup: !s.memo ? undefined : createMemoLookup(spec.store, spec.namespace, {
      job: spec.job.name,
      run: spec.job.run,
    }, (src) => {
      const id = `${src.job}/${src.run}`;
      if (src.codeHash === undefined || src.codeHash === spec.codeHash) {
        return;
      }
      if (warned.has(id)) return;
      warned.add(id);
      warn(
        `The code of map function "${s.name}" changed since run "${src.run}" of job "${src.job}" but version "${s.version}" did not; its stored results are reused. Change the version to recompute`,
      );
    }),
    writing,
    warn,
  };
}
