// Builds the kubectl command lines that the command resources run. A script travels in an
// environment variable of the command (`sh -c "$PTM_SCRIPT"`), byte for byte as it is in
// sidecar/: it is kept in the state, so the delete command still works after the repository
// has changed, and a failing step's error shows a short command line, not the whole script.

import * as fs from "fs";
import * as path from "path";
import { ClusterAccess, WorkloadRef } from "../decisions/config";
import { FIELD_MANAGER } from "./naming";

/** Quotes a string for POSIX sh: everything inside single quotes is literal. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The folder that holds sidecar/ and cluster/ with their .sh files. In the source tree (ts-node,
 * as `pulumi up` runs index.ts) that is components/ beside this file's folder; the built package
 * runs from dist/components/cluster/ and ships the .sh files at components/ (package.json
 * "files"), so it is three folders up from here.
 */
let scriptRoot: string | undefined;
function scriptsDir(): string {
  if (scriptRoot) return scriptRoot;
  const candidates = [
    path.join(__dirname, ".."),
    path.join(__dirname, "..", "..", "..", "components"),
  ];
  scriptRoot = candidates.find((d) => fs.existsSync(path.join(d, "sidecar", "lib.sh")));
  if (!scriptRoot) {
    throw new Error(
      `the sidecar and cluster scripts are missing: looked in ${candidates.join(", ")}`,
    );
  }
  return scriptRoot;
}

/** The text of components/<dir>/<file> (a sidecar/ or cluster/ script). */
export function readScript(dir: "sidecar" | "cluster", file: string): string {
  return fs.readFileSync(path.join(scriptsDir(), dir, file), "utf8");
}

/** The text a sidecar runs for sidecar/<name>.sh: the shared functions of lib.sh, then the script. */
export function sidecarScript(name: string): string {
  const read = (f: string) => readScript("sidecar", f);
  return `${read("lib.sh")}\n${read(`${name}.sh`)}`;
}

/** `kubectl` with the cluster's kubeconfig and context: every command reaches the same cluster. */
export function kubectl(access: ClusterAccess | undefined): string {
  return [
    "kubectl",
    ...(access?.kubeconfig ? [`--kubeconfig ${shQuote(access.kubeconfig)}`] : []),
    ...(access?.context ? [`--context ${shQuote(access.context)}`] : []),
  ].join(" ");
}

/**
 * The same, for a script that runs kubectl itself: it reads these variables, and writes as
 * the program's one field manager (lib.sh kc_write).
 */
export function kubectlEnv(access: ClusterAccess | undefined): Record<string, string> {
  return {
    PTM_FIELD_MANAGER: FIELD_MANAGER,
    ...(access?.kubeconfig ? { PTM_KUBECONFIG: access.kubeconfig } : {}),
    ...(access?.context ? { PTM_KUBE_CONTEXT: access.context } : {}),
  };
}

/** A command line, and the environment it needs, for a local.Command or local.run. */
export interface ScriptCommand {
  command: string;
  environment: Record<string, string>;
}

/** A command that runs components/cluster/<name>.sh, after lib.sh, on this machine, with its arguments. */
export function localScript(
  name: string,
  args: string[],
  access: ClusterAccess | undefined,
  slot = "PTM_SCRIPT",
): ScriptCommand {
  const read = (f: string) => readScript("cluster", f);
  const text = `${read("lib.sh")}\n${read(`${name}.sh`)}`;
  return {
    command: [`sh -c "$${slot}"`, shQuote(name), ...args.map(shQuote)].join(" "),
    environment: { [slot]: text, ...kubectlEnv(access) },
  };
}

/**
 * `deployment/name` or `statefulset/name`: kubectl picks a running pod of the workload;
 * `pod/name` when the ref names one pod (a replica of a `Prometheus` resource).
 */
export function workloadArg(ref: WorkloadRef): string {
  if (ref.pod) return `pod/${ref.pod}`;
  // A `Prometheus` resource's pods are those of the StatefulSet its operator generated.
  if (ref.kind === "Prometheus") return `statefulset/prometheus-${ref.name}`;
  return `${ref.kind.toLowerCase()}/${ref.name}`;
}

/** The resource kubectl reads for a workload kind; a `Prometheus` by its full resource name. */
export function resourceName(kind: WorkloadRef["kind"]): string {
  return kind === "Prometheus" ? PROMETHEUS_RESOURCE : kind.toLowerCase();
}

/** prometheus-operator's `Prometheus` resource, unambiguous for kubectl. */
export const PROMETHEUS_RESOURCE = "prometheuses.monitoring.coreos.com";

/**
 * A command that runs sidecar/<script>.sh inside a container of the workload's pod. `env` is
 * passed on the exec line; values must not be secret (secrets come from the container's own
 * environment). `slot` names the variable that carries the script.
 */
export function execScript(
  ref: WorkloadRef,
  container: string,
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
  slot = "PTM_SCRIPT",
  opts: { exec?: boolean } = {},
): ScriptCommand {
  const envArgs = Object.entries(env).map(([k, v]) => shQuote(`${k}=${v}`));
  // `exec`: a cancelled `pulumi up` kills the shell the command runs in; kubectl must be it.
  // Read-only probes go without, so that the shell can report kubectl's exit code.
  const command = [
    `${opts.exec === false ? "" : "exec "}${kubectl(ref.access)} exec`,
    `-n ${shQuote(ref.namespace)}`,
    shQuote(workloadArg(ref)),
    `-c ${shQuote(container)}`,
    "--",
    "env",
    ...envArgs,
    `sh -c "$${slot}"`,
    shQuote(`ptm-${script}`),
    ...args.map(shQuote),
  ].join(" ");
  return { command, environment: { [slot]: sidecarScript(script) } };
}

/** Inputs of a local.Command whose create and delete each run a script. */
export function createAndDelete(
  create: ScriptCommand,
  remove?: ScriptCommand,
): { create: string; delete?: string; environment: Record<string, string> } {
  return {
    create: create.command,
    ...(remove ? { delete: remove.command } : {}),
    environment: { ...create.environment, ...(remove?.environment ?? {}) },
  };
}

/**
 * A read-only command that prints the workload as JSON, or nothing when it doesn't exist; with
 * its managedFields, which say which manager a sidecar patch of an earlier run applied as.
 */
export function getWorkloadCommand(ref: WorkloadRef): string {
  return `${kubectl(ref.access)} get ${resourceName(ref.kind)} ${shQuote(ref.name)} -n ${shQuote(ref.namespace)} -o json --ignore-not-found --show-managed-fields`;
}

/** `k=v,k2=v2`: a label selector that matches every one of these labels. */
function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** A read-only command that lists, as JSON, the pods of a namespace with these labels. */
export function getPodsCommand(
  namespace: string,
  labels: Record<string, string>,
  access: ClusterAccess | undefined,
): string {
  const selector = labelSelector(labels);
  return `${kubectl(access)} get pods -n ${shQuote(namespace)} -l ${shQuote(selector)} -o json`;
}

/**
 * A read-only GET of an API server path (`kubectl get --raw`), e.g. a pod proxy path that
 * reaches a Prometheus in its pod without a Service or port-forward.
 */
export function getRawCommand(apiPath: string, access: ClusterAccess | undefined): string {
  return `${kubectl(access)} get --raw ${shQuote(apiPath)}`;
}

/** A read-only command that lists, as JSON, the Deployments and StatefulSets with these labels. */
export function findLabelledWorkloadsCommand(
  labels: Record<string, string>,
  access: ClusterAccess | undefined,
): string {
  const selector = labelSelector(labels);
  return `${kubectl(access)} get deployments,statefulsets -A -l ${shQuote(selector)} -o json`;
}

/** A read-only command that lists the NetworkPolicies of a namespace as JSON. */
export function getNetworkPoliciesCommand(
  namespace: string,
  access: ClusterAccess | undefined,
): string {
  return `${kubectl(access)} get networkpolicies -n ${shQuote(namespace)} -o json`;
}

/** A read-only command that lists, as JSON, the ConfigMaps of a namespace with these labels. */
export function getConfigMapsCommand(
  namespace: string,
  labels: Record<string, string>,
  access: ClusterAccess | undefined,
): string {
  const selector = labelSelector(labels);
  return `${kubectl(access)} get configmaps -n ${shQuote(namespace)} -l ${shQuote(selector)} -o json`;
}

/**
 * A server-side dry-run of creating the object read from stdin (JSON): the API server runs
 * admission (ResourceQuota, LimitRange, PodSecurity, webhooks) and persists nothing.
 */
export function dryRunCreateCommand(namespace: string, access: ClusterAccess | undefined): string {
  return `${kubectl(access)} create --dry-run=server -o json -n ${shQuote(namespace)} -f -`;
}
