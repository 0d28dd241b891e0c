# shellcheck shell=bash disable=SC2034
# Shared settings for test/lab/up.sh, test/lab/down.sh and test/lab/smoke.sh. Sourced, not run.

PTM_CACHE="${PTM_CACHE:-/var/cache/ptm}"
PTM_LAB="${PTM_LAB:-/var/lib/ptm-lab}"
K8S_VER="${PTM_K8S_VER:-v1.34.4}"
ETCD_VER="${PTM_ETCD_VER:-v3.6.16}"
COREDNS_VER="${PTM_COREDNS_VER:-v1.12.4}"
K8S_BIN="${PTM_CACHE}/k8s-${K8S_VER}/bin"
ETCD_BIN="${PTM_CACHE}/etcd-${ETCD_VER}/bin"

SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1"
DNS_IP="10.96.0.10"
DNS_DOMAIN="cluster.local"
CLUSTER_CIDR="10.244.0.0/16"
POD_CIDR="10.244.0.0/24"
CNI_BRIDGE="ptm0"
NODE_NAME="$(hostname | tr '[:upper:]' '[:lower:]')"
NODE_IP="${PTM_NODE_IP:-$( (ip -4 route get 1.1.1.1 2>/dev/null || true) | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')}"
NODE_IP="${NODE_IP:-127.0.0.1}"

PKI="${PTM_LAB}/pki"
LOGS="${PTM_LAB}/logs"
PIDS="${PTM_LAB}/pids"
CTRD_SOCK="${PTM_LAB}/containerd/containerd.sock"
KUBECONFIG_ADMIN="${PTM_LAB}/admin.kubeconfig"
REGISTRY_ADDR="${PTM_REGISTRY_ADDR:-127.0.0.1:5055}"
# Parent cgroup of the kubelet's kubepods tree ("/" = kubelet default). A
# different one lets a second lab (e.g. in its own network namespace) coexist.
CGROUP_ROOT="${PTM_CGROUP_ROOT:-/}"

# Components in start order; test/lab/down.sh stops them in reverse.
COMPONENTS=(registry containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '[lab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

kc() { "${K8S_BIN}/kubectl" --kubeconfig "${KUBECONFIG_ADMIN}" "$@"; }

# Closes every descriptor above 2 of the current (sub)shell. Daemons are started after it: one
# that inherited the descriptor of `flock /var/cache/ptm/lab.lock <cmd>` would hold the lab lock
# for as long as it runs, and every later `flock` would wait forever.
close_fds() {
  local fd
  for fd in /proc/"${BASHPID}"/fd/*; do
    fd=${fd##*/}
    [[ ${fd} =~ ^[0-9]+$ ]] && ((fd > 2)) && eval "exec ${fd}>&-" 2>/dev/null
  done
  return 0
}

# pid of a component we started, if it is still running that binary.
lab_pid() {
  local name="$1" pid
  [[ -f "${PIDS}/${name}.pid" ]] || return 1
  pid="$(cat "${PIDS}/${name}.pid")"
  [[ -n "${pid}" && -d "/proc/${pid}" ]] || return 1
  # Guard against pid reuse: the process must be the binary we launched.
  local exe want
  exe="$(readlink "/proc/${pid}/exe" 2>/dev/null)" || return 1
  want="$(cat "${PIDS}/${name}.exe" 2>/dev/null)" || want="*/${name}"
  # shellcheck disable=SC2053 # want may be a glob (pid files of older up.sh)
  [[ "${exe}" == ${want} ]] || return 1
  echo "${pid}"
}

# Make lab PVs whose claim was deleted (phase Released) Available again:
# wipe the directory, drop the claimRef.
recycle_pvs() {
  local n pvs
  pvs="$(kc get pv -l ptm-lab/pv=true -o json)" || return 1
  jq -r '.items[] | select(.status.phase == "Released") | .metadata.name' <<<"${pvs}" |
    while read -r n; do
      log "recycling released PV ${n}"
      find "${PTM_LAB}/pv/${n}" -mindepth 1 -delete
      kc patch pv "${n}" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null
    done
}
