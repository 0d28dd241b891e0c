// RBAC (issue 21 item 5): every Kubernetes permission a run of the migration uses, the one
// source of truth that docs/rbac.yaml is checked against (test/unit/rbac.test.ts) and that
// the preview checks with `kubectl auth can-i` (cluster/permissions.ts). A permission is
// listed when some step of the run may use it: the program's own kubectl reads, the cluster
// scripts (components/cluster/*.sh), the `kubectl exec` into the sidecars, and what the
// Kubernetes provider does for the objects it manages (Server-Side Apply, its watches).

import { MigrationConfig, SidecarMode, WorkloadKind } from "./config";

export type Verb = "get" | "list" | "watch" | "create" | "patch" | "delete";
/** Where a permission is needed: a side's namespace, or every namespace. */
export type RbacScope = "source" | "target" | "cluster";

export interface Permission {
  scope: RbacScope;
  /** The namespace; unset for the cluster scope. */
  namespace?: string;
  /** "" for the core group. */
  apiGroup: string;
  resource: string;
  subresource?: string;
  verb: Verb;
  /** Missing, the run warns and goes on without it (the Events). */
  optional: boolean;
  /** The steps that use it, in words. */
  usedBy: string[];
}

/** What of the config decides the permissions. */
export interface RbacInput {
  phase: "prepare" | "migrate" | "revert";
  sidecarMode: SidecarMode;
  includeHead: boolean;
  source: { namespace: string; kind: WorkloadKind };
  target: { namespace: string; kind: WorkloadKind };
}

export function rbacInputOf(cfg: MigrationConfig): RbacInput {
  return {
    phase: cfg.phase,
    sidecarMode: cfg.sidecarMode,
    includeHead: cfg.includeHead,
    source: { namespace: cfg.source.namespace, kind: cfg.source.kind },
    target: { namespace: cfg.target.namespace, kind: cfg.target.kind },
  };
}

type Side = "source" | "target";
type Resource = { apiGroup: string; resource: string; subresource?: string };

/** The resource a workload kind is read and patched as. */
function workloadResource(kind: WorkloadKind): Resource {
  if (kind === "Prometheus") return { apiGroup: "monitoring.coreos.com", resource: "prometheuses" };
  return { apiGroup: "apps", resource: kind === "Deployment" ? "deployments" : "statefulsets" };
}

/** The workload whose pods run Prometheus: a `Prometheus` resource's generated StatefulSet. */
function podsResource(kind: WorkloadKind): Resource {
  return { apiGroup: "apps", resource: kind === "Deployment" ? "deployments" : "statefulsets" };
}

const core = (resource: string, subresource?: string): Resource => ({
  apiGroup: "",
  resource,
  ...(subresource ? { subresource } : {}),
});

interface Need {
  what: Resource;
  verbs: Verb[];
  usedBy: string;
  /** Also needed by the revert (phase unset); every need is checked at prepare and migrate. */
  revert: boolean;
  optional?: boolean;
}

/** One side's needs, for its workload kind and the sidecar mode. */
function sideNeeds(side: Side, kind: WorkloadKind, c: RbacInput): Need[] {
  const patchMode = c.sidecarMode === "patch";
  const workload = workloadResource(kind);
  const pods = podsResource(kind);
  const admin = side === "source" && c.includeHead && patchMode;
  const needs: Need[] = [
    {
      what: workload,
      verbs: ["get"],
      usedBy:
        "read at preview; the cluster scripts read it (selector, existence, the Event's uid); " +
        "kubectl exec into the workload resolves it",
      revert: true,
    },
    {
      what: core("pods"),
      verbs: ["list"],
      usedBy:
        "discovery finds the running pod; kubectl exec picks a pod of the workload; the " +
        "rollout watch reads the pods' states",
      revert: true,
    },
    {
      what: core("pods"),
      verbs: ["get"],
      usedBy: "kubectl logs and kubectl exec pod/NAME read the pod; the ephemeral sidecar's state",
      revert: true,
    },
    {
      what: core("pods", "exec"),
      verbs: ["create"],
      usedBy:
        "kubectl exec: the probes, snapshot, copy, install, verification, restart guard and " +
        "clean-up run in the pods (kubectl's WebSocket exec falls back to this without get)",
      revert: true,
    },
    {
      what: core("pods", "log"),
      verbs: ["get"],
      usedBy: "the last log lines of a sidecar that can't start (rollout watch, ephemeral sidecar)",
      revert: false,
    },
    {
      what: core("pods", "proxy"),
      verbs: ["get"],
      usedBy:
        "discovery asks the running Prometheus for its flags, runtime and build info " +
        "(kubectl get --raw .../pods/POD:PORT/proxy/...)",
      // The revert's check through the target's Prometheus container locates its TSDB so.
      revert: side === "target",
    },
    {
      what: core("events"),
      verbs: ["create"],
      usedBy: "the migration's Events on the workloads (MigrationPrepared ... MigrationReverted)",
      revert: true,
      optional: true,
    },
    {
      what: core("events"),
      verbs: ["list", "watch"],
      usedBy: "the Kubernetes provider shows the events of the objects it creates and deletes",
      revert: true,
      optional: true,
    },
    ...(patchMode
      ? [
          {
            what: core("pods"),
            verbs: ["create"] as Verb[],
            usedBy:
              "the preview's server-side dry-run of each patched pod through admission " +
              "(kubectl create --dry-run=server: nothing is persisted; without it, not checked)",
            revert: false,
            optional: true,
          },
        ]
      : []),
    ...(patchMode && kind === "Deployment"
      ? [
          {
            what: { apiGroup: "apps", resource: "replicasets" },
            verbs: ["list"] as Verb[],
            usedBy:
              "the rollout watch reads the newest ReplicaSet's ReplicaFailure condition " +
              "(without it, a refused pod creation shows only at rolloutTimeoutSeconds)",
            revert: true,
            optional: true,
          },
        ]
      : []),
    // The rsync password: one Secret per namespace, managed by the provider (Server-Side
    // Apply at preview as a dry run, and at up; a watch until a deletion is done).
    ...managed(core("secrets"), "the rsync password Secret"),
  ];
  if (kind === "Prometheus") {
    needs.push({
      what: pods,
      verbs: ["get"],
      usedBy:
        "the StatefulSet the operator generated: read at preview, kubectl exec into it, " +
        "the wait until the operator has reconciled the resource",
      revert: true,
    });
  }
  if (patchMode) {
    needs.push(
      {
        what: workload,
        verbs: ["patch"],
        usedBy:
          (kind === "Prometheus"
            ? "the JSON patch that adds the sidecar to the resource's spec.containers, and its removal"
            : "the sidecar's Server-Side Apply patch (a dry run at preview), and its release at the revert") +
          (admin ? "; includeHead: the admin API flag on and off again (a JSON patch)" : ""),
        revert: true,
      },
      {
        what: pods,
        verbs: ["list", "watch"],
        usedBy:
          "kubectl rollout status: after the sidecar patch" +
          (admin ? " and the admin API switch" : "") +
          ", and at the revert",
        revert: true,
      },
    );
    if (pods.resource === "statefulsets") {
      needs.push({
        what: core("pods"),
        verbs: ["delete"],
        usedBy:
          "the revert, and an up after a failed prepare, delete a StatefulSet pod stuck on a " +
          "broken revision, which the StatefulSet would never replace (rollout-settle, rollout-watch)",
        revert: true,
      });
    }
  } else {
    needs.push({
      what: core("pods", "ephemeralcontainers"),
      verbs: ["get", "patch"],
      usedBy:
        "sidecarMode ephemeral: kubectl patch --subresource=ephemeralcontainers adds the sidecar " +
        "to the running pod (or set sidecarMode to patch)",
      revert: false,
    });
  }
  if (side === "source") {
    needs.push(
      ...managed(core("services"), "the rsync Service"),
      ...managed(
        { apiGroup: "networking.k8s.io", resource: "networkpolicies" },
        "the NetworkPolicy that admits only the target",
      ),
      {
        what: { apiGroup: "networking.k8s.io", resource: "networkpolicies" },
        verbs: ["list"],
        usedBy: "read at preview: whether the source's pods are isolated for ingress",
        revert: false,
      },
    );
  } else {
    needs.push(
      ...managed(core("configmaps"), "the decision and verification record ConfigMaps"),
      {
        what: core("configmaps"),
        verbs: ["list"],
        usedBy: "read at migrate: the recorded decision",
        revert: false,
      },
      {
        what: { apiGroup: "networking.k8s.io", resource: "networkpolicies" },
        verbs: ["list"],
        usedBy:
          "read at preview: whether a NetworkPolicy keeps the target's pods from reaching " +
          "the source's rsync daemon",
        revert: false,
      },
    );
  }
  return needs;
}

/** An object the Kubernetes provider creates, keeps and deletes. */
function managed(what: Resource, name: string): Need[] {
  return [
    {
      what,
      // An apply to an object that doesn't exist yet is a create: the API server asks both.
      verbs: ["create", "patch"],
      usedBy: `${name}: created and updated by Server-Side Apply (a dry run at preview)`,
      revert: false,
    },
    {
      what,
      verbs: ["get", "delete"],
      usedBy: `${name}: read back, and deleted at the revert`,
      revert: true,
    },
    {
      what,
      verbs: ["list", "watch"],
      usedBy: `${name}: the Kubernetes provider watches until its deletion is done`,
      revert: true,
    },
  ];
}

/** The cluster-wide needs: only the revert's search for what this stack patched. */
const CLUSTER: Need[] = [
  {
    what: { apiGroup: "apps", resource: "deployments" },
    verbs: ["list"],
    usedBy:
      "the revert finds the workloads this stack patched by their label in every namespace " +
      "(the target config may have changed since)",
    revert: true,
  },
  {
    what: { apiGroup: "apps", resource: "statefulsets" },
    verbs: ["list"],
    usedBy:
      "the revert finds the workloads this stack patched by their label in every namespace " +
      "(the target config may have changed since)",
    revert: true,
  },
];

/**
 * Every permission the run needs, each once per namespace. Phase prepare and migrate check
 * what the whole migration will need, the revert included, so that nothing is started that
 * can't be finished; the revert checks what it needs.
 */
export function requiredPermissions(c: RbacInput): Permission[] {
  const out = new Map<string, Permission>();
  const add = (scope: RbacScope, namespace: string | undefined, needs: Need[]) => {
    for (const n of needs) {
      if (c.phase === "revert" && !n.revert) continue;
      for (const verb of n.verbs) {
        const p: Permission = {
          scope,
          ...(namespace !== undefined ? { namespace } : {}),
          ...n.what,
          verb,
          optional: n.optional ?? false,
          usedBy: [n.usedBy],
        };
        const k = permissionKey(p);
        const had = out.get(k);
        if (!had) out.set(k, p);
        else {
          // One namespace for both sides: needed if either needs it.
          had.optional = had.optional && p.optional;
          if (!had.usedBy.includes(n.usedBy)) had.usedBy.push(n.usedBy);
        }
      }
    }
  };
  add("source", c.source.namespace, sideNeeds("source", c.source.kind, c));
  add("target", c.target.namespace, sideNeeds("target", c.target.kind, c));
  add("cluster", undefined, CLUSTER);
  return [...out.values()];
}

function permissionKey(p: Permission): string {
  return `${p.namespace ?? "*"} ${p.apiGroup}/${p.resource}/${p.subresource ?? ""} ${p.verb}`;
}

/** `deployments.apps`, `pods`: the resource as kubectl names it, unambiguous. */
function qualified(p: Resource): string {
  return p.apiGroup ? `${p.resource}.${p.apiGroup}` : p.resource;
}

/** "create pods/exec in namespace monitoring", "list deployments.apps in all namespaces". */
export function describePermission(p: Permission): string {
  const what = `${qualified(p)}${p.subresource ? `/${p.subresource}` : ""}`;
  return `${p.verb} ${what} ${p.namespace === undefined ? "in all namespaces" : `in namespace ${p.namespace}`}`;
}

export type CanIAnswer = { kind: "yes" } | { kind: "no" } | { kind: "unknown"; said: string };

/**
 * One SelfSubjectAccessReview per permission, in a List: what `kubectl auth can-i` asks,
 * asked in one `kubectl create` (one process for the whole check, not one per permission).
 */
export function accessReviews(perms: Permission[]): object {
  return {
    apiVersion: "v1",
    kind: "List",
    items: perms.map((p) => ({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: {
        resourceAttributes: {
          verb: p.verb,
          group: p.apiGroup,
          resource: p.resource,
          ...(p.subresource ? { subresource: p.subresource } : {}),
          ...(p.namespace === undefined ? {} : { namespace: p.namespace }),
        },
      },
    })),
  };
}

/** What kubectl prints per review: its question and its answer, one line each. */
export const ACCESS_REVIEW_LINE =
  '{.spec.resourceAttributes.verb} {.spec.resourceAttributes.resource} {.status.allowed}{"\\n"}';

/**
 * The answers to {@link accessReviews}, in its order. Each line must echo its own question:
 * a failed kubectl, a missing or a foreign line is "could not check", never a yes.
 */
export function readAccessReviews(
  perms: Permission[],
  code: number,
  stdout: string,
  said: string,
): CanIAnswer[] {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  return perms.map((p, i) => {
    const [verb, resource, allowed] = (lines[i] ?? "").trim().split(/\s+/);
    if (code !== 0 || lines.length !== perms.length || verb !== p.verb || resource !== p.resource) {
      return { kind: "unknown", said };
    }
    if (allowed === "true") return { kind: "yes" };
    // A denied review has no "allowed" (false is omitted from the JSON).
    if (allowed === undefined || allowed === "false") return { kind: "no" };
    return { kind: "unknown", said };
  });
}

/** Where the rules are written down, for the user to bind. */
export const RBAC_DOC = "docs/rbac.yaml";

/**
 * The refusal that lists every missing permission and every one that could not be checked,
 * or nothing; the optional ones only warn.
 */
export function rbacVerdict(
  checked: { p: Permission; answer: CanIAnswer }[],
  user: string,
): { refusal?: string; warnings: string[] } {
  const line = (x: { p: Permission; answer: CanIAnswer }) =>
    `${describePermission(x.p)} (${x.p.usedBy.join("; ")}` +
    (x.answer.kind === "unknown" ? `; the access review: ${x.answer.said}` : "") +
    ")";
  const bad = checked.filter((x) => x.answer.kind !== "yes");
  const required = bad.filter((x) => !x.p.optional);
  const optional = bad.filter((x) => x.p.optional);
  const warnings = optional.length
    ? [
        `kubectl's user ${user} may not ${optional.map((x) => describePermission(x.p)).join(", ")}` +
          ` (or that could not be checked): the migration goes on without them; its Events ` +
          `are not recorded (see ${RBAC_DOC})`,
      ]
    : [];
  if (required.length === 0) return { warnings };
  const missing = required.filter((x) => x.answer.kind === "no");
  const unknown = required.filter((x) => x.answer.kind === "unknown");
  const parts = [
    ...(missing.length
      ? [
          `lacks ${missing.length} permission${missing.length === 1 ? "" : "s"} this migration needs: ` +
            missing.map(line).join("; "),
        ]
      : []),
    ...(unknown.length === checked.filter((x) => !x.p.optional).length &&
    unknown.length > 1 &&
    unknown.every(
      (x) =>
        x.answer.kind === "unknown" &&
        x.answer.said === (unknown[0].answer as { said: string }).said,
    )
      ? // One kubectl asks them all: when it fails, it failed for every one alike.
        [
          `could not check any of the ${unknown.length} permissions this migration needs ` +
            `(the access review: ${(unknown[0].answer as { said: string }).said})`,
        ]
      : unknown.length
        ? [`could not check ${unknown.length}: ${unknown.map(line).join("; ")}`]
        : []),
  ];
  return {
    warnings,
    refusal:
      `the user ${user} of the stack's cluster (kubernetes:kubeconfig, kubernetes:context) ` +
      `${parts.join("; and it ")}. Nothing was changed. Bind the roles of ${RBAC_DOC} ` +
      `(a Role in each namespace and a ClusterRole) to that user, or set kubernetes:kubeconfig ` +
      `and kubernetes:context to a user that has them, then run again`,
  };
}

/** A Role's rule: one per resource, with its verbs. */
export interface RoleRule {
  apiGroups: string[];
  resources: string[];
  verbs: Verb[];
}

/** The rules of one scope's role that grant exactly these permissions. */
export function roleRules(perms: Permission[], scope: RbacScope): RoleRule[] {
  const by = new Map<string, RoleRule>();
  for (const p of perms.filter((x) => x.scope === scope)) {
    const res = `${p.resource}${p.subresource ? `/${p.subresource}` : ""}`;
    const k = `${p.apiGroup} ${res}`;
    const r = by.get(k) ?? { apiGroups: [p.apiGroup], resources: [res], verbs: [] };
    if (!r.verbs.includes(p.verb)) r.verbs.push(p.verb);
    by.set(k, r);
  }
  return [...by.values()].map((r) => ({ ...r, verbs: [...r.verbs].sort() }));
}
