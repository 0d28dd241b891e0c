#!/bin/sh
# Source sidecar: wait until the source has compacted its head past a time, so that the
# snapshot taken next holds a block that reaches it and the gap shrinks.
#
#   sh -c "$PTM_SCRIPT" ptm-wait-compaction   (PTM_SCRIPT = lib.sh + wait-compaction.sh)
#
# Env:
#   PTM_DATA           TSDB data dir (required)
#   PTM_AFTER_MS       wait for a complete block whose maxTime >= this (ms; 0 = don't wait)
#   PTM_WAIT_SECONDS   give up after this long (default 3600)
#   PTM_POLL_SECONDS   seconds between looks (default 30)
#
# Stdout: one JSON line {"waitedSeconds":N,"newestMaxTime":N}
set -eu

die() { echo "wait-compaction: ERROR: $*" >&2; exit 1; }
[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
after=${PTM_AFTER_MS:-0}
limit=${PTM_WAIT_SECONDS:-3600}
poll=${PTM_POLL_SECONDS:-30}

# The largest maxTime among complete blocks (ULID dirs with a meta.json).
newest() {
  for m in "$PTM_DATA"/*/meta.json; do
    [ -f "$m" ] || continue
    sed -n 's/.*"maxTime"[^0-9-]*\(-\{0,1\}[0-9][0-9]*\).*/\1/p' "$m" | head -n 1
  done | sort -n | tail -n 1
}

start=$(date +%s)
while :; do
  n=$(newest)
  n=${n:-0}
  waited=$(( $(date +%s) - start ))
  if [ "$n" -ge "$after" ]; then
    echo "{\"waitedSeconds\":$waited,\"newestMaxTime\":$n}"
    exit 0
  fi
  [ "$waited" -lt "$limit" ] || die "no block reaching $after after ${waited}s (newest ends at $n)"
  echo "wait-compaction: waiting for the source to compact past $after (newest block ends at $n, ${waited}s so far)" >&2
  sleep "$poll"
done
