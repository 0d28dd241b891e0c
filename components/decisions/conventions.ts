// Kubernetes conventions of the changes the program makes to workloads it does not own:
// which labels mark a patched workload (and the ones older versions wrote), which field
// manager a sidecar patch applies as, and which imagePullSecrets it adds. Pure functions.

import { ConfigError } from "./config";

/** What the patched-workload labels say: which stack patched it, and as which side. */
export type PatchedRole = "source" | "target";

/** A label domain and the two keys under it. */
export interface PatchedLabelKeys {
  patchedBy: string;
  role: string;
}

/** The keys under a domain. */
export function patchedLabelKeys(domain: string): PatchedLabelKeys {
  return { patchedBy: `${domain}/patched-by`, role: `${domain}/role` };
}

/** The labels a sidecar patch writes on a workload, under one domain. */
export function patchedLabelsIn(
  domain: string,
  stack: string,
  role: PatchedRole,
): Record<string, string> {
  const k = patchedLabelKeys(domain);
  return { [k.patchedBy]: stack, [k.role]: role };
}

/**
 * Which side of this stack's migration a workload is, by its labels under any of the domains
 * (the current one first, then those older versions wrote); undefined: not patched by it.
 */
export function patchedRoleOf(
  labels: Record<string, string> | undefined,
  stack: string,
  domains: readonly string[],
): PatchedRole | undefined {
  for (const domain of domains) {
    const k = patchedLabelKeys(domain);
    const role = labels?.[k.role];
    if (labels?.[k.patchedBy] === stack && (role === "source" || role === "target")) return role;
  }
  return undefined;
}

/** One entry of `metadata.managedFields`, as the API server returns it. */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  fieldsV1?: Record<string, unknown>;
}

/**
 * The Server-Side Apply manager that owns a container of the pod template beyond its name
 * (its image, command...): the one whose patch added it. Undefined: nobody applied it.
 */
export function containerApplyManager(
  managedFields: readonly ManagedFieldsEntry[] | undefined,
  container: string,
): string | undefined {
  const key = `k:${JSON.stringify({ name: container })}`;
  for (const e of managedFields ?? []) {
    if (e.operation !== "Apply" || !e.manager) continue;
    const spec = dig(e.fieldsV1, ["f:spec", "f:template", "f:spec", "f:containers", key]);
    // A name alone (`.`, `f:name`) is how our patches refer to the workload's own containers.
    if (spec && Object.keys(spec).some((f) => f !== "." && f !== "f:name")) return e.manager;
  }
  return undefined;
}

function dig(obj: unknown, path: string[]): Record<string, unknown> | undefined {
  let cur = obj;
  for (const p of path) {
    if (!cur || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur && typeof cur === "object" ? (cur as Record<string, unknown>) : undefined;
}

/** The provider's own name for a patch that sets no manager: `pulumi-kubernetes-<random>`. */
const PROVIDER_GENERATED = /^pulumi-kubernetes-[0-9a-z]+$/;

/**
 * The field manager a sidecar patch applies as. A new patch: the fixed one. A patch an
 * earlier version created (the provider named its manager at random and keeps it in the
 * state): that name, adopted as it is, so that no field changes owner while the migration
 * runs; a change of manager in the same update as a changed value would be a conflict at
 * `up`. The next migration of the workload gets the fixed one.
 */
export function patchFieldManager(
  liveOwner: string | undefined,
  fixed: string,
): { manager: string; adopted: boolean } {
  if (liveOwner && liveOwner !== fixed && PROVIDER_GENERATED.test(liveOwner)) {
    return { manager: liveOwner, adopted: true };
  }
  return { manager: fixed, adopted: false };
}

/**
 * The pod template's imagePullSecrets as the patch lists them: the pod's own first, by name
 * in their live order (a name alone claims nothing of theirs, and keeps the provider's
 * index-by-index diff quiet), then the sidecar's that the pod does not list yet. Empty when
 * the sidecar needs none: the patch then leaves the field alone.
 */
export function patchPullSecrets(live: readonly string[], wanted: readonly string[]): string[] {
  if (wanted.length === 0) return [];
  return [...live, ...wanted.filter((s) => !live.includes(s))];
}

/**
 * Refuses imagePullSecrets that can't be added where the sidecar runs: a `Prometheus`
 * resource's pods (its operator owns their template; the resource's own spec.imagePullSecrets
 * is the user's) and running pods (sidecarMode ephemeral: a pod's imagePullSecrets can't
 * change). There the sidecar pulls with the pods' own, so those must list them already.
 */
export function checkPullSecretsListed(
  live: readonly string[],
  wanted: readonly string[],
  where: "resource" | "pods",
  what: string,
): void {
  const missing = wanted.filter((s) => !live.includes(s));
  if (missing.length === 0) return;
  const fix =
    where === "resource"
      ? `add them to its spec.imagePullSecrets (its operator owns the pod template)`
      : `the pods' imagePullSecrets can't change while they run (sidecarMode ephemeral); add them to the workload, or use sidecarMode patch`;
  throw new ConfigError(
    "imagePullSecrets",
    `${missing.join(", ")} not in the imagePullSecrets of ${what}, whose pods the sidecar runs in: ${fix}`,
  );
}
