#!/bin/sh
# Runs on the operator's machine (kubectl), for sidecarMode: ephemeral. `add` puts one of the
# migration's sidecars into a running pod as an ephemeral container (the
# pods/ephemeralcontainers subresource: neither the pod template nor the pod's own containers
# change, nothing restarts) and waits until it runs; it fails within about half a minute when
# it can't start, with its state and last log lines. `stop` ends the sidecar's processes: an
# ephemeral container can't be removed, so its stopped entry stays in the pod's status until
# the pod is replaced.
#
#   sh -c "$PTM_SCRIPT" ephemeral-sidecar add  NAMESPACE POD UID CONTAINER TIMEOUT
#   sh -c "$PTM_SCRIPT" ephemeral-sidecar stop NAMESPACE POD UID CONTAINER TIMEOUT
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults;
#    PTM_EPHEMERAL_CONTAINER: for add, the container as JSON; PTM_BAD_LOOKS: how many looks,
#    5 s apart, a start failure must persist, default 3)
#
# UID is the pod's as the program read it: a pod replaced since then is not touched (add
# fails and the next `pulumi up` adds the sidecar to the new pod; stop has nothing to stop).
# Stdout (add): one JSON line {"pod":"...","uid":"...","container":"...","seconds":N}
# Uses lib.sh (kc), which the program sends ahead of this script.
set -eu

action=$1 ns=$2 pod=$3 uid=$4 container=$5 timeout=$6
log() { echo "ephemeral-sidecar: $*" >&2; }
die() {
  echo "ephemeral-sidecar: ERROR: $*" >&2
  exit 1
}

# How our container stands: absent | created (in the spec, no status yet) | running STARTED |
# waiting REASON MESSAGE | terminated REASON EXITCODE MESSAGE
state() {
  kc get pod "$pod" -n "$ns" -o go-template="{{range .spec.ephemeralContainers}}{{if eq .name \"$container\"}}created{{\"\\n\"}}{{end}}{{end}}{{range .status.ephemeralContainerStatuses}}{{if eq .name \"$container\"}}{{if .state.running}}running {{.state.running.startedAt}}{{else if .state.terminated}}terminated {{.state.terminated.reason}} {{.state.terminated.exitCode}} {{.state.terminated.message}}{{else if .state.waiting}}waiting {{.state.waiting.reason}} {{.state.waiting.message}}{{else}}created{{end}}{{\"\\n\"}}{{end}}{{end}}" |
    awk 'NF { last = $0 } END { print (last == "" ? "absent" : last) }'
}

# Stops with the container's state and last log lines, and what to do.
cant_start() { # STATE
  echo "ephemeral-sidecar: container $container of pod $ns/$pod: $1" >&2
  echo "ephemeral-sidecar: its last log lines:" >&2
  { kc logs -n "$ns" "$pod" -c "$container" --tail=10 2>/dev/null || echo "(no log)"; } |
    sed 's/^/ephemeral-sidecar:   /' >&2
  die "the ephemeral sidecar $container can't run in pod $ns/$pod ($(echo "$1" | awk '{ print $1, $2 }'), see above). Fix the cause (sidecarImage, sidecarImagePullPolicy, the pod's security settings) and run pulumi up again: an ephemeral container can't be changed or removed, so the next one gets a new name. Or set sidecarMode to patch, or remove the phase key and run pulumi up to revert"
}

# The pod's uid; empty when there is no such pod.
now=$(kc get pod "$pod" -n "$ns" --ignore-not-found -o jsonpath='{.metadata.uid}') ||
  die "can't read pod $ns/$pod (see kubectl's error above)"

case $action in
add)
  [ -n "$now" ] || die "pod $ns/$pod is gone (replaced since the program read it): run pulumi up again, which adds the sidecar to the new pod"
  [ "$now" = "$uid" ] || die "pod $ns/$pod was replaced (uid $now; the program read $uid): run pulumi up again, which adds the sidecar to the new pod"
  [ -n "${PTM_EPHEMERAL_CONTAINER:-}" ] || die "PTM_EPHEMERAL_CONTAINER is not set"
  s=$(state)
  case $s in
  absent)
    log "adding ephemeral container $container to pod $ns/$pod (no restart; the pod template is not changed)"
    kc_patch pod "$pod" -n "$ns" --subresource=ephemeralcontainers --type=strategic \
      -p "{\"spec\":{\"ephemeralContainers\":[$PTM_EPHEMERAL_CONTAINER]}}" -o name >&2 ||
      die "kubectl patch pod $pod -n $ns --subresource=ephemeralcontainers failed (see above): check the right to update pods/ephemeralcontainers, or set sidecarMode to patch"
    ;;
  terminated*) cant_start "$s" ;;
  *) log "pod $ns/$pod has $container already ($s)" ;;
  esac
  start=$(date +%s)
  bad=0
  while :; do
    s=$(state)
    case $s in
    running*)
      # Still the same process a moment later: it did not exit at once (a bad config).
      sleep 3
      s2=$(state)
      if [ "$s2" = "$s" ]; then
        log "$container runs in pod $ns/$pod"
        echo "{\"pod\":\"$pod\",\"uid\":\"$uid\",\"container\":\"$container\",\"seconds\":$(($(date +%s) - start))}"
        exit 0
      fi
      s=$s2
      ;;
    esac
    case $s in
    terminated*) cant_start "$s" ;;
    "waiting ErrImagePull"* | "waiting ImagePullBackOff"* | "waiting InvalidImageName"* | "waiting CreateContainerConfigError"* | "waiting CreateContainerError"* | "waiting RunContainerError"*)
      bad=$((bad + 1))
      [ "$bad" -lt "${PTM_BAD_LOOKS:-3}" ] || cant_start "$s"
      ;;
    *) bad=0 ;;
    esac
    elapsed=$(($(date +%s) - start))
    [ "$elapsed" -lt "$timeout" ] ||
      die "$container has not started in pod $ns/$pod after ${elapsed}s (rolloutTimeoutSeconds; last state: $s)"
    log "waiting for $container in pod $ns/$pod to run (${elapsed}s: $s)"
    sleep 5
  done
  ;;
stop)
  if [ -z "$now" ] || [ "$now" != "$uid" ]; then
    log "pod $ns/$pod (uid $uid) is gone: its sidecar $container went with it"
    exit 0
  fi
  s=$(state)
  case $s in
  absent)
    log "pod $ns/$pod has no $container: nothing to stop"
    exit 0
    ;;
  terminated*)
    log "$container in pod $ns/$pod has stopped already ($s); its entry stays in the pod's status until the pod is replaced"
    exit 0
    ;;
  running*) ;;
  *)
    # Never ran; its Secret goes with the revert, so it can't start later either.
    log "$container in pod $ns/$pod never ran ($s): nothing to stop"
    exit 0
    ;;
  esac
  log "stopping $container in pod $ns/$pod"
  # The main process recorded its PID (sidecar/ephemeral-main.sh); PID 1 of the container
  # otherwise. The exec may end with the container, so its exit code says nothing: the
  # container's status does.
  # shellcheck disable=SC2016 # expanded in the container
  kc exec -n "$ns" "$pod" -c "$container" -- sh -c 'p=$(cat "$PTM_RUN/main.pid" 2>/dev/null) || p=1; case $p in "" | *[!0-9]*) p=1 ;; esac; kill -TERM "$p"' >&2 || true
  start=$(date +%s)
  while :; do
    s=$(state)
    case $s in
    terminated* | absent)
      log "$container in pod $ns/$pod stopped ($s). An ephemeral container can't be removed: its entry stays in the pod's status until the pod is replaced"
      exit 0
      ;;
    esac
    elapsed=$(($(date +%s) - start))
    [ "$elapsed" -lt "$timeout" ] ||
      die "$container in pod $ns/$pod still runs ${elapsed}s after it was told to stop ($s); stop it with kubectl -n $ns exec $pod -c $container -- kill 1, then run again"
    sleep 2
  done
  ;;
*) die "unknown action $action (add or stop)" ;;
esac
