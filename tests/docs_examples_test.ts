/**
 * The documentation cannot rot:
 * - every fenced ```ts block in README.md and docs/*.md runs (under the
 *   runtime running the tests) and exits 0; a block right after a
 *   `<!-- not-run -->` line is an illustrative fragment and is skipped;
 * - under Deno the blocks are also type-checked;
 * - docs/cli.md is exactly what scripts/gen_cli_docs.ts renders from the
 *   CLI's help text;
 * - every relative Markdown link points at a file that exists.
 *
 * Blocks import `@cairn/cairn` (and `@cairn/cairn/map`, `/knn`, `/store`,
 * `/cli`) exactly as written: the import map in deno.json (`imports`) and
 * tsconfig.json (`paths`) resolves them to this checkout under Deno and Bun.
 * The block files are written inside the checkout (in a git-ignored
 * `.docs-test/` folder) so that Bun finds tsconfig.json.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CLI_DOCS_PATH, renderCliDocs } from "../scripts/gen_cli_docs.ts";
import { IS_DENO } from "./child_process.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const NOT_RUN = "<!-- not-run -->";

const DOCS = [
  "README.md",
  ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort()
    .map((f) => `docs/${f}`),
];

interface Block {
  file: string;
  line: number;
  code: string;
}

/** The ```ts blocks of a Markdown file, without those marked not-run. */
function tsBlocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*(\S*)/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent, fence, lang] = open;
    let end = i + 1;
    while (
      end < lines.length && !lines[end]!.startsWith(`${indent}${fence}`)
    ) end++;
    let prev = i - 1;
    while (prev >= 0 && lines[prev]!.trim() === "") prev--;
    const skipped = prev >= 0 && lines[prev]!.trim() === NOT_RUN;
    if (/^(ts|typescript)$/.test(lang!) && !skipped) {
      blocks.push({
        file,
        line: i + 1,
        code: lines.slice(i + 1, end).map((l) => l.slice(indent!.length))
          .join("\n"),
      });
    }
    i = end;
  }
  return blocks;
}

/** Imports a user cannot write from a checkout: the bare "cairn" and relative paths to mod.ts. */
const UNRUNNABLE_IMPORT =
  /from\s+(["'])(?:cairn(?:\/[^"']*)?|(?:\.\.?\/)+mod\.ts)\1/;

function run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number | null; out: string }> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", fail);
    child.on("close", (code) => ok({ code, out }));
  });
}

const blocks = DOCS.flatMap(tsBlocks);

test("the docs have runnable ts blocks in the README and every family page", () => {
  for (const file of ["README.md", "docs/concepts.md", "docs/jobs.md"]) {
    assert.ok(
      blocks.some((b) => b.file === file),
      `${file} has a ts block that runs`,
    );
  }
  for (const family of ["map", "knn"]) {
    const file = `docs/${family}.md`;
    if (existsSync(join(ROOT, file))) {
      assert.ok(blocks.some((b) => b.file === file), `${file} has one`);
    }
  }
});

test("docs ts blocks import @cairn/cairn, as a user writes it", () => {
  for (const block of blocks) {
    assert.doesNotMatch(
      block.code,
      UNRUNNABLE_IMPORT,
      `${block.file}:${block.line}: import from "@cairn/cairn" (or "@cairn/cairn/map", …)`,
    );
  }
});

let blockDir: string | undefined;
after(async () => {
  if (blockDir !== undefined) {
    await rm(blockDir, { recursive: true, force: true });
  }
});

let written: Promise<{ dir: string; paths: string[] }> | undefined;

/** Write every block to its own file in one temp dir (once per test file). */
function writeBlocks(): Promise<{ dir: string; paths: string[] }> {
  written ??= (async () => {
    await mkdir(join(ROOT, ".docs-test"), { recursive: true });
    const dir = await mkdtemp(join(ROOT, ".docs-test", "run-"));
    blockDir = dir;
    const paths: string[] = [];
    for (const [i, block] of blocks.entries()) {
      const name = `${block.file.replace(/[/.]/g, "_")}_${block.line}_${i}.ts`;
      const path = join(dir, name);
      await writeFile(path, block.code + "\n");
      paths.push(path);
    }
    return { dir, paths };
  })();
  return written;
}

for (const [i, block] of blocks.entries()) {
  test(`${block.file}:${block.line} ts block runs`, async () => {
    const { dir, paths } = await writeBlocks();
    const args = IS_DENO
      ? ["run", "-A", "--quiet", "--config", join(ROOT, "deno.json"), paths[i]!]
      : ["run", paths[i]!];
    const result = await run(process.execPath, args, dir);
    assert.equal(
      result.code,
      0,
      `${block.file}:${block.line} failed:\n${result.out}\n--- block ---\n${block.code}`,
    );
  });
}

if (IS_DENO) {
  test("every ts block in the docs type-checks", async () => {
    const { dir, paths } = await writeBlocks();
    if (paths.length === 0) return;
    const result = await run(
      process.execPath,
      ["check", "--quiet", "--config", join(ROOT, "deno.json"), ...paths],
      dir,
    );
    const names = blocks.map((b, i) => `${paths[i]} = ${b.file}:${b.line}`);
    assert.equal(
      result.code,
      0,
      `${result.out}\nblock files:\n${names.join("\n")}`,
    );
  });
}

test("docs/cli.md is what scripts/gen_cli_docs.ts renders from the CLI help", () => {
  assert.equal(
    readFileSync(CLI_DOCS_PATH, "utf8"),
    renderCliDocs(),
    'docs/cli.md is stale: run "deno task docs:cli"',
  );
});

test("relative links in the docs point at files that exist", () => {
  const broken: string[] = [];
  for (const file of DOCS) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!) || target!.startsWith("#")) continue;
      const path = target!.split("#")[0]!;
      if (!existsSync(join(ROOT, dirname(file), path))) {
        broken.push(`${file}: ${target}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test("every test that docs/reliability.md names exists in the file it links", () => {
  const text = readFileSync(join(ROOT, "docs", "reliability.md"), "utf8");
  const rows = [
    ...text.matchAll(/^\| \[(tests\/[\w.]+)\]\([^)]*\)\s*\| "([^"]+)"/gm),
  ];
  assert.ok(rows.length >= 20, `found ${rows.length} cited tests`);
  const missing = rows.filter(([, file, name]) =>
    !readFileSync(join(ROOT, file!), "utf8").includes(name!)
  ).map(([, file, name]) => `${file}: "${name}"`);
  assert.deepEqual(missing, []);
});
