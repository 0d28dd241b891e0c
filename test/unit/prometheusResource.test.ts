import * as assert from "node:assert/strict";
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
import * as fs from "node:fs";
import { parseConfig, WorkloadRef } from "../../components/decisions/config";
import {
  chooseSourcePod,
  locatePrometheus,
  podLocations,
  PrometheusObject,
  rsyncSelector,
} from "../../components/decisions/prometheusResource";
import { preflight, WorkloadObject } from "../../components/decisions/workload";
import {
  generatedStatefulSet,
  KPS_NAME,
  kpsObjects,
  kpsPrometheus,
  KpsOptions,
  kpsRef,
} from "../fixtures/prometheusOperator";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { line, snapshotOf, SOURCE_BLOCKS, sourceProbe, T0, targetProbe } from "../fixtures/probes";
import { byType, FakeCluster, one, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const H = 3_600_000;
const STS = `prometheus-${KPS_NAME}`;
const ref = (key: "source" | "target", o: Obj = {}): WorkloadRef =>
  parseConfig({
    phase: "prepare",
    source: key === "source" ? { ...kpsRef(), ...o } : SOURCE_CONFIG,
    target: key === "target" ? { ...kpsRef(), ...o } : undefined,
  })[key];
const shape = (o: KpsOptions = {}) => {
  const p = kpsPrometheus(o);
  return { p: p as PrometheusObject, sts: generatedStatefulSet(p) as WorkloadObject };
};

describe("Prometheus resource: where the TSDB is (issue 11)", () => {
  it("the generated StatefulSet's db volume, subPath prometheus-db, at /prometheus, as user 1000", () => {
    const { p, sts } = shape();
    const loc = locatePrometheus("target", ref("target"), p, sts);
    assert.equal(loc.volume, `${STS}-db`);
    assert.equal(loc.volumeKind, "volumeClaimTemplate");
    assert.equal(loc.subPath, "prometheus-db");
    assert.equal(loc.mountPath, "/prometheus");
    assert.equal(loc.dataPath, "/prometheus");
    assert.equal(loc.url, "http://localhost:9090");
    assert.deepEqual(loc.securityContext, {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
    });
    assert.equal(loc.ref.kind, "Prometheus");
    assert.deepEqual(loc.workload, { ...ref("target"), kind: "StatefulSet", name: STS });
    assert.deepEqual(
      loc.pods!.map((x) => x.pod),
      [`${STS}-0`],
    );
  });

  it("a named volumeClaimTemplate: the volume is derived, not assumed", () => {
    const { p, sts } = shape({
      storage: { volumeClaimTemplate: { metadata: { name: "data" }, spec: {} } },
    });
    assert.equal(locatePrometheus("target", ref("target"), p, sts).volume, "data");
  });

  it("disableMountSubPath: no subPath", () => {
    const { p, sts } = shape({
      storage: { disableMountSubPath: true, volumeClaimTemplate: { spec: {} } },
    });
    assert.equal(locatePrometheus("target", ref("target"), p, sts).subPath, undefined);
  });

  it("no storage (an emptyDir) is refused: the sidecar's rollout would erase it", () => {
    const { p, sts } = shape({ storage: null });
    const loc = locatePrometheus("target", ref("target"), p, sts);
    assert.throws(() => preflight("target", loc, sts), /:target\.volume: .* on emptyDir volume/);
  });

  it("the admin API as the operator renders spec.enableAdminAPI", () => {
    const on = shape({ enableAdminAPI: true });
    const off = shape();
    assert.equal(locatePrometheus("source", ref("source"), on.p, on.sts).adminApi, true);
    assert.equal(locatePrometheus("source", ref("source"), off.p, off.sts).adminApi, false);
  });
});

describe("Prometheus resource: what is refused (issue 11)", () => {
  it("shards > 1, with the reason", () => {
    const { p, sts } = shape({ shards: 3 });
    assert.throws(
      () => locatePrometheus("target", ref("target"), p, sts),
      /:target\.name: Prometheus monitoring\/kube-prometheus-stack-prometheus has spec\.shards 3: .*copying all history into every shard would duplicate every series/,
    );
    assert.throws(() => locatePrometheus("source", ref("source"), p, sts), /spec\.shards 3/);
  });

  it("a paused resource", () => {
    const { p, sts } = shape({ paused: true });
    assert.throws(() => locatePrometheus("target", ref("target"), p, sts), /is paused/);
  });

  it("a resource that does not exist, naming the CRD", () => {
    assert.throws(
      () => locatePrometheus("target", ref("target"), undefined, undefined),
      /:target\.name: Prometheus monitoring\/kube-prometheus-stack-prometheus does not exist .*prometheuses\.monitoring\.coreos\.com/,
    );
  });

  it("no generated StatefulSet yet: is the operator running?", () => {
    const { p } = shape();
    assert.throws(
      () => locatePrometheus("target", ref("target"), p, undefined),
      /has no StatefulSet .* is prometheus-operator running/,
    );
  });

  it("a namesake StatefulSet that another resource controls", () => {
    const { p, sts } = shape();
    (sts.metadata!.ownerReferences![0] as { uid: string }).uid = "other";
    assert.throws(() => locatePrometheus("target", ref("target"), p, sts), /is not controlled by/);
  });

  it("the generated StatefulSet named as a StatefulSet: refused, with the way through the resource", () => {
    const { p, sts } = shape();
    const stsRef = { ...ref("target"), kind: "StatefulSet" as const, name: STS };
    const loc = locatePrometheus("target", ref("target"), p, sts);
    assert.throws(
      () => preflight("target", { ...loc, ref: stsRef }, sts),
      /managed by Prometheus kube-prometheus-stack-prometheus .* set target\.kind to Prometheus and target\.name to kube-prometheus-stack-prometheus/,
    );
  });

  it("target.pod is refused: every replica gets the blocks", () => {
    assert.throws(
      () =>
        parseConfig({
          phase: "prepare",
          source: SOURCE_CONFIG,
          target: { ...kpsRef(), pod: "x-0" },
        }),
      /:target\.pod: is for the source only/,
    );
  });

  it("source.pod on a Deployment is refused", () => {
    assert.throws(
      () => parseConfig({ phase: "prepare", source: { ...SOURCE_CONFIG, pod: "p-1" } }),
      /:source\.pod: names a pod of a Deployment/,
    );
  });
});

describe("Prometheus resource: replicas (issue 11)", () => {
  const ready = (name: string, ok = true) => ({
    metadata: { name },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ok ? "True" : "False" }] },
  });

  it("a target with replicas 3: every replica is a pod the steps run in", () => {
    const { p, sts } = shape({ replicas: 3 });
    const loc = locatePrometheus("target", ref("target"), p, sts);
    assert.equal(loc.replicas, 3);
    const at = podLocations(loc);
    assert.deepEqual(
      at.map((x) => `${x.ref.kind}/${x.ref.name}/${x.ref.pod}`),
      [0, 1, 2].map((i) => `StatefulSet/${STS}/${STS}-${i}`),
    );
    // each keeps the TSDB location
    assert.ok(at.every((x) => x.volume === `${STS}-db` && x.dataPath === "/prometheus"));
  });

  it("a source with replicas 2 is read from its first replica, when Ready", () => {
    const { p, sts } = shape({ replicas: 2 });
    const pods = [ready(`${STS}-0`), ready(`${STS}-1`)];
    const loc = locatePrometheus("source", ref("source"), p, sts, pods);
    assert.deepEqual(
      loc.pods!.map((x) => x.pod),
      [`${STS}-0`],
    );
    // the rsync Service selects that pod only
    assert.equal(rsyncSelector(loc)["statefulset.kubernetes.io/pod-name"], `${STS}-0`);
  });

  it("source.pod chooses the replica", () => {
    const { p, sts } = shape({ replicas: 2 });
    const pods = [ready(`${STS}-0`), ready(`${STS}-1`)];
    const loc = locatePrometheus("source", ref("source", { pod: `${STS}-1` }), p, sts, pods);
    assert.deepEqual(
      loc.pods!.map((x) => x.pod),
      [`${STS}-1`],
    );
  });

  it("refuses a first replica that is not Ready, naming source.pod and the Ready ones", () => {
    const names = [`${STS}-0`, `${STS}-1`];
    assert.throws(
      () => chooseSourcePod(ref("source"), names, [ready(names[0], false), ready(names[1])]),
      new RegExp(
        `:source\\.pod: .* the first, ${names[0]}, is not Ready: set source\\.pod .*\\(Ready replicas: ${names[1]}\\)`,
      ),
    );
    assert.throws(
      () => chooseSourcePod(ref("source", { pod: names[0] }), names, [ready(names[0], false)]),
      /:source\.pod: replica .* is not Ready; Ready replicas: none/,
    );
    assert.throws(
      () => chooseSourcePod(ref("source", { pod: "other-0" }), names, []),
      /:source\.pod: "other-0" is not a replica of/,
    );
  });

  it("one replica: the Service keeps the pod labels as they are", () => {
    const { p, sts } = shape();
    const loc = locatePrometheus("source", ref("source"), p, sts);
    assert.deepEqual(rsyncSelector(loc), loc.podLabels);
  });
});

// ---------------------------------------------------------------- the program, under mocks

function withTarget(o: KpsOptions = {}): FakeCluster {
  const c: FakeCluster = cluster();
  Object.assign(c.objects, kpsObjects(o));
  return c;
}
const TARGET = kpsRef();
const commandsNamed = (r: Awaited<ReturnType<typeof runProgram>>, name: RegExp) =>
  byType(r, "command:local:Command").filter((x) => name.test(x.name));

describe("program: a Prometheus resource as the target (issue 11)", () => {
  it("prepare: the sidecar goes into the resource, not into its StatefulSet", async () => {
    const r = await runProgram(
      { phase: "prepare", source: SOURCE_CONFIG, target: TARGET },
      withTarget(),
    );
    assert.equal(byType(r, "kubernetes:apps/v1:StatefulSetPatch").length, 0);
    const [patch] = commandsNamed(r, /^migration-target-rsync-client-resource$/);
    assert.match(
      String(patch.inputs.create),
      /'prometheus-resource' 'add-sidecar' 'monitoring' 'kube-prometheus-stack-prometheus'/,
    );
    assert.match(
      String(patch.inputs.delete),
      /'prometheus-resource' 'remove-sidecar' 'monitoring' 'kube-prometheus-stack-prometheus' 'prometheus-kube-prometheus-stack-prometheus' '600'/,
    );
    const env = patch.inputs.environment as Record<string, string>;
    const c = JSON.parse(env.PTM_CONTAINER) as Obj;
    assert.equal(c.name, "ptm-rsync");
    // the operator's volume, derived from its StatefulSet
    assert.deepEqual((c.volumeMounts as Obj[])[0], {
      name: `${STS}-db`,
      mountPath: "/prometheus",
      subPath: "prometheus-db",
    });
    // the operator's security settings: a read-only root filesystem, no capabilities
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
    });
    assert.deepEqual(JSON.parse(env.PTM_VOLUME), {
      name: "ptm-scratch",
      emptyDir: { sizeLimit: "256Mi" },
    });
    assert.equal(
      env.PTM_LABELS,
      "prometheus-tsdb-migration.github.io/patched-by=test prometheus-tsdb-migration.github.io/role=target",
    );
    // the keys an earlier version wrote, removed too at the revert when present
    assert.equal(
      env.PTM_LEGACY_LABELS,
      "prometheus-tsdb-migration.io/patched-by=test prometheus-tsdb-migration.io/role=target",
    );
    // the rollout waits for the operator's StatefulSet to carry the container, then for every replica
    const [rollout] = commandsNamed(r, /^migration-target-rsync-client-rollout$/);
    assert.match(
      String(rollout.inputs.create),
      /'wait-generated' 'monitoring' 'kube-prometheus-stack-prometheus' 'prometheus-kube-prometheus-stack-prometheus' 'has-container' 'ptm-rsync' '600' && .*'rollout-watch' 'monitoring' 'statefulset' 'prometheus-kube-prometheus-stack-prometheus' 'ptm-rsync'/,
    );
  });

  it("the revert removes exactly what it added: the script takes the element out by name, not the list", () => {
    // prometheus-resource.sh: a JSON patch per element (test + remove at its index), the list
    // only when add-sidecar created it and nothing else is in it. Never SSA on the list.
    const sh = fs.readFileSync(
      `${__dirname}/../../components/cluster/prometheus-resource.sh`,
      "utf8",
    );
    assert.match(sh, /--type=json/);
    assert.doesNotMatch(sh, /--server-side|apply /);
    assert.match(sh, /"op":"test","path":"\/metadata\/resourceVersion"/);
  });

  it("shards > 1 is refused before anything is declared", async () => {
    await assert.rejects(
      runProgram(
        { phase: "prepare", source: SOURCE_CONFIG, target: TARGET },
        withTarget({ shards: 2 }),
      ),
      /:target\.name: .*spec\.shards 2/,
    );
  });

  it("migrate with replicas 2: each replica copies, installs and is verified, in its own pod", async () => {
    const c = withTarget({ replicas: 2 });
    const sts = c.objects[`statefulset/monitoring/${STS}`] as Obj;
    const tpl = ((sts.spec as Obj).template as Obj).spec as Obj;
    (tpl.containers as Obj[]).push({ name: "ptm-rsync", image: DEFAULT_SIDECAR_IMAGE });
    const dep = c.objects["deployment/monitoring/prometheus-server"] as Obj;
    (((dep.spec as Obj).template as Obj).spec as { containers: Obj[] }).containers.push({
      name: "ptm-rsyncd",
      image: "rsync",
    });
    const ULIDS = SOURCE_BLOCKS.map((b) => b.ulid);
    const windows = [2, 4, 5, 6].map((h) => ({ endMs: T0 + h * H, count: 2000 }));
    const health = {
      blocksLoaded: 3,
      reloadFailures: 0,
      compactionsFailed: 0,
      lowestTimestampMs: T0,
    };
    c.exec = {
      "ptm-rsyncd:probe": line(sourceProbe()),
      "ptm-rsync:probe": line(targetProbe()),
      "ptm-rsyncd:counts": line({ windows, health }),
      "ptm-rsync:counts": line({ windows, health, blocks: SOURCE_BLOCKS }),
      "ptm-rsyncd:snapshot-blocks": snapshotOf(SOURCE_BLOCKS, {
        createdMs: T0 + 7.5 * H,
        reused: false,
      }).listing,
    };
    c.commandStdout = {
      "migration-source-snapshot": snapshotOf(SOURCE_BLOCKS, {
        createdMs: T0 + 7.5 * H,
        reused: false,
      }).stdout,
      "migration-compaction-wait": line({ waitedSeconds: 0, newestMaxTime: T0 + 6 * H }),
    };
    for (const i of [0, 1]) {
      c.commandStdout[`migration-block-copy-replica-${i}`] = line({
        copied: ULIDS.length,
        skipped: 0,
        bytesCopied: 6e6,
        bytesTotal: 6e6,
      });
      c.commandStdout[`migration-block-install-replica-${i}`] = line({
        installed: ULIDS.length,
        alreadyPresent: 0,
      });
    }
    const r = await runProgram({ phase: "migrate", source: SOURCE_CONFIG, target: TARGET }, c);
    const names = byType(r, "command:local:Command").map((x) => x.name);
    for (const i of [0, 1]) {
      for (const step of ["migration-block-copy", "migration-block-install"]) {
        assert.ok(names.includes(`${step}-replica-${i}`), `${step} for replica ${i}: ${names}`);
      }
      assert.ok(
        r.resources.some(
          (x) =>
            x.type === "ptm:index:MigrationVerification" &&
            x.name === `migration-verification-replica-${i}`,
        ),
      );
    }
    assert.ok(!names.includes("migration-block-copy"));
    // every replica was probed, and is verified, in its own pod
    for (const i of [0, 1]) {
      for (const script of ["probe", "counts"]) {
        assert.ok(
          r.commands.some(
            (x) =>
              x.includes(`exec -n 'monitoring' 'pod/${STS}-${i}' -c 'ptm-rsync'`) &&
              x.includes(`'ptm-${script}'`),
          ),
          `${script} of replica ${i}`,
        );
      }
    }
    const copy1 = byType(r, "command:local:Command").find(
      (x) => x.name === "migration-block-copy-replica-1",
    )!;
    assert.match(String(copy1.inputs.create), new RegExp(`'pod/${STS}-1' -c 'ptm-rsync'`));
    const migration = r.outputs.migration as {
      replicas: { pod: string; verification: { ok: boolean } }[];
    };
    assert.deepEqual(
      migration.replicas.map((x) => [x.pod, x.verification.ok]),
      [
        [`${STS}-0`, true],
        [`${STS}-1`, true],
      ],
    );
  });
});

describe("program: a Prometheus resource as the source (issue 11)", () => {
  const SOURCE = kpsRef();
  const target = { namespace: "kubeprod", kind: "StatefulSet", name: "prometheus" };
  const sourceCluster = (o: KpsOptions = {}): FakeCluster => {
    const c: FakeCluster = cluster();
    delete c.objects["deployment/monitoring/prometheus-server"];
    Object.assign(c.objects, kpsObjects(o));
    return c;
  };

  it("includeHead goes through spec.enableAdminAPI, and back exactly as it was", async () => {
    const c = sourceCluster();
    const sts = c.objects[`statefulset/monitoring/${STS}`] as Obj;
    (((sts.spec as Obj).template as Obj).spec as { containers: Obj[] }).containers.push({
      name: "ptm-rsyncd",
      image: "rsync",
    });
    const r = await runProgram({ phase: "prepare", source: SOURCE, target, includeHead: true }, c);
    assert.equal(
      r.resources.filter((x) => x.type === "ptm:index:PrometheusAdminApiSwitch").length,
      1,
    );
    assert.equal(r.resources.filter((x) => x.type === "ptm:index:AdminApiSwitch").length, 0);
    const [sw] = commandsNamed(r, /^migration-source-admin-api$/);
    assert.match(
      String(sw.inputs.create),
      /'enable-admin-api' 'monitoring' 'kube-prometheus-stack-prometheus'$/,
    );
    assert.match(
      String(sw.inputs.delete),
      /'restore-admin-api' 'monitoring' 'kube-prometheus-stack-prometheus' 'prometheus-kube-prometheus-stack-prometheus' '600'$/,
    );
    const [wait] = commandsNamed(r, /^migration-source-admin-api-rollout$/);
    assert.match(String(wait.inputs.create), /'has-flag' '--web\.enable-admin-api'/);
  });

  it("replicas 2: the rsync Service selects the replica read; source.pod picks another", async () => {
    const r0 = await runProgram(
      { phase: "prepare", source: SOURCE, target },
      sourceCluster({ replicas: 2 }),
    );
    const svc0 = byType(r0, "kubernetes:core/v1:Service")[0];
    assert.equal(
      ((svc0.inputs.spec as Obj).selector as Obj)["statefulset.kubernetes.io/pod-name"],
      `${STS}-0`,
    );
    const r1 = await runProgram(
      { phase: "prepare", source: { ...SOURCE, pod: `${STS}-1` }, target },
      sourceCluster({ replicas: 2 }),
    );
    const svc1 = byType(r1, "kubernetes:core/v1:Service")[0];
    assert.equal(
      ((svc1.inputs.spec as Obj).selector as Obj)["statefulset.kubernetes.io/pod-name"],
      `${STS}-1`,
    );
  });

  it("replicas 2 with the first not Ready: refused, naming source.pod", async () => {
    const c = sourceCluster({ replicas: 2 });
    c.notReady = [`${STS}-0`];
    await assert.rejects(
      runProgram({ phase: "prepare", source: SOURCE, target }, c),
      new RegExp(`:source\\.pod: .*Ready replicas: ${STS}-1`),
    );
  });
});

describe("program: the destroy guard on a Prometheus resource target (issue 9 item 12)", () => {
  it("checks the generated StatefulSet's template and every replica's pod", async () => {
    const r = await runProgram(
      { phase: "prepare", source: SOURCE_CONFIG, target: TARGET },
      withTarget({ replicas: 2 }),
    );
    const guard = one(r, "command:local:Command", "migration-target-restart-guard");
    assert.match(
      String(guard.inputs.delete),
      new RegExp(
        `'restart-guard' 'monitoring' 'statefulset' '${STS}' 'pod/${STS}-0,pod/${STS}-1' 'ptm-rsync' 'prometheus' `,
      ),
    );
  });
});
