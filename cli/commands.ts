/**
 * Every CLI command, in the order `cairn --help` lists them. Each family adds
 * its command module here.
 *
 * @module
 */
import type { Command } from "./command.ts";
import { demoCommand } from "./demo.ts";
import { KNN_COMMANDS } from "./knn_commands.ts";
import {
  catCommand,
  exportCommand,
  forgetCommand,
  gcCommand,
  lsCommand,
  showCommand,
  unlockCommand,
  verifyCommand,
} from "./store_commands.ts";

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
  ...KNN_COMMANDS,
];
