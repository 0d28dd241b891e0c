// Builds the kubectl command lines that the command resources run. Scripts travel inside the
// command line (`sh -c <script>`), byte for byte as they are in sidecar/, so that the delete
// command stored in the state still works after the repository has changed.

import * as fs from "fs";
import * as path from "path";
import { WorkloadRef } from "./config";

/** Quotes a string for POSIX sh: everything inside single quotes is literal. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

/** The text a sidecar runs for sidecar/<name>.sh: the shared functions of lib.sh, then the script. */
export function sidecarScript(name: string): string {
  const read = (f: string) => fs.readFileSync(path.join(__dirname, "..", "sidecar", f), "utf8");
  return `${read("lib.sh")}\n${read(`${name}.sh`)}`;
}

/** A command line that runs scripts/<name>.sh on this machine, with its arguments. */
export function localScript(name: string, args: string[]): string {
  const text = fs.readFileSync(path.join(__dirname, "..", "scripts", `${name}.sh`), "utf8");
  return ["sh -c", shQuote(text), shQuote(name), ...args.map(shQuote)].join(" ");
}

/** `deployment/name` or `statefulset/name`: kubectl picks a running pod of the workload. */
export function workloadArg(ref: WorkloadRef): string {
  return `${ref.kind.toLowerCase()}/${ref.name}`;
}

/**
 * A command line that runs sidecar/<script>.sh inside a container of the workload's pod.
 * `env` is passed on the exec line; values must not be secret (secrets come from the
 * container's own environment).
 */
export function execScript(
  ref: WorkloadRef,
  container: string,
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): string {
  const envArgs = Object.entries(env).map(([k, v]) => shQuote(`${k}=${v}`));
  // `exec`: a cancelled `pulumi up` kills the shell the command runs in; kubectl must be it.
  return [
    "exec kubectl exec",
    `-n ${shQuote(ref.namespace)}`,
    shQuote(workloadArg(ref)),
    `-c ${shQuote(container)}`,
    "--",
    "env",
    ...envArgs,
    "sh -c",
    shQuote(sidecarScript(script)),
    shQuote(`ptm-${script}`),
    ...args.map(shQuote),
  ].join(" ");
}

/** A read-only command that prints the workload as JSON, or nothing when it doesn't exist. */
export function getWorkloadCommand(ref: WorkloadRef): string {
  return `kubectl get ${ref.kind.toLowerCase()} ${shQuote(ref.name)} -n ${shQuote(ref.namespace)} -o json --ignore-not-found`;
}

/** A read-only command that lists the NetworkPolicies of a namespace as JSON. */
export function getNetworkPoliciesCommand(namespace: string): string {
  return `kubectl get networkpolicies -n ${shQuote(namespace)} -o json`;
}
