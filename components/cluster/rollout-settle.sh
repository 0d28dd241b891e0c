#!/bin/sh
# Runs on the operator's machine (kubectl), at the revert, right after a sidecar patch was
# removed: waits until the workload runs its restored template again. A StatefulSet never
# replaces a pod of a broken revision that isn't Ready (Kubernetes' "forced rollback"
# limitation, which its documentation says to fix by deleting the pod by hand); such a pod is
# deleted here, so that the revert needs no hand work. Says what it did.
#
#   sh -c "$PTM_SCRIPT" rollout-settle NAMESPACE KIND NAME TIMEOUT
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults;
#    PTM_STACK: this stack, whose admin-API record on the workload is honoured)
#
# First, an admin-API flag that this stack appended and whose step never finished (a failed
# or killed `enable`, so nothing in the state would remove it) is removed by the record that
# admin-api.sh put on the workload, in the same rollout.
# Uses lib.sh (kc, selector_of, unstick_statefulset), which the program sends ahead of this script.
set -eu

ns=$1 kind=$2 name=$3 timeout=$4
log() { echo "rollout-settle: $*" >&2; }
die() { echo "rollout-settle: ERROR: $*" >&2; exit 1; }

# Gone (the old server decommissioned after the migration): nothing restarts. Only kubectl's
# NotFound means gone; any other failure to read it fails (fail closed).
found=$(kc get "$kind" "$name" -n "$ns" --ignore-not-found -o name) ||
  die "can't read $kind $ns/$name (see kubectl's error above); run again once kubectl may read it"
if [ -z "$found" ]; then
  log "$kind $ns/$name does not exist any more: nothing to wait for"
  exit 0
fi
selector=$(selector_of "$ns" "$kind" "$name")
if [ -n "${PTM_STACK:-}" ]; then
  admin_api_remove "$ns" "$kind" "$name" "$PTM_STACK" ||
    die "could not remove the admin-API flag recorded on $kind $ns/$name; see the error above"
fi

start=$(date +%s)
while :; do
  if kc rollout status "$kind/$name" -n "$ns" --timeout=15s >/dev/null 2>&1; then
    log "$kind $ns/$name runs its restored template ($(($(date +%s) - start))s)"
    exit 0
  fi
  # Pods of an older revision that are not Ready: the controller waits for them forever.
  [ "$kind" != statefulset ] || unstick_statefulset "$ns" "$name" "$selector" rollout-settle
  elapsed=$(($(date +%s) - start))
  [ "$elapsed" -lt "$timeout" ] ||
    die "$kind $ns/$name has not rolled out its restored template after ${elapsed}s; see kubectl -n $ns get pods -l $selector"
  log "waiting for $kind $ns/$name to run its restored template (${elapsed}s)"
done
