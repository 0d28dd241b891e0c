#!/usr/bin/env bash
# Makes the lab's released PersistentVolumes available again, their data wiped: the demo and
# the e2e test delete their namespaces between runs, and the lab's PVs are Retain.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/lab/lib.sh disable=SC1091
source "${here}/lib.sh"
recycle_pvs
