/**
 * A small S3 client for the S3 store backend: SigV4 over `fetch` (aws4fetch),
 * conditional writes (`If-None-Match: *`, `If-Match`), listing with
 * pagination, and retries of transient failures. It works on any runtime with
 * `fetch` (Deno, Bun, the single binary, Node).
 *
 * Conditional writes decide who wins a race, so a retried conditional PUT
 * must not mistake its own earlier success for a loss: when a retry answers
 * 412, the object is read back and compared with the bytes sent.
 *
 * @module
 */
import type { AwsClient } from "npm:aws4fetch@^1.0.20";

/** Where an S3 store lives and how to reach it. */
export interface S3Location {
  /** Endpoint URL without the bucket, e.g. `http://127.0.0.1:7480`. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Bucket name. */
  bucket: string;
  /** Key prefix inside the bucket: "" or ending in "/". */
  prefix: string;
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token, for temporary credentials. */
  sessionToken?: string;
}

/** One listed object. */
export interface S3Object {
  /** Full key, prefix included. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification time, in ms since the epoch (the server's clock). */
  lastModified: number;
  /** ETag without quotes. */
  etag: string;
  /** User metadata (`x-amz-meta-*`, names without the prefix); HEAD only. */
  metadata?: Record<string, string>;
}

/** A fetched object. */
export interface S3Body {
  /** The bytes. */
  body: Uint8Array;
  /** ETag without quotes. */
  etag: string;
  /** Last modification time, in ms since the epoch. */
  lastModified: number;
}

/** How a conditional PUT ended. */
export type PutOutcome =
  | { written: true; etag: string }
  | { written: false };

/** Conditions for {@linkcode S3Client.put}. */
export interface PutConditions {
  /** Write only if no object has the key (`If-None-Match: *`). */
  ifAbsent?: boolean;
  /** Write only if the object's ETag is this one (`If-Match`, unquoted). */
  ifMatch?: string;
  /** User metadata to store with the object (`x-amz-meta-NAME`). */
  metadata?: Record<string, string>;
}

/** Options for {@linkcode S3Client.get}. */
export interface S3GetOptions {
  /** Read at most this many bytes of the body (the rest is never read). Default: all. */
  maxBytes?: number;
}

/** The operations the S3 store needs. */
export interface S3Client {
  /** The location this client talks to. */
  readonly location: S3Location;
  /** A human name of the store: `s3://bucket/prefix`. */
  readonly url: string;
  /** PUT bytes; with conditions, `{ written: false }` when they do not hold. */
  put(
    key: string,
    body: Uint8Array,
    conditions?: PutConditions,
  ): Promise<PutOutcome>;
  /** GET an object, or undefined when it does not exist. */
  get(key: string, options?: S3GetOptions): Promise<S3Body | undefined>;
  /**
   * Copy an object onto a key (itself, to refresh its time), replacing its
   * metadata; false when the source does not exist.
   */
  copy(
    from: string,
    to: string,
    metadata?: Record<string, string>,
  ): Promise<boolean>;
  /** Create the bucket; an existing bucket of ours is fine. */
  createBucket(): Promise<void>;
  /** HEAD an object, or undefined when it does not exist. */
  head(key: string): Promise<S3Object | undefined>;
  /** DELETE an object; returns whether the server still had it (best effort). */
  delete(key: string): Promise<void>;
  /** Every object under a key prefix, in key order. */
  list(prefix: string, startAfter?: string): AsyncIterable<S3Object>;
  /** The "folders" directly under a prefix (`delimiter=/`), in order. */
  listFolders(prefix: string): AsyncIterable<string>;
}

/** Options for {@linkcode createS3Client}. */
export interface CreateS3ClientOptions {
  /** Attempts for a request that failed with a 5xx, 409, 429 or a network error. Default: 6. */
  attempts?: number;
  /** First retry delay in ms, doubled each time, with jitter. Default: 50. */
  retryDelayMs?: number;
  /** The `fetch` to use. Default: `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** An S3 request failed for good. */
export class S3RequestError extends Error {
  /** HTTP status, or 0 for a network error. */
  readonly status: number;
  /**
   * @param message What failed.
   * @param status The HTTP status, or 0.
   */
  constructor(message: string, status: number) {
    super(message);
    this.name = "S3RequestError";
    this.status = status;
  }
}

/**
 * Parse an `s3://bucket/prefix` (or `s3a://`) URL; endpoint, region and
 * credentials come from `AWS_ENDPOINT_URL`, `AWS_REGION` (or
 * `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
 * `AWS_SESSION_TOKEN`.
 *
 * @param url The store URL.
 * @param env The environment. Default: `process.env`.
 * @returns The location.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseS3Url } from "./_s3_client.ts";
 * const env = { AWS_ENDPOINT_URL: "http://127.0.0.1:7480", AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" };
 * const where = parseS3Url("s3a://data/cairn/nightly", env);
 * assert.equal(where.bucket, "data");
 * assert.equal(where.prefix, "cairn/nightly/");
 * ```
 */
export function parseS3Url(
  url: string,
  env: Record<string, string | undefined> = process.env,
): S3Location {
  const match = /^s3a?:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!match) {
    throw new TypeError(
      `Cannot open store "${url}": expected s3://BUCKET/PREFIX`,
    );
  }
  const bucket = match[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new TypeError(
      `Cannot open store "${url}": "${bucket}" is not a valid bucket name (3 to 63 lowercase letters, digits, "." and "-")`,
    );
  }
  const prefix = match[2]!.replace(/\/+$/, "");
  const missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter((k) =>
    !env[k]
  );
  if (missing.length > 0) {
    throw new TypeError(
      `Cannot open store "${url}": set ${
        missing.join(" and ")
      } (and AWS_ENDPOINT_URL for a server other than AWS)`,
    );
  }
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  const endpoint = (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL ||
    `https://s3.${region}.amazonaws.com`).replace(/\/+$/, "");
  return {
    endpoint,
    region,
    bucket,
    prefix: prefix === "" ? "" : `${prefix}/`,
    accessKeyId: env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
    ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
  };
}

function unquote(etag: string | null): string {
  return (etag ?? "").replace(/^"|"$/g, "");
}

function xmlText(text: string): string {
  return text.replace(
    /&(lt|gt|quot|apos|amp|#\d+|#x[0-9a-fA-F]+);/g,
    (_, e: string) => {
      switch (e) {
        case "lt":
          return "<";
        case "gt":
          return ">";
        case "quot":
          return '"';
        case "apos":
          return "'";
        case "amp":
          return "&";
      }
      return String.fromCodePoint(
        e.startsWith("#x") ? parseInt(e.slice(2), 16) : Number(e.slice(1)),
      );
    },
  );
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? xmlText(m[1]!) : undefined;
}

function blocks(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))]
    .map((m) => m[1]!);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Statuses worth another try: the server was busy or a race confused it (RGW answers 500 to some If-Match losers). */
function transient(status: number): boolean {
  return status >= 500 || status === 409 || status === 429;
}

/**
 * A client for one S3 location.
 *
 * @param location Where the store lives.
 * @param options Retry policy and `fetch`.
 * @returns The client.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createS3Client } from "./_s3_client.ts";
 * const client = createS3Client({ endpoint: "http://127.0.0.1:1", region: "us-east-1", bucket: "b", prefix: "p/", accessKeyId: "a", secretAccessKey: "s" });
 * assert.equal(client.url, "s3://b/p/");
 * ```
 */
export function createS3Client(
  location: S3Location,
  options: CreateS3ClientOptions = {},
): S3Client {
  const attempts = options.attempts ?? 6;
  const baseDelay = options.retryDelayMs ?? 50;
  // aws4fetch loads on the first request, so opening a local store never pays for it.
  let aws: Promise<AwsClient> | undefined;
  const signer = () =>
    aws ??= import("npm:aws4fetch@^1.0.20").then(({ AwsClient }) =>
      new AwsClient({
        accessKeyId: location.accessKeyId,
        secretAccessKey: location.secretAccessKey,
        ...(location.sessionToken
          ? { sessionToken: location.sessionToken }
          : {}),
        region: location.region,
        service: "s3",
        retries: 0,
      })
    );
  const doFetch = options.fetch ?? globalThis.fetch;
  const bucketUrl = `${location.endpoint}/${location.bucket}`;
  const objectUrl = (key: string) =>
    `${bucketUrl}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const url = `s3://${location.bucket}/${location.prefix}`;

  /** Send a signed request, retrying transient failures; `onRetry` runs before each retry. */
  async function send(
    method: string,
    target: string,
    init: { body?: Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<{ response: Response; retried: boolean }> {
    let lastError = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const signed = await (await signer()).sign(target, {
          method,
          headers: init.headers ?? {},
          ...(init.body === undefined ? {} : { body: init.body as BodyInit }),
        });
        const response = await doFetch(signed);
        if (!transient(response.status) || attempt === attempts) {
          return { response, retried: attempt > 1 };
        }
        lastError = `HTTP ${response.status}`;
        await response.body?.cancel();
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        if (attempt === attempts) {
          throw new S3RequestError(
            `Cannot ${method} "${target}" on ${url}: ${lastError}`,
            0,
          );
        }
      }
      const delay = baseDelay * 2 ** (attempt - 1);
      await sleep(delay / 2 + Math.random() * delay);
    }
    throw new S3RequestError(
      `Cannot ${method} "${target}" on ${url}: ${lastError}`,
      0,
    );
  }

  async function fail(response: Response, what: string): Promise<never> {
    const text = await response.text().catch(() => "");
    const code = tag(text, "Code");
    throw new S3RequestError(
      `Cannot ${what} on ${url}: HTTP ${response.status}${
        code ? ` ${code}` : ""
      }${
        response.status === 403
          ? " (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
          : response.status === 404 && code === "NoSuchBucket"
          ? ` (create the bucket "${location.bucket}" first)`
          : ""
      }`,
      response.status,
    );
  }

  async function readBody(
    response: Response,
    maxBytes: number | undefined,
  ): Promise<Uint8Array> {
    const length = Number(response.headers.get("content-length") ?? NaN);
    if (
      maxBytes === undefined || response.body === null ||
      (Number.isSafeInteger(length) && length <= maxBytes)
    ) {
      // Bounded by the declared length; the reader below only for the rest.
      const body = new Uint8Array(await response.arrayBuffer());
      return maxBytes === undefined ? body : body.subarray(0, maxBytes);
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    const reader = response.body.getReader();
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.length;
    }
    await reader.cancel().catch(() => {});
    const out = new Uint8Array(Math.min(size, maxBytes));
    let at = 0;
    for (const part of parts) {
      const take = part.subarray(0, out.length - at);
      out.set(take, at);
      at += take.length;
    }
    return out;
  }

  async function get(
    key: string,
    options: S3GetOptions = {},
  ): Promise<S3Body | undefined> {
    const { response } = await send("GET", objectUrl(key));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) return fail(response, `read "${key}"`);
    return {
      body: await readBody(response, options.maxBytes),
      etag: unquote(response.headers.get("etag")),
      lastModified: Date.parse(response.headers.get("last-modified") ?? "") ||
        0,
    };
  }

  async function put(
    key: string,
    body: Uint8Array,
    conditions: PutConditions = {},
  ): Promise<PutOutcome> {
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
    };
    if (conditions.ifAbsent) headers["if-none-match"] = "*";
    // RGW matches If-Match only against the ETag without its quotes.
    if (conditions.ifMatch !== undefined) {
      headers["if-match"] = conditions.ifMatch;
    }
    for (const [name, value] of Object.entries(conditions.metadata ?? {})) {
      headers[`x-amz-meta-${name}`] = value;
    }
    const { response, retried } = await send("PUT", objectUrl(key), {
      body,
      headers,
    });
    if (response.ok) {
      await response.body?.cancel();
      return { written: true, etag: unquote(response.headers.get("etag")) };
    }
    if (response.status === 412) {
      await response.body?.cancel();
      if (retried) {
        // An earlier attempt may have written it before failing to answer.
        const now = await get(key);
        if (now !== undefined && sameBytes(now.body, body)) {
          return { written: true, etag: now.etag };
        }
      }
      return { written: false };
    }
    return fail(response, `write "${key}"`);
  }

  async function head(key: string): Promise<S3Object | undefined> {
    const { response } = await send("HEAD", objectUrl(key));
    if (response.status === 404) return undefined;
    if (!response.ok) return fail(response, `stat "${key}"`);
    const metadata: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (name.startsWith("x-amz-meta-")) metadata[name.slice(11)] = value;
    });
    return {
      metadata,
      key,
      size: Number(response.headers.get("content-length") ?? 0),
      lastModified: Date.parse(response.headers.get("last-modified") ?? "") ||
        0,
      etag: unquote(response.headers.get("etag")),
    };
  }

  async function remove(key: string): Promise<void> {
    const { response } = await send("DELETE", objectUrl(key));
    await response.body?.cancel();
    if (!response.ok && response.status !== 404) {
      await fail(response, `delete "${key}"`);
    }
  }

  async function copy(
    from: string,
    to: string,
    metadata: Record<string, string> = {},
  ): Promise<boolean> {
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "x-amz-copy-source": `/${location.bucket}/${
        from.split("/").map(encodeURIComponent).join("/")
      }`,
      "x-amz-metadata-directive": "REPLACE",
    };
    for (const [name, value] of Object.entries(metadata)) {
      headers[`x-amz-meta-${name}`] = value;
    }
    const { response } = await send("PUT", objectUrl(to), { headers });
    if (response.status === 404) {
      await response.body?.cancel();
      return false;
    }
    if (!response.ok) return fail(response, `copy "${from}" to "${to}"`);
    // A copy can fail after a 200 status line: the error is in the body.
    const text = await response.text();
    if (text.includes("<Error>")) {
      throw new S3RequestError(
        `Cannot copy "${from}" to "${to}" on ${url}: ${
          tag(text, "Code") ?? "error"
        }`,
        response.status,
      );
    }
    return true;
  }

  async function createBucket(): Promise<void> {
    const { response } = await send("PUT", bucketUrl);
    const text = await response.text().catch(() => "");
    if (response.ok || tag(text, "Code") === "BucketAlreadyOwnedByYou") return;
    throw new S3RequestError(
      `Cannot create bucket "${location.bucket}" on ${url}: HTTP ${response.status} ${
        tag(text, "Code") ?? ""
      }`.trim(),
      response.status,
    );
  }

  async function* pages(
    params: Record<string, string>,
  ): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const query = new URLSearchParams({
        "list-type": "2",
        ...params,
        ...(token === undefined ? {} : { "continuation-token": token }),
      });
      const { response } = await send("GET", `${bucketUrl}?${query}`);
      if (!response.ok) {
        await fail(response, `list "${params.prefix ?? ""}"`);
      }
      const xml = await response.text();
      yield xml;
      token = tag(xml, "IsTruncated") === "true"
        ? tag(xml, "NextContinuationToken")
        : undefined;
    } while (token !== undefined);
  }

  async function* list(
    prefix: string,
    startAfter?: string,
  ): AsyncIterable<S3Object> {
    const params: Record<string, string> = { prefix };
    if (startAfter !== undefined) params["start-after"] = startAfter;
    for await (const xml of pages(params)) {
      for (const item of blocks(xml, "Contents")) {
        yield {
          key: tag(item, "Key") ?? "",
          size: Number(tag(item, "Size") ?? 0),
          lastModified: Date.parse(tag(item, "LastModified") ?? "") || 0,
          etag: unquote(tag(item, "ETag") ?? ""),
        };
      }
    }
  }

  async function* listFolders(prefix: string): AsyncIterable<string> {
    for await (const xml of pages({ prefix, delimiter: "/" })) {
      for (const item of blocks(xml, "CommonPrefixes")) {
        const folder = tag(item, "Prefix");
        if (folder !== undefined) yield folder;
      }
    }
  }

  return {
    location,
    url,
    put,
    get,
    head,
    copy,
    createBucket,
    delete: remove,
    list,
    listFolders,
  };
}

/**
 * Check that the server honours `If-None-Match: *`: PUT one probe key twice;
 * the second must be refused. Servers that ignore conditional writes (s3rver,
 * Garage, Zenko CloudServer) would let two writers both append record N.
 *
 * @param client The client.
 * @returns Resolves when the server refuses the second write.
 *
 * @example
 * ```ts ignore
 * await probeConditionalWrites(createS3Client(parseS3Url("s3://bucket/cairn")));
 * ```
 */
export async function probeConditionalWrites(client: S3Client): Promise<void> {
  const key = `${client.location.prefix}probe/${crypto.randomUUID()}`;
  const first = await client.put(key, new TextEncoder().encode("1"), {
    ifAbsent: true,
  });
  const second = await client.put(key, new TextEncoder().encode("2"), {
    ifAbsent: true,
  });
  await client.delete(key).catch(() => {});
  if (!first.written || second.written) {
    throw new Error(
      `Cannot use ${client.url} at ${client.location.endpoint}: the server ignores conditional writes (If-None-Match: *), so two writers could both append the same record; use AWS S3, Ceph RGW, MinIO or R2`,
    );
  }
}
