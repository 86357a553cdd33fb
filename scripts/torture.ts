/**
 * cairn's fault campaign: SIGKILLs, power cuts, torn and flipped bytes,
 * races, killed maintenance, a full disk and a read-only store, bad input and
 * hostile paths, over real CLI and library jobs of every family. Seeded and
 * repeatable: the seed is printed, and `--seed N` replays it.
 *
 *     deno task torture [--seed N] [--kills N] [--long] [--only KIND,...] [--write-docs]
 *
 * `--write-docs` replaces the table in docs/reliability.md with this run's
 * (the table is never edited by hand). Exits 1 when any expectation failed,
 * listing each with what replays it.
 *
 * @module
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnSync } from "node:child_process";
import { seededRandom } from "../lib/random.ts";
import { runJob } from "../lib/job.ts";
import { map } from "../lib/map/mod.ts";
import { knnJob } from "../lib/knn/mod.ts";
import {
  loadPipelineConfig,
  loadPipelineRun,
  pipelineJobName,
  pipelineOutput,
  runPipeline,
} from "../lib/pipeline/mod.ts";
import { jsonlNormalize, runProcessor } from "../lib/processor/mod.ts";
import { Dataflow } from "../lib/dataflow/mod.ts";
import { phaseInput } from "../tests/fixtures/dataflow_kill_child.ts";
import { verifyStore } from "../lib/verify.ts";
import { openStore } from "../lib/open_store.ts";
import {
  families,
  KNOWN_FINDINGS,
  npyBytes,
  repoPath,
  s3Target,
  Tally,
} from "./_torture_core.ts";
import {
  type Ctx,
  kills,
  maintenanceKills,
  paths,
  races,
  references,
  resources,
  tearsAndFlips,
} from "./_torture_faults.ts";
import { badInput, fuzzDecoders } from "./_torture_input.ts";
import { countSyncs, type PowerCutJob, powerCutTrial } from "./power_cut.ts";

/** The campaign's parts, in the order they run. */
export const KINDS = [
  "kills",
  "power",
  "flips",
  "races",
  "maintenance",
  "resources",
  "input",
  "paths",
] as const;

/** Options for {@linkcode runCampaign}. */
export interface CampaignOptions {
  /** The seed every random choice comes from. Default: random (printed). */
  seed?: number;
  /** SIGKILLs of jobs over the campaign. Default: 100. */
  kills?: number;
  /** Ten times the faults of every other kind. Default: false. */
  long?: boolean;
  /** Only these parts. Default: all of {@linkcode KINDS}. */
  only?: readonly string[];
  /** Only families whose name starts with one of these. Default: all. */
  families?: readonly string[];
  /** Prints progress. Default: nothing. */
  log?: (line: string) => void;
}

/** What a campaign did. */
export interface CampaignResult {
  seed: number;
  tally: Tally;
  /** The command line that replays it. */
  command: string;
}

/**
 * Run the campaign.
 *
 * @param options Seed, sizes and parts.
 * @returns The tally of faults, outcomes and findings.
 */
export async function runCampaign(
  options: CampaignOptions = {},
): Promise<CampaignResult> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const killCount = options.kills ?? 100;
  const scale = options.long ? 10 : 1;
  const only = new Set(options.only ?? KINDS);
  const log = options.log ?? (() => {});
  const tally = new Tally();
  const work = await mkdtemp(join(tmpdir(), "cairn-torture-"));
  let n = 0;
  const ctx: Ctx = {
    tally,
    random: seededRandom(seed),
    reference: new Map(),
    async dir(label) {
      const dir = join(work, `${n++}-${label.replace(/[^a-z0-9]+/gi, "-")}`);
      await mkdir(dir, { recursive: true });
      return dir;
    },
  };
  const picked = (name: string) =>
    options.families === undefined ||
    options.families.some((p) => name.startsWith(p));
  const fams = families().filter((f) => picked(f.name));
  const s3 = s3Target();
  if (
    s3.skip !== undefined && only.has("kills") &&
    picked("plain (cairn demo on S3)")
  ) tally.skipped.push(s3.skip);
  const command = `deno task torture --seed ${seed} --kills ${killCount}${
    options.long ? " --long" : ""
  }${options.only ? ` --only ${[...only].join(",")}` : ""}${
    options.families ? ` --families "${options.families.join(",")}"` : ""
  }`;
  try {
    if (only.has("kills") || only.has("flips")) {
      log("reference runs");
      await references(ctx, fams);
    }
    if (only.has("kills")) {
      const per = Math.max(1, Math.round(killCount / fams.length));
      for (const fam of fams) {
        log(`kills: ${fam.name} (${per})`);
        await kills(ctx, fam, per);
      }
    }
    if (only.has("power")) {
      log("power cuts");
      await powerCuts(ctx, 8 * scale, options.families);
    }
    if (only.has("flips")) {
      // Tears and flips damage files: a family on S3 gets kills only.
      for (const fam of fams.filter((f) => f.store === undefined)) {
        log(`tears and flips: ${fam.name}`);
        await tearsAndFlips(ctx, fam, 6 * scale);
      }
    }
    if (only.has("races")) {
      log("races");
      await races(ctx, scale);
    }
    if (only.has("maintenance")) {
      log("maintenance kills");
      await maintenanceKills(ctx, 6 * scale);
    }
    if (only.has("resources")) {
      log("resource faults");
      await resources(ctx);
    }
    if (only.has("input")) {
      log("bad input");
      await badInput(ctx);
      fuzzDecoders(ctx, 500 * scale);
    }
    if (only.has("paths")) {
      log("paths");
      await paths(ctx);
    }
  } finally {
    await rm(work, { recursive: true, force: true }).catch(() => {});
  }
  return { seed, tally, command };
}

/** Power cuts through the fs sync hook, in process, at random syncs. */
async function powerCuts(
  ctx: Ctx,
  perFamily: number,
  only: readonly string[] | undefined,
): Promise<void> {
  const kind = "power cut (unsynced writes dropped)";
  const inputs = await ctx.dir("power-inputs");
  const ref = join(inputs, "ref.npy");
  await writeFile(ref, npyBytes(60, 4));
  const { conf, rows, schema } = await powerInputs(inputs);
  const done =
    (report: (key: string, cached: boolean) => void) =>
    (e: { type: string; key?: string; cached?: boolean }) => {
      if (e.type === "step-done") report(e.key!, e.cached!);
    };
  const jobs: [
    string,
    PowerCutJob,
    (((dir: string) => Promise<Uint8Array>) | undefined)?,
    ((dir: string) => Promise<void>)?,
  ][] = [
    [
      "plain (runJob)",
      async (dir, report) =>
        new TextEncoder().encode(JSON.stringify(
          await runJob("p", {
            store: join(dir, "store"),
            onEvent: done(report),
          }, async (job) => {
            const out = [];
            for (let i = 0; i < 8; i++) {
              out.push(
                await job.step(`s${i}`, () => ({ i, v: "x".repeat(i * 9) })),
              );
            }
            return out;
          }),
        )),
    ],
    ["map", async (dir, report) =>
      new TextEncoder().encode(JSON.stringify(
        await map(
          Array.from({ length: 60 }, (_, i) => i),
          (x: number) => x * x,
          {
            store: join(dir, "store"),
            batchSize: 10,
            name: "m",
            onEvent: done(report),
          },
        ),
      ))],
    [
      "kNN",
      async (dir, report) => {
        await knnJob(ref, {
          store: join(dir, "store"),
          out: join(dir, "out"),
          k: 3,
          blockRows: 10,
          job: "k",
          onEvent: done(report),
        });
        return await knnFiles(dir);
      },
      knnFiles,
    ],
    [
      "pipeline",
      async (dir, report) => {
        const store = await openStore(join(dir, "store"));
        const config = await loadPipelineConfig(conf);
        // A completed run is read, not run again: rerunning a completed
        // pipeline starts a new run by design, so a cut after its last
        // record would count every component as lost.
        const job = await pipelineJobName(config.pipelineName);
        const latest = (await store.listRuns(job)).sort().at(-1);
        const prior = latest === undefined
          ? undefined
          : await loadPipelineRun(latest, { store });
        let runId = prior?.status === "completed" ? prior.runId : undefined;
        if (runId === undefined) {
          const run = await runPipeline(config, {
            store,
            onEvent: done(report),
          });
          if (run.status !== "completed") {
            throw new Error(
              `Pipeline run "${run.runId}" ended ${run.status}: ${
                JSON.stringify(run.errors)
              }`,
            );
          }
          runId = run.runId;
        }
        return new TextEncoder().encode(
          JSON.stringify(await pipelineOutput(runId, { store })),
        );
      },
    ],
    [
      "processor",
      async (dir, report) => {
        await runProcessor(jsonlNormalize, {
          store: join(dir, "store"),
          dataset: "power",
          input: rows,
          out: join(dir, "out", "new", "out.jsonl"),
          params: { schema },
          checkpointEvery: 25,
          // A cut makes every later sync fail: retrying cannot help.
          maxRetries: 0,
          // A checkpoint is the processor's promise that its items are kept.
          onEvent: (e) => {
            if (e.type === "checkpoint") {
              report(`checkpoint ${e.checkpointId.split("_").at(-1)}`, false);
            }
          },
        });
        return await processorFiles(dir);
      },
      processorFiles,
    ],
    [
      "dataflow",
      (dir, report) => salesFlow(dir, 1, done(report)),
    ],
    [
      "dataflow (incremental)",
      (dir, report) => salesFlow(dir, 2, done(report)),
      undefined,
      // The first input's run completed before the power went: the cut
      // falls in the run that brings it up to date with edits.
      async (dir) => void await salesFlow(dir, 1),
    ],
  ];
  const verify = async (dir: string) => {
    const report = await verifyStore(await openStore(join(dir, "store")), {
      readData: true,
    });
    return report.problems.map((p) => JSON.stringify(p));
  };
  for (const [family, job, files, prepare] of jobs) {
    if (only !== undefined && !only.some((p) => family.startsWith(p))) continue;
    const base = await ctx.dir(`power-${family}`);
    const { syncs, output } = await countSyncs(join(base, "ref"), job, prepare);
    for (let i = 0; i < perFamily; i++) {
      // The last trial cuts after the job returned.
      const cutAt = i === perFamily - 1
        ? syncs + 1
        : 1 + Math.floor(ctx.random() * syncs);
      const o = await powerCutTrial(
        [join(base, `${i}-a`), join(base, `${i}-b`)],
        cutAt,
        job,
        output,
        verify,
        files,
        prepare,
      );
      ctx.tally.add(kind, family, "cuts");
      ctx.tally.add(kind, family, "acknowledged steps lost", o.lost.length);
      ctx.tally.add(kind, family, "corrupt outputs", o.sameOutput ? 0 : 1);
      ctx.tally.add(
        kind,
        family,
        "verify failures",
        o.problems.length > 0 ? 1 : 0,
      );
      if (o.outputDurable === false) {
        ctx.tally.add(kind, family, "output files lost after return");
      }
      ctx.tally.expect(
        o.error === undefined && o.lost.length === 0 && o.sameOutput &&
          o.problems.length === 0 && o.outputDurable !== false,
        kind,
        family,
        `cut at sync ${cutAt} of ${syncs}: ${
          o.error?.slice(0, 300) ?? ""
        } lost ${o.lost.join(",")} problems ${
          o.problems.join("; ").slice(0, 300)
        }${o.outputDurable === false ? " output files lost" : ""}`,
      );
    }
  }
}

/** The sales dataflow of the dataflow kill fixture, on a phase's input. */
async function salesFlow(
  dir: string,
  phase: number,
  onEvent?: (e: { type: string; key?: string; cached?: boolean }) => void,
): Promise<Uint8Array> {
  const df = new Dataflow("power", {
    store: join(dir, "store"),
    ...(onEvent === undefined ? {} : { onEvent }),
  });
  const sales = df.input<{ shop: string; amount: number }>("sales");
  const taxed = df.map("taxed", sales, (s) => ({
    ...s,
    amount: s.amount * 1.2,
  }));
  const perShop = df.groupReduce(
    "per-shop",
    taxed,
    (s) => s.shop,
    (_shop, list) => list.reduce((sum, s) => sum + s.amount, 0),
  );
  df.node(
    "best",
    [perShop],
    (m) => [...m.entries()].sort((a, b) => b[1] - a[1])[0]![0],
  );
  const result = await df.run({ sales: phaseInput(phase) });
  return new TextEncoder().encode(JSON.stringify({
    taxed: [...result.get<Map<string, unknown>>("taxed")],
    perShop: [...result.get<Map<string, number>>("per-shop")],
    best: result.get("best"),
  }));
}

/** Inputs of the pipeline and processor power-cut jobs, outside their stores. */
async function powerInputs(
  dir: string,
): Promise<{ conf: string; rows: string; schema: string }> {
  const components = repoPath("tests", "fixtures", "pipeline_components.ts");
  const conf = join(dir, "p.conf");
  await writeFile(
    conf,
    `pipeline {
  pipeline-name = "Power"
  checkpoint { enabled = true, auto-resume = true, cleanup-on-success = true }
  pipeline-components = [
    { instance-type = "${components}#Source", instance-name = Source, instance-config { n = 24 } }
    { instance-type = "${components}#Slow", instance-name = Slow, instance-config { parts = 6 } }
    { instance-type = "${components}#Sum", instance-name = Sum }
  ]
}
`,
  );
  const rows = join(dir, "rows.jsonl");
  await writeFile(
    rows,
    Array.from(
      { length: 200 },
      (_, i) => JSON.stringify({ id: i, text: `row ${i}`, v: i / 2 }),
    ).join("\n") + "\n",
  );
  const schema = JSON.stringify({
    type: "object",
    properties: {
      id: { type: "integer" },
      text: { type: "string" },
      v: { type: "number" },
    },
    required: ["id", "text"],
  });
  return { conf, rows, schema };
}

async function processorFiles(dir: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(join(dir, "out", "new", "out.jsonl")));
}

async function knnFiles(dir: string): Promise<Uint8Array> {
  return new Uint8Array(Buffer.concat([
    await readFile(join(dir, "out", "index.npy")),
    await readFile(join(dir, "out", "distance.npy")),
  ]));
}

/** First line of the generated table. */
export const TABLE_HEADER = "| fault | family | injected | outcome |";
/** Marks around the generated table in docs/reliability.md. */
export const TABLE_BEGIN =
  "<!-- torture:begin (generated by scripts/torture.ts --write-docs; do not edit) -->";
/** End mark of the generated table. */
export const TABLE_END = "<!-- torture:end -->";

/** The counter each kind's faults are counted by (the rest are outcomes). */
const INJECTED = [
  "kills",
  "cuts",
  "flips",
  "tears",
  "temp files",
  "processes",
  "gc/forget runs",
  "gc pairs",
  "writers",
  "attempts",
  "runs",
  "inputs",
  "names",
  "commands",
];

/**
 * The table of a campaign: one row per fault kind and family, the faults
 * injected and every outcome counter.
 *
 * @param result The campaign.
 * @returns Markdown, between {@linkcode TABLE_BEGIN} and {@linkcode TABLE_END}.
 */
export function formatTable(result: CampaignResult): string {
  const lines = [
    TABLE_BEGIN,
    "",
    `Seed ${result.seed}: \`${result.command} --write-docs\`; ${result.tally.findings.length} findings.`,
    "",
    TABLE_HEADER,
    "| --- | --- | --- | --- |",
  ];
  for (const [key, counters] of result.tally.rows) {
    const [kind, family] = key.split("\u0000") as [string, string];
    const injected = Object.entries(counters).filter(([name]) =>
      INJECTED.includes(name)
    );
    const outcome = Object.entries(counters).filter(([name]) =>
      !INJECTED.includes(name)
    );
    for (const name of Object.keys(counters)) {
      if (/[,|]/.test(name)) {
        throw new Error(
          `Cannot format counter "${name}": a comma or bar breaks the table`,
        );
      }
    }
    const cell = (pairs: [string, number][]) =>
      pairs.map(([name, count]) => `${count} ${name}`).join(", ") || "-";
    lines.push(
      `| ${kind} | ${family} | ${cell(injected)} | ${cell(outcome)} |`,
    );
  }
  for (const skip of result.tally.skipped) lines.push("", `Skipped: ${skip}.`);
  const known = new Set(
    result.tally.known.map((f) => `${f.kind}\u0000${f.family}`),
  );
  for (const k of KNOWN_FINDINGS) {
    if (known.has(`${k.kind}\u0000${k.family}`)) {
      lines.push("", `Known: ${k.kind} (${k.family}): ${k.why}.`);
    }
  }
  lines.push("", TABLE_END);
  return lines.join("\n");
}

const ROW =
  /^\| [^|]+ \| [^|]+ \| (-|\d+ [^|,]+(, \d+ [^|,]+)*) \| (-|\d+ [^|,]+(, \d+ [^|,]+)*) \|$/;

/**
 * Whether `text` is a table {@linkcode formatTable} writes (what the docs
 * test checks, so nobody edits it into another shape by hand).
 *
 * @param text The block, marks included.
 * @returns The problems found; empty when it is the script's format.
 */
export function checkTable(text: string): string[] {
  const problems: string[] = [];
  // deno fmt pads table cells and rules: compare without the padding.
  const lines = text.split("\n").map((line) =>
    line.startsWith("|")
      ? line.replace(/ {2,}/g, " ").replace(/-{3,}/g, "---")
      : line
  );
  if (lines[0] !== TABLE_BEGIN) problems.push("no begin mark");
  if (lines.at(-1) !== TABLE_END) problems.push("no end mark");
  if (
    !/^Seed \d+: `deno task torture --seed \d+ --kills \d+.*--write-docs`; \d+ findings\.$/
      .test(lines[2] ?? "")
  ) {
    problems.push(`not a seed line: ${lines[2]}`);
  }
  if (lines[4] !== TABLE_HEADER) problems.push("not the table header");
  let rows = 0;
  for (const line of lines.slice(6)) {
    // After the rows come notes (skipped parts, known findings), wrapped by deno fmt.
    if (!line.startsWith("|")) continue;
    if (!ROW.test(line)) problems.push(`not a table row: ${line}`);
    rows++;
  }
  if (rows === 0) problems.push("no rows");
  return problems;
}

/**
 * Replace the table in docs/reliability.md.
 *
 * @param table From {@linkcode formatTable}.
 * @returns Resolves once written.
 */
export async function writeDocs(table: string): Promise<void> {
  const path = repoPath("docs", "reliability.md");
  const text = await readFile(path, "utf8");
  const begin = text.indexOf(TABLE_BEGIN);
  const end = text.indexOf(TABLE_END);
  if (begin < 0 || end < 0) {
    throw new Error(`Cannot write the table: "${path}" has no torture marks`);
  }
  await writeFile(
    path,
    text.slice(0, begin) + table + text.slice(end + TABLE_END.length),
  );
  // Keep the page as deno fmt wants it (CI checks), when running under Deno.
  if (typeof (globalThis as { Deno?: unknown }).Deno !== "undefined") {
    spawnSync(process.execPath, ["fmt", "--quiet", path]);
  }
}

const USAGE =
  `Usage: deno task torture [--seed N] [--kills N] [--long] [--only KIND,...] [--families NAME,...] [--write-docs]
  --seed N        replay a campaign (default: a random seed, printed)
  --kills N       SIGKILLs over the campaign (default 100)
  --long          the long form: more of every fault
  --only KIND,... some fault kinds only: ${KINDS.join(",")}
  --families ...  families whose names start with these (e.g. map,kNN)
  --write-docs    replace the table in docs/reliability.md with this run's`;

function parseCommandLine() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        seed: { type: "string" },
        kills: { type: "string" },
        long: { type: "boolean", default: false },
        only: { type: "string" },
        families: { type: "string" },
        "write-docs": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`torture: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

if (import.meta.main) {
  const { values } = parseCommandLine();
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) {
      console.error(`torture: --${name} must be a whole number, got "${text}"`);
      process.exit(2);
    }
    return Number(text);
  };
  const only = values.only?.split(",");
  const unknown = only?.filter((k) =>
    !(KINDS as readonly string[]).includes(k)
  );
  if (unknown?.length) {
    console.error(
      `torture: unknown --only "${unknown.join(",")}"; expected some of ${
        KINDS.join(",")
      }`,
    );
    process.exit(2);
  }
  const seed = number("seed", values.seed) ??
    Math.floor(Math.random() * 2 ** 31);
  console.error(`torture: seed ${seed} (replay with --seed ${seed})`);
  const started = Date.now();
  const result = await runCampaign({
    seed,
    ...(values.kills === undefined
      ? {}
      : { kills: number("kills", values.kills)! }),
    long: values.long,
    ...(only === undefined ? {} : { only }),
    ...(values.families === undefined
      ? {}
      : { families: values.families.split(",") }),
    log: (line) =>
      console.error(
        `torture: ${line} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
      ),
  });
  const table = formatTable(result);
  console.log(table);
  for (const f of result.tally.known) {
    console.error(`KNOWN [${f.kind} / ${f.family}] ${f.what}`);
  }
  for (const f of result.tally.findings) {
    console.error(`FINDING [${f.kind} / ${f.family}] ${f.what}`);
  }
  if (values["write-docs"]) await writeDocs(table);
  console.error(
    `torture: seed ${seed}, ${result.tally.findings.length} findings`,
  );
  process.exit(result.tally.findings.length === 0 ? 0 : 1);
}
