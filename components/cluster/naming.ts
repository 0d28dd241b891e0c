// Names and labels of everything the migration creates, derived from the stack and the
// source so that two migrations in one cluster never collide.

import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../decisions/config";

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
 * Labels the sidecar patches put on the workloads they patch (owned by the patch, so they go
 * with it): a revert finds the target the stack really patched even when the `target` config
 * is gone.
 */
export const PATCHED_BY_LABEL = "prometheus-tsdb-migration.io/patched-by";
export const ROLE_LABEL = "prometheus-tsdb-migration.io/role";

/** The stack as a label value: what the workloads' labels and annotations record. */
export function stackLabel(): string {
  return k8sName(pulumi.getStack());
}

export function patchedLabels(role: "source" | "target"): Record<string, string> {
  return { [PATCHED_BY_LABEL]: stackLabel(), [ROLE_LABEL]: role };
}

/** Name of the snapshot directory under <data>/snapshots on the source. */
export function snapshotName(): string {
  return k8sName("ptm", pulumi.getStack());
}
