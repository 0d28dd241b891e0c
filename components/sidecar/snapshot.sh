#!/bin/sh
# Source sidecar: make (or reuse) the snapshot $PTM_DATA/snapshots/$PTM_SNAPSHOT.
#
# Env:
#   PTM_DATA          TSDB data dir (required; the volume must be writable)
#   PTM_SNAPSHOT      snapshot name (required; no "/" or "..")
#   PTM_INCLUDE_HEAD  "true": ask Prometheus (admin API) for a snapshot with
#                     the in-memory head written as an extra block; otherwise
#                     hard-link the persisted blocks ourselves (no admin API,
#                     no Prometheus flag change, ~0 extra disk)
#   PTM_PROM_URL      Prometheus base URL (default http://localhost:9090)
#   PTM_LINK_RETRIES  attempts when a compaction races the linking (default 5)
#   PTM_SNAPSHOT_SETTLE_SECONDS
#                     after a failed head snapshot request: how long to wait for
#                     Prometheus to finish the snapshot dir it was making before it
#                     is removed (default 300). Only one request is ever sent.
#   PTM_STACK_ID, PTM_MIGRATION_ID
#                     this migration (set in the source sidecar): recorded in the
#                     snapshot's .ptm-owner file with the time. A snapshot of this
#                     migration is reused (a resume); one of an earlier attempt of this
#                     stack is replaced; any other (another stack, no owner file) is
#                     refused, never reused: its blocks were never checked by our plan.
#
# Hard links need the sidecar to run as the uid that owns the block files
# (fs.protected_hardlinks), i.e. the Prometheus uid (1001 for BKPR/bitnami).
#
# Stdout: one JSON line {"snapshot":name,"blockCount":N,"bytes":N,"createdMs":N,"reused":bool};
# the blocks themselves: snapshot-blocks.sh.
# Uses lib.sh, which the program sends ahead of this script.
set -eu

log() { echo "snapshot: $*" >&2; }
die() { echo "snapshot: ERROR: $*" >&2; exit 1; }

# POST with ONE client, chosen before anything is sent. A snapshot request is not idempotent
# (each one writes a new snapshot dir holding a full head block), and a client that fails may
# have sent it already (a read timeout, a lost answer): trying another client then would ask
# for a second snapshot. wget where there is one (busybox), else curl.
http_post_once() {
  if command -v wget >/dev/null 2>&1; then
    wget -qO- --post-data='' "$1" 2>/dev/null
  elif command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 600 -X POST "$1" 2>/dev/null
  else
    return 1
  fi
}

# A name as Prometheus gives a snapshot dir (tsdb/db.go: UTC time, "-", 16 hex digits).
is_prom_snapshot_name() {
  [ "${#1}" -eq 33 ] || return 1
  case "$1" in
  [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*) ;;
  *) return 1 ;;
  esac
  case "${1#*Z-}" in *[!0-9a-f]*) return 1 ;; esac
}

# Snapshot dirs our request may have made: named as Prometheus names them, absent from the
# listing taken before the request ($before), and the one the answer named when there was one
# ($name). Never this migration's snapshot ($PTM_SNAPSHOT: not a Prometheus name).
request_snapshots() {
  for d in "$snapdir"/*; do
    n="${d##*/}"
    if ! is_prom_snapshot_name "$n" || [ ! -d "$d" ]; then continue; fi
    [ -z "$name" ] || [ "$n" = "$name" ] || continue
    printf '%s\n' "$before" | grep -qxF -- "$n" && continue
    echo "$n"
  done
}

# A failed head snapshot request leaves a snapshot dir with a full head block on the source
# volume; repeated runs would fill it. Remove it, once Prometheus is done with it: a client that
# gave up does not stop the server, which would otherwise write into (and recreate) a removed
# dir. Done means no *.tmp-for-creation left (the head block is written under that name, then
# renamed) and nothing changed for a second; after PTM_SNAPSHOT_SETTLE_SECONDS (default 300)
# it is removed anyway.
discard_request_snapshots() {
  deadline=$(($(date +%s) + ${PTM_SNAPSHOT_SETTLE_SECONDS:-300}))
  last="-"
  while :; do
    # (|| true: this also runs from the EXIT trap under set -e.)
    new="$(request_snapshots)" || true
    # shellcheck disable=SC2086 # Prometheus snapshot names: no spaces, no globs
    state="$new $(cd "$snapdir" && [ -n "$new" ] && find $new -exec stat -c '%s %n' {} + 2>/dev/null)" || true
    # shellcheck disable=SC2086
    busy="$(cd "$snapdir" && [ -n "$new" ] && find $new -name '*.tmp-for-creation' 2>/dev/null | head -n 1)" || true
    if [ "$state" = "$last" ] && [ -z "$busy" ] || [ "$(date +%s)" -ge "$deadline" ]; then
      [ -n "$new" ] || return 0
      for n in $new; do
        rm -rf "${snapdir:?}/$n" && log "removed $snapdir/$n, the snapshot our failed request made"
      done
      [ "$(date +%s)" -lt "$deadline" ] || return 0
      last="-"
    else
      last="$state"
    fi
    sleep 1
  done
}

on_exit() {
  rc=$?
  [ "$pending" != true ] || discard_request_snapshots
  exit "$rc"
}

# Hard-link every complete block into $tmp. Fails (non-zero) when a block
# disappears or changes half-way, which is what a concurrent compaction (or
# retention) deleting a block looks like; the caller then starts over.
link_blocks() {
  rm -rf "$tmp" || return 1
  mkdir "$tmp" || return 1
  for d in "$PTM_DATA"/*; do
    name="${d##*/}"
    is_ulid "$name" || continue
    [ -f "$d/meta.json" ] || continue
    cp -al "$d" "$tmp/$name" || return 1
    [ -f "$tmp/$name/meta.json" ] && [ -f "$tmp/$name/index" ] || return 1
    # Still there after linking? If not, it was being deleted while we
    # linked and the copy may be missing files.
    [ -f "$d/meta.json" ] || return 1
  done
}

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
[ -n "${PTM_SNAPSHOT:-}" ] || die "PTM_SNAPSHOT is not set"
case "$PTM_SNAPSHOT" in */*|*..*|.*) die "PTM_SNAPSHOT must not contain / or .. nor start with ." ;; esac
PROM_URL="${PTM_PROM_URL:-http://localhost:9090}"
PROM_URL="${PROM_URL%/}"

snapdir="$PTM_DATA/snapshots"
final="$snapdir/$PTM_SNAPSHOT"
tmp="$final.tmp"
created_file="$final/.ptm-created-ms"
reused=false
if [ -z "${PTM_STACK_ID:-}" ] || [ -z "${PTM_MIGRATION_ID:-}" ]; then
  die "PTM_STACK_ID and PTM_MIGRATION_ID are not set (the source sidecar of an older version of this program? run pulumi up with phase prepare first)"
fi
owner="stack=$PTM_STACK_ID migration=$PTM_MIGRATION_ID"

case $(snapshot_owner_state "$final") in
earlier)
  log "replacing $final: it was made by an earlier attempt of this stack ($(snapshot_owner_of "$final")), not by this migration"
  rm -rf "$final"
  ;;
other)
  die "$final exists but was not made by this migration (made by: $(snapshot_owner_of "$final")); it is not reused. If nothing uses it any more, remove it (kubectl exec into the source's ptm-rsyncd container: rm -rf $final) and run pulumi up again"
  ;;
esac

if [ -d "$final" ]; then
  # Resume: a snapshot is immutable, keep the one the plan was made from.
  reused=true
  log "reusing snapshot $final of this migration"
elif [ "${PTM_INCLUDE_HEAD:-false}" = true ]; then
  mkdir -p "$snapdir"
  # From here until the rename, any failure (or signal) removes what the request made.
  before="$(ls -A "$snapdir")"
  name=""
  pending=true
  trap on_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  log "POST $PROM_URL/api/v1/admin/tsdb/snapshot?skip_head=false"
  body="$(http_post_once "$PROM_URL/api/v1/admin/tsdb/snapshot?skip_head=false")" ||
    die "snapshot API call failed (is --web.enable-admin-api set? is $PROM_URL reachable?)"
  name="$(printf '%s\n' "$body" | sed -n 's/.*"name":"\([^"/]*\)".*/\1/p')"
  [ -n "$name" ] || die "unexpected snapshot API answer: $body"
  case "$name" in *..*) die "unexpected snapshot name $name" ;; esac
  [ -d "$snapdir/$name" ] || die "Prometheus reported snapshot $name but $snapdir/$name does not exist (different PTM_DATA?)"
  date +%s000 >"$snapdir/$name/.ptm-created-ms"
  echo "$owner created=$(date +%s000)" >"$snapdir/$name/.ptm-owner"
  mv "$snapdir/$name" "$final"
  pending=false
  log "snapshot $name (with head) renamed to $PTM_SNAPSHOT"
else
  mkdir -p "$snapdir"
  retries="${PTM_LINK_RETRIES:-5}"
  attempt=1
  until link_blocks; do
    rm -rf "$tmp"
    [ "$attempt" -lt "$retries" ] ||
      die "could not hard-link a stable set of blocks after $attempt attempts (compaction running? uid allowed to link? fs.protected_hardlinks)"
    log "the block set changed while linking (attempt $attempt); retrying"
    attempt=$((attempt + 1))
    sleep 2
  done
  date +%s000 >"$tmp/.ptm-created-ms"
  echo "$owner created=$(date +%s000)" >"$tmp/.ptm-owner"
  mv "$tmp" "$final"
  log "hard-linked snapshot $final"
fi

created="$(cat "$created_file" 2>/dev/null || true)"
case "$created" in '' | *[!0-9]*) created="$(date +%s000)" ;; esac
# A summary, not the listing: this line is kept in the Pulumi state, which must not grow with
# the number of blocks (issue 14). The program reads the blocks with snapshot-blocks.sh and
# checks them against this count and these bytes. blocks_json also proves every meta.json
# readable (it fails on one that is not).
blocks="$(blocks_json "$final")"
summary="$(printf '%s' "$blocks" | grep -o '"sizeBytes":[0-9]*' | awk -F: '{ n++; s += $2 } END { printf "%d %.0f", n, s }')"
count="${summary% *}"
bytes="${summary#* }"
log "$count blocks in snapshot ($bytes bytes)"
printf '{"snapshot":"%s","blockCount":%s,"bytes":%s,"createdMs":%s,"reused":%s}\n' "$PTM_SNAPSHOT" "$count" "$bytes" "$created" "$reused"
