import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseHocon } from "../lib/pipeline/_hocon.ts";
import {
  loadPipelineConfig,
  PipelineConfigError,
  registerComponent,
  resolveComponents,
} from "../lib/pipeline/mod.ts";
import { tempDir } from "./temp.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

const SEED = `
# The seed's sample, with a substitution and an include
include "shared.conf"
spark {
  app-name = "Daily ETL"
  config { "spark.sql.shuffle.partitions" = "200" }
}
pipeline {
  pipeline-name = "Daily ETL Pipeline"
  fail-fast = true
  checkpoint { enabled = true, location = \${root}"/checkpoints", auto-resume = true, cleanup-on-success = true }
  pipeline-components = [
    {
      instance-type = "./c.ts#Extract"
      instance-name = "Extract(orders)"   // a comment
      instance-config { path = \${root}/orders.csv, limit = \${limits.rows}, tag = "a#b" }
    },
    { instance-type = "./c.ts#Load", instance-name = "Load(warehouse)" }
  ]
}
`;

test("parseHocon() reads the seed's config with includes, substitutions and comments", async () => {
  const dir = await tempDir();
  await writeFile(
    join(dir, "shared.conf"),
    "root = /data\nlimits.rows = 100\n",
  );
  const file = join(dir, "etl.conf");
  // deno-lint-ignore no-explicit-any
  const value = parseHocon(SEED, { file }) as Record<string, any>;
  assert.equal(value.spark.config["spark.sql.shuffle.partitions"], "200");
  const p = value.pipeline;
  assert.equal(p["pipeline-name"], "Daily ETL Pipeline");
  assert.deepEqual(p.checkpoint, {
    enabled: true,
    location: "/data/checkpoints",
    "auto-resume": true,
    "cleanup-on-success": true,
  });
  assert.deepEqual(p["pipeline-components"][0]["instance-config"], {
    path: "/data/orders.csv",
    limit: 100,
    tag: "a#b",
  });
  assert.equal(p["pipeline-components"][1]["instance-name"], "Load(warehouse)");
});

test("parseHocon() merges objects, concatenates values and reads the environment", () => {
  const value = parseHocon(
    'a { x = 1 }\na { y = 2 }\nb = ${a} { z = 3 }\nc = hello big world\nd = ${?CAIRN_TEST_UNSET_VAR}\ne = ${CAIRN_TEST_VAR}\nf = """raw "quoted" text"""\ng = [1, 2\n 3]',
    { env: { CAIRN_TEST_VAR: "from env" } },
  );
  assert.deepEqual(value, {
    a: { x: 1, y: 2 },
    b: { x: 1, y: 2, z: 3 },
    c: "hello big world",
    e: "from env",
    f: 'raw "quoted" text',
    g: [1, 2, 3],
  });
});

test("parseHocon() names file, line and column of bad syntax", () => {
  const cases: [string, RegExp][] = [
    ["a = { b = 1", /line 1, column 12: expected "\}" to close an object/],
    ['a = "open', /line 1, column 5: unterminated string/],
    ["a = [1, 2", /expected ",", a line break or "\]"/],
    ["a = ${nowhere}", /substitution \$\{nowhere\} is not set/],
    ["x {\n  y = 1 }\n}", /line 3, column 1/],
    ["a += [1]", /"\+=" is not supported/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => parseHocon(text, { file: "/etc/etl.conf", env: {} }),
      (error: unknown) =>
        error instanceof SyntaxError &&
        error.message.startsWith('Cannot parse "/etc/etl.conf": ') &&
        pattern.test(error.message),
      text,
    );
  }
});

async function writeConfig(
  dir: string,
  name: string,
  text: string,
): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

test("loadPipelineConfig() reads .conf, .json and .yaml with the same keys and the seed's defaults", async () => {
  const dir = await tempDir();
  const conf = await writeConfig(
    dir,
    "p.conf",
    'pipeline { pipeline-name = "P", pipeline-components = [{ instance-type = "t", instance-name = "A", instance-config { k = 1 } }] }',
  );
  const json = await writeConfig(
    dir,
    "p.json",
    JSON.stringify({
      pipeline: {
        "pipeline-name": "P",
        "pipeline-components": [{
          "instance-type": "t",
          "instance-name": "A",
          "instance-config": { k: 1 },
        }],
      },
    }),
  );
  const yaml = await writeConfig(
    dir,
    "p.yaml",
    "pipeline:\n  pipeline-name: P\n  pipeline-components:\n    - instance-type: t\n      instance-name: A\n      instance-config: { k: 1 }\n",
  );
  const configs = await Promise.all([conf, json, yaml].map(loadPipelineConfig));
  for (const config of configs) {
    assert.equal(config.pipelineName, "P");
    assert.equal(config.failFast, true);
    assert.deepEqual(config.checkpoint, {
      enabled: false,
      autoResume: false,
      cleanupOnSuccess: true,
    });
    assert.deepEqual(config.components, [{
      instanceType: "t",
      instanceName: "A",
      instanceConfig: { k: 1 },
    }]);
  }
});

test("loadPipelineConfig() resolves location paths and file:// URLs, keeps s3a:// URLs, and refuses other schemes naming them", async () => {
  const dir = await tempDir();
  const body = (location: string) =>
    `pipeline { pipeline-name = P, checkpoint { location = "${location}" }, pipeline-components = [{ instance-type = t }] }`;
  const relative = await loadPipelineConfig(
    await writeConfig(dir, "a.conf", body("store")),
  );
  assert.equal(relative.checkpoint.location, join(dir, "store"));
  const url = await loadPipelineConfig(
    await writeConfig(dir, "b.conf", body("file:///var/cairn")),
  );
  assert.equal(url.checkpoint.location, "/var/cairn");
  const s3 = await loadPipelineConfig(
    await writeConfig(dir, "c.conf", body("s3a://bucket/checkpoints")),
  );
  assert.equal(s3.checkpoint.location, "s3a://bucket/checkpoints");
  await assert.rejects(
    loadPipelineConfig(
      await writeConfig(dir, "d.conf", body("gs://bucket/checkpoints")),
    ),
    (error: unknown) =>
      error instanceof PipelineConfigError &&
      error.key === "pipeline.checkpoint.location" &&
      /"gs"/.test(error.message) &&
      error.message.includes(join(dir, "d.conf")),
  );
});

test("loadPipelineConfig() names the file and key of a missing name, a duplicate instance-name and a wrong type", async () => {
  const dir = await tempDir();
  const cases: [string, string, RegExp][] = [
    [
      "pipeline { pipeline-components = [{ instance-type = t }] }",
      "pipeline.pipeline-name",
      /is missing/,
    ],
    [
      "pipeline { pipeline-name = P, pipeline-components = [{ instance-type = t, instance-name = A }, { instance-type = u, instance-name = A }] }",
      "pipeline.pipeline-components[1].instance-name",
      /repeats "A" \(also component 1\)/,
    ],
    [
      "pipeline { pipeline-name = P, fail-fast = maybe, pipeline-components = [{ instance-type = t }] }",
      "pipeline.fail-fast",
      /must be true or false/,
    ],
    [
      "pipeline { pipeline-name = P, checkpoint { auto_resume = true }, pipeline-components = [{ instance-type = t }] }",
      "pipeline.checkpoint.auto_resume",
      /is not a checkpoint setting/,
    ],
    [
      "pipeline { pipeline-name = P, pipeline-components = [] }",
      "pipeline.pipeline-components",
      /non-empty array/,
    ],
  ];
  for (const [i, [text, key, pattern]] of cases.entries()) {
    const file = await writeConfig(dir, `bad-${i}.conf`, text);
    await assert.rejects(
      loadPipelineConfig(file),
      (error: unknown) =>
        error instanceof PipelineConfigError && error.key === key &&
        error.file === file && pattern.test(error.message) &&
        error.message.includes(`"${file}"`),
      text,
    );
  }
});

test("resolveComponents() makes classes and factories, and names unknown types, missing exports and non-components", async () => {
  const dir = await tempDir();
  await mkdir(join(dir, "sub"));
  const module = join(FIXTURES, "pipeline_components.ts");
  registerComponent(
    "config-test-double",
    () => ({ run: (x: number) => x * 2 }),
  );
  const made = await resolveComponents([
    {
      instanceType: `${module}#Source`,
      instanceName: "S",
      instanceConfig: { n: 3 },
    },
    { instanceType: `${module}#Scale`, instanceName: "F", instanceConfig: {} },
    {
      instanceType: "config-test-double",
      instanceName: "D",
      instanceConfig: {},
    },
  ], { baseDir: dir });
  assert.deepEqual(await made[0]!.component.run(undefined, {} as never), [
    1,
    2,
    3,
  ]);
  assert.deepEqual(await made[1]!.component.run([1], {} as never), [2]);
  assert.equal(await made[2]!.component.run(4, {} as never), 8);
  await writeFile(
    join(dir, "comp.js"),
    "export const Up = () => ({ run: (s) => s.toUpperCase() });\n",
  );
  const [up] = await resolveComponents([
    { instanceType: "../comp.js#Up", instanceName: "U", instanceConfig: {} },
  ], { baseDir: join(dir, "sub") });
  assert.equal(await up!.component.run("abc", {} as never), "ABC");
  const cases: [string, RegExp][] = [
    ["com.example.Extract", /not a registered component type/],
    [`${module}#Missing`, /does not have \(it exports: .*Source/],
    [`${module}#NotAComponent`, /neither a class nor a factory function/],
    [`${module}#BadFactory`, /neither a class nor a factory of components/],
    ["./nowhere.ts#X", /cannot be loaded/],
    [
      "node:path#Nope",
      /module "node:path" does not have \(it exports: .*basename/,
    ],
    [
      "../comp.js#Nope",
      /module "..\/comp.js" does not have \(it exports: Up\)/,
    ],
  ];
  for (const [type, pattern] of cases) {
    await assert.rejects(
      resolveComponents([{
        instanceType: type,
        instanceName: "X",
        instanceConfig: {},
      }], {
        baseDir: join(dir, "sub"),
        file: "/etc/p.conf",
      }),
      (error: unknown) =>
        error instanceof PipelineConfigError &&
        error.key === "pipeline.pipeline-components[0].instance-type" &&
        pattern.test(error.message),
      type,
    );
  }
});
