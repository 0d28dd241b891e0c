#!/bin/sh
# Source sidecar, read-only: the blocks of this migration's snapshot, as the program reads them
# right after snapshot.sh and on every later `pulumi up`. snapshot.sh prints only a summary
# (count and bytes), because a Command's output is kept in the Pulumi state and a listing of
# thousands of meta.json would grow it past 1 MiB (issue 14); the program checks this listing
# against that summary and against the owner record.
#
# Env:
#   PTM_DATA      TSDB data dir (required)
#   PTM_SNAPSHOT  snapshot name under $PTM_DATA/snapshots (required)
#   PTM_STACK_ID, PTM_MIGRATION_ID  this migration, in the source sidecar (lib.sh
#                 snapshot_owner_state)
#
# Stdout: one JSON line {"blocks":[meta+sizeBytes+indexFormat...],"owner":none|ours|earlier|other}
# Uses lib.sh, which the program sends ahead of this script.
set -eu

die() { echo "snapshot-blocks: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -n "${PTM_SNAPSHOT:-}" ] || die "PTM_SNAPSHOT is not set"
case "$PTM_SNAPSHOT" in */*|*..*|.*) die "PTM_SNAPSHOT must not contain / or .. nor start with ." ;; esac
dir="$PTM_DATA/snapshots/$PTM_SNAPSHOT"
[ -d "$dir" ] || die "there is no snapshot $dir"
# Not "live": a snapshot never changes, so an unreadable block is an error, not a race.
blocks="$(blocks_json "$dir")"
printf '{"blocks":%s,"owner":"%s"}\n' "$blocks" "$(snapshot_owner_state "$dir")"
