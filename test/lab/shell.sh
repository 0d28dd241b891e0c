# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# test/lab/shell.sh - a shell for the README walkthrough against the lab cluster.
#
#   npm run lab:shell                              # interactive bash, prompt "(ptm-lab) …"
#   npm run lab:shell -- -c 'kubectl get nodes'    # one command; exits with its status
#   npm run -s lab:shell -- -c 'pulumi version'    # -s: without npm's banner on stdout
#   source test/lab/shell.sh                       # the same settings in the current bash
#
# Run it as root, in the repo (npm run does that). It starts the lab when its API server does
# not answer (test/lab/up.sh, idempotent; a cold one builds Kubernetes first), builds the Pulumi
# engine when a binary of it is not cached (test/engine/build.sh), and then sets:
#   PATH                      the lab's kubectl first ($PTM_CACHE/k8s-v1.34.4/bin), then the
#                             cached pulumi CLI and language host (test/engine/env.sh)
#   KUBECONFIG                /var/lib/ptm-lab/admin.kubeconfig (cluster-admin of the lab)
#   PULUMI_BACKEND_URL        file://$PTM_BACKEND_DIR, default /var/lib/ptm-lab/pulumi-state:
#                             the stacks' state lives outside the repo, with the lab, and
#                             `npm run lab:down` deletes it along with the cluster
#   PULUMI_CONFIG_PASSPHRASE  kept when set, else empty. The passphrase secrets provider of a
#                             file backend encrypts the stack's secrets with it (the rsync
#                             password the program generates, in the state; secret config in
#                             Pulumi.<stack>.yaml). Pulumi takes an empty one when the variable
#                             is set, which is fine for a throwaway lab; for anything else set
#                             your own, and keep it: every later command on that stack needs it.
#   PULUMI_HOME, PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION
#                             from test/engine/env.sh, which also installs the kubernetes and
#                             command plugins into PULUMI_HOME and logs in to the backend
# Then the walkthrough (README.md) runs as written, in the repo: `pulumi stack init migration`
# writes Pulumi.migration.yaml there (ignored by git). A walkthrough stack needs a source and a
# target Prometheus in the lab; `npm run demo` deploys such a pair.
#
# When the language host or the command provider could not be built (test/engine/README.md),
# env.sh says so and the shell starts anyway: pulumi version, stack and config commands work,
# preview and up do not.
#
# Knobs: PTM_CACHE, PTM_LAB (test/lab/lib.sh), PTM_BACKEND_DIR, PTM_PULUMI_HOME (env.sh).

# Sets everything up in the current shell; non-zero when the lab or the Pulumi CLI is missing.
_ptm_lab_shell_setup() {
  local here k8s_bin kubeconfig lab_dir d
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || return 1
  # lib.sh's paths, read in a subshell: its other names stay out of this shell.
  {
    read -r k8s_bin
    read -r kubeconfig
    read -r lab_dir
  } < <(
    # shellcheck source=lib.sh
    source "$here/lib.sh" && printf '%s\n%s\n%s\n' "$K8S_BIN" "$KUBECONFIG_ADMIN" "$PTM_LAB"
  )
  if [[ -z $lab_dir ]]; then
    echo "lab:shell: could not read $here/lib.sh" >&2
    return 1
  fi

  if ! "$k8s_bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    echo "lab:shell: the lab is not running; starting it (test/lab/up.sh)" >&2
    if ! bash "$here/up.sh" >&2; then
      echo "lab:shell: test/lab/up.sh failed" >&2
      return 1
    fi
  fi

  # The engine (test/engine/build.sh: a no-op when cached, seconds to say what is missing).
  local bins
  bins=$(
    # shellcheck source=../engine/versions.sh
    source "$here/../engine/versions.sh" &&
      printf '%s\n' "$PTM_PULUMI_BIN/pulumi" "$PTM_PULUMI_BIN/pulumi-language-nodejs" \
        "$PTM_K8S_BIN/pulumi-resource-kubernetes" "$PTM_COMMAND_BIN/pulumi-resource-command"
  ) || return 1
  while read -r d; do
    [[ -x $d ]] && continue
    echo "lab:shell: $d is missing; building the engine (test/engine/build.sh)" >&2
    bash "$here/../engine/build.sh" >&2 || echo "lab:shell: test/engine/build.sh failed" >&2
    break
  done <<<"$bins"
  if [[ ! -x $(head -n 1 <<<"$bins") ]]; then
    echo "lab:shell: no Pulumi CLI at $(head -n 1 <<<"$bins") (test/engine/README.md)" >&2
    return 1
  fi

  export KUBECONFIG=$kubeconfig
  export PTM_BACKEND_DIR=${PTM_BACKEND_DIR:-$lab_dir/pulumi-state}
  # shellcheck source=../engine/env.sh
  if ! source "$here/../engine/env.sh"; then
    echo "lab:shell: warning: the Pulumi engine is incomplete (above); pulumi version, stack and" \
      "config work, preview and up need the missing binaries (test/engine/README.md)" >&2
  fi
  # The lab's kubectl before any other (after env.sh, which prepends the pulumi dir).
  d=$k8s_bin
  case ":$PATH:" in
    ":$d:"*) ;;
    *) PATH=$d:${PATH//":$d:"/:} ;;
  esac
  export PATH
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
  # Sourced: by a user, or as the rcfile of the interactive shell below.
  if [[ -n ${_PTM_LAB_SHELL_RC:-} ]]; then
    unset _PTM_LAB_SHELL_RC
    # --rcfile replaces the usual start-up files.
    # shellcheck disable=SC1091
    [[ ! -f /etc/bash.bashrc ]] || source /etc/bash.bashrc
    # shellcheck disable=SC1090,SC1091
    [[ ! -f ~/.bashrc ]] || source ~/.bashrc
    if _ptm_lab_shell_setup; then
      _ptm_pp=empty
      [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} ]] || _ptm_pp="set (not shown)"
      PS1="(ptm-lab) ${PS1:-\\u@\\h:\\w\\$ }"
      cat >&2 <<EOF
lab:shell: kubectl $(command -v kubectl), $(command -v pulumi || echo "no pulumi") $(pulumi version 2>/dev/null)
  KUBECONFIG=$KUBECONFIG
  PULUMI_BACKEND_URL=$PULUMI_BACKEND_URL
  PULUMI_CONFIG_PASSPHRASE: $_ptm_pp
Follow the README's walkthrough here. 'exit' leaves this shell; the lab keeps running
until 'npm run lab:down'.
EOF
      unset _ptm_pp
    fi
    unset -f _ptm_lab_shell_setup
  else
    _ptm_lab_shell_setup
    unset -f _ptm_lab_shell_setup
  fi
else
  # Run: npm run lab:shell [-- -c 'CMD' | SCRIPT ARGS...]
  _ptm_lab_shell_setup || exit 1
  if (($# == 0)); then
    _PTM_LAB_SHELL_RC=1 exec bash --rcfile "${BASH_SOURCE[0]}" -i
  fi
  exec bash "$@"
fi
