#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# test/engine/build.sh - build the Pulumi CLI, the nodejs language host and the
# kubernetes/command resource plugins into a version-keyed cache ($PTM_CACHE,
# default /var/cache/ptm). Idempotent: a binary whose stamp matches its recipe
# is not rebuilt, so a second run builds nothing.
#
# Usage: test/engine/build.sh [all|cli|nodejs|kubernetes|command]...   (default: all)
#        test/engine/build.sh check [targets]     preflight only (seconds): prints one
#                                                 line per problem on stdout, exit 1 if any
#        test/engine/build.sh --background [targets]   (nohup, log in $PTM_CACHE/logs)
# Env:   PTM_CACHE        cache root (default /var/cache/ptm)
#        PTM_UPSTREAM_SRC folder with the upstream sources of the language host and the
#                         command provider (default <repo root>/../shared/upstream when
#                         that exists); only read, the builds run in a temp copy
#        PTM_NICE         nice level for the go builds (default 10)
#        PTM_SERIAL=1     build the targets one after the other (default: concurrently)
#        PTM_FORCE=1      rebuild even if cached
#        PTM_KEEP_WORK=1  keep the temp work dir (printed in the log)
#
# cli and kubernetes come from published Go modules: each is built in a
# throwaway wrapper module that requires the wanted version and copies the
# non-path `replace` lines of the built module's go.mod (path replaces such as
# `=> ../sdk` cannot work outside the upstream repo and are dropped).
# nodejs (pulumi-language-nodejs) and command (pulumi-resource-command) are not
# served by the Go module proxy: they are built from $PTM_UPSTREAM_SRC (layout and
# commands as in its README.md). Without that folder a cached binary is used, and
# if there is none the preflight says how to get one.
#
# Every run first checks, in seconds, everything it can (go, node, flock, a
# writable cache, a source folder or a cached binary for nodejs/command) and
# builds nothing when something is missing. Each target takes its own lock
# ($PTM_CACHE/.build-<target>.lock), so runs for different targets do not wait
# on each other; within one run the targets build concurrently.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.sh
source "$HERE/versions.sh"

if [[ -n ${PTM_UPSTREAM_SRC+set} ]]; then
  SRC_ORIGIN="PTM_UPSTREAM_SRC is empty"
else
  SRC_ORIGIN="PTM_UPSTREAM_SRC is not set and $REPO_ROOT/../shared/upstream does not exist"
  if [[ -d $REPO_ROOT/../shared/upstream ]]; then
    PTM_UPSTREAM_SRC=$(cd "$REPO_ROOT/../shared/upstream" && pwd)
  fi
fi
PTM_UPSTREAM_SRC=${PTM_UPSTREAM_SRC-}

PTM_NICE=${PTM_NICE:-10}
LOGDIR=$PTM_CACHE/logs
TIMES=$LOGDIR/times.tsv

export GOFLAGS=-mod=mod

log() { printf '%s build.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- background mode -------------------------------------------------------
if [[ ${1:-} == --background ]]; then
  shift
  mkdir -p "$LOGDIR"
  bglog=$LOGDIR/build-$(date -u +%Y%m%dT%H%M%SZ).log
  nohup "$0" "$@" >"$bglog" 2>&1 </dev/null &
  echo "build.sh running in background as pid $!, log: $bglog"
  exit 0
fi

# ---------------------------------------------------------------------------
# Recipes (what a stamp records) and binaries
# ---------------------------------------------------------------------------
# 1. pulumi CLI: github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi)
CLI_MOD=github.com/pulumi/pulumi/pkg/v3
CLI_VER=v$PTM_PULUMI_VERSION
CLI_LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$CLI_VER"
CLI_RECIPE="$CLI_MOD@$CLI_VER cmd/pulumi $CLI_LDFLAGS"

# 2. nodejs language host: upstream github.com/pulumi/pulumi at tag v3.248.0,
#    sdk/nodejs/cmd/pulumi-language-nodejs, its path replaces of pkg/v3 and sdk/v3
#    pointed at the published v3.248.0 modules.
NODEJS_SUBDIR=pulumi-language-nodejs/sdk/nodejs/cmd/pulumi-language-nodejs
NODEJS_LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$CLI_VER"
NODEJS_RECIPE="github.com/pulumi/pulumi@$PTM_PULUMI_COMMIT (tag $CLI_VER) sdk/nodejs/cmd/pulumi-language-nodejs replace pkg/v3,sdk/v3=>$CLI_VER $NODEJS_LDFLAGS"

# 3. kubernetes provider: github.com/pulumi/pulumi-kubernetes/provider/v4 at the
#    v4.25.0 tag commit; cmd/pulumi-resource-kubernetes embeds schema-embed.json +
#    terraform-mapping-embed.json made by its generate.go.
K8S_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_LDFLAGS="-X $K8S_MOD/pkg/version.Version=$PTM_K8S_VERSION"
K8S_RECIPE="$K8S_MOD@$PTM_K8S_PROVIDER_MODVER sdk/v4@$PTM_K8S_SDK_MODVER generate VERSION=$PTM_K8S_VERSION $K8S_LDFLAGS"

# 4. command provider: upstream github.com/pulumi/pulumi-command at tag v1.2.1,
#    provider/cmd/pulumi-resource-command.
COMMAND_SUBDIR=pulumi-command/provider
COMMAND_LDFLAGS="-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$PTM_COMMAND_VERSION"
COMMAND_RECIPE="github.com/pulumi/pulumi-command@$PTM_COMMAND_COMMIT (tag v$PTM_COMMAND_VERSION) provider/cmd/pulumi-resource-command $COMMAND_LDFLAGS"

# target_info TARGET -> sets BIN RECIPE FN for TARGET
target_info() {
  case $1 in
    cli) BIN=$PTM_PULUMI_BIN/pulumi RECIPE=$CLI_RECIPE FN=build_cli ;;
    nodejs) BIN=$PTM_PULUMI_BIN/pulumi-language-nodejs RECIPE=$NODEJS_RECIPE FN=build_nodejs ;;
    kubernetes) BIN=$PTM_K8S_BIN/pulumi-resource-kubernetes RECIPE=$K8S_RECIPE FN=build_kubernetes ;;
    command) BIN=$PTM_COMMAND_BIN/pulumi-resource-command RECIPE=$COMMAND_RECIPE FN=build_command ;;
    *) return 1 ;;
  esac
}

# stamp_ok BINPATH RECIPE -> 0 if BINPATH exists and its stamp equals RECIPE
stamp_ok() {
  [[ -x $1 && -f $1.stamp && "$(cat "$1.stamp")" == "$2" ]]
}

# is_cached BINPATH RECIPE -> stamp_ok, unless PTM_FORCE=1
is_cached() {
  [[ ${PTM_FORCE:-0} != 1 ]] && stamp_ok "$1" "$2"
}

# ---------------------------------------------------------------------------
# Upstream sources (nodejs, command)
# ---------------------------------------------------------------------------
# src_missing TARGET -> prints why $PTM_UPSTREAM_SRC can't build TARGET; empty if it can
src_missing() {
  local files f
  case $1 in
    nodejs) files=("$NODEJS_SUBDIR/go.mod" "$NODEJS_SUBDIR/go.sum" "$NODEJS_SUBDIR/main.go") ;;
    command) files=("$COMMAND_SUBDIR/go.mod" "$COMMAND_SUBDIR/go.sum" "$COMMAND_SUBDIR/cmd/pulumi-resource-command/main.go" "$COMMAND_SUBDIR/pkg/version") ;;
    *) return 0 ;;
  esac
  if [[ -z $PTM_UPSTREAM_SRC ]]; then
    echo "no upstream source folder ($SRC_ORIGIN)"
    return 0
  fi
  if [[ ! -d $PTM_UPSTREAM_SRC ]]; then
    echo "no upstream source folder (PTM_UPSTREAM_SRC=$PTM_UPSTREAM_SRC does not exist)"
    return 0
  fi
  for f in "${files[@]}"; do
    if [[ ! -e $PTM_UPSTREAM_SRC/$f ]]; then
      echo "no upstream source folder (PTM_UPSTREAM_SRC=$PTM_UPSTREAM_SRC has no $f)"
      return 0
    fi
  done
}

# remedy TARGET -> how to get TARGET without a source folder
remedy() {
  case $1 in
    nodejs)
      echo "the language host comes with Pulumi's installer: on a machine with internet access, the get.pulumi.com script (or the $CLI_VER release tarball) installs pulumi-language-nodejs next to pulumi; copy that file to $PTM_PULUMI_BIN/; or set PTM_UPSTREAM_SRC to a folder with the upstream sources ($NODEJS_SUBDIR)"
      ;;
    command)
      echo "on a machine with internet access run \`pulumi plugin install resource command $PTM_COMMAND_VERSION\` and copy \$PULUMI_HOME/plugins/resource-command-v$PTM_COMMAND_VERSION/pulumi-resource-command to $PTM_COMMAND_BIN/; or set PTM_UPSTREAM_SRC to a folder with the upstream sources ($COMMAND_SUBDIR)"
      ;;
  esac
}

# ---------------------------------------------------------------------------
# Preflight: everything that can be checked in seconds
# ---------------------------------------------------------------------------
PROBLEMS=()
problem() { PROBLEMS+=("$*"); }

# writable DIR -> 0 if DIR, or the nearest existing folder above it, is writable
writable() {
  local d=$1
  while [[ ! -e $d ]]; do d=$(dirname "$d"); done
  [[ -d $d && -w $d ]]
}

# preflight TARGETS... -> fills PROBLEMS
preflight() {
  local t why build=0
  for t in "$@"; do
    target_info "$t" || {
      problem "build.sh: unknown target '$t' (all|cli|nodejs|kubernetes|command)"
      continue
    }
    is_cached "$BIN" "$RECIPE" && continue
    why=$(src_missing "$t")
    if [[ -n $why ]]; then
      # nodejs/command without sources: a binary put there by hand (no stamp) will do
      if [[ -x $BIN ]]; then
        continue
      fi
      problem "$(basename "$BIN") is not cached ($BIN) and $why: $(remedy "$t")"
      continue
    fi
    build=1
  done
  if ((build)); then
    command -v go >/dev/null 2>&1 || problem "go is not on PATH (needed to build $*): install Go 1.25 or newer"
    command -v node >/dev/null 2>&1 || problem "node is not on PATH (build.sh reads go's JSON with it)"
    command -v flock >/dev/null 2>&1 || problem "flock is not on PATH (util-linux)"
    writable "$PTM_CACHE" || problem "cache $PTM_CACHE is not writable: set PTM_CACHE to a writable folder"
  fi
}

# ---------------------------------------------------------------------------
# Build helpers
# ---------------------------------------------------------------------------
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

# copy_src SUBDIR DEST -> writable copy of $PTM_UPSTREAM_SRC/SUBDIR's top folder in DEST
copy_src() {
  local top=${1%%/*}
  mkdir -p "$2"
  cp -R "$PTM_UPSTREAM_SRC/$top" "$2/"
  chmod -R u+w "$2"
}

# go_build DIR OUT LDFLAGS PACKAGE -> builds into OUT.tmp (the caller checks it, then install_built)
go_build() {
  local dir=$1 out=$2 ldflags=$3 pkg=$4
  rm -f "$out.tmp"
  (cd "$dir" && nice -n "$PTM_NICE" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
}

# install_built OUT RECIPE -> moves OUT.tmp into place and writes OUT.stamp
install_built() {
  mv -f "$1.tmp" "$1"
  echo "$2" >"$1.stamp"
}

# record NAME SECONDS RESULT
record() {
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
# Builds
# ---------------------------------------------------------------------------
build_cli() {
  local w=$WORK/cli gomod out=$PTM_PULUMI_BIN/pulumi v sdkdir
  wrapper_init "$w" pulumi-cli
  (cd "$w" && go mod edit -require="$CLI_MOD@$CLI_VER" -require="github.com/pulumi/pulumi/sdk/v3@$CLI_VER")
  gomod=$(mod_json "$CLI_MOD@$CLI_VER" GoMod)
  wrapper_copy_replaces "$w" "$gomod"
  go_build "$w" "$out" "$CLI_LDFLAGS" "$CLI_MOD/cmd/pulumi"
  v=$("$out.tmp" version)
  [[ $v == "$CLI_VER" ]] || die "pulumi version reports '$v', want $CLI_VER"
  # Dynamic providers need pulumi-resource-pulumi-nodejs on PATH: a shell script
  # shipped next to the CLI in upstream releases; sdk/v3 has it.
  sdkdir=$(mod_json "github.com/pulumi/pulumi/sdk/v3@$CLI_VER" Dir)
  install -m 0755 "$sdkdir/nodejs/dist/pulumi-resource-pulumi-nodejs" "$PTM_PULUMI_BIN/"
  install_built "$out" "$CLI_RECIPE"
}

build_nodejs() {
  local w=$WORK/nodejs d out=$PTM_PULUMI_BIN/pulumi-language-nodejs v
  copy_src "$NODEJS_SUBDIR" "$w"
  d=$w/$NODEJS_SUBDIR
  # go.mod replaces pkg/v3 and sdk/v3 with paths inside the upstream repository
  # (../../../../pkg, ../../..): point them at the published modules instead.
  (cd "$d" && go mod edit \
    -replace="github.com/pulumi/pulumi/pkg/v3=github.com/pulumi/pulumi/pkg/v3@$CLI_VER" \
    -replace="github.com/pulumi/pulumi/sdk/v3=github.com/pulumi/pulumi/sdk/v3@$CLI_VER")
  go_build "$d" "$out" "$NODEJS_LDFLAGS" .
  v=$("$out.tmp" -version)
  [[ $v == "$CLI_VER" ]] || die "pulumi-language-nodejs -version reports '$v', want $CLI_VER"
  install_built "$out" "$NODEJS_RECIPE"
}

build_kubernetes() {
  local w=$WORK/kubernetes moddir cmd out=$PTM_K8S_BIN/pulumi-resource-kubernetes
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
  go_build "$w" "$out" "$K8S_LDFLAGS" "$K8S_MOD/cmd/pulumi-resource-kubernetes"
  install_built "$out" "$K8S_RECIPE"
}

build_command() {
  local w=$WORK/command d out=$PTM_COMMAND_BIN/pulumi-resource-command
  copy_src "$COMMAND_SUBDIR" "$w"
  d=$w/$COMMAND_SUBDIR
  go_build "$d" "$out" "$COMMAND_LDFLAGS" ./cmd/pulumi-resource-command
  check_command "$out.tmp" "$w/check"
  install_built "$out" "$COMMAND_RECIPE"
}

# check_command BIN WORKDIR -> a provider with no version flag: check its build
# info, that it starts (without an engine it serves gRPC and prints its port),
# and, when the CLI is cached, the version in its schema.
check_command() {
  local bin=$1 w=$2 pid i port schema_version
  [[ -x $bin ]] || die "$bin is not an executable"
  go version -m "$bin" | grep -qE '^[[:space:]]+path[[:space:]]+github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command$' ||
    die "$bin: build info has no path github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command"
  mkdir -p "$w/bin" "$w/home"
  "$bin" >"$w/port" 2>"$w/stderr" </dev/null &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $w/port ]] && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  port=$(head -n 1 "$w/port")
  [[ $port =~ ^[0-9]+$ ]] || die "$bin printed no port when started (stderr: $(head -c 300 "$w/stderr"))"
  log "command: the provider starts (served on port $port)"
  if stamp_ok "$PTM_PULUMI_BIN/pulumi" "$CLI_RECIPE"; then
    cp "$bin" "$w/bin/pulumi-resource-command"
    schema_version=$(PULUMI_HOME=$w/home PULUMI_SKIP_UPDATE_CHECK=true \
      "$PTM_PULUMI_BIN/pulumi" package get-schema "$w/bin/pulumi-resource-command" |
      node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).version)')
    [[ $schema_version == "$PTM_COMMAND_VERSION" ]] ||
      die "$bin: schema version '$schema_version', want $PTM_COMMAND_VERSION"
    log "command: schema version $schema_version"
  else
    log "command: schema version not checked (the CLI is not built yet)"
  fi
}

# run_target TARGET -> builds TARGET unless cached, under its own lock
run_target() {
  local t=$1 lockfd
  target_info "$t" || die "unknown target '$t'"
  if is_cached "$BIN" "$RECIPE"; then
    log "$t: cached ($BIN)"
    return 0
  fi
  exec {lockfd}>"$PTM_CACHE/.build-$t.lock"
  if ! flock -n "$lockfd"; then
    log "$t: another build.sh holds $PTM_CACHE/.build-$t.lock; waiting"
    flock "$lockfd"
    if is_cached "$BIN" "$RECIPE"; then
      log "$t: built by the other run ($BIN)"
      return 0
    fi
  fi
  if [[ -n $(src_missing "$t") ]]; then
    # nodejs/command without sources: the preflight let it through, so it is there
    log "$t: no upstream source folder; using $BIN as it is (no matching stamp)"
    return 0
  fi
  log "$t: building $BIN"
  timed "$(basename "$BIN")" "$FN"
}

# ---------------------------------------------------------------------------
check_only=0
if [[ ${1:-} == check ]]; then
  check_only=1
  shift
fi
targets=()
for a in "$@"; do
  if [[ $a == all ]]; then
    targets+=(cli nodejs kubernetes command)
  else
    targets+=("$a")
  fi
done
((${#targets[@]})) || targets=(cli nodejs kubernetes command)

preflight "${targets[@]}"
if ((${#PROBLEMS[@]})); then
  if ((check_only)); then
    printf '%s\n' "${PROBLEMS[@]}"
  else
    for p in "${PROBLEMS[@]}"; do log "preflight: $p"; done
  fi
  die "preflight failed (${#PROBLEMS[@]} problem(s)); nothing built"
fi
if ((check_only)); then
  log "preflight ok for ${targets[*]}"
  exit 0
fi

mkdir -p "$LOGDIR" "$PTM_PULUMI_BIN" "$PTM_K8S_BIN" "$PTM_COMMAND_BIN"
[[ -f $TIMES ]] || printf 'date_utc\tbinary\tseconds\tresult\n' >"$TIMES"
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

t_start=$(date +%s)
failed=()
if [[ ${PTM_SERIAL:-0} == 1 || ${#targets[@]} == 1 ]]; then
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
else
  # concurrently, each target's lines prefixed with [target]
  pids=()
  for t in "${targets[@]}"; do
    (run_target "$t" 2>&1 | sed -u "s/^/[$t] /" >&2) &
    pids+=("$!")
  done
  for i in "${!targets[@]}"; do
    wait "${pids[$i]}" || failed+=("${targets[$i]}")
  done
fi
log "done in $(($(date +%s) - t_start))s; failed: ${failed[*]:-none}"
((${#failed[@]} == 0))
