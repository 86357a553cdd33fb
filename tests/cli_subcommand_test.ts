import assert from "node:assert/strict";
import { test } from "node:test";
import type { Command } from "../cli/command.ts";
import { commandHelp, parseCommandLine } from "../cli/command_line.ts";

function command(name: string, extra: Partial<Command> = {}): Command {
  return {
    name,
    summary: `Do ${name}`,
    usage: `cairn ${name}`,
    options: {},
    examples: [],
    run: () => Promise.resolve(0),
    ...extra,
  };
}

const run = command("run", {
  positionals: true,
  options: { "auto-resume": { type: "boolean", description: "Resume" } },
});
const family = command("family", { subcommands: [run, command("ls")] });

test("parseCommandLine() picks a subcommand and parses its options", () => {
  const parsed = parseCommandLine(
    ["--store", "/s", "family", "run", "a.conf", "--auto-resume"],
    [family],
  );
  assert.equal(parsed.command, "family run");
  assert.equal(parsed.resolved, run);
  assert.deepEqual(parsed.args.positionals, ["a.conf"]);
  assert.equal(parsed.args.values["auto-resume"], true);
  assert.equal(parsed.args.values.store, "/s");
});

test("parseCommandLine() leaves an unknown subcommand unresolved", () => {
  const parsed = parseCommandLine(["family", "nope"], [family]);
  assert.equal(parsed.command, "family nope");
  assert.equal(parsed.resolved, undefined);
});

test("parseCommandLine() without a subcommand word resolves the parent", () => {
  const parsed = parseCommandLine(["family", "--json"], [family]);
  assert.equal(parsed.resolved, family);
});

test("commandHelp() lists subcommands", () => {
  assert.match(
    commandHelp(family),
    /Subcommands:\n {2}run +Do run\n {2}ls +Do ls/,
  );
});
