// Names and labels of everything the migration creates, derived from the stack and the
// source so that two migrations in one cluster never collide.

import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../decisions/config";
import { PatchedRole, patchedLabelKeys, patchedLabelsIn } from "../decisions/conventions";

/** Port the rsync daemon listens on inside the pod: above 1024, so it needs no root. */
export const RSYNC_CONTAINER_PORT = 8873;
/** Port of the Service, the standard rsync port (the seed's). */
export const RSYNC_SERVICE_PORT = 873;
/** The rsync module name and user. */
export const RSYNC_MODULE = "tsdb";
export const RSYNC_USER = "ptm";
/** Key of the password in the migration's Secrets. */
export const PASSWORD_KEY = "password";

/** Cuts a name to the 63 characters Kubernetes allows, without a trailing dash. */
export function k8sName(...parts: string[]): string {
  return parts
    .join("-")
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, 63)
    .replace(/-+$/, "");
}

/** The app.kubernetes.io labels on every object the migration creates. */
export function migrationLabels(component: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": PROJECT,
    "app.kubernetes.io/instance": k8sName(pulumi.getStack()),
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/part-of": PROJECT,
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/**
 * The field manager of every change the program makes to a workload: the `pulumi.com/
 * patchFieldManager` of each sidecar patch (`sidecarPatch.ts`) and `--field-manager` of each
 * `kubectl patch` and `kubectl create` its scripts run (`PTM_FIELD_MANAGER`, `kubectl.ts`).
 * Fixed, so that `kubectl get -o yaml --show-managed-fields` says who owns what. Never change
 * it: a stack mid-migration would find its fields owned by a manager it no longer applies as.
 */
export const FIELD_MANAGER = PROJECT;

/**
 * The domain of the labels the sidecar patches put on the workloads they patch (owned by the
 * patch, so they go with it): a revert finds the target the stack really patched even when
 * the `target` config is gone. Not app.kubernetes.io: those describe the workload's own app
 * (a Helm chart sets them, and selects by them), which the migration must not relabel.
 */
export const LABEL_DOMAIN = "prometheus-tsdb-migration.github.io";
/**
 * The domain versions before issue 22 wrote, which the project cannot claim: still
 * recognised, so that a revert finds a workload such a version patched.
 */
export const LEGACY_LABEL_DOMAIN = "prometheus-tsdb-migration.io";
/** Every domain a patched workload's labels may be under, the current one first. */
export const LABEL_DOMAINS = [LABEL_DOMAIN, LEGACY_LABEL_DOMAIN] as const;

export const PATCHED_BY_LABEL = patchedLabelKeys(LABEL_DOMAIN).patchedBy;
export const ROLE_LABEL = patchedLabelKeys(LABEL_DOMAIN).role;

/** The stack as a label value: what the workloads' labels and annotations record. */
export function stackLabel(): string {
  return k8sName(pulumi.getStack());
}

/** The labels a sidecar patch writes now. */
export function patchedLabels(role: PatchedRole): Record<string, string> {
  return patchedLabelsIn(LABEL_DOMAIN, stackLabel(), role);
}

/** The same labels under each domain, current first: every set a revert looks for. */
export function recognisedPatchedLabels(role: PatchedRole): Record<string, string>[] {
  return LABEL_DOMAINS.map((d) => patchedLabelsIn(d, stackLabel(), role));
}

/** Name of the snapshot directory under <data>/snapshots on the source. */
export function snapshotName(): string {
  return k8sName("ptm", pulumi.getStack());
}
