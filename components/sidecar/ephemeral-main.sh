#!/bin/sh
# First lines of an ephemeral sidecar (sidecarMode: ephemeral), before its own script: records
# the PID of the container's main process, which the revert stops
# (components/cluster/ephemeral-sidecar.sh stop), also in a pod that shares one process
# namespace. The shell keeps this PID when the script that follows execs its daemon.
#
# Env: PTM_RUN (required): the sidecar's own scratch dir, on its own root filesystem.
#
# Not "$$": this text is a container command, where Kubernetes turns "$$" into "$" (its
# escape for $(VAR) references). The shell's own /proc/self/stat, read by the builtin read,
# starts with the shell's PID.
if ! { mkdir -p "${PTM_RUN:?}" && read -r ptm_main_pid _ </proc/self/stat && echo "$ptm_main_pid" >"$PTM_RUN/main.pid"; }; then
  echo "ephemeral-main: can't write ${PTM_RUN:-PTM_RUN}/main.pid: the sidecar's root filesystem must be writable" >&2
  exit 1
fi
