// RBAC (issue 21 item 5): which permissions a run needs, as table tests; the answers of
// `kubectl auth can-i` read fail-closed; the one refusal that lists every missing permission;
// and docs/rbac.yaml checked against the same function, rule for rule, both ways.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { load, loadAll } from "js-yaml";
import {
  accessReviews,
  CanIAnswer,
  describePermission,
  Permission,
  RbacInput,
  rbacInputOf,
  rbacVerdict,
  readAccessReviews,
  requiredPermissions,
  roleRules,
  RbacScope,
} from "../../components/decisions/rbac";
import { parseConfig, WorkloadKind } from "../../components/decisions/config";

const KINDS: WorkloadKind[] = ["Deployment", "StatefulSet", "Prometheus"];

const input = (over: Partial<RbacInput> = {}): RbacInput => ({
  phase: "prepare",
  sidecarMode: "patch",
  includeHead: false,
  source: { namespace: "monitoring", kind: "Deployment" },
  target: { namespace: "kubeprod", kind: "StatefulSet" },
  ...over,
});

/** `verb group/resource[/sub] @namespace` (`@*` cluster-wide), for set comparisons. */
const key = (p: Permission) =>
  `${p.verb} ${p.apiGroup || "core"}/${p.resource}${p.subresource ? `/${p.subresource}` : ""} @${p.namespace ?? "*"}`;
const keys = (i: RbacInput) => new Set(requiredPermissions(i).map(key));

describe("rbac: the permissions a run needs", () => {
  const cases: {
    what: string;
    in: RbacInput;
    has: string[];
    lacks: string[];
  }[] = [
    {
      what: "Deployment into StatefulSet, patch mode",
      in: input(),
      has: [
        "get apps/deployments @monitoring",
        "patch apps/deployments @monitoring",
        "list apps/deployments @monitoring",
        "watch apps/deployments @monitoring",
        "get apps/statefulsets @kubeprod",
        "patch apps/statefulsets @kubeprod",
        "list apps/statefulsets @kubeprod",
        "watch apps/statefulsets @kubeprod",
        // rollout-settle replaces a StatefulSet pod stuck on the broken revision
        "delete core/pods @kubeprod",
        "list core/pods @monitoring",
        "get core/pods @monitoring",
        "create core/pods/exec @monitoring",
        "create core/pods/exec @kubeprod",
        "get core/pods/log @kubeprod",
        "get core/pods/proxy @monitoring",
        "get core/pods/proxy @kubeprod",
        "patch core/secrets @monitoring",
        "patch core/secrets @kubeprod",
        // Server-Side Apply of an object that doesn't exist yet is a create as well
        "create core/secrets @kubeprod",
        "create core/services @monitoring",
        "create networking.k8s.io/networkpolicies @monitoring",
        "create core/configmaps @kubeprod",
        "delete core/secrets @kubeprod",
        "watch core/secrets @kubeprod",
        "patch core/services @monitoring",
        "delete core/services @monitoring",
        "list networking.k8s.io/networkpolicies @monitoring",
        "patch networking.k8s.io/networkpolicies @monitoring",
        "list core/configmaps @kubeprod",
        "patch core/configmaps @kubeprod",
        "create core/events @monitoring",
        "create core/events @kubeprod",
        "list apps/deployments @*",
        "list apps/statefulsets @*",
      ],
      lacks: [
        "delete core/pods @monitoring",
        "get apps/statefulsets @monitoring",
        "get apps/deployments @kubeprod",
        "patch core/services @kubeprod",
        "patch networking.k8s.io/networkpolicies @kubeprod",
        "patch core/configmaps @monitoring",
        "patch core/pods/ephemeralcontainers @monitoring",
        "get monitoring.coreos.com/prometheuses @kubeprod",
        "update apps/deployments @monitoring",
        "create apps/deployments @monitoring",
      ],
    },
    {
      what: "sidecarMode ephemeral: no template patch, no rollout, the ephemeralcontainers subresource",
      in: input({ sidecarMode: "ephemeral" }),
      has: [
        "get core/pods/ephemeralcontainers @monitoring",
        "patch core/pods/ephemeralcontainers @monitoring",
        "patch core/pods/ephemeralcontainers @kubeprod",
        "get apps/deployments @monitoring",
        "get core/pods @kubeprod",
        "create core/pods/exec @kubeprod",
        "list apps/deployments @*",
      ],
      lacks: [
        "patch apps/deployments @monitoring",
        "patch apps/statefulsets @kubeprod",
        "watch apps/statefulsets @kubeprod",
        "list apps/deployments @monitoring",
        "delete core/pods @kubeprod",
      ],
    },
    {
      what: "a Prometheus resource target: the resource is patched, its StatefulSet only read",
      in: input({ target: { namespace: "kubeprod", kind: "Prometheus" } }),
      has: [
        "get monitoring.coreos.com/prometheuses @kubeprod",
        "patch monitoring.coreos.com/prometheuses @kubeprod",
        "get apps/statefulsets @kubeprod",
        "list apps/statefulsets @kubeprod",
        "watch apps/statefulsets @kubeprod",
        "delete core/pods @kubeprod",
      ],
      lacks: [
        "patch apps/statefulsets @kubeprod",
        "list monitoring.coreos.com/prometheuses @kubeprod",
      ],
    },
    {
      what: "the revert: deletes and reads, creates and patches nothing new",
      in: input({ phase: "revert" }),
      has: [
        "list apps/deployments @*",
        "list apps/statefulsets @*",
        "get apps/statefulsets @kubeprod",
        // the Server-Side Apply patch is relinquished by a patch
        "patch apps/statefulsets @kubeprod",
        "create core/pods/exec @kubeprod",
        "get core/pods/proxy @kubeprod",
        "delete core/secrets @monitoring",
        "get core/secrets @monitoring",
        "list core/secrets @monitoring",
        "watch core/secrets @monitoring",
        "delete core/services @monitoring",
        "delete networking.k8s.io/networkpolicies @monitoring",
        "delete core/configmaps @kubeprod",
        "delete core/pods @kubeprod",
      ],
      lacks: [
        "patch core/secrets @monitoring",
        "create core/secrets @monitoring",
        "patch core/services @monitoring",
        "patch core/configmaps @kubeprod",
        "get core/pods/log @kubeprod",
        "get core/pods/proxy @monitoring",
      ],
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const got = keys(c.in);
      for (const k of c.has) assert.ok(got.has(k), `needs ${k}`);
      for (const k of c.lacks) assert.ok(!got.has(k), `does not need ${k}`);
    });
  }

  it("prepare checks what migrate and the revert will need: the same set", () => {
    assert.deepEqual([...keys(input())].sort(), [...keys(input({ phase: "migrate" }))].sort());
    for (const k of keys(input({ phase: "revert" })))
      assert.ok(keys(input()).has(k), `the revert's ${k} is checked at prepare too`);
  });

  it("includeHead adds no permission: the admin API switch patches the workload the sidecar patch does", () => {
    for (const sidecarMode of ["patch", "ephemeral"] as const)
      assert.deepEqual(
        [...keys(input({ sidecarMode, includeHead: true }))].sort(),
        [...keys(input({ sidecarMode }))].sort(),
      );
  });

  it("one namespace for both: each permission once, needed if either side needs it", () => {
    const same = requiredPermissions(
      input({ target: { namespace: "monitoring", kind: "StatefulSet" } }),
    );
    const k = same.map(key);
    assert.equal(new Set(k).size, k.length, "no duplicates");
    assert.ok(k.includes("patch core/configmaps @monitoring"));
    assert.ok(k.includes("delete core/pods @monitoring"));
  });

  it("optional: Events (best effort), the provider's event watch, the admission dry-run, the ReplicaSet read", () => {
    const optional = requiredPermissions(input())
      .filter((p) => p.optional)
      .map(key)
      .sort();
    assert.deepEqual(optional, [
      "create core/events @kubeprod",
      "create core/events @monitoring",
      // The admission dry-run and the rollout watch's ReplicaSet read (issue 21 item 4).
      "create core/pods @kubeprod",
      "create core/pods @monitoring",
      "list apps/replicasets @monitoring",
      "list core/events @kubeprod",
      "list core/events @monitoring",
      "watch core/events @kubeprod",
      "watch core/events @monitoring",
    ]);
  });

  it("every permission says which step uses it", () => {
    for (const p of requiredPermissions(input()))
      assert.ok(p.usedBy.length > 0 && p.usedBy.every((u) => u.length > 10), key(p));
  });

  it("reads the config: namespaces, kinds, mode, phase", () => {
    const cfg = parseConfig({
      phase: "",
      source: { namespace: "a", name: "p", kind: "StatefulSet" },
      target: { namespace: "b", kind: "Prometheus", name: "k" },
      sidecarMode: "ephemeral",
      includeHead: true,
    });
    assert.deepEqual(rbacInputOf(cfg), {
      phase: "revert",
      sidecarMode: "ephemeral",
      includeHead: true,
      source: { namespace: "a", kind: "StatefulSet" },
      target: { namespace: "b", kind: "Prometheus" },
    });
  });
});

describe("rbac: asking kubectl auth can-i", () => {
  const perm = (over: Partial<Permission>): Permission => ({
    scope: "source",
    namespace: "monitoring",
    apiGroup: "",
    resource: "pods",
    verb: "get",
    optional: false,
    usedBy: ["a step that reads pods"],
    ...over,
  });

  it("says each permission as a user reads it", () => {
    assert.equal(
      describePermission(perm({ verb: "create", subresource: "exec" })),
      "create pods/exec in namespace monitoring",
    );
    assert.equal(
      describePermission(
        perm({
          scope: "cluster",
          namespace: undefined,
          apiGroup: "apps",
          resource: "deployments",
          verb: "list",
        }),
      ),
      "list deployments.apps in all namespaces",
    );
  });
});

describe("rbac: the verdict", () => {
  const needed = requiredPermissions(input());
  const answers = (f: (p: Permission) => CanIAnswer) => needed.map((p) => ({ p, answer: f(p) }));
  const yes: CanIAnswer = { kind: "yes" };
  const no: CanIAnswer = { kind: "no" };

  it("everything allowed: no refusal, no warning", () => {
    assert.deepEqual(
      rbacVerdict(
        answers(() => yes),
        "ci",
      ),
      { warnings: [] },
    );
  });

  it("lists every missing permission at once, names the user, the key and docs/rbac.yaml", () => {
    const v = rbacVerdict(
      answers((p) =>
        (p.verb === "patch" && p.resource === "deployments") ||
        (p.verb === "list" && p.scope === "cluster")
          ? no
          : yes,
      ),
      "system:serviceaccount:ops:migrator",
    );
    assert.ok(v.refusal);
    assert.match(v.refusal, /kubernetes:kubeconfig/);
    assert.match(v.refusal, /system:serviceaccount:ops:migrator/);
    assert.match(v.refusal, /patch deployments\.apps in namespace monitoring/);
    assert.match(v.refusal, /list deployments\.apps in all namespaces/);
    assert.match(v.refusal, /list statefulsets\.apps in all namespaces/);
    assert.match(v.refusal, /lacks 3 permissions/);
    assert.match(v.refusal, /docs\/rbac\.yaml/);
    assert.match(v.refusal, /nothing was changed/i);
  });

  it("could not check is never ok: refused, saying what kubectl said", () => {
    const v = rbacVerdict(
      answers((p) =>
        p.subresource === "proxy" ? { kind: "unknown", said: "exit 1: error: Unauthorized" } : yes,
      ),
      "ci",
    );
    assert.ok(v.refusal);
    assert.match(v.refusal, /could not check 2/);
    assert.match(v.refusal, /get pods\/proxy in namespace monitoring/);
    assert.match(v.refusal, /Unauthorized/);
  });

  it("an optional permission missing or unchecked warns and goes on", () => {
    const v = rbacVerdict(
      answers((p) => (p.resource === "events" ? no : yes)),
      "ci",
    );
    assert.equal(v.refusal, undefined);
    assert.equal(v.warnings.length, 1);
    assert.match(v.warnings[0], /create events in namespace kubeprod/);
    assert.match(v.warnings[0], /without them/);
  });

  it("an ephemeral-only permission says sidecarMode patch is the way around it", () => {
    const eph = requiredPermissions(input({ sidecarMode: "ephemeral" }));
    const v = rbacVerdict(
      eph.map((p) => ({ p, answer: p.subresource === "ephemeralcontainers" ? no : yes })),
      "ci",
    );
    assert.match(v.refusal ?? "", /patch pods\/ephemeralcontainers in namespace kubeprod/);
    assert.match(v.refusal ?? "", /sidecarMode to patch/);
  });
});

describe("docs/rbac.yaml: exactly the rules the program needs", () => {
  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
  type Doc = {
    kind: string;
    metadata: { name: string; namespace?: string };
    rules?: Rule[];
    roleRef?: { kind: string; name: string };
  };
  const text = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "rbac.yaml"), "utf8");
  const docs = (loadAll(text) as Doc[]).filter(Boolean);
  const triples = (rules: Rule[]) =>
    new Set(
      rules.flatMap((r) =>
        r.apiGroups.flatMap((g) =>
          r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g || "core"}/${res}`)),
        ),
      ),
    );
  // Every configuration the program supports: the union is what the file must grant.
  const all: RbacInput[] = [];
  for (const s of KINDS)
    for (const t of KINDS)
      for (const sidecarMode of ["patch", "ephemeral"] as const)
        for (const phase of ["prepare", "migrate", "revert"] as const)
          for (const includeHead of [false, true])
            all.push(
              input({
                phase,
                sidecarMode,
                includeHead,
                source: { namespace: "monitoring", kind: s },
                target: { namespace: "kubeprod", kind: t },
              }),
            );
  const needed = (scope: RbacScope) =>
    triples(all.flatMap((i) => roleRules(requiredPermissions(i), scope)));
  const role = (kind: string, ns: string | undefined) => {
    const found = docs.filter((d) => d.kind === kind && d.metadata.namespace === ns);
    assert.equal(found.length, 1, `one ${kind} in ${ns ?? "the cluster"}`);
    return triples(found[0].rules ?? []);
  };

  for (const [scope, kind, ns] of [
    ["source", "Role", "SOURCE_NAMESPACE"],
    ["target", "Role", "TARGET_NAMESPACE"],
    ["cluster", "ClusterRole", undefined],
  ] as const) {
    it(`the ${scope} ${kind}: every rule needed, and nothing more`, () => {
      const want = needed(scope);
      const have = role(kind, ns);
      assert.deepEqual(
        [...have].filter((t) => !want.has(t)),
        [],
        "granted but never used",
      );
      assert.deepEqual(
        [...want].filter((t) => !have.has(t)),
        [],
        "used but not granted",
      );
    });
  }

  it("binds each role, and nothing else is in the file", () => {
    const kinds = docs.map((d) => `${d.kind} ${d.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      "ClusterRole ptm-migration",
      "ClusterRoleBinding ptm-migration",
      "Role ptm-migration-source",
      "Role ptm-migration-target",
      "RoleBinding ptm-migration-source",
      "RoleBinding ptm-migration-target",
    ]);
    for (const d of docs.filter((x) => x.kind.endsWith("Binding")))
      assert.equal(d.roleRef?.name, d.metadata.name, `${d.kind} ${d.metadata.name} binds its role`);
  });

  it("is valid YAML throughout (js-yaml load of each document)", () => {
    for (const part of text.split(/^---$/m).filter((p) => p.trim()))
      assert.ok(load(part) !== undefined);
  });
});

describe("rbac: the access reviews, all in one kubectl", () => {
  const perms = requiredPermissions(input()).slice(0, 3);
  const lines = (allowed: string[]) =>
    perms.map((p, i) => `${p.verb} ${p.resource} ${allowed[i]}`).join("\n");
  const cases: [string, number, string, string[]][] = [
    ["each answered", 0, lines(["true", "false", "true"]), ["yes", "no", "yes"]],
    [
      "kubectl failed: none is a yes",
      1,
      lines(["true", "true", "true"]),
      ["unknown", "unknown", "unknown"],
    ],
    [
      "a line missing",
      0,
      lines(["true", "true", "true"]).split("\n").slice(0, 2).join("\n"),
      ["unknown", "unknown", "unknown"],
    ],
    [
      "a line about another question",
      0,
      `nope nothing true\n${lines(["true", "true", "true"]).split("\n").slice(1).join("\n")}`,
      ["unknown", "yes", "yes"],
    ],
    ["an answer that is neither", 0, lines(["true", "maybe", "true"]), ["yes", "unknown", "yes"]],
  ];
  for (const [what, code, stdout, want] of cases) {
    it(what, () => {
      assert.deepEqual(
        readAccessReviews(perms, code, stdout, "said").map((a) => a.kind),
        want,
      );
    });
  }
  it("one review per permission, with its subresource and namespace", () => {
    const all = requiredPermissions(input());
    const list = accessReviews(all) as {
      items: { spec: { resourceAttributes: Record<string, string> } }[];
    };
    assert.equal(list.items.length, all.length);
    const exec = list.items.find((x) => x.spec.resourceAttributes.subresource === "exec");
    assert.ok(exec);
    assert.equal(exec.spec.resourceAttributes.resource, "pods");
    assert.equal(exec.spec.resourceAttributes.verb, "create");
    assert.ok(list.items.some((x) => x.spec.resourceAttributes.namespace === undefined));
  });
});
