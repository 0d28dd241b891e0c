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
#
# Stdout: one JSON line
#   {"blocks":[meta+sizeBytes...],"snapshotBlocks":[...],"buildinfo":{..}|null,
#    "flags":{..}|null,"tsdb":{headStats}|null,"dfAvailableBytes":N,"nowMs":N}
# An unreachable Prometheus is not an error (the API fields are null): the
# volume facts are still useful, and the caller decides what is required.
set -eu

die() { echo "probe: $*" >&2; exit 1; }

# A block dir is named by a ULID (26 chars, Crockford base32); Prometheus
# ignores everything else, and so do we (.tmp dirs, wal, chunks_head, ...).
is_ulid() {
  [ "${#1}" -eq 26 ] || return 1
  case "$1" in *[!0123456789ABCDEFGHJKMNPQRSTVWXYZ]*) return 1 ;; esac
  return 0
}

# Apparent size of all files under a dir (hard links count fully: this is
# what a copy transfers).
dir_size() {
  find "$1" -type f -exec stat -c %s {} + | awk '{ s += $1 } END { printf "%.0f", s }'
}

# meta.json is JSON already: join its lines (JSON strings cannot contain raw
# newlines, so this is safe) and append "sizeBytes" before the final brace.
meta_with_size() {
  awk -v size="$(dir_size "$1")" '
    { s = s $0 " " }
    END {
      sub(/[ \t\r]+$/, "", s)
      if (s !~ /^[ \t\r]*\{/ || s !~ /\}$/) exit 1
      s = substr(s, 1, length(s) - 1)
      printf "%s,\"sizeBytes\":%s}", s, size
    }' "$1/meta.json"
}

# JSON array of the complete blocks (ULID dir with meta.json) under a dir.
blocks_json() {
  sep=""
  printf '['
  if [ -d "$1" ]; then
    for d in "$1"/*; do
      name="${d##*/}"
      is_ulid "$name" || continue
      [ -f "$d/meta.json" ] || continue
      # A block can vanish (compaction deleted it) between the test and
      # the read; skip it instead of failing the probe.
      if m="$(meta_with_size "$d" 2>/dev/null)"; then
        printf '%s%s' "$sep" "$m"
        sep=","
      else
        echo "probe: skipped $d (vanished or unreadable meta.json)" >&2
      fi
    done
  fi
  printf ']'
}

http_get() {
  if command -v wget >/dev/null 2>&1 && wget -qO- "$1" 2>/dev/null; then
    return 0
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 30 "$1" 2>/dev/null
    return
  fi
  return 1
}

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

blocks="$(blocks_json "$PTM_DATA")"
snap="[]"
if [ -n "${PTM_SNAPSHOT:-}" ]; then
  case "$PTM_SNAPSHOT" in */*|*..*) die "PTM_SNAPSHOT must not contain / or .." ;; esac
  snap="$(blocks_json "$PTM_DATA/snapshots/$PTM_SNAPSHOT")"
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
printf '{"blocks":%s,"snapshotBlocks":%s,"buildinfo":%s,"flags":%s,"tsdb":%s,"dfAvailableBytes":%s,"nowMs":%s}\n' \
  "$blocks" "$snap" "$buildinfo" "$flags" "$head" "${df_avail:-0}" "$now_ms"
