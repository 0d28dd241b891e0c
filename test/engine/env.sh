# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# test/engine/env.sh - source me for an offline Pulumi: the CLI, the nodejs language
# host and the kubernetes/command plugins from the test/engine/build.sh cache.
#
#   bash test/engine/build.sh          # once (idempotent; cached by version)
#   source test/engine/env.sh          # in every shell that runs pulumi
#
# It puts the cached CLI bin dir first on PATH; exports PULUMI_SKIP_UPDATE_CHECK,
# PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION, PULUMI_CONFIG_PASSPHRASE (empty
# unless already set), PULUMI_HOME and PULUMI_BACKEND_URL; installs the plugins
# into PULUMI_HOME (`pulumi plugin install resource NAME VERSION --file BIN`)
# unless the same binary is installed already; and runs `pulumi login file://DIR`.
#
# Knobs (set before sourcing):
#   PTM_CACHE        cache root of build.sh           (default /var/cache/ptm)
#   PTM_PULUMI_HOME  PULUMI_HOME                      (default $PTM_CACHE/pulumi-home)
#   PTM_BACKEND_DIR  file:// backend (stack state)    (default /var/lib/ptm/pulumi-backend)
#   PTM_PROVIDERS_ON_PATH=1  also put the provider bin dirs on PATH
#
# The caller's shell options are left alone: the setup steps run in a
# subshell under `set -euo pipefail`; sourcing returns non-zero on failure.

_ptm_env_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
source "$_ptm_env_here/versions.sh"

export PTM_CACHE
export PULUMI_HOME=${PTM_PULUMI_HOME:-$PTM_CACHE/pulumi-home}
export PTM_BACKEND_DIR=${PTM_BACKEND_DIR:-/var/lib/ptm/pulumi-backend}
export PULUMI_BACKEND_URL=file://$PTM_BACKEND_DIR
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-}

# Prepend the bin dirs once. Only the CLI dir (pulumi, pulumi-language-nodejs,
# pulumi-resource-pulumi-nodejs) by default: a provider found on PATH is used
# whatever its version, with "warning: using pulumi-resource-X from $PATH" on
# every run; the installed plugins are picked by version. PTM_PROVIDERS_ON_PATH=1
# adds the provider dirs too.
_ptm_dirs=("$PTM_PULUMI_BIN")
if [[ ${PTM_PROVIDERS_ON_PATH:-0} == 1 ]]; then
  _ptm_dirs=("$PTM_COMMAND_BIN" "$PTM_K8S_BIN" "$PTM_PULUMI_BIN")
fi
for _ptm_d in "${_ptm_dirs[@]}"; do
  case ":$PATH:" in
    *":$_ptm_d:"*) ;;
    *) PATH=$_ptm_d:$PATH ;;
  esac
done
export PATH
unset _ptm_d _ptm_dirs

_ptm_env_setup() (
  set -euo pipefail
  local b
  for b in "$PTM_PULUMI_BIN/pulumi" "$PTM_PULUMI_BIN/pulumi-language-nodejs" \
    "$PTM_K8S_BIN/pulumi-resource-kubernetes" "$PTM_COMMAND_BIN/pulumi-resource-command"; do
    if [[ ! -x $b ]]; then
      echo "env.sh: $b missing: run test/engine/build.sh first" >&2
      exit 1
    fi
  done
  mkdir -p "$PULUMI_HOME" "$PTM_BACKEND_DIR"

  # install NAME VERSION BIN: skip when the installed plugin is this very binary
  install_plugin() {
    local name=$1 version=$2 bin=$3 dir
    dir=$PULUMI_HOME/plugins/resource-$name-v$version
    if [[ -f $dir/pulumi-resource-$name && ! -e $dir.partial ]] &&
      cmp -s "$bin" "$dir/pulumi-resource-$name"; then
      return 0
    fi
    echo "env.sh: installing resource plugin $name $version from $bin" >&2
    pulumi plugin install resource "$name" "$version" --file "$bin" --reinstall >&2
  }
  install_plugin kubernetes "$PTM_K8S_VERSION" "$PTM_K8S_BIN/pulumi-resource-kubernetes"
  install_plugin command "$PTM_COMMAND_VERSION" "$PTM_COMMAND_BIN/pulumi-resource-command"

  # PULUMI_BACKEND_URL already selects the backend; the login also records it
  # in $PULUMI_HOME/credentials.json for tools that ignore the variable.
  if ! grep -qsF "\"current\": \"$PULUMI_BACKEND_URL\"" "$PULUMI_HOME/credentials.json"; then
    pulumi login "$PULUMI_BACKEND_URL" >&2
  fi
)

if _ptm_env_setup; then
  unset -f _ptm_env_setup
  unset _ptm_env_here
else
  unset -f _ptm_env_setup
  unset _ptm_env_here
  # shellcheck disable=SC2317  # exit is reached only when run instead of sourced
  return 1 2>/dev/null || exit 1
fi
