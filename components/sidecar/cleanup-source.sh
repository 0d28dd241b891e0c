#!/bin/sh
# Source sidecar: remove our snapshot (and a half-made .tmp of it). Idempotent.
# Removing hard links frees nothing that Prometheus still uses: its own block
# dirs keep their links.
#
# Env: PTM_DATA, PTM_SNAPSHOT (both required).
# Stdout: one JSON line {"removed":[paths]}
set -eu

die() { echo "cleanup-source: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -n "${PTM_SNAPSHOT:-}" ] || die "PTM_SNAPSHOT is not set"
case "$PTM_SNAPSHOT" in */*|*..*|.*) die "PTM_SNAPSHOT must not contain / or .. nor start with ." ;; esac

removed=""
for p in "$PTM_DATA/snapshots/$PTM_SNAPSHOT" "$PTM_DATA/snapshots/$PTM_SNAPSHOT.tmp"; do
  if [ -e "$p" ]; then
    rm -rf "$p"
    removed="$removed${removed:+,}\"$p\""
    echo "cleanup-source: removed $p" >&2
  fi
done
printf '{"removed":[%s]}\n' "$removed"
