#!/usr/bin/env bash
# Sets up what a run against a real cluster needs, then runs the demo or the e2e test.
#
#   bash test/e2e/run.sh demo   # npm run demo
#   bash test/e2e/run.sh test   # npm run test:e2e
#   bash test/e2e/run.sh faults # npm run test:faults (test/faults/: faults injected on purpose)
#
# Which cluster: test/e2e/clusterChoice.ts decides, before anything is built or started. The
# local lab (test/lab/up.sh) when KUBECONFIG is unset or is the lab's own; for the demo only,
# the context PTM_DEMO_CONTEXT names (in its own ptm-demo-* namespaces, public images). Any
# other KUBECONFIG is refused, and nothing is read or changed in that cluster. The Pulumi CLI
# and plugins come from test/engine/ (built from Go modules and the upstream sources in
# PTM_UPSTREAM_SRC, cached); a `pulumi` already on PATH with its plugins is used as it is.
#
# Order: npm ci (the choice is TypeScript), the cluster choice, checks that take seconds
# (test/engine/build.sh check, and what the lab needs), then the lab build and the engine build
# side by side, then the lab, then the run. When anything fails, the last line is
# `run.sh: FAILED: <what failed>`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:-demo}

stage="setup"
why=""
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    echo "run.sh: FAILED: ${why:-$stage (exit $rc)}" >&2
  fi
}
trap on_exit EXIT
fail() {
  why=$1
  exit 1
}

case $mode in
  demo | test | faults) ;;
  *)
    echo "usage: test/e2e/run.sh demo|test|faults" >&2
    why="unknown mode '$mode' (demo|test|faults)"
    exit 2
    ;;
esac

need_engine=0
if ! command -v pulumi >/dev/null 2>&1 || [[ -n ${PTM_ENGINE:-} ]]; then
  need_engine=1
fi
command -v node >/dev/null 2>&1 || fail "node is not on PATH"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH"

# --- 1. npm packages, then the cluster: the lab, a named context, or a refusal ------------
stage="npm ci"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
stage="cluster choice (test/e2e/clusterChoice.ts)"
cmode=$mode
[[ $mode == demo ]] || cmode=e2e
if ! choice=$(npx ts-node --transpile-only test/e2e/clusterChoice.ts "$cmode" 2>&1); then
  why=$choice
  exit 2
fi
choice=$(tail -n 1 <<<"$choice")
need_lab=0
[[ $choice != lab ]] || need_lab=1
echo "run.sh: cluster: $choice" >&2

# --- 2. fail fast: everything that can be checked in seconds ------------------------------
stage="preflight"
problems=()
if ((need_lab)); then
  [[ $(id -u) == 0 ]] || problems+=("the lab (test/lab/up.sh) must run as root; or name a cluster's context in PTM_DEMO_CONTEXT (the demo only)")
  command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]] ||
    problems+=("go is not on PATH (the lab is built from Go modules); or name a cluster's context in PTM_DEMO_CONTEXT (the demo only)")
fi
if ((need_engine)); then
  set +e
  engine_problems=$(bash test/engine/build.sh check)
  rc=$?
  set -e
  if ((rc != 0)); then
    [[ -n $engine_problems ]] || engine_problems="test/engine/build.sh check failed (exit $rc)"
    while IFS= read -r p; do problems+=("$p"); done <<<"$engine_problems"
  fi
fi
if ((${#problems[@]})); then
  why=${problems[0]}
  for p in "${problems[@]:1}"; do why+="; $p"; done
  exit 1
fi

# --- 3. lab and engine builds side by side (each is a no-op when cached) -------------------
# Each job's lines are prefixed with [lab] / [engine]; both are waited for.
stage="builds"
jobs_pid=()
jobs_name=()
if ((need_lab)); then
  (bash test/lab/build.sh all 2>&1 | sed -u 's/^/[lab] /' >&2) &
  jobs_pid+=("$!")
  jobs_name+=("lab build (test/lab/build.sh all)")
fi
if ((need_engine)); then
  (bash test/engine/build.sh 2>&1 | sed -u 's/^/[engine] /' >&2) &
  jobs_pid+=("$!")
  jobs_name+=("engine build (test/engine/build.sh)")
fi
if ((need_lab)); then
  # The BKPR target's Prometheus (an upstream build; test/lab/images/build.sh packs it in
  # the Bitnami image's shape at lab up). Cached by version.
  (bash test/real/build-prometheus-3.sh "${PTM_BITNAMI_VERSION:-3.13.5}" 2>&1 | sed -u 's/^/[prometheus] /' >&2) &
  jobs_pid+=("$!")
  jobs_name+=("Prometheus build (test/real/build-prometheus-3.sh)")
  # The pre-2.39 BKPR target of transitions.test.ts (ptm/bitnami-prometheus:2.26.0, BKPR's
  # pin): a fresh machine had no image of it, and its fixtures waited out their rollout.
  (bash test/real/build-prometheus-2.26.sh 2>&1 | sed -u 's/^/[prometheus-2.26] /' >&2) &
  jobs_pid+=("$!")
  jobs_name+=("Prometheus 2.26 build (test/real/build-prometheus-2.26.sh)")
fi
failed=()
for i in "${!jobs_pid[@]}"; do
  wait "${jobs_pid[$i]}" || failed+=("${jobs_name[$i]}")
done
if ((${#failed[@]})); then
  why=${failed[0]}
  ((${#failed[@]} < 2)) || why+="; ${failed[1]}"
  why+=" failed (see its [lab]/[engine] lines above)"
  exit 1
fi

if ((need_engine)); then
  stage="source test/engine/env.sh"
  # shellcheck source=/dev/null
  source test/engine/env.sh
fi
if ((need_lab)); then
  stage="lab up (test/lab/up.sh)"
  kc=$(bash test/lab/up.sh | sed -n 's/^KUBECONFIG=//p' | tail -n 1)
  [[ -n $kc ]] || fail "test/lab/up.sh printed no KUBECONFIG"
  export KUBECONFIG=$kc
fi
stage="pulumi version"
echo "run.sh: KUBECONFIG=${KUBECONFIG:-~/.kube/config}, $(pulumi version)" >&2

# --- 4. the run ----------------------------------------------------------------------------
case $mode in
  demo)
    stage="demo (npx ts-node --transpile-only test/e2e/demo.ts)"
    npx ts-node --transpile-only test/e2e/demo.ts
    ;;
  test)
    stage="e2e test (npx mocha --config test/e2e/.mocharc.json)"
    npx mocha --config test/e2e/.mocharc.json
    ;;
  faults)
    # Its own namespaces, and one results file for the run, rendered as docs/reliability.md's
    # table (test/faults/report.ts) whether or not every fault passed.
    export PTM_E2E_NAMESPACE_PREFIX=${PTM_E2E_NAMESPACE_PREFIX:-ptm-fault}
    if [[ -z ${PTM_FAULTS_RESULTS:-} ]]; then
      PTM_FAULTS_RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/ptm-faults.XXXXXX")/faults.json
      export PTM_FAULTS_RESULTS
    fi
    stage="fault test (npx mocha --config test/faults/.mocharc.json)"
    # The commit the run tested, for the table's first line (taken now: later commits during
    # a long run are not what ran).
    PTM_FAULTS_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    export PTM_FAULTS_COMMIT
    rc=0
    npx mocha --config test/faults/.mocharc.json || rc=$?
    if [[ -s $PTM_FAULTS_RESULTS ]]; then
      table=${PTM_FAULTS_RESULTS%.json}.md
      npx ts-node --transpile-only test/faults/report.ts "$PTM_FAULTS_RESULTS" >"$table"
      echo "run.sh: the faults table (docs/reliability.md): $table" >&2
      cat "$table"
    fi
    exit "$rc"
    ;;
esac
