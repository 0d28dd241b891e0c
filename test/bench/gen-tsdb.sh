#!/usr/bin/env bash
# Generate (once) the benchmark TSDB, cached outside the repo.
#
#   PTM_BENCH_TSDB    output dir        (default /var/cache/ptm/bench-tsdb)
#   PTM_BENCH_DAYS    days of real data (default 4)
#   PTM_BENCH_SERIES  series            (default 2000, 15 s interval, random values)
#   PTM_BENCH_CLONES  extra copies of every real block under new ULIDs (default 5)
#
# Real data: promtool backfills random gauges (random floats barely compress,
# ~7.5 bytes/sample), ending 4 h before generation so nothing would collide
# with a head. promtool handles ~160k samples/s here, so 2 GiB of unique data
# would take ~30 min; instead every real block is also cloned (real file
# copies, new ULID in meta.json). Clones overlap their originals in time: the
# benchmark only moves bytes and never loads this TSDB into a Prometheus.
set -euo pipefail

OUT="${PTM_BENCH_TSDB:-/var/cache/ptm/bench-tsdb}"
DAYS="${PTM_BENCH_DAYS:-4}"
SERIES="${PTM_BENCH_SERIES:-2000}"
CLONES="${PTM_BENCH_CLONES:-5}"

log() { printf '[gen-tsdb %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -f "$OUT/.complete" ]]; then
  log "cached: $OUT ($(du -sh "$OUT" | cut -f1))"
  exit 0
fi

ALPHABET=0123456789ABCDEFGHJKMNPQRSTVWXYZ
ulid() {
  local t s=""
  t=$(date +%s%3N)
  for _ in {1..10}; do s="${ALPHABET:t%32:1}$s"; t=$((t / 32)); done
  for _ in {1..16}; do s="$s${ALPHABET:RANDOM%32:1}"; done
  printf '%s\n' "$s"
}

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/blocks" "$OUT.tmp/work"
end=$(($(date +%s) / 7200 * 7200 - 4 * 3600))
for ((d = DAYS; d >= 1; d--)); do
  start=$((end - d * 86400))
  stop=$((start + 86400))
  log "day $d: generating openmetrics ($SERIES series)"
  awk -v start="$start" -v end="$stop" -v series="$SERIES" -v step=15 'BEGIN {
    srand(42 + start)
    print "# HELP ptm_bench_value random gauge for the benchmark TSDB"
    print "# TYPE ptm_bench_value gauge"
    for (s = 0; s < series; s++)
      for (t = start; t < end; t += step)
        printf "ptm_bench_value{series=\"%d\"} %.17g %d\n", s, rand() * 1000, t
    print "# EOF"
  }' >"$OUT.tmp/work/day.om"
  log "day $d: promtool create-blocks-from openmetrics"
  promtool tsdb create-blocks-from openmetrics "$OUT.tmp/work/day.om" "$OUT.tmp/blocks" >/dev/null
  rm -f "$OUT.tmp/work/day.om"
done
rm -rf "$OUT.tmp/work"

mapfile -t real < <(cd "$OUT.tmp/blocks" && ls -d [0-9A-Z]*)
for ((c = 1; c <= CLONES; c++)); do
  log "clone $c/$CLONES of ${#real[@]} blocks"
  for b in "${real[@]}"; do
    n=$(ulid)
    cp -r "$OUT.tmp/blocks/$b" "$OUT.tmp/blocks/$n"
    sed -i "s/$b/$n/g" "$OUT.tmp/blocks/$n/meta.json"
  done
done
touch "$OUT.tmp/.complete"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -sh "$OUT" | cut -f1))"
