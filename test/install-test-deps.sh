#!/usr/bin/env bash
# Install what `npm run test:real` and `npm run bench` need, via apt-get, only
# when missing: prometheus + promtool, rsync, shellcheck, busybox, curl.
# Debian's prometheus package starts a service on :9090; stop and disable it
# (the tests start their own servers on free ports).
set -euo pipefail

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v rsync >/dev/null || need+=(rsync)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v busybox >/dev/null || need+=(busybox)
command -v curl >/dev/null || need+=(curl)

if ((${#need[@]} > 0)); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "installing: ${pkgs[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    "${sudo[@]}" systemctl disable --now prometheus || true
  fi
fi

# sed reads all input: `head` would SIGPIPE the writer and trip pipefail.
prometheus --version 2>&1 | sed -n 1p
rsync --version | sed -n 1p
shellcheck --version | sed -n 2p
busybox | sed -n 1p

# The Prometheus builds the real tests run besides Debian's 2.42 (pre239.test.ts: 2.26;
# versions.test.ts: the 3.x of test/real/prometheus-3-versions). CI builds them in its
# install step (.ci/run); here they are only reported, since a build takes about 10 min.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PTM_CACHE:-/var/cache/ptm}"
while read -r v; do
  [[ -z $v || $v == \#* ]] && continue
  build="test/real/build-prometheus-3.sh $v"
  [[ $v == 2.26.0 ]] && build=test/real/build-prometheus-2.26.sh
  if [[ -x "$cache/prometheus-$v/bin/prometheus" ]]; then
    echo "prometheus $v: cached in $cache/prometheus-$v/bin"
  else
    echo "prometheus $v: not built (its tests are skipped): bash $build"
  fi
done < <(echo 2.26.0 && cat "$here/real/prometheus-3-versions")
