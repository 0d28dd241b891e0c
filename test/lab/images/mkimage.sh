#!/usr/bin/env bash
# Pack a root filesystem directory into a single-layer docker-archive tarball
# (the `docker save` layout) that `ctr -n k8s.io images import` accepts.
#
#   mkimage.sh REF ROOTFS OUT.tar CONFIG_JSON
#
# CONFIG_JSON is the image's runtime config object, e.g.
#   '{"Entrypoint":["/pause"],"User":"65535"}'
# The layer tar is reproducible (sorted, numeric owners, mtime 0), so the
# same inputs give the same image id.
#
# With PTM_REGISTRY_DIR set, the image is also written there as an OCI
# manifest + blobs for test/lab/images/registry.py (blobs/sha256/<hex>,
# manifests/<repo>/<tag>).
set -euo pipefail

ref="$1" rootfs="$2" out="$3" cfg="$4"
work="$(mktemp -d /tmp/ptm-mkimage.XXXXXX)"
trap 'rm -rf "${work}"' EXIT

# Ownership is kept as in ROOTFS (numeric), e.g. a data dir chowned to 65534.
tar --sort=name --numeric-owner --mtime=@0 -C "${rootfs}" -cf "${work}/layer.tar" .
layer_sha="$(sha256sum "${work}/layer.tar" | cut -d' ' -f1)"
mkdir -p "${work}/out/${layer_sha}"
mv "${work}/layer.tar" "${work}/out/${layer_sha}/layer.tar"

jq -n --argjson c "${cfg}" --arg diff "sha256:${layer_sha}" '{
  architecture: "amd64", os: "linux",
  created: "1970-01-01T00:00:00Z",
  config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]} + $c),
  rootfs: {type: "layers", diff_ids: [$diff]},
  history: [{created: "1970-01-01T00:00:00Z", created_by: "ptm test/lab/images/mkimage.sh"}]
}' >"${work}/config.json"
cfg_sha="$(sha256sum "${work}/config.json" | cut -d' ' -f1)"
mv "${work}/config.json" "${work}/out/${cfg_sha}.json"

jq -n --arg cfg "${cfg_sha}.json" --arg ref "${ref}" --arg layer "${layer_sha}/layer.tar" \
  '[{Config: $cfg, RepoTags: [$ref], Layers: [$layer]}]' >"${work}/out/manifest.json"

if [[ -n "${PTM_REGISTRY_DIR:-}" ]]; then
  reg="${PTM_REGISTRY_DIR}"
  repo="${ref%:*}" tag="${ref##*:}"
  first="${repo%%/*}"
  # drop a registry host (registry.k8s.io/pause -> pause, docker.io/ptm/x -> ptm/x)
  if [[ "${repo}" == */* && ( "${first}" == *.* || "${first}" == *:* ) ]]; then repo="${repo#*/}"; fi
  mkdir -p "${reg}/blobs/sha256" "${reg}/manifests/${repo}"
  cp "${work}/out/${layer_sha}/layer.tar" "${reg}/blobs/sha256/${layer_sha}"
  cp "${work}/out/${cfg_sha}.json" "${reg}/blobs/sha256/${cfg_sha}"
  jq -cn --arg c "sha256:${cfg_sha}" --argjson cs "$(stat -c %s "${work}/out/${cfg_sha}.json")" \
    --arg l "sha256:${layer_sha}" --argjson ls "$(stat -c %s "${work}/out/${layer_sha}/layer.tar")" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]
  }' >"${work}/manifest.oci.json"
  man_sha="$(sha256sum "${work}/manifest.oci.json" | cut -d' ' -f1)"
  cp "${work}/manifest.oci.json" "${reg}/blobs/sha256/${man_sha}"
  mv "${work}/manifest.oci.json" "${reg}/manifests/${repo}/${tag}"
fi

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "${work}/out" -cf "${out}.tmp" .
mv "${out}.tmp" "${out}"
echo "${ref} sha256:${cfg_sha} ${out}"
