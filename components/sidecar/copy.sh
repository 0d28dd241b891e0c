#!/bin/sh
# Target sidecar: copy the given blocks from the source's rsync daemon into a
# staging dir on the target volume. Resumable; never touches $PTM_DATA/<ULID>.
#
#   sh -c "$PTM_SCRIPT" ptm-copy ULID...   (PTM_SCRIPT = lib.sh + copy.sh)
#
# Env:
#   PTM_DATA               target TSDB data dir (required)
#   PTM_RSYNC_URL          rsync://user@host:port/tsdb/snapshots/<name> (required)
#   RSYNC_PASSWORD         rsync daemon password (required; read by rsync itself)
#   PTM_STAGING            staging dir, same filesystem as PTM_DATA
#                          (default $PTM_DATA/ptm-staging; must not be a ULID)
#   PTM_BWLIMIT            limit of the whole copy as rsync --bwlimit takes it,
#                          e.g. 50m (default: none); each stream gets its share
#   PTM_STREAMS            parallel rsync streams over disjoint blocks, 1..16, or
#                          auto (default 1; fewer when fewer blocks are missing)
#   PTM_STREAMS_MAX        the most streams auto may use, 1..16 (default 16); the
#                          program passes the CPU limit of the source's sidecar
#   PTM_STREAMS_MAX_WHY    what that limit is, for the log (default PTM_STREAMS_MAX=N)
#   PTM_AUTO_MIN_BYTES     auto tries more than one stream only when at least this
#                          much is to copy (default 1 GiB: a shorter copy is over
#                          before a second stream could be measured)
#   PTM_STAT_FILE          the node's CPU ticks for auto (default /proc/stat)
#   PTM_CGROUP_DIR         this container's cgroup for auto (default /sys/fs/cgroup)
#   PTM_FREE_MARGIN_BYTES  free space to keep besides the blocks
#                          (default 64 MiB + 10% of the bytes to copy; the
#                          target keeps writing WAL and compacting)
#   PTM_FREE_RESERVE_BYTES free space the copy never takes from the target
#                          (default 64 MiB): checked every second while it runs,
#                          as another writer may fill the volume meanwhile;
#                          below it the copy stops, keeping what is complete
#   PTM_PROGRESS_SECONDS   min seconds between progress lines (default 10)
#
# Layout: $PTM_STAGING/<ULID>/ is a block being (or done being) copied;
# $PTM_STAGING/.complete/<ULID> marks a verified block. Markers live outside
# the block dirs so a block dir never holds foreign files.
#
# PTM_STREAMS rsync runs, each over its share of the missing blocks (balanced
# by bytes), move every missing block (one connection per stream: per-block
# runs cost a daemon fork, an auth round trip and a file-list exchange each).
# Stderr gets a few progress lines, as many for 10 blocks as for 10,000
# (Pulumi keeps stderr in its state). After the runs, each block is verified against the daemon's listing (meta.json
# names the ULID; same files, same sizes; rsync already checksums every file
# it transfers) and gets its marker. A killed run keeps finished files:
# the rerun skips marked blocks, and rsync's quick check skips finished files.
#
# PTM_STREAMS=auto starts one stream and adds one while the copy's throughput grows by
# at least 10%: every few seconds it measures the bytes staged (du), and to change the
# number of streams it stops the rsyncs (SIGTERM: rsync keeps the partial file), keeps
# the blocks that are complete and shares the rest among the new number of streams. A
# stream that did not add 10% is taken back. It never goes beyond PTM_STREAMS_MAX, this
# container's CPU limit, or its node's idle cores (all three as whole cores, the ones
# that can be read). With PTM_BWLIMIT set, auto is one stream: the limit is the speed.
#
# Stdout: one JSON line (counts of blocks; streams: how many the copy ended with)
#   {"copied":N,"skipped":N,"bytesCopied":N,"bytesReceived":N,"bytesTotal":N,"streams":N}
# or, when refused for lack of space (exit 3):
#   {"error":"insufficient-space","needBytes":N,"marginBytes":N,"availableBytes":N}
# Uses lib.sh, which the program sends ahead of this script.
set -eu

log() { echo "copy: $*" >&2; }
die() { echo "copy: ERROR: $*" >&2; exit 1; }

human() {
  awk -v b="$1" 'BEGIN {
    split("B KiB MiB GiB TiB", u, " "); i = 1
    while (b >= 1024 && i < 5) { b /= 1024; i++ }
    if (i == 1) printf "%d B", b; else printf "%.1f %s", b, u[i]
  }'
}

stat_of() { # key -> sum over the rsync runs' output $work/out.* (0 when rsync printed none)
  # Not the runs auto stopped ($work/stopped.<run>): stop_run counts what they staged.
  v="$(for f in "$work"/out.*; do
    r="${f#"$work"/out.}"
    [ ! -f "$f" ] || [ -e "$work/stopped.${r%%.*}" ] || tr '\r' '\n' <"$f"
  done | awk -v k="$1" '
    /^Total bytes received:/ { n = $4 } /^Total transferred file size:/ { n = $5 }
    (k == "received" && /^Total bytes received:/) || (k == "transferred" && /^Total transferred file size:/) {
      gsub(/,/, "", n); s += n
    }
    END { printf "%.0f", s }')"
  case "$v" in '' | *[!0-9]*) v=0 ;; esac
  echo "$v"
}

# Split the blocks of $work/run into $streams disjoint lists balanced by bytes
# (greedy: biggest block first, onto the least-loaded stream). Writes
# $work/plan ("ULID size stream", each stream's blocks in name order, the
# order rsync transfers them in) and one rsync filter per stream.
plan_streams() {
  run_blocks="$(wc -l <"$work/run" | tr -d ' ')"
  streams=$run_streams
  [ "$streams" -le "$run_blocks" ] || streams=$run_blocks
  # rsync applies --bwlimit per connection: each stream gets its share of
  # PTM_BWLIMIT, in bytes/s, and no less than rsync's minimum of 512 (fewer
  # streams when the limit is that low).
  bwlimit=""
  if [ -n "${PTM_BWLIMIT:-}" ]; then
    bwlimit="$(awk -v l="$PTM_BWLIMIT" -v n="$streams" 'BEGIN {
      if (l !~ /^[0-9]+(\.[0-9]+)?[kKmMgG]?$/) { print "bad"; exit }
      u = 1024; c = substr(l, length(l), 1)
      if (c ~ /[mM]/) u = 1048576; else if (c ~ /[gG]/) u = 1073741824
      b = (c ~ /[0-9]/ ? l : substr(l, 1, length(l) - 1)) * u
      if (b == 0) { print n, ""; exit }
      while (n > 1 && b / n < 512) n--
      printf "%d %.0fb\n", n, b / n
    }')"
    [ "$bwlimit" != bad ] || die "PTM_BWLIMIT=$PTM_BWLIMIT is not an rsync --bwlimit value such as 500k or 20m"
    streams="${bwlimit%% *}"
    bwlimit="${bwlimit#* }"
  fi
  awk 'FNR == NR { t[$1] = 1; next } ($1 in t) { print $2, $1 }' "$work/run" "$work/sizes" |
    LC_ALL=C sort -k1,1nr -k2,2 |
    awk -v n="$streams" '{
      best = 1
      for (s = 2; s <= n; s++) if (load[s] < load[best]) best = s
      load[best] += $1
      print $2, $1, best
    }' | LC_ALL=C sort -k3,3n -k1,1 >"$work/plan"
  rm -f "$work"/filter.*
  s=1
  while [ "$s" -le "$streams" ]; do
    # rsync tries every rule on every file, on both sides: 2,048 "/ULID/***" rules cost
    # 1.3 s of CPU (a wildcard match each). A stream of every entry of the snapshot needs
    # no rule but the protection of the rest of staging from --delete; one of some blocks
    # names their dirs (a plain compare each), then leaves out the rest of the top level.
    awk -v s="$s" '$3 == s { print $1 }' "$work/plan" | LC_ALL=C sort >"$work/blocks.$s"
    if cmp -s "$work/blocks.$s" "$work/top"; then
      echo 'P /*' >"$work/filter.$s"
    else
      { sed 's|.*|+ /&/|' "$work/blocks.$s"; echo '- /*'; } >"$work/filter.$s"
    fi
    s=$((s + 1))
  done
}

# Beside the rsyncs: every second, the free space of the staging filesystem. Another
# writer (the target's own WAL and compactions, anything else on the volume) may take what
# the start's check counted on. When the free space would be below $reserve by the next
# look (what it fell by in the last second, again), the rsyncs are stopped: the target keeps
# room for its own samples. $work/low then holds the free bytes seen and the last fall.
# (The start's margin leaves a tenth of the copy above the reserve: a copy of 10 s or more
# never stops itself here; a shorter one on a volume that tight may, and resumes.)
watch_space() {
  last=""
  while [ ! -e "$work/done" ]; do
    a="$(free_bytes)"
    if [ -n "$a" ]; then
      fell=0
      [ -z "$last" ] || [ "$last" -le "$a" ] || fell=$((last - a))
      if [ $((a - fell)) -lt "$reserve" ]; then
        echo "$a $fell" >"$work/low"
        # shellcheck disable=SC2046 # PIDs
        kill -TERM $(cat "$work"/pid.* 2>/dev/null) 2>/dev/null || true
        return 0
      fi
      last=$a
    fi
    sleep 1
  done
}

# What an rsync exit code says went wrong, as " (...)" (rsync(1) EXIT VALUES).
rsync_cause() {
  case $1 in
  10 | 12 | 35) echo " (the connection to the source's rsync daemon broke: its pod restarted or was deleted, its sidecar or daemon was killed, or the network failed)" ;;
  11) echo " (a file could not be written on the target: is its volume full or read-only?)" ;;
  20) echo " (rsync was stopped by a signal)" ;;
  30) echo " (no data from the source's rsync daemon for 600 s)" ;;
  5) echo " (the source's rsync daemon refused: password or module)" ;;
  esac
}

free_bytes() { df -Pk "$STAGING" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }'; }

# Run $streams rsync processes at once, one connection each, each over its own
# blocks (plan_streams). rsync is CPU-bound on both sides here (one process
# sends, two receive): one stream leaves cores idle.
# Their stdout (--info=progress2,name1 --stats) goes through `tr` and an awk
# that prefixes the stream number and writes each line at once (one write()
# under PIPE_BUF: lines are not interleaved) into one pipe, read by one awk that
# prints throttled progress lines summed over the streams (Pulumi shows only
# complete lines, and keeps stderr in its state: nothing here grows with the
# number of blocks). Each stream's whole output is also kept in $work/out.<stream>
# (tee), which the stats are read from: they never depend on the progress pipe.
# --info=name1 tells when a stream moves on to its next block (files come in
# name order): its earlier blocks are done. Sets $rc to the first non-zero
# exit code of the streams.
# shellcheck disable=SC2086 # $unbuf and $lines are option lists
rsync_todo() {
  plan_streams
  # GNU tr and mawk hold a pipe's data until 4 KiB have come: progress would
  # come late (minutes at a low bandwidth limit). busybox's pass it on at once.
  unbuf=""
  # (Only a stdbuf that works: a broken one would cut the pipe rsync writes to.)
  ! stdbuf -o0 tr a a </dev/null >/dev/null 2>&1 || unbuf="stdbuf -o0"
  lines=""
  case "$(awk -W version 2>&1 </dev/null || true)" in mawk*) lines="-W interactive" ;; esac
  # (out.<run>.<stream>: the stats of every run are summed at the end.)
  rm -f "$work"/rc.* "$work"/pid.* "$work/low" "$work/done"
  # (Its stdio and the lock's fd elsewhere: a `sleep 1` of it that outlives the kill would
  # hold this step's stdout and stderr open up to a second after the copy ends, and kubectl
  # exec waits for them; holding the lock, it would make the next copy wait 5 s.)
  watch_space </dev/null >/dev/null 2>&1 9>&- &
  watcher=$!
  {
    s=1
    while [ "$s" -le "$streams" ]; do
      {
        # --delete only removes files inside the blocks being copied: the temp
        # files a killed rsync left behind. The partial dir is protected by rsync,
        # the rest of staging by the filter (excluded, or protected: "P /*").
        rsync -a --delete --no-h "$nodelay" --partial-dir=.rsync-partial --timeout=600 \
          --info=progress2,name1 --stats --filter="merge $work/filter.$s" \
          ${bwlimit:+"--bwlimit=$bwlimit"} "$PTM_RSYNC_URL/" "$STAGING/" 2>"$work/err.$run_id.$s" &
        echo "$!" >"$work/pid.$s"
        if wait "$!"; then
          echo 0 >"$work/rc.$s"
        else
          echo "$?" >"$work/rc.$s"
        fi
      } | tee "$work/out.$run_id.$s" | $unbuf tr '\r' '\n' | awk $lines -v s="$s" '$0 != "" { print s, $0; fflush() }' &
      s=$((s + 1))
    done
    wait
  } | awk $lines -v every="$PTM_PROGRESS_SECONDS" -v streams="$streams" \
    -v total="$total" -v base="$run_base" -v i="$run_done" -v n="$n" '
    function human(b, k, u) {
      split("B KiB MiB GiB TiB", u, " "); k = 1
      while (b >= 1024 && k < 5) { b /= 1024; k++ }
      return (k == 1) ? sprintf("%d B", b) : sprintf("%.1f %s", b, u[k])
    }
    function now_s() { srand(); return srand() }
    # Blocks of stream s before its p-th are done.
    function advance(s, p) {
      while (ptr[s] < p - 1 && ptr[s] < cnt[s]) { ptr[s]++; i++; done_b += size[seq[s, ptr[s]]] }
    }
    function bytes_done(b, k) {
      b = base; for (k = 1; k <= streams; k++) b += got[k]
      return (b > total) ? total : b
    }
    function progress(t, b) {
      b = bytes_done()
      printf "copy: %d/%d blocks done, %s / %s (%d%%), %s/s, %s\n", i, n, human(b), human(total), (total > 0 ? b * 100 / total : 100), human(t > last ? (b - last_b) / (t - last) : 0), nstreams
      fflush()
      last = t; last_b = b
    }
    BEGIN { start = now_s(); last = start; last_b = base; nstreams = streams (streams == 1 ? " stream" : " streams") }
    FNR == NR { size[$1] = $2; k = ++cnt[$3]; seq[$3, k] = $1; pos[$1] = k; st[$1] = $3; next }
    { s = $1; $0 = substr($0, length($1) + 2) }
    /^Total transferred file size:/ { advance(s, cnt[s] + 1); next }
    $1 ~ /^[0-9,]+$/ && $2 ~ /%$/ { v = $1; gsub(/,/, "", v); got[s] = v + 0 }
    length($1) >= 26 && (substr($1, 27, 1) == "/" || length($1) == 26) {
      u = substr($1, 1, 26)
      if ((u in pos) && st[u] == s) advance(s, pos[u])
    }
    { t = now_s(); if (t - last >= every) progress(t) }
    END {
      t = now_s(); b = bytes_done() - base
      printf "copy: %s ended after %d s: %s transferred in this run (%s/s)\n", nstreams, t - start, human(b), human(t > start ? b / (t - start) : b)
    }' "$work/plan" - >&2 || true # (killed too when the pod stops: rc says what happened)
  : >"$work/done"
  # rsync's own errors, unless auto stopped the run on purpose (its "received SIGTERM").
  [ -e "$work/stopping" ] || cat "$work"/err."$run_id".* >&2 2>/dev/null || true
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  rc=0
  s=1
  while [ "$s" -le "$streams" ]; do
    r="$(cat "$work/rc.$s" 2>/dev/null || echo 1)"
    [ "$rc" -ne 0 ] || rc=$r
    s=$((s + 1))
  done
}

# Bytes already staged of the blocks listed in $1 (files of earlier or killed runs).
staged_bytes() {
  [ -s "$1" ] || { echo 0; return 0; }
  # shellcheck disable=SC2046 # ULIDs have no spaces
  (cd "$STAGING" && find $(cat "$1") -type f -exec stat -c %s {} + 2>/dev/null) |
    awk '{ s += $1 } END { printf "%.0f", s }'
}

# The progress lines' starting point for the blocks of $work/run: the blocks and bytes
# already done (skipped, done by earlier runs, staged files of the run's blocks).
run_counts() {
  run_n="$(wc -l <"$work/run" | tr -d ' ')"
  run_done=$((skipped_n + todo_n - run_n))
  run_base="$(awk 'FNR == NR { r[$1] = 1; next } !($1 in r) { s += $2 } END { printf "%.0f", s }' \
    "$work/run" "$work/todo_sizes")"
  run_base=$((skipped_bytes + run_base + $(staged_bytes "$work/run")))
}

# This container's CPU limit in whole cores (rounded up); nothing when it has none or it
# can't be read (cgroup v2, then v1).
cpu_limit() {
  g=${PTM_CGROUP_DIR:-/sys/fs/cgroup}
  if [ -r "$g/cpu.max" ]; then
    read -r q p <"$g/cpu.max" || return 0
  elif [ -r "$g/cpu/cpu.cfs_quota_us" ] && [ -r "$g/cpu/cpu.cfs_period_us" ]; then
    q="$(cat "$g/cpu/cpu.cfs_quota_us")"
    p="$(cat "$g/cpu/cpu.cfs_period_us")"
  else
    return 0
  fi
  case "$q$p" in *[!0-9]*) return 0 ;; esac # "max", "-1": no limit
  [ "$p" -gt 0 ] && [ "$q" -gt 0 ] || return 0
  echo $(((q + p - 1) / p))
}

# "cpus busy total" from /proc/stat (the node's, in clock ticks).
cpu_ticks() {
  awk '/^cpu[0-9]/ { n++ } /^cpu / { t = 0; for (k = 2; k <= NF; k++) t += $k; b = t - $5 - $6 }
    END { if (n > 0) printf "%d %.0f %.0f\n", n, b, t }' "${PTM_STAT_FILE:-/proc/stat}" 2>/dev/null || true
}

# Idle cores of this node between the ticks $1 and now, rounded; nothing when unreadable.
idle_cores() {
  # shellcheck disable=SC2046,SC2086 # numbers
  set -- $1 $(cpu_ticks)
  [ $# -eq 6 ] || return 0
  awk -v n="$4" -v b="$5" -v t="$6" -v b0="$2" -v t0="$3" 'BEGIN {
    if (t - t0 < 20) exit
    i = n * (1 - (b - b0) / (t - t0)); printf "%d\n", i + 0.5 }'
}

# How far auto may go before it runs: PTM_STREAMS_MAX, this container's CPU limit, the
# blocks. Sets $cap and $cap_why. (The node's idle cores: idle_cap, once one stream runs.)
auto_cap() {
  cap=${PTM_STREAMS_MAX:-16}
  cap_why="${PTM_STREAMS_MAX_WHY:-PTM_STREAMS_MAX=$cap}"
  [ -n "${PTM_STREAMS_MAX:-}" ] || cap_why="at most 16"
  c="$(cpu_limit)"
  if [ -n "$c" ] && [ "$c" -lt "$cap" ]; then cap=$c; cap_why="this container's CPU limit"; fi
  if [ "$todo_n" -lt "$cap" ]; then cap=$todo_n; cap_why="$todo_n blocks"; fi
}

# Lowers $cap to this node's idle cores since the listing began, one stream running for
# most of it: what another stream could get. (Read before a stream runs, the ticks of a
# listing are too few, and do not show what a stream takes.) Unreadable: no change.
idle_cap() {
  c="$(idle_cores "$ticks0")"
  if [ -n "$c" ] && [ "$c" -lt "$cap" ]; then
    [ "$c" -ge 1 ] || c=1
    cap=$c
    cap_why="this node's idle cores"
  fi
}

# Bytes under the staging dir now (what the rsyncs have written: du counts the files
# being written too).
staged_now() { du -sk "$STAGING" 2>/dev/null | awk '{ printf "%.0f", $1 * 1024 }'; }

# One second, or less: the run ending (its SIGUSR1) or the pod stopping (SIGTERM) ends the
# wait at once. (A `sleep 1` in the foreground would not: the trap waits for it, and a copy
# that ended while auto measured went on for up to a second, 0.6 s at 3.6 GiB in the bench.)
# The sleep without the step's stdio or the lock (see the free-space watcher).
wait_a_second() {
  sleep 1 >/dev/null 2>&1 9>&- &
  sl=$!
  [ -e "$work/rc.run" ] || [ -n "$pod_stopping" ] || wait "$sl" || :
  kill "$sl" 2>/dev/null || :
}

# Sets $rate: the bytes per second the running copy moves, measured over $auto_window
# seconds after $auto_settle (a new rsync first connects and lists); empty when the run ends
# first or the pod is stopping. No subshell and no step that set -e would end the script on:
# the pod's SIGTERM reaches every process of this step (idle.sh), not only this shell.
measure_rate() {
  rate=""
  t=0 # (not k: the caller's number of streams)
  while [ "$t" -lt $((auto_settle + auto_window)) ]; do
    [ ! -e "$work/rc.run" ] && [ -z "$pod_stopping" ] || return 0
    if [ "$t" -eq "$auto_settle" ]; then b0="$(staged_now)" || return 0; fi
    wait_a_second
    t=$((t + 1))
  done
  [ ! -e "$work/rc.run" ] && [ -z "$pod_stopping" ] || return 0
  b1="$(staged_now)" || return 0
  [ -n "$b0" ] && [ -n "$b1" ] || return 0
  rate=$(((b1 - b0) / auto_window))
}

# Runs rsync_todo over $work/run in $run_streams streams in the background.
start_run() {
  run_id=$((run_id + 1))
  run_counts
  rm -f "$work/rc.run"
  (
    rc=1
    rsync_todo
    echo "$rc" >"$work/rc.run"
    kill -USR1 $$ 2>/dev/null || : # (auto's measurement ends at once: wait_a_second)
  ) &
  runner=$!
  run_start_bytes="$(staged_now)" || run_start_bytes=0
}

# Stops the running rsyncs (SIGTERM: rsync keeps the partial file), or only stream $1,
# and waits for the run. A stopped rsync prints no stats: what the run staged (du) stands in
# for all of the run's streams.
stop_run() {
  : >"$work/stopping"
  if [ -n "${1:-}" ]; then
    kill -TERM "$(cat "$work/pid.$1")" 2>/dev/null || true
  else
    # shellcheck disable=SC2046 # PIDs
    kill -TERM $(cat "$work"/pid.* 2>/dev/null) 2>/dev/null || true
  fi
  wait "$runner" 2>/dev/null || true
  rm -f "$work/stopping"
  : >"$work/stopped.$run_id"
  stopped_runs=$((stopped_runs + 1))
  now="$(staged_now)" || now=$run_start_bytes
  stopped_bytes=$((stopped_bytes + ${now:-$run_start_bytes} - run_start_bytes))
}

# The blocks of $work/run that are not complete yet become the next run's.
rest_of_run() {
  verify_todo "$work/run"
  grep -vxF -f "$work/ok" "$work/run" >"$work/run.next" || true
  mv "$work/run.next" "$work/run"
}

# PTM_STREAMS=auto (see the top). Sets $streams_final and $rc.
# k streams against k-1: at least +10%, one more is tried (all stop, the rest is shared
# anew); within 10% either way, the k go on to the end; slower by more, the newest stream
# alone stops and its rest is copied once the others are done.
copy_auto() {
  cp "$work/todo" "$work/run"
  if [ -n "${PTM_BWLIMIT:-}" ]; then
    log "streams: auto is 1 stream under PTM_BWLIMIT=$PTM_BWLIMIT (the limit is the speed)"
    cap=1
  elif [ "$need" -lt "$auto_min" ]; then
    log "streams: auto is 1 stream: $(human "$need") to copy is under the $(human "$auto_min") a second stream is tried at"
    cap=1
  else
    auto_cap
    if [ "$cap" -gt 1 ]; then
      log "streams: auto starts 1 stream and adds one while the copy gets 10% faster, up to $cap ($cap_why) and this node's idle cores"
    else
      log "streams: auto is 1 stream ($cap_why)"
    fi
  fi
  k=1
  prev=0
  while :; do
    run_streams=$k
    start_run
    [ "$k" -lt "$cap" ] || [ "$k" -gt 1 ] || break # 1 stream, no other: to the end
    measure_rate
    [ -n "$rate" ] || break # the run ended, or the pod is stopping
    gain="$(awk -v a="$rate" -v b="$prev" 'BEGIN { printf "%+.0f%%", (b > 0 ? a / b - 1 : 0) * 100 }')" || gain=""
    if [ "$k" -eq 1 ]; then
      log "streams: 1 stream moves $(human "$rate")/s"
      # Nothing moved: the daemon or the network stalls, and more streams would only add to it.
      if [ "$rate" -le 0 ]; then
        log "streams: keeping 1: nothing was staged over $auto_window s"
        break
      fi
      idle_cap
    elif [ $((rate * 10)) -ge $((prev * 11)) ]; then
      log "streams: $k streams move $(human "$rate")/s, $gain on $((k - 1))"
    elif [ $((rate * 10)) -ge $((prev * 9)) ]; then
      log "streams: $k streams move $(human "$rate")/s, $gain on $((k - 1)) (within 10%): no more streams, these $k go on"
      break
    else
      log "streams: $k streams move $(human "$rate")/s, $gain on $((k - 1)): stream $k stops, the rest of its blocks follow in $((k - 1))"
      stop_run "$k"
      k=$((k - 1))
      if [ -n "$pod_stopping" ] || [ -s "$work/low" ]; then break; fi
      rest_of_run
      [ -s "$work/run" ] || { rm -f "$work/rc.run"; break; }
      run_streams=$k
      start_run
      break
    fi
    if [ "$k" -ge "$cap" ]; then
      log "streams: keeping $k ($cap_why)"
      break
    fi
    # A change costs a few seconds (the rsyncs connect and list again): not worth it when
    # the rest takes less than two more measurements at this rate.
    staged="$(staged_bytes "$work/todo")" || break
    left=$((todo_bytes - staged))
    if [ "$left" -lt $((rate * 2 * (auto_settle + auto_window))) ]; then
      log "streams: keeping $k: the rest ($(human "$left")) takes less than $((2 * (auto_settle + auto_window))) s at this rate"
      break
    fi
    prev=$rate
    stop_run
    # The pod stopping or the volume filling up: stop here (the main part says so).
    if [ -n "$pod_stopping" ] || [ -s "$work/low" ]; then break; fi
    rest_of_run
    [ -s "$work/run" ] || { rm -f "$work/rc.run"; break; }
    k=$((k + 1))
  done
  # (A second wait: a trapped SIGTERM ends the first before the run has.)
  wait "$runner" 2>/dev/null || wait "$runner" 2>/dev/null || true
  streams_final=$k
  rc="$(cat "$work/rc.run" 2>/dev/null || echo 1)"
  # Stopped on purpose with every block complete: nothing failed.
  [ -e "$work/rc.run" ] || [ -s "$work/run" ] || rc=0
}

# Verify the blocks of $1 (default $work/todo); the good ones are written to $work/ok.
verify_todo() {
  : >"$work/ok"
  : >"$work/present"
  while read -r u; do [ -d "$STAGING/$u" ] && echo "$u" >>"$work/present"; done <"${1:-$work/todo}"
  [ -s "$work/present" ] || return 0
  # Expected and actual "ULID/path size" lines, sorted the same way.
  awk 'FNR == NR { want[$1] = 1; next } (substr($2, 1, 26) in want) { print $2, $1 }' \
    "$work/present" "$work/list" | sort >"$work/expected"
  # shellcheck disable=SC2046 # ULIDs have no spaces
  (cd "$STAGING" && find $(cat "$work/present") -type f ! -path '*/.rsync-partial/*' -exec stat -c '%n %s' {} +) |
    sort >"$work/actual"
  # A block is good when its file list matches exactly and its meta.json
  # names it (Prometheus writes the block's own "ulid" first).
  # shellcheck disable=SC2046
  (cd "$STAGING" && awk '
    FNR == 1 && s != "" { check() }
    FNR == 1 { f = FILENAME; s = "" }
    { s = s $0 " " }
    END { if (s != "") check() }
    function check(t) {
      if (match(s, /"ulid"[ \t]*:[ \t]*"[0-9A-Z]+"/)) {
        t = substr(s, RSTART, RLENGTH); sub(/^.*:[ \t]*"/, "", t); sub(/"$/, "", t)
        if (t "/meta.json" == f) print t
      }
      s = ""
    }' $(while read -r u; do [ -f "$u/meta.json" ] && echo "$u/meta.json"; done <"$work/present") /dev/null) |
    sort >"$work/metaok" || true
  awk -v metaok="$work/metaok" '
    BEGIN { while ((getline l < metaok) > 0) m[l] = 1 }
    FNR == NR { u = substr($1, 1, 26); e[u] = e[u] $0 "\n"; next }
    { u = substr($1, 1, 26); a[u] = a[u] $0 "\n" }
    END { for (u in e) if (e[u] == a[u] && (u in m)) print u }
  ' "$work/expected" "$work/actual" >"$work/ok"
  # rsync removes its partial dirs when a file completes; empty ones may stay
  # after an interrupted run. (One find for all the blocks.)
  if [ -s "$work/ok" ]; then
    # shellcheck disable=SC2046 # ULIDs have no spaces
    (cd "$STAGING" && find $(cat "$work/ok") -depth -type d -name .rsync-partial -exec rmdir {} + 2>/dev/null) || true
  fi
}

[ -n "${PTM_DATA:-}" ] || die "PTM_DATA is not set"
[ -d "$PTM_DATA" ] || die "PTM_DATA=$PTM_DATA is not a directory"
[ -n "${PTM_RSYNC_URL:-}" ] || die "PTM_RSYNC_URL is not set"
[ -n "${RSYNC_PASSWORD:-}" ] || die "RSYNC_PASSWORD is not set"
PTM_RSYNC_URL="${PTM_RSYNC_URL%/}"
STAGING="${PTM_STAGING:-$PTM_DATA/ptm-staging}"
STAGING="${STAGING%/}"
if is_ulid "${STAGING##*/}"; then die "PTM_STAGING must not be named like a block (ULID)"; fi
for u in "$@"; do is_ulid "$u" || die "not a block ULID: $u"; done
PTM_STREAMS="${PTM_STREAMS:-1}"
case "$PTM_STREAMS" in
  [1-9] | 1[0-6] | auto) ;;
  *) die "PTM_STREAMS must be a whole number from 1 to 16 or auto (got \"$PTM_STREAMS\")" ;;
esac
case "${PTM_STREAMS_MAX:-16}" in
  [1-9] | 1[0-6]) ;;
  *) die "PTM_STREAMS_MAX must be a whole number from 1 to 16 (got \"$PTM_STREAMS_MAX\")" ;;
esac
auto_min="${PTM_AUTO_MIN_BYTES:-1073741824}"
case "$auto_min" in '' | *[!0-9]*) die "PTM_AUTO_MIN_BYTES must be a number of bytes (got \"$auto_min\")" ;; esac
# Every connection with Nagle off, as the daemon (rsyncd.sh): otherwise each protocol round
# trip waits out a delayed ACK (40 ms; about 0.16 s per connection).
nodelay="--sockopts=TCP_NODELAY"
# Seconds auto lets a new number of streams settle (connect, list), then measures.
auto_settle=1
auto_window=3
PTM_PROGRESS_SECONDS="${PTM_PROGRESS_SECONDS:-10}"
case "$PTM_PROGRESS_SECONDS" in
  '' | *[!0-9]*) die "PTM_PROGRESS_SECONDS must be a whole number of seconds (got \"$PTM_PROGRESS_SECONDS\")" ;;
esac

mkdir -p "$STAGING/.complete"
# Install is a rename, which is only atomic (and only works) on one filesystem.
[ "$(stat -c %d "$STAGING")" = "$(stat -c %d "$PTM_DATA")" ] ||
  die "PTM_STAGING=$STAGING is not on the filesystem of PTM_DATA=$PTM_DATA"

# One copy at a time: a killed `kubectl exec` may leave the previous run
# going inside the container, and two rsyncs into one dir would fight.
# A rerun right after an interrupted `pulumi up` waits for that copy to end
# (PTM_LOCK_WAIT_SECONDS, default 1800) and then skips what it finished.
# The lock must die with its holder: after a pod restart the PID a dead copy
# recorded may belong to another process.
# The pod is stopping (deleted, evicted, restarted): idle.sh passes its SIGTERM on to this
# script and its rsyncs. Keep what is complete, then say why the copy stopped.
pod_stopping=""
trap 'pod_stopping=1' TERM
trap ':' USR1 # a run ended (start_run): only to end auto's wait_a_second
stopping_error() {
  die "stopped because the target's pod is shutting down (SIGTERM: deleted, evicted or restarted)$1. Run pulumi up again once the pod runs: the copy resumes"
}

lock_wait=${PTM_LOCK_WAIT_SECONDS:-1800}
lock_dir=""
holder=""
if command -v flock >/dev/null 2>&1; then
  # An open file's lock: the kernel drops it when the last process holding the
  # descriptor dies, this shell or an rsync it started that outlived it.
  lock="$STAGING/.copy.lock"
  exec 9>"$lock"
  try_lock() { flock -n 9; }
else
  # No flock (Debian's busybox): a directory naming its holder by PID and start
  # time, so a reused PID is not taken for the holder.
  lock="$STAGING/.copy.lock.d"
  try_lock() {
    if mkdir "$lock" 2>/dev/null; then
      lock_dir=$lock
      echo "$$ $(start_time $$)" >"$lock/holder"
      return 0
    fi
    holder="$(cat "$lock/holder" 2>/dev/null || true)"
    [ -n "$holder" ] && [ "$(start_time "${holder%% *}")" = "${holder#* }" ] && return 1
    log "taking over the lock of a dead copy (${holder:-no holder recorded})"
    lock_dir=$lock
    echo "$$ $(start_time $$)" >"$lock/holder"
  }
fi
waited=0
until try_lock; do
  [ -z "$pod_stopping" ] || stopping_error ""
  [ "$waited" -lt "$lock_wait" ] ||
    die "another copy still holds $lock after ${waited}s${holder:+ (pid ${holder%% *})}; wait for it or kill it"
  [ $((waited % 30)) -ne 0 ] || log "waiting for the earlier copy to finish (${waited}s)"
  sleep 5
  waited=$((waited + 5))
done

work="$(mktemp -d "${TMPDIR:-/tmp}/ptm-copy.XXXXXX")"
trap 'rm -rf "$work" ${lock_dir:+"$lock_dir"}' EXIT

# One listing of the snapshot gives every file size: the space check and the
# post-copy verification both use it.
# The daemon may be unreachable for a moment right after a rollout of the source (the
# Service's endpoints follow the new pod): retry for PTM_CONNECT_SECONDS (default 90).
# rsync exits 5 when the daemon answers and refuses (wrong password, no such module): no retry.
ticks0="$(cpu_ticks)" # (auto: the node's idle cores from here to its first measurement)
log "listing $PTM_RSYNC_URL"
tries=0
while :; do
  rc=0
  rsync --list-only -r --no-h "$nodelay" "$PTM_RSYNC_URL/" >"$work/raw" 2>"$work/err" || rc=$?
  [ "$rc" -ne 0 ] || break
  tries=$((tries + 1))
  if [ "$rc" -eq 5 ] || [ $((tries * 3)) -ge "${PTM_CONNECT_SECONDS:-90}" ]; then
    cat "$work/err" >&2
    die "cannot list the snapshot at $PTM_RSYNC_URL (rsync exit $rc: wrong password, unreachable daemon, or no such snapshot)"
  fi
  log "daemon not reachable yet (rsync exit $rc), retrying"
  sleep 3
done
awk '$1 ~ /^-/ { s = $2; gsub(/,/, "", s); print s, $5 }' "$work/raw" >"$work/list"
# Every entry at the snapshot's top level (plan_streams: a stream of all of them needs no filter).
awk '$5 != "." && $5 !~ /\// { print $5 }' "$work/raw" | LC_ALL=C sort >"$work/top"

# Per requested block: size, and state (installed / staged / todo).
printf '%s\n' "$@" | grep -v '^$' >"$work/args" || true
awk 'FNR == NR { s[substr($2, 1, 26)] += $1; next } { printf "%s %.0f\n", $1, s[$1] }' \
  "$work/list" "$work/args" >"$work/sizes"
missing="$(awk '$2 == 0 { print $1 }' "$work/sizes" | tr '\n' ' ')"
[ -z "$missing" ] || die "not in the snapshot at $PTM_RSYNC_URL: $missing"

n=0
total=0
skipped=""
skipped_n=0
skipped_bytes=0
installed_n=0
: >"$work/todo"
while read -r u size; do
  n=$((n + 1))
  total=$((total + size))
  if [ -d "$PTM_DATA/$u" ]; then
    installed_n=$((installed_n + 1))
  elif [ -f "$STAGING/.complete/$u" ] && [ -d "$STAGING/$u" ]; then
    :
  else
    echo "$u" >>"$work/todo"
    continue
  fi
  skipped="$skipped $u"
  skipped_n=$((skipped_n + 1))
  skipped_bytes=$((skipped_bytes + size))
done <"$work/sizes"
# One line for all of them, no line per block: a rerun skips thousands (issue 14).
[ "$skipped_n" -eq 0 ] ||
  log "$skipped_n of $n blocks skipped: $installed_n already installed, $((skipped_n - installed_n)) already staged, $(human "$skipped_bytes")"

# Bytes still to fetch: what is not already staged (partial runs).
need=0
if [ -s "$work/todo" ]; then
  # shellcheck disable=SC2046 # ULIDs have no spaces
  have="$(staged_bytes "$work/todo")" || have=0
  awk 'FNR == NR { t[$1] = 1; next } ($1 in t)' "$work/todo" "$work/sizes" >"$work/todo_sizes"
  todo_bytes="$(awk '{ s += $2 } END { printf "%.0f", s }' "$work/todo_sizes")"
  need=$((todo_bytes - ${have:-0}))
  [ "$need" -ge 0 ] || need=0
fi

avail="$(free_bytes)"
reserve="${PTM_FREE_RESERVE_BYTES:-67108864}"
case "$reserve" in '' | *[!0-9]*) die "PTM_FREE_RESERVE_BYTES must be a number of bytes (got \"$reserve\")" ;; esac
margin="${PTM_FREE_MARGIN_BYTES:-$((reserve + need / 10))}"
log "$n blocks, $(human "$total") in total, $(human "$need") to copy; $(human "$avail") free on the staging filesystem (margin $(human "$margin"))"
if [ "$need" -gt 0 ] && [ $((need + margin)) -gt "$avail" ]; then
  echo "copy: ERROR: not enough space on the target volume: need $need bytes ($(human "$need")) + margin $margin bytes ($(human "$margin")), available $avail bytes ($(human "$avail")). Nothing was copied." >&2
  printf '{"error":"insufficient-space","needBytes":%s,"marginBytes":%s,"availableBytes":%s}\n' "$need" "$margin" "$avail"
  exit 3
fi

copied=""
bytes_copied=0
bytes_received=0
if [ -s "$work/todo" ]; then
  # A marker that survived its block dir is stale. (One rm for all: a fork per block costs
  # seconds at thousands of blocks on a busy node.)
  (cd "$STAGING/.complete" && xargs rm -f <"$work/todo")
  rc=1
  todo_n="$(wc -l <"$work/todo" | tr -d ' ')"
  stopped_runs=0
  stopped_bytes=0
  run_id=0
  if [ "$PTM_STREAMS" = auto ]; then
    copy_auto
  else
    cp "$work/todo" "$work/run"
    run_streams=$PTM_STREAMS
    run_id=1
    run_counts
    rsync_todo
    streams_final=$streams
  fi
  bytes_copied="$(stat_of transferred)"
  bytes_received="$(stat_of received)"
  if [ "$stopped_runs" -gt 0 ]; then
    # A file a stopped run left partial counts again in the run that finished it: what
    # was copied is what is staged now and was not before.
    bytes_copied=$(($(staged_bytes "$work/todo") - ${have:-0}))
    bytes_received=$((bytes_received + stopped_bytes))
  fi
  verify_todo
  # Mark every verified block, even when rsync failed half-way: those are
  # complete and the rerun skips them.
  while read -r u; do : >"$STAGING/.complete/$u"; done <"$work/ok"
  good="$(wc -l <"$work/ok" | tr -d ' ')"
  todo_n="$(wc -l <"$work/todo" | tr -d ' ')"
  [ -z "$pod_stopping" ] || stopping_error "; $good of $todo_n blocks complete and kept"
  if [ -s "$work/low" ]; then
    read -r low fell <"$work/low"
    die "stopped: the free space on the target volume was falling below the $(human "$reserve") the copy leaves the target for its own writes: $(human "$low") free, $(human "$fell") less than a second before (something else is filling the volume); $good of $todo_n blocks complete and kept. Free space on the volume or grow it, then run pulumi up again: the copy resumes"
  fi
  if [ "$rc" -ne 0 ]; then
    die "rsync failed with exit code $rc$(rsync_cause "$rc"); $good of $todo_n blocks complete and kept; rerun (pulumi up) to resume"
  fi
  if [ "$good" -ne "$todo_n" ]; then
    bad="$(grep -vxF -f "$work/ok" "$work/todo" | tr '\n' ' ')"
    die "verification failed (files or meta.json differ from the snapshot) for: $bad; remove them from $STAGING and rerun"
  fi
  log "$good blocks copied and verified"
  copied="$(tr '\n' ' ' <"$work/todo")"
fi

# Counts, not lists: this line is kept in the Pulumi state (issue 14).
# shellcheck disable=SC2086 # word splitting of the ULID lists is intended
printf '{"copied":%s,"skipped":%s,"bytesCopied":%s,"bytesReceived":%s,"bytesTotal":%s,"streams":%s}\n' \
  "$(set -- $copied; echo $#)" "$(set -- $skipped; echo $#)" "$bytes_copied" "$bytes_received" "$total" "${streams_final:-0}"
