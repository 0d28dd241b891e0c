// RBAC checked by the program (issue 21 item 5): at every preview and up, before anything is
// read or changed, every permission the run needs is asked as `kubectl auth can-i` asks it (a
// SelfSubjectAccessReview each, all in one kubectl); one refusal lists all that are missing,
// and a check that can't be made refuses too.

import * as assert from "node:assert/strict";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { migratingCluster } from "../fixtures/probes";
import { requiredPermissions, rbacInputOf } from "../../components/decisions/rbac";
import { parseConfig } from "../../components/decisions/config";
import { FakeCluster, runProgram } from "./harness";

const prepare = { phase: "prepare", source: SOURCE_CONFIG };
const REVIEWS = /^kubectl create -f - -o 'jsonpath=\{\.spec\.resourceAttributes/;

describe("program: the RBAC check at preview and up", () => {
  it("asks about every permission the run needs, before any other kubectl", async () => {
    const r = await runProgram(prepare, cluster(), { preview: true });
    const needed = requiredPermissions(
      rbacInputOf(parseConfig({ ...prepare, phase: "prepare" } as never)),
    );
    assert.equal(r.accessReviews.length, needed.length);
    assert.ok(r.accessReviews.includes("patch deployments.apps -n monitoring"));
    assert.ok(r.accessReviews.includes("create pods/exec -n kubeprod"));
    assert.ok(r.accessReviews.includes("list statefulsets.apps -A"));
    // Nothing was read before: the check and the user's name come first.
    const firstOther = r.commands.findIndex((c) => !REVIEWS.test(c) && !/auth whoami/.test(c));
    assert.equal(firstOther, 2, `first other command at ${firstOther}`);
  });

  it("asks in one kubectl: one process for every question", async () => {
    const r = await runProgram(prepare, cluster(), { preview: true });
    assert.equal(r.commands.filter((c) => REVIEWS.test(c)).length, 1);
    assert.equal(r.commands.filter((c) => /auth can-i/.test(c)).length, 0);
  });

  it("one verb removed: refused at preview, naming it, the user and the key; nothing declared", async () => {
    const c: FakeCluster = {
      ...cluster(),
      user: "system:serviceaccount:ops:ptm-migration",
      canI: { "patch deployments.apps -n monitoring": "no" },
    };
    let declared = -1;
    await assert.rejects(
      runProgram(prepare, c, { preview: true }).then((r) => (declared = r.resources.length)),
      (e: Error) => {
        assert.match(e.message, /kubernetes:kubeconfig/);
        assert.match(e.message, /system:serviceaccount:ops:ptm-migration/);
        assert.match(
          e.message,
          /lacks 1 permission this migration needs: patch deployments\.apps in namespace monitoring \(/,
        );
        assert.match(e.message, /docs\/rbac\.yaml/);
        assert.doesNotMatch(e.message, /\n\s+at /, "no stack trace");
        return true;
      },
    );
    assert.equal(declared, -1);
  });

  it("lists every missing permission at once, in both namespaces and cluster-wide", async () => {
    const c: FakeCluster = {
      ...cluster(),
      canI: {
        "get pods/proxy -n monitoring": "no",
        "patch configmaps -n kubeprod": "no",
        "list deployments.apps -A": "no",
      },
    };
    await assert.rejects(runProgram({ ...prepare, phase: "migrate" }, c), (e: Error) => {
      assert.match(e.message, /lacks 3 permissions/);
      for (const p of [
        "get pods/proxy in namespace monitoring",
        "patch configmaps in namespace kubeprod",
        "list deployments.apps in all namespaces",
      ])
        assert.ok(e.message.includes(p), p);
      return true;
    });
  });

  it("a permission that can't be checked refuses: never taken for a yes", async () => {
    const c: FakeCluster = { ...cluster(), canI: { "create pods/exec -n kubeprod": "error" } };
    await assert.rejects(
      runProgram(prepare, c, { preview: true }),
      /could not check any of the \d+ permissions this migration needs \(the access review: exit 1: error: You must be logged in to the server\)/,
    );
  });

  it("the revert checks too: the cluster-wide list of what this stack patched", async () => {
    const c: FakeCluster = { ...migratingCluster(), canI: { "list statefulsets.apps -A": "no" } };
    await assert.rejects(
      runProgram({ source: SOURCE_CONFIG }, c),
      /lacks 1 permission this migration needs: list statefulsets\.apps in all namespaces/,
    );
  });

  it("no right to record Events: a warning, and the run goes on", async () => {
    const c: FakeCluster = { ...cluster(), canI: { "create events -n kubeprod": "no" } };
    const r = await runProgram(prepare, c, { preview: true });
    assert.ok(r.resources.length > 0);
    assert.equal(r.outputs.status, "prepared");
  });
});
