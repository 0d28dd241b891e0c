#!/bin/sh
# Functions shared by the scripts that run on the operator's machine. The program sends this
# file and then the script in one `sh -c` (components/cluster/kubectl.ts localScript).
# shellcheck disable=SC2034 # sourced: the functions are used by the scripts that follow

# kubectl on the cluster the program's provider uses (PTM_KUBECONFIG, PTM_KUBE_CONTEXT), not
# kubectl's current context.
kc() {
  kubectl ${PTM_KUBECONFIG:+--kubeconfig "$PTM_KUBECONFIG"} ${PTM_KUBE_CONTEXT:+--context "$PTM_KUBE_CONTEXT"} "$@"
}

# kubectl patch and kubectl create as the program's one field manager (PTM_FIELD_MANAGER, set by
# the program: naming.ts FIELD_MANAGER), so that managedFields name the migration, run after run.
kc_patch() {
  kc patch ${PTM_FIELD_MANAGER:+--field-manager "$PTM_FIELD_MANAGER"} "$@"
}
kc_create() {
  kc create ${PTM_FIELD_MANAGER:+--field-manager "$PTM_FIELD_MANAGER"} "$@"
}

# The pod selector of a workload as k=v,k=v (empty when it has no matchLabels).
selector_of() { # NAMESPACE KIND NAME
  # shellcheck disable=SC2016 # a go-template, not shell
  s=$(kc get "$2" "$3" -n "$1" \
    -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}') || return 1
  printf '%s' "${s%,}"
}

# The admin-API flag the program appends for a head snapshot, and the annotation that records
# on the workload itself that this stack appended it to a container. Both go in one JSON
# patch, so a step that fails or is killed after the patch still leaves the record, and the
# revert removes the flag by it (admin-api.sh restore, rollout-settle.sh).
ADMIN_FLAG=--web.enable-admin-api
# A StatefulSet never replaces a pod of an older revision that isn't Ready (Kubernetes'
# "forced rollback" limitation, which its documentation says to fix by deleting the pod by
# hand): such pods are deleted, each named on stderr with PREFIX. A failed prepare leaves one
# (a sidecar image that can't be pulled); the revert, or an `up` with the cause fixed, rolls
# the StatefulSet to a new revision that would otherwise wait for it forever.
unstick_statefulset() { # NAMESPACE NAME SELECTOR PREFIX
  current=$(kc get statefulset "$2" -n "$1" -o jsonpath='{.status.updateRevision}') || return 0
  [ -n "$current" ] || return 0
  kc get pods -n "$1" -l "$3" -o go-template='{{range .items}}{{.metadata.name}} {{index .metadata.labels "controller-revision-hash"}} {{range .status.conditions}}{{if eq .type "Ready"}}{{.status}}{{end}}{{end}}{{"\n"}}{{end}}' |
    while read -r pod revision ready; do
      [ -n "$pod" ] || continue
      if [ "$revision" != "$current" ] && [ "$ready" != True ]; then
        echo "$4: deleting pod $1/$pod: it is stuck on revision $revision, not Ready, and the StatefulSet would never replace it" >&2
        kc delete pod "$pod" -n "$1" --wait=false >&2
      fi
    done
}

admin_record_key() { printf 'admin-api.prometheus-tsdb-migration.io/%s' "$1"; } # STACK

# The container named by this stack's record on the workload (empty: no record).
admin_record_of() { # NAMESPACE KIND NAME STACK
  key=$(admin_record_key "$4")
  # shellcheck disable=SC2016 # a go-template, not shell
  kc get "$2" "$3" -n "$1" -o go-template='{{range $k, $v := .metadata.annotations}}{{if eq $k "'"$key"'"}}{{$v}}{{end}}{{end}}'
}

# Index of a container in the workload's pod template (empty: no such container).
container_index() { # NAMESPACE KIND NAME CONTAINER
  kc get "$2" "$3" -n "$1" \
    -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}' |
    awk -v c="$4" '$0 == c { print NR - 1; exit }'
}

# Removes, in one JSON patch, the admin-API flag this stack appended (the last occurrence in
# the recorded container's args) and the record. Prints what it did on stderr; returns 0
# when there was no record.
admin_api_remove() { # NAMESPACE KIND NAME STACK
  c=$(admin_record_of "$1" "$2" "$3" "$4") || return 1
  [ -n "$c" ] || return 0
  pointer="/metadata/annotations/$(admin_record_key "$4" | sed 's,~,~0,g; s,/,~1,g')"
  ops="{\"op\":\"remove\",\"path\":\"$pointer\"}"
  i=$(container_index "$1" "$2" "$3" "$c") at=
  if [ -n "$i" ]; then
    at=$(kc get "$2" "$3" -n "$1" -o go-template="{{range (index .spec.template.spec.containers $i).args}}{{.}}{{\"\\n\"}}{{end}}" |
      awk -v f="$ADMIN_FLAG" '$0 == f { i = NR - 1 } END { if (i != "") print i }')
    if [ -n "$at" ]; then
      p=/spec/template/spec/containers/$i/args/$at
      ops="{\"op\":\"test\",\"path\":\"$p\",\"value\":\"$ADMIN_FLAG\"},{\"op\":\"remove\",\"path\":\"$p\"},$ops"
    fi
  fi
  echo "admin-api: removing $ADMIN_FLAG from $2 $1/$3 container $c${at:+ (args[$at])}, as recorded on it" >&2
  kc_patch "$2" "$3" -n "$1" --type=json -p "[$ops]" >&2
}

# Whether restarting a Prometheus now drops some of its own samples, from probe.sh's one JSON
# line on stdin: on start it replays its WAL only above the newest block's maxTime, so head
# samples older than that are lost until a head compaction has persisted them. The same rule
# as components/decisions/restartRisk.ts (2h blocks; the head moves on once it spans 3h).
# Prints "safe", "unknown" (the head's range could not be read) or
# "risk LOSS_FROM_MS LOSS_TO_MS SAFE_AFTER_MS".
restart_risk() {
  awk '
    # probe.sh embeds each meta.json as Prometheus wrote it: indented, "key": value.
    function num(s, key,   m) {
      if (match(s, "\"" key "\":[ \t]*-?[0-9]+")) { m = substr(s, RSTART, RLENGTH); sub(/.*:[ \t]*/, "", m); return m + 0 }
      return ""
    }
    {
      line = $0
      i = index(line, "\"snapshotBlocks\":"); blocks = (i > 0) ? substr(line, 1, i) : line
      newest = ""
      while (match(blocks, /"maxTime":[ \t]*-?[0-9]+/)) {
        v = substr(blocks, RSTART, RLENGTH); sub(/.*:[ \t]*/, "", v); v = v + 0
        if (newest == "" || v > newest) newest = v
        blocks = substr(blocks, RSTART + RLENGTH)
      }
      # probe.sh prints the head stats as "tsdb" (null when the API did not answer).
      j = index(line, "\"tsdb\":{")
      if (j == 0) { print "unknown"; exit }
      head = substr(line, j + 7); head = substr(head, 1, index(head, "}"))
      series = num(head, "numSeries"); hmin = num(head, "minTime"); hmax = num(head, "maxTime")
      if (series == "" || hmin == "" || hmax == "") { print "unknown"; exit }
      # An empty head: no series, or the sentinels of an empty range.
      if (series == 0 || hmin > hmax || hmin >= 1e15 || hmax <= 0 || newest == "" || hmin >= newest) { print "safe"; exit }
      to = (newest < hmax) ? newest : hmax
      b = 7200000
      safe = (newest % b == 0 ? newest : (int(newest / b) + 1) * b) + 3600000 + 180000
      printf "risk %.0f %.0f %.0f\n", hmin, to, safe
    }'
}

# Whether a workload still runs the pod a step execs into: "run", or "none WHY" when there is
# none to run in because the workload was deleted (NotFound) or runs no such pod (scaled to 0;
# POD, a replica of a StatefulSet, at or above its replicas' ordinals). Fails when kubectl can't
# tell (forbidden, the API server unreachable): that is never taken for "none" (fail closed).
pod_presence() { # NAMESPACE KIND NAME [POD]
  pp_w=$(kc get "$2" "$3" -n "$1" --ignore-not-found \
    -o jsonpath='{.metadata.name} {.spec.replicas} {.spec.ordinals.start}') || return 1
  pp_pod=${4:-}
  # shellcheck disable=SC2086 # split into words on purpose
  set -- "$1" "$2" "$3" $pp_w
  if [ $# -lt 4 ]; then
    echo "none $2 $1/$3 does not exist any more"
    return 0
  fi
  pp_replicas=${5:-1} pp_start=${6:-0}
  if [ "$pp_replicas" = 0 ]; then
    echo "none $2 $1/$3 is scaled to 0 replicas"
    return 0
  fi
  pp_ordinal=${pp_pod##*-}
  case $pp_pod:$pp_ordinal in
  :* | *:*[!0-9]* | *:) ;;
  *)
    if [ "$pp_ordinal" -lt "$pp_start" ] || [ "$pp_ordinal" -ge $((pp_start + pp_replicas)) ]; then
      echo "none pod $1/$pp_pod is no replica of $2 $1/$3 any more (it runs $pp_replicas)"
      return 0
    fi
    ;;
  esac
  echo run
}
