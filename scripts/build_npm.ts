/**
 * Build the npm package in `dist/npm/`: JavaScript and `.d.ts` files that
 * Node can load from `node_modules` (Node does not strip TypeScript types
 * there), with `package.json` taken from the repository's own.
 *
 * ```sh
 * deno task build:npm              # or: deno run -A scripts/build_npm.ts
 * npm pack --dry-run ./dist/npm    # what would be published
 * cd dist/npm && npm publish       # publish (the repository root is private)
 * ```
 *
 * Steps:
 * 1. `deno pack` transpiles the module graph of `deno.json`'s exports to JS,
 *    writes `.d.ts` files and rewrites `npm:` specifiers to bare names;
 * 2. the tarball is unpacked into `dist/npm/`; Worker entry points (loaded
 *    with `new URL("./x.ts", import.meta.url)`, which deno pack does not
 *    follow) are transpiled with `bun build --no-bundle` and their references
 *    rewritten to `.js`; other TypeScript sources outside that graph are
 *    dropped; and `package.json` becomes the
 *    repository's `name`, `version`, `exports`, `types`, `bin`, `files`,
 *    `engines` and `dependencies` (the root stays `private`);
 * 3. `cli/bin.js` (the `cairn` bin, with a `#!/usr/bin/env node` line) and
 *    `deno.json` (where `cairn --version` reads the version) are added;
 * 4. every relative import of every JS file, and every path that
 *    `package.json` names, is checked to exist, and no `npm:`/`jsr:`
 *    specifier may be left.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "dist", "npm");
const TARBALL = join(ROOT, "dist", "deno-pack.tgz");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const DENO = isDeno ? process.execPath : join(ROOT, "node_modules/.bin/deno");
const BUN = isDeno ? join(ROOT, "node_modules/.bin/bun") : process.execPath;

/** Fields of the repository's package.json that the published one carries. */
const PUBLISHED_FIELDS = [
  "name",
  "version",
  "description",
  "license",
  "type",
  "main",
  "types",
  "exports",
  "bin",
  "files",
  "engines",
  "dependencies",
] as const;

function run(cmd: string, args: string[]): void {
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit" });
  if (result.status !== 0) {
    throw new Error(
      `Cannot build the npm package: "${cmd} ${args.join(" ")}" exited with ${
        result.status ?? result.signal
      }`,
    );
  }
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}

/** Paths a package.json value names (exports conditions, bin entries, main, types). */
function namedPaths(value: unknown): string[] {
  if (typeof value === "string") return value.startsWith("./") ? [value] : [];
  if (value !== null && typeof value === "object") {
    return Object.values(value).flatMap(namedPaths);
  }
  return [];
}

const SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bnew URL\(\s*)["']([^"']+)["']/g;

/** Problems in the built package; empty when it is sound. */
function checkPackage(pkg: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const field of ["main", "types", "exports", "bin"]) {
    for (const path of namedPaths(pkg[field])) {
      if (!existsSync(join(OUT, path))) {
        problems.push(
          `package.json ${field} names "${path}", which is missing`,
        );
      }
    }
  }
  for (const file of walk(OUT)) {
    const rel = relative(OUT, file);
    if (/\.(ts|tsx|mts)$/.test(rel) && !rel.endsWith(".d.ts")) {
      problems.push(`"${rel}" is TypeScript source, which Node cannot load`);
    }
    if (!rel.endsWith(".js")) continue;
    // Only code: doc comments hold examples with ./x.ts imports.
    const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const [, spec] of code.matchAll(SPECIFIER)) {
      if (spec!.startsWith("npm:") || spec!.startsWith("jsr:")) {
        problems.push(`"${rel}" imports "${spec}", which Node cannot resolve`);
      } else if (
        spec!.startsWith(".") && !existsSync(join(dirname(file), spec!))
      ) {
        problems.push(
          `"${rel}" refers to "${spec}", which is not in the package`,
        );
      }
    }
  }
  return problems;
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
run(DENO, ["pack", "--allow-dirty", "--output", TARBALL]);
run("tar", ["xzf", TARBALL, "-C", OUT, "--strip-components=1"]);
rmSync(TARBALL);

// Worker entry points are loaded with `new URL("./x.ts", import.meta.url)`,
// which deno pack neither follows nor rewrites: transpile each one and point
// its reference at the .js file.
const WORKER_URL =
  /new URL\(\s*(["'])(\.{1,2}\/[^"']+)\.ts\1,\s*import\.meta\.url\s*\)/g;
for (const file of walk(OUT).filter((f) => f.endsWith(".js"))) {
  const code = readFileSync(file, "utf8");
  let changed = false;
  const rewritten = code.replace(WORKER_URL, (whole, quote, base) => {
    const source = join(ROOT, relative(OUT, dirname(file)), `${base}.ts`);
    if (!existsSync(source)) return whole;
    const target = join(dirname(file), `${base}.js`);
    // Bun strips the types (deno transpile is experimental and its flags change).
    run(BUN, [
      "build",
      "--no-bundle",
      "--target",
      "node",
      "--outfile",
      target,
      source,
    ]);
    // bun build --no-bundle keeps the worker's own `./x.ts` imports; point
    // them at the modules deno pack already transpiled.
    writeFileSync(
      target,
      readFileSync(target, "utf8").replace(
        /(["'])(\.{1,2}\/[^"']+)\.ts\1/g,
        (spec, q, path) =>
          existsSync(join(dirname(target), `${path}.js`))
            ? `${q}${path}.js${q}`
            : spec,
      ),
    );
    changed = true;
    return `new URL(${quote}${base}.js${quote}, import.meta.url)`;
  });
  if (changed) writeFileSync(file, rewritten);
}

// Other sources outside the exports' module graph come along as TypeScript
// assets; Node cannot load them.
for (const file of walk(OUT)) {
  if (/\.(ts|tsx|mts)$/.test(file) && !file.endsWith(".d.ts")) rmSync(file);
}

const source = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const pkg: Record<string, unknown> = {};
for (const field of PUBLISHED_FIELDS) {
  if (source[field] !== undefined) pkg[field] = source[field];
}
writeFileSync(join(OUT, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
for (const file of ["deno.json", "README.md", "LICENSE"]) {
  copyFileSync(join(ROOT, file), join(OUT, file));
}
writeFileSync(
  join(OUT, "cli", "bin.js"),
  '#!/usr/bin/env node\nimport { runCli } from "./main.js";\nawait runCli();\n',
);
chmodSync(join(OUT, "cli", "bin.js"), 0o755);

const problems = checkPackage(pkg);
if (problems.length > 0) {
  process.stderr.write(
    `Cannot build the npm package: ${problems.length} problems\n${
      problems.map((p) => `  ${p}\n`).join("")
    }`,
  );
  process.exit(1);
}
process.stdout.write(
  `Built ${relative(ROOT, OUT)}/ (${pkg.name}@${pkg.version}, ${
    walk(OUT).length
  } files); try: npm pack --dry-run ./${relative(ROOT, OUT)}\n`,
);
