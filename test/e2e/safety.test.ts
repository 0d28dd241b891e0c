// A user's KUBECONFIG may point at production. Given a kubeconfig that reaches the lab under
// another context name (so it is a real, reachable cluster that is not "the lab" by name),
// and no PTM_DEMO_CONTEXT, every entry point of the demo and the e2e tests refuses, and the
// cluster holds exactly what it held before: no namespace, no object, no cordon.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { currentCluster, kubectl } from "./cluster";
import { REPO } from "./scenario";

const KINDS = [
  "namespaces",
  "nodes",
  "persistentvolumes",
  "customresourcedefinitions",
  "deployments",
  "statefulsets",
  "daemonsets",
  "pods",
  "services",
  "configmaps",
  "secrets",
  "serviceaccounts",
  "persistentvolumeclaims",
  "networkpolicies",
  "roles",
  "rolebindings",
].join(",");

/** Every object of those kinds as "kind ns/name uid generation" (nodes: and their cordon). */
function clusterObjects(): string[] {
  const items = (
    JSON.parse(kubectl(["get", KINDS, "-A", "-o", "json"])) as {
      items: {
        kind: string;
        metadata: { namespace?: string; name: string; uid: string; generation?: number };
        spec?: { unschedulable?: boolean };
      }[];
    }
  ).items;
  return items
    .map(
      (o) =>
        `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name} ${o.metadata.uid} ${o.metadata.generation ?? ""}` +
        (o.kind === "Node" ? ` unschedulable=${o.spec?.unschedulable === true}` : ""),
    )
    .sort();
}

describe("safety: a KUBECONFIG that is not the lab's, without PTM_DEMO_CONTEXT, changes nothing", function () {
  this.timeout(10 * 60_000);
  let renamed: string;
  let snapshot: string[];

  before(() => {
    // The lab's kubeconfig with its one context renamed, as a user's might be named.
    const lab = JSON.parse(kubectl(["config", "view", "--raw", "-o", "json"])) as {
      contexts: { name: string; context: Record<string, unknown> }[];
      "current-context": string;
    };
    const ctx = lab.contexts.find((c) => c.name === currentCluster().context);
    assert.ok(ctx, "the lab's context");
    lab.contexts = [{ name: "prod-lookalike", context: ctx.context }];
    lab["current-context"] = "prod-lookalike";
    renamed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ptm-safety-")), "config");
    fs.writeFileSync(renamed, JSON.stringify(lab), { mode: 0o600 });
    // It reaches the cluster: a refusal below is the guard's, not an unreachable server's.
    const seen = spawnSync("kubectl", ["get", "namespace", "default", "-o", "name"], {
      env: { ...process.env, KUBECONFIG: renamed },
      encoding: "utf8",
    });
    assert.equal(seen.stdout.trim(), "namespace/default", seen.stderr);
    snapshot = clusterObjects();
    assert.ok(snapshot.length > 20, `the snapshot holds ${snapshot.length} objects`);
  });

  after(() => fs.rmSync(path.dirname(renamed), { recursive: true, force: true }));

  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: renamed };
    delete e.PTM_DEMO_CONTEXT;
    return e;
  };
  const entryPoints: [string, string, string[]][] = [
    ["npm run demo", "bash", ["test/e2e/run.sh", "demo"]],
    ["npm run test:e2e", "bash", ["test/e2e/run.sh", "test"]],
    ["the demo program itself", "npx", ["ts-node", "--transpile-only", "test/e2e/demo.ts"]],
    ["the e2e suite through mocha", "npx", ["mocha", "--config", "test/e2e/.mocharc.json"]],
    ["npm run bench:state", "npx", ["ts-node", "--transpile-only", "test/bench/state.ts"]],
  ];
  for (const [name, cmd, args] of entryPoints) {
    it(`${name} refuses, naming the kubeconfig and what to set`, () => {
      const t0 = Date.now();
      const r = spawnSync(cmd, args, { cwd: REPO, env: env(), encoding: "utf8", timeout: 300_000 });
      const out = `${r.stdout}\n${r.stderr}`;
      assert.notEqual(r.status, 0, `${name} exited 0:\n${out.slice(-2000)}`);
      assert.match(
        out,
        /KUBECONFIG=\S+ \(current context "prod-lookalike"\) is not the local lab's/,
      );
      assert.match(out, /nothing was read or changed in that cluster/);
      assert.match(out, name.includes("demo") ? /PTM_DEMO_CONTEXT=<context>/ : /Unset KUBECONFIG/);
      process.stdout.write(`      ${name}: refused in ${Date.now() - t0} ms (exit ${r.status})\n`);
    });
  }

  it("the cluster holds the same objects as before: names, uids, generations, cordons", () => {
    const after = clusterObjects();
    const added = after.filter((o) => !snapshot.includes(o));
    const gone = snapshot.filter((o) => !after.includes(o));
    assert.deepEqual({ added, gone }, { added: [], gone: [] });
    process.stdout.write(
      `      compared ${after.length} objects of ${KINDS.split(",").length} kinds\n`,
    );
  });
});
