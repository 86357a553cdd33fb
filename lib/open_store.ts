/**
 * Opening a store by location: a directory path for the fs backend,
 * `s3://bucket/prefix` (or `s3a://`) for the S3 backend, or `memory:` for a
 * store that lives in this process.
 *
 * @module
 */
import { openFsStore } from "../store/fs.ts";
import { createMemoryStore } from "../store/memory.ts";
import { openS3Store } from "../store/s3.ts";
import type { Store } from "../store/store.ts";

/** The store used when none is named: `$CAIRN_STORE`, else `./.cairn`. */
export function defaultStoreLocation(): string {
  return process.env.CAIRN_STORE || "./.cairn";
}

const memoryStores = new Map<string, Store>();

/** Options for {@linkcode openStore}. */
export interface OpenStoreOptions {
  /**
   * Create the store when the location holds none (a missing or empty
   * directory, an S3 prefix without a config). Default: true.
   */
  create?: boolean;
}

/**
 * Open a store. `memory:` (or `memory:NAME`) gives an in-process store shared
 * by every call with the same name; `s3://bucket/prefix` or
 * `s3a://bucket/prefix` a store in an S3 bucket (endpoint and credentials
 * from the `AWS_*` variables); anything else is a directory, created when
 * missing.
 *
 * @param location Store location. Default: {@linkcode defaultStoreLocation}.
 * @param options Whether to create a missing store.
 * @returns The store.
 *
 * @example An in-memory store
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open_store.ts";
 * const store = await openStore("memory:");
 * assert.ok(store.location === "memory:");
 * ```
 */
export async function openStore(
  location: string = defaultStoreLocation(),
  options: OpenStoreOptions = {},
): Promise<Store> {
  if (location.startsWith("memory:")) {
    let store = memoryStores.get(location);
    if (store === undefined) {
      store = { ...createMemoryStore(), location };
      memoryStores.set(location, store);
    }
    return store;
  }
  if (/^s3a?:\/\//.test(location)) return await openS3Store(location, options);
  return await openFsStore(location, options);
}

/**
 * Accept a store or a location.
 *
 * @param store A store, a location, or undefined for the default.
 * @returns The store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveStore } from "./open_store.ts";
 * assert.ok((await resolveStore("memory:x")).location === "memory:x");
 * ```
 */
export async function resolveStore(
  store: Store | string | undefined,
): Promise<Store> {
  return typeof store === "object" ? store : await openStore(store);
}
