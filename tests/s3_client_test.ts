import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createS3Client,
  parseS3Url,
  probeConditionalWrites,
} from "../store/_s3_client.ts";
import { startIgnoringS3 } from "./fixtures/s3_fake.ts";

const credentials = { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s" };

test("parseS3Url() reads s3:// and s3a:// URLs and the AWS variables", () => {
  const where = parseS3Url("s3a://my-bucket/a/b/", {
    ...credentials,
    AWS_ENDPOINT_URL: "http://127.0.0.1:7480/",
    AWS_REGION: "eu-west-1",
  });
  assert.deepEqual(
    [where.bucket, where.prefix, where.endpoint, where.region],
    ["my-bucket", "a/b/", "http://127.0.0.1:7480", "eu-west-1"],
  );
  assert.equal(parseS3Url("s3://bkt", credentials).prefix, "");
  assert.throws(
    () => parseS3Url("s3://bkt/x", {}),
    /set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
  );
  assert.throws(() => parseS3Url("s3://B_ad/x", credentials), /bucket name/);
  assert.throws(() => parseS3Url("gs://x/y", credentials), /s3:\/\/BUCKET/);
});

test("probeConditionalWrites() refuses a server that ignores If-None-Match, naming it", async () => {
  const fake = await startIgnoringS3();
  try {
    const client = createS3Client(
      parseS3Url("s3://bucket/prefix", {
        ...credentials,
        AWS_ENDPOINT_URL: fake.url,
      }),
      { attempts: 1 },
    );
    await assert.rejects(
      probeConditionalWrites(client),
      (error: Error) => {
        assert.match(error.message, /ignores conditional writes/);
        assert.ok(error.message.includes(fake.url));
        return true;
      },
    );
  } finally {
    await fake.close();
  }
});
