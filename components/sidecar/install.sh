#!/bin/sh
# Target sidecar: move verified staged blocks into the live data dir.
#
#   sh -c "$PTM_SCRIPT" ptm-install ULID...   (PTM_SCRIPT = lib.sh + install.sh)
#
# Env: PTM_DATA (required), PTM_STAGING (default $PTM_DATA/ptm-staging).
#
# Each block arrives with one rename(2) on the same filesystem, so the
# running Prometheus (which reloads its block dirs every minute) sees either
# no block or a complete one, never a half-copied dir that would fail the
# whole reload. Nothing already in $PTM_DATA is ever overwritten or deleted.
#
# Stdout: one JSON line {"installed":N,"alreadyPresent":N}: counts, because a Command's
# output is kept in the Pulumi state (the blocks are the ones named on the command line).
# Uses lib.sh, which the program sends ahead of this script.
set -eu

log() { echo "install: $*" >&2; }
die() { echo "install: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
STAGING="${PTM_STAGING:-$PTM_DATA/ptm-staging}"
STAGING="${STAGING%/}"
for u in "$@"; do is_ulid "$u" || die "not a block ULID: $u"; done

# Check every block first so a bad argument installs nothing.
for u in "$@"; do
  [ -e "$PTM_DATA/$u" ] && continue
  if [ ! -f "$STAGING/.complete/$u" ] || [ ! -f "$STAGING/$u/meta.json" ]; then
    die "block $u is neither installed nor completely staged (run copy first)"
  fi
done

installed=0
present=0
for u in "$@"; do
  if [ -e "$PTM_DATA/$u" ]; then
    present=$((present + 1))
    continue
  fi
  # Only ever mv onto a name that does not exist: then mv is a rename. (Onto
  # an existing dir, mv would move the block INTO it, so never do that.)
  mv "$STAGING/$u" "$PTM_DATA/$u"
  installed=$((installed + 1))
done
# One line, not one per block: stderr is kept in the Pulumi state too (issue 14).
log "installed $installed blocks into $PTM_DATA; $present were already there, left alone"

printf '{"installed":%s,"alreadyPresent":%s}\n' "$installed" "$present"
