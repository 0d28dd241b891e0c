#!/bin/sh
# Read-only probe of a Prometheus and its TSDB volume. Runs in either sidecar
# (or in the Prometheus container itself): needs only sh, find, stat, awk, df
# and wget or curl.
#
# Env:
#   PTM_DATA      TSDB data dir (required)
#   PTM_SNAPSHOT  snapshot name; blocks of $PTM_DATA/snapshots/$PTM_SNAPSHOT
#                 are listed too when it exists
#   PTM_PROM_URL  Prometheus base URL incl. route prefix (default http://localhost:9090)
#   PTM_STACK_ID, PTM_MIGRATION_ID  this migration, in the source sidecar: who made the
#                 snapshot (snapshotOwner: none|ours|earlier|other, lib.sh)
#
# Stdout: one JSON line
#   {"blocks":[meta+sizeBytes...],"snapshotBlocks":[...],"snapshotOwner":none|ours|earlier|other,
#    "buildinfo":{..}|null,
#    "flags":{..}|null,"tsdb":{headStats}|null,"dfAvailableBytes":N,"nowMs":N}
# An unreachable Prometheus is not an error (the API fields are null): the
# volume facts are still useful, and the caller decides what is required.
# Uses lib.sh, which the program sends ahead of this script.
set -eu

die() { echo "probe: $*" >&2; exit 1; }

# The "data" member of a Prometheus API answer, or "null".
api_data() {
  body="$(http_get "$PROM_URL$1")" || { echo "probe: GET $1 failed" >&2; echo null; return 0; }
  out="$(printf '%s\n' "$body" | sed -n 's/^{"status":"success","data":\(.*\)}[[:space:]]*$/\1/p')"
  if [ -n "$out" ]; then printf '%s' "$out"; else echo "probe: unexpected answer from $1" >&2; echo null; fi
}

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
PROM_URL="${PTM_PROM_URL:-http://localhost:9090}"
PROM_URL="${PROM_URL%/}"

blocks="$(blocks_json "$PTM_DATA" live)"
snap="[]"
snap_owner=none
if [ -n "${PTM_SNAPSHOT:-}" ]; then
  case "$PTM_SNAPSHOT" in */*|*..*) die "PTM_SNAPSHOT must not contain / or .." ;; esac
  snap="$(blocks_json "$PTM_DATA/snapshots/$PTM_SNAPSHOT" live)"
  snap_owner=$(snapshot_owner_state "$PTM_DATA/snapshots/$PTM_SNAPSHOT")
fi
buildinfo="$(api_data /api/v1/status/buildinfo)"
flags="$(api_data /api/v1/status/flags)"
tsdb="$(api_data /api/v1/status/tsdb)"
# headStats holds no nested objects, so a non-greedy [^{}] match is exact.
head="$(printf '%s\n' "$tsdb" | sed -n 's/.*"headStats":\({[^{}]*}\).*/\1/p')"
[ -n "$head" ] || head=null
df_avail="$(df -Pk "$PTM_DATA" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')"
now_ms="$(date +%s)000"

echo "probe: $(printf '%s' "$blocks" | grep -o '"sizeBytes"' | wc -l | tr -d ' ') blocks in $PTM_DATA" >&2
printf '{"blocks":%s,"snapshotBlocks":%s,"snapshotOwner":"%s","buildinfo":%s,"flags":%s,"tsdb":%s,"dfAvailableBytes":%s,"nowMs":%s}\n' \
  "$blocks" "$snap" "$snap_owner" "$buildinfo" "$flags" "$head" "${df_avail:-0}" "$now_ms"
