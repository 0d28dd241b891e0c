# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# test/engine/versions.sh - pinned versions and cache layout, sourced by build.sh and env.sh.
# The plugin versions must equal the npm packages' `pulumi.version`
# (npm view @pulumi/kubernetes@4.25.0 pulumi; npm view @pulumi/command@1.2.1 pulumi).

# Pulumi CLI + nodejs language host (npm @pulumi/pulumi 3.248.0). The language host
# is not served by the module proxy: build.sh builds it from the upstream source of
# github.com/pulumi/pulumi tag v3.248.0 (this commit) in $PTM_UPSTREAM_SRC.
PTM_PULUMI_VERSION=3.248.0
PTM_PULUMI_COMMIT=a88168d865b7fd428e5a929cc54aeceaf72d203f
# Kubernetes provider (npm @pulumi/kubernetes 4.25.0). The proxy serves the
# provider module only as a pseudo-version of the v4.25.0 tag commit f47bc2d6f199;
# the module's `replace sdk/v4 => ../sdk` is replaced by the released sdk/v4 tag.
PTM_K8S_VERSION=4.25.0
PTM_K8S_PROVIDER_MODVER=v4.0.0-20260115033456-f47bc2d6f199
PTM_K8S_SDK_MODVER=v4.25.0
# Command provider (npm @pulumi/command 1.2.1). Not served by the module proxy:
# build.sh builds it from the upstream source of github.com/pulumi/pulumi-command
# tag v1.2.1 (this commit) in $PTM_UPSTREAM_SRC (see build_command in build.sh).
PTM_COMMAND_VERSION=1.2.1
PTM_COMMAND_COMMIT=7f3eb6f3b77cd0fa3895ba437a695dd393f7dd25

PTM_CACHE=${PTM_CACHE:-/var/cache/ptm}
PTM_PULUMI_BIN=$PTM_CACHE/pulumi-v$PTM_PULUMI_VERSION/bin
PTM_K8S_BIN=$PTM_CACHE/pulumi-kubernetes-v$PTM_K8S_VERSION/bin
PTM_COMMAND_BIN=$PTM_CACHE/pulumi-command-v$PTM_COMMAND_VERSION/bin
