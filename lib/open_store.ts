/**
 * Opening a store by location: a directory path or `file://` URL for the fs
 * backend, `s3://bucket/prefix` (or `s3a://`) for the S3 backend, or
 * `memory:` for a store that lives in this process.
 *
 * @module
 */
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { openFsStore } from "../store/fs.ts";
import { createMemoryStore } from "../store/memory.ts";
import { openS3Store } from "../store/s3.ts";
import type { Store } from "../store/store.ts";

/**
 * The store used when none is named: `$CAIRN_STORE`, else `./.cairn`.
 *
 * @returns The location.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultStoreLocation } from "./open_store.ts";
 * assert.equal(typeof defaultStoreLocation(), "string");
 * ```
 */
export function defaultStoreLocation(): string {
  return process.env.CAIRN_STORE || "./.cairn";
}

const memoryStores = new Map<string, Store>();

/**
 * Options for {@linkcode openStore}.
 *
 * @example Open only a store that exists
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OpenStoreOptions } from "./open_store.ts";
 * const options: OpenStoreOptions = { create: false };
 * assert.equal(options.create, false);
 * ```
 */
export interface OpenStoreOptions {
  /**
   * Create the store when the directory is missing or empty, and require it
   * to be writable. With `false`, a missing store is an error and a
   * read-only one opens for reading.
   *
   * @default {true}
   */
  create?: boolean;
}

/**
 * Open a store. `memory:` (or `memory:NAME`) gives an in-process store shared
 * by every call with the same name; `s3://bucket/prefix` or
 * `s3a://bucket/prefix` a store in an S3 bucket (endpoint and credentials
 * from the `AWS_*` variables; with `create: false`, a prefix without a store
 * is an error); a `file://` URL or any other text is a directory.
 *
 * @param location Store location. Default: {@linkcode defaultStoreLocation}.
 * @param options See {@linkcode OpenStoreOptions}.
 * @returns The store.
 * @throws {TypeError} If the location has an unsupported scheme or is not a directory.
 * @throws {Error} If the store is missing (with `create: false`) or not writable.
 *
 * @example An in-memory store
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open_store.ts";
 * const store = await openStore("memory:");
 * assert.ok(store.location === "memory:");
 * ```
 *
 * @example A file URL
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { pathToFileURL } from "node:url";
 * import { openStore } from "./open_store.ts";
 * const dir = join(await mkdtemp(join(tmpdir(), "cairn-")), "store");
 * const store = await openStore(pathToFileURL(dir).href);
 * assert.equal(store.location, dir);
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
  if (/^s3a?:\/\//i.test(location)) {
    return await openS3Store(location, { create: options.create ?? true });
  }
  const path = storePath(location);
  const create = options.create ?? true;
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    if (error.code === "ENOTDIR") {
      throw new TypeError(
        `Cannot open store "${path}": a part of the path is a file, not a directory; give a directory path`,
      );
    }
    throw explainFsError(error, path);
  });
  if (info !== undefined && !info.isDirectory()) {
    throw new TypeError(
      `Cannot open store "${path}": it is a file, not a directory; give a directory path (a new one is created)`,
    );
  }
  if (info === undefined && !create) {
    throw new Error(
      `Cannot open store "${path}": there is no cairn store there (the path does not exist)`,
    );
  }
  if (info !== undefined && create) {
    await access(path, constants.W_OK).catch((error) => {
      throw explainFsError(error, path);
    });
  }
  try {
    const store = await openFsStore(path, { create });
    return store;
  } catch (error) {
    throw explainFsError(error, path);
  }
}

/** The directory a location names: a path, or a `file://` URL. */
function storePath(location: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme === undefined) return location;
  if (scheme.toLowerCase() === "file") {
    try {
      return fileURLToPath(location);
    } catch (error) {
      throw new TypeError(
        `Cannot open store "${location}": not a valid file URL (${
          (error as Error).message
        }); write file:///absolute/path`,
      );
    }
  }
  throw new TypeError(
    `Cannot open store "${location}": the "${scheme}://" scheme is not supported; give a directory path, a file:// URL, s3://BUCKET/PREFIX or memory:`,
  );
}

/** Turn a raw errno error about the store into one naming the path and the fix (keeping `code`). */
function explainFsError(error: unknown, path: string): unknown {
  const explained = describeFsError(error, path);
  if (explained !== error) {
    (explained as NodeJS.ErrnoException).code =
      (error as NodeJS.ErrnoException).code;
  }
  return explained;
}

function describeFsError(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = (error as NodeJS.ErrnoException | undefined)?.path ?? path;
  switch (code) {
    case "EACCES":
    case "EPERM":
      return new Error(
        `Cannot open store "${path}": permission denied on "${where}"; make it writable for this user, or give another store directory`,
        { cause: error },
      );
    case "EROFS":
      return new Error(
        `Cannot open store "${path}": "${where}" is on a read-only file system; give a store directory on a writable one`,
        { cause: error },
      );
    case "ENOTDIR":
      return new TypeError(
        `Cannot open store "${path}": "${where}" is a file where a directory was expected; give a directory path`,
        { cause: error },
      );
    case "ENOSPC":
      return new Error(
        `Cannot open store "${path}": no space left on the device holding "${where}"; free space and run again`,
        { cause: error },
      );
    default:
      return error;
  }
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
