#!/usr/bin/env bash
# Stop the Ceph RGW that scripts/rgw_start.sh started, and delete its files.
set -uo pipefail
DIR="${CAIRN_RGW_DIR:-/tmp/cairn-rgw}"
[ -d "$DIR/run" ] || exit 0
for pid in "$DIR"/run/*.pid; do
  [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
sleep 1
for pid in "$DIR"/run/*.pid; do
  [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null
done
rm -rf "$DIR"
