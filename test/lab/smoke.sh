#!/usr/bin/env bash
# Smoke test of the lab cluster (test/lab/up.sh must have run). Checks image pulls
# from the lab registry mirror, kubectl exec,
# pod -> ClusterIP Service traffic, a PV surviving pod restarts, Server-Side
# Apply add/relinquish of a sidecar, the atomic `args` trap, and
# `kubectl rollout restart` of a StatefulSet. Ends with "N passed, M failed".
# PTM_SMOKE_KEEP=1 keeps the namespace for inspection.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/lab/lib.sh disable=SC1091
source "${here}/lib.sh"

NS="${PTM_SMOKE_NS:-ptm-smoke}"
passed=0
failed=0
t0=$SECONDS
k() { kc -n "${NS}" "$@"; }
summary() {
  local rc=$?
  ((rc == 0)) || ((failed > 0)) || failed=$((failed + 1))
  echo "smoke test took $((SECONDS - t0))s"
  echo "${passed} passed, ${failed} failed"
  ((failed == 0))
}
trap summary EXIT
ok() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
# check DESC CMD...: pass when CMD succeeds
check() {
  local desc="$1"
  shift
  if "$@"; then ok "${desc}"; else bad "${desc}"; fi
}
retry() { # SECONDS CMD...
  local secs="$1" i
  shift
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}
apply() { # MANAGER [extra kubectl args] < manifest
  local m="$1"
  shift
  k apply --server-side --field-manager="${m}" "$@" -f -
}
resolves() { # NAME IP: nslookup in the shell pod answers IP for NAME
  k exec shell -- nslookup "$1" 2>/dev/null | grep -E "^Address:? +$2\$" >/dev/null
}
containers() { k get deploy ssa -o jsonpath='{.spec.template.spec.containers[*].name}'; }
main_args() { k get deploy ssa -o jsonpath='{.spec.template.spec.containers[?(@.name=="main")].args}'; }

if ! kc get --raw /readyz >/dev/null 2>&1; then
  echo "cluster not reachable with ${KUBECONFIG_ADMIN}; run npm run lab:up" >&2
  failed=1
  exit 1
fi

# The smoke test's namespace carries its own label, and only a namespace with that label is
# deleted (a delete by selector), as in the demo and the e2e tests (test/e2e/cluster.ts).
OWNED="app.kubernetes.io/managed-by=prometheus-tsdb-migration-tests,app.kubernetes.io/instance=${NS}"
if kc get ns "${NS}" >/dev/null 2>&1; then
  if [[ -z $(kc get ns -l "${OWNED}" -o name) ]]; then
    echo "namespace ${NS} exists without the label ${OWNED%%,*}: left alone; set PTM_SMOKE_NS" >&2
    failed=1
    exit 1
  fi
  kc delete ns -l "${OWNED}" --wait=true --timeout=120s >/dev/null
fi
recycle_pvs
kc create ns "${NS}" >/dev/null
kc label ns "${NS}" app.kubernetes.io/managed-by=prometheus-tsdb-migration-tests \
  "app.kubernetes.io/instance=${NS}" >/dev/null
retry 30 k get serviceaccount default || true

# ---------------------------------------------------------------- workloads
k apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: shell
      image: ptm/rsync:latest
      imagePullPolicy: Never
      command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: pull}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: pull
      image: ptm/rsync:latest
      imagePullPolicy: Always
      command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: prometheus
      image: ptm/prometheus:2.42
      imagePullPolicy: Never
      ports: [{containerPort: 9090}]
      volumeMounts: [{name: data, mountPath: /prometheus}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 9090}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store}
spec:
  serviceName: store
  replicas: 1
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {runAsUser: 1001, runAsGroup: 1001, fsGroup: 1001}
      containers:
        - name: main
          image: ptm/rsync:latest
          imagePullPolicy: Never
          command: ["sh", "-c", "date >> /data/boots; exec sleep 3600"]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
EOF

check "pods shell and web become Ready" \
  k wait --for=condition=Ready pod/shell pod/web --timeout=120s
check "imagePullPolicy Always pulls ptm/rsync:latest from the lab registry mirror" \
  k wait --for=condition=Ready pod/pull --timeout=60s

# ---------------------------------------------------------------- exec
# shellcheck disable=SC2016 # expanded by the pod's shell
out="$(k exec shell -- sh -c 'echo exec-$((40 + 2))' 2>&1 || true)"
check "kubectl exec runs a command in a pod (got '${out}')" test "${out}" = exec-42

# ---------------------------------------------------------------- ClusterIP
ip="$(k get svc web -o jsonpath='{.spec.clusterIP}')"
check "pod reaches another pod through ClusterIP ${ip}:80" \
  retry 60 k exec shell -- timeout 5 wget -q -O /dev/null "http://${ip}/-/ready"
body="$(k exec shell -- timeout 5 wget -q -O - "http://${ip}/api/v1/status/buildinfo" 2>&1 || true)"
check "prometheus image answers buildinfo via the Service" grep -q '"version":"2.42' <<<"${body}"
if kc -n kube-system get svc kube-dns >/dev/null 2>&1; then
  fqdn="web.${NS}.svc.cluster.local"
  check "cluster DNS: ${fqdn} resolves to ${ip}" retry 30 resolves "${fqdn}" "${ip}"
  check "cluster DNS: a pod reaches http://web/ by its short Service name" \
    retry 10 k exec shell -- timeout 5 wget -q -O /dev/null "http://web/-/ready"
else
  echo "SKIP  cluster DNS (no kube-dns Service; PTM_DNS=0 or no CoreDNS image)"
fi
# Plain HTTP to the TLS port: Go's TLS server answers "400 ... HTTPS server".
api="$(k exec shell -- sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | timeout 5 nc 10.96.0.1 443' 2>&1 || true)"
check "pod reaches the API server through the kubernetes Service 10.96.0.1:443" \
  grep -q 'HTTPS server' <<<"${api}"

# ---------------------------------------------------------------- PV survives restart
check "StatefulSet pod with a PV-backed claim becomes Ready" \
  k wait --for=condition=Ready pod/store-0 --timeout=180s
marker="marker-${RANDOM}-${RANDOM}"
k exec store-0 -- sh -c "echo ${marker} > /data/marker" || true
uid1="$(k get pod store-0 -o jsonpath='{.metadata.uid}')"
k delete pod store-0 --wait=true --timeout=60s >/dev/null
retry 60 k get pod store-0 || true
k wait --for=condition=Ready pod/store-0 --timeout=120s >/dev/null || true
got="$(k exec store-0 -- cat /data/marker 2>&1 || true)"
uid2="$(k get pod store-0 -o jsonpath='{.metadata.uid}')"
check "PV data survives a pod delete/recreate (new pod, same data)" \
  test "${got}" = "${marker}" -a "${uid1}" != "${uid2}"

# ---------------------------------------------------------------- rollout restart
check "kubectl rollout restart statefulset/store" k rollout restart statefulset/store
check "rollout of the restarted StatefulSet completes" \
  k rollout status statefulset/store --timeout=180s
uid3="$(k get pod store-0 -o jsonpath='{.metadata.uid}')"
got="$(k exec store-0 -- cat /data/marker 2>&1 || true)"
boots="$(k exec store-0 -- sh -c 'wc -l < /data/boots' 2>&1 || true)"
check "restarted pod is new and still has the PV data (boots=${boots})" \
  test "${uid3}" != "${uid2}" -a "${got}" = "${marker}" -a "${boots}" = 3

# ---------------------------------------------------------------- Server-Side Apply
apply base >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: ptm/prometheus:2.42
          imagePullPolicy: Never
          args: ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=1d"]
EOF
orig_args="$(main_args)"
check "base deployment rolls out" k rollout status deploy/ssa --timeout=120s

# A patch manager adds a sidecar: containers is a map list keyed by name.
apply sidecar-patch >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  template:
    spec:
      containers:
        - name: sidecar
          image: ptm/rsync:latest
          imagePullPolicy: Never
          command: ["sleep", "3600"]
EOF
check "SSA patch adds the sidecar next to main (got '$(containers)')" test "$(containers)" = "main sidecar"
check "pod with the sidecar rolls out" k rollout status deploy/ssa --timeout=120s
# Relinquish: the manager applies an object with none of its fields.
apply sidecar-patch >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
EOF
check "relinquishing the patch manager removes the sidecar (got '$(containers)')" test "$(containers)" = "main"
check "relinquishing the sidecar leaves main's args intact" test "$(main_args)" = "${orig_args}"

# The args trap: args is an atomic list owned by base.
args_patch() {
  cat <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  template:
    spec:
      containers:
        - name: main
          args: ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.enable-admin-api"]
EOF
}
err="$(args_patch | apply args-patch 2>&1 >/dev/null || true)"
check "changing args without force is a conflict with the owner" grep -qi conflict <<<"${err}"
force_args() { args_patch | apply args-patch --force-conflicts >/dev/null; }
check "forcing args (--force-conflicts) succeeds" force_args
owners="$(k get deploy ssa --show-managed-fields -o json | jq -r '[.metadata.managedFields[] | select(.fieldsV1 | tostring | test("\"f:args\"")) | .manager] | join(",")')"
check "after force only args-patch owns args (owners: ${owners})" test "${owners}" = args-patch
apply args-patch >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
EOF
check "trap reproduced: relinquishing forced args deletes the original args (args now '$(main_args)')" \
  test -z "$(main_args)"
check "main container itself survives the relinquish (containers '$(containers)')" test "$(containers)" = "main"

# ---------------------------------------------------------------- cleanup
if [[ "${PTM_SMOKE_KEEP:-0}" != 1 ]]; then
  kc delete ns -l "${OWNED}" --wait=true --timeout=120s >/dev/null || true
  recycle_pvs
fi
