#!/bin/sh
# Runs on the operator's machine (kubectl): changes a prometheus-operator `Prometheus` resource
# for the migration, and gives it back exactly as it was.
#
#   sh -c "$PTM_SCRIPT" prometheus-resource ACTION NAMESPACE NAME [ARGS]
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults)
#
#   add-sidecar NS NAME          adds the container $PTM_CONTAINER (JSON) to spec.containers, the
#                                volume $PTM_VOLUME (JSON) to spec.volumes and the labels
#                                $PTM_LABELS ("k=v k=v") to metadata.labels, in one JSON patch.
#                                Prints {"containers":M,"volumes":M,"labels":M}, M saying whether
#                                it created the list (map), appended to it or replaced its own
#                                element left by an earlier run; run again as an update (the
#                                earlier output in $PULUMI_COMMAND_STDOUT), it keeps the first
#                                run's M, so the revert still removes a list it created.
#   remove-sidecar NS NAME STS TIMEOUT
#                                removes exactly what add-sidecar added (its output is in
#                                $PULUMI_COMMAND_STDOUT): the elements named $PTM_CONTAINER_NAME
#                                and $PTM_VOLUME_NAME, the list itself when add-sidecar created
#                                it, the labels (and $PTM_LEGACY_LABELS, the keys an earlier
#                                version wrote, when present). Then waits until the operator has taken the
#                                container out of the generated StatefulSet STS.
#   enable-admin-api NS NAME     sets spec.enableAdminAPI to true; prints
#                                {"changed":true,"was":"false"|"unset"} or {"changed":false}.
#   restore-admin-api NS NAME STS TIMEOUT
#                                puts spec.enableAdminAPI back as it was (unset stays unset), then
#                                waits until the generated StatefulSet has dropped the flag.
#   wait-generated NS NAME STS WHAT VALUE TIMEOUT
#                                waits until the operator has reconciled the resource into STS:
#                                WHAT is has-container|lacks-container (VALUE a container name)
#                                or has-flag|lacks-flag (VALUE a flag of the prometheus container).
#
# The CRD types spec.containers and spec.volumes as atomic lists: a Server-Side Apply patch
# would own the whole list and delete the user's elements when it let go. A JSON patch adds one
# element and later removes exactly that one, and a test of metadata.resourceVersion makes the
# patch fail instead of overwriting a change made in between.
# Uses lib.sh (kc), which the program sends ahead of this script.
set -eu

R=prometheuses.monitoring.coreos.com
action=$1 ns=$2 name=$3
log() { echo "prometheus-resource: $*" >&2; }
die() { echo "prometheus-resource: ERROR: $*" >&2; exit 1; }

get() { kc get "$R" "$name" -n "$ns" -o jsonpath="$1"; }
# Whether the resource exists. Only kubectl's NotFound is a "no" (a source decommissioned
# after the migration); any other failure to read it fails (fail closed).
exists() {
  found=$(kc get "$R" "$name" -n "$ns" --ignore-not-found -o name) ||
    die "can't read Prometheus $ns/$name (see kubectl's error above); run again once kubectl may read it"
  [ -n "$found" ]
}
# Names of the elements of spec.LIST, one per line.
names() { get "{range .spec.$1[*]}{.name}{\"\\n\"}{end}"; }
# Index of the element of spec.LIST named NAME (empty: none).
index_of() { names "$1" | awk -v n="$2" '$0 == n { print NR - 1; exit }'; }
# JSON pointer of a label key (RFC 6901: ~ and / escaped).
label_pointer() { printf '/metadata/labels/%s' "$(printf '%s' "$1" | sed 's,~,~0,g; s,/,~1,g')"; }
patch() { # OPS (comma-separated JSON patch operations)
  kc_patch "$R" "$name" -n "$ns" --type=json -p "[$1]" >/dev/null
}
rv_test() {
  printf '{"op":"test","path":"/metadata/resourceVersion","value":"%s"}' "$(get '{.metadata.resourceVersion}')"
}

# Sets $out to the ops that add ELEMENT (JSON) named ELNAME to spec.LIST, and $mode.
add_element() { # LIST ELNAME ELEMENT
  i=$(index_of "$1" "$2")
  if [ -n "$i" ]; then
    mode=replaced
    out=$(printf ',{"op":"replace","path":"/spec/%s/%s","value":%s}' "$1" "$i" "$3")
  elif [ -n "$(get "{.spec.$1}")" ]; then
    mode=appended
    out=$(printf ',{"op":"add","path":"/spec/%s/-","value":%s}' "$1" "$3")
  else
    mode=created
    out=$(printf ',{"op":"add","path":"/spec/%s","value":[%s]}' "$1" "$3")
  fi
}

# Ops that remove the element named ELNAME from spec.LIST, and the list when MODE is created
# and nothing else is in it.
remove_element() { # LIST ELNAME MODE
  i=$(index_of "$1" "$2")
  [ -n "$i" ] || return 0
  p=/spec/$1/$i
  if [ "$3" = created ] && [ "$(names "$1" | grep -c .)" = 1 ]; then
    printf ',{"op":"test","path":"%s/name","value":"%s"},{"op":"remove","path":"/spec/%s"}' "$p" "$2" "$1"
  else
    printf ',{"op":"test","path":"%s/name","value":"%s"},{"op":"remove","path":"%s"}' "$p" "$2" "$p"
  fi
}

# The value of KEY in a one-line JSON object of strings (what add-sidecar printed).
field() { # JSON KEY
  printf '%s' "$1" | sed -n "s/.*\"$2\":\"\\([a-z]*\\)\".*/\\1/p"
}

container_names() { # STS
  kc get statefulset "$1" -n "$ns" -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}'
}
prometheus_args() { # STS
  kc get statefulset "$1" -n "$ns" \
    -o jsonpath='{range .spec.template.spec.containers[?(@.name=="prometheus")].args[*]}{@}{"\n"}{end}'
}
reflected() { # STS WHAT VALUE
  case $2 in
  has-container) container_names "$1" | grep -qx -- "$3" ;;
  lacks-container) ! container_names "$1" | grep -qx -- "$3" ;;
  has-flag) prometheus_args "$1" | grep -qxE -- "$3(=true)?" ;;
  lacks-flag) ! prometheus_args "$1" | grep -qxE -- "$3(=true)?" ;;
  *) die "unknown condition $2" ;;
  esac
}
wait_generated() { # STS WHAT VALUE TIMEOUT
  start=$(date +%s)
  until reflected "$1" "$2" "$3"; do
    elapsed=$(($(date +%s) - start))
    [ "$elapsed" -lt "$4" ] ||
      die "after ${elapsed}s the operator has still not reconciled Prometheus $ns/$name into StatefulSet $1 ($2 $3). Is prometheus-operator running? See its logs and kubectl -n $ns describe prometheus $name"
    log "waiting for the operator to reconcile StatefulSet $ns/$1 ($2 $3, ${elapsed}s)"
    sleep 3
  done
}

case $action in
add-sidecar)
  for v in "${PTM_CONTAINER:-}" "${PTM_CONTAINER_NAME:-}" "${PTM_VOLUME:-}" "${PTM_VOLUME_NAME:-}"; do
    [ -n "$v" ] || die "PTM_CONTAINER, PTM_CONTAINER_NAME, PTM_VOLUME and PTM_VOLUME_NAME are required"
  done
  kc get "$R" "$name" -n "$ns" >/dev/null || die "can't read Prometheus $ns/$name"
  ops=$(rv_test)
  # An update runs this again with the first run's output in PULUMI_COMMAND_STDOUT: what
  # that run found (a list it created) still decides what the revert removes.
  prev=${PULUMI_COMMAND_STDOUT:-}
  add_element containers "$PTM_CONTAINER_NAME" "$PTM_CONTAINER"
  c_ops=$out c_mode=$mode
  [ "$c_mode" != replaced ] || c_mode=$(field "$prev" containers) c_mode=${c_mode:-replaced}
  add_element volumes "$PTM_VOLUME_NAME" "$PTM_VOLUME"
  v_ops=$out v_mode=$mode
  [ "$v_mode" != replaced ] || v_mode=$(field "$prev" volumes) v_mode=${v_mode:-replaced}
  l_ops=
  if [ -n "$(get '{.metadata.labels}')" ]; then
    l_mode=$(field "$prev" labels) l_mode=${l_mode:-added}
    for kv in ${PTM_LABELS:-}; do
      l_ops="$l_ops$(printf ',{"op":"add","path":"%s","value":"%s"}' "$(label_pointer "${kv%%=*}")" "${kv#*=}")"
    done
  else
    l_mode=created
    map=
    for kv in ${PTM_LABELS:-}; do
      map="$map${map:+,}$(printf '"%s":"%s"' "${kv%%=*}" "${kv#*=}")"
    done
    [ -z "$map" ] || l_ops=$(printf ',{"op":"add","path":"/metadata/labels","value":{%s}}' "$map")
  fi
  log "adding container $PTM_CONTAINER_NAME ($c_mode) and volume $PTM_VOLUME_NAME ($v_mode) to Prometheus $ns/$name"
  patch "$ops$c_ops$v_ops$l_ops" ||
    die "the JSON patch of Prometheus $ns/$name failed (changed in between? run pulumi up again)"
  echo "{\"containers\":\"$c_mode\",\"volumes\":\"$v_mode\",\"labels\":\"$l_mode\"}"
  ;;
remove-sidecar)
  sts=$4 timeout=$5
  for v in "${PTM_CONTAINER_NAME:-}" "${PTM_VOLUME_NAME:-}"; do
    [ -n "$v" ] || die "PTM_CONTAINER_NAME and PTM_VOLUME_NAME are required"
  done
  if ! exists; then
    log "Prometheus $ns/$name does not exist any more: nothing to remove"
    exit 0
  fi
  added=${PULUMI_COMMAND_STDOUT:-}
  ops=$(rv_test)
  ops="$ops$(remove_element containers "$PTM_CONTAINER_NAME" "$(field "$added" containers)")"
  ops="$ops$(remove_element volumes "$PTM_VOLUME_NAME" "$(field "$added" volumes)")"
  # shellcheck disable=SC2016 # a go-template, not shell
  present=$(kc get "$R" "$name" -n "$ns" -o go-template='{{range $k, $v := .metadata.labels}}{{$k}}{{"\n"}}{{end}}')
  ours=0
  l_ops=
  for kv in ${PTM_LABELS:-} ${PTM_LEGACY_LABELS:-}; do
    k=${kv%%=*}
    if printf '%s\n' "$present" | grep -qxF -- "$k"; then
      ours=$((ours + 1))
      l_ops="$l_ops$(printf ',{"op":"remove","path":"%s"}' "$(label_pointer "$k")")"
    fi
  done
  if [ "$(field "$added" labels)" = created ] && [ "$ours" -gt 0 ] &&
    [ "$(printf '%s\n' "$present" | grep -c .)" = "$ours" ]; then
    l_ops=',{"op":"remove","path":"/metadata/labels"}'
  fi
  ops="$ops$l_ops"
  if [ "$ops" = "$(rv_test)" ]; then
    log "nothing of ours is left in Prometheus $ns/$name"
  else
    log "removing container $PTM_CONTAINER_NAME and volume $PTM_VOLUME_NAME from Prometheus $ns/$name"
    patch "$ops" || die "the JSON patch of Prometheus $ns/$name failed (changed in between? run pulumi up again)"
  fi
  wait_generated "$sts" lacks-container "$PTM_CONTAINER_NAME" "$timeout"
  ;;
enable-admin-api)
  was=$(get '{.spec.enableAdminAPI}')
  if [ "$was" = true ]; then
    log "spec.enableAdminAPI of Prometheus $ns/$name is already true"
    echo '{"changed":false}'
    exit 0
  fi
  log "setting spec.enableAdminAPI of Prometheus $ns/$name to true (was ${was:-unset})"
  patch "$(rv_test),{\"op\":\"add\",\"path\":\"/spec/enableAdminAPI\",\"value\":true}" ||
    die "the JSON patch of Prometheus $ns/$name failed (changed in between? run pulumi up again)"
  echo "{\"changed\":true,\"was\":\"${was:-unset}\"}"
  ;;
restore-admin-api)
  sts=$4 timeout=$5
  case ${PULUMI_COMMAND_STDOUT:-} in
  *'"changed":true'*) ;;
  *) log "spec.enableAdminAPI was not changed: nothing to restore"; exit 0 ;;
  esac
  if ! exists; then
    log "Prometheus $ns/$name does not exist any more: its spec.enableAdminAPI went with it, nothing to restore"
    exit 0
  fi
  was=$(field "$PULUMI_COMMAND_STDOUT" was)
  now=$(get '{.spec.enableAdminAPI}')
  if [ "$now" != true ]; then
    log "spec.enableAdminAPI of Prometheus $ns/$name is ${now:-unset} now, not true: left as it is"
    exit 0
  fi
  t='{"op":"test","path":"/spec/enableAdminAPI","value":true}'
  if [ "$was" = unset ]; then
    log "removing spec.enableAdminAPI from Prometheus $ns/$name (it was unset)"
    patch "$t,{\"op\":\"remove\",\"path\":\"/spec/enableAdminAPI\"}"
  else
    log "setting spec.enableAdminAPI of Prometheus $ns/$name back to false"
    patch "$t,{\"op\":\"replace\",\"path\":\"/spec/enableAdminAPI\",\"value\":false}"
  fi
  wait_generated "$sts" lacks-flag --web.enable-admin-api "$timeout"
  kc rollout status "statefulset/$sts" -n "$ns" --timeout="${timeout}s" >&2
  ;;
wait-generated)
  wait_generated "$4" "$5" "$6" "$7"
  ;;
*) die "unknown action $action" ;;
esac
