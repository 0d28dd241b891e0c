#!/usr/bin/env bash
# prometheus-operator in the lab: built from its Go module (build-prometheus-operator.sh),
# its CRDs from the same module version, the prometheus-config-reloader image its generated
# StatefulSets need, and the operator itself as a host process with the lab's kubeconfig.
#
#   test/lab/operator.sh up      build if needed, install the CRDs, import the reloader image,
#                                start the operator (kept when already running)
#   test/lab/operator.sh down    stop the operator (the CRDs and resources stay)
#   test/lab/operator.sh status  print the pid, version and CRD state
#
#   PTM_PROMOP_VER   operator version (default 0.93.1; the Go module proxy here serves the
#                    operator's pkg/client module at v0.93.x, not at v0.94.x)
#
# The operator runs with `-prometheus-config-reloader=ptm/prometheus-config-reloader:<ver>`,
# so every generated StatefulSet's init container and reloader run the image built here. A
# `Prometheus` resource names a lab Prometheus image in spec.image (e.g. ptm/prometheus:2.42)
# with spec.version set to its version. Logs: ${PTM_LAB}/logs/prometheus-operator.log; its
# metrics and /healthz on 127.0.0.1:8089.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/lab/lib.sh
source "${here}/lib.sh"

VER="${PTM_PROMOP_VER:-0.93.1}"
OUT="${PTM_CACHE}/prometheus-operator-${VER}"
RELOADER_REF="docker.io/ptm/prometheus-config-reloader:${VER}"
RELOADER_TAR="${PTM_CACHE}/images/prometheus-config-reloader-${VER}.tar"
NAME=prometheus-operator
PORT=8089

build() {
  mkdir -p "${PTM_CACHE}/logs"
  if ! "${here}/build-prometheus-operator.sh" "${VER}" >>"${PTM_CACHE}/logs/prometheus-operator-${VER}.log" 2>&1; then
    log "building prometheus-operator ${VER} failed: see ${PTM_CACHE}/logs/prometheus-operator-${VER}.log"
    exit 1
  fi
}

# The reloader image: the static binary only, as upstream's (busybox-based) image runs it.
reloader_image() {
  if [[ ! -s "${RELOADER_TAR}" || ! -s "${PTM_CACHE}/registry/manifests/ptm/prometheus-config-reloader/${VER}" ]]; then
    local r
    r="$(mktemp -d /tmp/ptm-reloader.XXXXXX)"
    install -D -m 0755 "${OUT}/bin/prometheus-config-reloader" "${r}/bin/prometheus-config-reloader"
    PTM_REGISTRY_DIR="${PTM_CACHE}/registry" "${here}/images/mkimage.sh" "ptm/prometheus-config-reloader:${VER}" "${r}" "${RELOADER_TAR}" \
      '{"Entrypoint":["/bin/prometheus-config-reloader"],"User":"65534"}'
    rm -rf "${r}"
  fi
  local sum stamp="${PTM_LAB}/images/prometheus-config-reloader-${VER}.sha256"
  sum="$(sha256sum "${RELOADER_TAR}" | cut -d' ' -f1)"
  if [[ "$(cat "${stamp}" 2>/dev/null)" != "${sum}" ]] ||
    ! ctr --address "${CTRD_SOCK}" -n k8s.io images ls -q | grep -qx "${RELOADER_REF}"; then
    log "importing ${RELOADER_REF}"
    ctr --address "${CTRD_SOCK}" -n k8s.io images import "${RELOADER_TAR}" >&2
    mkdir -p "${PTM_LAB}/images"
    echo "${sum}" >"${stamp}"
  fi
}

crds() {
  # Server-side: the CRDs are too big for kubectl's last-applied annotation.
  kc apply --server-side --force-conflicts --field-manager=ptm-lab -f "${OUT}/crd/" >/dev/null
  kc wait --for=condition=Established --timeout=60s crd/prometheuses.monitoring.coreos.com >/dev/null
  log "CRDs of prometheus-operator ${VER} installed ($(find "${OUT}/crd" -name "*.yaml" | wc -l) files)"
}

# The pid listening on the operator's port (empty: none).
port_owner() {
  ss -ltnpH "sport = :${PORT}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

start_operator() {
  local pid owner
  # An operator of ours that lost its pid file still holds the port: adopt it when it runs
  # this version's binary, else stop it.
  owner="$(port_owner)"
  if [[ -n "${owner}" ]] && ! lab_pid "${NAME}" >/dev/null; then
    if [[ "$(readlink "/proc/${owner}/exe" 2>/dev/null)" == "$(readlink -f "${OUT}/bin/operator")" ]]; then
      log "adopting ${NAME} ${VER} already listening on ${PORT} (pid ${owner})"
      echo "${owner}" >"${PIDS}/${NAME}.pid"
      readlink -f "${OUT}/bin/operator" >"${PIDS}/${NAME}.exe"
      echo "${VER}" >"${PIDS}/${NAME}.ver"
    else
      log "127.0.0.1:${PORT} is held by pid ${owner} ($(readlink "/proc/${owner}/exe" 2>/dev/null || echo unknown)), not ${NAME} ${VER}; stop it first"
      exit 1
    fi
  fi
  if pid="$(lab_pid "${NAME}")" && [[ "$(cat "${PIDS}/${NAME}.ver" 2>/dev/null)" == "${VER}" ]]; then
    log "${NAME} ${VER} already running (pid ${pid})"
    return 0
  fi
  [[ -z "${pid:-}" ]] || stop_operator
  log "starting ${NAME} ${VER}"
  (
    close_fds
    KUBECONFIG="${KUBECONFIG_ADMIN}" exec setsid nohup "${OUT}/bin/operator" \
      -prometheus-config-reloader="${RELOADER_REF}" \
      -web.listen-address="127.0.0.1:${PORT}" \
      -log-level=info \
      >>"${LOGS}/${NAME}.log" 2>&1 </dev/null
  ) &
  echo $! >"${PIDS}/${NAME}.pid"
  readlink -f "${OUT}/bin/operator" >"${PIDS}/${NAME}.exe"
  echo "${VER}" >"${PIDS}/${NAME}.ver"
  local i
  for ((i = 0; i < 60; i++)); do
    # Answered by the process just started, not by another one on the port.
    if curl -fsS "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 &&
      [[ "$(port_owner)" == "$(cat "${PIDS}/${NAME}.pid")" ]]; then
      log "${NAME} ${VER} up (pid $(cat "${PIDS}/${NAME}.pid"))"
      return 0
    fi
    lab_pid "${NAME}" >/dev/null || {
      tail -n 20 "${LOGS}/${NAME}.log" >&2
      log "${NAME} exited; see ${LOGS}/${NAME}.log"
      exit 1
    }
    sleep 0.5
  done
  log "${NAME} did not answer /healthz within 30s; see ${LOGS}/${NAME}.log"
  exit 1
}

stop_operator() {
  local pid i
  pid="$(lab_pid "${NAME}")" || { log "${NAME} is not running"; return 0; }
  log "stopping ${NAME} (pid ${pid})"
  kill -TERM "${pid}"
  for ((i = 0; i < 40; i++)); do [[ -d "/proc/${pid}" ]] || break; sleep 0.5; done
  [[ ! -d "/proc/${pid}" ]] || kill -KILL "${pid}"
  rm -f "${PIDS}/${NAME}.pid" "${PIDS}/${NAME}.ver"
}

case "${1:-up}" in
up)
  kc get --raw /readyz >/dev/null || { log "the lab is not up: run npm run lab:up first"; exit 1; }
  build
  reloader_image
  crds
  start_operator
  ;;
down) stop_operator ;;
status)
  if pid="$(lab_pid "${NAME}")"; then
    echo "${NAME} $(cat "${PIDS}/${NAME}.ver" 2>/dev/null) running, pid ${pid}"
  else
    echo "${NAME} not running"
  fi
  kc get crd prometheuses.monitoring.coreos.com -o jsonpath='{.metadata.name} {.metadata.annotations.operator\.prometheus\.io/version}{"\n"}' 2>/dev/null ||
    echo "CRDs not installed"
  ;;
*)
  echo "usage: $0 up|down|status" >&2
  exit 2
  ;;
esac
