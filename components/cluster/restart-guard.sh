#!/bin/sh
# Runs on the operator's machine (kubectl), when the migration's guard is deleted: at
# `pulumi destroy`, before any sidecar patch is removed (every other resource of the
# migration is a dependency of the guard, so it goes first). Removing the target's sidecar
# restarts the target, which would drop its own samples that are older than the newest
# imported block and not yet compacted. This refuses, and so stops the destroy with the state
# intact, when that would happen or when it can't be checked; the revert (`phase` unset)
# runs the same check in the program.
#
#   sh -c "$PTM_SCRIPT" restart-guard NAMESPACE KIND NAME PODS SIDECAR PROMETHEUS DATA URL
#   (KIND/NAME: the workload whose template has the sidecar; PODS: every pod that restarts,
#    comma-separated as kubectl names them, e.g. pod/prometheus-k8s-0,pod/prometheus-k8s-1)
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; PTM_PROBE_SCRIPT: lib.sh + probe.sh of
#    the sidecar; PTM_FORCE_REVERT=true: don't check, as the forceRevert config says, or as
#    set in the shell that runs `pulumi destroy`)
# Uses lib.sh (kc, restart_risk), which the program sends ahead of this script.
set -eu

ns=$1 kind=$2 name=$3 pods=$4 sidecar=$5 prometheus=$6 data=$7 url=$8
log() { echo "restart-guard: $*" >&2; }
refuse() {
  echo "restart-guard: REFUSED: $* To go ahead anyway: \`pulumi config set prometheus-tsdb-migration:forceRevert true && pulumi up\`, then destroy again; or \`PTM_FORCE_REVERT=true pulumi destroy\`." >&2
  exit 1
}
iso() { date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "$1 ms"; }

if [ "${PTM_FORCE_REVERT:-false}" = true ]; then
  log "forceRevert is set: the target's restart is not checked"
  exit 0
fi
found=$(kc get "$kind" "$name" -n "$ns" --ignore-not-found -o name) ||
  refuse "the target $kind $ns/$name can't be read (see kubectl's error above), so whether its restart drops samples can't be checked."
if [ -z "$found" ]; then
  log "$kind $ns/$name is gone: nothing will restart"
  exit 0
fi
containers=$(kc get "$kind" "$name" -n "$ns" -o jsonpath='{.spec.template.spec.containers[*].name}') ||
  refuse "the target $kind $ns/$name can't be read, so whether its restart drops samples can't be checked."
case " $containers " in
*" $sidecar "*) ;;
*)
  log "$kind $ns/$name has no $sidecar container: nothing will restart"
  exit 0
  ;;
esac

probe_in() { # POD CONTAINER
  kc exec -n "$ns" "$1" -c "$2" -- env PTM_DATA="$data" PTM_PROM_URL="$url" sh -c "$PTM_PROBE_SCRIPT" ptm-probe 2>/dev/null | tail -n 1
}

# Every pod restarts when the sidecar goes: each must be safe.
for pod in $(printf '%s\n' "$pods" | tr ',' ' '); do
  out=$(probe_in "$pod" "$sidecar") || out=
  case $out in '{"blocks":'*) ;; *) out=$(probe_in "$pod" "$prometheus") || out= ;; esac
  case $out in
  '{"blocks":'*) ;;
  *) refuse "the target's $pod ($kind $ns/$name) can't be probed (kubectl exec into $sidecar and $prometheus failed), so whether its restart drops samples can't be checked." ;;
  esac
  # shellcheck disable=SC2046 # split into words on purpose
  set -- $(printf '%s\n' "$out" | restart_risk)
  case ${1:-} in
  safe)
    log "restarting $pod ($kind $ns/$name) loses nothing: its head holds nothing older than its newest block"
    ;;
  risk)
    refuse "removing the target's sidecar restarts $pod ($kind $ns/$name), which would drop its own samples from $(iso "$2") to $(iso "$3") (older than the newest imported block, not yet compacted). Destroy after $(iso "$4"), when its next compaction has persisted them."
    ;;
  *)
    refuse "the target's Prometheus in $pod ($kind $ns/$name) did not report its head's time range (/api/v1/status/tsdb), so whether its restart drops samples can't be checked."
    ;;
  esac
done
