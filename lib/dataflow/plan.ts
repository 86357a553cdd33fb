/**
 * Time-range recompute plans, after StreamWeave's `plan_recompute`: the
 * changed source and every node downstream of it (or every node, with no
 * source), minus the sinks whose frontier already covers the range.
 *
 * @module
 */

/** A logical time: a number (a day index, an epoch) or a string that sorts by time ("2026-11-25"). */
export type Time = number | string;

/** A closed range of logical times: both ends are inside. */
export interface TimeRange {
  /** First time in the range. */
  from: Time;
  /** Last time in the range. */
  to: Time;
}

/** What changed: a time range, and optionally the source whose data changed in it. */
export interface RecomputeRequest {
  /** The times whose data changed. */
  timeRange: TimeRange;
  /** The input (or node) that changed. Default: none, so every node is planned. */
  source?: string;
}

/** The nodes to run for a request, in topological order. */
export interface RecomputePlan {
  /** Node names, sources first. */
  nodes: string[];
  /** The range the plan recomputes. */
  timeRange: TimeRange;
  /** The source the plan starts from, if any. */
  source?: string;
}

/** The graph a plan is made over. */
export interface PlanGraph {
  /** Every node, in topological order (sources first). */
  nodes: readonly string[];
  /** The nodes that read a node's output directly. */
  dependents(node: string): readonly string[];
  /** The completed frontier of each sink that has one. Default: none. */
  frontiers?: ReadonlyMap<string, Time>;
}

/**
 * Compare two times: numbers before strings, numbers numerically, strings by code unit.
 *
 * @param a A time.
 * @param b Another time.
 * @returns Negative, zero or positive.
 *
 * @example Days as strings, indexes as numbers
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareTime } from "./plan.ts";
 * assert.ok(compareTime(9, 10) < 0);
 * assert.ok(compareTime("2026-11-02", "2026-11-10") < 0);
 * ```
 */
export function compareTime(a: Time, b: Time): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether a closed time range contains a time (both ends included).
 *
 * @param range The range.
 * @param time The time.
 * @returns True when `from <= time <= to`.
 *
 * @example Both ends are inside
 * ```ts
 * import assert from "node:assert/strict";
 * import { timeRangeContains } from "./plan.ts";
 * const range = { from: 10, to: 20 };
 * assert.ok(timeRangeContains(range, 10) && timeRangeContains(range, 20));
 * assert.ok(!timeRangeContains(range, 9) && !timeRangeContains(range, 21));
 * ```
 */
export function timeRangeContains(range: TimeRange, time: Time): boolean {
  return compareTime(time, range.from) >= 0 && compareTime(time, range.to) <= 0;
}

/**
 * Plan a recompute: the source and its transitive dependents (every node when
 * there is no source), minus sinks whose frontier is at or past `timeRange.to`.
 *
 * @param request The time range and optional source.
 * @param graph The nodes in topological order, their dependents, sink frontiers.
 * @returns The plan, in topological order.
 *
 * @example A sink that already covers the range is left out
 * ```ts
 * import assert from "node:assert/strict";
 * import { planRecompute } from "./plan.ts";
 * const graph = {
 *   nodes: ["a", "b"],
 *   dependents: (n: string) => (n === "a" ? ["b"] : []),
 *   frontiers: new Map([["b", 15]]),
 * };
 * const plan = planRecompute({ timeRange: { from: 1, to: 10 }, source: "a" }, graph);
 * assert.deepEqual(plan.nodes, ["a"]);
 * ```
 */
export function planRecompute(
  request: RecomputeRequest,
  graph: PlanGraph,
): RecomputePlan {
  const { timeRange, source } = request;
  if (compareTime(timeRange.from, timeRange.to) > 0) {
    throw new RangeError(
      `Cannot plan a recompute: timeRange.from "${timeRange.from}" is after timeRange.to "${timeRange.to}"`,
    );
  }
  let wanted: Set<string>;
  if (source === undefined) wanted = new Set(graph.nodes);
  else {
    if (!graph.nodes.includes(source)) {
      throw new RangeError(
        `Cannot plan a recompute from source "${source}": expected one of ${
          graph.nodes.map((n) => `"${n}"`).join(", ")
        }`,
      );
    }
    wanted = new Set([source]);
    const queue = [source];
    while (queue.length > 0) {
      for (const next of graph.dependents(queue.shift()!)) {
        if (!wanted.has(next)) {
          wanted.add(next);
          queue.push(next);
        }
      }
    }
  }
  const nodes = graph.nodes.filter((node) => {
    if (!wanted.has(node)) return false;
    if (graph.dependents(node).length > 0) return true;
    const frontier = graph.frontiers?.get(node);
    return frontier === undefined || compareTime(frontier, timeRange.to) < 0;
  });
  return { nodes, timeRange, ...(source === undefined ? {} : { source }) };
}
