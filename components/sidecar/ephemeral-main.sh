#!/bin/sh
# First lines of an ephemeral sidecar (sidecarMode: ephemeral), before its own script: records
# the PID of the container's main process, which the revert stops
# (components/cluster/ephemeral-sidecar.sh stop), also in a pod that shares one process
# namespace. The shell keeps this PID when the script that follows execs its daemon.
#
# Env: PTM_RUN (required): the sidecar's own scratch dir, on its own root filesystem.
if ! { mkdir -p "${PTM_RUN:?}" && echo "$$" >"$PTM_RUN/main.pid"; }; then
  echo "ephemeral-main: can't write ${PTM_RUN:-PTM_RUN}/main.pid: the sidecar's root filesystem must be writable" >&2
  exit 1
fi
