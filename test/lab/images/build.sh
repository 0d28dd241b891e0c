#!/usr/bin/env bash
# Build the lab's container images as docker-archive tarballs, without a
# registry, from Debian packages and the pause.c shipped in k8s.io/kubernetes:
#
#   registry.k8s.io/pause:3.10  static pause (sandbox image)
#   ptm/prometheus:2.42         Debian prometheus + promtool + busybox-static
#   ptm/rsync:latest            Debian rsync (+ its shared libs) + busybox-static
#   ptm/coredns:<ver>           CoreDNS built by test/lab/build.sh (static), cluster DNS
#
# Output: ${PTM_CACHE}/images/<name>.tar (skipped when present; PTM_IMAGES_FORCE=1
# rebuilds), imported by test/lab/up.sh (ctr -n k8s.io images import), and the same
# images as a registry tree in ${PTM_CACHE}/registry for test/lab/images/registry.py.
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
# loader) into ROOTFS at the same paths.
add_bin() {
  local root="$1" bin="$2" lib
  install -D -m 0755 "${bin}" "${root}${bin}"
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

if want pause pause/3.10; then
  dir="$(go mod download -json "k8s.io/kubernetes@${K8S_VER}" | jq -r .Dir)"
  r="${tmp}/pause"
  mkdir -p "${r}"
  gcc -Os -Wall -Werror -static -DVERSION="ptm-${K8S_VER}" -o "${r}/pause" "${dir}/build/pause/linux/pause.c"
  strip "${r}/pause"
  "${here}/mkimage.sh" registry.k8s.io/pause:3.10 "${r}" "${out}/pause.tar" \
    '{"Entrypoint":["/pause"],"User":"65535:65535"}'
fi

if want prometheus ptm/prometheus/2.42; then
  r="${tmp}/prometheus"
  mkdir -p "${r}"
  add_busybox "${r}"
  add_bin "${r}" /usr/bin/prometheus
  add_bin "${r}" /usr/bin/promtool
  mkdir -p "${r}/etc/prometheus" "${r}/usr/share/prometheus" "${r}/prometheus"
  cp -a /usr/share/prometheus/web "${r}/usr/share/prometheus/" 2>/dev/null || true
  cat >"${r}/etc/prometheus/prometheus.yml" <<'YML'
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
YML
  chown 65534:65534 "${r}/prometheus"
  "${here}/mkimage.sh" ptm/prometheus:2.42 "${r}" "${out}/prometheus.tar" \
    '{"Entrypoint":["/usr/bin/prometheus"],"Cmd":["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"],"User":"65534","WorkingDir":"/prometheus","ExposedPorts":{"9090/tcp":{}}}'
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
