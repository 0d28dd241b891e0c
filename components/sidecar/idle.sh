#!/bin/sh
# Target sidecar entrypoint: stay up, doing nothing, until the pod stops. The migration's
# steps run in this container through `kubectl exec`.
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
