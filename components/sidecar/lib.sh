#!/bin/sh
# Functions shared by the sidecar scripts. The program sends this file and then the script
# in one `sh -c` (components/cluster/kubectl.ts sidecarScript), so every script can use them.
# shellcheck disable=SC2034 # sourced: the functions are used by the scripts that follow

# A block dir is named by a ULID (26 chars, Crockford base32); Prometheus ignores
# everything else, and so do we (.tmp dirs, wal, chunks_head, snapshots, staging).
is_ulid() {
  [ "${#1}" -eq 26 ] || return 1
  case "$1" in *[!0123456789ABCDEFGHJKMNPQRSTVWXYZ]*) return 1 ;; esac
  return 0
}

# Apparent size of all files under a dir (hard links count fully: this is what a copy
# transfers).
dir_size() {
  find "$1" -type f -exec stat -c %s {} + | awk '{ s += $1 } END { printf "%.0f", s }'
}

# The index file's format version: its first 4 bytes are the magic 0xBAAAD700, the 5th is
# the version (prometheus tsdb/index/index.go: 1 and 2 are read by every 2.x, 3 only by
# 2.55 and later). "null" when the file is missing, short, or has another magic.
index_format() {
  [ -f "$1/index" ] || { echo null; return 0; }
  od -An -tu1 -N5 "$1/index" 2>/dev/null | awk '
    { for (i = 1; i <= NF; i++) b[n++] = $i }
    END {
      if (n == 5 && b[0] == 186 && b[1] == 170 && b[2] == 215 && b[3] == 0) print b[4]
      else print "null"
    }'
}

# meta.json is JSON already: join its lines (JSON strings cannot contain raw newlines, so
# this is safe) and append "sizeBytes" and "indexFormat" (index_format) before the final
# brace.
meta_with_size() {
  awk -v size="$(dir_size "$1")" -v ix="$(index_format "$1")" '
    { s = s $0 " " }
    END {
      sub(/[ \t\r]+$/, "", s)
      if (s !~ /^[ \t\r]*\{/ || s !~ /\}$/) exit 1
      s = substr(s, 1, length(s) - 1)
      printf "%s,\"sizeBytes\":%s,\"indexFormat\":%s}", s, size, ix
    }' "$1/meta.json"
}

# JSON array of the complete blocks (ULID dir with meta.json) under DIR. With a second
# argument "live", a block that vanishes while it is read (a compaction deleted it) is
# skipped with a note on stderr; otherwise an unreadable block is an error.
blocks_json() {
  sep=""
  printf '['
  if [ -d "$1" ]; then
    for d in "$1"/*; do
      name="${d##*/}"
      is_ulid "$name" || continue
      [ -f "$d/meta.json" ] || continue
      if m="$(meta_with_size "$d" 2>/dev/null)"; then
        printf '%s%s' "$sep" "$m"
        sep=","
      elif [ "${2:-}" = live ]; then
        echo "skipped $d (vanished or unreadable meta.json)" >&2
      else
        echo "unreadable block $d" >&2
        return 1
      fi
    done
  fi
  printf ']'
}

# JSON array of words (ULIDs, names: nothing that needs escaping): a b -> ["a","b"]
json_list() {
  out=""
  for w in "$@"; do out="$out${out:+,}\"$w\""; done
  printf '[%s]' "$out"
}

# When a process started (clock ticks since boot, /proc/PID/stat field 22); empty when it
# is gone. With its PID it names a process for good: a PID alone is reused.
start_time() { # PID
  [ -r "/proc/$1/stat" ] || return 0
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'
}

# GET a URL with busybox wget, or curl where wget is missing; SECONDS is curl's limit.
http_get() { # URL [SECONDS]
  if command -v wget >/dev/null 2>&1 && wget -qO- "$1" 2>/dev/null; then
    return 0
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time "${2:-30}" "$1" 2>/dev/null
    return
  fi
  return 1
}

# Who made a snapshot dir, against this migration (PTM_STACK_ID: organization/project/stack;
# PTM_MIGRATION_ID: random, made once per migration and gone at its revert; both in the
# source sidecar's environment). The owner file is written by snapshot.sh.
#   none     no such dir
#   ours     made by this migration: the one its plan was gated on (a resume)
#   earlier  made by an earlier attempt of this stack, reverted since: replaced, never reused
#   other    made by another stack, or by something that left no owner file: never touched
snapshot_owner_state() { # DIR
  [ -d "$1" ] || { echo none; return 0; }
  owner=$(sed -n 's/^stack=\([^ ]*\) migration=\([^ ]*\) .*/\1 \2/p' "$1/.ptm-owner" 2>/dev/null | head -n 1)
  case $owner in
  "") echo other ;;
  "${PTM_STACK_ID:-?} ${PTM_MIGRATION_ID:-?}") echo ours ;;
  "${PTM_STACK_ID:-?} "*) echo earlier ;;
  *) echo other ;;
  esac
}

# The owner file's line, or "unknown" (for messages).
snapshot_owner_of() { # DIR
  head -n 1 "$1/.ptm-owner" 2>/dev/null || echo "unknown (no .ptm-owner file)"
}
