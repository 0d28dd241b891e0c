#!/bin/sh
# Runs on the operator's machine (kubectl): switches the source Prometheus's admin API on
# for a head snapshot, and off again exactly as it was.
#
#   sh -c "$PTM_SCRIPT" admin-api enable|restore NAMESPACE KIND NAME CONTAINER TIMEOUT STACK
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults)
#
# enable  appends --web.enable-admin-api to the container's args (never replaces the list)
#         and records that on the workload (annotation admin-api.prometheus-tsdb-migration.io/
#         STACK = CONTAINER), both in one JSON patch; waits for the rollout and prints
#         {"changed":true|false,"index":N}. When the rollout fails, it removes both again
#         before it fails. A flag this stack's record says it appended (an earlier attempt
#         that was interrupted) is adopted: changed, so that the revert removes it.
# restore removes the flag this stack appended and the record (lib.sh admin_api_remove), so
#         the args list is again what it was. It does not wait: the revert removes the
#         sidecar right after and waits once for both (rollout-settle.sh). Without a record
#         (a flag that was on before) nothing changes.
#
# A container's args is an atomic list: a Server-Side Apply patch that owned it would delete
# the original flags when it let go. A JSON patch that adds and later removes one element
# leaves every other element as it was. rollout-settle.sh removes a recorded flag too, so a
# revert after a failed or killed `enable` still gives the args back.
# Uses lib.sh (kc, admin_*), which the program sends ahead of this script.
set -eu

action=$1 ns=$2 kind=$3 name=$4 container=$5 timeout=$6 stack=$7
die() { echo "admin-api: ERROR: $*" >&2; exit 1; }

# The workload may be gone by the revert (the old server decommissioned once the migration was
# verified): its args went with it. Only kubectl's NotFound means gone; any other failure to
# read it fails (fail closed).
found=$(kc get "$kind" "$name" -n "$ns" --ignore-not-found -o name) ||
  die "can't read $kind $ns/$name (see kubectl's error above); run again once kubectl may read it"
if [ -z "$found" ]; then
  [ "$action" = restore ] || die "$kind $ns/$name does not exist"
  echo "admin-api: $kind $ns/$name does not exist any more: its args went with it, nothing to restore" >&2
  exit 0
fi

index=$(container_index "$ns" "$kind" "$name" "$container")
[ -n "$index" ] || die "$kind $ns/$name has no container $container"
path=/spec/template/spec/containers/$index

# The container's args, one per line.
args() {
  kc get "$kind" "$name" -n "$ns" -o go-template="{{range (index .spec.template.spec.containers $index).args}}{{.}}{{\"\\n\"}}{{end}}"
}

rollout() {
  kc rollout status "$kind/$name" -n "$ns" --timeout="${timeout}s" >&2
}

case $action in
enable)
  if args | grep -qx -- "$ADMIN_FLAG"; then
    if [ "$(admin_record_of "$ns" "$kind" "$name" "$stack")" = "$container" ]; then
      echo "admin-api: $ADMIN_FLAG was appended by an earlier attempt of this stack (recorded on $kind $ns/$name); keeping it until the revert" >&2
      rollout
      echo "{\"changed\":true,\"index\":$index}"
      exit 0
    fi
    echo "admin-api: $ADMIN_FLAG is already on" >&2
    echo "{\"changed\":false,\"index\":$index}"
    exit 0
  fi
  [ -n "$(args)" ] || die "container $container has no args (the image's default command line is in use): appending a flag would replace it; add $ADMIN_FLAG yourself"
  echo "admin-api: appending $ADMIN_FLAG to $kind $ns/$name container $container" >&2
  key=$(admin_record_key "$stack" | sed 's,~,~0,g; s,/,~1,g')
  if [ -n "$(kc get "$kind" "$name" -n "$ns" -o jsonpath='{.metadata.annotations}')" ]; then
    record="{\"op\":\"add\",\"path\":\"/metadata/annotations/$key\",\"value\":\"$container\"}"
  else
    record="{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"$(admin_record_key "$stack")\":\"$container\"}}"
  fi
  kc_patch "$kind" "$name" -n "$ns" --type=json -p \
    "[{\"op\":\"test\",\"path\":\"$path/name\",\"value\":\"$container\"},{\"op\":\"add\",\"path\":\"$path/args/-\",\"value\":\"$ADMIN_FLAG\"},$record]" >&2
  if ! rollout; then
    echo "admin-api: $kind $ns/$name did not roll out with $ADMIN_FLAG within ${timeout}s; removing it again" >&2
    admin_api_remove "$ns" "$kind" "$name" "$stack" || true
    die "$kind $ns/$name did not roll out with the admin API on within ${timeout}s, so $ADMIN_FLAG was removed again; see kubectl -n $ns get pods and the pods' events, then run pulumi up again (or set includeHead to false)"
  fi
  echo "{\"changed\":true,\"index\":$index}"
  ;;
restore)
  if [ -n "$(admin_record_of "$ns" "$kind" "$name" "$stack")" ]; then
    admin_api_remove "$ns" "$kind" "$name" "$stack"
  else
    # Switched on by a version without the record: its output says whether it appended.
    case ${PULUMI_COMMAND_STDOUT:-} in
    *'"changed":true'*) ;;
    *) echo "admin-api: no record of $ADMIN_FLAG appended by this stack on $kind $ns/$name; nothing to restore" >&2; exit 0 ;;
    esac
    at=$(args | awk -v f="$ADMIN_FLAG" '$0 == f { i = NR - 1 } END { if (i != "") print i }')
    [ -n "$at" ] || { echo "admin-api: $ADMIN_FLAG is no longer there; nothing to restore" >&2; exit 0; }
    echo "admin-api: removing $ADMIN_FLAG (args[$at]) from $kind $ns/$name container $container" >&2
    kc_patch "$kind" "$name" -n "$ns" --type=json -p \
      "[{\"op\":\"test\",\"path\":\"$path/args/$at\",\"value\":\"$ADMIN_FLAG\"},{\"op\":\"remove\",\"path\":\"$path/args/$at\"}]" >&2
  fi
  # No wait here: at the revert the sidecar patch goes right after this, and its
  # rollout-settle waits once for the restored template (one rollout, not one per change).
  # Leaving includeHead alone (the sidecar stays) rolls out in the background.
  echo "admin-api: the rollout of the restored args is awaited with the sidecar's removal (rollout-settle)" >&2
  ;;
*) die "unknown action $action" ;;
esac
