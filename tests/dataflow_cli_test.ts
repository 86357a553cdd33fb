import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";

const MAIN = new URL("../cli/main.ts", import.meta.url);
const MODULE =
  new URL("./fixtures/dataflow_module.ts", import.meta.url).pathname;

function sales(amounts: number[]): string {
  return amounts.map((amount, i) =>
    JSON.stringify({
      id: `s${i}`,
      shop: `shop${i % 3}`,
      day: 1 + (i % 2),
      amount,
    })
  ).join("\n");
}

test("cairn dataflow run, plan and explain a module's dataflow", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const file = join(dir, "sales.jsonl");
  const env = { DATAFLOW_SALES: file, NO_COLOR: "1" };
  const cairn = (...args: string[]) =>
    runScript(MAIN, ["--store", store, ...args], env);

  await writeFile(file, sales([5, 1, 2, 8, 3, 4]));
  let out = await cairn("dataflow", "run", MODULE);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^NODE +STATUS +CALLS +ADDED +CHANGED +REMOVED$/m);
  assert.match(out.stdout, /^per-shop +ran +3 +3 +0 +0$/m);

  await writeFile(file, sales([5, 1, 2, 8, 30, 4]));
  out = await cairn("--json", "dataflow", "run", MODULE);
  assert.equal(out.code, 0, out.stderr);
  const result = JSON.parse(out.stdout);
  assert.equal(result.time, 2);
  assert.deepEqual(result.nodes["per-shop"], {
    status: "ran",
    calls: 1,
    added: 0,
    changed: 1,
    removed: 0,
  });

  out = await cairn("dataflow", "explain", MODULE, "per-shop");
  assert.equal(out.code, 0, out.stderr);
  assert.match(
    out.stdout,
    /"per-shop" ran because its inputs changed: "sales" \(1 keys: "s4"\)/,
  );

  out = await cairn(
    "--json",
    "dataflow",
    "plan",
    MODULE,
    "--source",
    "sales",
    "--from",
    "1",
    "--to",
    "2",
  );
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(
    JSON.parse(out.stdout).nodes,
    ["sales", "per-shop"],
    "best covers day 2",
  );

  out = await cairn("ls");
  assert.match(out.stdout, /shops/);

  out = await cairn("dataflow", "explain", MODULE, "nope");
  assert.equal(out.code, 2);
  assert.match(out.stderr, /Cannot explain "nope"/);
  out = await cairn("dataflow", "run", join(dir, "missing.ts"));
  assert.equal(out.code, 2);
  assert.match(out.stderr, /Cannot load dataflow module/);
});
