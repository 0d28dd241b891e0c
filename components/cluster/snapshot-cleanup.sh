#!/bin/sh
# Runs on the operator's machine (kubectl), when the source's snapshot step is deleted (the
# revert, `pulumi destroy`): removes the snapshot in the source's sidecar, by running
# sidecar/cleanup-source.sh there ($PTM_CLEANUP_SCRIPT). The copy's delete runs it too, for
# the target's staging dir (SCRIPT cleanup-target): a target replica removed since the
# decision has no pod to run in either (issue 20 row 7). Users decommission the old server
# once the migration is verified: when no pod of the source runs any more (the workload was
# deleted, or scaled to 0), there is nothing to run it in. Then it says what it could not do
# and what stays behind, and exits 0, so that the revert and destroy finish. Any other failure
# to read the workload (forbidden, the API server unreachable) fails the delete: only NotFound
# and zero replicas mean "no pod" (lib.sh pod_presence).
#
#   sh -c "$PTM_SCRIPT" snapshot-cleanup NAMESPACE KIND NAME POD CONTAINER SNAPSHOT LEFT [SCRIPT WHAT]
#   (KIND/NAME: the workload whose pods run the sidecar; POD: the replica it runs in, empty
#    when kubectl picks the pod; LEFT: what stays behind, in words (decisions/leftBehind.ts);
#    SCRIPT: the sidecar script run (default cleanup-source); WHAT: what it removes, in words
#    (default "the snapshot SNAPSHOT");
#    env: PTM_CLEANUP_SCRIPT: lib.sh + cleanup-source.sh of the sidecar;
#    PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults)
#
# Stdout: cleanup-source.sh's {"removed":[...]}, or {"removed":[],"leftBehind":true}.
# Uses lib.sh (kc, pod_presence), which the program sends ahead of this script.
set -eu

ns=$1 kind=$2 name=$3 pod=$4 container=$5 snapshot=$6 left=$7
script=${8:-cleanup-source} what=${9:-the snapshot $snapshot}
log() { echo "snapshot-cleanup: $*" >&2; }
die() { echo "snapshot-cleanup: ERROR: $*" >&2; exit 1; }

[ -n "${PTM_CLEANUP_SCRIPT:-}" ] || die "PTM_CLEANUP_SCRIPT is not set"
presence=$(pod_presence "$ns" "$kind" "$name" "$pod") ||
  die "can't read $kind $ns/$name (see kubectl's error above), so whether a pod of it still holds $what can't be told; run again once kubectl may read it"
case $presence in
none\ *)
  log "${presence#none }: $what can't be removed, there is no pod to run in"
  log "LEFT BEHIND: $left"
  echo '{"removed":[],"leftBehind":true}'
  exit 0
  ;;
esac
at=$kind/$name
[ -z "$pod" ] || at=pod/$pod
# exec: a cancelled `pulumi up` kills the shell the command runs in; kubectl must be it.
exec kubectl ${PTM_KUBECONFIG:+--kubeconfig "$PTM_KUBECONFIG"} ${PTM_KUBE_CONTEXT:+--context "$PTM_KUBE_CONTEXT"} \
  exec -n "$ns" "$at" -c "$container" -- env "PTM_SNAPSHOT=$snapshot" sh -c "$PTM_CLEANUP_SCRIPT" "ptm-$script"
