#!/usr/bin/env bash
# Generate (once) the scale benchmark's TSDBs, cached by size under /var/cache/ptm.
#
#   PTM_BENCH_ROOT     cache root                     (default /var/cache/ptm)
#   PTM_BENCH_SIZES    sizes in blocks, ascending     (default "128 512 2048")
#   PTM_BENCH_HSERIES  series of the real history     (default 100, every 30 s)
#
# Two kinds of data per size N (blocks):
#
# - bench-bytes-N/blocks: for the byte-level phases (snapshot, copy, install,
#   rerun). One day of real data (2000 random gauges every 15 s, promtool:
#   12 blocks of ~7 MiB) cloned into N blocks under new ULIDs (real file
#   copies, new ULID in meta.json). Clones overlap in time: these dirs are only
#   moved, never loaded into a Prometheus. The largest size holds the real
#   copies; the smaller ones are hard links to its first N blocks (disk once).
# - bench-history-N/blocks: for planning and verification, real, loadable,
#   non-overlapping history: N consecutive aligned 2h blocks of
#   PTM_BENCH_HSERIES random gauges every 30 s, ending 4 h before generation.
#   The smaller sizes are hard links to the newest N blocks of the largest.
#
# promtool re-reads its whole input once per 2h block, so the history is
# generated one day (12 blocks) per promtool run.
set -euo pipefail

ROOT="${PTM_BENCH_ROOT:-/var/cache/ptm}"
read -r -a SIZES <<<"${PTM_BENCH_SIZES:-128 512 2048}"
HSERIES="${PTM_BENCH_HSERIES:-100}"
MAX="${SIZES[${#SIZES[@]} - 1]}"

log() { printf '[gen-scale %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

ALPHABET=0123456789ABCDEFGHJKMNPQRSTVWXYZ
ulid() {
  local t s=""
  t=$(date +%s%3N)
  for _ in {1..10}; do s="${ALPHABET:t%32:1}$s"; t=$((t / 32)); done
  for _ in {1..16}; do s="$s${ALPHABET:RANDOM%32:1}"; done
  printf '%s\n' "$s"
}

om() { # start_s end_s series step seed metric
  awk -v start="$1" -v end="$2" -v series="$3" -v step="$4" -v seed="$5" -v m="$6" 'BEGIN {
    srand(seed)
    print "# HELP " m " random gauge for the benchmark"
    print "# TYPE " m " gauge"
    for (s = 0; s < series; s++)
      for (t = start; t < end; t += step)
        printf "%s{series=\"%d\"} %.17g %d\n", m, s, rand() * 1000, t
    print "# EOF"
  }'
}

blocks_in() { find "$1" -mindepth 1 -maxdepth 1 -type d -name '[0-9A-Z]*' -printf '%f\n' | sort; }

# Hard-link the first (bytes) or newest (history) n blocks of the largest set.
subset() { # kind n order
  local kind=$1 n=$2 dir="$ROOT/bench-$1-$2"
  [[ -f "$dir/.complete" ]] && return 0
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/blocks"
  local b
  for b in $(blocks_in "$ROOT/bench-$kind-$MAX/blocks" | $3 -n "$n"); do
    cp -al "$ROOT/bench-$kind-$MAX/blocks/$b" "$dir.tmp/blocks/$b"
  done
  touch "$dir.tmp/.complete"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  log "$dir: $n blocks (hard links)"
}

bytes_set() {
  local dir="$ROOT/bench-bytes-$MAX"
  if [[ ! -f "$dir/.complete" ]]; then
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/pool" "$dir.tmp/blocks"
    local end=$(($(date +%s) / 7200 * 7200 - 4 * 3600))
    log "bytes: one day of 2000 series every 15 s (promtool)"
    om $((end - 86400)) "$end" 2000 15 42 ptm_bench_value >"$dir.tmp/day.om"
    promtool tsdb create-blocks-from openmetrics "$dir.tmp/day.om" "$dir.tmp/pool" >/dev/null
    rm -f "$dir.tmp/day.om"
    local pool i=0 b n
    mapfile -t pool < <(blocks_in "$dir.tmp/pool")
    log "bytes: cloning ${#pool[@]} real blocks into $MAX"
    while ((i < MAX)); do
      b="${pool[i % ${#pool[@]}]}"
      n=$(ulid)
      [[ -e "$dir.tmp/blocks/$n" ]] && continue
      cp -r "$dir.tmp/pool/$b" "$dir.tmp/blocks/$n"
      sed -i "s/$b/$n/g" "$dir.tmp/blocks/$n/meta.json"
      i=$((i + 1))
    done
    rm -rf "$dir.tmp/pool"
    touch "$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    log "$dir: $MAX blocks ($(du -sh "$dir" | cut -f1))"
  fi
}

history_set() {
  local dir="$ROOT/bench-history-$MAX"
  if [[ ! -f "$dir/.complete" ]]; then
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/blocks"
    local end=$(($(date +%s) / 7200 * 7200 - 4 * 3600))
    local start=$((end - MAX * 7200)) from to
    for ((from = start; from < end; from += 86400)); do
      to=$((from + 86400 < end ? from + 86400 : end))
      om "$from" "$to" "$HSERIES" 30 "$from" ptm_bench_history >"$dir.tmp/day.om"
      promtool tsdb create-blocks-from openmetrics "$dir.tmp/day.om" "$dir.tmp/blocks" >/dev/null
      log "history: $(((from - start) / 7200 + (to - from) / 7200)) of $MAX blocks"
    done
    rm -f "$dir.tmp/day.om"
    local got
    got=$(blocks_in "$dir.tmp/blocks" | wc -l)
    [[ "$got" == "$MAX" ]] || { log "history: expected $MAX blocks, got $got"; exit 1; }
    touch "$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    log "$dir: $MAX blocks ($(du -sh "$dir" | cut -f1))"
  fi
}

bytes_set
history_set
for n in "${SIZES[@]}"; do
  [[ "$n" == "$MAX" ]] && continue
  subset bytes "$n" head
  subset history "$n" tail
done
log "cached: $(for n in "${SIZES[@]}"; do printf '%s ' "bench-bytes-$n bench-history-$n"; done)"
