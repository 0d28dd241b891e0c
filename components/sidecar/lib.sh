#!/bin/sh
# Functions shared by the sidecar scripts. The program sends this file and then the script
# in one `sh -c` (components/cluster/kubectl.ts sidecarScript), so every script can use them.
# shellcheck disable=SC2034 # sourced: the functions are used by the scripts that follow

# The pod is stopping (deleted, evicted, restarted): its main process (idle.sh) passes the
# SIGTERM on to the step running in the container. Without a word the step's end would show
# only as kubectl's "exit status 137". A script with more to say sets its own trap.
trap 'echo "${0#ptm-}: ERROR: stopped because the pod is shutting down (SIGTERM: deleted, evicted or restarted). What this step finished is kept; run pulumi up again once the pod runs" >&2; exit 143' TERM

# A block dir is named by a ULID (26 chars, Crockford base32); Prometheus ignores
# everything else, and so do we (.tmp dirs, wal, chunks_head, snapshots, staging).
is_ulid() {
  [ "${#1}" -eq 26 ] || return 1
  case "$1" in *[!0123456789ABCDEFGHJKMNPQRSTVWXYZ]*) return 1 ;; esac
  return 0
}

# JSON array of the complete blocks (ULID dir with meta.json) under DIR. With a second
# argument "live", a block that vanishes while it is read (a compaction deleted it) is
# skipped with a note on stderr; otherwise an unreadable block is an error.
# Each entry is the block's meta.json (JSON already: its lines joined, which is safe as JSON
# strings cannot hold raw newlines) with "sizeBytes" (apparent size of all its files: hard
# links count fully, this is what a copy transfers) and "indexFormat" (the index file's
# format version: its first 4 bytes are the magic 0xBAAAD700, the 5th is the version;
# prometheus tsdb/index/index.go: 1 and 2 are read by every 2.x, 3 only by 2.55 and later;
# null when the file is missing, short, or has another magic) added before the final brace.
# Batched, as thousands of blocks are usual (issue 14: six processes per block took 13 s at
# 2,048 blocks, this 2 s): one find + stat for every file's size, one od per block for its
# index header, one awk that reads every meta.json (getline: a file that vanished is a
# failed read, not a fatal error) and writes the list.
blocks_json() {
  if [ ! -d "$1" ]; then printf '[]'; return 0; fi
  # No temporary files: this also runs in a Prometheus container whose root filesystem is
  # read-only (the revert's restart check looks through it when the sidecar can't run).
  (
    cd "$1" || exit 1
    names=$(for d in *; do
      if is_ulid "$d" && [ -f "$d/meta.json" ]; then echo "$d"; fi
    done)
    if [ -z "$names" ]; then printf '[]'; exit 0; fi
    {
      echo "#sizes"
      # shellcheck disable=SC2086 # ULIDs: no spaces, no globs
      find $names -type f -exec stat -c '%s %n' {} + 2>/dev/null || true
      echo "#index"
      for d in $names; do
        printf '%s ' "$d"
        od -An -tu1 -N5 "$d/index" 2>/dev/null || true
        echo
      done
      echo "#names"
      printf '%s\n' "$names"
    } | awk -v live="${2:-}" -v dir="$1" '
      $0 == "#sizes" { sec = 1; next }
      $0 == "#index" { sec = 2; next }
      $0 == "#names" { sec = 3; printf "["; next }
      sec == 1 {
        l = $0; sp = index(l, " "); p = substr(l, sp + 1); b = p; sub(/\/.*/, "", b)
        size[b] += substr(l, 1, sp - 1)
        next
      }
      sec == 2 {
        n = split($0, f, /[ \t]+/)
        if (n == 0 || f[1] == "") next
        if (n >= 6 && f[2] == 186 && f[3] == 170 && f[4] == 215 && f[5] == 0) ix[f[1]] = f[6]
        else if (!(f[1] in ix)) ix[f[1]] = "null"
        next
      }
      sec == 3 {
        d = $0; s = ""; m = d "/meta.json"
        while ((r = (getline l < m)) > 0) s = s l " "
        close(m)
        sub(/[ \t\r]+$/, "", s)
        if (r < 0 || s !~ /^[ \t\r]*\{/ || s !~ /\}$/) {
          if (live == "live") { print "skipped " dir "/" d " (vanished or unreadable meta.json)" > "/dev/stderr"; next }
          print "unreadable block " dir "/" d > "/dev/stderr"; bad = 1; exit 1
        }
        printf "%s%s,\"sizeBytes\":%.0f,\"indexFormat\":%s}", sep, substr(s, 1, length(s) - 1), size[d] + 0, (d in ix ? ix[d] : "null")
        sep = ","
      }
      END { if (!bad) printf "]" }'
  )
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
