/**
 * Every CLI command, in the order `cairn --help` lists them. Each family adds
 * its command module here.
 *
 * @module
 */
import type { Command } from "./command.ts";

/** All commands. */
export const COMMANDS: Command[] = [];
