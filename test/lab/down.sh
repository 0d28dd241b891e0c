#!/usr/bin/env bash
# Stop the lab cluster started by test/lab/up.sh and remove its state.
# Only processes whose pids test/lab/up.sh recorded (and the containerd shims of
# our own containerd socket) are stopped. PTM_KEEP_STATE=1 keeps ${PTM_LAB}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/lab/lib.sh disable=SC1091
source "${here}/lib.sh"

[[ "$(id -u)" == 0 ]] || { echo "test/lab/down.sh must run as root" >&2; exit 1; }
if [[ ! -d "${PTM_LAB}" ]]; then
  log "nothing to do: ${PTM_LAB} does not exist"
  exit 0
fi

stop() { # NAME: SIGTERM, wait up to 20 s, then SIGKILL
  local name="$1" pid i
  if ! pid="$(lab_pid "${name}")"; then
    rm -f "${PIDS}/${name}.pid"
    return 0
  fi
  log "stopping ${name} (pid ${pid})"
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    [[ -d "/proc/${pid}" ]] || break
    sleep 0.5
  done
  [[ ! -d "/proc/${pid}" ]] || kill -KILL "${pid}" 2>/dev/null || true
  rm -f "${PIDS}/${name}.pid"
}

ctrd() { ctr --address "${CTRD_SOCK}" -n k8s.io "$@"; }

# Host networking cleanup only if this lab dir ever ran the node components.
ran_node=0
[[ -e "${PIDS}/kubelet.pid" || -e "${PIDS}/kube-proxy.pid" ]] && ran_node=1

# 0. prometheus-operator (test/lab/operator.sh), if it runs: nothing may recreate pods.
stop prometheus-operator

# 1. Let the kubelet tear pods down properly (CNI DEL, unmounts): stop the
#    controllers so nothing is recreated, then delete every pod.
if lab_pid kube-apiserver >/dev/null && lab_pid kubelet >/dev/null; then
  stop kube-controller-manager
  stop kube-scheduler
  log "deleting all pods"
  kc delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  for ((i = 0; i < 60; i++)); do
    [[ -z "$(ctrd tasks ls -q 2>/dev/null)" ]] && break
    sleep 1
  done
fi

# 2. Control plane and node components.
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c="${COMPONENTS[i]}"
  [[ "${c}" == containerd ]] && continue
  stop "${c}"
done

# 3. Leftover containers, then containerd and its shims.
if lab_pid containerd >/dev/null; then
  for t in $(ctrd tasks ls -q 2>/dev/null); do
    ctrd tasks kill -s SIGKILL "${t}" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctrd tasks ls -q 2>/dev/null); do
    ctrd tasks rm -f "${t}" >/dev/null 2>&1 || true
  done
  for c in $(ctrd containers ls -q 2>/dev/null); do
    ctrd containers rm "${c}" >/dev/null 2>&1 || true
  done
fi
stop containerd
# Shims of our containerd (they outlive it by design); matched by our socket path.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' <"${p}/cmdline" 2>/dev/null | grep "containerd-shim.*-address ${CTRD_SOCK} " >/dev/null; then
    log "killing leftover shim ${p#/proc/}"
    kill -KILL "${p#/proc/}" 2>/dev/null || true
  fi
done

# 4. iptables: kube-proxy's own cleanup, then any KUBE-/CNI- chains left
#    (kubelet canaries, portmap's CNI-HOSTPORT-*, masquerade chains).
if ((ran_node)) && [[ -x "${K8S_BIN}/kube-proxy" ]]; then
  "${K8S_BIN}/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
fi
for ipt in iptables ip6tables; do
  ((ran_node)) || break
  command -v "${ipt}-save" >/dev/null || continue
  for table in nat filter mangle; do
    rules="$("${ipt}-save" -t "${table}" 2>/dev/null)" || continue
    grep -qE '(KUBE-|CNI-)' <<<"${rules}" || continue
    log "removing KUBE-/CNI- chains from ${ipt} ${table}"
    # The dump holds only this table, so restoring it replaces only this table.
    grep -vE '(KUBE-|CNI-)' <<<"${rules}" | "${ipt}-restore" -w 5 || true
  done
done
((ran_node == 0)) || ip link delete "${CNI_BRIDGE}" 2>/dev/null || true

# 5. Mounts under the lab dir (deepest first), then cgroups the kubelet made.
while read -r m; do
  umount -l "${m}" 2>/dev/null || true
done < <(awk -v d="${PTM_LAB}" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
cg="${CGROUP_ROOT#/}"
cg="${cg:+${cg}/}"
for ctl in /sys/fs/cgroup/*/"${cg}"kubepods /sys/fs/cgroup/"${cg}"kubepods; do
  [[ -d "${ctl}" ]] || continue
  find "${ctl}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done
if [[ -n "${cg}" ]]; then
  for ctl in /sys/fs/cgroup/*/"${cg%/}"; do rmdir "${ctl}" 2>/dev/null || true; done
fi

# 6. State.
if [[ "${PTM_KEEP_STATE:-0}" == 1 ]]; then
  log "keeping ${PTM_LAB} (PTM_KEEP_STATE=1)"
elif awk -v d="${PTM_LAB}" 'index($2, d) == 1 {f = 1} END {exit !f}' /proc/self/mounts; then
  log "mounts remain under ${PTM_LAB}; not deleting it"
  exit 1
else
  rm -rf --one-file-system "${PTM_LAB}"
  log "removed ${PTM_LAB}"
fi
log "lab stopped"
