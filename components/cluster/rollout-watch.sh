#!/bin/sh
# Runs on the operator's machine (kubectl): waits for the rollout that a sidecar patch started,
# and fails within about a minute when the sidecar can't run (an image that can't be pulled, a
# crash loop, a bad config), with its state and last log lines, instead of waiting out the
# whole rollout timeout. It fails at its next look (about 10 s) when the pod can't even be
# created (admission refused it: a ResourceQuota, a LimitRange, PodSecurity, a webhook): a
# Deployment's ReplicaFailure condition (its own or its newest ReplicaSet's) or a FailedCreate
# Event of the workload or that ReplicaSet (StatefulSets report them as Events only), seen
# after the watch started, with the cause. "After": not there, or not the same, when it
# started (names, resourceVersions, transition times: no clock is compared), so that an old
# failure the user has fixed since does not stop a rollout that now works.
#
#   sh -c "$PTM_SCRIPT" rollout-watch NAMESPACE KIND NAME CONTAINER TIMEOUT
#   (env: PTM_KUBECONFIG, PTM_KUBE_CONTEXT: the cluster; unset: kubectl's defaults;
#    PTM_BAD_LOOKS: how many looks, 10 s apart, a failure must persist, default 3)
#
# Stdout: one JSON line {"rolledOut":true,"seconds":N}
# Uses lib.sh (kc, selector_of, unstick_statefulset), which the program sends ahead of this script.
set -eu

ns=$1 kind=$2 name=$3 container=$4 timeout=$5
die() { echo "rollout-watch: ERROR: $*" >&2; exit 1; }

# The API server may not answer for a while (restarted, overloaded, a network blip): the
# watch keeps asking until its timeout, as `kubectl rollout status` below does.
began=$(date +%s)
until selector=$(selector_of "$ns" "$kind" "$name"); do
  [ $(($(date +%s) - began)) -lt "$timeout" ] ||
    die "can't read $kind $ns/$name for ${timeout}s (see kubectl's error above); run pulumi up again once the API server answers"
  echo "rollout-watch: can't read $kind $ns/$name (see kubectl's error above); asking again in 5 s" >&2
  sleep 5
done
[ -n "$selector" ] || die "$kind $ns/$name has no matchLabels selector"

# "<pod> <reason> <message>" per pod whose CONTAINER waits for a reason that won't pass by itself.
stuck() {
  kc get pods -n "$ns" -l "$selector" -o go-template="{{range .items}}{{\$pod := .metadata.name}}{{range .status.containerStatuses}}{{if eq .name \"$container\"}}{{if .state.waiting}}{{\$pod}} {{.state.waiting.reason}} {{.state.waiting.message}}{{\"\\n\"}}{{end}}{{end}}{{end}}{{end}}" |
    grep -E ' (CrashLoopBackOff|ImagePullBackOff|ErrImagePull|InvalidImageName|CreateContainerConfigError|CreateContainerError|RunContainerError) ' || true
}

# The newest ReplicaSet of the Deployment (highest revision); empty for a StatefulSet.
newest_rs() {
  [ "$kind" = deployment ] || return 0
  kc get replicasets -n "$ns" -l "$selector" -o go-template='{{range .items}}{{range .metadata.ownerReferences}}{{if eq .kind "Deployment"}}{{.name}}{{end}}{{end}} {{index .metadata.annotations "deployment.kubernetes.io/revision"}} {{.metadata.name}}{{"\n"}}{{end}}' 2>/dev/null |
    awk -v d="$name" '$1 == d && $2 + 0 >= max { max = $2 + 0; rs = $3 } END { print rs }'
}

# "<lastTransitionTime> <message>" of an object's ReplicaFailure condition; empty: none.
replica_failure() { # RESOURCE NAME
  [ -n "$2" ] || return 0
  kc get "$1" "$2" -n "$ns" -o jsonpath='{range .status.conditions[?(@.type=="ReplicaFailure")]}{.lastTransitionTime} {.message}{end}' 2>/dev/null || true
}

# FailedCreate Events of the namespace, one per line: "<kind>/<name> <event> <resourceVersion> <message>".
failed_creates() {
  kc get events -n "$ns" --field-selector reason=FailedCreate -o go-template='{{range .items}}{{.involvedObject.kind}}/{{.involvedObject.name}} {{.metadata.name}} {{.metadata.resourceVersion}} {{.message}}{{"\n"}}{{end}}' 2>/dev/null
}

# The workload's own objects that report a pod it could not create.
ours() { echo "StatefulSet/$name Deployment/$name${rs:+ ReplicaSet/$rs}"; }

# The message of a FailedCreate Event of ours that was not there (at that resourceVersion) when
# the watch started; with "any", of any of ours (for the last words at the timeout).
new_failed_create() { # [any]
  failed_creates | BASE="$base_events" OURS="$(ours)" ANY="${1:-}" awk '
    BEGIN {
      n = split(ENVIRON["BASE"], b, "\n")
      for (i = 1; i <= n; i++) { split(b[i], f, " "); seen[f[2] " " f[3]] = 1 }
      m = split(ENVIRON["OURS"], o, " ")
      for (i = 1; i <= m; i++) mine[o[i]] = 1
    }
    ($1 in mine) && (ENVIRON["ANY"] != "" || !(($2 " " $3) in seen)) {
      msg = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", msg); last = msg
    }
    END { if (last != "") print last }'
}

# The cause of a pod that can't be created, seen since the watch started; empty: none.
refused() {
  rs=$(newest_rs)
  if [ "$kind" = deployment ]; then
    now=$(replica_failure deployment "$name")
    if [ -n "$now" ] && [ "$now" != "$base_deploy" ]; then
      echo "${now#* }"
      return 0
    fi
    now=$(replica_failure replicaset "$rs")
    if [ -n "$now" ] && [ "$rs $now" != "$base_rs $base_rs_cond" ]; then
      echo "${now#* }"
      return 0
    fi
  fi
  new_failed_create
}

# "ResourceQuota <ns>/<name>: " when the message names a quota.
quota_of() {
  printf '%s' "$1" | awk -v ns="$ns" 'match($0, /(exceeded|failed) quota: [^,:]+/) {
    q = substr($0, RSTART, RLENGTH); sub(/^(exceeded|failed) quota: /, "", q)
    printf "ResourceQuota %s/%s: ", ns, q }'
}

# What the cluster holds when the watch starts: only what changes after counts.
rs=$(newest_rs)
base_rs=$rs
base_rs_cond=$(replica_failure replicaset "$rs")
base_deploy=
[ "$kind" != deployment ] || base_deploy=$(replica_failure deployment "$name")
base_events=$(failed_creates) ||
  echo "rollout-watch: can't list Events in $ns: a pod that admission refuses is noticed only at the timeout" >&2

start=$(date +%s)
bad=0
while :; do
  if kc rollout status "$kind/$name" -n "$ns" --timeout=10s >/dev/null 2>&1; then
    echo "{\"rolledOut\":true,\"seconds\":$(($(date +%s) - start))}"
    exit 0
  fi
  # A pod left on an older, broken revision (a failed prepare, then this `up` with the cause
  # fixed): the StatefulSet would wait for it forever, and its sidecar's old state is not
  # this rollout's.
  [ "$kind" != statefulset ] || unstick_statefulset "$ns" "$name" "$selector" rollout-watch
  cause=$(refused)
  if [ -n "$cause" ]; then
    echo "rollout-watch: $kind $ns/$name can't create its pod: $cause" >&2
    die "$kind $ns/$name can't create its pod after $(($(date +%s) - start))s: the cluster refused it ($(quota_of "$cause")$cause). Fix what refused it (sidecarResources, sidecarImage, or the quota, LimitRange or policy named), then run pulumi up again; or remove the phase key and run pulumi up to revert"
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
  if [ "$elapsed" -ge "$timeout" ]; then
    # A refusal from before the watch (an earlier run's), still the last word: say it.
    rs=$(newest_rs)
    last=$(new_failed_create any)
    die "$kind $ns/$name has not rolled out after ${elapsed}s (rolloutTimeoutSeconds)${last:+; its last pod creation failure: $last}; see kubectl -n $ns get pods -l $selector"
  fi
  echo "rollout-watch: waiting for the rollout of $kind $ns/$name (${elapsed}s)" >&2
done
