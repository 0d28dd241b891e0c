// RBAC in the lab (issue 21 item 5): a ServiceAccount bound to exactly docs/rbac.yaml (its
// placeholders filled in, optionally one verb taken out), and a kubeconfig that acts as it
// (a token from `kubectl create token`), for the program's pulumi commands. The fixtures and
// the tests' own checks keep the admin kubeconfig.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadAll } from "js-yaml";
import { currentCluster, kubectl } from "./cluster";
import { REPO } from "./scenario";

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Doc = {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  roleRef?: { name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
};

export interface Binding {
  /** The ServiceAccount's name; the roles and bindings get it as their name prefix. */
  name: string;
  /** Where the ServiceAccount lives (the source's namespace: it goes with it). */
  namespace: string;
  source: string;
  target: string;
  /** A verb to take out of one rule: the Role ("source"/"target"), resource and verb. */
  drop?: { role: "source" | "target"; resource: string; verb: string };
}

/** docs/rbac.yaml for this binding: placeholders filled in, names made this binding's. */
export function rbacObjects(b: Binding): Doc[] {
  const text = fs
    .readFileSync(path.join(REPO, "docs", "rbac.yaml"), "utf8")
    .replace(/SOURCE_NAMESPACE/g, b.source)
    .replace(/TARGET_NAMESPACE/g, b.target)
    .replace(/SUBJECT_NAMESPACE/g, b.namespace);
  // Each binding's own names: cluster-scoped objects are shared by every test of the lab.
  const rename = (n: string) => n.replace(/^ptm-migration/, b.name);
  return (loadAll(text) as Doc[]).filter(Boolean).map((d) => {
    const o = JSON.parse(JSON.stringify(d)) as Doc; // a copy
    o.metadata.name = rename(o.metadata.name);
    if (o.roleRef) o.roleRef.name = rename(o.roleRef.name);
    for (const s of o.subjects ?? []) s.name = b.name;
    if (b.drop && o.kind === "Role" && o.metadata.name === `${b.name}-${b.drop.role}`) {
      const { resource, verb } = b.drop;
      const rule = o.rules?.find((r) => r.resources.includes(resource) && r.verbs.includes(verb));
      if (!rule)
        throw new Error(`docs/rbac.yaml: no ${verb} ${resource} in the ${b.drop.role} Role`);
      rule.verbs = rule.verbs.filter((v) => v !== verb);
    }
    return o;
  });
}

/** Applies the ServiceAccount and its roles and bindings (as the admin). */
export function bind(b: Binding): void {
  const sa = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: b.name, namespace: b.namespace },
  };
  const items = [
    sa,
    ...rbacObjects(b).map((d) => ({ apiVersion: "rbac.authorization.k8s.io/v1", ...d })),
  ];
  kubectl(
    ["apply", "--server-side", "--field-manager=ptm-e2e-rbac", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  );
}

/** Deletes the binding's cluster-scoped objects (the namespaced ones go with the namespace). */
export function unbind(b: Binding): void {
  kubectl([
    "delete",
    `clusterrolebinding/${b.name}`,
    `clusterrole/${b.name}`,
    "--ignore-not-found",
    "--wait=false",
  ]);
}

/**
 * A kubeconfig that acts as the ServiceAccount: the chosen cluster's server and CA, a token
 * from `kubectl create token`, and the chosen context's name (the stack names it).
 */
export function kubeconfigAs(b: Binding, hours = 2): string {
  const c = currentCluster();
  const token = kubectl([
    "create",
    "token",
    b.name,
    "-n",
    b.namespace,
    `--duration=${hours}h`,
  ]).trim();
  const cfg = JSON.parse(kubectl(["config", "view", "--raw", "--minify", "-o", "json"])) as {
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ptm-e2e-rbac-")), "kubeconfig");
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "cluster", cluster: cfg.clusters[0].cluster }],
    users: [{ name: b.name, user: { token } }],
    contexts: [{ name: c.context, context: { cluster: "cluster", user: b.name } }],
    "current-context": c.context,
  };
  fs.writeFileSync(file, JSON.stringify(kubeconfig), { mode: 0o600 });
  return file;
}
