// Issue 20 row 9: the revert's restart check probes every replica of a multi-replica target,
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
// as the destroy guard (restart-guard.sh) does; each replica restarts when the sidecar goes.

import * as assert from "node:assert/strict";
import { WorkloadRef } from "../../components/decisions/config";
import { WorkloadObject } from "../../components/decisions/workload";
import { ProbeResult } from "../../components/decisions/sidecarOutput";
import { KPS_NAME, kpsObjects, kpsRef } from "../fixtures/prometheusOperator";
import { block, T0, targetProbe } from "../fixtures/probes";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { goneSourceAdvice } from "../../components/prometheusTsdbMigration";
import { FakeCluster, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const H = 3_600_000;
const STS = `prometheus-${KPS_NAME}`;
const NS = "monitoring";

/** A probe of a replica with an imported block (4h..6h) and this head. */
const probeWith = (minH: number, maxH: number) =>
  JSON.stringify({
    ...targetProbe(),
    blocks: [block("01AAAAAAAAAAAAAAAAAAAAAAA3", 4, 6)],
    tsdb: { minTime: T0 + minH * H, maxTime: T0 + maxH * H, numSeries: 10 },
  });
const SAFE = probeWith(6, 8);
const AT_RISK = probeWith(5, 7);

/**
 * A `Prometheus` target with `replicas` pods whose generated StatefulSet still carries the
 * sidecar and this stack's labels; `exec` answers the probes, per pod.
 */
function patchedTarget(replicas: number, exec: Record<string, string>): FakeCluster {
  const c: FakeCluster = cluster();
  Object.assign(c.objects, kpsObjects({ replicas }));
  const sts = c.objects[`statefulset/${NS}/${STS}`] as Obj;
  (sts.metadata as Obj).labels = {
    "prometheus-tsdb-migration.github.io/patched-by": "test",
    "prometheus-tsdb-migration.github.io/role": "target",
  };
  (sts.spec as Obj).replicas = replicas;
  const tpl = ((sts.spec as Obj).template as Obj).spec as Obj;
  (tpl.containers as Obj[]).push({ name: "ptm-rsync", image: DEFAULT_SIDECAR_IMAGE });
  c.exec = exec;
  return c;
}
const config = { source: SOURCE_CONFIG, target: kpsRef() };
const probeKey = (i: number, container = "ptm-rsync") => `pod/${STS}-${i}:${container}:probe`;

describe("issue 20 row 9: the revert's restart check probes every replica of the target", () => {
  it("the second of two replicas at risk: refused, naming that pod", async () => {
    const c = patchedTarget(2, { [probeKey(0)]: SAFE, [probeKey(1)]: AT_RISK });
    await assert.rejects(
      runProgram(config, c),
      new RegExp(
        `:phase: reverting now removes the target's sidecar and so restarts it, which would drop its own samples from .* Revert after .*forceRevert .*\\(the target is StatefulSet ${NS}/${STS}, pod ${STS}-1\\)`,
      ),
    );
  });

  it("every replica safe: reverted, after probing each pod by name", async () => {
    const c = patchedTarget(2, { [probeKey(0)]: SAFE, [probeKey(1)]: SAFE });
    const r = await runProgram(config, c);
    assert.equal(r.outputs.phase, "reverted");
    for (const i of [0, 1]) {
      assert.ok(
        r.commands.some((x) =>
          x.startsWith(`kubectl exec -n '${NS}' 'pod/${STS}-${i}' -c 'ptm-rsync' `),
        ),
        r.commands.join("\n"),
      );
    }
  });

  it("a replica that can't be probed (sidecar nor Prometheus container): refused, naming it", async () => {
    const c = patchedTarget(3, { [probeKey(0)]: SAFE, [probeKey(2)]: SAFE });
    await assert.rejects(
      runProgram(config, c),
      new RegExp(
        `:phase: reverting removes the target's sidecar and so restarts it, and whether that drops any of its own samples can't be checked now: .*${STS}-1.*set forceRevert to true`,
      ),
    );
  });

  it("a replica whose sidecar never started is probed through its Prometheus container", async () => {
    const c = patchedTarget(2, { [probeKey(0)]: SAFE, [probeKey(1, "prometheus")]: AT_RISK });
    await assert.rejects(runProgram(config, c), new RegExp(`pod ${STS}-1\\)`));
  });

  it("a target scaled to 0: no pod restarts, the revert goes ahead without a probe", async () => {
    const r = await runProgram(config, patchedTarget(0, {}));
    assert.equal(r.outputs.phase, "reverted");
    assert.ok(!r.commands.some((x) => x.startsWith("kubectl exec")), r.commands.join("\n"));
  });

  it("forceRevert: no probe at all", async () => {
    const r = await runProgram(
      { ...config, forceRevert: true },
      patchedTarget(2, { [probeKey(1)]: AT_RISK }),
    );
    assert.equal(r.outputs.phase, "reverted");
  });
});

describe("which pods the revert probes (decisions/revertCheck.ts replicaRefs)", () => {
  const ref = (kind: WorkloadRef["kind"], name = "prom"): WorkloadRef => ({
    namespace: "ns",
    kind,
    name,
    container: "",
  });
  const live = (spec: Obj): WorkloadObject => ({ spec }) as unknown as WorkloadObject;
  const cases: { name: string; ref: WorkloadRef; live: WorkloadObject; pods: (string | null)[] }[] =
    [
      {
        name: "a Deployment: its one pod, as kubectl picks it",
        ref: ref("Deployment"),
        live: live({ replicas: 1 }),
        pods: [null],
      },
      {
        name: "a StatefulSet with one replica: as before, by the workload",
        ref: ref("StatefulSet"),
        live: live({ replicas: 1 }),
        pods: [null],
      },
      {
        name: "a StatefulSet with 3 replicas: each pod by name",
        ref: ref("StatefulSet"),
        live: live({ replicas: 3 }),
        pods: ["prom-0", "prom-1", "prom-2"],
      },
      {
        name: "ordinals.start 5, 2 replicas",
        ref: ref("StatefulSet"),
        live: live({ replicas: 2, ordinals: { start: 5 } }),
        pods: ["prom-5", "prom-6"],
      },
      {
        name: "a StatefulSet scaled to 0: nothing restarts",
        ref: ref("StatefulSet"),
        live: live({ replicas: 0 }),
        pods: [],
      },
      {
        name: "a Deployment scaled to 0: nothing restarts",
        ref: ref("Deployment"),
        live: live({ replicas: 0 }),
        pods: [],
      },
    ];
  for (const tc of cases) {
    it(tc.name, async () => {
      // Imported here: the module is new with this row (the test was written first).
      const { replicaRefs } = await import("../../components/decisions/revertCheck");
      const got = replicaRefs(tc.ref, tc.live);
      assert.deepEqual(
        got.map((r) => r.pod ?? null),
        tc.pods,
      );
      for (const r of got) assert.equal(r.name, tc.ref.name);
    });
  }
});

describe("the revert's verdict over every replica (decisions/revertCheck.ts revertVerdict)", () => {
  const sts: WorkloadRef = { namespace: "ns", kind: "StatefulSet", name: "p", container: "" };
  const at = (pod: string): WorkloadRef => ({ ...sts, pod });
  const probe = (s: string) => JSON.parse(s) as ProbeResult;
  const verdict = async (states: { ref: WorkloadRef; probe?: ProbeResult; why?: string }[]) => {
    const { revertVerdict } = await import("../../components/decisions/revertCheck");
    return revertVerdict(sts, states);
  };

  it("all safe: go", async () => {
    assert.deepEqual(
      await verdict([
        { ref: at("p-0"), probe: probe(SAFE) },
        { ref: at("p-1"), probe: probe(SAFE) },
      ]),
      { action: "go" },
    );
  });

  it("no replica at all (scaled to 0): go", async () => {
    assert.deepEqual(await verdict([]), { action: "go" });
  });

  it("one at risk: refuse, naming it and when it is safe", async () => {
    const v = await verdict([
      { ref: at("p-0"), probe: probe(SAFE) },
      { ref: at("p-1"), probe: probe(AT_RISK) },
    ]);
    assert.equal(v.action, "refuse");
    assert.match(
      v.action === "refuse" ? v.message : "",
      /^reverting now removes the target's sidecar and so restarts it, which would drop its own samples from .* Revert after .*\(the target is StatefulSet ns\/p, pod p-1\)$/,
    );
  });

  it("one can't be checked: refuse, naming it and why", async () => {
    const v = await verdict([
      { ref: at("p-0"), why: "kubectl exec failed (exit 1)" },
      { ref: at("p-1"), probe: probe(SAFE) },
    ]);
    assert.equal(v.action, "refuse");
    assert.match(
      v.action === "refuse" ? v.message : "",
      /^reverting removes the target's sidecar and so restarts it, and whether that drops any of its own samples can't be checked now: pod p-0 of StatefulSet ns\/p: kubectl exec failed \(exit 1\)\. Fix that/,
    );
  });

  it("a head that wasn't reported is not a 'safe'", async () => {
    const v = await verdict([{ ref: at("p-0"), probe: { ...probe(SAFE), tsdb: null } }]);
    assert.match(
      v.action === "refuse" ? v.message : "",
      /can't be checked now: the target's Prometheus did not answer \/api\/v1\/status\/tsdb \(StatefulSet ns\/p, pod p-0\)/,
    );
  });

  it("a head that wasn't reported says why, as the probe heard it (issue 21 item 6)", async () => {
    const why = "wget: server returned error: HTTP/1.1 401 Unauthorized";
    const v = await verdict([
      { ref: at("p-0"), probe: { ...probe(SAFE), tsdb: null, apiErrors: { tsdb: why } } },
    ]);
    assert.match(
      v.action === "refuse" ? v.message : "",
      /did not answer \/api\/v1\/status\/tsdb \(StatefulSet ns\/p, pod p-0\): wget: server returned error: HTTP\/1\.1 401 Unauthorized; it asks for credentials/,
    );
  });

  it("at risk and unchecked replicas: the risk first, the others named too", async () => {
    const v = await verdict([
      { ref: at("p-0"), why: "kubectl exec failed" },
      { ref: at("p-1"), probe: probe(AT_RISK) },
      { ref: at("p-2"), probe: probe(AT_RISK) },
    ]);
    assert.match(
      v.action === "refuse" ? v.message : "",
      /^reverting now removes .*\(the target is StatefulSet ns\/p, pod p-1\); also refusing: pod p-2 \(at risk\), pod p-0 \(can't be checked\)$/,
    );
  });
});

describe("which workload the revert checks (decisions/revertCheck.ts revertWorkload)", () => {
  it("a `Prometheus` config: its generated StatefulSet, where the sidecar is", async () => {
    const { revertWorkload } = await import("../../components/decisions/revertCheck");
    const ref: WorkloadRef = { namespace: NS, kind: "Prometheus", name: "k8s", container: "p" };
    assert.deepEqual(revertWorkload({ ...ref, pod: "prometheus-k8s-1" }), {
      ...ref,
      kind: "StatefulSet",
      name: "prometheus-k8s",
    });
    const sts: WorkloadRef = { ...ref, kind: "StatefulSet", name: "prom" };
    assert.deepEqual(revertWorkload(sts), sts);
  });

  it("the target config names the resource and no label is found: still every replica", async () => {
    const c = patchedTarget(2, { [probeKey(0)]: SAFE, [probeKey(1)]: AT_RISK });
    delete ((c.objects[`statefulset/${NS}/${STS}`] as Obj).metadata as Obj).labels;
    await assert.rejects(runProgram(config, c), new RegExp(`pod ${STS}-1\\)`));
  });
});

describe("issue 23: the revert after the source workload was deleted", () => {
  it("goes on, and says which command drops the source's patch if the provider can't delete it", async () => {
    const c = patchedTarget(2, { [probeKey(0)]: SAFE, [probeKey(1)]: SAFE });
    delete c.objects["deployment/monitoring/prometheus-server"];
    const r = await runProgram(config, c);
    assert.equal(r.outputs.phase, "reverted");
    assert.match(
      goneSourceAdvice(
        { namespace: "monitoring", kind: "Deployment", name: "prometheus-server" } as WorkloadRef,
        "migration-source-rsync-daemon",
      ),
      /^Deployment monitoring\/prometheus-server does not exist any more\. .*pulumi stack export \| jq '\(\.deployment\.resources\[\] \| select\(\.type == "kubernetes:apps\/v1:DeploymentPatch" and \(\.urn \| endswith\("::migration-source-rsync-daemon"\)\)\)\)\.retainOnDelete = true' \| pulumi stack import$/,
    );
  });
});
