#!/bin/sh
# Runs on the operator's machine (kubectl): records one Event of the migration on a workload,
# so that `kubectl describe` shows the phase. Best effort: the migration never fails because
# an Event could not be written (no right to create events, an old kubectl); it warns instead.
#
#   sh -c "$PTM_SCRIPT" event NAMESPACE RESOURCE NAME
#   (env: PTM_EVENT: the Event as JSON (decisions/events.ts), with __PTM_UID__ and __PTM_NOW__
#    where the workload's uid and the time go; PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster)
#
# Prints {"recorded":true|false} on stdout; the reason for false on stderr.
# Uses lib.sh (kc, kc_create), which the program sends ahead of this script.
set -u

ns=$1 res=$2 name=$3
skip() {
  echo "event: WARNING: no Event recorded on $res $ns/$name: $*; the migration goes on without it" >&2
  echo '{"recorded":false}'
  exit 0
}

[ -n "${PTM_EVENT:-}" ] || skip "PTM_EVENT is not set"
uid=$(kc get "$res" "$name" -n "$ns" -o jsonpath='{.metadata.uid}') || skip "it can't be read (see kubectl's error above)"
[ -n "$uid" ] || skip "it has no uid"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '%s\n' "$PTM_EVENT" | sed "s/__PTM_UID__/$uid/g; s/__PTM_NOW__/$now/g" |
  kc_create -f - -o name >&2 ||
  skip "kubectl create failed (see above; creating events in $ns needs the right to create events)"
echo '{"recorded":true}'
