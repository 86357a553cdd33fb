/**
 * The processor registry: built-in processors by name, processors registered
 * by the application, and processors loaded from `MODULE#EXPORT`.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { fileIndex } from "./file_index.ts";
import { jsonlNormalize } from "./jsonl_normalize.ts";
import { speechManifest } from "./speech_manifest.ts";
import type { Processor, ProcessorItem } from "./types.ts";

const registered = new Map<string, Processor>();

/** The built-in processors (static imports: npm packaging needs the whole graph). */
const BUILT_INS: Record<string, Processor> = {
  "file-index": fileIndex as unknown as Processor,
  "jsonl-normalize": jsonlNormalize as unknown as Processor,
  "speech-manifest": speechManifest as unknown as Processor,
};

/**
 * Register a processor under its name (replacing one of the same name).
 *
 * @param processor The processor.
 * @returns Nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getProcessor, registerProcessor } from "./registry.ts";
 * registerProcessor({ name: "upper", items: () => [], process: () => [] });
 * assert.equal((await getProcessor("upper")).name, "upper");
 * ```
 */
export function registerProcessor<I extends ProcessorItem>(
  processor: Processor<I>,
): void {
  if (
    typeof processor?.name !== "string" || processor.name === "" ||
    typeof processor.items !== "function" ||
    typeof processor.process !== "function"
  ) {
    throw new TypeError(
      "Cannot register processor: expected an object with a name, items() and process()",
    );
  }
  // Methods are bivariant in their parameters, so any processor is a Processor.
  registered.set(processor.name, processor as unknown as Processor);
}

/**
 * The names of the built-in and registered processors.
 *
 * @returns Sorted names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { processorNames } from "./registry.ts";
 * assert.ok(processorNames().includes("file-index"));
 * ```
 */
export function processorNames(): string[] {
  return [...new Set([...Object.keys(BUILT_INS), ...registered.keys()])].sort();
}

/**
 * A registered or built-in processor by name.
 *
 * @param name The name (`file-index`, `jsonl-normalize`, `speech-manifest`, or a registered one).
 * @returns The processor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getProcessor } from "./registry.ts";
 * assert.equal((await getProcessor("file-index")).name, "file-index");
 * ```
 */
export function getProcessor(name: string): Promise<Processor> {
  const found = registered.get(name) ?? BUILT_INS[name];
  if (found === undefined) {
    return Promise.reject(
      new RangeError(
        `Cannot find processor "${name}": known processors are ${
          processorNames().map((n) => `"${n}"`).join(", ")
        }; register it with registerProcessor or load it as MODULE#EXPORT`,
      ),
    );
  }
  return Promise.resolve(found);
}

/**
 * Load a processor from `MODULE#EXPORT` (a path or URL, then the export
 * name; default export `default`). The export may be a processor object or a
 * class (such as a {@linkcode BaseProcessor} subclass), which is instantiated.
 *
 * @param spec `MODULE#EXPORT`.
 * @returns The processor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadProcessor } from "./registry.ts";
 * const p = await loadProcessor(`${import.meta.resolve("./file_index.ts")}#fileIndex`);
 * assert.equal(p.name, "file-index");
 * ```
 */
export async function loadProcessor(spec: string): Promise<Processor> {
  const hash = spec.lastIndexOf("#");
  const path = hash < 0 ? spec : spec.slice(0, hash);
  const exportName = hash < 0 ? "default" : spec.slice(hash + 1);
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !isAbsolute(path)
    ? path
    : pathToFileURL(resolve(path)).href;
  const module = await import(url) as Record<string, unknown>;
  const value = module[exportName];
  const processor = typeof value === "function"
    ? new (value as new () => Processor)()
    : value as Processor | undefined;
  if (
    typeof processor?.name !== "string" ||
    typeof processor.items !== "function" ||
    typeof processor.process !== "function"
  ) {
    throw new TypeError(
      `Cannot load processor "${spec}": export "${exportName}" of "${path}" is not a processor (an object or class with name, items() and process())`,
    );
  }
  return processor;
}
