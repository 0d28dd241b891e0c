// Names and labels of everything the migration creates, derived from the stack, the
// component's name and the source, so that two migrations never collide: not in one cluster,
// not in one program.

import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../decisions/config";
import { PatchedRole, patchedLabelKeys, patchedLabelsIn } from "../decisions/conventions";

/** Port the rsync daemon listens on inside the pod: above 1024, so it needs no root. */
export const RSYNC_CONTAINER_PORT = 8873;
/** The daemon port's name on the source sidecar (a NetworkPolicy may name it). */
export const RSYNC_PORT_NAME = "ptm-rsync";
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
 * The field manager of every change the program makes to a workload: the `pulumi.com/
 * patchFieldManager` of each sidecar patch (`sidecarPatch.ts`) and `--field-manager` of each
 * `kubectl patch` and `kubectl create` its scripts run (`PTM_FIELD_MANAGER`, `kubectl.ts`).
 * Fixed, so that `kubectl get -o yaml --show-managed-fields` says who owns what. Never change
 * it: a stack mid-migration would find its fields owned by a manager it no longer applies as.
 * One for every migration of the program: the patched-by label, not the manager, says which
 * migration patched a workload.
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

/**
 * The labels a sidecar patch writes now: patched-by is the migration's instance
 * (`<stack>` for the default name, `<stack>.<component>` otherwise), so a revert finds the
 * workloads of this migration only.
 */
export function patchedLabels(names: MigrationNames, role: PatchedRole): Record<string, string> {
  return patchedLabelsIn(LABEL_DOMAIN, names.instance, role);
}

/**
 * The same labels under each domain, current first: every set a revert looks for. Versions
 * before issue 22 wrote the old domain with the stack as the value, which is the default
 * name's instance: their workloads are found by the migration named "migration".
 */
export function recognisedPatchedLabels(
  names: MigrationNames,
  role: PatchedRole,
): Record<string, string>[] {
  return LABEL_DOMAINS.map((d) => patchedLabelsIn(d, names.instance, role));
}
