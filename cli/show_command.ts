/**
 * `cairn show`: one run in detail.
 *
 * @module
 */
import { formatDuration } from "../lib/duration.ts";
import { formatByteSize } from "../lib/knn/job_plan.ts";
import {
  describeMapRun,
  describeMapStep,
  type MapRunProgress,
} from "../lib/map/describe.ts";
import type { StepRecord } from "../lib/records.ts";
import { resolveRun, runTotals } from "../lib/runs.ts";
import { type CliContext, type Command, EXIT } from "./command.ts";
import {
  onePositional,
  openExistingStore,
  parseJobRun,
  plural,
} from "./_args.ts";
import {
  formatCount,
  formatTable,
  jsonText,
  shortTime,
  toJsonValue,
  truncate,
} from "./_format.ts";

const SHOW_HEAD = 10;

function stepJson(step: StepRecord): Record<string, unknown> {
  const refs = step.output.kind === "value"
    ? step.output.chunks
    : step.output.items.flat();
  return {
    key: step.key,
    durationMs: step.durationMs,
    attempt: step.attempt,
    at: step.at,
    output: step.output.kind,
    ...(step.output.kind === "stream"
      ? { items: step.output.items.length }
      : {}),
    chunks: refs.length,
    bytes: refs.reduce((n, r) => n + r.size, 0),
    refs: refs.map((r) => ({ hash: r.hash, size: r.size })),
    memo: step.memo ?? null,
    memoHit: step.memoHit ?? false,
    stats: step.stats === undefined ? null : toJsonValue(step.stats),
  };
}

/** Keep the first and last `head` items of a long list. */
function elide<T>(items: T[], all: boolean, head = SHOW_HEAD): {
  before: T[];
  hidden: number;
  after: T[];
} {
  if (all || items.length <= 2 * head + 1) {
    return { before: items, hidden: 0, after: [] };
  }
  return {
    before: items.slice(0, head),
    hidden: items.length - 2 * head,
    after: items.slice(-head),
  };
}

function showMapItems(ctx: CliContext, p: MapRunProgress, all: boolean): void {
  const n = (v: number) => formatCount(v);
  ctx.out(
    `Items:     ${p.total === null ? "? (a stream)" : n(p.total)} total: ${
      n(p.done)
    } done, ${n(p.failed)} failed, ${
      p.pending === null ? "?" : n(p.pending)
    } pending; ${n(p.memoHits)} memo hits`,
  );
  ctx.out(
    `Rate:      ${
      p.itemsPerSecond === null ? "-" : `${n(p.itemsPerSecond)} items/s`
    } (${n(p.computed)} computed in ${
      formatDuration(p.computeMs)
    } of step time)`,
  );
  if (p.failures.length === 0) return;
  ctx.out(
    `Item failures (${n(p.failed)}${
      p.failures.length < p.failed ? `, ${p.failures.length} recorded` : ""
    }):`,
  );
  const { before, hidden, after } = elide(p.failures, all, 5);
  const line = (f: { index: number; error: string }) =>
    `  item ${f.index}: ${f.error}`;
  before.forEach((f) => ctx.out(line(f)));
  if (hidden > 0) ctx.out(`  … ${hidden} more (--all shows every one)`);
  after.forEach((f) => ctx.out(line(f)));
}

/**
 * `cairn show`: one run in detail.
 *
 * @example From a shell
 * ```sh
 * cairn show demo --all
 * ```
 */
export const showCommand: Command = {
  name: "show",
  summary: "Show one run: config, steps, failures and summary",
  usage: "cairn show JOB[/RUN]",
  description:
    "Shows a run (by default the job's newest): kind, config, version, host, start and end, attempts; each step's duration, attempt, memo hit and statistics; failures with their messages; and the summary the job recorded. RUN may be a unique prefix of a run id. Long lists show their first and last 10 entries unless --all is given; --json always gives everything.",
  positionals: true,
  options: {
    all: {
      type: "boolean",
      description: "Show every step and failure, and full statistics",
    },
  },
  examples: [
    "cairn show demo",
    "cairn show demo/20261123T030001Z --all",
    "cairn show demo --json | jq '.steps[] | select(.durationMs > 1000)'",
  ],
  async run(ctx, args) {
    const { job, run } = parseJobRun(onePositional(args, "JOB[/RUN]"));
    const store = await openExistingStore(ctx);
    const { state, status } = await resolveRun(store, job, run);
    const all = args.values.all === true;
    const totals = runTotals(state);
    const steps = [...state.steps.values()];
    const mapProgress = describeMapRun(state);
    const report = {
      job,
      run: state.run,
      kind: state.header.kind,
      status,
      config: toJsonValue(state.header.config),
      version: state.header.version,
      memo: state.header.memo ?? null,
      host: state.header.host,
      pid: state.header.pid,
      startedAt: state.startedAt,
      endedAt: status === "running" ? null : state.endedAt ?? null,
      attempts: state.attempts,
      total: state.total ?? null,
      done: state.steps.size,
      chunks: totals.chunks,
      bytes: totals.bytes,
      error: state.end?.error ?? null,
      summary: state.end?.summary === undefined
        ? null
        : toJsonValue(state.end.summary),
      steps: steps.map(stepJson),
      failures: state.failures.map((f) => ({
        key: f.key,
        attempt: f.attempt,
        at: f.at,
        error: f.error,
        willRetry: f.willRetry,
      })),
      ...(state.tornTail ? { tornTail: state.tornTail } : {}),
      ...(mapProgress === undefined ? {} : { items: mapProgress }),
    };
    ctx.result(report, () => {
      const width = all ? Infinity : 100;
      const took = state.endedAt && status !== "running"
        ? ` (${
          formatDuration(
            Date.parse(state.endedAt) - Date.parse(state.startedAt),
          )
        } after start)`
        : "";
      const header: [string, string][] = [
        ["Job", job],
        ["Run", state.run],
        ["Kind", report.kind],
        ["Status", status + (report.error ? ` (${report.error})` : "")],
        ["Config", truncate(jsonText(state.header.config), width)],
        ["Version", report.version],
        ...(report.memo === null
          ? []
          : [["Memo", report.memo] as [string, string]]),
        ["Host", `${report.host} (pid ${report.pid})`],
        ["Started", shortTime(state.startedAt)],
        ["Ended", status === "running" ? "-" : shortTime(state.endedAt) + took],
        ["Attempts", String(state.attempts)],
        [
          "Steps",
          `${state.steps.size}${
            state.total === undefined ? "" : `/${state.total}`
          } done, ${plural(totals.chunks, "chunk")}, ${
            formatByteSize(totals.bytes, { fixedDecimal: true })
          }`,
        ],
      ];
      for (const [k, v] of header) ctx.out(`${(k + ":").padEnd(10)} ${v}`);
      if (mapProgress !== undefined) showMapItems(ctx, mapProgress, all);
      if (state.tornTail) {
        ctx.out(
          `Log:       torn tail at byte ${state.tornTail.offset} (${state.tornTail.reason}); the next writer truncates it`,
        );
      }
      if (steps.length > 0) {
        ctx.out("");
        const { before, hidden, after } = elide(steps, all);
        // A family's steps show as its describer says (map: per-item data
        // goes to the Items section, not STATS).
        const statsOf = (s: StepRecord) =>
          describeMapStep(state, s)?.stats ?? s.stats;
        const row = (s: StepRecord) => {
          const stats = statsOf(s);
          return [
            s.key,
            formatDuration(s.durationMs),
            String(s.attempt),
            s.memoHit ? "hit" : s.memo !== undefined ? "stored" : "-",
            stats === undefined ? "" : truncate(jsonText(stats), width),
          ];
        };
        const lines = formatTable(
          ["KEY", "DURATION", "ATTEMPT", "MEMO", "STATS"],
          [...before.map(row), ...after.map(row)],
          [1, 2],
        );
        lines.slice(0, before.length + 1).forEach((l) => ctx.out(l));
        if (hidden > 0) {
          ctx.out(`… ${hidden} more steps (--all shows every step)`);
        }
        lines.slice(before.length + 1).forEach((l) => ctx.out(l));
      }
      if (state.failures.length > 0) {
        ctx.out("");
        ctx.out(`Failures (${state.failures.length}):`);
        const { before, hidden, after } = elide(state.failures, all, 5);
        const line = (f: (typeof state.failures)[number]) =>
          `  ${f.key} attempt ${f.attempt} at ${shortTime(f.at)}${
            f.willRetry ? " (retried)" : ""
          }: ${truncate(f.error, all ? Infinity : 300)}`;
        before.forEach((f) => ctx.out(line(f)));
        if (hidden > 0) ctx.out(`  … ${hidden} more (--all shows every one)`);
        after.forEach((f) => ctx.out(line(f)));
      }
      if (state.end?.summary !== undefined) {
        ctx.out("");
        ctx.out("Summary:");
        for (const l of jsonText(state.end.summary, 2).split("\n")) {
          ctx.out(`  ${l}`);
        }
      }
    });
    return EXIT.ok;
  },
};
