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
