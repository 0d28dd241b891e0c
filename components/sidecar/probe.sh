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
#    "flags":{..}|null,"tsdb":{headStats}|null,"dfAvailableBytes":N,"nowMs":N,
#    "dataDir":"$PTM_DATA","apiUrl":"$PTM_PROM_URL","apiErrors":{"buildinfo"|"flags"|"tsdb"|"metrics":"why"},
#    "server":{"blocksLoaded":N,"headSeries":N}|null}
# An unreachable Prometheus is not an error here (the API fields are null, and apiErrors says
# why: a TLS or basic-auth web config, nothing listening at the URL...): the volume facts are
# still useful, and the caller decides what is required (decisions/serverAnswers.ts refuses a
# plan without them). "server" is what the server has loaded, from its own /metrics.
# Uses lib.sh, which the program sends ahead of this script.
set -eu

die() { echo "probe: $*" >&2; exit 1; }

# A JSON string of ARG, without control characters.
json_string() {
  printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# GET URL: the body on stdout when it answers; otherwise one line on stdout saying why (what
# wget or curl said: the error, the HTTP status, the start of the body) and status 1. Body
# and error share one capture: no temporary files (a read-only root filesystem). busybox wget
# shows only the status line of an error; curl, when there is one too, shows the body (a TLS
# port's 400 says "Client sent an HTTP request to an HTTPS server").
api_get() { # URL
  ag_why=""
  if command -v wget >/dev/null 2>&1; then
    # No -T: Debian's busybox 1.35 wget crashes with it (exit 139, nothing said).
    if ag_out=$(wget -qO- "$1" 2>&1); then printf '%s' "$ag_out"; return 0; fi
    ag_why=$(printf '%s\n' "$ag_out" | grep -v '^Connecting to' | tail -n 1)
    [ -n "$ag_why" ] || ag_why="wget failed, saying nothing"
  fi
  if command -v curl >/dev/null 2>&1; then
    ag_out=$(curl -sS --max-time 30 -w '\n%{http_code}' "$1" 2>&1) || true
    ag_code=$(printf '%s\n' "$ag_out" | tail -n 1)
    ag_body=$(printf '%s\n' "$ag_out" | sed '$d')
    if [ "$ag_code" = 200 ]; then printf '%s' "$ag_body"; return 0; fi
    case $ag_code in
    000 | "") ag_why=$(printf '%s\n' "$ag_body" | grep '^curl:' | tail -n 1) ;;
    *) ag_why="HTTP $ag_code: $(printf '%s' "$ag_body" | tr '\n' ' ' | cut -c 1-160)" ;;
    esac
    [ -n "$ag_why" ] || ag_why="curl failed, saying nothing"
  fi
  printf '%s' "${ag_why:-neither wget nor curl in this container}"
  return 1
}

API_ERRORS=""
# Notes why the read NAME failed, for "apiErrors".
api_error() { # NAME WHY
  echo "probe: GET $PROM_URL $1 failed: $2" >&2
  API_ERRORS="${API_ERRORS:+$API_ERRORS,}\"$1\":$(json_string "$2")"
}

# Sets $answer to the "data" member of a Prometheus API answer, or to null (noted).
api_data() { # NAME PATH
  if body=$(api_get "$PROM_URL$2"); then
    answer=$(printf '%s\n' "$body" | sed -n 's/^{"status":"success","data":\(.*\)}[[:space:]]*$/\1/p')
    [ -z "$answer" ] || return 0
    body="unexpected answer: $(printf '%s' "$body" | tr '\n' ' ' | cut -c 1-160)"
  fi
  api_error "$1" "$body"
  answer=null
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
api_data buildinfo /api/v1/status/buildinfo
buildinfo=$answer
api_data flags /api/v1/status/flags
flags=$answer
api_data tsdb /api/v1/status/tsdb
tsdb=$answer
# What the server has loaded, by its own count: an empty-looking data dir is taken for an empty
# source only when the server agrees (a wrong PTM_DATA looks empty too).
server=null
if body=$(api_get "$PROM_URL/metrics"); then
  server=$(printf '%s\n' "$body" | awk '
    $1 == "prometheus_tsdb_blocks_loaded" { b = $2 }
    $1 == "prometheus_tsdb_head_series" { h = $2 }
    END { if (b != "" && h != "") printf "{\"blocksLoaded\":%.0f,\"headSeries\":%.0f}", b, h }')
  [ -n "$server" ] || { server=null; api_error metrics "no prometheus_tsdb_blocks_loaded and prometheus_tsdb_head_series in it"; }
else
  api_error metrics "$body"
fi
# headStats holds no nested objects, so a non-greedy [^{}] match is exact.
head="$(printf '%s\n' "$tsdb" | sed -n 's/.*"headStats":\({[^{}]*}\).*/\1/p')"
[ -n "$head" ] || head=null
df_avail="$(df -Pk "$PTM_DATA" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')"
now_ms="$(date +%s)000"

echo "probe: $(printf '%s' "$blocks" | grep -o '"sizeBytes"' | wc -l | tr -d ' ') blocks in $PTM_DATA" >&2
# The new keys come after "tsdb": cluster/lib.sh restart_risk reads the first "tsdb":{.
printf '{"blocks":%s,"snapshotBlocks":%s,"snapshotOwner":"%s","buildinfo":%s,"flags":%s,"tsdb":%s,"dfAvailableBytes":%s,"nowMs":%s,"dataDir":%s,"apiUrl":%s,"apiErrors":{%s},"server":%s}\n' \
  "$blocks" "$snap" "$snap_owner" "$buildinfo" "$flags" "$head" "${df_avail:-0}" "$now_ms" \
  "$(json_string "$PTM_DATA")" "$(json_string "$PROM_URL")" "$API_ERRORS" "$server"
