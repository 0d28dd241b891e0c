#!/bin/sh
# Target sidecar: copy the given blocks from the source's rsync daemon into a
# staging dir on the target volume. Resumable; never touches $PTM_DATA/<ULID>.
#
#   sh -s -- ULID... < copy.sh
#
# Env:
#   PTM_DATA               target TSDB data dir (required)
#   PTM_RSYNC_URL          rsync://user@host:port/tsdb/snapshots/<name> (required)
#   RSYNC_PASSWORD         rsync daemon password (required; read by rsync itself)
#   PTM_STAGING            staging dir, same filesystem as PTM_DATA
#                          (default $PTM_DATA/ptm-staging; must not be a ULID)
#   PTM_BWLIMIT            rsync --bwlimit value, e.g. 50m (default: none)
#   PTM_FREE_MARGIN_BYTES  free space to keep besides the blocks
#                          (default 64 MiB + 10% of the bytes to copy; the
#                          target keeps writing WAL and compacting)
#   PTM_PROGRESS_SECONDS   min seconds between progress lines (default 10)
#
# Layout: $PTM_STAGING/<ULID>/ is a block being (or done being) copied;
# $PTM_STAGING/.complete/<ULID> marks a verified block. Markers live outside
# the block dir so a block dir never holds foreign files.
#
# Stdout: one JSON line
#   {"copied":[..],"skipped":[..],"bytesCopied":N,"bytesReceived":N,"bytesTotal":N}
# or, when refused for lack of space (exit 3):
#   {"error":"insufficient-space","needBytes":N,"marginBytes":N,"availableBytes":N}
set -eu

log() { echo "copy: $*" >&2; }
die() { echo "copy: ERROR: $*" >&2; exit 1; }

is_ulid() {
  [ "${#1}" -eq 26 ] || return 1
  case "$1" in *[!0123456789ABCDEFGHJKMNPQRSTVWXYZ]*) return 1 ;; esac
  return 0
}

human() {
  awk -v b="$1" 'BEGIN {
    split("B KiB MiB GiB TiB", u, " "); i = 1
    while (b >= 1024 && i < 5) { b /= 1024; i++ }
    if (i == 1) printf "%d B", b; else printf "%.1f %s", b, u[i]
  }'
}

json_list() { # words -> ["a","b"]
  out=""
  for w in "$@"; do out="$out${out:+,}\"$w\""; done
  printf '[%s]' "$out"
}

# Sizes of the files of one block, "relative/path size" sorted, from the
# daemon listing (expected) or from the staged copy (actual).
expected_files() {
  awk -v p="$1/" 'index($2, p) == 1 { print substr($2, length(p) + 1), $1 }' "$work/list" | sort
}
actual_files() {
  (cd "$STAGING/$1" && find . -type f ! -path '*/.rsync-partial/*' -exec stat -c '%n %s' {} +) |
    sed 's#^\./##' | sort
}

# First "ulid" member of meta.json: Prometheus writes the block's own ULID
# first (parents/sources come later).
meta_ulid() {
  awk '{ s = s $0 " " } END {
    if (match(s, /"ulid"[ \t]*:[ \t]*"[0-9A-Z]+"/)) {
      t = substr(s, RSTART, RLENGTH); sub(/^.*:[ \t]*"/, "", t); sub(/"$/, "", t); print t
    }
  }' "$1"
}

verify_block() {
  [ -f "$STAGING/$1/meta.json" ] || { log "$1: meta.json missing"; return 1; }
  got="$(meta_ulid "$STAGING/$1/meta.json")"
  [ "$got" = "$1" ] || { log "$1: meta.json names ULID '$got'"; return 1; }
  expected_files "$1" >"$work/expected"
  actual_files "$1" >"$work/actual"
  if ! cmp -s "$work/expected" "$work/actual"; then
    log "$1: staged files differ from the source listing:"
    diff "$work/expected" "$work/actual" >&2 || true
    return 1
  fi
  # rsync removes its partial dirs when a transfer completes; an empty one
  # may remain after an interrupted run. Anything left inside is an error.
  find "$STAGING/$1" -depth -type d -name .rsync-partial -exec rmdir {} + || return 1
}

# rsync one block with --info=progress2 turned into throttled progress lines
# (Pulumi only shows complete lines) and --stats into $work/stats.
rsync_block() { # ulid size
  rm -f "$work/stats"
  {
    # --delete only acts inside this block's staging dir: it removes the
    # temp files a killed rsync leaves behind (the partial dir is protected).
    if rsync -a --delete --no-h --partial-dir=.rsync-partial --timeout=600 --info=progress2 --stats \
      ${PTM_BWLIMIT:+"--bwlimit=$PTM_BWLIMIT"} "$PTM_RSYNC_URL/$1/" "$STAGING/$1/"; then
      echo 0 >"$work/rc"
    else
      echo "$?" >"$work/rc"
    fi
  } | tr '\r' '\n' | awk -v u="$1" -v size="$2" -v every="${PTM_PROGRESS_SECONDS:-10}" -v stats="$work/stats" '
    function human(b, i, u2) {
      split("B KiB MiB GiB TiB", u2, " "); i = 1
      while (b >= 1024 && i < 5) { b /= 1024; i++ }
      return (i == 1) ? sprintf("%d B", b) : sprintf("%.1f %s", b, u2[i])
    }
    BEGIN { srand(); last = srand() }
    /^Total bytes received:/ { v = $4; gsub(/,/, "", v); print "received " v > stats; next }
    /^Total transferred file size:/ { v = $5; gsub(/,/, "", v); print "transferred " v > stats; next }
    $1 ~ /^[0-9,]+$/ && $2 ~ /%$/ {
      srand(); now = srand()
      if (now - last >= every) {
        last = now; b = $1; gsub(/,/, "", b)
        printf "copy:   %s %s %s of %s at %s\n", u, $2, human(b), human(size), $3
        fflush()
      }
    }' >&2
  rc="$(cat "$work/rc" 2>/dev/null || echo 1)"
  [ "$rc" -eq 0 ] || { log "rsync of $1 failed with exit code $rc"; return 1; }
}

stat_of() { # key -> number from $work/stats (0 when rsync printed none)
  v="$(awk -v k="$1" '$1 == k { print $2 }' "$work/stats" 2>/dev/null | tail -n 1)"
  case "$v" in '' | *[!0-9]*) v=0 ;; esac
  echo "$v"
}

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
[ -n "${PTM_RSYNC_URL:-}" ] || die "PTM_RSYNC_URL is not set"
[ -n "${RSYNC_PASSWORD:-}" ] || die "RSYNC_PASSWORD is not set"
PTM_RSYNC_URL="${PTM_RSYNC_URL%/}"
STAGING="${PTM_STAGING:-$PTM_DATA/ptm-staging}"
STAGING="${STAGING%/}"
if is_ulid "${STAGING##*/}"; then die "PTM_STAGING must not be named like a block (ULID)"; fi
for u in "$@"; do is_ulid "$u" || die "not a block ULID: $u"; done

mkdir -p "$STAGING/.complete"
# Install is a rename, which is only atomic (and only works) on one filesystem.
[ "$(stat -c %d "$STAGING")" = "$(stat -c %d "$PTM_DATA")" ] ||
  die "PTM_STAGING=$STAGING is not on the filesystem of PTM_DATA=$PTM_DATA"

# One copy at a time: a killed `kubectl exec` may leave the previous run
# going inside the container, and two rsyncs into one dir would fight.
lock="$STAGING/.lock"
if ! mkdir "$lock" 2>/dev/null; then
  other="$(cat "$lock/pid" 2>/dev/null || true)"
  if [ -n "$other" ] && kill -0 "$other" 2>/dev/null; then
    die "another copy (pid $other) is still running; wait for it or kill it"
  fi
  log "taking over the lock of a dead copy (pid ${other:-unknown})"
fi
echo "$$" >"$lock/pid"

work="$(mktemp -d "${TMPDIR:-/tmp}/ptm-copy.XXXXXX")"
trap 'rm -rf "$work" "$lock"' EXIT

# One listing of the snapshot gives every file size: the space check and the
# post-copy verification both use it.
log "listing $PTM_RSYNC_URL"
if ! rsync --list-only -r --no-h "$PTM_RSYNC_URL/" >"$work/raw"; then
  die "cannot list the snapshot at $PTM_RSYNC_URL (wrong password, unreachable daemon, or no such snapshot)"
fi
awk '$1 ~ /^-/ { s = $2; gsub(/,/, "", s); print s, $5 }' "$work/raw" >"$work/list"

n=$#
total=0
need=0
for u in "$@"; do
  size="$(awk -v p="$u/" 'index($2, p) == 1 { s += $1; c++ } END { printf "%.0f", s }' "$work/list")"
  [ "$size" -gt 0 ] || die "block $u is not in the snapshot at $PTM_RSYNC_URL"
  total=$((total + size))
  if [ ! -d "$PTM_DATA/$u" ] && [ ! -f "$STAGING/.complete/$u" ]; then
    have=0
    if [ -d "$STAGING/$u" ]; then
      have="$(find "$STAGING/$u" -type f -exec stat -c %s {} + | awk '{ s += $1 } END { printf "%.0f", s }')"
    fi
    [ "$have" -lt "$size" ] || have="$size"
    need=$((need + size - have))
  fi
done

avail="$(df -Pk "$STAGING" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')"
margin="${PTM_FREE_MARGIN_BYTES:-$((67108864 + need / 10))}"
log "$n blocks, $(human "$total") in total, $(human "$need") to copy; $(human "$avail") free on the staging filesystem (margin $(human "$margin"))"
if [ "$need" -gt 0 ] && [ $((need + margin)) -gt "$avail" ]; then
  echo "copy: ERROR: not enough space on the target volume: need $need bytes ($(human "$need")) + margin $margin bytes ($(human "$margin")), available $avail bytes ($(human "$avail")). Nothing was copied." >&2
  printf '{"error":"insufficient-space","needBytes":%s,"marginBytes":%s,"availableBytes":%s}\n' "$need" "$margin" "$avail"
  exit 3
fi

copied=""
skipped=""
bytes_copied=0
bytes_received=0
done_bytes=0
i=0
for u in "$@"; do
  i=$((i + 1))
  size="$(awk -v p="$u/" 'index($2, p) == 1 { s += $1 } END { printf "%.0f", s }' "$work/list")"
  if [ -d "$PTM_DATA/$u" ]; then
    why="already installed"
  elif [ -f "$STAGING/.complete/$u" ] && [ -d "$STAGING/$u" ]; then
    why="already staged"
  else
    why=""
  fi
  if [ -n "$why" ]; then
    skipped="$skipped $u"
    done_bytes=$((done_bytes + size))
    log "block $i/$n $u $(human "$size")  $why"
    continue
  fi
  rm -f "$STAGING/.complete/$u"
  log "block $i/$n $u $(human "$size")  copying"
  rsync_block "$u" "$size" || die "copy of block $u failed; rerun to resume (finished blocks and files are kept)"
  verify_block "$u" || die "verification of block $u failed; remove $STAGING/$u and rerun"
  : >"$STAGING/.complete/$u"
  copied="$copied $u"
  bytes_copied=$((bytes_copied + $(stat_of transferred)))
  bytes_received=$((bytes_received + $(stat_of received)))
  done_bytes=$((done_bytes + size))
  pct=100
  [ "$total" -eq 0 ] || pct=$((done_bytes * 100 / total))
  log "block $i/$n $u $(human "$size")  done $(human "$done_bytes") / $(human "$total") ($pct%)"
done

# shellcheck disable=SC2086 # word splitting of the ULID lists is intended
printf '{"copied":%s,"skipped":%s,"bytesCopied":%s,"bytesReceived":%s,"bytesTotal":%s}\n' \
  "$(json_list $copied)" "$(json_list $skipped)" "$bytes_copied" "$bytes_received" "$total"
