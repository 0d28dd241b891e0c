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
# Stdout: one JSON line {"installed":[..],"alreadyPresent":[..]}
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

installed=""
present=""
for u in "$@"; do
  if [ -e "$PTM_DATA/$u" ]; then
    present="$present $u"
    log "$u already present in $PTM_DATA, left alone"
    continue
  fi
  # Only ever mv onto a name that does not exist: then mv is a rename. (Onto
  # an existing dir, mv would move the block INTO it, so never do that.)
  mv "$STAGING/$u" "$PTM_DATA/$u"
  installed="$installed $u"
  log "installed $u"
done

# shellcheck disable=SC2086 # word splitting of the ULID lists is intended
printf '{"installed":%s,"alreadyPresent":%s}\n' "$(json_list $installed)" "$(json_list $present)"
