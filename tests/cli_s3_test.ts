import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { runCairn } from "./cli_command.ts";
import { freshS3Url, rawClient, s3 } from "./s3_env.ts";
import { tempDir } from "./temp.ts";

const skip = s3.skip;

async function cairn(store: string, args: string[], code: number) {
  const result = await runCairn(["--store", store, ...args], {
    env: { NO_COLOR: "", CAIRN_DEBUG: "", ...s3.env },
  });
  assert.equal(
    result.code,
    code,
    `cairn ${
      args.join(" ")
    } exited with ${result.code}, expected ${code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

test(
  "cairn demo, ls, show, verify, export, forget and gc work with --store s3://",
  { skip },
  async () => {
    const store = await freshS3Url("cli");
    const quick = [
      "demo",
      "--rows",
      "2000",
      "--steps",
      "4",
      "--delay",
      "0",
      "--quiet",
    ];
    await cairn(store, quick, 0);
    await cairn(store, [...quick, "--new-run"], 0);
    const listed = (await cairn(store, ["ls", "demo"], 0)).stdout;
    assert.equal(listed.match(/completed/g)?.length, 2, listed);
    assert.match((await cairn(store, ["show", "demo"], 0)).stdout, /completed/);
    await cairn(store, ["verify", "--read-data"], 0);
    const out = join(await tempDir(), "demo.jsonl");
    await cairn(
      store,
      ["export", "demo", "--format", "jsonl", "--out", out],
      0,
    );
    assert.ok((await readFile(out, "utf8")).split("\n").length > 2);
    // An unreferenced chunk older than the cutoff goes; the runs' chunks stay.
    const client = rawClient(store);
    const stray = `${client.location.prefix}chunks/00/${"0".repeat(64)}`;
    await client.put(stray, new Uint8Array([1]), {
      metadata: { "cairn-touched": String(Date.now() - 7_200_000) },
    });
    await cairn(store, ["forget", "demo", "--keep-last", "1"], 0);
    assert.equal(
      (await cairn(store, ["ls", "demo"], 0)).stdout.match(/completed/g)
        ?.length,
      1,
    );
    const gc = JSON.parse((await cairn(store, ["--json", "gc"], 0)).stdout);
    assert.ok(gc.swept >= 1, JSON.stringify(gc));
    assert.equal(await client.head(stray), undefined);
    await cairn(store, ["verify", "--read-data"], 0);
    // Damage one chunk: verify finds it (exit 4).
    let victim = "";
    for await (
      const o of client.list(`${client.location.prefix}chunks/`)
    ) victim = o.key;
    const bytes = (await client.get(victim))!.body;
    bytes[0]! ^= 0xff;
    await client.put(victim, bytes);
    await cairn(store, ["verify", "--read-data"], 4);
  },
);

test(
  "cairn ls on an s3:// prefix that holds no store fails and creates nothing",
  { skip },
  async () => {
    const store = await freshS3Url("empty");
    const result = await cairn(store, ["ls"], 2);
    assert.match(result.stderr, /not a cairn store/);
    const client = rawClient(store);
    assert.equal(
      await client.head(`${client.location.prefix}config`),
      undefined,
    );
  },
);

test(
  "cairn pipeline run with checkpoint location s3a:// keeps its checkpoints in S3",
  { skip },
  async () => {
    const store = (await freshS3Url("pipeline")).replace(/^s3:/, "s3a:");
    const dir = await tempDir();
    const components = fileURLToPath(
      new URL("./fixtures/pipeline_components.ts", import.meta.url),
    );
    const log = join(dir, "log.txt");
    const config = join(dir, "p.conf");
    await writeFile(
      config,
      `pipeline {
  pipeline-name = "S3 pipeline"
  checkpoint { enabled = true, location = "${store}" }
  pipeline-components = [
    { instance-type = "${components}#Source", instance-name = Source, instance-config { log = "${log}", n = 4 } }
    { instance-type = "${components}#Sum", instance-name = Sum, instance-config { log = "${log}" } }
  ]
}
`,
    );
    const run = await runCairn(["--json", "pipeline", "run", config], {
      env: { NO_COLOR: "", ...s3.env },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).status, "completed");
    const listed = await cairn(
      store.replace(/^s3a:/, "s3:"),
      ["--json", "ls"],
      0,
    );
    const runs = JSON.parse(listed.stdout) as { job: string; status: string }[];
    assert.deepEqual(
      runs.map((r) => [r.job.replace(/-[0-9a-f]+$/, ""), r.status]),
      [["pipeline-s3-pipeline", "completed"]],
    );
    await cairn(store, ["verify", "--read-data"], 0);
  },
);
