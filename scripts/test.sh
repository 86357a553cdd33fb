#!/usr/bin/env bash
# `npm test`: the Deno half (`npm run test:deno`) and the Bun half
# (`npm run test:bun`) run at the same time. Alone, each half keeps about one
# of two cores busy (much of a kill or CLI test is waiting on children, fsyncs
# and locks), so together they finish sooner than one after the other.
#
# The Deno half prints as it runs; the Bun half's output is kept in a temp file
# and printed whole once it is done, so the two never interleave. Exits 1 if
# either half failed, naming it.
set -uo pipefail
cd "$(dirname "$0")/.."
BUN_LOG="$(mktemp)"
DENO_LOG="$(mktemp)"
trap 'rm -f "$BUN_LOG" "$DENO_LOG"' EXIT

# Each half in its own process group, so that Ctrl-C or a CI timeout stops
# it whole: npm, the test runner and the test's child processes.
set -m
npm run --silent test:bun >"$BUN_LOG" 2>&1 &
bun_pid=$!
# A copy of the Deno half's output, to repeat its failures last (CI shows
# only the end of a log).
npm run --silent test:deno > >(tee "$DENO_LOG") 2>&1 &
deno_pid=$!
set +m
trap 'kill -TERM -- "-$deno_pid" "-$bun_pid" 2>/dev/null' INT TERM
wait "$deno_pid"
deno_code=$?
wait "$bun_pid"
bun_code=$?
wait # after a signal, until the Deno half has stopped too

printf '\n=== the Bun half (npm run test:bun) ===\n'
cat "$BUN_LOG"
failed=()
((deno_code == 0)) || failed+=("the Deno half (npm run test:deno) exited $deno_code")
((bun_code == 0)) || failed+=("the Bun half (npm run test:bun) exited $bun_code")
if ((deno_code != 0)); then
  printf '\n=== the end of the Deno half again (it failed) ===\n'
  tail -n 80 "$DENO_LOG"
fi
if ((${#failed[@]} > 0)); then
  printf 'npm test failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
