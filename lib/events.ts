/**
 * Events a job emits while it runs; the CLI turns them into progress bars,
 * log lines or JSON lines. Library code never prints.
 *
 * @module
 */

/** Any job event. */
export type JobEvent =
  | {
    type: "run-start";
    job: string;
    run: string;
    resumed: boolean;
    done: number;
    total?: number;
  }
  | {
    type: "step-done";
    job: string;
    key: string;
    cached: boolean;
    durationMs: number;
    done: number;
    total?: number;
  }
  | {
    type: "step-failed";
    job: string;
    key: string;
    attempt: number;
    error: string;
    willRetry: boolean;
  }
  | { type: "warning"; job: string; message: string }
  | {
    type: "progress";
    job: string;
    done: number;
    total?: number;
    unit?: string;
  }
  | {
    type: "run-end";
    job: string;
    run: string;
    status: string;
    done: number;
    error?: string;
    summary?: unknown;
  };
