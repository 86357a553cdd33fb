#!/usr/bin/env bash
# Start a throwaway Ceph RGW (S3) on 127.0.0.1 for cairn's S3 tests and
# benchmarks: one monitor, one OSD on memstore (RAM only), one radosgw, a test
# user and a bucket. Everything lives in $CAIRN_RGW_DIR (default
# /tmp/cairn-rgw); scripts/rgw_stop.sh removes it. Installs the Debian packages
# radosgw, ceph-mon and ceph-osd with apt when they are missing (needs root).
#
# Prints the environment to use, e.g.:
#   eval "$(scripts/rgw_start.sh)"
#   AWS_ENDPOINT_URL=http://127.0.0.1:7480 AWS_REGION=us-east-1 ... CAIRN_S3_BUCKET=cairn-test
set -euo pipefail
DIR="${CAIRN_RGW_DIR:-/tmp/cairn-rgw}"
RGW_PORT="${CAIRN_RGW_PORT:-7480}"
MON_PORT="${CAIRN_RGW_MON_PORT:-6789}"
ACCESS_KEY="${CAIRN_RGW_ACCESS_KEY:-cairntestaccesskey}"
SECRET_KEY="${CAIRN_RGW_SECRET_KEY:-cairntestsecretkey0123456789}"
BUCKET="${CAIRN_S3_BUCKET:-cairn-test}"
log() { printf 'rgw_start: %s\n' "$*" >&2; }
# Says why, shows the end of each daemon's log, stops what did start.
start_failed() {
  log "$1; the end of each daemon log in $DIR/log follows"
  tail -n 15 "$DIR"/log/*.log >&2 2>/dev/null || true
  bash "$(dirname "$0")/rgw_stop.sh"
  exit 1
}

# Test files run in parallel may all start it at once, and two apt-get runs
# would fight over dpkg's lock: one at a time, from the install on.
mkdir -p "$(dirname "$DIR")"
exec 9>"${DIR%/}.lock"
flock 9

if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v curl >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "radosgw, ceph-mon, ceph-osd or curl is not installed; run as root, or: apt-get install radosgw ceph-mon ceph-osd curl"
    exit 1
  fi
  log "installing radosgw ceph-mon ceph-osd curl with apt"
  installed=""
  for attempt in 1 2 3; do
    if (apt-get -o DPkg::Lock::Timeout=300 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq radosgw ceph-mon ceph-osd curl) >&2; then
      installed=1
      break
    fi
    log "apt-get failed (attempt $attempt of 3)"
    sleep 5
  done
  [ -n "$installed" ] || { log "could not install radosgw ceph-mon ceph-osd curl with apt"; exit 1; }
fi

if [ -f "$DIR/ready" ] && curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$RGW_PORT/"; then
  log "already running in $DIR"
else
  # No live server: what is left of an earlier one (its daemons killed when a
  # session or machine ended, or a start that failed half-way) goes first;
  # rgw_stop.sh waits for those daemons to exit, so their ports are free.
  bash "$(dirname "$0")/rgw_stop.sh"
  rm -rf "$DIR"
  trap 'start_failed "a command failed (line $LINENO)"' ERR
  mkdir -p "$DIR/run" "$DIR/log" "$DIR/mon" "$DIR/osd0"
  FSID="$(cat /proc/sys/kernel/random/uuid)"
  CONF="$DIR/ceph.conf"
  cat >"$CONF" <<CONF
[global]
fsid = $FSID
# v1: a mon port other than 6789 would otherwise be dialled with msgr2.
mon host = [v1:127.0.0.1:$MON_PORT]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
public addr = 127.0.0.1
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
mon allow pool size one = true
mon allow pool delete = true
# A client that cannot reach the mon fails within a minute, not after five.
client mount timeout = 60
rgw init timeout = 120
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = 2147483648
osd data = $DIR/osd\$id
mon data = $DIR/mon
osd crush chooseleaf type = 0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw dns name = localhost
rgw enable usage log = false
CONF
  monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null
  # The daemons must not inherit the start lock (fd 9), or every later start
  # would wait for them to exit.
  ceph-mon -c "$CONF" -i a 2>/dev/null 9>&-
  # Register the OSD first, then make its store under the same uuid (the
  # documented manual order). A mon that has just started can refuse commands
  # for a moment ("EPERM: problem getting command descriptions"); registering
  # the same uuid again is harmless.
  OSD_UUID="$(cat /proc/sys/kernel/random/uuid)"
  for attempt in $(seq 1 20); do
    ceph -c "$CONF" --connect-timeout 20 osd new "$OSD_UUID" 0 >/dev/null 2>"$DIR/log/osd_new.err" && break
    [ "$attempt" = 20 ] && start_failed "ceph osd new failed 20 times: $(cat "$DIR/log/osd_new.err")"
    sleep 1
  done
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >/dev/null 2>&1
  # ceph-osd can lose a start-up race with its own mon client and send a
  # command before it knows the cluster's fsid ("wrong fsid"); it then exits,
  # and a second start works.
  for attempt in $(seq 1 5); do
    ceph-osd -c "$CONF" -i 0 2>/dev/null 9>&- && break
    [ "$attempt" = 5 ] && start_failed "ceph-osd failed to start 5 times"
    log "ceph-osd did not start (attempt $attempt of 5); again"
    sleep 1
  done
  radosgw -c "$CONF" -n client.rgw 2>/dev/null 9>&-
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"; then break; fi
    sleep 0.5
  done
  curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" ||
    start_failed "radosgw did not answer on 127.0.0.1:$RGW_PORT"
  radosgw-admin -c "$CONF" user create --uid=cairn --display-name=cairn \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  touch "$DIR/ready"
  log "RGW is up on 127.0.0.1:$RGW_PORT (data in RAM, files in $DIR)"
fi
cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export CAIRN_S3_BUCKET=$BUCKET
ENV
