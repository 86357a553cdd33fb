/**
 * Pipeline configs: the seed's HOCON format (`.conf`), or the same keys in
 * JSON or YAML, loaded and checked with errors that name the file and key.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { dirname, extname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseHocon } from "./_hocon.ts";

/** One entry of `pipeline-components`. */
export interface ComponentSpec {
  /** `MODULE#EXPORT`, a package specifier with `#EXPORT`, or a registered type name. */
  instanceType: string;
  /** Unique within the pipeline; names the component in records and logs. */
  instanceName: string;
  /** Passed to the component's constructor or factory. Default: `{}`. */
  instanceConfig: Record<string, unknown>;
}

/** The `checkpoint` block. */
export interface CheckpointConfig {
  /** Record checkpoints so failed runs can resume. Default: false. */
  enabled: boolean;
  /** The store directory (a path or `file://` URL); undefined means the default store. */
  location?: string;
  /** A plain run continues the latest failed run. Default: false. */
  autoResume: boolean;
  /** After a success, forget the component records (the final output stays). Default: true. */
  cleanupOnSuccess: boolean;
}

/** A loaded, checked pipeline config. */
export interface PipelineConfig {
  /** `pipeline-name`. */
  pipelineName: string;
  /** Stop at the first failed component. Default: true. */
  failFast: boolean;
  /** Checkpoint settings. */
  checkpoint: CheckpointConfig;
  /** The components, in order. */
  components: ComponentSpec[];
  /** The file it was loaded from, if any (named in errors). */
  file?: string;
  /** Folder that relative module paths and locations resolve against. */
  baseDir: string;
}

/** A config that cannot be used: names the file and the key. */
export class PipelineConfigError extends TypeError {
  /** The config file, or "(config)" for an object. */
  readonly file: string;
  /** The key, as a path like `pipeline.pipeline-components[1].instance-type`. */
  readonly key: string;
  /**
   * Make the error.
   *
   * @param file The config file.
   * @param key The key path.
   * @param problem What is wrong and how to fix it.
   */
  constructor(file: string, key: string, problem: string) {
    super(`Invalid pipeline config "${file}": key "${key}" ${problem}`);
    this.name = "PipelineConfigError";
    this.file = file;
    this.key = key;
  }
}

/** Options for {@linkcode parsePipelineConfig}. */
export interface ParsePipelineConfigOptions {
  /** The file the value came from, for messages. Default: "(config)". */
  file?: string;
  /** Folder that relative paths resolve against. Default: the file's folder, else the working directory. */
  baseDir?: string;
}

const PIPELINE_KEYS = new Set([
  "pipeline-name",
  "fail-fast",
  "checkpoint",
  "pipeline-components",
]);
const CHECKPOINT_KEYS = new Set([
  "enabled",
  "location",
  "auto-resume",
  "cleanup-on-success",
]);
const COMPONENT_KEYS = new Set([
  "instance-type",
  "instance-name",
  "instance-config",
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Check a parsed config value (the root object holding `pipeline { … }`).
 *
 * @param value The parsed file.
 * @param options File name and base folder.
 * @returns The checked config, with the seed's defaults filled in.
 * @throws {PipelineConfigError} Naming the key that is missing or wrong.
 *
 * @example Defaults as in the seed
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig } from "./config.ts";
 * const config = parsePipelineConfig({
 *   pipeline: {
 *     "pipeline-name": "Nightly",
 *     "pipeline-components": [{ "instance-type": "upper", "instance-name": "Upper" }],
 *   },
 * });
 * assert.equal(config.failFast, true);
 * assert.deepEqual(config.checkpoint, { enabled: false, autoResume: false, cleanupOnSuccess: true });
 * ```
 */
export function parsePipelineConfig(
  value: unknown,
  options: ParsePipelineConfigOptions = {},
): PipelineConfig {
  const file = options.file ?? "(config)";
  const baseDir = options.baseDir ??
    (options.file === undefined ? process.cwd() : dirname(options.file));
  const fail = (key: string, problem: string): never => {
    throw new PipelineConfigError(file, key, problem);
  };
  if (!isObject(value)) {
    fail("pipeline", "is missing: the file holds no object");
  }
  const pipeline = (value as Record<string, unknown>).pipeline;
  if (pipeline === undefined) {
    fail(
      "pipeline",
      "is missing: put the settings in a `pipeline { … }` block",
    );
  }
  if (!isObject(pipeline)) fail("pipeline", "must be an object");
  const p = pipeline as Record<string, unknown>;
  for (const key of Object.keys(p)) {
    if (!PIPELINE_KEYS.has(key)) {
      fail(
        `pipeline.${key}`,
        `is not a pipeline setting: expected one of ${
          [...PIPELINE_KEYS].join(", ")
        }`,
      );
    }
  }
  const name = p["pipeline-name"];
  if (name === undefined) {
    fail("pipeline.pipeline-name", "is missing: give the pipeline a name");
  }
  if (typeof name !== "string" || name.trim() === "") {
    fail("pipeline.pipeline-name", "must be a non-empty string");
  }
  const bool = (
    obj: Record<string, unknown>,
    key: string,
    path: string,
    fallback: boolean,
  ): boolean => {
    const v = obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") {
      fail(path, `must be true or false, found ${JSON.stringify(v)}`);
    }
    return v as boolean;
  };
  const failFast = bool(p, "fail-fast", "pipeline.fail-fast", true);
  const cp = p.checkpoint ?? {};
  if (!isObject(cp)) fail("pipeline.checkpoint", "must be an object");
  const c = cp as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!CHECKPOINT_KEYS.has(key)) {
      fail(
        `pipeline.checkpoint.${key}`,
        `is not a checkpoint setting: expected one of ${
          [...CHECKPOINT_KEYS].join(", ")
        }`,
      );
    }
  }
  const checkpoint: CheckpointConfig = {
    enabled: bool(c, "enabled", "pipeline.checkpoint.enabled", false),
    autoResume: bool(
      c,
      "auto-resume",
      "pipeline.checkpoint.auto-resume",
      false,
    ),
    cleanupOnSuccess: bool(
      c,
      "cleanup-on-success",
      "pipeline.checkpoint.cleanup-on-success",
      true,
    ),
  };
  if (c.location !== undefined) {
    if (typeof c.location !== "string" || c.location === "") {
      fail(
        "pipeline.checkpoint.location",
        "must be a path, a file:// URL or an s3a:// URL",
      );
    }
    checkpoint.location = resolveLocation(
      c.location as string,
      baseDir,
      (problem) => fail("pipeline.checkpoint.location", problem),
    );
  }
  const list = p["pipeline-components"];
  if (list === undefined) {
    fail("pipeline.pipeline-components", "is missing: list the components");
  }
  if (!Array.isArray(list) || list.length === 0) {
    fail("pipeline.pipeline-components", "must be a non-empty array");
  }
  const names = new Map<string, number>();
  const components = (list as unknown[]).map((entry, i): ComponentSpec => {
    const at = `pipeline.pipeline-components[${i}]`;
    if (!isObject(entry)) fail(at, "must be an object");
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!COMPONENT_KEYS.has(key)) {
        fail(
          `${at}.${key}`,
          `is not a component setting: expected one of ${
            [...COMPONENT_KEYS].join(", ")
          }`,
        );
      }
    }
    const type = e["instance-type"];
    if (typeof type !== "string" || type.trim() === "") {
      fail(
        `${at}.instance-type`,
        type === undefined
          ? 'is missing: name the component type ("./module.ts#Export" or a registered name)'
          : "must be a non-empty string",
      );
    }
    const instanceName = e["instance-name"] ?? type;
    if (typeof instanceName !== "string" || instanceName.trim() === "") {
      fail(`${at}.instance-name`, "must be a non-empty string");
    }
    const first = names.get(instanceName as string);
    if (first !== undefined) {
      fail(
        `${at}.instance-name`,
        `repeats "${instanceName}" (also component ${
          first + 1
        }): give each component its own name`,
      );
    }
    names.set(instanceName as string, i);
    const instanceConfig = e["instance-config"] ?? {};
    if (!isObject(instanceConfig)) {
      fail(`${at}.instance-config`, "must be an object");
    }
    return {
      instanceType: type as string,
      instanceName: instanceName as string,
      instanceConfig: instanceConfig as Record<string, unknown>,
    };
  });
  return {
    pipelineName: name as string,
    failFast,
    checkpoint,
    components,
    ...(options.file === undefined ? {} : { file: options.file }),
    baseDir,
  };
}

function resolveLocation(
  location: string,
  baseDir: string,
  fail: (problem: string) => never,
): string {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(location)?.[1];
  if (scheme === undefined) {
    return isAbsolute(location) ? location : resolve(baseDir, location);
  }
  if (scheme === "file") return fileURLToPath(location);
  // An S3 store: opened by openStore, credentials from the AWS_* variables.
  if (scheme === "s3" || scheme === "s3a") return location;
  return fail(
    `names the unsupported scheme "${scheme}" ("${location}"): use a local path, a file:// URL or s3a://BUCKET/PREFIX`,
  );
}

/**
 * Read a pipeline config file: `.conf` (HOCON), `.json`, `.yaml` or `.yml`.
 *
 * @param path The file.
 * @returns The checked config; relative paths in it resolve against its folder.
 * @throws {Error} When the file cannot be read (with the errno `code` and `path`).
 * @throws {SyntaxError} When the file cannot be parsed (naming file, line and column).
 * @throws {PipelineConfigError} When a key is missing or wrong.
 *
 * @example Load a HOCON file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, writeFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { loadPipelineConfig } from "./config.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-config-"));
 * const file = join(dir, "etl.conf");
 * await writeFile(file, 'pipeline {\n  pipeline-name = "ETL"\n  pipeline-components = [{ instance-type = "x", instance-name = "X" }]\n}\n');
 * assert.equal((await loadPipelineConfig(file)).pipelineName, "ETL");
 * ```
 */
export async function loadPipelineConfig(
  path: string,
): Promise<PipelineConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    // Keep the errno code and path: a missing file is bad input, not a failed run.
    const { code } = error as NodeJS.ErrnoException;
    const problem = code === "ENOENT"
      ? "it does not exist; check the path"
      : code === "EISDIR"
      ? "it is a directory; pass a .conf, .json, .yaml or .yml file"
      : (error as Error).message;
    throw Object.assign(
      new Error(`Cannot read pipeline config "${file}": ${problem}`, {
        cause: error,
      }),
      { code, path: file },
    );
  }
  const ext = extname(file).toLowerCase();
  let value: unknown;
  if (ext === ".json") {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new SyntaxError(
        `Cannot parse "${file}": ${(error as Error).message}`,
      );
    }
  } else if (ext === ".yaml" || ext === ".yml") {
    // yaml loads only for YAML configs.
    const { parse: parseYaml } = await import("npm:yaml@^2.9.1");
    try {
      value = parseYaml(text);
    } catch (error) {
      throw new SyntaxError(
        `Cannot parse "${file}": ${(error as Error).message.split("\n")[0]}`,
      );
    }
  } else if (ext === ".conf" || ext === ".hocon") {
    value = parseHocon(text, { file });
  } else {
    throw new PipelineConfigError(
      path,
      "pipeline",
      `cannot be read from a "${
        ext || "(no extension)"
      }" file: use .conf (HOCON), .json, .yaml or .yml`,
    );
  }
  return parsePipelineConfig(value, { file });
}
