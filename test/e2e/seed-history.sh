#!/bin/sh
# Fixture (init container of the demo's source Prometheus): backfill a history into an empty
# TSDB with promtool, so that the source holds blocks of several compaction levels.
#
# Env:
#   DATA          TSDB dir (required)
#   FROM_HOURS    history starts this many hours ago (default 50)
#   TO_HOURS      and ends this many hours ago (default 3; never backfill the last 3 hours)
#   SERIES        number of series (default 20)
#   STEP_SECONDS  sample interval (default 30)
set -eu

: "${DATA:?DATA is not set}"
from=${FROM_HOURS:-50} to=${TO_HOURS:-3} series=${SERIES:-20} step=${STEP_SECONDS:-30}

for d in "$DATA"/*/meta.json; do
  if [ -f "$d" ]; then
    echo "seed-history: $DATA already holds blocks; nothing to do" >&2
    exit 0
  fi
done

now=$(date +%s)
om=$(mktemp)
# Counters and gauges in OpenMetrics text, one sample per step, timestamps in seconds.
awk -v now="$now" -v from="$from" -v to="$to" -v n="$series" -v step="$step" 'BEGIN {
  start = now - from * 3600; start -= start % step; end = now - to * 3600
  print "# TYPE demo_requests counter"
  for (s = 0; s < n; s++) for (t = start; t < end; t += step)
    printf "demo_requests_total{series=\"%d\"} %d %d\n", s, (t - start) / step * (s + 1), t
  print "# TYPE demo_temperature gauge"
  for (s = 0; s < n; s++) for (t = start; t < end; t += step)
    printf "demo_temperature{series=\"%d\"} %d %d\n", s, 20 + (t / step + s) % 7, t
  print "# EOF"
}' > "$om"
echo "seed-history: $(wc -l < "$om") lines of OpenMetrics, ${from}h to ${to}h ago" >&2
promtool tsdb create-blocks-from openmetrics "$om" "$DATA" >&2
rm -f "$om"
