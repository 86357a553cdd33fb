/**
 * Pipeline components: what a component is, the registry of named types, and
 * resolving a config's `instance-type` (`MODULE#EXPORT`, a package specifier
 * with `#EXPORT`, or a registered name) into component instances.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { StepContext } from "../job.ts";
import { type ComponentSpec, PipelineConfigError } from "./config.ts";

/** What a component's `run` may log through; the caller decides where it goes. */
export interface ComponentLogger {
  /** An informational message. */
  info(message: string): void;
  /** A warning. */
  warn(message: string): void;
}

/** What `run` receives besides its input. */
export interface ComponentContext {
  /** The pipeline run id. */
  runId: string;
  /** The pipeline's name. */
  pipelineName: string;
  /** The component's `instance-name`. */
  name: string;
  /** 0-based index of the component. */
  index: number;
  /** Number of components. */
  total: number;
  /** Messages for the caller (the CLI prints them on stderr). */
  logger: ComponentLogger;
  /** Aborted when the run is stopping. */
  signal: AbortSignal;
  /**
   * A sub-step: runs once per run; a resumed run whose input is unchanged
   * reuses the stored output of a sub-step the failed run finished.
   */
  step<T>(key: string, fn: (ctx: StepContext) => T | Promise<T>): Promise<T>;
}

/** A pipeline component. Its return value is stored as chunks and passed to the next one. */
export interface Component<In = unknown, Out = unknown> {
  /** A name for your own use; records and logs use the `instance-name`. */
  name?: string;
  /** Do the work; `input` is the previous component's output (`undefined` for the first). */
  run(input: In, ctx: ComponentContext): Out | Promise<Out>;
}

/** A class (`new X(config)`) or a factory (`X(config)`) that makes a component. */
export type ComponentType =
  // deno-lint-ignore no-explicit-any
  | (new (config: any) => Component<any, any>)
  // deno-lint-ignore no-explicit-any
  | ((config: any) => Component<any, any> | Promise<Component<any, any>>);

const registry = new Map<string, ComponentType>();

/**
 * Register a component type under a name that configs can use as `instance-type`.
 *
 * @param name The type name (no `#`).
 * @param type A class or factory.
 *
 * @example Register a factory and make a component of it
 * ```ts
 * import assert from "node:assert/strict";
 * import { registerComponent, resolveComponents } from "./component.ts";
 * registerComponent("double", () => ({ run: (x: number) => 2 * x }));
 * const [c] = await resolveComponents([{ instanceType: "double", instanceName: "D", instanceConfig: {} }], { baseDir: "." });
 * assert.equal(await c!.component.run(21, {} as never), 42);
 * ```
 */
export function registerComponent(name: string, type: ComponentType): void {
  if (typeof name !== "string" || name === "" || name.includes("#")) {
    throw new TypeError(
      `Cannot register component type "${name}": a name is a non-empty string without "#"`,
    );
  }
  if (typeof type !== "function") {
    throw new TypeError(
      `Cannot register component type "${name}": expected a class or a factory function, found ${typeof type}`,
    );
  }
  registry.set(name, type);
}

/** A component made from its spec. */
export interface ResolvedComponent {
  /** The config entry it was made from. */
  spec: ComponentSpec;
  /** The instance. */
  component: Component;
}

/** Options for {@linkcode resolveComponents}. */
export interface ResolveComponentsOptions {
  /** Folder that relative module paths resolve against. */
  baseDir: string;
  /** The config file, for messages. Default: "(config)". */
  file?: string;
}

function isClass(fn: unknown): boolean {
  return typeof fn === "function" &&
    /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

/**
 * Make every component of a config, checking each `instance-type`.
 *
 * @param specs The `pipeline-components` entries.
 * @param options Base folder and file name.
 * @returns The instances, in order.
 * @throws {PipelineConfigError} For an unknown type, a missing export, or an
 * export that is neither a class nor a factory of components.
 *
 * @example A factory given inline through the registry
 * ```ts
 * import assert from "node:assert/strict";
 * import { registerComponent, resolveComponents } from "./component.ts";
 * registerComponent("greet", (config: { who: string }) => ({ run: () => `hi ${config.who}` }));
 * const [c] = await resolveComponents([{ instanceType: "greet", instanceName: "G", instanceConfig: { who: "ann" } }], { baseDir: "." });
 * assert.equal(await c!.component.run(undefined, {} as never), "hi ann");
 * ```
 */
export async function resolveComponents(
  specs: ComponentSpec[],
  options: ResolveComponentsOptions,
): Promise<ResolvedComponent[]> {
  const file = options.file ?? "(config)";
  const out: ResolvedComponent[] = [];
  for (const [i, spec] of specs.entries()) {
    const key = `pipeline.pipeline-components[${i}].instance-type`;
    const fail = (problem: string): never => {
      throw new PipelineConfigError(file, key, problem);
    };
    const type = spec.instanceType;
    let exported: unknown = registry.get(type);
    if (exported === undefined) {
      const hash = type.lastIndexOf("#");
      if (hash <= 0 || hash === type.length - 1) {
        fail(
          `names "${type}", which is not a registered component type: use "./module.ts#Export", "package#Export" or a name given to registerComponent${
            registry.size > 0
              ? ` (registered: ${[...registry.keys()].join(", ")})`
              : ""
          }`,
        );
      }
      const module = type.slice(0, hash);
      const name = type.slice(hash + 1);
      const local = module.startsWith("./") || module.startsWith("../") ||
        isAbsolute(module);
      const specifier = module.startsWith("file:")
        ? module
        : local
        ? pathToFileURL(resolve(options.baseDir, module)).href
        : module;
      let loaded: Record<string, unknown>;
      try {
        loaded = await import(specifier);
      } catch (error) {
        fail(
          `names module "${module}", which cannot be loaded (${
            local ? `resolved to "${resolve(options.baseDir, module)}": ` : ""
          }${(error as Error).message?.split("\n")[0]})`,
        );
      }
      exported = loaded![name];
      if (exported === undefined) {
        const names = Object.keys(loaded!).filter((k) => k !== "default");
        fail(
          `names export "${name}", which module "${module}" does not have (it exports: ${
            names.length > 0 ? names.join(", ") : "nothing"
          })`,
        );
      }
    }
    if (typeof exported !== "function") {
      fail(
        `names "${type}", which is neither a class nor a factory function (found ${typeof exported})`,
      );
    }
    let component: unknown;
    try {
      component = isClass(exported)
        ? new (exported as new (c: unknown) => unknown)(spec.instanceConfig)
        : await (exported as (c: unknown) => unknown)(spec.instanceConfig);
    } catch (error) {
      throw new PipelineConfigError(
        file,
        `pipeline.pipeline-components[${i}].instance-config`,
        `was refused by "${type}": ${(error as Error).message ?? error}`,
      );
    }
    if (
      typeof component !== "object" || component === null ||
      typeof (component as Component).run !== "function"
    ) {
      fail(
        `names "${type}", which is neither a class nor a factory of components: it made ${
          component === null ? "null" : typeof component
        } without a run(input, ctx) method`,
      );
    }
    out.push({ spec, component: component as Component });
  }
  return out;
}
