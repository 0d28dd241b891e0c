#!/usr/bin/env bash
# Start a single-node Kubernetes cluster from host processes (image registry
# mirror, containerd, etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy), then CoreDNS, a default StorageClass
# and local PVs. Idempotent: running components are left alone unless their
# command line or config changed; certificates/configs are reused. All state
# lives in ${PTM_LAB} (default /var/lib/ptm-lab). Prints the admin kubeconfig
# path at the end. See test/lab/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/lab/lib.sh disable=SC1091
source "${here}/lib.sh"

[[ "$(id -u)" == 0 ]] || { echo "test/lab/up.sh must run as root" >&2; exit 1; }
t0=$SECONDS

# ---------------------------------------------------------------- packages
need=()
for p in containerd runc containernetworking-plugins iptables conntrack socat openssl \
  jq python3 curl; do
  dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep "ok installed" >/dev/null || need+=("${p}")
done
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
fi
# Debian's containerd package starts its own daemon where systemd exists; ours
# has its own socket, root and state under ${PTM_LAB} (runc's state dir
# /run/containerd/runc/k8s.io is shared, container ids do not collide).

# ---------------------------------------------------------------- binaries, images
"${here}/build.sh" all
"${here}/images/build.sh"

mkdir -p "${PTM_LAB}" "${PKI}" "${LOGS}" "${PIDS}" "${PTM_LAB}/pv"

# Cluster DNS (CoreDNS in a Deployment) when its image was built; PTM_DNS=0 skips it.
dns=0
[[ "${PTM_DNS:-1}" == 1 && -s "${PTM_CACHE}/images/coredns.tar" ]] && dns=1

# ---------------------------------------------------------------- kernel
modprobe br_netfilter 2>/dev/null || true
modprobe overlay 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: bridge-nf-call-iptables not settable"
sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true

if [[ "${CGROUP_ROOT}" != / ]]; then
  for ctl in /sys/fs/cgroup/*/; do
    [[ -L "${ctl%/}" || ! -w "${ctl}" ]] || mkdir -p "${ctl}${CGROUP_ROOT#/}"
  done
fi

# ---------------------------------------------------------------- PKI
ca() {
  [[ -s "${PKI}/ca.crt" ]] && return 0
  openssl genrsa -out "${PKI}/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -nodes -key "${PKI}/ca.key" -sha256 -days 3650 \
    -subj "/CN=ptm-lab-ca" -out "${PKI}/ca.crt"
}
# cert NAME SUBJECT EXT_KEY_USAGE [SAN]
cert() {
  local name="$1" subj="$2" eku="$3" san="${4:-}"
  [[ -s "${PKI}/${name}.crt" ]] && return 0
  local ext="${PKI}/${name}.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${eku}"
    [[ -z "${san}" ]] || echo "subjectAltName=${san}"
  } >"${ext}"
  openssl genrsa -out "${PKI}/${name}.key" 2048 2>/dev/null
  openssl req -new -key "${PKI}/${name}.key" -subj "${subj}" -out "${PKI}/${name}.csr"
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "${ext}" -out "${PKI}/${name}.crt" 2>/dev/null
  rm -f "${PKI}/${name}.csr" "${ext}"
}
ca
cert kube-apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:${NODE_NAME},IP:127.0.0.1,IP:${SERVICE_IP},IP:${NODE_IP}"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=ptm-admin" clientAuth
cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert kubelet-client "/O=system:nodes/CN=system:node:${NODE_NAME}" clientAuth
cert kubelet-server "/CN=${NODE_NAME}" serverAuth "DNS:${NODE_NAME},DNS:localhost,IP:127.0.0.1,IP:${NODE_IP}"
if [[ ! -s "${PKI}/sa.key" ]]; then
  openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
fi
chmod 600 "${PKI}"/*.key

# kubeconfig NAME CERT [SERVER]
kubeconfig() {
  local name="$1" crt="$2" server="${3:-https://127.0.0.1:6443}" f="${PTM_LAB}/$1.kubeconfig"
  [[ -s "${f}" ]] && return 0
  local k=("${K8S_BIN}/kubectl" --kubeconfig "${f}.tmp")
  "${k[@]}" config set-cluster ptm-lab --certificate-authority="${PKI}/ca.crt" --embed-certs=true --server="${server}" >/dev/null
  "${k[@]}" config set-credentials "${name}" --client-certificate="${PKI}/${crt}.crt" --client-key="${PKI}/${crt}.key" --embed-certs=true >/dev/null
  "${k[@]}" config set-context ptm-lab --cluster=ptm-lab --user="${name}" >/dev/null
  "${k[@]}" config use-context ptm-lab >/dev/null
  chmod 600 "${f}.tmp"
  mv "${f}.tmp" "${f}"
}
kubeconfig admin admin
kubeconfig kube-controller-manager kube-controller-manager
kubeconfig kube-scheduler kube-scheduler
kubeconfig kube-proxy kube-proxy
kubeconfig kubelet kubelet-client

# ---------------------------------------------------------------- configs
# put FILE < content: replace FILE only when the content differs (kube-proxy
# exits when its config file is touched).
put() {
  cat >"$1.new"
  if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; fi
}
mkdir -p "${PTM_LAB}/containerd" "${PTM_LAB}/cni/net.d" "${PTM_LAB}/kubelet"
put "${PTM_LAB}/containerd/config.toml" <<EOF
version = 2
root = "${PTM_LAB}/containerd/root"
state = "${PTM_LAB}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${CTRD_SOCK}"
[ttrpc]
  address = "${CTRD_SOCK}.ttrpc"
[debug]
  address = "${CTRD_SOCK}.debug"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # Needed where root lacks CAP_SYS_RESOURCE (this VM): runc cannot lower
  # oom_score_adj below its own (pause asks for -998), so clamp it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  # Pulls (imagePullPolicy Always, the default for :latest) are served by
  # test/lab/images/registry.py from the locally built images.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://${REGISTRY_ADDR}"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://${REGISTRY_ADDR}"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${PTM_LAB}/cni/net.d"
EOF

put "${PTM_LAB}/cni/net.d/10-ptm.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "ptm-lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${PTM_LAB}/cni/ipam",
        "ranges": [[{"subnet": "${POD_CIDR}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
put "${PTM_LAB}/cni/net.d/99-loopback.conf" <<EOF
{"cniVersion": "0.4.0", "name": "lo", "type": "loopback"}
EOF

put "${PTM_LAB}/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "${PKI}/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: "unix://${CTRD_SOCK}"
tlsCertFile: "${PKI}/kubelet-server.crt"
tlsPrivateKeyFile: "${PKI}/kubelet-server.key"
resolvConf: /etc/resolv.conf
$(if [[ "${CGROUP_ROOT}" != / ]]; then echo "cgroupRoot: ${CGROUP_ROOT}"; fi)
$(if ((dns)); then printf 'clusterDNS: ["%s"]\nclusterDomain: %s\n' "${DNS_IP}" "${DNS_DOMAIN}"; fi)
failSwapOn: false
podCIDR: "${POD_CIDR}"
maxPods: 110
serializeImagePulls: false
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF

put "${PTM_LAB}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "${PTM_LAB}/kube-proxy.kubeconfig"}
clusterCIDR: "${CLUSTER_CIDR}"
hostnameOverride: "${NODE_NAME}"
bindAddress: 0.0.0.0
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
oomScoreAdj: 0
EOF

# ---------------------------------------------------------------- processes
# start NAME BINARY ARGS...: launch in its own session, record the pid. A
# running instance is kept unless its command line or config files changed
# (then it is restarted).
start() {
  local name="$1" bin="$2" pid sig
  shift 2
  sig="$(printf '%s\n' "${bin}" "$@" | cat - "${CONF_FILES[@]}" 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if pid="$(lab_pid "${name}")"; then
    if [[ "$(cat "${PIDS}/${name}.sig" 2>/dev/null)" == "${sig}" ]]; then
      log "${name} already running (pid ${pid})"
      return 0
    fi
    log "restarting ${name} (pid ${pid}): its configuration changed"
    kill -TERM "${pid}"
    for ((i = 0; i < 40; i++)); do [[ -d "/proc/${pid}" ]] || break; sleep 0.5; done
    [[ ! -d "/proc/${pid}" ]] || kill -KILL "${pid}"
  fi
  log "starting ${name}"
  (
    close_fds
    exec setsid nohup "${bin}" "$@" >>"${LOGS}/${name}.log" 2>&1 </dev/null
  ) &
  echo $! >"${PIDS}/${name}.pid"
  readlink -f "${bin}" >"${PIDS}/${name}.exe"
  echo "${sig}" >"${PIDS}/${name}.sig"
}
wait_for() { # DESC SECONDS CMD...
  local desc="$1" secs="$2" i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out waiting for ${desc}"
  return 1
}

CONF_FILES=()
start registry /usr/bin/python3 "${here}/images/registry.py" "${PTM_CACHE}/registry" "${REGISTRY_ADDR}"
wait_for registry 15 curl -fsS "http://${REGISTRY_ADDR}/v2/"

CONF_FILES=("${PTM_LAB}/containerd/config.toml")
start containerd /usr/bin/containerd --config "${PTM_LAB}/containerd/config.toml"
wait_for containerd 30 ctr --address "${CTRD_SOCK}" version

CONF_FILES=()
start etcd "${ETCD_BIN}/etcd" --name ptm-lab --data-dir "${PTM_LAB}/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster ptm-lab=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --quota-backend-bytes 4294967296 --log-level warn

start kube-apiserver "${K8S_BIN}/kube-apiserver" \
  --advertise-address "${NODE_IP}" --bind-address 0.0.0.0 --secure-port 6443 \
  --etcd-servers http://127.0.0.1:2379 \
  --service-cluster-ip-range "${SERVICE_CIDR}" --service-node-port-range 30000-32767 \
  --allow-privileged=true --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction \
  --client-ca-file "${PKI}/ca.crt" \
  --tls-cert-file "${PKI}/kube-apiserver.crt" --tls-private-key-file "${PKI}/kube-apiserver.key" \
  --kubelet-certificate-authority "${PKI}/ca.crt" \
  --kubelet-client-certificate "${PKI}/apiserver-kubelet-client.crt" \
  --kubelet-client-key "${PKI}/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "${PKI}/sa.pub" \
  --service-account-signing-key-file "${PKI}/sa.key" \
  --profiling=false --v=1

wait_for kube-apiserver 120 kc get --raw /readyz

start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
  --kubeconfig "${PTM_LAB}/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "${PTM_LAB}/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "${PTM_LAB}/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --cluster-name ptm-lab --cluster-cidr "${CLUSTER_CIDR}" --allocate-node-cidrs=true \
  --service-cluster-ip-range "${SERVICE_CIDR}" \
  --cluster-signing-cert-file "${PKI}/ca.crt" --cluster-signing-key-file "${PKI}/ca.key" \
  --root-ca-file "${PKI}/ca.crt" --service-account-private-key-file "${PKI}/sa.key" \
  --use-service-account-credentials=true --v=1

start kube-scheduler "${K8S_BIN}/kube-scheduler" \
  --kubeconfig "${PTM_LAB}/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "${PTM_LAB}/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "${PTM_LAB}/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --v=1

# Images: import into containerd's k8s.io namespace when missing or changed: every image
# test/lab/images/build.sh left in ${PTM_CACHE}/images (Prometheus images of other versions
# and shapes too), by the name in its manifest (docker.io/ for names without a registry).
mkdir -p "${PTM_LAB}/images"
for file in "${PTM_CACHE}"/images/*.tar; do
  name="$(basename "${file}" .tar)"
  [[ "${name}" != coredns ]] || ((dns == 1)) || continue
  ref="$(tar -xOf "${file}" ./manifest.json | jq -r '.[0].RepoTags[0]')"
  first="${ref%%/*}"
  if [[ "${ref}" != */* ]]; then
    ref="docker.io/library/${ref}"
  elif [[ "${first}" != *.* && "${first}" != *:* ]]; then
    ref="docker.io/${ref}"
  fi
  stamp="${PTM_LAB}/images/${name}.sha256"
  sum="$(sha256sum "${file}" | cut -d' ' -f1)"
  if [[ "$(cat "${stamp}" 2>/dev/null)" == "${sum}" ]] &&
    ctr --address "${CTRD_SOCK}" -n k8s.io images ls -q | grep -x "${ref}" >/dev/null; then
    continue
  fi
  log "importing ${ref}"
  ctr --address "${CTRD_SOCK}" -n k8s.io images import "${file}" >&2
  echo "${sum}" >"${stamp}"
done

CONF_FILES=("${PTM_LAB}/kubelet/config.yaml")
start kubelet "${K8S_BIN}/kubelet" \
  --config "${PTM_LAB}/kubelet/config.yaml" \
  --kubeconfig "${PTM_LAB}/kubelet.kubeconfig" \
  --root-dir "${PTM_LAB}/kubelet/root" \
  --hostname-override "${NODE_NAME}" --node-ip "${NODE_IP}" --v=1

CONF_FILES=("${PTM_LAB}/kube-proxy.yaml")
start kube-proxy "${K8S_BIN}/kube-proxy" --config "${PTM_LAB}/kube-proxy.yaml" --v=1

log "waiting for node ${NODE_NAME} to be Ready"
wait_for "node registration" 120 kc get node "${NODE_NAME}"
kc wait --for=condition=Ready "node/${NODE_NAME}" --timeout=180s >&2
wait_for "default service account" 60 kc -n default get serviceaccount default

# ---------------------------------------------------------------- storage
# A default StorageClass with pre-created local PVs (local volumes honour
# fsGroup, hostPath does not). PVs released by a deleted claim are wiped and
# made Available again on every run.
PV_COUNT="${PTM_PV_COUNT:-12}"
{
  cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ptm-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  for ((i = 1; i <= PV_COUNT; i++)); do
    n="$(printf 'ptm-pv-%02d' "${i}")"
    mkdir -p "${PTM_LAB}/pv/${n}"
    chmod 0777 "${PTM_LAB}/pv/${n}"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: ${n}
  labels: {ptm-lab/pv: "true"}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ptm-local
  volumeMode: Filesystem
  local: {path: "${PTM_LAB}/pv/${n}"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: ["${NODE_NAME}"]}
EOF
  done
} | kc apply --server-side --field-manager=ptm-lab -f - >/dev/null

recycle_pvs

# ---------------------------------------------------------------- DNS
if ((dns)); then
  kc apply --server-side --field-manager=ptm-lab -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes ${DNS_DOMAIN} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        forward . /etc/resolv.conf
        cache 30
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      containers:
        - name: coredns
          image: ptm/coredns:${COREDNS_VER#v}
          imagePullPolicy: IfNotPresent
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
          livenessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 10}
          readinessProbe: {httpGet: {path: /ready, port: 8181}}
          resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 170Mi}}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: ${DNS_IP}
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
EOF
  kc -n kube-system rollout status deploy/coredns --timeout=120s >&2 ||
    log "warning: CoreDNS is not ready; pods can still use Service ClusterIPs"
fi

log "cluster ready in $((SECONDS - t0))s"
kc get nodes -o wide >&2
echo "KUBECONFIG=${KUBECONFIG_ADMIN}"
