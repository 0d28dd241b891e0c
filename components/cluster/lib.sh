#!/bin/sh
# Functions shared by the scripts that run on the operator's machine. The program sends this
# file and then the script in one `sh -c` (components/cluster/kubectl.ts localScript).
# shellcheck disable=SC2034 # sourced: the functions are used by the scripts that follow

# kubectl on the cluster the program's provider uses (PTM_KUBECONFIG, PTM_KUBE_CONTEXT), not
# kubectl's current context.
kc() {
  kubectl ${PTM_KUBECONFIG:+--kubeconfig "$PTM_KUBECONFIG"} ${PTM_KUBE_CONTEXT:+--context "$PTM_KUBE_CONTEXT"} "$@"
}

# The pod selector of a workload as k=v,k=v (empty when it has no matchLabels).
selector_of() { # NAMESPACE KIND NAME
  # shellcheck disable=SC2016 # a go-template, not shell
  s=$(kc get "$2" "$3" -n "$1" \
    -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}') || return 1
  printf '%s' "${s%,}"
}
