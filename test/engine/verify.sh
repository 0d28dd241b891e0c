#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# test/engine/verify.sh - end-to-end check of the offline Pulumi setup (test/engine/env.sh)
# in throwaway projects under a temp dir:
#   1. @pulumi/command local.Command echo: `pulumi stack init dev && pulumi up --yes`
#   2. @pulumi/kubernetes: `pulumi preview` loads the kubernetes plugin at the
#      pinned version (no cluster needed: the provider points at 127.0.0.1:1).
# Needs the npm registry for the npm installs; pulumi itself runs offline
# (plugin acquisition disabled). Uses its own PULUMI_HOME and backend dir unless
# PTM_VERIFY_SHARED=1, so it does not touch the stacks of the real backend.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/ptm-verify.XXXXXX")
if [[ ${PTM_KEEP_WORK:-0} != 1 ]]; then
  trap 'rm -rf "$T"' EXIT
fi

if [[ ${PTM_VERIFY_SHARED:-0} != 1 ]]; then
  export PTM_PULUMI_HOME=$T/pulumi-home PTM_BACKEND_DIR=$T/backend
fi
# env.sh must not inherit our set -e into its own logic; it runs its setup in a subshell.
# shellcheck source=env.sh
source "$HERE/env.sh"
# keep kubectl-style config from reaching the provider: it must not talk to any real cluster
export KUBECONFIG=$T/no-kubeconfig

# pins of the npm side (versions.sh has the plugin side)
NPM_PULUMI="@pulumi/pulumi@$PTM_PULUMI_VERSION"
NPM_COMMAND="@pulumi/command@$PTM_COMMAND_VERSION"
NPM_K8S="@pulumi/kubernetes@$PTM_K8S_VERSION"
# typescript `latest` (7.x) is outside @pulumi/pulumi's peer range (<7)
NPM_TOOLS=(typescript@5 ts-node@10 @types/node@20)

log() { printf '%s verify.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

npm_project() { # DIR NAME PACKAGES...
  local dir=$1 name=$2
  shift 2
  mkdir -p "$dir"
  printf '{ "name": "%s", "private": true, "main": "index.ts" }\n' "$name" >"$dir/package.json"
  printf 'name: %s\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n' "$name" >"$dir/Pulumi.yaml"
  cat >"$dir/tsconfig.json" <<'EOF'
{ "compilerOptions": { "strict": true, "target": "es2020", "module": "commonjs",
  "moduleResolution": "node", "esModuleInterop": true, "skipLibCheck": true },
  "files": ["index.ts"] }
EOF
  (cd "$dir" && npm install --no-audit --no-fund --save-exact "$@" "${NPM_TOOLS[@]}" >npm.log 2>&1) ||
    { tail -20 "$dir/npm.log" >&2; return 1; }
}

check_sdk_pin() { # DIR PACKAGE WANT_VERSION
  local got
  got=$(cd "$1" && node -p "require('$2/package.json').pulumi.version")
  [[ $got == "$3" ]] || { log "FAIL: $2 asks for plugin $got, cache has $3"; return 1; }
}

fail=0

# --- 1. command ------------------------------------------------------------
P1=$T/cmd
log "1. command project in $P1"
npm_project "$P1" ptm-verify-cmd "$NPM_PULUMI" "$NPM_COMMAND"
check_sdk_pin "$P1" @pulumi/command "$PTM_COMMAND_VERSION"
cat >"$P1/index.ts" <<'EOF'
import * as command from "@pulumi/command";

const hello = new command.local.Command("hello", { create: "echo hello from ptm" });
export const stdout = hello.stdout;
EOF
t0=$(date +%s)
if (cd "$P1" && pulumi stack init dev --non-interactive && pulumi up --yes --non-interactive --skip-preview) >"$T/cmd-up.log" 2>&1 &&
  [[ $(cd "$P1" && pulumi stack output stdout) == "hello from ptm" ]]; then
  log "1. OK: pulumi up in $(($(date +%s) - t0))s, stack output stdout = 'hello from ptm'"
else
  log "1. FAIL"
  tail -30 "$T/cmd-up.log" >&2
  fail=1
fi
if grep -qF "from \$PATH" "$T/cmd-up.log"; then
  log "1. note: a provider was taken from PATH (ambient), not from PULUMI_HOME"
fi

# --- 2. kubernetes -----------------------------------------------------------
P2=$T/k8s
log "2. kubernetes project in $P2"
npm_project "$P2" ptm-verify-k8s "$NPM_PULUMI" "$NPM_K8S"
check_sdk_pin "$P2" @pulumi/kubernetes "$PTM_K8S_VERSION"
cat >"$T/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: { server: "https://127.0.0.1:1" }
contexts:
- name: nowhere
  context: { cluster: nowhere, user: nobody }
current-context: nowhere
users:
- name: nobody
  user: { token: none }
EOF
cat >"$P2/index.ts" <<EOF
import * as k8s from "@pulumi/kubernetes";
import * as fs from "fs";

const provider = new k8s.Provider("nowhere", {
    kubeconfig: fs.readFileSync("$T/kubeconfig", "utf8"),
});
new k8s.core.v1.ConfigMap("probe", { data: { a: "b" } }, { provider });
EOF
(cd "$P2" && pulumi stack init dev --non-interactive >/dev/null)
# The preview may fail to reach the cluster; what matters is which plugin loads.
(cd "$P2" && pulumi preview --non-interactive --logtostderr -v=7 >"$T/k8s-preview.out" 2>"$T/k8s-preview.log") || true
if grep -Eq "resource-kubernetes-v$PTM_K8S_VERSION/pulumi-resource-kubernetes|kubernetes.*(v|@)$PTM_K8S_VERSION" "$T/k8s-preview.log"; then
  log "2. OK: kubernetes plugin $PTM_K8S_VERSION loaded"
  grep -E -m3 "resource-kubernetes-v$PTM_K8S_VERSION" "$T/k8s-preview.log" | cut -c1-240 >&2 || true
else
  log "2. FAIL: no kubernetes $PTM_K8S_VERSION plugin load in the preview log"
  tail -30 "$T/k8s-preview.out" >&2
  fail=1
fi
sed -n '/^Diagnostics/,$p' "$T/k8s-preview.out" | head -15 >&2 || true

if ((fail)); then
  log "FAILED (logs kept in $T)"
  trap - EXIT
  exit 1
fi
log "all checks passed"
