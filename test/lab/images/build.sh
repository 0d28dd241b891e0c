#!/usr/bin/env bash
# Build the lab's container images as docker-archive tarballs, without a
# registry, from Debian packages and the pause.c shipped in k8s.io/kubernetes:
#
#   registry.k8s.io/pause:3.10       static pause (sandbox image)
#   ptm/prometheus:2.42              Debian prometheus + promtool + busybox-static
#   ptm/bitnami-prometheus:3.13.5    an upstream build in the Bitnami image's shape (when
#                                    its binary is cached; PTM_BITNAMI_VERSION)
#   ptm/bitnami-prometheus:2.26.0    the same shape, BKPR's own pin (when prometheus-2.26.0 is
#                                    built: test/real/build-prometheus-2.26.sh)
#   ptm/prometheus:<3.x>             the version matrix's 3.x (test/real/prometheus-3-versions),
#                                    official shape, when their binaries are cached
#   ptm/config-reloader:stand-in     busybox httpd answering /healthz on :8080, in place of
#                                    the charts' configmap-reload containers (no reload)
#   ptm/rsync:latest                 Debian rsync (+ its shared libs) + busybox-static
#   ptm/coredns:<ver>                CoreDNS built by test/lab/build.sh (static), cluster DNS
#
# Prometheus images come in two shapes, each for any version whose binaries exist:
#
#   official  ptm/prometheus:<ver>          like quay.io/prometheus/prometheus: WORKDIR
#             /prometheus (owned by 65534), user 65534, the binary as entrypoint, CMD
#             --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus ...
#   bitnami   ptm/bitnami-prometheus:<ver>  like bitnami/prometheus (bitnami/containers
#             bitnami/prometheus/*/Dockerfile): WORKDIR /opt/bitnami/prometheus, user 1001,
#             ENTRYPOINT /opt/bitnami/prometheus/bin/prometheus, CMD with
#             --storage.tsdb.path=/opt/bitnami/prometheus/data, data/ and conf/ owned by
#             1001, /prometheus -> data and /etc/prometheus -> conf. A container that sets
#             args without --storage.tsdb.path (BKPR) gets data/ under the workdir.
#
# Version 2.42 is Debian's package (/usr/bin/prometheus, dynamically linked; official shape
# only: Debian changed its default TSDB path); any other version is the static upstream
# build in ${PTM_CACHE}/prometheus-<ver>/bin (test/real/build-prometheus-2.26.sh,
# test/real/build-prometheus-3.sh <ver>). ptm/prometheus:2.42 is built exactly as before
# this parameterisation (byte for byte the same tarball).
#
#   test/lab/images/build.sh                            the default set above, plus
#                                                       PTM_PROMETHEUS_IMAGES="official:3.13.5 bitnami:2.26.0"
#   test/lab/images/build.sh prometheus SHAPE VERSION   one Prometheus image only
#
# Output: ${PTM_CACHE}/images/<name>.tar (prometheus.tar for ptm/prometheus:2.42,
# prometheus-<ver>.tar and bitnami-prometheus-<ver>.tar otherwise; skipped when present,
# so each version is built once; PTM_IMAGES_FORCE=1 rebuilds), imported by test/lab/up.sh
# (ctr -n k8s.io images import, every tar there), and the same images as a registry tree
# in ${PTM_CACHE}/registry for test/lab/images/registry.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PTM_CACHE="${PTM_CACHE:-/var/cache/ptm}"
K8S_VER="${PTM_K8S_VER:-v1.34.4}"
COREDNS_VER="${PTM_COREDNS_VER:-v1.12.4}"
out="${PTM_CACHE}/images"
export PTM_REGISTRY_DIR="${PTM_CACHE}/registry"
force="${PTM_IMAGES_FORCE:-0}"
export PATH="/usr/local/go/bin:${PATH}"
mkdir -p "${out}"

log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

need_pkgs=()
# busybox-static, not busybox: the images need the static binary.
for p in busybox-static prometheus rsync gcc libc6-dev jq; do
  dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep "ok installed" >/dev/null || need_pkgs+=("${p}")
done
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2
fi

tmp="$(mktemp -d /tmp/ptm-images.XXXXXX)"
trap 'rm -rf "${tmp}"' EXIT

# Copy a dynamically linked binary plus every library ldd lists (and the
# loader) into ROOTFS at the same paths (the binary at DEST when given).
add_bin() {
  local root="$1" bin="$2" dest="${3:-$2}" lib
  install -D -m 0755 "${bin}" "${root}${dest}"
  while read -r lib; do
    [[ -n "${lib}" && -e "${lib}" ]] || continue
    install -D -m 0755 "$(readlink -f "${lib}")" "${root}${lib}"
  done < <(ldd "${bin}" 2>/dev/null | awk '/=> \//{print $3} $1 ~ /^\//{print $1}')
}

# busybox-static at /bin/busybox with a symlink per applet.
add_busybox() {
  local root="$1" a
  install -D -m 0755 /bin/busybox "${root}/bin/busybox"
  for a in $(/bin/busybox --list); do
    [[ "${a}" == busybox || -e "${root}/bin/${a}" ]] || ln -s busybox "${root}/bin/${a}"
  done
  mkdir -p "${root}/etc" "${root}/tmp" "${root}/root"
  chmod 1777 "${root}/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"${root}/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"${root}/etc/group"
  printf 'hosts: files dns\n' >"${root}/etc/nsswitch.conf"
}

want() { # NAME REPO/TAG
  [[ "${force}" == 1 || ! -s "${out}/$1.tar" || ! -s "${PTM_REGISTRY_DIR}/manifests/$2" ]]
}

# The prometheus and promtool binaries of VERSION: Debian's for 2.42, else the cached build.
prom_bins() { # VERSION -> sets prom_bin promtool_bin
  if [[ "$1" == 2.42 ]]; then
    prom_bin=/usr/bin/prometheus promtool_bin=/usr/bin/promtool
  else
    prom_bin="${PTM_CACHE}/prometheus-$1/bin/prometheus"
    promtool_bin="${PTM_CACHE}/prometheus-$1/bin/promtool"
  fi
  if [[ ! -x "${prom_bin}" ]]; then
    log "no Prometheus $1 binary at ${prom_bin}: build it first (test/real/build-prometheus-3.sh $1, or test/real/build-prometheus-2.26.sh)"
    return 1
  fi
  # test/real/build-prometheus-2.26.sh builds no promtool: the image goes without.
  [[ -x "${promtool_bin}" ]] || promtool_bin=""
}

scrape_self() { # FILE: a config that scrapes the server itself
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<'YML'
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
YML
}

# Official shape (quay.io/prometheus/prometheus): WORKDIR /prometheus, USER nobody (65534).
official_image() { # VERSION
  local ver="$1" tar="prometheus-$1" r cmd bin_dir
  [[ "${ver}" == 2.42 ]] && tar=prometheus
  want "${tar}" "ptm/prometheus/${ver}" || return 0
  prom_bins "${ver}"
  r="${tmp}/official-${ver}"
  mkdir -p "${r}"
  add_busybox "${r}"
  # Debian's binaries keep their path (/usr/bin); the static builds go where the official
  # image has them (/bin).
  bin_dir=/bin
  [[ "${ver}" == 2.42 ]] && bin_dir=/usr/bin
  add_bin "${r}" "${prom_bin}" "${bin_dir}/prometheus"
  [[ -z "${promtool_bin}" ]] || add_bin "${r}" "${promtool_bin}" "${bin_dir}/promtool"
  mkdir -p "${r}/etc/prometheus" "${r}/usr/share/prometheus" "${r}/prometheus"
  [[ "${ver}" != 2.42 ]] || cp -a /usr/share/prometheus/web "${r}/usr/share/prometheus/" 2>/dev/null || true
  scrape_self "${r}/etc/prometheus/prometheus.yml"
  chown 65534:65534 "${r}/prometheus"
  # 2.42 keeps the CMD it always had; other versions get the official image's.
  cmd='["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus","--web.console.libraries=/usr/share/prometheus/console_libraries","--web.console.templates=/usr/share/prometheus/consoles"]'
  [[ "${ver}" == 2.42 ]] && cmd='["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"]'
  "${here}/mkimage.sh" "ptm/prometheus:${ver}" "${r}" "${out}/${tar}.tar" \
    "{\"Entrypoint\":[\"${bin_dir}/prometheus\"],\"Cmd\":${cmd},\"User\":\"65534\",\"WorkingDir\":\"/prometheus\",\"ExposedPorts\":{\"9090/tcp\":{}}}"
}

# Bitnami shape (bitnami/prometheus): WORKDIR /opt/bitnami/prometheus, USER 1001, the
# binary as entrypoint; busybox gives the shell the real image's Debian userland gives.
bitnami_image() { # VERSION
  local ver="$1" r home=/opt/bitnami/prometheus
  if [[ "${ver}" == 2.42 ]]; then
    # Debian patches the default --storage.tsdb.path to /var/lib/prometheus/metrics2/:
    # under BKPR's args (no path flag) it would not write to data/ as Bitnami's does.
    log "no Bitnami-shaped image of Debian's 2.42 (its default TSDB path is Debian's, not data/); use an upstream build (test/real/build-prometheus-3.sh)"
    return 1
  fi
  want "bitnami-prometheus-${ver}" "ptm/bitnami-prometheus/${ver}" || return 0
  prom_bins "${ver}"
  r="${tmp}/bitnami-${ver}"
  mkdir -p "${r}"
  add_busybox "${r}"
  add_bin "${r}" "${prom_bin}" "${home}/bin/prometheus"
  [[ -z "${promtool_bin}" ]] || add_bin "${r}" "${promtool_bin}" "${home}/bin/promtool"
  mkdir -p "${r}${home}/conf/console_libraries" "${r}${home}/conf/consoles" "${r}${home}/data"
  scrape_self "${r}${home}/conf/prometheus.yml"
  # A build without built-in assets serves its UI (/ redirects there) from ./web/ui/static
  # when its working directory is named "prometheus" (web/ui/ui.go), and BKPR's probes GET
  # /. A placeholder page stands in for the UI build, which the Go module does not ship:
  # static/react (2.x), static/mantine-ui and static/react-app (3.x).
  for ui in react mantine-ui react-app; do
    mkdir -p "${r}${home}/web/ui/static/${ui}"
    printf '<!doctype html><title>TITLE_PLACEHOLDER</title><p>Prometheus (lab image: no web UI build)</p>\n' \
      >"${r}${home}/web/ui/static/${ui}/index.html"
  done
  ln -s "${home}/conf" "${r}/etc/prometheus"
  ln -s "${home}/data" "${r}/prometheus"
  chown -R 1001:1001 "${r}${home}"
  chmod g+rwX "${r}${home}/data"
  "${here}/mkimage.sh" "ptm/bitnami-prometheus:${ver}" "${r}" "${out}/bitnami-prometheus-${ver}.tar" \
    "{\"Entrypoint\":[\"${home}/bin/prometheus\"],\"Cmd\":[\"--config.file=${home}/conf/prometheus.yml\",\"--storage.tsdb.path=${home}/data\",\"--web.console.libraries=${home}/conf/console_libraries\",\"--web.console.templates=${home}/conf/consoles\"],\"User\":\"1001\",\"WorkingDir\":\"${home}\",\"Env\":[\"PATH=${home}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"ExposedPorts\":{\"9090/tcp\":{}}}"
}

prometheus_image() { # SHAPE VERSION
  case "$1" in
    official) official_image "$2" ;;
    bitnami) bitnami_image "$2" ;;
    *)
      log "unknown Prometheus image shape '$1' (official|bitnami)"
      return 2
      ;;
  esac
}

if [[ "${1:-}" == prometheus ]]; then
  [[ $# == 3 ]] || {
    log "usage: test/lab/images/build.sh prometheus official|bitnami VERSION"
    exit 2
  }
  prometheus_image "$2" "$3"
  exit 0
fi

if want pause pause/3.10; then
  dir="$(go mod download -json "k8s.io/kubernetes@${K8S_VER}" | jq -r .Dir)"
  r="${tmp}/pause"
  mkdir -p "${r}"
  gcc -Os -Wall -Werror -static -DVERSION="ptm-${K8S_VER}" -o "${r}/pause" "${dir}/build/pause/linux/pause.c"
  strip "${r}/pause"
  "${here}/mkimage.sh" registry.k8s.io/pause:3.10 "${r}" "${out}/pause.tar" \
    '{"Entrypoint":["/pause"],"User":"65535:65535"}'
fi

official_image 2.42
# The e2e's BKPR target (test/e2e/scenario.ts); test/e2e/run.sh builds the binary first.
BITNAMI_VER="${PTM_BITNAMI_VERSION:-3.13.5}"
if [[ -x "${PTM_CACHE}/prometheus-${BITNAMI_VER}/bin/prometheus" ]]; then
  bitnami_image "${BITNAMI_VER}"
else
  log "skipping ptm/bitnami-prometheus:${BITNAMI_VER}: no binary yet (test/real/build-prometheus-3.sh ${BITNAMI_VER})"
fi
# BKPR's own pin, the e2e's pre-2.39 target (test/e2e/transitions.test.ts), once
# test/real/build-prometheus-2.26.sh has built it (test/e2e/run.sh and CI's install step do).
if [[ -x "${PTM_CACHE}/prometheus-2.26.0/bin/prometheus" ]]; then
  bitnami_image 2.26.0
else
  log "skipping ptm/bitnami-prometheus:2.26.0: no binary yet (test/real/build-prometheus-2.26.sh)"
fi
# The version matrix's 3.x releases (test/real/prometheus-3-versions: the LTS and the newest),
# official shape, once their binaries are built (test/real/build-prometheus-3.sh; CI builds
# them in its install step).
while read -r v; do
  [[ -z "${v}" || "${v}" == \#* ]] && continue
  if [[ -x "${PTM_CACHE}/prometheus-${v}/bin/prometheus" ]]; then
    official_image "${v}"
  else
    log "skipping ptm/prometheus:${v}: no binary yet (test/real/build-prometheus-3.sh ${v})"
  fi
done <"${here}/../../real/prometheus-3-versions"
for spec in ${PTM_PROMETHEUS_IMAGES:-}; do
  prometheus_image "${spec%%:*}" "${spec#*:}"
done

# Stands in for configmap-reload / prometheus-config-reloader (the Helm chart's and BKPR's
# second container): it takes their args (as $1... of its sh -c) and ignores them, answers
# the chart's probes (GET /healthz on :8080), and exits on SIGTERM (as PID 1, httpd alone
# would ignore it and hold every rollout for the pods' terminationGracePeriodSeconds, 300 in
# both charts). It does not reload anything.
if want config-reloader ptm/config-reloader/stand-in; then
  r="${tmp}/config-reloader"
  mkdir -p "${r}/www"
  add_busybox "${r}"
  echo ok >"${r}/www/healthz"
  "${here}/mkimage.sh" ptm/config-reloader:stand-in "${r}" "${out}/config-reloader.tar" \
    '{"Entrypoint":["/bin/sh","-c","trap \"exit 0\" TERM INT; httpd -f -p 8080 -h /www & wait","config-reloader"],"User":"65534"}'
fi

if want rsync ptm/rsync/latest; then
  r="${tmp}/rsync"
  mkdir -p "${r}"
  add_busybox "${r}"
  add_bin "${r}" /usr/bin/rsync
  "${here}/mkimage.sh" ptm/rsync:latest "${r}" "${out}/rsync.tar" '{"Cmd":["/bin/sh"]}'
fi

coredns_bin="${PTM_CACHE}/coredns-${COREDNS_VER}/bin/coredns"
if [[ -x "${coredns_bin}" ]] && want coredns "ptm/coredns/${COREDNS_VER#v}"; then
  r="${tmp}/coredns"
  mkdir -p "${r}/etc/coredns"
  install -m 0755 "${coredns_bin}" "${r}/coredns"
  "${here}/mkimage.sh" "ptm/coredns:${COREDNS_VER#v}" "${r}" "${out}/coredns.tar" \
    '{"Entrypoint":["/coredns"],"ExposedPorts":{"53/udp":{},"53/tcp":{}}}'
fi

ls -la "${out}" >&2
