/**
 * `cairn processor status` and `cairn processor ls`: what a dataset's runs
 * report, replayed from their logs (no lock needed).
 *
 * @module
 */
import { formatDuration } from "../lib/duration.ts";
import { type Command, EXIT, intOption, UsageError } from "./command.ts";
import { formatTable, shortTime } from "./_format.ts";

// The family loads when a subcommand runs, not with the CLI.
const processorFamily = () => import("../lib/processor/mod.ts");

/**
 * `cairn processor status`.
 *
 * @example From a shell
 * ```sh
 * cairn processor status photos --json
 * ```
 */
export const processorStatusCommand: Command = {
  name: "status",
  summary: "A dataset's progress, rate, ETA, last checkpoint and recent errors",
  usage:
    "cairn processor status DATASET [--json] [--files [--offset N] [--limit N]]",
  description:
    "Prints the state of the dataset's latest run. --json prints the seed's checkpoint state field for field (checkpoint_id, dataset, processor, start_time, last_update, processed_count, last_processed_id, last_generated_id, status, error, processor_state, statistics, version). --files lists the processed item ids instead, a page at a time.",
  positionals: true,
  options: {
    files: {
      type: "boolean",
      description: "List the processed item ids (processed_files), paged",
    },
    offset: {
      type: "string",
      valueName: "N",
      description: "With --files: ids to skip (default 0)",
    },
    limit: {
      type: "string",
      valueName: "N",
      description: "With --files: ids to list at most (default 1000)",
    },
  },
  examples: [
    "cairn processor status photos",
    "cairn processor status photos --json",
    "cairn processor status photos --files --offset 1000 --limit 100",
  ],
  async run(ctx, args) {
    const [dataset, ...extra] = args.positionals;
    if (dataset === undefined) throw new UsageError("Missing DATASET");
    if (extra.length > 0) {
      throw new UsageError(`Unexpected argument "${extra[0]}"`);
    }
    const store = await ctx.store();
    if (args.values.files === true) {
      const offset = intOption(args, "offset") ?? 0;
      const limit = intOption(args, "limit", 1) ?? 1000;
      const { processedItems } = await processorFamily();
      const page = await processedItems(dataset, { store, offset, limit });
      ctx.result(
        { processed_files: page.ids, offset, total: page.total },
        () => {
          for (const id of page.ids) ctx.out(id);
        },
      );
      return EXIT.ok;
    }
    let status;
    try {
      const { processorStatus } = await processorFamily();
      status = await processorStatus(dataset, { store });
    } catch (error) {
      if (error instanceof RangeError || error instanceof TypeError) {
        throw new UsageError(error.message);
      }
      throw error;
    }
    const s = status.state;
    ctx.result(s, () => {
      const total = s.processor_state.total_items;
      const pct = total
        ? ` (${
          Math.floor((s.processor_state.current_position / total) * 100)
        }%)`
        : "";
      ctx.out(
        `dataset:     ${s.dataset} (processor ${s.processor}, run ${status.run})`,
      );
      ctx.out(`status:      ${s.status}${s.error ? `: ${s.error}` : ""}`);
      ctx.out(
        `processed:   ${s.processed_count}${
          total === null ? "" : `/${total}`
        }${pct}: ${s.statistics.success_count} ok, ${s.statistics.error_count} errors, ${s.statistics.skipped_count} skipped`,
      );
      ctx.out(
        `rate:        ${status.itemsPerSecond} items/s${
          status.etaSeconds === null || s.status === "completed"
            ? ""
            : `, ETA ${formatDuration(status.etaSeconds * 1000)}`
        }`,
      );
      ctx.out(
        `last item:   ${s.last_processed_id ?? "-"} (last id ${
          s.last_generated_id ?? "-"
        })`,
      );
      ctx.out(`checkpoint:  ${s.checkpoint_id} at ${shortTime(s.last_update)}`);
      if (status.recentErrors.length > 0) {
        ctx.out("recent errors:");
        for (const e of status.recentErrors.slice(-10)) {
          ctx.out(`  ${e.id}: ${e.error}`);
        }
      }
    });
    return EXIT.ok;
  },
};

/**
 * `cairn processor ls`.
 *
 * @example From a shell
 * ```sh
 * cairn processor ls --json
 * ```
 */
export const processorLsCommand: Command = {
  name: "ls",
  summary: "Datasets and their checkpoints",
  usage: "cairn processor ls [--json]",
  description:
    "Lists every dataset with processor runs, its status and its restore points (the newest --max-checkpoints checkpoints), newest first.",
  options: {},
  examples: ["cairn processor ls", "cairn processor ls --json"],
  async run(ctx) {
    const { listProcessorDatasets } = await processorFamily();
    const datasets = await listProcessorDatasets({ store: await ctx.store() });
    ctx.result(datasets, () => {
      if (datasets.length === 0) {
        ctx.info("No processor datasets in this store");
        return;
      }
      for (const d of datasets) {
        ctx.out(
          `${d.dataset} (${d.processor}): ${d.status}, ${d.processed_count}${
            d.total_items === null ? "" : `/${d.total_items}`
          } items, ${d.runs} runs`,
        );
        for (
          const line of formatTable(
            ["  CHECKPOINT", "STATUS", "PROCESSED", "ITEMS", "TIME"],
            d.checkpoints.map((c) => [
              `  ${c.checkpoint_id}`,
              c.status,
              String(c.processed_count),
              String(c.items),
              shortTime(c.last_update),
            ]),
          )
        ) ctx.out(line);
      }
    });
    return EXIT.ok;
  },
};
