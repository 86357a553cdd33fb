// A small pool of node:worker_threads Workers that call one exported function.
import { availableParallelism, cpus } from "node:os";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { MapWorkers } from "./options.ts";

/** Calls the exported function on Workers. */
export interface WorkerPool {
  /** Number of Workers. */
  readonly threads: number;
  /** Resolves once every Worker has loaded the function and it matched. */
  readonly ready: Promise<void>;
  /** Call the function with `args` on the least busy Worker. */
  call(args: unknown[]): Promise<unknown>;
  /** Terminate every Worker. */
  close(): Promise<void>;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

type Reply =
  | { type: "ready"; source: string }
  | { type: "fatal"; message: string }
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; message: string } };

/** The module as a URL string: URLs pass through, paths resolve against the current directory. */
export function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]+:/i.test(module)) return module;
  return pathToFileURL(resolve(module)).href;
}

/** The default number of Workers. */
export function defaultThreads(): number {
  try {
    return Math.max(1, availableParallelism());
  } catch {
    return Math.max(1, cpus().length);
  }
}

/**
 * Start `threads` Workers on `_worker_entry.ts`. `source` is the main
 * thread's function source; each Worker's export must match it.
 */
export function createWorkerPool(spec: MapWorkers, source: string): WorkerPool {
  const threads = spec.threads ?? defaultThreads();
  const href = moduleHref(spec.module);
  const entry = new URL("./_worker_entry.ts", import.meta.url);
  const slots: Slot[] = [];
  let nextId = 0;
  let closing = false;
  let fatal: Error | undefined;

  const fail = (slot: Slot, error: Error) => {
    for (const p of slot.pending.values()) p.reject(error);
    slot.pending.clear();
  };

  const spawn = (): { slot: Slot; ready: Promise<void> } => {
    const worker = new Worker(entry, {
      workerData: { module: href, export: spec.export },
    });
    const slot: Slot = { worker, pending: new Map() };
    const ready = new Promise<void>((resolveReady, rejectReady) => {
      worker.on("message", (reply: Reply) => {
        if ("type" in reply) {
          if (reply.type === "fatal") {
            fatal = new TypeError(`Cannot use workers: ${reply.message}`);
            rejectReady(fatal);
          } else if (reply.source !== source) {
            fatal = new TypeError(
              `Cannot use workers: export "${spec.export}" of module "${href}" is not the function passed to the map call (their sources differ); pass that export itself`,
            );
            rejectReady(fatal);
          } else {
            resolveReady();
          }
          return;
        }
        const pending = slot.pending.get(reply.id);
        if (pending === undefined) return;
        slot.pending.delete(reply.id);
        if (reply.ok) {
          pending.resolve(reply.value);
        } else {
          const error = new Error(reply.error.message);
          error.name = reply.error.name;
          pending.reject(error);
        }
      });
      const onDeath = (reason: string) => {
        const error = new Error(`Cannot run item on a Worker: ${reason}`);
        rejectReady(error);
        fail(slot, error);
        const at = slots.indexOf(slot);
        if (!closing && fatal === undefined && at >= 0) {
          // Replace the dead Worker; its items were rejected and will be retried.
          const next = spawn();
          next.ready.catch(() => {});
          slots[at] = next.slot;
        }
      };
      worker.on("error", (error: unknown) => {
        onDeath(
          `it threw ${error instanceof Error ? error.message : String(error)}`,
        );
        void worker.terminate();
      });
      worker.on("exit", (code: number) => {
        if (!closing) onDeath(`it exited with code ${code}`);
      });
    });
    return { slot, ready };
  };

  const readies: Promise<void>[] = [];
  for (let i = 0; i < threads; i++) {
    const { slot, ready } = spawn();
    slots.push(slot);
    readies.push(ready);
  }
  const ready = Promise.all(readies).then(() => {});
  ready.catch(() => {});

  return {
    threads,
    ready,
    call(args) {
      if (fatal !== undefined) return Promise.reject(fatal);
      let best = slots[0]!;
      for (const s of slots) if (s.pending.size < best.pending.size) best = s;
      const id = nextId++;
      return new Promise((resolveCall, rejectCall) => {
        best.pending.set(id, { resolve: resolveCall, reject: rejectCall });
        try {
          best.worker.postMessage({ id, args });
        } catch (error) {
          best.pending.delete(id);
          rejectCall(error);
        }
      });
    },
    async close() {
      closing = true;
      const stopped = new Error(
        "Cannot run item on a Worker: the pool is closed",
      );
      for (const s of slots) fail(s, stopped);
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
