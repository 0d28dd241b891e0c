# shellcheck shell=bash
# shellcheck disable=SC2034 # CI_* are read by the scripts that source this file
# test/ci/lib.sh - bookkeeping of .ci/run's levels: run one with its output shown and logged,
# count its tests from that output, and print the summary table. Sourced, not run;
# test/ci/selftest.sh checks it on canned outputs.
#
# Counting:
#   mocha   the spec reporter's closing lines, "N passing (…)", "K pending", "M failing"
#           (the last "passing" line and the pending/failing lines right after it)
#   checks  a check script's last "N passed, M failed" line; lines starting "SKIP " are skipped
#           checks (test/lab/smoke.sh, test/ci/walkthrough.sh)
#   step    no tests (install, lint, builds): ok, or 1 failed
# A level FAILS when its command exits non-zero or a test failed; a failed level with no failed
# test counts 1 failed, so the totals line says "0 failed" only when the run passed.
# A level that ran no test, or skipped some, or was not run at all:
#   CI=true   FAILED (ran no test: 1 failed; skipped tests count as failed; skipped level: 1 failed)
#   otherwise SKIPPED / NOT RUN, reported, and the exit status stays 0 if nothing failed.

ci_is_ci() { [[ ${CI:-} == true || ${CI:-} == 1 ]]; }

CI_NAME=()
CI_STATUS=()
CI_PASSED=()
CI_FAILED=()
CI_SKIPPED=()
CI_SECS=()
CI_NOTE=()
CI_LAST_STATUS=

# ci_init: log dir ($PTM_CI_LOGS or a new temp dir), mocha colours when stdout is a terminal.
ci_init() {
  CI_LOGS=${PTM_CI_LOGS:-$(mktemp -d /tmp/ptm-ci.XXXXXX)}
  mkdir -p "$CI_LOGS"
  # Through tee mocha sees a pipe and would drop its colours.
  if [[ -t 1 ]]; then export MOCHA_COLORS=1; fi
  CI_T0=$SECONDS
}

ci_stage() { printf '\n=== %s (%ss)\n' "$1" "$((SECONDS - CI_T0))"; }

# ci_selected NAME: NAME is in $PTM_CI_ONLY (space-separated), or PTM_CI_ONLY is unset/empty.
ci_selected() {
  [[ -z ${PTM_CI_ONLY:-} ]] && return 0
  [[ " ${PTM_CI_ONLY} " == *" $1 "* ]]
}

_ci_strip() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1"; }

# ci_mocha_counts LOG: "passed failed pending", nothing when mocha printed no summary.
ci_mocha_counts() {
  _ci_strip "$1" | awk '
    /^ *[0-9]+ passing( \(.*\))? *$/ { p = $1; f = 0; s = 0; seen = 1; next }
    seen && /^ *[0-9]+ pending *$/ { s = $1 }
    seen && /^ *[0-9]+ failing *$/ { f = $1 }
    END { if (seen) print p, f, s }'
}

# ci_check_counts LOG: "passed failed skipped", nothing without an "N passed, M failed" line.
ci_check_counts() {
  _ci_strip "$1" | awk '
    /^SKIP / { s++ }
    /^[0-9]+ passed, [0-9]+ failed *$/ { p = $1; f = $3; seen = 1 }
    END { if (seen) print p, f, s + 0 }'
}

_ci_add() { # NAME STATUS PASSED FAILED SKIPPED SECS NOTE
  CI_NAME+=("$1")
  CI_STATUS+=("$2")
  CI_PASSED+=("$3")
  CI_FAILED+=("$4")
  CI_SKIPPED+=("$5")
  CI_SECS+=("$6")
  CI_NOTE+=("$7")
  CI_LAST_STATUS=$2
}

# ci_record NAME KIND RC SECS LOG: judge a finished level (see the header).
ci_record() {
  local name=$1 kind=$2 rc=$3 secs=$4 log=$5
  local status=ok p=0 f=0 s=0 counts="" note=""
  if [[ $kind == step ]]; then
    if ((rc != 0)); then
      _ci_add "$name" FAILED - 1 - "$secs" "exit $rc"
    else
      _ci_add "$name" ok - 0 - "$secs" ""
    fi
    return 0
  fi
  case $kind in
    mocha) counts=$(ci_mocha_counts "$log") ;;
    checks) counts=$(ci_check_counts "$log") ;;
    *)
      echo "ci_record: unknown kind $kind" >&2
      return 1
      ;;
  esac
  if [[ -n $counts ]]; then
    read -r p f s <<<"$counts"
  else
    note="no test summary in its output"
  fi
  ((rc == 0)) || note+="${note:+; }exit $rc"
  ((rc == 0 && f == 0)) || status=FAILED
  if ((p + f == 0)); then
    note+="${note:+; }ran no test"
    if ci_is_ci; then
      status=FAILED
    elif [[ $status == ok ]]; then
      status=SKIPPED
    fi
  fi
  if ((s > 0)) && ci_is_ci; then
    note+="${note:+; }$s skipped, counted as failed under CI"
    f=$((f + s))
    status=FAILED
  fi
  if [[ $status == FAILED ]] && ((f == 0)); then f=1; fi
  _ci_add "$name" "$status" "$p" "$f" "$s" "$secs" "$note"
}

# ci_run LOG CMD...: run CMD with stdout+stderr shown and copied to LOG; CMD's exit status.
ci_run() {
  local log=$1
  shift
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# ci_level NAME KIND CMD...: stage header, run, record. Returns 0 when the level is ok.
ci_level() {
  local name=$1 kind=$2 t=$SECONDS rc=0
  shift 2
  ci_stage "$name: $*"
  ci_run "$CI_LOGS/${name//[^A-Za-z0-9_.-]/_}.log" "$@" || rc=$?
  ci_record "$name" "$kind" "$rc" "$((SECONDS - t))" "$CI_LOGS/${name//[^A-Za-z0-9_.-]/_}.log"
  [[ $CI_LAST_STATUS == ok ]]
}

# ci_cannot_run NAME REASON [SECS]: a level that could not run here: FAILED, in CI or not.
ci_cannot_run() {
  _ci_add "$1" FAILED - 1 - "${3:-0}" "could not run: $2"
}

# ci_not_run NAME REASON: a level left out because an earlier one failed (or not selected).
ci_not_run() {
  if ci_is_ci; then
    _ci_add "$1" FAILED - 1 - - "not run: $2"
  else
    _ci_add "$1" "NOT RUN" - - - - "$2"
  fi
}

# ci_summary: the table (logs dir in its header). Returns 0 when no level FAILED; sets
# CI_TOTAL_PASSED and CI_TOTAL_FAILED for the closing "N passed, M failed" line.
ci_summary() {
  local i tp=0 tf=0 ts=0 rc=0 status=ok note=""
  ci_stage "summary (each level's output: $CI_LOGS/)"
  _ci_row level status passed failed skipped seconds note
  for i in "${!CI_NAME[@]}"; do
    _ci_row "${CI_NAME[i]}" "${CI_STATUS[i]}" "${CI_PASSED[i]}" "${CI_FAILED[i]}" \
      "${CI_SKIPPED[i]}" "${CI_SECS[i]}" "${CI_NOTE[i]}"
    [[ ${CI_PASSED[i]} == - ]] || tp=$((tp + CI_PASSED[i]))
    [[ ${CI_FAILED[i]} == - ]] || tf=$((tf + CI_FAILED[i]))
    [[ ${CI_SKIPPED[i]} == - ]] || ts=$((ts + CI_SKIPPED[i]))
    [[ ${CI_STATUS[i]} != FAILED ]] || rc=1
  done
  ((rc == 0)) || status=FAILED
  if ci_is_ci; then note="CI=true: a skipped level or test fails the run"; fi
  _ci_row total "$status" "$tp" "$tf" "$ts" "$((SECONDS - CI_T0))" "$note"
  CI_TOTAL_PASSED=$tp
  CI_TOTAL_FAILED=$tf
  return "$rc"
}

_ci_row() { # LEVEL STATUS PASSED FAILED SKIPPED SECONDS NOTE
  printf '%-12s %-8s %7s %7s %8s %8s' "$1" "$2" "$3" "$4" "$5" "$6"
  if [[ -n $7 ]]; then printf '  %s' "$7"; fi
  printf '\n'
}
