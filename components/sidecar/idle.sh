#!/bin/sh
# Target sidecar entrypoint: stay up, doing nothing, until the pod stops. The migration's
# steps run in this container through `kubectl exec`.
#
# When the pod stops (deleted, evicted, restarted), only this process gets the SIGTERM, and
# the steps would be killed without a word when it exits (kubectl's "exit status 137"). It
# passes the signal on to them (lib.sh, copy.sh: a step then says what stopped it and what
# to do) and waits for them, at most 20 s, before the container ends.
#
# No "$$" here: this text is a container command, where Kubernetes turns "$$" into "$".

# The steps (sh -c "$PTM_SCRIPT" ptm-<step>: the 4th word of their command line) and every
# process under them. Nothing else: in a pod that shares one process namespace, the other
# containers' processes are visible here too.
steps() {
  for p in /proc/[0-9]*; do
    { read -r st <"$p/stat"; } 2>/dev/null || continue
    # stat is "pid (comm) state ppid ...": comm may hold spaces, so read after its ")".
    ppid=$(echo "${st##*)}" | awk '{ print $2 }')
    # The words end in NULs; a script (the 3rd word) has newlines of its own.
    word4=$(tr '\n\0' ' \n' <"$p/cmdline" 2>/dev/null | sed -n 4p)
    echo "${p#/proc/} $ppid ${word4:--}"
  done | awk -v me="$main_pid" '$1 != me { up[$1] = $2; if ($3 ~ /^ptm-/) mark[$1] = 1 }
    END {
      # This shell and its subshells have a ptm- 4th word too (the container name): not steps.
      for (p in mark) {
        ours = 0
        for (q = up[p]; (q in up) || q == me; q = up[q]) if (q == me) { ours = 1; break }
        if (!ours) step[p] = 1
      }
      for (p in up) for (q = p; q in up; q = up[q]) if (q in step) { print p; break }
    }'
}
stop() {
  pids=$(steps)
  # shellcheck disable=SC2086 # a list of PIDs
  [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
  i=0
  while [ "$i" -lt 20 ] && [ -n "$(steps)" ]; do
    sleep 1
    i=$((i + 1))
  done
  exit 0
}
# This shell's PID (read by the builtin: /proc/self is the shell itself).
read -r main_pid _ </proc/self/stat
trap stop TERM INT
while :; do
  sleep 3600 &
  wait $!
done
