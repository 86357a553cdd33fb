/**
 * Incremental recompute: a persistent dataflow of keyed collections whose
 * operators (`map`, `filter`, `groupReduce`, `join`, `node`) recompute only
 * what changed since the last run, with early cutoff, and time-range plans.
 *
 * @example Bring a report up to date after one edit
 * ```ts
 * import assert from "node:assert/strict";
 * import { Dataflow } from "./mod.ts";
 * const df = new Dataflow("mod-orders", { store: "memory:dataflow-mod" });
 * const orders = df.input<{ customer: string; total: number }>("orders");
 * const perCustomer = df.groupReduce(
 *   "per-customer",
 *   orders,
 *   (o) => o.customer,
 *   (_customer, rows) => rows.reduce((sum, o) => sum + o.total, 0),
 * );
 * await df.run({ orders: { o1: { customer: "ann", total: 5 }, o2: { customer: "bob", total: 7 } } });
 * const result = await df.run({ orders: { upsert: { o3: { customer: "ann", total: 1 } } } });
 * assert.equal(result.nodes["per-customer"]!.calls, 1);
 * assert.equal(result.get<Map<string, number>>("per-customer").get("ann"), 6);
 * void perCustomer;
 * ```
 *
 * @module
 */
export {
  type Collection,
  Dataflow,
  type DataflowOptions,
  type DataflowResult,
  type Explanation,
  type InputOptions,
  type InputValue,
  type Node,
  type NodeStats,
  type OperatorOptions,
  type ReadOptions,
  type RunOptions,
} from "./dataflow.ts";
export type { InputDelta, InputFile, InputSource } from "./_inputs.ts";
export { consolidate, type Update } from "./consolidate.ts";
export {
  compareTime,
  type PlanGraph,
  planRecompute,
  type RecomputePlan,
  type RecomputeRequest,
  type Time,
  type TimeRange,
  timeRangeContains,
} from "./plan.ts";
