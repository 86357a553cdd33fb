import { test } from "node:test";
import assert from "node:assert/strict";
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCairn, runCairnEach } from "./cli_command.ts";
import { tempDir } from "./temp.ts";

const COMPONENTS = fileURLToPath(
  new URL("./fixtures/pipeline_components.ts", import.meta.url),
);
const EXAMPLE = fileURLToPath(
  new URL("../examples/pipeline/", import.meta.url),
);

/** A config of the fixture components: Source → Scale → Sum, noting runs in `log`. */
function configText(
  name: string,
  log: string,
  extra: { failIf?: string; factor?: number; checkpoint?: string } = {},
): string {
  const common = `log = "${log}"${
    extra.failIf === undefined ? "" : `, failIf = "${extra.failIf}"`
  }`;
  return `
pipeline {
  pipeline-name = "${name}"
  checkpoint { ${extra.checkpoint ?? "enabled = true"} }
  pipeline-components = [
    { instance-type = "${COMPONENTS}#Source", instance-name = Source, instance-config { log = "${log}", n = 4 } }
    { instance-type = "${COMPONENTS}#Scale", instance-name = Scale, instance-config { ${common}, factor = ${
    extra.factor ?? 10
  } } }
    { instance-type = "${COMPONENTS}#Sum", instance-name = Sum, instance-config { log = "${log}" } }
  ]
}
`;
}

async function lines(path: string): Promise<string[]> {
  return (await readFile(path, "utf8").catch(() => "")).split("\n").filter((
    l,
  ) => l !== "");
}

test("cairn pipeline run exits 1 on failure, resume --run continues it, ls/show/output report it", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const log = join(dir, "log.txt");
  const marker = join(dir, "break-scale");
  await writeFile(marker, "");
  const config = join(dir, "p.conf");
  await writeFile(config, configText("CLI test", log, { failIf: marker }));

  const failed = await runCairn([
    "--store",
    store,
    "--json",
    "pipeline",
    "run",
    config,
  ]);
  assert.equal(failed.code, 1, failed.stderr);
  const record = JSON.parse(failed.stdout);
  assert.equal(record.status, "failed");
  assert.equal(record.lastCheckpointedIndex, 0);
  assert.equal(record.totalComponents, 3);
  assert.equal(record.resumedFrom, undefined);

  const ls = await runCairn([
    "--store",
    store,
    "pipeline",
    "ls",
    "CLI test",
    "--json",
  ]);
  assert.equal(ls.code, 0, ls.stderr);
  const resumable = JSON.parse(ls.stdout);
  assert.equal(resumable.length, 1);
  for (
    const field of [
      "runId",
      "pipelineName",
      "startedAt",
      "completedComponents",
      "lastCheckpointedIndex",
      "totalComponents",
      "status",
      "error",
    ]
  ) assert.ok(field in resumable[0], field);
  assert.equal(resumable[0].runId, record.runId);
  assert.equal(resumable[0].failedAt.label, "component 2/3");
  const human = await runCairn([
    "--store",
    store,
    "pipeline",
    "ls",
    "CLI test",
  ]);
  assert.match(human.stdout, /Failed at: component 2\/3 "Scale"/);

  const show = await runCairn([
    "--store",
    store,
    "pipeline",
    "show",
    record.runId,
    "--json",
  ]);
  assert.equal(show.code, 0, show.stderr);
  assert.equal(JSON.parse(show.stdout).failedAt.name, "Scale");

  await rm(marker);
  const resumed = await runCairn([
    "--store",
    store,
    "pipeline",
    "resume",
    config,
    "--run",
    record.runId,
    "--json",
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const done = JSON.parse(resumed.stdout);
  assert.equal(done.status, "completed");
  assert.equal(done.resumedFrom, record.runId);
  assert.equal(done.lastCheckpointedIndex, 2);
  assert.deepEqual(await lines(log), ["Source", "Scale", "Sum"]);

  const output = await runCairn([
    "--store",
    store,
    "pipeline",
    "output",
    done.runId,
    "--format",
    "json",
  ]);
  assert.equal(output.code, 0, output.stderr);
  assert.equal(JSON.parse(output.stdout), 100);
  const shown = await runCairn([
    "--store",
    store,
    "pipeline",
    "show",
    done.runId,
  ]);
  assert.match(shown.stdout, /Status:\s+completed \(cleaned up\)/);
  assert.match(shown.stdout, /1\. Source\s+reused/);

  // The generic commands understand pipeline runs: a job run of kind "pipeline".
  const ls2 = await runCairn(["--store", store, "ls", "--json"]);
  assert.equal(ls2.code, 0, ls2.stderr);
  const kinds = JSON.stringify(JSON.parse(ls2.stdout));
  assert.match(kinds, /"kind":"pipeline"/);
  const verify = await runCairn(["--store", store, "verify", "--read-data"]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

test("cairn pipeline run --auto-resume, --no-checkpoint and --allow-config-change", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const log = join(dir, "log.txt");
  const marker = join(dir, "break-scale");
  const config = join(dir, "p.conf");
  await writeFile(marker, "");
  await writeFile(config, configText("Flags test", log, { failIf: marker }));
  const run = (...args: string[]) =>
    runCairn(["--store", store, "--json", "pipeline", ...args]);
  const first = await run("run", config, "--no-checkpoint");
  assert.equal(first.code, 1, first.stderr);
  assert.equal(JSON.parse(first.stdout).checkpoint, false);
  const second = await run("run", config);
  assert.equal(second.code, 1);
  const failedId = JSON.parse(second.stdout).runId;

  // A changed factor: refused (exit 2) naming the change, then allowed.
  await writeFile(
    config,
    configText("Flags test", log, { failIf: marker, factor: 20 }),
  );
  await rm(marker);
  const refused = await run("run", config, "--auto-resume");
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr,
    /pipeline-components\.1\.instance-config\.factor: 10 -> 20.*--allow-config-change/,
  );
  await writeFile(log, "");
  const allowed = await run(
    "run",
    config,
    "--auto-resume",
    "--allow-config-change",
  );
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(JSON.parse(allowed.stdout).resumedFrom, failedId);
  assert.deepEqual(await lines(log), ["Scale", "Sum"], "Source was reused");
  const out = await runCairn([
    "--store",
    store,
    "pipeline",
    "output",
    JSON.parse(allowed.stdout).runId,
  ]);
  assert.equal(JSON.parse(out.stdout), 200);
});

test("cairn pipeline run exits 2 naming the file and key of a config it cannot load", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const ok = `{ instance-type = "${COMPONENTS}#Source", instance-name = A }`;
  const cases: [string, string, RegExp][] = [
    [
      "syntax",
      `pipeline { pipeline-name = P\n  pipeline-components = [ ${ok}\n`,
      /line 3, column 1: expected "\]" to close an array/,
    ],
    [
      "no-name",
      `pipeline { pipeline-components = [ ${ok} ] }`,
      /key "pipeline\.pipeline-name" is missing/,
    ],
    [
      "unknown-type",
      `pipeline { pipeline-name = P, pipeline-components = [ { instance-type = com.example.Extract } ] }`,
      /key "pipeline\.pipeline-components\[0\]\.instance-type" names "com\.example\.Extract", which is not a registered component type/,
    ],
    [
      "no-export",
      `pipeline { pipeline-name = P, pipeline-components = [ { instance-type = "${COMPONENTS}#Nope" } ] }`,
      /instance-type" names export "Nope", which module .* does not have/,
    ],
    [
      "not-component",
      `pipeline { pipeline-name = P, pipeline-components = [ { instance-type = "${COMPONENTS}#NotAComponent" } ] }`,
      /neither a class nor a factory/,
    ],
    [
      "duplicate",
      `pipeline { pipeline-name = P, pipeline-components = [ ${ok}, ${ok} ] }`,
      /key "pipeline\.pipeline-components\[1\]\.instance-name" repeats "A"/,
    ],
  ];
  const files = cases.map(([name]) => join(dir, `${name}.conf`));
  for (const [i, [, text]] of cases.entries()) await writeFile(files[i]!, text);
  const results = await runCairnEach(
    files.map((file) => ["--store", store, "pipeline", "run", file]),
  );
  for (const [i, [name, , pattern]] of cases.entries()) {
    const file = files[i]!;
    const result = results[i]!;
    assert.equal(result.code, 2, `${name}: ${result.stderr}`);
    assert.ok(
      result.stderr.includes(file),
      `${name} names the file: ${result.stderr}`,
    );
    assert.match(result.stderr, pattern, name);
  }
  const s3 = join(dir, "s3.conf");
  await writeFile(
    s3,
    `pipeline { pipeline-name = P, checkpoint { enabled = true, location = "s3a://bucket/cp" }, pipeline-components = [ ${ok} ] }`,
  );
  // Without credentials an s3a:// location is a usage error naming them.
  const refused = await runCairn(["pipeline", "run", s3], {
    env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" },
  });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /set AWS_ACCESS_KEY_ID/);
});

test("examples/pipeline: the README's failure and resume, through the CLI", async () => {
  const dir = join(await tempDir(), "pipeline");
  await cp(EXAMPLE, dir, {
    recursive: true,
    filter: (src) => !/\/(\.cairn|out)(\/|$)|fx-rates\.csv$/.test(src),
  });
  const config = join(dir, "etl.conf");
  const failed = await runCairn(["pipeline", "run", config]);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /component 3\/4 "Aggregate\(daily, EUR\)" failed: Error: Cannot read exchange rates/,
  );
  const ls = await runCairn(["pipeline", "ls", config, "--json"]);
  const [run] = JSON.parse(ls.stdout);
  assert.equal(run.failedAt.label, "component 3/4");
  await cp(
    join(dir, "data/fx-rates.sample.csv"),
    join(dir, "data/fx-rates.csv"),
  );
  const resumed = await runCairn([
    "pipeline",
    "resume",
    config,
    "--run",
    run.runId,
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.doesNotMatch(resumed.stderr, /"Extract\(orders\)" started/);
  assert.match(
    resumed.stderr,
    /component 1\/4 "Extract\(orders\)" reused its stored output/,
  );
  assert.match(
    resumed.stderr,
    /component 3\/4 "Aggregate\(daily, EUR\)" finished/,
  );
  assert.equal(
    await readFile(join(dir, "out/daily-report.csv"), "utf8"),
    "day,orders,total,currency\n2026-11-23,3,243.36,EUR\n2026-11-24,2,311.59,EUR\n",
  );
});
