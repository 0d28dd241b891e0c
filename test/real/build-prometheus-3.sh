#!/usr/bin/env bash
# Build a Prometheus 3.x release from the Go module proxy, cached by version in
# ${PTM_CACHE}/prometheus-<version>/bin. Module versions v0.3xx.y are
# Prometheus 3.xx.y. The wrapper module repeats upstream's replace line (a
# dependency's replace is ignored). Usage: build-prometheus-3.sh 3.13.5
set -euo pipefail

version="${1:?usage: build-prometheus-3.sh <3.x.y>}"
[[ "${version}" =~ ^3\.([0-9]+)\.([0-9]+)$ ]] || {
  echo "build-prometheus-3.sh: ${version} is not a 3.x.y version" >&2
  exit 2
}
module_version="v0.3$(printf '%02d' "${BASH_REMATCH[1]}").${BASH_REMATCH[2]}"
OUT="${PTM_CACHE:-/var/cache/ptm}/prometheus-${version}"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

if [[ -x "$OUT/bin/prometheus" ]] && "$OUT/bin/prometheus" --version 2>&1 | grep -q "version ${version} "; then
  "$OUT/bin/prometheus" --version 2>&1 | head -n 1
  exit 0
fi
mkdir -p "$OUT/src" "$OUT/bin"
cd "$OUT/src"
cat >go.mod <<GOMOD
module ptm/prometheus3

go 1.26.0

require github.com/prometheus/prometheus ${module_version}

replace cloud.google.com/go => cloud.google.com/go v0.123.0

exclude (
	github.com/grpc-ecosystem/grpc-gateway v1.14.7
	github.com/linode/linodego v1.0.0
	google.golang.org/api v0.30.0
)
GOMOD
v=github.com/prometheus/common/version
for cmd in prometheus promtool; do
  go build -p "${PTM_BUILD_P:-1}" -o "$OUT/bin/${cmd}.tmp" \
    -ldflags "-X $v.Version=${version} -X $v.Revision=${module_version} -X $v.Branch=HEAD" \
    "github.com/prometheus/prometheus/cmd/${cmd}"
  mv "$OUT/bin/${cmd}.tmp" "$OUT/bin/${cmd}"
done
"$OUT/bin/prometheus" --version 2>&1 | head -n 1
