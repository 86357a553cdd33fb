/**
 * Every CLI command, in the order `cairn --help` lists them. Each family adds
 * its command module here.
 *
 * @module
 */
import type { Command } from "./command.ts";
import { demoCommand } from "./demo.ts";
import { KNN_COMMANDS } from "./knn_commands.ts";
import { processorCommand } from "./processor_command.ts";
import { pipelineCommand } from "./pipeline_command.ts";
import { repairCommand } from "./repair_command.ts";
import { STORE_COMMANDS } from "./store_commands.ts";

/** All commands. */
export const COMMANDS: Command[] = [
  demoCommand,
  ...STORE_COMMANDS,
  repairCommand,
  ...KNN_COMMANDS,
  processorCommand,
  pipelineCommand,
];
