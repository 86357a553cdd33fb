// SafeMapper-style progress lines for the `progress` option.
import type { MapProgress } from "./options.ts";

/** Prints progress lines; every method is a no-op without a sink. */
export interface ProgressLines {
  resuming(done: number): void;
  batch(start: number, count: number, done: number): void;
}

/** Lines to `sink` (a function or a writable); `total` is unknown for streams. */
export function progressLines(
  sink: MapProgress | undefined,
  total: number | undefined,
): ProgressLines {
  const put = (line: string) => {
    if (sink === undefined) return;
    try {
      if (typeof sink === "function") sink(line);
      else sink.write(`${line}\n`);
    } catch {
      // A broken progress sink must not break the call.
    }
  };
  const of = total === undefined ? "" : ` of ${total}`;
  return {
    resuming(done) {
      if (done === 0) return;
      put(
        `Resuming from item ${done + 1}${
          total === undefined ? "" : `/${total}`
        }`,
      );
    },
    batch(start, count, done) {
      const pct = total === undefined || total === 0
        ? ""
        : `[${Math.floor((done / total) * 100)}%] `;
      put(`${pct}items ${start + 1}–${start + count}${of}`);
    },
  };
}
