#!/usr/bin/env bash
# test/ci/selftest.sh - checks test/ci/lib.sh (the counting and the verdicts of .ci/run) on
# canned outputs of mocha and of the check scripts, without running any test level.
# Prints PASS/FAIL lines and "N passed, M failed". Takes well under a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=test/ci/lib.sh
source test/ci/lib.sh

passed=0
failed=0
dir=$(mktemp -d /tmp/ptm-ci-selftest.XXXXXX)
trap 'rm -rf "$dir"' EXIT
eq() { # DESC GOT WANT
  if [[ $2 == "$3" ]]; then
    passed=$((passed + 1))
    printf 'PASS  %s\n' "$1"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s: got [%s], want [%s]\n' "$1" "$2" "$3"
  fi
}
log() { printf '%b' "$2" >"$dir/$1.log"; } # NAME TEXT (with \n and \e escapes)

log pass '  plan\n    \xe2\x9c\x94 picks blocks (5ms)\n\n\n  42 passing (3s)\n\n'
eq "mocha: N passing" "$(ci_mocha_counts "$dir/pass.log")" "42 0 0"
log mixed '  x\n  3 passing (1ms)\n\n  40 passing (2m)\n  2 pending\n  1 failing\n\n  1) a\n     AssertionError\n'
eq "mocha: the last passing line, with pending and failing" "$(ci_mocha_counts "$dir/mixed.log")" "40 1 2"
log color '\e[32m  7 passing\e[0m\e[90m (2s)\e[0m\n\e[36m  1 pending\e[0m\n\e[31m  3 failing\e[0m\n'
eq "mocha: colours stripped" "$(ci_mocha_counts "$dir/color.log")" "7 3 1"
# mocha --parallel (the real level): each file's results once it is done, its tests' own
# output before them, then the same closing lines as a serial run.
log parallel '\n      3 passing windows, logged by a test\n\n  b\n    1) fails\n    \xe2\x9c\x94 passes\n\n      log from a\n\n  a\n    \xe2\x9c\x94 passes\n    - pending\n\n\n  2 passing (2s)\n  1 pending\n  1 failing\n\n  1) b\n       fails:\n\n      AssertionError [ERR_ASSERTION]: 1 == 2\n'
eq "mocha --parallel: the closing lines, not a test's output" "$(ci_mocha_counts "$dir/parallel.log")" "2 1 1"
log zero '\n  0 passing (1ms)\n\n'
eq "mocha: 0 passing" "$(ci_mocha_counts "$dir/zero.log")" "0 0 0"
log crash 'TSError: Unable to compile TypeScript\n'
eq "mocha: no summary" "$(ci_mocha_counts "$dir/crash.log")" ""
log smoke 'PASS  a\nSKIP  cluster DNS\nFAIL  b\nsmoke test took 3s\n22 passed, 1 failed\n'
eq "checks: N passed, M failed and SKIP lines" "$(ci_check_counts "$dir/smoke.log")" "22 1 1"

verdict() { # CI KIND RC LOG: "status passed failed skipped" of a recorded level
  local CI=$1
  ci_record x "$2" "$3" 1 "$dir/$4.log"
  echo "${CI_STATUS[-1]} ${CI_PASSED[-1]} ${CI_FAILED[-1]} ${CI_SKIPPED[-1]}"
}
eq "passing level" "$(verdict false mocha 0 pass)" "ok 42 0 0"
eq "failing tests" "$(verdict false mocha 1 mixed)" "FAILED 40 1 2"
eq "pending tests count as failed under CI" "$(verdict true mocha 1 mixed)" "FAILED 40 3 2"
log pend '  5 passing (1s)\n  1 pending\n'
eq "pending tests are only reported outside CI" "$(verdict false mocha 0 pend)" "ok 5 0 1"
eq "a pending test fails the level under CI" "$(verdict true mocha 0 pend)" "FAILED 5 1 1"
eq "no test outside CI: SKIPPED" "$(verdict false mocha 0 zero)" "SKIPPED 0 0 0"
eq "no test under CI: FAILED, 1 failed" "$(verdict true mocha 0 zero)" "FAILED 0 1 0"
eq "crash without summary: FAILED, 1 failed" "$(verdict false mocha 2 crash)" "FAILED 0 1 0"
eq "non-zero exit with all passing: FAILED" "$(verdict false checks 1 smoke)" "FAILED 22 1 1"
eq "step ok" "$(verdict false step 0 crash)" "ok - 0 -"
eq "step failed" "$(verdict false step 3 crash)" "FAILED - 1 -"

summary() { # CI: the summary's last table line and its status
  local CI=$1 rc=0
  CI_NAME=() CI_STATUS=() CI_PASSED=() CI_FAILED=() CI_SKIPPED=() CI_SECS=() CI_NOTE=()
  CI_T0=$SECONDS CI_LOGS=$dir
  ci_record unit mocha 0 1 "$dir/pass.log"
  ci_record lint step 0 1 "$dir/pass.log"
  ci_cannot_run e2e "no engine"
  ci_not_run walkthrough "not selected"
  ci_summary >"$dir/summary.out" || rc=$?
  echo "$(tail -n 1 "$dir/summary.out" | awk '{print $1, $2, $3, $4}') rc=$rc $CI_TOTAL_PASSED/$CI_TOTAL_FAILED"
}
eq "outside CI a level that can't run fails the run" "$(summary false)" "total FAILED 42 1 rc=1 42/1"
eq "under CI a level that can't run or was not run fails the run" "$(summary true)" "total FAILED 42 2 rc=1 42/2"

echo "${passed} passed, ${failed} failed"
((failed == 0))
