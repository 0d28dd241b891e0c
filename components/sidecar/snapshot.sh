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

http_post() {
  if command -v wget >/dev/null 2>&1 && wget -qO- --post-data='' "$1" 2>/dev/null; then
    return 0
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 600 -X POST "$1" 2>/dev/null
    return
  fi
  return 1
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
  log "POST $PROM_URL/api/v1/admin/tsdb/snapshot?skip_head=false"
  body="$(http_post "$PROM_URL/api/v1/admin/tsdb/snapshot?skip_head=false")" ||
    die "snapshot API call failed (is --web.enable-admin-api set? is $PROM_URL reachable?)"
  name="$(printf '%s\n' "$body" | sed -n 's/.*"name":"\([^"/]*\)".*/\1/p')"
  [ -n "$name" ] || die "unexpected snapshot API answer: $body"
  case "$name" in *..*) die "unexpected snapshot name $name" ;; esac
  [ -d "$snapdir/$name" ] || die "Prometheus reported snapshot $name but $snapdir/$name does not exist (different PTM_DATA?)"
  date +%s000 >"$snapdir/$name/.ptm-created-ms"
  echo "$owner created=$(date +%s000)" >"$snapdir/$name/.ptm-owner"
  mv "$snapdir/$name" "$final"
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
