// Who may reach the source pod once the rsync daemon runs in it. Pure rules over live
// NetworkPolicies, so that our policy admits only the target to the daemon without changing
// who can reach Prometheus itself.

import { PROJECT } from "./config";
import { RSYNC_CONTAINER_PORT } from "../cluster/naming";

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface NetworkPolicyObject {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    podSelector?: LabelSelector;
    policyTypes?: string[];
    ingress?: unknown[];
    egress?: EgressRule[];
  };
}

/** An egress rule as the API holds it. */
export interface EgressRule {
  to?: {
    podSelector?: LabelSelector;
    namespaceSelector?: LabelSelector;
    ipBlock?: { cidr: string; except?: string[] };
  }[];
  ports?: { protocol?: string; port?: number | string; endPort?: number }[];
}

/** Kubernetes label-selector semantics: every term must hold; an empty selector matches all. */
export function selectorMatches(
  sel: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of sel?.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(labels[e.key])) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[e.key])) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        throw new Error(`unknown label selector operator ${e.operator}`);
    }
  }
  return true;
}

/** Whether some other policy already isolates the pod for ingress. */
export function isolatedForIngress(
  policies: NetworkPolicyObject[],
  podLabels: Record<string, string>,
): boolean {
  return policies.some((p) => {
    // Ours doesn't count: it exists only while the migration does.
    if (p.metadata?.labels?.["app.kubernetes.io/name"] === PROJECT) return false;
    const types = p.spec?.policyTypes ?? ["Ingress"];
    return types.includes("Ingress") && selectorMatches(p.spec?.podSelector, podLabels);
  });
}

export interface IngressRule {
  from?: { podSelector?: LabelSelector; namespaceSelector?: LabelSelector }[];
  ports?: { protocol: string; port: number; endPort?: number }[];
}

/**
 * The ingress rules of our policy. Only the target's pods reach the daemon port. A policy
 * that selects a pod isolates it, so if nothing isolated the source before, every other port
 * stays open to everyone exactly as it was; if something did, the existing policies keep
 * deciding for the other ports and we add nothing to them.
 */
export function rsyncIngressRules(
  alreadyIsolated: boolean,
  targetNamespace: string,
  targetPodLabels: Record<string, string>,
): IngressRule[] {
  const rules: IngressRule[] = [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": targetNamespace } },
          podSelector: { matchLabels: targetPodLabels },
        },
      ],
      ports: [{ protocol: "TCP", port: RSYNC_CONTAINER_PORT }],
    },
  ];
  if (!alreadyIsolated) {
    rules.push({
      ports: [
        { protocol: "TCP", port: 1, endPort: RSYNC_CONTAINER_PORT - 1 },
        { protocol: "TCP", port: RSYNC_CONTAINER_PORT + 1, endPort: 65535 },
        { protocol: "UDP", port: 1, endPort: 65535 },
      ],
    });
  }
  return rules;
}

/** Where the copy connects: the source's pod, behind the rsync Service (NetworkPolicies see the pod). */
export interface RsyncDestination {
  namespace: string;
  podLabels: Record<string, string>;
  /** The daemon's container port and its name (a policy may name it). */
  port: number;
  portName: string;
}

/**
 * Whether NetworkPolicies of the target's namespace let the target pod reach the source's
 * rsync daemon. "open": nothing isolates the pod's egress; "allowed": a rule admits it;
 * "denied": policies isolate it and no rule admits it; "unknown": a rule this can't judge
 * without more reads (a namespace selected by labels other than its name, an ipBlock).
 */
export type EgressVerdict =
  | { verdict: "open" }
  | { verdict: "allowed"; by: string }
  | { verdict: "denied"; isolatedBy: string[] }
  | { verdict: "unknown"; isolatedBy: string[]; why: string };

const NAME_LABEL = "kubernetes.io/metadata.name";

export function egressToRsync(
  policies: NetworkPolicyObject[],
  targetNamespace: string,
  targetPodLabels: Record<string, string>,
  dest: RsyncDestination,
): EgressVerdict {
  const isolating = policies.filter((p) => {
    const types = p.spec?.policyTypes ?? (p.spec?.egress ? ["Ingress", "Egress"] : ["Ingress"]);
    return types.includes("Egress") && selectorMatches(p.spec?.podSelector, targetPodLabels);
  });
  if (isolating.length === 0) return { verdict: "open" };
  const names = isolating.map((p) => `${targetNamespace}/${p.metadata?.name ?? "?"}`);
  let why = "";
  for (const p of isolating) {
    for (const rule of p.spec?.egress ?? []) {
      const port = portAdmits(rule.ports, dest);
      const peer = peersAdmit(rule.to, targetNamespace, dest);
      if (port === true && peer === true) {
        return { verdict: "allowed", by: `${targetNamespace}/${p.metadata?.name ?? "?"}` };
      }
      if (port !== false && peer !== false && !why) {
        why = `NetworkPolicy ${targetNamespace}/${p.metadata?.name ?? "?"}: ${typeof peer === "string" ? peer : String(port)}`;
      }
    }
  }
  return why
    ? { verdict: "unknown", isolatedBy: names, why }
    : { verdict: "denied", isolatedBy: names };
}

/** true, false, or why it can't tell. */
function portAdmits(ports: EgressRule["ports"], dest: RsyncDestination): true | false | string {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? "TCP") !== "TCP") return false;
    if (p.port === undefined) return true;
    if (typeof p.port === "string") return p.port === dest.portName;
    return (
      p.port === dest.port ||
      (p.endPort !== undefined && p.port <= dest.port && dest.port <= p.endPort)
    );
  });
}

function peersAdmit(
  to: EgressRule["to"],
  policyNamespace: string,
  dest: RsyncDestination,
): true | false | string {
  if (!to || to.length === 0) return true;
  let unknown: string | undefined;
  for (const peer of to) {
    if (peer.ipBlock) {
      const { cidr, except } = peer.ipBlock;
      if ((cidr === "0.0.0.0/0" || cidr === "::/0") && !(except ?? []).length) return true;
      unknown ??= `an ipBlock rule (${cidr}) is not compared with the source pod's IP`;
      continue;
    }
    let nsOk: boolean | undefined;
    if (!peer.namespaceSelector) nsOk = dest.namespace === policyNamespace;
    else {
      const sel = peer.namespaceSelector;
      const keys = [
        ...Object.keys(sel.matchLabels ?? {}),
        ...(sel.matchExpressions ?? []).map((e) => e.key),
      ];
      // Only the name label is known without reading the namespace.
      if (keys.every((k) => k === NAME_LABEL)) {
        nsOk = selectorMatches(sel, { [NAME_LABEL]: dest.namespace });
      } else {
        unknown ??= `a rule selects namespaces by labels other than their name (${keys.join(", ")})`;
        continue;
      }
    }
    if (nsOk && selectorMatches(peer.podSelector, dest.podLabels)) return true;
  }
  return unknown ?? false;
}

/** The egress rule that admits the copy, for a message (YAML flow style). */
export function rsyncEgressRuleText(dest: RsyncDestination): string {
  const labels = Object.entries(dest.podLabels)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
  return `{to: [{namespaceSelector: {matchLabels: {${NAME_LABEL}: ${dest.namespace}}}, podSelector: {matchLabels: {${labels}}}}], ports: [{protocol: TCP, port: ${dest.port}}]}`;
}
