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
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { podSelector?: LabelSelector; policyTypes?: string[]; ingress?: unknown[] };
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
