#!/usr/bin/env bash
# Build the lab's Kubernetes and etcd binaries from Go modules, cached outside
# the repo. Idempotent: a binary group whose cache dir is complete is skipped.
#
#   PTM_CACHE      cache root                (default /var/cache/ptm)
#   PTM_K8S_VER    k8s.io/kubernetes version (default v1.34.4)
#   PTM_ETCD_VER   etcd version              (default v3.6.16)
#   PTM_COREDNS_VER CoreDNS version          (default v1.12.4; cluster DNS image)
#   PTM_BUILD_P    go build -p               (default 2)
set -euo pipefail

PTM_CACHE="${PTM_CACHE:-/var/cache/ptm}"
K8S_VER="${PTM_K8S_VER:-v1.34.4}"
ETCD_VER="${PTM_ETCD_VER:-v3.6.16}"
COREDNS_VER="${PTM_COREDNS_VER:-v1.12.4}"
BUILD_P="${PTM_BUILD_P:-2}"
export PATH="/usr/local/go/bin:${PATH}"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
K8S_DIR="${PTM_CACHE}/k8s-${K8S_VER}"
ETCD_DIR="${PTM_CACHE}/etcd-${ETCD_VER}"
COREDNS_DIR="${PTM_CACHE}/coredns-${COREDNS_VER}"
LOG_DIR="${PTM_CACHE}/logs"
mkdir -p "${LOG_DIR}"

log() { printf '[build %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[[ -x /usr/local/go/bin/go ]] || command -v go >/dev/null || { log "Go is missing (expected /usr/local/go)"; exit 1; }
if ! command -v jq >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jq >&2
fi

have_all() { # dir bin...
  local dir="$1" b
  shift
  for b in "$@"; do [[ -x "${dir}/bin/${b}" ]] || return 1; done
}

TMP="$(mktemp -d /tmp/ptm-build.XXXXXX)"
trap 'rm -rf "${TMP}"' EXIT

build_etcd() {
  if have_all "${ETCD_DIR}" etcd etcdctl; then
    log "etcd ${ETCD_VER}: cached in ${ETCD_DIR}/bin"
    return 0
  fi
  local start=$SECONDS w="${TMP}/etcd"
  mkdir -p "${w}" "${ETCD_DIR}/bin"
  log "etcd ${ETCD_VER}: building"
  (
    cd "${w}"
    go mod init ptm.local/etcdwrap >/dev/null 2>&1
    # The server module's root package is the etcd main; etcdctl is its own module.
    go get "go.etcd.io/etcd/server/v3@${ETCD_VER}" "go.etcd.io/etcd/etcdctl/v3@${ETCD_VER}" >/dev/null
    nice -n 10 go build -p "${BUILD_P}" -trimpath -ldflags='-s -w' \
      -o "${ETCD_DIR}/bin/etcd" go.etcd.io/etcd/server/v3
    nice -n 10 go build -p "${BUILD_P}" -trimpath -ldflags='-s -w' \
      -o "${ETCD_DIR}/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
  )
  log "etcd ${ETCD_VER}: built in $((SECONDS - start))s"
}

build_coredns() {
  if have_all "${COREDNS_DIR}" coredns; then
    log "coredns ${COREDNS_VER}: cached in ${COREDNS_DIR}/bin"
    return 0
  fi
  local start=$SECONDS w="${TMP}/coredns"
  mkdir -p "${w}" "${COREDNS_DIR}/bin"
  log "coredns ${COREDNS_VER}: building"
  (
    cd "${w}"
    go mod init ptm.local/corednswrap >/dev/null 2>&1
    # The module root is CoreDNS' main package (all in-tree plugins).
    go get "github.com/coredns/coredns@${COREDNS_VER}" >/dev/null 2>&1
    nice -n 10 go build -p "${BUILD_P}" -trimpath \
      -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VER}" \
      -o "${COREDNS_DIR}/bin/coredns" github.com/coredns/coredns
  )
  log "coredns ${COREDNS_VER}: built in $((SECONDS - start))s"
}

build_k8s() {
  if have_all "${K8S_DIR}" "${K8S_BINS[@]}"; then
    log "kubernetes ${K8S_VER}: cached in ${K8S_DIR}/bin"
    return 0
  fi
  local start=$SECONDS w="${TMP}/k8s" gomod minor
  mkdir -p "${w}" "${K8S_DIR}/bin"
  minor="${K8S_VER#v1.}"   # 34.4
  log "kubernetes ${K8S_VER}: building"
  cd "${w}"
  go mod init ptm.local/k8swrap >/dev/null 2>&1
  gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VER}" | jq -r .GoMod)"
  # Every staging module is required at v0.0.0 (and replaced by ./staging/...);
  # point each at the published v0.<minor> tag instead.
  {
    echo "require k8s.io/kubernetes ${K8S_VER}"
    awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "${gomod}" | sort -u |
      while read -r m; do echo "replace ${m} => ${m} v0.${minor}"; done
  } >>go.mod
  go mod download -json "k8s.io/kubernetes@${K8S_VER}" >/dev/null
  local b
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for b in "${K8S_BINS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${b}"; done
    printf ')\n'
  } >tools.go
  go mod tidy >/dev/null 2>"${LOG_DIR}/k8s-tidy.log" || { cat "${LOG_DIR}/k8s-tidy.log" >&2; exit 1; }
  local ld="-s -w"
  local v
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${v}.gitVersion=${K8S_VER} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor%%.*}"
    ld+=" -X ${v}.gitTreeState=clean -X ${v}.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=()
  for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${b}"); done
  # One invocation shares the compile of common packages.
  nice -n 10 go build -p "${BUILD_P}" -trimpath -ldflags="${ld}" -o "${K8S_DIR}/bin/" "${pkgs[@]}"
  # The pause source ships in the module; keep a copy for the image build.
  cp "$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c" "${K8S_DIR}/pause.c"
  log "kubernetes ${K8S_VER}: built in $((SECONDS - start))s"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  k8s) build_k8s ;;
  coredns) build_coredns ;;
  all) build_etcd; build_k8s; build_coredns ;;
  *) echo "usage: $0 [all|etcd|k8s|coredns]" >&2; exit 2 ;;
esac
