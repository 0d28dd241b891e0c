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
# A block can be there under another name: the target's compactor merges the blocks it
# loaded, and the merged block lists every level-1 block it holds in meta.json
# compaction.sources. A re-run of copy and install (prepare then migrate again, a program
# upgrade that re-creates the commands) stages such a block again; renamed in, it would overlap
# the merged one, which a target before 2.39 refuses at every reload and at its next start
# (2.x drops a block only when a loaded one names it as a direct parent). So a staged block
# whose ULID, or every one of whose own sources, is in the sources of blocks already in
# $PTM_DATA is already present "by lineage": it is not installed, and it is removed from
# staging, with a copy of its meta.json kept in $STAGING/.lineage (a re-run of this script
# still knows its sources). One that shares only some of its sources is refused: either way
# some data would be there twice.
#
# Stdout: one JSON line {"installed":N,"alreadyPresent":N,"presentByLineage":N,"lineage":[...]}:
# counts, because a Command's output is kept in the Pulumi state (the blocks are the ones
# named on the command line); alreadyPresent includes presentByLineage; "lineage" names, for
# at most 3 of those, the block and the target block that holds its data ({"block","heldBy"}).
# Uses lib.sh, which the program sends ahead of this script.
set -eu

log() { echo "install: $*" >&2; }
die() { echo "install: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
STAGING="${PTM_STAGING:-$PTM_DATA/ptm-staging}"
STAGING="${STAGING%/}"
for u in "$@"; do is_ulid "$u" || die "not a block ULID: $u"; done

# Lineage of each asked block not installed under its name: "ULID held HOLDER",
# "ULID partial HOLDER" or "ULID none". One awk reads every meta.json once (thousands of
# blocks are usual, issue 14); meta.json is read as blocks_json reads it (getline, lines
# joined), and compaction.sources is the quoted 26-character strings between "sources" and
# the next "]".
lineage="$(
  {
    echo "#data"
    for d in "$PTM_DATA"/*; do
      n="${d##*/}"
      if is_ulid "$n" && [ -f "$d/meta.json" ]; then echo "$n $d/meta.json"; fi
    done
    echo "#asked"
    for u in "$@"; do
      [ ! -e "$PTM_DATA/$u" ] || continue
      if [ -f "$STAGING/$u/meta.json" ]; then echo "$u $STAGING/$u/meta.json"
      elif [ -f "$STAGING/.lineage/$u" ]; then echo "$u $STAGING/.lineage/$u"
      else echo "$u -"; fi
    done
  } | awk '
    function sources(m,   s, l, r, i, n, p, k, out) {
      s = ""
      while ((r = (getline l < m)) > 0) s = s l " "
      close(m)
      i = index(s, "\"sources\"")
      if (i == 0) return ""
      s = substr(s, i + 9)
      s = substr(s, 1, index(s, "]"))
      n = split(s, p, "\"")
      out = ""
      for (k = 2; k <= n; k += 2) if (length(p[k]) == 26) out = out " " p[k]
      return out
    }
    $0 == "#data" { sec = 1; next }
    $0 == "#asked" { sec = 2; next }
    sec == 1 {
      n = split(sources($2), s, " ")
      for (k = 1; k <= n; k++) if (!(s[k] in holder)) holder[s[k]] = $1
      next
    }
    sec == 2 {
      u = $1
      if (u in holder) { print u, "held", holder[u]; next }
      n = ($2 == "-") ? 0 : split(sources($2), s, " ")
      held = 0; first = ""
      for (k = 1; k <= n; k++) if (s[k] in holder) { held++; if (first == "") first = holder[s[k]] }
      if (n > 0 && held == n) print u, "held", first
      else if (held > 0) print u, "partial", first
      else print u, "none", "-"
    }'
)"
# "held HOLDER", "partial HOLDER" or "none -" for one block; no process per block in the
# usual case, where nothing is held.
found="$(printf '%s\n' "$lineage" | awk '$2 != "none"')"
lineage_of() {
  if [ -z "$found" ]; then echo "none -"; return 0; fi
  printf '%s\n' "$found" | awk -v u="$1" '$1 == u { print $2, $3; f = 1; exit } END { if (!f) print "none -" }'
}

# Check every block first so a bad argument installs nothing.
for u in "$@"; do
  [ -e "$PTM_DATA/$u" ] && continue
  case "$(lineage_of "$u")" in
  held\ *) continue ;;
  partial\ *)
    h="$(lineage_of "$u")"
    die "block $u holds data that $PTM_DATA already has in block ${h#* } (some of its compaction.sources are there): installing it would make overlapping blocks. Nothing was installed; leave $u out or remove the block that overlaps it"
    ;;
  esac
  if [ ! -f "$STAGING/.complete/$u" ] || [ ! -f "$STAGING/$u/meta.json" ]; then
    die "block $u is neither installed nor completely staged (run copy first)"
  fi
done

installed=0
present=0
by_lineage=0
examples=""
lineage_json=""
for u in "$@"; do
  if [ -e "$PTM_DATA/$u" ]; then
    present=$((present + 1))
    continue
  fi
  h="$(lineage_of "$u")"
  case "$h" in
  held\ *)
    h="${h#held }"
    present=$((present + 1))
    by_lineage=$((by_lineage + 1))
    if [ -d "$STAGING/$u" ]; then
      mkdir -p "$STAGING/.lineage"
      cp "$STAGING/$u/meta.json" "$STAGING/.lineage/$u"
      rm -rf "${STAGING:?}/$u"
    fi
    rm -f "$STAGING/.complete/$u"
    if [ "$by_lineage" -le 3 ]; then
      examples="$examples${examples:+, }$u: already in $h"
      lineage_json="$lineage_json${lineage_json:+,}{\"block\":\"$u\",\"heldBy\":\"$h\"}"
    fi
    continue
    ;;
  esac
  # Only ever mv onto a name that does not exist: then mv is a rename. (Onto
  # an existing dir, mv would move the block INTO it, so never do that.)
  mv "$STAGING/$u" "$PTM_DATA/$u"
  installed=$((installed + 1))
done
# One line, not one per block: stderr is kept in the Pulumi state too (issue 14).
log "installed $installed blocks into $PTM_DATA; $present were already there, left alone"
[ "$by_lineage" -eq 0 ] ||
  log "$by_lineage of them by lineage (in blocks the target compacted), removed from staging: $examples$([ "$by_lineage" -le 3 ] || echo ", ...")"

printf '{"installed":%s,"alreadyPresent":%s,"presentByLineage":%s,"lineage":[%s]}\n' \
  "$installed" "$present" "$by_lineage" "$lineage_json"
