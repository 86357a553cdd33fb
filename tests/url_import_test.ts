import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import { join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { tempDir } from "./temp.ts";
import { IS_DENO } from "./child_process.ts";

const repo = resolve(fileURLToPath(new URL("..", import.meta.url)));
const deno = join(repo, "node_modules", ".bin", "deno");

/** Serve the repository's files over HTTP on 127.0.0.1, TypeScript with its content type. */
async function serveRepo(): Promise<
  { url: string; close: () => Promise<void> }
> {
  const server = createServer(async (req, res) => {
    const path = normalize(
      join(
        repo,
        decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname),
      ),
    );
    if (!path.startsWith(repo + "/") || path.includes("node_modules")) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(path);
      res.writeHead(200, {
        "content-type": path.endsWith(".ts")
          ? "application/typescript"
          : "application/octet-stream",
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

/** Whether Deno failed because it could not download an npm package (no network, no registry). */
function registryUnreachable(stderr: string): boolean {
  return /npm|for package "/i.test(stderr) &&
    /error sending request|dns error|connection refused|timed out|failed to lookup|network|fetch/i
      .test(stderr);
}

/** Run a script in a fresh Deno: empty DENO_DIR, no deno.json or node_modules beside it. */
function runFreshDeno(
  script: string,
  dir: string,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((ok) => {
    const child = spawn(deno, ["run", "-A", "--quiet", script], {
      cwd: dir,
      env: {
        ...process.env,
        DENO_DIR: join(dir, "deno-cache"),
        NO_COLOR: "1",
      },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => ok({ code, out, err }));
  });
}

// The importer is always a fresh Deno; under Bun only the file server would
// differ, so the test runs once, under Deno.
test(
  "mod.ts imports from a URL in a fresh Deno with an empty cache and runs a job, a map and a kNN job",
  {
    skip: !IS_DENO,
  },
  async () => {
    const server = await serveRepo();
    try {
      const dir = await tempDir();
      const script = join(dir, "use.ts");
      await writeFile(
        script,
        `import {
  fingerprint,
  knnJob,
  map,
  matrixFrom,
  runJob,
} from "${server.url}/mod.ts";
import { prepareReference, searchKnn } from "${server.url}/lib/knn/mod.ts";
const store = "memory:";
const value = await runJob("url-import", { store }, (job) => job.step("a", () => 40 + 2));
const doubled = await map([1, 2, 3], (x: number) => 2 * x, { store, batchSize: 2 });
const points = matrixFrom(new Float32Array([0, 0, 1, 0, 0, 1, 5, 5, 6, 5]), 2);
const nearest = searchKnn(prepareReference(points, "euclidean"), points, { k: 1, excludeSelf: true });
const job = await knnJob(points, { k: 2, store, out: ${
          JSON.stringify(join(dir, "knn"))
        } });
console.log(JSON.stringify({
  value,
  fp: (await fingerprint({ a: 1 })).length,
  doubled,
  nearest: Array.from(nearest.index),
  files: Object.keys(job.files).sort(),
  blocks: job.computedBlocks,
}));
`,
      );
      const result = await runFreshDeno(script, dir);
      if (result.code !== 0 && registryUnreachable(result.err)) {
        assert.fail(
          `The npm registry cannot be reached: a fresh Deno importing mod.ts from a URL downloads its npm dependencies (npm:hash-wasm), so this test needs the registry (NPM_CONFIG_REGISTRY, if set, names it). Deno said: ${
            result.err.trim().split("\n")[0]
          }`,
        );
      }
      assert.equal(result.code, 0, result.err);
      assert.deepEqual(JSON.parse(result.out.trim().split("\n").at(-1)!), {
        value: 42,
        fp: 64,
        doubled: [2, 4, 6],
        nearest: [1, 0, 0, 4, 3],
        files: ["distance.npy", "index.npy"],
        blocks: 1,
      });
    } finally {
      await server.close();
    }
  },
);
