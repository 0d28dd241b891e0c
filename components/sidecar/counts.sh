#!/bin/sh
# Either sidecar: sample counts per time window plus TSDB health, used to
# compare source and target.
#
#   sh -c "$PTM_SCRIPT" ptm-counts END_MS...   (PTM_SCRIPT = lib.sh + counts.sh)
#
# Env:
#   PTM_PROM_URL        Prometheus base URL (default http://localhost:9090)
#   PTM_WINDOW          window length: <n>ms|s|m|h|d (default 2h)
#   PTM_SELECTOR        series selector to count (default {__name__=~".+"});
#                       narrow it when one window holds more samples than
#                       the server's --query.max-samples (default 50M)
#   PTM_WAIT_LOADED_MS  optional ms timestamp (a non-negative integer; anything
#                       else, e.g. Infinity or NaN, is refused: it would make the
#                       wait pass at once): first wait until
#                       prometheus_tsdb_lowest_timestamp <= it, i.e. the
#                       oldest installed block was hot-loaded by the reload loop
#   PTM_LIST_BLOCKS     "true": also list the blocks, once every block dir in
#                       PTM_DATA is loaded (see below)
#   PTM_DATA            the server's TSDB dir (for PTM_LIST_BLOCKS)
#   PTM_WAIT_SECONDS    how long to wait for either (default 180)
#
# Loaded blocks: /api/v1/status/tsdb/blocks only exists from 3.6 on, so the
# list is the meta.json of every block dir (ULID name, meta.json) in
# PTM_DATA, taken when their number equals prometheus_tsdb_blocks_loaded
# before and after the listing. A block the server could not open makes the
# whole reload fail and never gets counted, so the numbers stay apart: the
# script fails with both numbers (at once when the reload failures rise).
#
# A window ending at E counts the samples in [E - window, E): it is evaluated
# at E - 1 ms, because a block covers [minTime, maxTime): a sample at E belongs
# to the next block, which may legitimately not have been copied. The range
# depends on the server's version (asked at /api/v1/status/buildinfo; a server
# whose version can't be read is an error): 2.x ranges are closed at both ends,
# so the range is window - 1 ms; 3.0 made them left-open (CHANGELOG 3.0.0,
# #13904), so the range is window. Both count exactly [E - window, E), and a
# 2.x source compares with a 3.x target.
#
# Each window also counts the native histogram samples ("histograms"): the
# samples of series that hold native histograms, found as the series where
# histogram_count(rate(x[w])) has a value (a float series has none). A series
# with a single histogram sample in a window, or mixing floats and histograms
# in one window, is counted in "count" but not in "histograms". "count"
# holds every sample, floats and histograms: count_over_time counts both in
# 2.4x and 3.x.
#
# Metric names come from /api/v1/label/__name__/values and go into the query as
# {__name__="..."} with their JSON escapes kept (valid PromQL string escapes):
# UTF-8 names that 3.x allows (dots, commas, quotes, non-ASCII) work on 2.x
# and 3.x alike, without the 3.x-only {"name.with.dots"} form.
#
# Health comes from the server's own /metrics (not from a query), so it is
# the local server's value even when it scrapes other Prometheus servers and
# even without a self-scrape job.
#
# A health metric missing from /metrics, or not a number >= 0 (NaN, +Inf),
# is an error naming it: it is never replaced by a default.
#
# Stdout: one JSON line
#   {"windows":[{"endMs":N,"count":N,"histograms":N}],"health":{"blocksLoaded":N,
#    "reloadFailures":N,"compactionsFailed":N,"lowestTimestampMs":N}
#    [,"blocks":[meta.json+sizeBytes,...]]}
# Uses lib.sh, which the program sends ahead of this script.
set -eu

log() { echo "counts: $*" >&2; }
die() { echo "counts: ERROR: $*" >&2; exit 1; }

# Byte by byte (LC_ALL=C: a UTF-8 name is several bytes, each %XX).
urlencode() {
  printf '%s\n' "$1" | LC_ALL=C awk '
    BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
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

http_post_file() { # url file (form-encoded body)
  if command -v wget >/dev/null 2>&1 && wget -qO- --post-file="$2" "$1" 2>/dev/null; then
    return 0
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 300 -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$2" "$1" 2>/dev/null
    return
  fi
  return 1
}

ms_to_s() { printf '%s.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# Value of a one-element instant vector at a time in ms (0 when empty). The
# query goes in a POST body: it can be long (see count_window).
query_at() { # expr ms
  printf 'query=%s&time=%s' "$(urlencode "$1")" "$(ms_to_s "$2")" >"$work/q"
  body="$(http_post_file "$PROM_URL/api/v1/query" "$work/q")" ||
    die "query failed at $(ms_to_s "$2") ($PROM_URL unreachable, or the query was rejected: too many samples? see PTM_SELECTOR)"
  case "$body" in '{"status":"success"'*) ;; *) die "query error: $body" ;; esac
  v="$(printf '%s\n' "$body" | sed -n 's/.*"value":\[[^],]*,"\([^"]*\)"\].*/\1/p')"
  # The expression always has a value (or vector(0)): none, or not a count, is an error.
  case "$v" in
    '' | *[!0-9.e+]*) die "unexpected query answer at $(ms_to_s "$2") (no count in it): $(printf '%s' "$body" | cut -c1-300)" ;;
  esac
  awk -v v="$v" 'BEGIN { printf "%.0f", v }'
}

# Metric names with data in [from, to] ms, one per line, as the JSON strings'
# contents with their escapes (\" \\ \uXXXX) kept: a name may hold commas and
# quotes (3.x UTF-8 names), so the list is split by a JSON string scanner that
# ends at the data array's "]" (a "warnings" list may follow).
names_in() {
  q="match%5B%5D=$(urlencode "$sel")&start=$(ms_to_s "$1")&end=$(ms_to_s "$2")"
  body="$(http_get "$PROM_URL/api/v1/label/__name__/values?$q" 120)" || die "listing metric names failed"
  case "$body" in '{"status":"success"'*) ;; *) die "listing metric names: $(printf '%s' "$body" | cut -c1-300)" ;; esac
  printf '%s\n' "$body" | sed -n 's/^{"status":"success","data":\[//p' | LC_ALL=C awk '
    {
      s = $0; n = length(s); i = 1
      while (i <= n) {
        c = substr(s, i, 1)
        if (c == "]") exit
        if (c != "\"") { i++; continue }
        out = ""; i++
        while (i <= n) {
          c = substr(s, i, 1)
          if (c == "\\") { out = out substr(s, i, 2); i += 2; continue }
          if (c == "\"") break
          out = out c; i++
        }
        i++
        if (out != "") print out
      }
    }'
}

# Samples in [end - window, end), all and native histograms: "total hist".
# sum(count_over_time({__name__=~".+"}[w])) fails as soon as two metrics share
# a label set ("vector cannot contain metrics with the same labelset":
# count_over_time drops the name), which every real server has (up/scrape_*,
# histogram _sum/_count). So count per metric name, 100 names per query:
# (sum(count_over_time({__name__="a"}[w])) or vector(0)) + ... ; each name is
# an exact index lookup. Histograms: the same, "and" the series whose
# histogram_count(rate(...)) has a value.
count_window() { # end_ms
  names_in $(($1 - window_ms)) $(($1 - 1)) >"$work/names"
  total=0
  hist=0
  while [ -s "$work/names" ]; do
    head -n 100 "$work/names" >"$work/batch"
    tail -n +101 "$work/names" >"$work/rest"
    mv "$work/rest" "$work/names"
    q="$(awk -v inner="$inner" -v r="$range_ms" '
      { printf "%s(sum(count_over_time({__name__=\"%s\"%s}[%sms])) or vector(0))", (NR > 1 ? " + " : ""), $0, inner, r }
    ' "$work/batch")"
    n="$(query_at "$q" $(($1 - 1)))"
    total=$((total + n))
    q="$(awk -v inner="$inner" -v r="$range_ms" '
      { s = "{__name__=\"" $0 "\"" inner "}[" r "ms]"
        printf "%s(sum(count_over_time(%s) and histogram_count(rate(%s))) or vector(0))", (NR > 1 ? " + " : ""), s, s }
    ' "$work/batch")"
    [ "$histograms" = true ] || continue
    n="$(query_at "$q" $(($1 - 1)))"
    hist=$((hist + n))
  done
  echo "$total $hist"
}

# The server's "MAJOR MINOR" version (buildinfo): 3.x range selectors are
# left-open; before 2.40 there are no native histograms (nor histogram_count).
server_version() {
  body="$(http_get "$PROM_URL/api/v1/status/buildinfo" 30)" ||
    die "GET $PROM_URL/api/v1/status/buildinfo failed: the window range depends on the version (3.x ranges are left-open)"
  v="$(printf '%s\n' "$body" | sed -n 's/.*"version":"v\{0,1\}\([0-9][0-9]*\)\.\([0-9][0-9]*\)\..*/\1 \2/p')"
  [ -n "$v" ] || die "no version in $PROM_URL/api/v1/status/buildinfo: $(printf '%s' "$body" | cut -c1-200)"
  echo "$v"
}

# name -> value from /metrics, printed as an integer. Missing, or not a number
# >= 0 (NaN, +Inf, -1, garbage): an error naming the metric, never a default.
metric() {
  v="$(printf '%s\n' "$metrics" | awk -v n="$1" '$1 == n { print $2; exit }')"
  [ -n "$v" ] ||
    die "$1 is missing from $PROM_URL/metrics: is this a Prometheus server (2.x/3.x) and PTM_PROM_URL right?"
  printf '%s\n' "$v" | grep -Eq '^[0-9]+(\.[0-9]+)?([eE][+]?[0-9]+)?$' ||
    die "$1 is not a number >= 0: $v (from $PROM_URL/metrics)"
  awk -v v="$v" 'BEGIN { printf "%.0f", v }'
}

read_health() {
  metrics="$(http_get "$PROM_URL/metrics" 120)" || die "GET $PROM_URL/metrics failed"
  # A die in metric() fails the assignment, and set -e ends the script.
  blocks="$(metric prometheus_tsdb_blocks_loaded)"
  reloads="$(metric prometheus_tsdb_reloads_failures_total)"
  compactions="$(metric prometheus_tsdb_compactions_failed_total)"
  lowest="$(metric prometheus_tsdb_lowest_timestamp)"
}

# Block dirs (ULID name with a meta.json) in PTM_DATA.
count_block_dirs() {
  n=0
  for d in "$PTM_DATA"/*; do
    is_ulid "${d##*/}" && [ -f "$d/meta.json" ] && n=$((n + 1))
  done
  echo "$n"
}

# Fails when the reload failures rose since the wait began.
check_reloads() {
  [ "$reloads" = "$failures0" ] ||
    die "prometheus_tsdb_reloads_failures_total rose from $failures0 to $reloads: a block failed to load (see the Prometheus log)"
}

PROM_URL="${PTM_PROM_URL:-http://localhost:9090}"
PROM_URL="${PROM_URL%/}"
WINDOW="${PTM_WINDOW:-2h}"
case "$WINDOW" in
  *[!0-9]*ms) die "PTM_WINDOW must be <n>ms|s|m|h|d, got $WINDOW" ;;
  *ms) window_ms="${WINDOW%ms}" ;;
  *[!0-9]*s | *[!0-9]*m | *[!0-9]*h | *[!0-9]*d) die "PTM_WINDOW must be <n>ms|s|m|h|d, got $WINDOW" ;;
  *s) window_ms=$((${WINDOW%s} * 1000)) ;;
  *m) window_ms=$((${WINDOW%m} * 60000)) ;;
  *h) window_ms=$((${WINDOW%h} * 3600000)) ;;
  *d) window_ms=$((${WINDOW%d} * 86400000)) ;;
  *) die "PTM_WINDOW must be <n>ms|s|m|h|d, got $WINDOW" ;;
esac
[ "$window_ms" -gt 1 ] || die "PTM_WINDOW too short: $WINDOW"
for e in "$@"; do
  case "$e" in '' | *[!0-9]*) die "window end must be a ms timestamp: $e" ;; esac
done

wait_s="${PTM_WAIT_SECONDS:-180}"
case "$wait_s" in '' | *[!0-9]*) die "PTM_WAIT_SECONDS must be a number of seconds, got '$wait_s'" ;; esac
if [ -n "${PTM_WAIT_LOADED_MS+set}" ]; then
  case "$PTM_WAIT_LOADED_MS" in
    '' | *[!0-9]*)
      die "PTM_WAIT_LOADED_MS must be a non-negative integer (ms timestamp), got '$PTM_WAIT_LOADED_MS': the wait for the installed blocks would pass at once (a bug in the program: report it)" ;;
  esac
fi
list_blocks="${PTM_LIST_BLOCKS:-false}"
case "$list_blocks" in
  true)
    [ -d "${PTM_DATA:-}" ] ||
      die "PTM_LIST_BLOCKS needs PTM_DATA, the server's TSDB dir (got '${PTM_DATA:-}')" ;;
  false) ;;
  *) die "PTM_LIST_BLOCKS must be true or false, got '$list_blocks'" ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/ptm-counts.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The reload loop runs once a minute: asked every second, the wait ends within a second of
# it (it was 5 s). The waiting line comes at most every 10 s (Pulumi keeps stderr).
logged=""
quiet_log() {
  now="$(date +%s)"
  [ -z "$logged" ] || [ $((now - logged)) -ge 10 ] || return 0
  logged=$now
  log "$1"
}

read_health
start="$(date +%s)"
failures0="$reloads"
if [ -n "${PTM_WAIT_LOADED_MS:-}" ]; then
  until awk -v a="$lowest" -v b="$PTM_WAIT_LOADED_MS" 'BEGIN { exit !(a + 0 <= b + 0) }'; do
    check_reloads
    [ $(($(date +%s) - start)) -lt "$wait_s" ] ||
      die "blocks not loaded after ${wait_s}s: prometheus_tsdb_lowest_timestamp=$lowest > $PTM_WAIT_LOADED_MS (blocks loaded: $blocks)"
    quiet_log "waiting for the reload loop: lowest timestamp $lowest > $PTM_WAIT_LOADED_MS, $blocks blocks loaded"
    sleep 1
    read_health
  done
  log "loaded: lowest timestamp $lowest <= $PTM_WAIT_LOADED_MS, $blocks blocks loaded"
fi

listing=""
if [ "$list_blocks" = true ]; then
  # Listed between two equal loaded counts that equal the number of dirs listed: a
  # compaction (new block written, its parents deleted a moment later) or a pending reload
  # in between shows as a difference, and we look again.
  while :; do
    loaded0="$blocks"
    listing="$(blocks_json "$PTM_DATA" live)"
    listed="$(printf '%s' "$listing" | grep -o '"sizeBytes"' | wc -l | tr -d ' ')"
    ondisk="$(count_block_dirs)"
    read_health
    check_reloads
    [ "$listed" = "$loaded0" ] && [ "$listed" = "$blocks" ] && [ "$listed" = "$ondisk" ] && break
    [ $(($(date +%s) - start)) -lt "$wait_s" ] ||
      die "$ondisk block dirs in $PTM_DATA but prometheus_tsdb_blocks_loaded=$blocks after ${wait_s}s: a block on disk is not loaded (see the Prometheus log; is PTM_DATA this server's TSDB dir?)"
    quiet_log "waiting for the reload loop: $ondisk block dirs in $PTM_DATA, $blocks loaded"
    sleep 1
    read_health
  done
  log "listed $listed block dirs in $PTM_DATA, all loaded"
fi

sel="${PTM_SELECTOR:-}"
inner=""
if [ -n "$sel" ]; then
  case "$sel" in '{'*'}') ;; *) die "PTM_SELECTOR must look like {label=\"value\",...}" ;; esac
  inner="${sel#\{}"
  inner=",${inner%\}}"
else
  sel='{__name__=~".+"}'
fi
windows=""
if [ "$#" -gt 0 ]; then
  version="$(server_version)"
  major="${version% *}"
  minor="${version#* }"
  histograms=true
  if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 40 ]; }; then
    histograms=false # no native histograms before 2.40: every window has 0
  fi
  # [E - window, E) evaluated at E - 1 ms: 2.x [t - r, t] needs r = window - 1 ms,
  # 3.x (t - r, t] needs r = window.
  if [ "$major" -ge 3 ]; then range_ms="$window_ms"; else range_ms=$((window_ms - 1)); fi
  log "Prometheus $major.$minor: range ${range_ms}ms at E - 1 ms, native histograms counted: $histograms"
fi
for e in "$@"; do
  c="$(count_window "$e")"
  h="${c#* }"
  c="${c% *}"
  log "window ending $e: $c samples ($h native histogram samples)"
  windows="$windows${windows:+,}{\"endMs\":$e,\"count\":$c,\"histograms\":$h}"
done

printf '{"windows":[%s],"health":{"blocksLoaded":%s,"reloadFailures":%s,"compactionsFailed":%s,"lowestTimestampMs":%s}%s}\n' \
  "$windows" "$blocks" "$reloads" "$compactions" "$lowest" "${listing:+,\"blocks\":$listing}"
