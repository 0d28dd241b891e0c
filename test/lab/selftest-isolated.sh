#!/usr/bin/env bash
# Full from-scratch cycle of the lab (lab:up on empty state, smoke test,
# lab:down with state removal) in a throwaway network + mount namespace, so it
# can run while the shared lab cluster is in use. Binaries and images come
# from the normal cache (${PTM_CACHE}); nothing of the shared cluster is
# touched: own netns (ports, iptables, bridge), own lab dir, own cgroup root,
# tmpfs over the few fixed host paths the kubelet/containerd/CNI use.
#
#   test/lab/selftest-isolated.sh      prints the three timings and the smoke result
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ "$(id -u)" == 0 ]] || { echo "must run as root" >&2; exit 1; }

if [[ "${1:-}" != --inside ]]; then
  exec unshare --net --mount --propagation private "$0" --inside
fi

# ---- inside the new namespaces
node_ip="${PTM_NODE_IP:-192.0.2.2}"
ip link set lo up
# no dummy module on every kernel; a veth pair gives the node an address + route
ip link add ptmst0 type veth peer name ptmst1
ip addr add "${node_ip}/24" dev ptmst0
ip link set ptmst0 up
ip link set ptmst1 up
ip route add default via "${node_ip%.*}.1" dev ptmst0 onlink
for d in /run/containerd /run/netns /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni; do
  mkdir -p "${d}"
  mount -t tmpfs tmpfs "${d}"
done

PTM_LAB="$(mktemp -d /tmp/ptm-selftest.XXXXXX)"
rmdir "${PTM_LAB}" # up.sh creates it: test the empty-state path
export PTM_LAB PTM_NODE_IP="${node_ip}" PTM_CGROUP_ROOT="/ptm-selftest-$$"
logs="$(mktemp -d /tmp/ptm-selftest-logs.XXXXXX)"
rc=0

t=$SECONDS
if "${here}/up.sh" >"${logs}/up.log" 2>&1; then
  echo "lab:up from empty state: $((SECONDS - t))s"
  t=$SECONDS
  "${here}/smoke.sh" >"${logs}/smoke.log" 2>&1 || rc=1
  echo "test:lab: $((SECONDS - t))s, $(tail -1 "${logs}/smoke.log")"
else
  rc=1
  echo "lab:up FAILED, see ${logs}/up.log"
fi
t=$SECONDS
"${here}/down.sh" >"${logs}/down.log" 2>&1 || rc=1
echo "lab:down: $((SECONDS - t))s"

left=()
[[ ! -e "${PTM_LAB}" ]] || left+=("${PTM_LAB} still exists")
! iptables-save | grep -E 'KUBE-|CNI-' >/dev/null || left+=("KUBE-/CNI- iptables rules")
! ip link show ptm0 >/dev/null 2>&1 || left+=("bridge ptm0")
! grep -F "${PTM_LAB}" /proc/self/mounts >/dev/null || left+=("mounts under ${PTM_LAB}")
if ((${#left[@]})); then
  rc=1
  printf 'left behind: %s\n' "${left[@]}"
fi
echo "logs: ${logs}"
exit "${rc}"
