/**
 * Rendering job events for people and machines. One renderer serves a CLI
 * invocation in one of four modes:
 * - `tty`: a single redrawn line on stderr (done/total, rate, ETA), throttled
 *   and cleared at the end;
 * - `log`: for cron and pipes, progress lines at most every few seconds, plus
 *   start and end lines and messages, each line starting with a UTC timestamp;
 * - `json`: every event as one JSON line;
 * - `quiet`: only warnings (the CLI adds the one error line of a failure).
 *
 * Off a terminal (cron, pipes), every line starts with a UTC timestamp, in
 * `quiet` mode too.
 *
 * @example Log lines for a short run
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProgressRenderer } from "./progress.ts";
 * let text = "";
 * const progress = new ProgressRenderer({ mode: "log", stream: { write: (s: string) => (text += s) } });
 * progress.onEvent({ type: "run-start", job: "demo", run: "r1", resumed: false, done: 0, total: 2 });
 * progress.onEvent({ type: "run-end", job: "demo", run: "r1", status: "completed", done: 2 });
 * progress.finish();
 * assert.match(text, /demo: started run r1 \(2 steps\)/);
 * assert.match(text, /demo: completed run r1: 2 steps/);
 * ```
 *
 * @module
 */
import type { JobEvent } from "../lib/events.ts";
import { formatDuration } from "../lib/duration.ts";

/**
 * How events are shown.
 *
 * @example
 * ```ts
 * import type { ProgressMode } from "./progress.ts";
 * const mode: ProgressMode = "log";
 * console.assert(mode === "log");
 * ```
 */
export type ProgressMode = "tty" | "log" | "json" | "quiet";

/**
 * Where the renderer writes: `process.stderr` or anything with `write`.
 *
 * @example Collect output in a string
 * ```ts
 * import type { ProgressStream } from "./progress.ts";
 * let text = "";
 * const stream: ProgressStream = { write: (s: string) => (text += s), isTTY: false };
 * stream.write("x");
 * console.assert(text === "x");
 * ```
 */
export interface ProgressStream {
  /** Write text. */
  write(text: string): unknown;
  /** Whether it is a terminal. */
  isTTY?: boolean;
  /** Terminal width, when it is one. */
  columns?: number;
}

/**
 * Options for {@linkcode ProgressRenderer}.
 *
 * @example Log a line at most every 30 s
 * ```ts
 * import { type ProgressOptions, ProgressRenderer } from "./progress.ts";
 * const options: ProgressOptions = { mode: "log", logIntervalMs: 30_000 };
 * const progress = new ProgressRenderer(options);
 * progress.finish();
 * ```
 */
export interface ProgressOptions {
  /** The mode. Default: {@linkcode detectProgressMode} for the stream. */
  mode?: ProgressMode;
  /** Where to write. Default: `process.stderr`. */
  stream?: ProgressStream;
  /** Colour warnings and failures. Default: {@linkcode useColor} for the stream. */
  color?: boolean;
  /** Least time between two progress lines in `log` mode. Default: 5000 ms. */
  logIntervalMs?: number;
  /** Least time between two redraws in `tty` mode. Default: 100 ms. */
  redrawMs?: number;
  /** Least time between two `progress` events in `json` mode. Default: 1000 ms. */
  jsonProgressMs?: number;
  /** The clock, in ms. Default: `Date.now`. */
  now?: () => number;
  /**
   * Start every line with a UTC timestamp. Default: in `log` mode, and in
   * `quiet` mode when the stream is not a terminal (or `TERM=dumb`).
   */
  timestamps?: boolean;
}

/**
 * Options for {@linkcode detectProgressMode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type DetectModeOptions, detectProgressMode } from "./progress.ts";
 * const options: DetectModeOptions = { quiet: true };
 * assert.equal(detectProgressMode(options), "quiet");
 * ```
 */
export interface DetectModeOptions {
  /** `--json` was given. Default: false. */
  json?: boolean;
  /** `--quiet` was given. Default: false. */
  quiet?: boolean;
  /** The stream progress goes to. Default: `process.stderr`. */
  stream?: ProgressStream;
  /** The environment. Default: `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * Pick the mode: `json` or `quiet` when asked, `tty` for a terminal (unless
 * `TERM=dumb`), otherwise `log`.
 *
 * @param options Flags, stream and environment.
 * @returns The mode.
 *
 * @example Cron gets log lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { detectProgressMode } from "./progress.ts";
 * assert.equal(detectProgressMode({ stream: { write() {}, isTTY: false } }), "log");
 * assert.equal(detectProgressMode({ stream: { write() {}, isTTY: true }, env: { TERM: "dumb" } }), "log");
 * ```
 */
export function detectProgressMode(
  options: DetectModeOptions = {},
): ProgressMode {
  if (options.json) return "json";
  if (options.quiet) return "quiet";
  const stream = options.stream ?? process.stderr;
  const env = options.env ?? process.env;
  return stream.isTTY === true && env.TERM !== "dumb" ? "tty" : "log";
}

/**
 * Whether to use ANSI colour on a stream: `override` when given (`--color` /
 * `--no-color`), else only on a terminal with `NO_COLOR` unset or empty and
 * `TERM` not `dumb`.
 *
 * @param stream The stream. Default: `process.stderr`.
 * @param override Forced choice, if any.
 * @param env The environment. Default: `process.env`.
 * @returns Whether to colour.
 *
 * @example NO_COLOR wins over a terminal
 * ```ts
 * import assert from "node:assert/strict";
 * import { useColor } from "./progress.ts";
 * assert.equal(useColor({ write() {}, isTTY: true }, undefined, { NO_COLOR: "1" }), false);
 * assert.equal(useColor({ write() {}, isTTY: false }, true), true);
 * ```
 */
export function useColor(
  stream: ProgressStream = process.stderr,
  override?: boolean,
  env: Record<string, string | undefined> = process.env,
): boolean {
  if (override !== undefined) return override;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return stream.isTTY === true;
}

/**
 * Wrap text in an ANSI colour when `enabled`.
 *
 * @param enabled Whether colour is on.
 * @param color `red`, `yellow`, `green` or `dim`.
 * @param text The text.
 * @returns The (maybe) coloured text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paint } from "./progress.ts";
 * assert.equal(paint(false, "red", "x"), "x");
 * assert.equal(paint(true, "red", "x"), "\x1b[31mx\x1b[39m");
 * ```
 */
export function paint(
  enabled: boolean,
  color: "red" | "yellow" | "green" | "dim",
  text: string,
): string {
  if (!enabled) return text;
  const codes = {
    red: [31, 39],
    yellow: [33, 39],
    green: [32, 39],
    dim: [2, 22],
  }[color];
  return `\x1b[${codes[0]}m${text}\x1b[${codes[1]}m`;
}

/** Per-job progress state. */
interface Track {
  job: string;
  run: string;
  startedAt: number;
  done: number;
  total: number | undefined;
  /** Steps computed (not reused) in this process, for the rate. */
  computed: number;
  unit: string;
  /** Done count of the unit when the first unit progress event came. */
  unitStart: number | undefined;
  unitStartedAt: number;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * Renders {@linkcode JobEvent}s and CLI messages on one stream.
 *
 * @example JSON lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProgressRenderer } from "./progress.ts";
 * let text = "";
 * const progress = new ProgressRenderer({ mode: "json", stream: { write: (s: string) => (text += s) } });
 * progress.onEvent({ type: "warning", job: "demo", message: "careful" });
 * assert.equal(JSON.parse(text).message, "careful");
 * ```
 */
export class ProgressRenderer {
  /** The mode in use. */
  readonly mode: ProgressMode;
  readonly #stream: ProgressStream;
  readonly #color: boolean;
  readonly #logIntervalMs: number;
  readonly #redrawMs: number;
  readonly #jsonProgressMs: number;
  readonly #now: () => number;
  readonly #timestamps: boolean;
  #track: Track | undefined;
  /** Whether a bar is on screen (tty mode). */
  #drawn = false;
  #lastDraw = 0;
  #lastLog = 0;
  #lastJsonProgress = 0;

  /**
   * @param options Mode, stream, colour and throttling.
   */
  constructor(options: ProgressOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.mode = options.mode ?? detectProgressMode({ stream: this.#stream });
    this.#color = options.color ?? useColor(this.#stream);
    this.#logIntervalMs = options.logIntervalMs ?? 5000;
    this.#redrawMs = options.redrawMs ?? 100;
    this.#jsonProgressMs = options.jsonProgressMs ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#timestamps = options.timestamps ??
      (this.mode === "log" ||
        (this.mode === "quiet" &&
          detectProgressMode({ stream: this.#stream }) === "log"));
  }

  /**
   * Show one event.
   *
   * @param event The event.
   */
  onEvent(event: JobEvent): void {
    const now = this.#now();
    if (this.mode === "json") {
      if (event.type === "progress") {
        const last = event.total !== undefined && event.done >= event.total;
        if (!last && now - this.#lastJsonProgress < this.#jsonProgressMs) {
          return;
        }
        this.#lastJsonProgress = now;
      }
      this.#write(
        JSON.stringify(
          { ...event, at: new Date(now).toISOString() },
          jsonReplacer,
        ) + "\n",
      );
      return;
    }
    switch (event.type) {
      case "run-start": {
        this.#track = {
          job: event.job,
          run: event.run,
          startedAt: now,
          done: event.done,
          total: event.total,
          computed: 0,
          unit: "steps",
          unitStart: undefined,
          unitStartedAt: now,
        };
        const size = event.total === undefined
          ? ""
          : ` (${steps(event.total)})`;
        const text = event.resumed
          ? `${event.job}: resumed run ${event.run} (${event.done}${
            event.total === undefined ? "" : `/${event.total}`
          } steps done)`
          : `${event.job}: started run ${event.run}${size}`;
        this.#line("info", text, true);
        break;
      }
      case "step-done": {
        const track = this.#trackFor(event.job, now);
        track.done = event.done;
        if (event.total !== undefined) track.total = event.total;
        if (!event.cached) track.computed++;
        this.#tick(now);
        break;
      }
      case "progress": {
        const track = this.#trackFor(event.job, now);
        if (track.unitStart === undefined) {
          track.unitStart = event.done;
          track.unitStartedAt = now;
        }
        track.unit = event.unit ?? "items";
        track.done = event.done;
        track.total = event.total;
        track.computed = event.done - track.unitStart;
        this.#tick(now);
        break;
      }
      case "step-failed": {
        // Quiet: the failure's one line is the error the CLI prints at exit.
        if (this.mode === "quiet") break;
        const retry = event.willRetry ? "; retrying" : "";
        this.#line(
          "error",
          `${event.job}: step "${event.key}" failed (attempt ${event.attempt}): ${event.error}${retry}`,
          true,
        );
        break;
      }
      case "warning":
        this.#line("warning", event.message, true);
        break;
      case "run-end": {
        const track = this.#track;
        const took = track !== undefined && track.job === event.job
          ? ` in ${formatDuration(now - track.startedAt)}`
          : "";
        const detail = event.error === undefined ? "" : `: ${event.error}`;
        // Quiet: a failed run's one line is the error the CLI prints at exit.
        if (this.mode === "quiet") {
          this.#track = undefined;
          break;
        }
        this.#line(
          event.status === "completed" ? "info" : "warning",
          `${event.job}: ${event.status} run ${event.run}: ${
            steps(event.done)
          }${took}${detail}`,
          true,
          event.status !== "completed",
        );
        this.#track = undefined;
        break;
      }
    }
  }

  /**
   * Print a message between redraws of the bar.
   *
   * @param level `info` (hidden in quiet and json modes), `warning` or `error`.
   * @param text The message.
   */
  message(level: "info" | "warning" | "error", text: string): void {
    if (this.mode === "json") {
      if (level === "info") return;
      this.#write(
        JSON.stringify({
          type: level,
          message: text,
          at: new Date(this.#now()).toISOString(),
        }) + "\n",
      );
      return;
    }
    this.#line(level, text, false);
  }

  /** Clear the bar, if one is drawn. Call before the process writes its result or exits. */
  finish(): void {
    this.#clear();
  }

  #trackFor(job: string, now: number): Track {
    if (this.#track === undefined || this.#track.job !== job) {
      this.#track = {
        job,
        run: "",
        startedAt: now,
        done: 0,
        total: undefined,
        computed: 0,
        unit: "steps",
        unitStart: undefined,
        unitStartedAt: now,
      };
    }
    return this.#track;
  }

  #write(text: string): void {
    this.#stream.write(text);
  }

  #clear(): void {
    if (this.#drawn) {
      this.#write("\r\x1b[K");
      this.#drawn = false;
    }
  }

  /** Print a line; in tty mode the bar is cleared first and redrawn after. */
  #line(
    level: "info" | "warning" | "error",
    text: string,
    fromEvent: boolean,
    emphasise = false,
  ): void {
    if (this.mode === "quiet" && level === "info") return;
    let out = text;
    if (level === "warning") {
      out = emphasise
        ? paint(this.#color, "yellow", text)
        : `${paint(this.#color, "yellow", "warning:")} ${text}`;
    } else if (level === "error") out = paint(this.#color, "red", text);
    if (this.#timestamps) out = stampLines(out, this.#now());
    this.#clear();
    this.#write(out + "\n");
    if (this.mode === "tty" && this.#track !== undefined && !fromEvent) {
      this.#draw(this.#now());
    }
  }

  #tick(now: number): void {
    const track = this.#track;
    if (track === undefined) return;
    const finished = track.total !== undefined && track.done >= track.total;
    if (this.mode === "tty") {
      if (finished || now - this.#lastDraw >= this.#redrawMs) this.#draw(now);
    } else if (this.mode === "log") {
      if (this.#lastLog === 0) this.#lastLog = track.startedAt;
      if (now - this.#lastLog >= this.#logIntervalMs) {
        this.#lastLog = now;
        this.#write(
          `${
            new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z")
          } ${track.job}: ${this.#status(track, now)}\n`,
        );
      }
    }
  }

  /** `12/41 steps (29%), 3.1 steps/s, ETA 9.0s` */
  #status(track: Track, now: number): string {
    const parts = [
      `${track.done}${
        track.total === undefined ? "" : `/${track.total}`
      } ${track.unit}`,
    ];
    if (track.total !== undefined && track.total > 0) {
      parts[0] += ` (${Math.floor((100 * track.done) / track.total)}%)`;
    }
    const since = track.unitStart === undefined
      ? track.startedAt
      : track.unitStartedAt;
    const elapsed = (now - since) / 1000;
    if (track.computed > 0 && elapsed > 0) {
      const rate = track.computed / elapsed;
      parts.push(
        `${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} ${track.unit}/s`,
      );
      if (track.total !== undefined && track.done < track.total) {
        parts.push(
          `ETA ${formatDuration(((track.total - track.done) / rate) * 1000)}`,
        );
      }
    }
    return parts.join(", ");
  }

  #draw(now: number): void {
    const track = this.#track;
    if (track === undefined) return;
    this.#lastDraw = now;
    const width = Math.max(40, (this.#stream.columns || 80) - 1);
    let bar = "";
    if (track.total !== undefined && track.total > 0) {
      const cells = 20;
      const full = Math.min(
        cells,
        Math.floor((cells * track.done) / track.total),
      );
      bar = `[${"#".repeat(full)}${"-".repeat(cells - full)}] `;
    }
    const text = `${track.job} ${bar}${this.#status(track, now)}`;
    this.#write(`\r${text.slice(0, width)}\x1b[K`);
    this.#drawn = true;
  }
}

/**
 * Start every line of `text` with a UTC timestamp to the second, as log
 * lines for cron and pipes are.
 *
 * @param text One or more lines.
 * @param now The time, in ms. Default: `Date.now()`.
 * @returns The stamped lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stampLines } from "./progress.ts";
 * assert.equal(stampLines("a\nb", 0), "1970-01-01T00:00:00Z a\n1970-01-01T00:00:00Z b");
 * ```
 */
export function stampLines(text: string, now: number = Date.now()): string {
  const stamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
  return text.split("\n").map((line) => `${stamp} ${line}`).join("\n");
}

/** `1 step`, `2 steps`. */
function steps(n: number): string {
  return `${n} ${n === 1 ? "step" : "steps"}`;
}
