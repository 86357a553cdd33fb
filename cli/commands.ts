/**
 * Every CLI command, in the order `cairn --help` lists them. Each family adds
 * its command module here.
 *
 * @module
 */
import type { Command } from "./command.ts";
import { catCommand } from "./cat_command.ts";
import { dataflowCommand } from "./dataflow_command.ts";
import { demoCommand } from "./demo.ts";
import { exportCommand } from "./export_command.ts";
import { forgetCommand } from "./forget_command.ts";
import { gcCommand } from "./gc_command.ts";
import { KNN_COMMANDS } from "./knn_commands.ts";
import { lsCommand } from "./ls_command.ts";
import { processorCommand } from "./processor_command.ts";
import { pipelineCommand } from "./pipeline_command.ts";
import { repairCommand } from "./repair_command.ts";
import { showCommand } from "./show_command.ts";
import { unlockCommand } from "./unlock_command.ts";
import { verifyCommand } from "./verify_command.ts";

/** All commands. */
export const COMMANDS: Command[] = [
  demoCommand,
  lsCommand,
  showCommand,
  verifyCommand,
  forgetCommand,
  gcCommand,
  unlockCommand,
  catCommand,
  exportCommand,
  repairCommand,
  ...KNN_COMMANDS,
  processorCommand,
  pipelineCommand,
  dataflowCommand,
];
