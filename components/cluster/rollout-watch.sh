#!/bin/sh
# Runs on the operator's machine (kubectl): waits for the rollout that a sidecar patch started,
# and fails within about a minute when the sidecar can't run (an image that can't be pulled, a
# crash loop, a bad config), with its state and last log lines, instead of waiting out the
# whole rollout timeout.
#
#   sh -c "$PTM_SCRIPT" rollout-watch NAMESPACE KIND NAME CONTAINER TIMEOUT
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults;
#    PTM_BAD_LOOKS: how many looks, 10 s apart, a failure must persist, default 3)
#
# Stdout: one JSON line {"rolledOut":true,"seconds":N}
# Uses lib.sh (kc, selector_of), which the program sends ahead of this script.
set -eu

ns=$1 kind=$2 name=$3 container=$4 timeout=$5
die() { echo "rollout-watch: ERROR: $*" >&2; exit 1; }

selector=$(selector_of "$ns" "$kind" "$name") || die "can't read $kind $ns/$name"
[ -n "$selector" ] || die "$kind $ns/$name has no matchLabels selector"

# "<pod> <reason> <message>" per pod whose CONTAINER waits for a reason that won't pass by itself.
stuck() {
  kc get pods -n "$ns" -l "$selector" -o go-template="{{range .items}}{{\$pod := .metadata.name}}{{range .status.containerStatuses}}{{if eq .name \"$container\"}}{{if .state.waiting}}{{\$pod}} {{.state.waiting.reason}} {{.state.waiting.message}}{{\"\\n\"}}{{end}}{{end}}{{end}}{{end}}" |
    grep -E ' (CrashLoopBackOff|ImagePullBackOff|ErrImagePull|InvalidImageName|CreateContainerConfigError|CreateContainerError|RunContainerError) ' || true
}

start=$(date +%s)
bad=0
while :; do
  if kc rollout status "$kind/$name" -n "$ns" --timeout=10s >/dev/null 2>&1; then
    echo "{\"rolledOut\":true,\"seconds\":$(($(date +%s) - start))}"
    exit 0
  fi
  s=$(stuck)
  if [ -n "$s" ]; then
    bad=$((bad + 1))
    if [ "$bad" -ge "${PTM_BAD_LOOKS:-3}" ]; then
      pod=${s%% *}
      echo "rollout-watch: container $container of pod $ns/$pod: ${s#* }" >&2
      echo "rollout-watch: its last log lines:" >&2
      { kc logs -n "$ns" "$pod" -c "$container" --tail=10 --previous 2>/dev/null ||
        kc logs -n "$ns" "$pod" -c "$container" --tail=10 2>/dev/null || echo "(no log)"; } |
        sed 's/^/rollout-watch:   /' >&2
      die "the sidecar $container of $kind $ns/$name can't run ($(echo "$s" | awk '{ print $2 }'), see above). Fix the cause (sidecarImage, sidecarImagePullPolicy, the pod's security settings), or remove the phase key and run pulumi up to revert"
    fi
  else
    bad=0
  fi
  elapsed=$(($(date +%s) - start))
  [ "$elapsed" -lt "$timeout" ] ||
    die "$kind $ns/$name has not rolled out after ${elapsed}s (rolloutTimeoutSeconds); see kubectl -n $ns get pods -l $selector"
  echo "rollout-watch: waiting for the rollout of $kind $ns/$name (${elapsed}s)" >&2
done
