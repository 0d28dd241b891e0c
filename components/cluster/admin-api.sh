#!/bin/sh
# Runs on the operator's machine (kubectl): switches the source Prometheus's admin API on
# for a head snapshot, and off again exactly as it was.
#
#   sh -c "$PTM_SCRIPT" admin-api enable|restore NAMESPACE KIND NAME CONTAINER TIMEOUT
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults)
#
# enable  appends --web.enable-admin-api to the container's args (never replaces the list),
#         waits for the rollout, and prints {"changed":true|false,"index":N}.
# restore removes exactly the element it appended (found in $PULUMI_COMMAND_STDOUT, the
#         output of enable), so the args list is again what it was, and waits for the rollout.
#
# A container's args is an atomic list: a Server-Side Apply patch that owned it would delete
# the original flags when it let go. A JSON patch that adds and later removes one element
# leaves every other element as it was.
# Uses lib.sh (kc), which the program sends ahead of this script.
set -eu

FLAG=--web.enable-admin-api
action=$1 ns=$2 kind=$3 name=$4 container=$5 timeout=$6
die() { echo "admin-api: ERROR: $*" >&2; exit 1; }


# Index of the container in the pod template.
index=$(kc get "$kind" "$name" -n "$ns" \
  -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}' |
  awk -v c="$container" '$0 == c { print NR - 1; exit }')
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
  if args | grep -qx -- "$FLAG"; then
    echo "admin-api: $FLAG is already on" >&2
    echo "{\"changed\":false,\"index\":$index}"
    exit 0
  fi
  [ -n "$(args)" ] || die "container $container has no args (the image's default command line is in use): appending a flag would replace it; add $FLAG yourself"
  echo "admin-api: appending $FLAG to $kind $ns/$name container $container" >&2
  kc patch "$kind" "$name" -n "$ns" --type=json -p \
    "[{\"op\":\"test\",\"path\":\"$path/name\",\"value\":\"$container\"},{\"op\":\"add\",\"path\":\"$path/args/-\",\"value\":\"$FLAG\"}]" >&2
  rollout
  echo "{\"changed\":true,\"index\":$index}"
  ;;
restore)
  case ${PULUMI_COMMAND_STDOUT:-} in
  *'"changed":true'*) ;;
  *) echo "admin-api: nothing to restore" >&2; exit 0 ;;
  esac
  at=$(args | awk -v f="$FLAG" '$0 == f { i = NR - 1 } END { if (i != "") print i }')
  if [ -z "$at" ]; then
    echo "admin-api: $FLAG is no longer there; nothing to restore" >&2
    exit 0
  fi
  echo "admin-api: removing $FLAG (args[$at]) from $kind $ns/$name container $container" >&2
  kc patch "$kind" "$name" -n "$ns" --type=json -p \
    "[{\"op\":\"test\",\"path\":\"$path/args/$at\",\"value\":\"$FLAG\"},{\"op\":\"remove\",\"path\":\"$path/args/$at\"}]" >&2
  rollout
  ;;
*) die "unknown action $action" ;;
esac
