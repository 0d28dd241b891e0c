#!/bin/sh
# Target sidecar: remove the staging dir (leftovers of copies that were never
# installed, and the completion markers). Idempotent; never touches blocks
# already installed in $PTM_DATA.
#
# Env: PTM_DATA (required), PTM_STAGING (default $PTM_DATA/ptm-staging).
# Stdout: one JSON line {"removed":[paths]}
set -eu

die() { echo "cleanup-target: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
STAGING="${PTM_STAGING:-$PTM_DATA/ptm-staging}"
STAGING="${STAGING%/}"
name="${STAGING##*/}"
[ -n "$name" ] || die "PTM_STAGING has an empty name"
case "$STAGING" in *..*) die "PTM_STAGING must not contain .." ;; esac
# Refuse paths that are (or contain) the data dir itself.
[ "$STAGING" != "${PTM_DATA%/}" ] || die "PTM_STAGING must not be the data dir"
case "${PTM_DATA%/}/" in "$STAGING"/*) die "PTM_STAGING must not contain the data dir" ;; esac
case "$name" in wal | chunks_head | snapshots | lock | queries.active) die "PTM_STAGING must not be a Prometheus dir ($name)" ;; esac
if [ "${#name}" -eq 26 ]; then
  case "$name" in *[!0123456789ABCDEFGHJKMNPQRSTVWXYZ]*) ;; *) die "PTM_STAGING must not be named like a block (ULID)" ;; esac
fi

removed=""
if [ -e "$STAGING" ]; then
  rm -rf "$STAGING"
  removed="\"$STAGING\""
  echo "cleanup-target: removed $STAGING" >&2
fi
printf '{"removed":[%s]}\n' "$removed"
