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

if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v curl >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "radosgw, ceph-mon, ceph-osd or curl is not installed; run as root, or: apt-get install radosgw ceph-mon ceph-osd curl"
    exit 1
  fi
  log "installing radosgw ceph-mon ceph-osd curl with apt"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq radosgw ceph-mon ceph-osd curl) >&2
fi

# Test files run in parallel may all start it at once: one at a time.
exec 9>"${DIR%/}.lock"
flock 9

if [ -f "$DIR/ready" ] && curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$RGW_PORT/"; then
  log "already running in $DIR"
else
  # A ready marker without a live server: its daemons were killed (a session
  # or machine ended). Clear what is left and start afresh.
  for pid in "$DIR"/run/*.pid; do
    [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null
  done
  rm -rf "$DIR"
  mkdir -p "$DIR/run" "$DIR/log" "$DIR/mon" "$DIR/osd0"
  FSID="$(cat /proc/sys/kernel/random/uuid)"
  CONF="$DIR/ceph.conf"
  cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon host = 127.0.0.1:$MON_PORT
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
  monmaptool --create --add a "127.0.0.1:$MON_PORT" --fsid "$FSID" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null
  # The daemons must not inherit the start lock (fd 9), or every later start
  # would wait for them to exit.
  ceph-mon -c "$CONF" -i a 2>/dev/null 9>&-
  # Register the OSD under the uuid its object store was made with.
  ceph-osd -c "$CONF" -i 0 --mkfs >/dev/null 2>&1
  ceph -c "$CONF" --connect-timeout 20 osd new "$(cat "$DIR/osd0/fsid")" 0 >/dev/null
  ceph-osd -c "$CONF" -i 0 2>/dev/null 9>&-
  radosgw -c "$CONF" -n client.rgw 2>/dev/null 9>&-
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"; then break; fi
    sleep 0.5
  done
  curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" || { log "radosgw did not answer on 127.0.0.1:$RGW_PORT; see $DIR/log"; exit 1; }
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
