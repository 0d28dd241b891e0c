#!/usr/bin/env bash
# Build Prometheus 2.26.0 (the version BKPR runs; rejects overlapping blocks)
# from the Go module proxy, cached in /var/cache/ptm/prometheus-2.26.0/bin.
# The v2 tags are not Go-module versions: v2.26.0 is the pseudo-version of
# its tag commit. The wrapper module copies upstream's replace/exclude lines
# and raises modern-go/reflect2 to 1.0.2 (1.0.1 panics on Go >= 1.18).
set -euo pipefail

OUT="${PTM_CACHE:-/var/cache/ptm}/prometheus-2.26.0"
VERSION=v1.8.2-0.20210331101223-3cafc58827d1 # tag v2.26.0, commit 3cafc58827d1
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

if [[ -x "$OUT/bin/prometheus" ]] && "$OUT/bin/prometheus" --version 2>&1 | grep -q 'version 2.26.0'; then
  "$OUT/bin/prometheus" --version 2>&1 | head -n 1
  exit 0
fi
mkdir -p "$OUT/src" "$OUT/bin"
cd "$OUT/src"
cat >go.mod <<EOF
module ptm/prometheus226

go 1.22

require (
	github.com/prometheus/prometheus $VERSION
	github.com/modern-go/reflect2 v1.0.2
)

replace (
	k8s.io/klog => github.com/simonpasquier/klog-gokit v0.3.0
	k8s.io/klog/v2 => github.com/simonpasquier/klog-gokit/v2 v2.0.1
)

exclude (
	github.com/grpc-ecosystem/grpc-gateway v1.14.7
	google.golang.org/api v0.30.0
	k8s.io/client-go v1.4.0
	k8s.io/client-go v1.4.0+incompatible
	k8s.io/client-go v1.5.0
	k8s.io/client-go v1.5.0+incompatible
	k8s.io/client-go v1.5.1
	k8s.io/client-go v1.5.1+incompatible
	k8s.io/client-go v10.0.0+incompatible
	k8s.io/client-go v11.0.0+incompatible
	k8s.io/client-go v2.0.0+incompatible
	k8s.io/client-go v2.0.0-alpha.1+incompatible
	k8s.io/client-go v3.0.0+incompatible
	k8s.io/client-go v3.0.0-beta.0+incompatible
	k8s.io/client-go v4.0.0+incompatible
	k8s.io/client-go v4.0.0-beta.0+incompatible
	k8s.io/client-go v5.0.0+incompatible
	k8s.io/client-go v5.0.1+incompatible
	k8s.io/client-go v6.0.0+incompatible
	k8s.io/client-go v7.0.0+incompatible
	k8s.io/client-go v8.0.0+incompatible
	k8s.io/client-go v9.0.0+incompatible
	k8s.io/client-go v9.0.0-invalid+incompatible
)
EOF
v=github.com/prometheus/common/version
go build -p "${PTM_BUILD_P:-1}" -o "$OUT/bin/prometheus.tmp" \
  -ldflags "-X $v.Version=2.26.0 -X $v.Revision=3cafc58827d1ebd1a67749f88be4218f0bab3d8d -X $v.Branch=HEAD" \
  github.com/prometheus/prometheus/cmd/prometheus
mv "$OUT/bin/prometheus.tmp" "$OUT/bin/prometheus"
"$OUT/bin/prometheus" --version 2>&1 | head -n 1
