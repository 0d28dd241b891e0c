// Issue 22, Kubernetes conventions, through the whole program under mocks: the field manager
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
// of each patch, the labels a revert recognises, sidecarResources, imagePullSecrets and the
// prepare phase's Events.

import * as assert from "node:assert/strict";
import { bkprStatefulSet, cluster, SOURCE_CONFIG, sourceDeployment } from "../fixtures/workloads";
import { block, targetProbe, T0 } from "../fixtures/probes";
import { FakeCluster, one, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const H = 3_600_000;
const prepare = { phase: "prepare", source: SOURCE_CONFIG };
const podSpec = (w: Obj) => ((w.spec as Obj).template as Obj).spec as Obj;
const containersOf = (patch: Obj) => podSpec(patch).containers as Obj[];
const sidecarOf = (patch: Obj) => containersOf(patch)[containersOf(patch).length - 1];
const annotations = (patch: Obj) => (patch.metadata as Obj).annotations as Obj;
const DEPLOYMENT = "kubernetes:apps/v1:DeploymentPatch";
const STATEFULSET = "kubernetes:apps/v1:StatefulSetPatch";

/** The BKPR target already running the sidecar that `manager` applied (an earlier `up`). */
function targetPatchedBy(manager: string): FakeCluster {
  const c = cluster();
  const sts = bkprStatefulSet() as Obj;
  (podSpec(sts).containers as Obj[]).push({ name: "ptm-rsync", image: DEFAULT_SIDECAR_IMAGE });
  (sts.metadata as Obj).managedFields = [
    { manager: "kubectl-client-side-apply", operation: "Update", fieldsV1: { "f:spec": {} } },
    {
      manager,
      operation: "Apply",
      fieldsV1: {
        "f:spec": {
          "f:template": {
            "f:spec": {
              "f:containers": {
                'k:{"name":"prometheus"}': { ".": {}, "f:name": {} },
                'k:{"name":"ptm-rsync"}': { ".": {}, "f:name": {}, "f:image": {} },
              },
            },
          },
        },
      },
    },
  ];
  c.objects["statefulset/kubeprod/prometheus"] = sts;
  return c;
}

describe("program: one field manager for every patch (issue 22)", () => {
  it("both patches apply as prometheus-tsdb-migration", async () => {
    const r = await runProgram(prepare, cluster());
    for (const t of [DEPLOYMENT, STATEFULSET]) {
      assert.equal(
        annotations(one(r, t).inputs)["pulumi.com/patchFieldManager"],
        "prometheus-tsdb-migration",
      );
    }
  });

  it("a patch an earlier version made keeps its provider-named manager until the revert", async () => {
    const r = await runProgram(prepare, targetPatchedBy("pulumi-kubernetes-5e1f0c2a"));
    assert.equal(
      annotations(one(r, STATEFULSET).inputs)["pulumi.com/patchFieldManager"],
      "pulumi-kubernetes-5e1f0c2a",
    );
    // the other side, patched for the first time, gets the fixed name
    assert.equal(
      annotations(one(r, DEPLOYMENT).inputs)["pulumi.com/patchFieldManager"],
      "prometheus-tsdb-migration",
    );
  });

  it("a patch this version made keeps the fixed name", async () => {
    const r = await runProgram(prepare, targetPatchedBy("prometheus-tsdb-migration"));
    assert.equal(
      annotations(one(r, STATEFULSET).inputs)["pulumi.com/patchFieldManager"],
      "prometheus-tsdb-migration",
    );
  });
});

describe("program: the revert finds the target by this version's labels or an earlier one's (issue 22)", () => {
  const cases = [
    { name: "this version's", domain: "prometheus-tsdb-migration.github.io" },
    {
      name: "an earlier version's (prometheus-tsdb-migration.io)",
      domain: "prometheus-tsdb-migration.io",
    },
  ];
  for (const tc of cases) {
    it(`a target with ${tc.name} labels, its config gone`, async () => {
      const c: FakeCluster = cluster();
      const sts = bkprStatefulSet() as Obj;
      sts.metadata = {
        name: "prom",
        namespace: "observability",
        labels: { [`${tc.domain}/patched-by`]: "test", [`${tc.domain}/role`]: "target" },
      };
      (podSpec(sts).containers as Obj[]).push({ name: "ptm-rsync", image: DEFAULT_SIDECAR_IMAGE });
      c.objects["statefulset/observability/prom"] = sts;
      c.exec = {
        "ptm-rsync:probe": JSON.stringify({
          ...targetProbe(),
          blocks: [block("01AAAAAAAAAAAAAAAAAAAAAAA3", 4, 6)],
          tsdb: { minTime: T0 + 5 * H, maxTime: T0 + 7 * H, numSeries: 10 },
        }),
      };
      await assert.rejects(
        runProgram({}, c),
        /:phase: reverting now removes the target's sidecar .* \(the target is StatefulSet observability\/prom\)/,
      );
    });
  }
});

describe("program: sidecarResources (issue 22)", () => {
  it("by default each sidecar has requests and limits", async () => {
    const r = await runProgram(prepare, cluster());
    for (const t of [DEPLOYMENT, STATEFULSET]) {
      assert.deepEqual(sidecarOf(one(r, t).inputs).resources, {
        requests: { cpu: "10m", memory: "32Mi" },
        limits: { cpu: "1", memory: "256Mi" },
      });
    }
  });

  it("the configured ones go into both sidecars", async () => {
    const sidecarResources = { requests: { cpu: "50m" }, limits: { cpu: "2", memory: "512Mi" } };
    const r = await runProgram({ ...prepare, sidecarResources }, cluster());
    for (const t of [DEPLOYMENT, STATEFULSET]) {
      assert.deepEqual(sidecarOf(one(r, t).inputs).resources, sidecarResources);
    }
  });

  it("a bad quantity is refused before anything is declared, naming the key", async () => {
    await assert.rejects(
      runProgram({ ...prepare, sidecarResources: { limits: { memory: "lots" } } }, cluster()),
      /prometheus-tsdb-migration:sidecarResources\.limits\.memory: "lots" is not a Kubernetes quantity/,
    );
  });
});

describe("program: imagePullSecrets (issue 22)", () => {
  it("unset: the patches leave the pods' imagePullSecrets alone", async () => {
    const r = await runProgram(prepare, cluster());
    for (const t of [DEPLOYMENT, STATEFULSET]) {
      assert.equal(podSpec(one(r, t).inputs).imagePullSecrets, undefined);
    }
  });

  it("added after the pod's own, which are named only (the patch owns just what it adds)", async () => {
    const c = cluster();
    const dep = sourceDeployment() as Obj;
    podSpec(dep).imagePullSecrets = [{ name: "helm-pull" }];
    c.objects["deployment/monitoring/prometheus-server"] = dep;
    const r = await runProgram({ ...prepare, imagePullSecrets: ["regcred"] }, c);
    assert.deepEqual(podSpec(one(r, DEPLOYMENT).inputs).imagePullSecrets, [
      { name: "helm-pull" },
      { name: "regcred" },
    ]);
    assert.deepEqual(podSpec(one(r, STATEFULSET).inputs).imagePullSecrets, [{ name: "regcred" }]);
  });

  it("a bad Secret name is refused, naming the key", async () => {
    await assert.rejects(
      runProgram({ ...prepare, imagePullSecrets: ["Reg_Cred"] }, cluster()),
      /prometheus-tsdb-migration:imagePullSecrets\[0\]: "Reg_Cred" is not a Secret name/,
    );
  });

  it("sidecarMode ephemeral can't add them to running pods: refused, naming the key", async () => {
    await assert.rejects(
      runProgram(
        { ...prepare, sidecarMode: "ephemeral", imagePullSecrets: ["regcred"] },
        { ...cluster(), ephemeral: {} },
      ),
      /prometheus-tsdb-migration:imagePullSecrets: regcred not in the imagePullSecrets of the source's pods/,
    );
  });
});

describe("program: Events of the prepare phase (issue 22)", () => {
  const cases = [
    {
      side: "source-rsync-daemon",
      workload: "'event' 'monitoring' 'deployment' 'prometheus-server'",
      kind: "Deployment",
    },
    {
      side: "target-rsync-client",
      workload: "'event' 'kubeprod' 'statefulset' 'prometheus'",
      kind: "StatefulSet",
    },
  ];
  for (const tc of cases) {
    it(`${tc.side}: MigrationPrepared once the sidecar runs, MigrationReverted after the patch goes`, async () => {
      const r = await runProgram(prepare, cluster());
      // Named after the component ("migration", index.ts), as the step is.
      const seq = (n: string) => one(r, "command:local:Command", `migration-${n}`).seq;
      const prepared = one(r, "command:local:Command", `migration-${tc.side}-event`).inputs as Obj;
      assert.ok(String(prepared.create).includes(tc.workload), String(prepared.create));
      const event = JSON.parse((prepared.environment as Obj).PTM_EVENT as string);
      assert.equal(event.reason, "MigrationPrepared");
      assert.equal(event.involvedObject.kind, tc.kind);
      assert.ok(seq(`${tc.side}-event`) > seq(`${tc.side}-rollout`));
      // delete-only, and declared before the settle and the patch: deleted after them
      const reverted = one(r, "command:local:Command", `migration-${tc.side}-reverted-event`)
        .inputs as Obj;
      assert.equal(reverted.create, undefined);
      assert.ok(String(reverted.delete).includes(tc.workload));
      assert.equal(
        JSON.parse((reverted.environment as Obj).PTM_EVENT as string).reason,
        "MigrationReverted",
      );
      assert.ok(seq(`${tc.side}-reverted-event`) < seq(`${tc.side}-settle`));
    });
  }
});
