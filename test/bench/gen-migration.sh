#!/usr/bin/env bash
# Generate (once) the large source TSDB of `npm run bench:migration` (test/bench/migration.ts),
# cached outside the repository:
#
#   PTM_BENCH_ROOT        cache root                          (default /var/cache/ptm)
#   PTM_MIGBENCH_SERIES   series                              (default 10000)
#   PTM_MIGBENCH_STEP     sample interval in seconds          (default 15)
#   PTM_MIGBENCH_BLOCKS   consecutive aligned 2h blocks       (default 57: about 2 GiB)
#
# Output: $PTM_BENCH_ROOT/bench-migration-s<series>-i<step>-b<blocks>/blocks, real, loadable,
# non-overlapping history (random gauges: promtool stores them at about 7.8 bytes a sample,
# so 57 blocks of 10,000 series every 15 s are about 2 GiB), ending 4 h before generation.
# A finished set has a .complete marker and is reused; the directory's path is the last line
# on stdout. One promtool run per 2h block: promtool reads its whole input once per block it
# writes, so a run per block is the cheapest. CPU-heavy (tens of minutes on 2 cores): run it
# with `nice -n 19` on a shared machine.
set -euo pipefail

ROOT="${PTM_BENCH_ROOT:-/var/cache/ptm}"
SERIES="${PTM_MIGBENCH_SERIES:-10000}"
STEP="${PTM_MIGBENCH_STEP:-15}"
BLOCKS="${PTM_MIGBENCH_BLOCKS:-57}"
DIR="$ROOT/bench-migration-s${SERIES}-i${STEP}-b${BLOCKS}"

log() { printf '[gen-migration %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
blocks_in() { find "$1" -mindepth 1 -maxdepth 1 -type d -name '[0-9A-Z]*' -printf '%f\n' | sort; }

if [[ -f "$DIR/.complete" ]]; then
  log "cached: $DIR ($(du -sh "$DIR/blocks" | cut -f1))"
  echo "$DIR"
  exit 0
fi

# Resumable: the blocks already written into $DIR.tmp are kept (one per 2h window).
mkdir -p "$DIR.tmp/blocks"
if [[ -f "$DIR.tmp/end" ]]; then
  end=$(cat "$DIR.tmp/end")
else
  end=$(($(date +%s) / 7200 * 7200 - 4 * 3600))
  echo "$end" >"$DIR.tmp/end"
fi
start=$((end - BLOCKS * 7200))
t0=$(date +%s)
for ((from = start, i = 1; from < end; from += 7200, i++)); do
  if [[ -f "$DIR.tmp/done-$from" ]]; then continue; fi
  # A block of an interrupted run for this window: removed, then written again.
  for m in "$DIR.tmp/blocks"/*/meta.json; do
    [[ -f $m ]] || continue
    if grep -q "\"minTime\": *${from}000," "$m"; then rm -rf "$(dirname "$m")"; fi
  done
  awk -v start="$from" -v end="$((from + 7200))" -v series="$SERIES" -v step="$STEP" -v seed="$from" 'BEGIN {
    srand(seed)
    print "# HELP ptm_migbench_value random gauge for the migration benchmark"
    print "# TYPE ptm_migbench_value gauge"
    for (s = 0; s < series; s++)
      for (t = start; t < end; t += step)
        printf "ptm_migbench_value{series=\"%d\"} %.17g %d\n", s, rand() * 1000, t
    print "# EOF"
  }' >"$DIR.tmp/block.om"
  promtool tsdb create-blocks-from openmetrics "$DIR.tmp/block.om" "$DIR.tmp/blocks" >/dev/null
  touch "$DIR.tmp/done-$from"
  log "block $i of $BLOCKS ($(du -sh "$DIR.tmp/blocks" | cut -f1) so far, $(($(date +%s) - t0)) s)"
done
rm -f "$DIR.tmp/block.om" "$DIR.tmp"/done-*
got=$(blocks_in "$DIR.tmp/blocks" | wc -l)
[[ "$got" == "$BLOCKS" ]] || {
  log "expected $BLOCKS blocks, got $got"
  exit 1
}
touch "$DIR.tmp/.complete"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
log "$DIR: $BLOCKS blocks ($(du -sh "$DIR/blocks" | cut -f1))"
echo "$DIR"
