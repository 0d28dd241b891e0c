#!/usr/bin/env bash
# Build prometheus-operator (the operator and prometheus-config-reloader) from
# its Go module, cached by version in ${PTM_CACHE}/prometheus-operator-<v>/:
#   bin/operator, bin/prometheus-config-reloader
#   crd/*.yaml   the CRDs of the same module version (example/prometheus-operator-crd)
# The module is unpacked into src/ and built as the main module, so upstream's
# path replaces (pkg/apis/monitoring, pkg/client => ./pkg/...) apply; those two are
# modules of their own, absent from the main module's zip, so they are downloaded at
# the same version and put where the replaces point. The module proxy here serves all
# three at v0.93.1 (pkg/client v0.94.x is missing, v0.95.x is refused).
# Usage: build-prometheus-operator.sh [0.93.1]   (PTM_BUILD_P: go build -p, default 1)
set -euo pipefail

version="${1:-${PTM_PROMOP_VER:-0.93.1}}"
version="${version#v}"
[[ "${version}" =~ ^0\.[0-9]+\.[0-9]+$ ]] || {
  echo "build-prometheus-operator.sh: ${version} is not a 0.x.y version" >&2
  exit 2
}
module=github.com/prometheus-operator/prometheus-operator
OUT="${PTM_CACHE:-/var/cache/ptm}/prometheus-operator-${version}"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

complete() {
  [[ -x "$OUT/bin/operator" && -x "$OUT/bin/prometheus-config-reloader" ]] &&
    [[ -s "$OUT/crd/monitoring.coreos.com_prometheuses.yaml" ]] &&
    "$OUT/bin/operator" --version 2>&1 | grep -q "version ${version}"
}
if complete; then
  "$OUT/bin/operator" --version 2>&1 | head -n 1
  exit 0
fi

mkdir -p "$OUT/bin" "$OUT/crd"
download() { # MODULE: prints its directory in the module cache
  local d
  d="$(cd /tmp && go mod download -json "$1@v${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "${d}" ]] || {
    echo "build-prometheus-operator.sh: go mod download $1@v${version} gave no directory" >&2
    exit 1
  }
  printf '%s' "${d}"
}
rm -rf "$OUT/src"
cp -r "$(download "${module}")" "$OUT/src"
for sub in pkg/apis/monitoring pkg/client; do
  rm -rf "${OUT:?}/src/${sub}"
  mkdir -p "$(dirname "$OUT/src/${sub}")"
  cp -r "$(download "${module}/${sub}")" "$OUT/src/${sub}"
done
chmod -R u+w "$OUT/src"
cp "$OUT/src/example/prometheus-operator-crd/"*.yaml "$OUT/crd/"

cd "$OUT/src"
v=github.com/prometheus/common/version
for cmd in operator prometheus-config-reloader; do
  nice -n 10 go build -p "${PTM_BUILD_P:-1}" -trimpath -o "$OUT/bin/${cmd}.tmp" \
    -ldflags "-s -X $v.Version=${version} -X $v.Revision=v${version} -X $v.Branch=HEAD" \
    "./cmd/${cmd}"
  mv "$OUT/bin/${cmd}.tmp" "$OUT/bin/${cmd}"
done
"$OUT/bin/operator" --version 2>&1 | head -n 1
