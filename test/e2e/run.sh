#!/usr/bin/env bash
# Sets up what a run against a real cluster needs, then runs the demo or the e2e test.
#
#   bash test/e2e/run.sh demo   # npm run demo
#   bash test/e2e/run.sh test   # npm run test:e2e
#
# Without KUBECONFIG it brings the local lab cluster up (test/lab/up.sh). The Pulumi CLI and
# plugins come from test/engine/ (built from Go modules, cached); a `pulumi` already on PATH
# with its plugins is used as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:-demo}

[[ -d node_modules ]] || npm ci --no-audit --no-fund
if ! command -v pulumi >/dev/null 2>&1 || [[ -n ${PTM_ENGINE:-} ]]; then
  bash test/engine/build.sh
  # shellcheck source=/dev/null
  source test/engine/env.sh
fi
if [[ -z ${KUBECONFIG:-} ]]; then
  kc=$(bash test/lab/up.sh | sed -n 's/^KUBECONFIG=//p' | tail -n 1)
  [[ -n $kc ]] || { echo "run.sh: test/lab/up.sh printed no KUBECONFIG" >&2; exit 1; }
  export KUBECONFIG=$kc
fi
echo "run.sh: KUBECONFIG=$KUBECONFIG, $(pulumi version)" >&2

case $mode in
demo) exec npx ts-node --transpile-only test/e2e/demo.ts ;;
test) exec npx mocha --config test/e2e/.mocharc.json ;;
*) echo "usage: test/e2e/run.sh demo|test" >&2; exit 2 ;;
esac
