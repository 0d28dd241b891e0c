#!/bin/sh
# Either sidecar: sample counts per time window plus TSDB health, used to
# compare source and target.
#
#   sh -s -- END_MS... < counts.sh
#
# Env:
#   PTM_PROM_URL        Prometheus base URL (default http://localhost:9090)
#   PTM_WINDOW          window length as a PromQL duration (default 2h)
#   PTM_SELECTOR        series selector to count (default {__name__=~".+"});
#                       narrow it when one window holds more samples than
#                       the server's --query.max-samples (default 50M)
#   PTM_WAIT_LOADED_MS  optional ms timestamp: first wait until
#                       prometheus_tsdb_lowest_timestamp <= it, i.e. the
#                       installed blocks were hot-loaded by the reload loop
#   PTM_WAIT_SECONDS    how long to wait for that (default 180)
#
# A window ending at E counts the samples in [E - window, E): it is evaluated
# at E - 1 ms because a block covers [minTime, maxTime), so a sample at E
# belongs to the next block, which may legitimately not have been copied.
#
# Health comes from the server's own /metrics (not from a query), so it is
# the local server's value even when it scrapes other Prometheus servers and
# even without a self-scrape job.
#
# Stdout: one JSON line
#   {"windows":[{"endMs":N,"count":N}],"health":{"blocksLoaded":N,
#    "reloadFailures":N,"compactionsFailed":N,"lowestTimestampMs":N}}
set -eu

log() { echo "counts: $*" >&2; }
die() { echo "counts: ERROR: $*" >&2; exit 1; }

http_get() {
  if command -v wget >/dev/null 2>&1 && wget -qO- "$1" 2>/dev/null; then
    return 0
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 120 "$1" 2>/dev/null
    return
  fi
  return 1
}

urlencode() {
  printf '%s\n' "$1" | awk '
    BEGIN { for (i = 1; i < 128; i++) ord[sprintf("%c", i)] = i }
    {
      out = ""
      for (i = 1; i <= length($0); i++) {
        c = substr($0, i, 1)
        if (c ~ /[A-Za-z0-9_.~-]/) out = out c
        else out = out sprintf("%%%02X", ord[c])
      }
      printf "%s", out
    }'
}

# Value of a one-element instant vector at a time in ms (0 when empty).
query_at() { # expr ms
  t="$2"
  ts="$((t / 1000)).$(printf '%03d' $((t % 1000)))"
  body="$(http_get "$PROM_URL/api/v1/query?query=$(urlencode "$1")&time=$ts")" ||
    die "query failed: $1 at $ts ($PROM_URL unreachable?)"
  case "$body" in '{"status":"success"'*) ;; *) die "query error: $body" ;; esac
  v="$(printf '%s\n' "$body" | sed -n 's/.*"value":\[[^],]*,"\([^"]*\)"\].*/\1/p')"
  awk -v v="${v:-0}" 'BEGIN { printf "%.0f", v }'
}

metric() { # name -> value from /metrics, printed as an integer
  printf '%s\n' "$metrics" | awk -v n="$1" '$1 == n { printf "%.0f", $2; found = 1 } END { if (!found) printf "-1" }'
}

read_health() {
  metrics="$(http_get "$PROM_URL/metrics")" || die "GET $PROM_URL/metrics failed"
  blocks="$(metric prometheus_tsdb_blocks_loaded)"
  reloads="$(metric prometheus_tsdb_reloads_failures_total)"
  compactions="$(metric prometheus_tsdb_compactions_failed_total)"
  lowest="$(metric prometheus_tsdb_lowest_timestamp)"
}

PROM_URL="${PTM_PROM_URL:-http://localhost:9090}"
PROM_URL="${PROM_URL%/}"
WINDOW="${PTM_WINDOW:-2h}"
for e in "$@"; do
  case "$e" in '' | *[!0-9]*) die "window end must be a ms timestamp: $e" ;; esac
done

read_health
if [ -n "${PTM_WAIT_LOADED_MS:-}" ]; then
  wait_s="${PTM_WAIT_SECONDS:-180}"
  start="$(date +%s)"
  failures0="$reloads"
  until awk -v a="$lowest" -v b="$PTM_WAIT_LOADED_MS" 'BEGIN { exit !(a + 0 <= b + 0) }'; do
    [ "$reloads" = "$failures0" ] ||
      die "prometheus_tsdb_reloads_failures_total rose from $failures0 to $reloads: a block failed to load (see the Prometheus log)"
    [ $(($(date +%s) - start)) -lt "$wait_s" ] ||
      die "blocks not loaded after ${wait_s}s: prometheus_tsdb_lowest_timestamp=$lowest > $PTM_WAIT_LOADED_MS (blocks loaded: $blocks)"
    log "waiting for the reload loop: lowest timestamp $lowest > $PTM_WAIT_LOADED_MS, $blocks blocks loaded"
    sleep 5
    read_health
  done
  log "loaded: lowest timestamp $lowest <= $PTM_WAIT_LOADED_MS, $blocks blocks loaded"
fi

sel="${PTM_SELECTOR:-}"
[ -n "$sel" ] || sel='{__name__=~".+"}'
expr="sum(count_over_time(${sel}[${WINDOW}]))"
windows=""
for e in "$@"; do
  c="$(query_at "$expr" $((e - 1)))"
  log "window ending $e: $c samples"
  windows="$windows${windows:+,}{\"endMs\":$e,\"count\":$c}"
done

printf '{"windows":[%s],"health":{"blocksLoaded":%s,"reloadFailures":%s,"compactionsFailed":%s,"lowestTimestampMs":%s}}\n' \
  "$windows" "$blocks" "$reloads" "$compactions" "$lowest"
