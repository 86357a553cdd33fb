// Where the S3 tests find a real server: AWS_ENDPOINT_URL and CAIRN_S3_BUCKET
// when set; else, with CAIRN_S3=1, a Ceph RGW started by scripts/rgw_start.sh;
// else none, and the tests are skipped with the reason printed.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  createS3Client,
  parseS3Url,
  type S3Client,
} from "../store/_s3_client.ts";

/** A reachable S3 server, or why there is none. */
export type S3Env =
  | { env: Record<string, string>; bucket: string; skip?: undefined }
  | { skip: string; env?: undefined; bucket?: undefined };

function detect(): S3Env {
  const env: Record<string, string | undefined> = { ...process.env };
  if (!env.AWS_ENDPOINT_URL || !env.CAIRN_S3_BUCKET) {
    if (env.CAIRN_S3 !== "1") {
      return {
        skip:
          "no S3 server: set AWS_ENDPOINT_URL and CAIRN_S3_BUCKET, or CAIRN_S3=1 to start Ceph RGW with scripts/rgw_start.sh",
      };
    }
    const script = fileURLToPath(
      new URL("../scripts/rgw_start.sh", import.meta.url),
    );
    let out: string;
    try {
      out = execFileSync("bash", [script], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      });
    } catch (error) {
      throw new Error(
        `CAIRN_S3=1 but scripts/rgw_start.sh could not start Ceph RGW: ${
          (error as Error).message
        }`,
      );
    }
    // Into process.env too, as `eval "$(scripts/rgw_start.sh)"` would do, so
    // a store opened in-process by URL alone finds the server.
    for (const m of out.matchAll(/^export (\w+)=(.*)$/gm)) {
      env[m[1]!] = m[2]!;
      process.env[m[1]!] = m[2]!;
    }
  }
  const picked: Record<string, string> = {};
  for (
    const k of [
      "AWS_ENDPOINT_URL",
      "AWS_REGION",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "CAIRN_S3_BUCKET",
    ]
  ) if (env[k]) picked[k] = env[k]!;
  return { env: picked, bucket: env.CAIRN_S3_BUCKET! };
}

/** The S3 server the tests use (detected once). */
export const s3: S3Env = detect();
if (s3.skip !== undefined) console.warn(`S3 tests skipped: ${s3.skip}`);

let bucketReady: Promise<void> | undefined;

/** A fresh store URL under a unique prefix, the bucket created if needed. */
export async function freshS3Url(label = "t"): Promise<string> {
  if (s3.env === undefined) throw new Error(`No S3 server: ${s3.skip}`);
  const url = `s3://${s3.bucket}/${label}-${crypto.randomUUID().slice(0, 8)}`;
  bucketReady ??= createS3Client(parseS3Url(url, s3.env)).createBucket();
  await bucketReady;
  return url;
}

/** A raw client on a store URL, for tests that damage objects. */
export function rawClient(url: string): S3Client {
  return createS3Client(parseS3Url(url, s3.env));
}
