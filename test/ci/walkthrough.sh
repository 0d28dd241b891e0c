#!/usr/bin/env bash
# test/ci/walkthrough.sh (npm run test:walkthrough) - the README walkthrough, typed through
# `npm run lab:shell -- -c` as a user would: which kubectl and pulumi the shell finds,
# `kubectl version --client`, `kubectl get nodes`, the backend and passphrase, the plugins,
# then the README's walkthrough block itself (read from README.md) and its first step, a
# `pulumi preview` of prepare against the lab's workloads, in a temp copy of the project; and
# `pulumi stack rm`. Also checks that git ignores walkthrough stack files but not the
# committed Pulumi.dev.yaml.
#
# Brings the lab up when it is not running (through lab:shell). Prints PASS/FAIL/SKIP lines and
# ends with "N passed, M failed", like test/lab/smoke.sh. Missing language host or command
# provider: SKIP, or FAIL under CI=true.
# shellcheck disable=SC2016 # the single-quoted commands are expanded in the lab shell
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd)
# shellcheck source=test/lab/lib.sh disable=SC1091
source test/lab/lib.sh
# shellcheck source=test/engine/versions.sh disable=SC1091
source test/engine/versions.sh

passed=0
failed=0
skipped=0
t0=$SECONDS
tmp=""
stack="walkthrough-ci-$$-${RANDOM}"
stack_made=0

ok() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    bad "$* (a skip is a failure under CI)"
  else
    skipped=$((skipped + 1))
    printf 'SKIP  %s\n' "$*"
  fi
}
check() { # DESC CMD...: pass when CMD succeeds
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else bad "$desc"; fi
}
# lsh CMD: CMD in `npm run lab:shell`; its stdout, stderr shown as it comes.
lsh() { npm run -s lab:shell -- -c "$1"; }
# tsh CMD: CMD in the temp project dir, in the lab shell.
tsh() { lsh "cd $(printf %q "$tmp") && $1"; }

finish() {
  local rc=$?
  if ((stack_made)); then
    tsh "pulumi stack rm --yes --force --stack $(printf %q "$stack")" >/dev/null 2>&1 || true
  fi
  [[ -z $tmp ]] || rm -rf "$tmp"
  ((rc == 0)) || ((failed > 0)) || failed=$((failed + 1))
  echo "walkthrough took $((SECONDS - t0))s"
  echo "${passed} passed, ${failed} failed"
  ((failed == 0))
}
trap finish EXIT

# ---------------------------------------------------------------- the shell itself
check "npm run lab:shell -- -c 'true' runs a command (starting the lab if needed)" lsh true
out=$(lsh 'echo "$KUBECONFIG"' || true)
check "KUBECONFIG is the lab's (got '${out}')" test "${out}" = "${KUBECONFIG_ADMIN}"

# ---------------------------------------------------------------- kubectl
out=$(lsh 'command -v kubectl' || true)
check "kubectl resolves to the lab's ${K8S_BIN}/kubectl (got '${out}')" test "${out}" = "${K8S_BIN}/kubectl"
out=$(lsh 'kubectl version --client' || true)
check "kubectl version --client says ${K8S_VER}" grep -q "^Client Version: ${K8S_VER}\$" <<<"${out}"
out=$(lsh 'kubectl get nodes --no-headers' || true)
check "kubectl get nodes lists a Ready node (got '${out//$'\n'/ | }')" grep -qE '^[^ ]+ +Ready ' <<<"${out}"

# ---------------------------------------------------------------- pulumi
out=$(lsh 'command -v pulumi' || true)
check "pulumi resolves to the cached ${PTM_PULUMI_BIN}/pulumi (got '${out}')" test "${out}" = "${PTM_PULUMI_BIN}/pulumi"
out=$(lsh 'pulumi version' || true)
check "pulumi version says v${PTM_PULUMI_VERSION} (got '${out}')" test "${out}" = "v${PTM_PULUMI_VERSION}"
backend=$(lsh 'echo "$PULUMI_BACKEND_URL"' || true)
dir=${backend#file://}
outside() { [[ ${backend} == file:///* && ${dir}/ != "${repo}"/* && -d ${dir} ]]; }
check "the backend is a file backend outside the repo (${backend})" outside
out=$(lsh 'pulumi whoami --verbose' || true)
check "pulumi whoami --verbose names that backend" grep -qF "Backend URL: ${backend}" <<<"${out}"
check "PULUMI_CONFIG_PASSPHRASE is set (empty is allowed)" lsh '[[ -n ${PULUMI_CONFIG_PASSPHRASE+set} ]]'

if [[ -x ${PTM_PULUMI_BIN}/pulumi-language-nodejs && -x ${PTM_COMMAND_BIN}/pulumi-resource-command ]]; then
  out=$(lsh 'command -v pulumi-language-nodejs' || true)
  check "the language host is the cached one (got '${out}')" test "${out}" = "${PTM_PULUMI_BIN}/pulumi-language-nodejs"
  out=$(lsh 'pulumi plugin ls' || true)
  check "pulumi plugin ls lists kubernetes ${PTM_K8S_VERSION}" \
    grep -qE "^kubernetes +resource +${PTM_K8S_VERSION//./\\.} " <<<"${out}"
  check "pulumi plugin ls lists command ${PTM_COMMAND_VERSION}" \
    grep -qE "^command +resource +${PTM_COMMAND_VERSION//./\\.} " <<<"${out}"
else
  skip "plugins: pulumi-language-nodejs / pulumi-resource-command are not in ${PTM_CACHE} (test/engine/README.md)"
fi

# ---------------------------------------------------------------- the README's walkthrough
# The shell block under "## Walkthrough" in README.md, as written (only the stack name made
# unique), then its step 1 with phase prepare: `pulumi preview` against the lab's workloads
# (the e2e level's fixtures). Run in a temp copy of the project, so nothing lands in the repo.
tmp=$(mktemp -d /tmp/ptm-walkthrough.XXXXXX)
cp -r Pulumi.yaml package.json tsconfig.json index.ts components "${tmp}/"
ln -s "${repo}/node_modules" "${tmp}/node_modules"
block=$(awk '/^## Walkthrough/ { w = 1 } w && /^```sh$/ { n++; if (n == 2) { b = 1; next } }
  b && /^```$/ { exit } b { print }' README.md)
check "README's walkthrough block starts with pulumi stack init migration" \
  grep -q '^pulumi stack init migration$' <<<"${block}"
if tsh "${block//pulumi stack init migration/pulumi stack init ${stack}}"; then
  stack_made=1
  ok "README's walkthrough block, command for command (stack ${stack})"
else
  stack_made=1
  bad "README's walkthrough block"
fi
# The lab's workloads live in the demo's own namespaces (test/e2e/fixtures.ts), not in the
# README's "monitoring" and BKPR's "kubeprod".
tsh 'pulumi config set --path source.namespace ptm-demo-monitoring && pulumi config set --path target.namespace ptm-demo-kubeprod' ||
  bad "setting the lab's namespaces"
out=$(tsh 'pulumi config get --path source.name' || true)
check "pulumi config get --path source.name (got '${out}')" test "${out}" = prometheus-server
out=$(tsh 'pulumi config set phase prepare && pulumi preview --non-interactive' 2>&1 || true)
printf '%s\n' "${out}" | tail -n 12
check "step 1, Review: pulumi preview of prepare plans the rsync Service and both patches" \
  grep -qE 'Resources:' <<<"${out}"
for want in 'kubernetes:core/v1:Service' 'kubernetes:apps/v1:DeploymentPatch' 'kubernetes:apps/v1:StatefulSetPatch'; do
  check "the preview shows ${want}" grep -q "${want}" <<<"${out}"
done
check "the preview reported no error" bash -c '! grep -qiE "error" <<<"$1"' _ "${out}"
if tsh "pulumi stack rm --yes --stack $(printf %q "${stack}")"; then
  stack_made=0
  ok "pulumi stack rm --yes"
else
  bad "pulumi stack rm --yes"
fi

# ---------------------------------------------------------------- git
check "git ignores walkthrough stack files (Pulumi.migration.yaml)" git check-ignore -q --no-index Pulumi.migration.yaml
check "git does not ignore the committed Pulumi.dev.yaml" test -z "$(git check-ignore --no-index Pulumi.dev.yaml || true)"
