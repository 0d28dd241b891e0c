#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# test/engine/build.sh - build the Pulumi CLI, the nodejs language host and the
# kubernetes/command resource plugins from Go modules into a version-keyed cache
# ($PTM_CACHE, default /var/cache/ptm). Idempotent: a binary whose stamp matches
# its recipe is not rebuilt, so a second run builds nothing.
#
# Usage: test/engine/build.sh [all|cli|nodejs|kubernetes|command]...   (default: all)
#        test/engine/build.sh --background [targets]   (nohup, log in $PTM_CACHE/logs)
# Env:   PTM_CACHE   cache root (default /var/cache/ptm)
#        PTM_NICE    nice level for the go builds (default 10)
#        PTM_FORCE=1 rebuild even if cached
#        PTM_KEEP_WORK=1 keep the throwaway wrapper modules (printed in the log)
#
# Each binary is built in a throwaway wrapper module under a temp dir: the
# wrapper requires the wanted version, copies the non-path `replace` lines of
# the built module's go.mod (path replaces such as `=> ../sdk` cannot work
# outside the upstream repo and are dropped), and where the source is not on
# the module proxy it `replace`s the module with a local copy.
#
# Two binaries can't be built here: the module proxy does not serve the nodejs
# language host (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
# nor the command provider (github.com/pulumi/pulumi-command/provider): 403 for
# tag, commit and pseudo-version. For them this script only checks that they are
# in the cache, and says how to get them otherwise. On a machine with internet
# access, Pulumi's own installer and `pulumi plugin install` provide them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
source "$HERE/versions.sh"

PTM_NICE=${PTM_NICE:-10}
LOGDIR=$PTM_CACHE/logs
TIMES=$LOGDIR/times.tsv

export GOFLAGS=-mod=mod
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}

log() { printf '%s build.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH"; }

# --- background mode -------------------------------------------------------
if [[ ${1:-} == --background ]]; then
  shift
  mkdir -p "$LOGDIR"
  bglog=$LOGDIR/build-$(date -u +%Y%m%dT%H%M%SZ).log
  nohup "$0" "$@" >"$bglog" 2>&1 </dev/null &
  echo "build.sh running in background as pid $!, log: $bglog"
  exit 0
fi

need go
need node
need flock
need tar

mkdir -p "$LOGDIR" "$PTM_PULUMI_BIN" "$PTM_K8S_BIN" "$PTM_COMMAND_BIN"

# One build at a time per cache (two concurrent runs would race on the same outputs).
exec 9>"$PTM_CACHE/.build.lock"
if ! flock -n 9; then
  log "another build.sh holds $PTM_CACHE/.build.lock; waiting"
  flock 9
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ptm-build.XXXXXX")
cleanup() {
  if [[ ${PTM_KEEP_WORK:-0} == 1 ]]; then
    log "kept work dir $WORK"
  else
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# mod_json MODULE@VERSION FIELD -> prints a field of `go mod download -json`
mod_json() {
  local json
  json=$(go mod download -json "$1") || die "go mod download $1 failed: $json"
  node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8"));
           if(j.Error){console.error(j.Error);process.exit(1)}
           console.log(j[process.argv[1]]);' "$2" <<<"$json"
}

# nonpath_replaces GO.MOD -> "old[@v]=new@v" per non-path replace line
nonpath_replaces() {
  go mod edit -json "$1" | node -e '
    const m=JSON.parse(require("fs").readFileSync(0,"utf8"));
    for (const r of m.Replace||[]) {
      if (!r.New.Version) continue;   // path replace (=> ../sdk): dropped
      console.log(r.Old.Path+(r.Old.Version?"@"+r.Old.Version:"")+"="+r.New.Path+"@"+r.New.Version);
    }'
}

# wrapper_init DIR NAME -> fresh wrapper module in DIR
wrapper_init() {
  mkdir -p "$1"
  (cd "$1" && go mod init "ptm.local/wrap/$2" >/dev/null 2>&1)
}

# wrapper_copy_replaces DIR GO.MOD
wrapper_copy_replaces() {
  local r
  while IFS= read -r r; do
    [[ -n $r ]] || continue
    log "  replace $r"
    (cd "$1" && go mod edit -replace="$r")
  done < <(nonpath_replaces "$2")
}

# is_cached BINPATH RECIPE -> 0 if BINPATH exists and its stamp equals RECIPE
is_cached() {
  [[ ${PTM_FORCE:-0} != 1 && -x $1 && -f $1.stamp && "$(cat "$1.stamp")" == "$2" ]]
}

# go_build WRAPDIR OUT LDFLAGS PACKAGE -> builds into OUT.tmp, then moves into place
go_build() {
  local dir=$1 out=$2 ldflags=$3 pkg=$4
  (cd "$dir" && nice -n "$PTM_NICE" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
}

# record NAME SECONDS RESULT
record() {
  [[ -f $TIMES ]] || printf 'date_utc\tbinary\tseconds\tresult\n' >"$TIMES"
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" >>"$TIMES"
}

# timed NAME FUNCTION [ARGS] -> runs FUNCTION, logs and records its duration
timed() {
  local name=$1 t0 rc secs
  shift
  t0=$(date +%s)
  # not `"$@" || rc=$?`: that would switch off set -e inside the build function
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  secs=$(($(date +%s) - t0))
  if ((rc == 0)); then
    record "$name" "$secs" ok
    log "$name: built in ${secs}s"
  else
    record "$name" "$secs" "failed($rc)"
    log "$name: FAILED after ${secs}s (rc=$rc)"
  fi
  return "$rc"
}

# ---------------------------------------------------------------------------
# 1. pulumi CLI: github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi)
# ---------------------------------------------------------------------------
CLI_MOD=github.com/pulumi/pulumi/pkg/v3
CLI_VER=v$PTM_PULUMI_VERSION
CLI_LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$CLI_VER"
CLI_RECIPE="$CLI_MOD@$CLI_VER cmd/pulumi $CLI_LDFLAGS"

build_cli() {
  local w=$WORK/cli gomod
  wrapper_init "$w" pulumi-cli
  (cd "$w" && go mod edit -require="$CLI_MOD@$CLI_VER" -require="github.com/pulumi/pulumi/sdk/v3@$CLI_VER")
  gomod=$(mod_json "$CLI_MOD@$CLI_VER" GoMod)
  wrapper_copy_replaces "$w" "$gomod"
  go_build "$w" "$PTM_PULUMI_BIN/pulumi" "$CLI_LDFLAGS" "$CLI_MOD/cmd/pulumi"
  local v
  v=$("$PTM_PULUMI_BIN/pulumi" version)
  [[ $v == "$CLI_VER" ]] || die "pulumi version reports '$v', want $CLI_VER"
  # Dynamic providers need pulumi-resource-pulumi-nodejs on PATH: a shell script
  # shipped next to the CLI in upstream releases; sdk/v3 has it.
  local sdkdir
  sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@$CLI_VER" Dir)
  install -m 0755 "$sdkdir/nodejs/dist/pulumi-resource-pulumi-nodejs" "$PTM_PULUMI_BIN/"
  echo "$CLI_RECIPE" >"$PTM_PULUMI_BIN/pulumi.stamp"
}

# ---------------------------------------------------------------------------
# 2 and 4. Not on the module proxy: check that they are present.
# ---------------------------------------------------------------------------
# require_present BIN WHAT -> ok when BIN is an executable, else explain
require_present() {
  local bin=$1 what=$2
  [[ -x $bin ]] && return 0
  die "$bin is missing. $what is not served by the Go module proxy, so it can't be built here from published modules. On a machine with internet access, install Pulumi with its installer (it bundles the language host) and run \`pulumi plugin install resource command $PTM_COMMAND_VERSION\`; or copy the binary of version ${3:-} to $bin"
}
build_nodejs() { require_present "$PTM_PULUMI_BIN/pulumi-language-nodejs" "pulumi-language-nodejs" "$CLI_VER"; }
build_command() { require_present "$PTM_COMMAND_BIN/pulumi-resource-command" "pulumi-resource-command" "v$PTM_COMMAND_VERSION"; }

# ---------------------------------------------------------------------------
# 3. pulumi-resource-kubernetes: github.com/pulumi/pulumi-kubernetes/provider/v4
#    at the v4.25.0 tag commit; cmd/pulumi-resource-kubernetes embeds
#    schema-embed.json + terraform-mapping-embed.json made by its generate.go.
# ---------------------------------------------------------------------------
K8S_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_LDFLAGS="-X $K8S_MOD/pkg/version.Version=$PTM_K8S_VERSION"
K8S_RECIPE="$K8S_MOD@$PTM_K8S_PROVIDER_MODVER sdk/v4@$PTM_K8S_SDK_MODVER generate VERSION=$PTM_K8S_VERSION $K8S_LDFLAGS"

build_kubernetes() {
  local w=$WORK/kubernetes moddir cmd
  wrapper_init "$w" pulumi-resource-kubernetes
  moddir=$(mod_json "$K8S_MOD@$PTM_K8S_PROVIDER_MODVER" Dir)
  # writable copy: go generate writes into cmd/pulumi-resource-kubernetes
  mkdir -p "$w/src"
  cp -R "$moddir/." "$w/src/"
  chmod -R u+w "$w/src"
  (cd "$w" && go mod edit \
    -require="$K8S_MOD@$PTM_K8S_PROVIDER_MODVER" -replace="$K8S_MOD=./src" \
    -require="github.com/pulumi/pulumi-kubernetes/sdk/v4@$PTM_K8S_SDK_MODVER")
  wrapper_copy_replaces "$w" "$w/src/go.mod"
  cp "$w/src/go.sum" "$w/go.sum"
  # generate.go is `//go:build ignore` and meant for `go run` inside the
  # upstream repo; build it as a package of the wrapper and run it in the cmd dir.
  cmd=$w/src/cmd/pulumi-resource-kubernetes
  mkdir -p "$w/gen"
  grep -v -E '^//(go:build| \+build) ignore' "$cmd/generate.go" >"$w/gen/main.go"
  (cd "$w" && nice -n "$PTM_NICE" go build -o "$w/gen-schema" ./gen)
  (cd "$cmd" && VERSION=$PTM_K8S_VERSION "$w/gen-schema")
  [[ -s $cmd/schema-embed.json && -s $cmd/terraform-mapping-embed.json ]] || die "generate.go made no schema-embed.json"
  go_build "$w" "$PTM_K8S_BIN/pulumi-resource-kubernetes" "$K8S_LDFLAGS" "$K8S_MOD/cmd/pulumi-resource-kubernetes"
  echo "$K8S_RECIPE" >"$PTM_K8S_BIN/pulumi-resource-kubernetes.stamp"
}

# ---------------------------------------------------------------------------
run_target() {
  local t=$1 bin recipe fn
  case $t in
    cli) bin=$PTM_PULUMI_BIN/pulumi recipe=$CLI_RECIPE fn=build_cli ;;
    nodejs)
      build_nodejs
      return 0
      ;;
    kubernetes) bin=$PTM_K8S_BIN/pulumi-resource-kubernetes recipe=$K8S_RECIPE fn=build_kubernetes ;;
    command)
      build_command
      return 0
      ;;
    *) die "unknown target '$t' (all|cli|nodejs|kubernetes|command)" ;;
  esac
  if is_cached "$bin" "$recipe"; then
    log "$t: cached ($bin)"
    return 0
  fi
  log "$t: building $bin"
  timed "$(basename "$bin")" "$fn"
}

targets=("$@")
if ((${#targets[@]} == 0)) || [[ ${targets[0]} == all ]]; then
  # command and nodejs first: small, and the verification needs them soonest
  targets=(cli command nodejs kubernetes)
fi

t_start=$(date +%s)
failed=()
for t in "${targets[@]}"; do
  # each target runs in a subshell so one failure (die/exit) does not stop the
  # rest; not `(...) || ...`, which would switch off set -e inside it
  set +e
  (
    set -e
    run_target "$t"
  )
  rc=$?
  set -e
  ((rc == 0)) || failed+=("$t")
done
log "done in $(($(date +%s) - t_start))s; failed: ${failed[*]:-none}"
((${#failed[@]} == 0))
