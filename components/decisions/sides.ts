// Which cluster each side is in, and how the copy's bytes go between them (issue 24).
//
// Groundwork, not wired into the program yet: `source.cluster`, `target.cluster` and
// `transport` are not config keys until the relay transport exists. The rules, decided here
// so that the wiring stays thin:
// - each side's cluster is its own {kubeconfig, context}, each field defaulting to the
//   stack's `kubernetes:kubeconfig` / `kubernetes:context` (today's single cluster);
// - two sides are in one cluster when their API servers are the same URL (two kubeconfigs or
//   contexts may name one cluster); a side whose server can't be read is refused (fail
//   closed: "one cluster" is a claim the direct transport depends on);
// - `transport` defaults to `direct` in one cluster (the target's pods reach the source's
//   ClusterIP Service) and to `relay` across two (the bytes go through the machine that runs
//   `pulumi up`); `direct` across two clusters is refused, naming the key;
// - the target may not be the source itself.

import { ClusterAccess, ConfigError, sameWorkload, WorkloadRef } from "./config";

export type Transport = "direct" | "relay";
export const TRANSPORTS: readonly Transport[] = ["direct", "relay"];

export interface SidesInput {
  /** The stack's `kubernetes:kubeconfig` and `kubernetes:context`. */
  stack?: ClusterAccess;
  /** `source.cluster` and `target.cluster`, as given. */
  source?: ClusterAccess;
  target?: ClusterAccess;
  /** `transport`, as given. */
  transport?: string;
  /**
   * The API server URL an access resolves to (kubectl config view --minify), undefined when
   * it can't be read (no such file or context).
   */
  serverOf: (access: ClusterAccess | undefined) => string | undefined;
}

export interface Sides {
  source?: ClusterAccess;
  target?: ClusterAccess;
  sourceServer: string;
  targetServer: string;
  sameCluster: boolean;
  transport: Transport;
  /** One line for the preview: where each side is, and why this transport. */
  summary: string;
}

/** A side's access: its own fields, else the stack's; undefined when neither sets any. */
export function sideAccess(
  stack: ClusterAccess | undefined,
  side: ClusterAccess | undefined,
): ClusterAccess | undefined {
  const kubeconfig = side?.kubeconfig?.trim() || stack?.kubeconfig?.trim() || undefined;
  const context = side?.context?.trim() || stack?.context?.trim() || undefined;
  if (kubeconfig === undefined && context === undefined) return undefined;
  return { ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) };
}

const describe = (a: ClusterAccess | undefined): string =>
  a === undefined
    ? "kubectl's default kubeconfig and context"
    : [
        a.context !== undefined ? `context ${a.context}` : "the current context",
        a.kubeconfig !== undefined ? `of ${a.kubeconfig}` : "of kubectl's default kubeconfig",
      ].join(" ");

// "https://h:6443/" and "https://h:6443" are one server.
const normalized = (url: string): string => url.trim().replace(/\/+$/, "").toLowerCase();

export function decideSides(input: SidesInput): Sides {
  const source = sideAccess(input.stack, input.source);
  const target = sideAccess(input.stack, input.target);
  const server = (side: "source" | "target", a: ClusterAccess | undefined): string => {
    const s = input.serverOf(a);
    if (s === undefined || s.trim() === "")
      throw new ConfigError(
        `${side}.cluster`,
        `no API server found for ${describe(a)}: check the kubeconfig path and the context ` +
          `(kubectl config view --minify${a?.kubeconfig ? ` --kubeconfig ${a.kubeconfig}` : ""}${a?.context ? ` --context ${a.context}` : ""})`,
      );
    return s.trim();
  };
  const sourceServer = server("source", source);
  const targetServer = server("target", target);
  const sameCluster = normalized(sourceServer) === normalized(targetServer);

  const given = input.transport?.trim() || undefined;
  if (given !== undefined && !(TRANSPORTS as readonly string[]).includes(given))
    throw new ConfigError("transport", `must be direct or relay, got "${given}"`);
  if (given === "direct" && !sameCluster)
    throw new ConfigError(
      "transport",
      `direct needs the target's pods to reach the source's ClusterIP Service, and the two ` +
        `sides are in different clusters (source ${sourceServer}, target ${targetServer}): ` +
        `remove the key (relay is the default across clusters) or set it to relay`,
    );
  const transport: Transport =
    (given as Transport | undefined) ?? (sameCluster ? "direct" : "relay");
  const where = sameCluster
    ? `both sides in one cluster (${sourceServer})`
    : `source in ${sourceServer} (${describe(source)}), target in ${targetServer} (${describe(target)})`;
  const how =
    transport === "direct"
      ? "transport direct: the target's sidecar connects to the source's rsync Service"
      : `transport relay${given === undefined ? " (the default across clusters)" : ""}: ` +
        "the bytes go through the machine that runs pulumi up";
  return {
    ...(source ? { source } : {}),
    ...(target ? { target } : {}),
    sourceServer,
    targetServer,
    sameCluster,
    transport,
    summary: `${where}; ${how}`,
  };
}

/**
 * Refuses a target that is the source itself: one cluster, one namespace, kind and name
 * (parseConfig refuses the same today, when there is one cluster only).
 */
export function refuseSameWorkload(
  sides: Pick<Sides, "sameCluster">,
  source: Pick<WorkloadRef, "namespace" | "kind" | "name">,
  target: Pick<WorkloadRef, "namespace" | "kind" | "name">,
): void {
  if (sides.sameCluster && sameWorkload(source, target))
    throw new ConfigError(
      "target",
      `is the source itself (${source.kind} ${source.namespace}/${source.name} in one ` +
        `cluster): name the new Prometheus, or set target.cluster to the other cluster`,
    );
}
