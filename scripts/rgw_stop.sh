#!/usr/bin/env bash
# Stop the Ceph RGW that scripts/rgw_start.sh started, and delete its files.
# Waits for the daemons to exit (so their ports are free for the next start).
set -uo pipefail
DIR="${CAIRN_RGW_DIR:-/tmp/cairn-rgw}"
[ -d "$DIR/run" ] || exit 0
pids=()
for pid in "$DIR"/run/*.pid; do
  [ -f "$pid" ] && pids+=("$(cat "$pid")")
done
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
for _ in $(seq 1 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.2
done
for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
rm -rf "$DIR"
