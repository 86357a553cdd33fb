// Runs inside a node:worker_threads Worker: imports the mapped function's
// module, reports the function's source, then answers calls.
import { parentPort, workerData } from "node:worker_threads";

interface Call {
  id: number;
  args: unknown[];
}

const port = parentPort!;
const { module, export: exportName } = workerData as {
  module: string;
  export: string;
};

function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}

let fn: ((...args: unknown[]) => unknown) | undefined;
try {
  const mod = await import(module) as Record<string, unknown>;
  const candidate = mod[exportName];
  if (typeof candidate !== "function") {
    port.postMessage({
      type: "fatal",
      message: `module "${module}" has no function export "${exportName}"${
        candidate === undefined ? "" : ` (it is a ${typeof candidate})`
      }`,
    });
  } else {
    fn = candidate as (...args: unknown[]) => unknown;
    port.postMessage({ type: "ready", source: fn.toString() });
  }
} catch (error) {
  port.postMessage({
    type: "fatal",
    message: `importing module "${module}" failed: ${describe(error).message}`,
  });
}

port.on("message", async (call: Call) => {
  if (fn === undefined) return;
  let reply;
  try {
    reply = { id: call.id, ok: true, value: await fn(...call.args) };
  } catch (error) {
    reply = { id: call.id, ok: false, error: describe(error) };
  }
  try {
    port.postMessage(reply);
  } catch (error) {
    port.postMessage({
      id: call.id,
      ok: false,
      error: {
        name: "TypeError",
        message: `the result cannot be sent back from the Worker (${
          describe(error).message
        })`,
      },
    });
  }
});
