// Read-only probes of the cluster, run on every preview and up through `command.local.run`.
// They return plain values, so every decision below them is a pure function.

import * as command from "@pulumi/command";
import { WorkloadRef } from "../decisions/config";
import { NetworkPolicyObject } from "../decisions/access";
import { execScript, getNetworkPoliciesCommand, getWorkloadCommand } from "./kubectl";
import { parseProbe, ProbeResult } from "../decisions/sidecarOutput";
import { WorkloadObject } from "../decisions/workload";

async function runJson<T>(cmd: string, what: string): Promise<T | undefined> {
  const res = await command.local.run({ command: cmd, logging: "none" });
  const out = (res.stdout ?? "").trim();
  if (out === "") return undefined;
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`${what}: kubectl printed something that is not JSON: ${out.slice(0, 200)}`);
  }
}

/** The live workload, or undefined when it doesn't exist. */
export function readWorkload(ref: WorkloadRef): Promise<WorkloadObject | undefined> {
  return runJson<WorkloadObject>(
    getWorkloadCommand(ref),
    `${ref.kind} ${ref.namespace}/${ref.name}`,
  );
}

/** The NetworkPolicies of a namespace. */
export async function readNetworkPolicies(namespace: string): Promise<NetworkPolicyObject[]> {
  const list = await runJson<{ items?: NetworkPolicyObject[] }>(
    getNetworkPoliciesCommand(namespace),
    `NetworkPolicies in ${namespace}`,
  );
  return list?.items ?? [];
}

/**
 * Runs probe.sh in a sidecar. Undefined when the sidecar isn't running yet (before the
 * first `prepare`), so that preview can still show everything else.
 */
export async function probe(
  ref: WorkloadRef,
  container: string,
  snapshot: string,
): Promise<ProbeResult | undefined> {
  const { command: cmd, environment } = execScript(ref, container, "probe", [], {
    PTM_SNAPSHOT: snapshot,
  });
  const res = await command.local.run({
    command: `${cmd} 2>/dev/null || true`,
    environment,
    logging: "none",
  });
  const out = (res.stdout ?? "").trim();
  if (out === "") return undefined;
  try {
    return parseProbe(out);
  } catch (e) {
    throw new Error(`probe of ${ref.kind} ${ref.namespace}/${ref.name}: ${(e as Error).message}`);
  }
}
