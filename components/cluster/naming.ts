// Names and labels of everything the migration creates, derived from the stack, the
// component's name and the source, so that two migrations never collide: not in one cluster,
// not in one program.

import { createHash } from "node:crypto";
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

/**
 * The name index.ts gives its one component. Stacks made before names were per component
 * have objects named from the stack alone: this name keeps exactly those names (a renamed
 * Secret, Service or patch would be replaced, which breaks a running migration).
 */
export const DEFAULT_COMPONENT_NAME = "migration";

/** Kubernetes' limit for names and label values. */
const MAX = 63;

/** Cuts a name to the 63 characters Kubernetes allows, without a trailing dash. */
export function k8sName(...parts: string[]): string {
  return parts
    .join("-")
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, MAX)
    .replace(/-+$/, "");
}

/**
 * Like {@link k8sName}, but unique: when anything was cut or changed (case, a character
 * Kubernetes does not allow, a trailing dash), a hash of the whole is appended, so two long
 * or differently spelled names never end up equal.
 */
export function uniqueK8sName(...parts: string[]): string {
  const raw = parts.join("-");
  return withHash(k8sName(raw), raw);
}

/** `plain` if it is `raw` as it was, else `plain` cut to leave room for a hash of `raw`. */
function withHash(plain: string, raw: string): string {
  if (plain === raw) return plain;
  const hash = createHash("sha256").update(raw).digest("hex").slice(0, 8);
  return `${plain.slice(0, MAX - hash.length - 1).replace(/[-.]+$/, "")}-${hash}`;
}

/** Whose objects these are: the stack, and the component's name within the program. */
export interface MigrationScope {
  organization: string;
  project: string;
  stack: string;
  /** The component's name (its first constructor argument). */
  component: string;
}

/** Every name the migration gives in the cluster, for one {@link MigrationScope}. */
export interface MigrationNames {
  /** Today's names (the default component): derived from the stack alone. */
  legacy: boolean;
  /**
   * app.kubernetes.io/instance, the patched-by label's value and the key of the admin-API
   * record on the source: `<stack>.<component>` (a dot, which no normalized stack holds, so
   * stack `a-b` and stack `a` with component `b` differ).
   */
  instance: string;
  /** The snapshot directory under <data>/snapshots on the source. */
  snapshot: string;
  /** The rsync Secrets (one per namespace). */
  rsyncSecret: string;
  /** Who makes the snapshots (sidecar/lib.sh snapshot_owner_state): no spaces. */
  stackId: string;
  /** The rsync Service and NetworkPolicy, named after the source workload. */
  rsyncObject(sourceName: string): string;
  /** A verification record's ConfigMap, one per verified replica (`step`: verification[-replica-N]). */
  verificationRecord(step: string): string;
}

/** The names of one migration. The default component keeps exactly the names of today. */
export function migrationNames(s: MigrationScope): MigrationNames {
  const stackId = `${s.organization}/${s.project}/${s.stack}`;
  if (s.component === DEFAULT_COMPONENT_NAME) {
    return {
      legacy: true,
      instance: k8sName(s.stack),
      snapshot: k8sName("ptm", s.stack),
      rsyncSecret: k8sName("ptm-rsync", s.stack),
      stackId,
      rsyncObject: (source) => k8sName(source, "ptm-rsync"),
      verificationRecord: (step) => k8sName("ptm", s.stack, step),
    };
  }
  // Label values may hold dots; object names of a Service may not.
  const dotted = `${k8sName(s.stack)}.${k8sName(s.component)}`.slice(0, MAX);
  return {
    legacy: false,
    instance: withHash(dotted.replace(/[-.]+$/, ""), `${s.stack}.${s.component}`),
    snapshot: uniqueK8sName("ptm", s.stack, s.component),
    rsyncSecret: uniqueK8sName("ptm-rsync", s.stack, s.component),
    stackId: `${stackId}/${encodeURIComponent(s.component)}`,
    rsyncObject: (source) => uniqueK8sName(source, "ptm-rsync", s.component),
    verificationRecord: (step) => uniqueK8sName("ptm", s.stack, s.component, step),
  };
}

/** The names of the component `component` in this stack. */
export function namesFor(component: string): MigrationNames {
  return migrationNames({
    organization: pulumi.getOrganization(),
    project: pulumi.getProject(),
    stack: pulumi.getStack(),
    component,
  });
}

/** The app.kubernetes.io labels on every object the migration creates. */
export function migrationLabels(names: MigrationNames, component: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": PROJECT,
    "app.kubernetes.io/instance": names.instance,
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/part-of": PROJECT,
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/**
 * Labels the sidecar patches put on the workloads they patch (owned by the patch, so they go
 * with it): a revert finds the target the migration really patched even when the `target`
 * config is gone.
 */
export const PATCHED_BY_LABEL = "prometheus-tsdb-migration.io/patched-by";
export const ROLE_LABEL = "prometheus-tsdb-migration.io/role";

export function patchedLabels(
  names: MigrationNames,
  role: "source" | "target",
): Record<string, string> {
  return { [PATCHED_BY_LABEL]: names.instance, [ROLE_LABEL]: role };
}
