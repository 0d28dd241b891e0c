import * as assert from "node:assert/strict";
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
import * as pulumi from "@pulumi/pulumi";
import {
  bkprStatefulSet,
  cluster,
  HELM_LABELS,
  SOURCE_CONFIG,
  sourceDeployment,
} from "../fixtures/workloads";
import { block, line, sourceProbe, T0, targetProbe } from "../fixtures/probes";
import { byType, FakeCluster, one, runProgram } from "./harness";
import { sidecarScript } from "../../components/cluster/kubectl";

const PATCH_TYPES = ["kubernetes:apps/v1:DeploymentPatch", "kubernetes:apps/v1:StatefulSetPatch"];

type Obj = Record<string, unknown>;
const containersOf = (patch: Obj) =>
  (((patch.spec as Obj).template as Obj).spec as Obj).containers as Obj[];

const H = 3_600_000;

/**
 * A cluster whose target StatefulSet still runs the rsync sidecar, with an imported block
 * (4h..6h) and the given head: what the revert guard looks at. `sts` names another target.
 */
function targetWithSidecar(
  head?: { minTime: number; maxTime: number },
  sts: Obj = bkprStatefulSet() as Obj,
): FakeCluster {
  const c: FakeCluster = cluster();
  const meta = sts.metadata as { name: string; namespace: string };
  const spec = ((sts.spec as Obj).template as Obj).spec as Obj;
  (spec.containers as Obj[]).push({ name: "ptm-rsync", image: DEFAULT_SIDECAR_IMAGE });
  c.objects[`statefulset/${meta.namespace}/${meta.name}`] = sts;
  if (head) {
    c.exec = {
      "ptm-rsync:probe": JSON.stringify({
        ...targetProbe(),
        blocks: [block("01AAAAAAAAAAAAAAAAAAAAAAA3", 4, 6)],
        tsdb: { ...head, numSeries: 10 },
      }),
    };
  }
  return c;
}

describe("program: phase unset (revert)", () => {
  it("declares only the destroy guard, so every earlier resource is deleted", async () => {
    const r = await runProgram({ source: SOURCE_CONFIG }, cluster());
    onlyTheGuard(r);
    assert.equal(r.outputs.phase, "reverted");
    // After the RBAC check (test/unit/rbacProgram.test.ts), these reads only: whether the
    // source still exists (issue 23), the target by this stack's labels, and that target.
    assert.deepEqual(
      r.commands.filter((c) => !/^kubectl (auth |create -f - -o 'jsonpath=\{\.spec)/.test(c)),
      [
        "kubectl get deployment 'prometheus-server' -n 'monitoring' -o json --ignore-not-found --show-managed-fields",
        "kubectl get deployments,statefulsets -A -l 'prometheus-tsdb-migration.github.io/patched-by=test,prometheus-tsdb-migration.github.io/role=target' -o json",
        "kubectl get deployments,statefulsets -A -l 'prometheus-tsdb-migration.io/patched-by=test,prometheus-tsdb-migration.io/role=target' -o json",
        "kubectl get statefulset 'prometheus' -n 'kubeprod' -o json --ignore-not-found --show-managed-fields",
      ],
    );
  });

  it("guards the target the stack patched (its label), not the target config (issue 9 item 11)", async () => {
    // The user removed the `target` config before reverting: it defaults to BKPR's
    // kubeprod/prometheus, but the stack patched observability/prom, which still runs its
    // sidecar with an imported block newer than its head's start.
    const sts = bkprStatefulSet() as Obj;
    sts.metadata = {
      name: "prom",
      namespace: "observability",
      labels: {
        "prometheus-tsdb-migration.io/patched-by": "test",
        "prometheus-tsdb-migration.io/role": "target",
      },
    };
    const c = targetWithSidecar({ minTime: T0 + 5 * H, maxTime: T0 + 7 * H }, sts);
    await assert.rejects(
      runProgram({}, c),
      /:phase: reverting now removes the target's sidecar .* \(the target is StatefulSet observability\/prom\)/,
    );
  });

  it("needs no source either", async () => {
    const r = await runProgram({ phase: "" }, cluster());
    onlyTheGuard(r);
  });

  describe("when the target still has its sidecar", () => {
    const withSidecar = (head: { minTime: number; maxTime: number }) => targetWithSidecar(head);

    it("refuses while a restart would drop the target's unpersisted samples", async () => {
      await assert.rejects(
        runProgram({}, withSidecar({ minTime: T0 + 5 * H, maxTime: T0 + 7 * H })),
        /:phase: reverting now removes the target's sidecar and so restarts it, which would drop its own samples from .* Revert after .*forceRevert/,
      );
    });

    it("reverts once the target has compacted past the imported blocks", async () => {
      const r = await runProgram({}, withSidecar({ minTime: T0 + 6 * H, maxTime: T0 + 8 * H }));
      onlyTheGuard(r);
    });

    it("reverts anyway with forceRevert", async () => {
      const r = await runProgram(
        { forceRevert: true },
        withSidecar({ minTime: T0 + 5 * H, maxTime: T0 + 7 * H }),
      );
      onlyTheGuard(r);
    });
  });
});

describe("program: a check that can't look refuses (fail closed)", () => {
  it("refuses the revert when the restart-risk probe fails, and says why and what to do", async () => {
    await assert.rejects(
      runProgram({}, targetWithSidecar()),
      (e: Error) =>
        e instanceof pulumi.ResourceError &&
        /:phase: .*can't be checked now: probe of StatefulSet kubeprod\/prometheus \(container ptm-rsync\): kubectl exec failed \(exit 1: error: container ptm-rsync not found\).*set forceRevert to true/.test(
          e.message,
        ),
    );
  });

  it("a sidecar that never started: the check looks through the Prometheus container (issue 9 item 20)", async () => {
    const c = targetWithSidecar();
    c.exec = {
      "prometheus:probe": JSON.stringify({
        ...targetProbe(),
        blocks: [],
        tsdb: { minTime: T0, maxTime: T0 + H, numSeries: 10 },
      }),
    };
    const r = await runProgram({}, c);
    assert.equal(r.outputs.phase, "reverted");
    const viaProm = r.commands.find((x) => / -c 'prometheus' /.test(x));
    assert.ok(viaProm, r.commands.join("\n"));
    assert.match(viaProm, /'PTM_DATA=\/opt\/bitnami\/prometheus\/data'/);
  });

  it("a probe that can't read the head refuses instead of calling the revert safe", async () => {
    const c = targetWithSidecar();
    c.exec = { "ptm-rsync:probe": JSON.stringify({ ...targetProbe(), tsdb: null }) };
    await assert.rejects(
      runProgram({}, c),
      /:phase: .*can't be checked now: the target's Prometheus did not answer \/api\/v1\/status\/tsdb/,
    );
  });

  it("reverts without the check with forceRevert", async () => {
    const r = await runProgram({ forceRevert: true }, targetWithSidecar());
    assert.equal(r.outputs.phase, "reverted");
  });

  it("a kubectl that can't read the cluster is one clear error, not a stack trace", async () => {
    const c: FakeCluster = { ...cluster(), denied: ["statefulset/kubeprod/prometheus"] };
    await assert.rejects(
      runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c),
      (e: Error) =>
        e instanceof pulumi.ResourceError &&
        /^read StatefulSet kubeprod\/prometheus: `kubectl get statefulset 'prometheus' -n 'kubeprod' -o json --ignore-not-found --show-managed-fields` failed \(exit 1: Error from server \(Forbidden\).*\)\. Check that kubectl reaches the cluster/.test(
          e.message,
        ),
    );
  });

  it("migrate: a sidecar in the template that can't be probed fails with the reason", async () => {
    const c = targetWithSidecar();
    const dep = c.objects["deployment/monitoring/prometheus-server"] as Obj;
    const spec = ((dep.spec as Obj).template as Obj).spec as Obj;
    (spec.containers as Obj[]).push({ name: "ptm-rsyncd", image: "rsync" });
    await assert.rejects(
      runProgram({ phase: "migrate", source: SOURCE_CONFIG }, c),
      (e: Error) =>
        e instanceof pulumi.ResourceError &&
        /^probe of Deployment monitoring\/prometheus-server \(container ptm-rsyncd\): kubectl exec failed .*then run `pulumi up` again/.test(
          e.message,
        ),
    );
  });
});

describe("program: phase prepare", () => {
  it("adds the daemon, client, Service, NetworkPolicy and Secrets, nothing else", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const custom = r.resources.filter((x) => !x.type.startsWith("ptm:"));
    assert.deepEqual(custom.map((x) => x.type).sort(), [
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      // the Events: prepared (after each rollout) and reverted (deleted after each patch)
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "kubernetes:apps/v1:DeploymentPatch",
      "kubernetes:apps/v1:StatefulSetPatch",
      "kubernetes:core/v1:Secret",
      "kubernetes:core/v1:Secret",
      "kubernetes:core/v1:Service",
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    ]);
  });

  it("patches the source with a read-only rsync daemon on the TSDB volume, same subPath", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const patch = one(r, "kubernetes:apps/v1:DeploymentPatch").inputs;
    assert.deepEqual(patch.metadata, {
      name: "prometheus-server",
      namespace: "monitoring",
      annotations: {
        "pulumi.com/skipAwait": "true",
        "pulumi.com/patchFieldManager": "prometheus-tsdb-migration",
      },
      labels: {
        "prometheus-tsdb-migration.github.io/patched-by": "test",
        "prometheus-tsdb-migration.github.io/role": "source",
      },
    });
    const containers = containersOf(patch);
    // The workload's own containers are named, in live order, and claim nothing else.
    assert.deepEqual(containers.slice(0, -1), [
      { name: "prometheus-server-configmap-reload" },
      { name: "prometheus-server" },
    ]);
    const c = containers[containers.length - 1];
    assert.equal(c.name, "ptm-rsyncd");
    assert.deepEqual(c.volumeMounts, [
      { name: "storage-volume", mountPath: "/data" },
      { name: "ptm-scratch", mountPath: "/ptm-scratch" },
    ]);
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));
    assert.equal(env.PTM_DATA, "/data");
    assert.equal(env.PTM_PROM_URL, "http://localhost:9090");
    assert.deepEqual(env.PTM_RSYNC_PASSWORD, {
      secretKeyRef: { name: "ptm-rsync-test", key: "password" },
    });
    // The daemon's module is read-only: the script it runs says so.
    const script = (c.command as string[])[2];
    assert.match(script, /read only = (yes|true)/);
    assert.deepEqual(c.ports, [{ name: "ptm-rsync", containerPort: 8873, protocol: "TCP" }]);
    // Nothing else of the Deployment is in the patch: no args, no strategy, no labels.
    assert.deepEqual(Object.keys(patch.spec as Obj), ["template"]);
    assert.deepEqual(Object.keys((patch.spec as Obj).template as Obj), ["spec"]);
  });

  it("keeps its container last when it already runs, so a rerun shows no diff", async () => {
    const c = cluster();
    const dep = sourceDeployment() as Obj;
    const spec = ((dep.spec as Obj).template as Obj).spec as Obj;
    (spec.containers as Obj[]).push({ name: "ptm-rsyncd", image: "x" });
    c.objects["deployment/monitoring/prometheus-server"] = dep;
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c);
    const names = containersOf(one(r, "kubernetes:apps/v1:DeploymentPatch").inputs).map(
      (x) => x.name,
    );
    assert.deepEqual(names, [
      "prometheus-server-configmap-reload",
      "prometheus-server",
      "ptm-rsyncd",
    ]);
  });

  it("keeps the subPath of the Prometheus mount", async () => {
    const c = cluster();
    const dep = sourceDeployment() as Obj;
    const prom = ((((dep.spec as Obj).template as Obj).spec as Obj).containers as Obj[])[1];
    prom.volumeMounts = [
      { name: "storage-volume", mountPath: "/prometheus", subPath: "prom-data" },
    ];
    prom.args = ["--storage.tsdb.path=/prometheus"];
    c.objects["deployment/monitoring/prometheus-server"] = dep;
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c);
    const cont = containersOf(one(r, "kubernetes:apps/v1:DeploymentPatch").inputs)[2];
    assert.deepEqual(cont.volumeMounts, [
      { name: "storage-volume", mountPath: "/prometheus", subPath: "prom-data" },
      { name: "ptm-scratch", mountPath: "/ptm-scratch" },
    ]);
  });

  it("patches the BKPR target with an rsync client on its claim template volume, as user 1001", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const patch = one(r, "kubernetes:apps/v1:StatefulSetPatch").inputs;
    assert.deepEqual(patch.metadata, {
      name: "prometheus",
      namespace: "kubeprod",
      annotations: {
        "pulumi.com/skipAwait": "true",
        "pulumi.com/patchFieldManager": "prometheus-tsdb-migration",
      },
      labels: {
        "prometheus-tsdb-migration.github.io/patched-by": "test",
        "prometheus-tsdb-migration.github.io/role": "target",
      },
    });
    // BKPR's pod has two containers: Prometheus and its configmap-reload.
    const [own, reload, c] = containersOf(patch);
    assert.deepEqual(own, { name: "prometheus" });
    assert.deepEqual(reload, { name: "configmap-reload" });
    assert.equal(c.name, "ptm-rsync");
    assert.deepEqual(c.volumeMounts, [
      { name: "data", mountPath: "/opt/bitnami/prometheus/data" },
      { name: "ptm-scratch", mountPath: "/ptm-scratch" },
    ]);
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));
    assert.equal(env.PTM_DATA, "/opt/bitnami/prometheus/data");
    assert.deepEqual(env.RSYNC_PASSWORD, {
      secretKeyRef: { name: "ptm-rsync-test", key: "password" },
    });
    // BKPR sets runAsUser 1001 on the Prometheus container (fsGroup 1001 on the pod): copied.
    assert.deepEqual(c.securityContext, { runAsUser: 1001 });
    // Discovered from the server, not assumed: BKPR sets no --storage.tsdb.path (issue 10).
    const target = r.outputs.target as { sources: Record<string, string>; version: string };
    assert.match(
      target.sources.dataPath,
      /"data\/" in runtimeinfo CWD \/opt\/bitnami\/prometheus$/,
    );
    assert.equal(target.version, "2.26.0");
  });

  it("exposes the daemon on a ClusterIP Service, port 873 (appProtocol tcp), selecting only source pods", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const svc = one(r, "kubernetes:core/v1:Service").inputs;
    const spec = svc.spec as Obj;
    assert.equal(spec.type, "ClusterIP");
    assert.deepEqual(spec.selector, HELM_LABELS);
    // appProtocol tcp: rsync's daemon speaks first, which a mesh's protocol sniffing (Istio)
    // would wait on; declared, the mesh passes it through as plain TCP (mTLS included).
    assert.deepEqual(spec.ports, [
      { name: "rsync", port: 873, targetPort: 8873, protocol: "TCP", appProtocol: "tcp" },
    ]);
    assert.equal((svc.metadata as Obj).namespace, "monitoring");
    assert.equal(
      ((svc.metadata as Obj).labels as Obj)["app.kubernetes.io/name"],
      "prometheus-tsdb-migration",
    );
    assert.equal(r.outputs.rsyncUrl, "rsync://10.0.0.42:873");
  });

  it("admits only the target's pods to the daemon, and leaves other ports as open as before", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const np = one(r, "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs;
    const spec = np.spec as Obj;
    assert.deepEqual(spec.podSelector, {
      matchLabels: HELM_LABELS,
    });
    const [rsync, others] = spec.ingress as Obj[];
    assert.deepEqual(rsync.from, [
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kubeprod" } },
        podSelector: { matchLabels: { name: "prometheus" } },
      },
    ]);
    assert.deepEqual(rsync.ports, [{ protocol: "TCP", port: 8873 }]);
    assert.equal(others.from, undefined, "the source was not isolated before: keep it so");
    assert.ok(
      !(others.ports as Obj[]).some(
        (p) =>
          p.protocol === "TCP" &&
          (p.port as number) <= 8873 &&
          ((p.endPort as number) ?? 0) >= 8873,
      ),
    );
  });

  it("adds no open rule when other policies already isolate the source", async () => {
    const c = {
      ...cluster(),
      networkPolicies: {
        monitoring: [
          { metadata: { name: "deny" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } },
        ],
      },
    };
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c);
    const np = one(r, "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs;
    assert.equal(((np.spec as Obj).ingress as Obj[]).length, 1);
  });

  it("puts the password in a Secret in each namespace, as a secret, never in plain text", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const secrets = byType(r, "kubernetes:core/v1:Secret");
    assert.deepEqual(secrets.map((s) => (s.inputs.metadata as Obj).namespace).sort(), [
      "kubeprod",
      "monitoring",
    ]);
    const gen = one(r, "command:local:Command", "migration-rsync-credentials-password").inputs;
    assert.equal(gen.logging, "none");
    assert.match(String(gen.create), /urandom/);
  });

  it("creates the rollouts only after the Secrets and policy they rely on", async () => {
    // Slow Secrets and policy: the patches must still come after them.
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster(), {
      slow: [
        "migration-rsync-credentials-source",
        "migration-rsync-credentials-target",
        "migration-rsync-access",
      ],
    });
    const seq = (name: string) =>
      r.resources.find((x) => x.name === name && !x.type.startsWith("ptm:"))!.seq;
    assert.ok(seq("migration-source-rsync-daemon") > seq("migration-rsync-credentials-source"));
    assert.ok(seq("migration-source-rsync-daemon") > seq("migration-rsync-access"));
    assert.ok(seq("migration-target-rsync-client") > seq("migration-rsync-credentials-target"));
  });

  it("patches each workload through one SSA patch, parented under its component", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    assert.equal(r.resources.filter((x) => PATCH_TYPES.includes(x.type)).length, 2);
    assert.ok(r.resources.some((x) => x.type === "ptm:index:SourceRsyncDaemon"));
    assert.ok(r.resources.some((x) => x.type === "ptm:index:TargetRsyncClient"));
  });
});

describe("program: sidecars on a read-only root filesystem (issue 9 item 14)", () => {
  const volumesOf = (patch: Obj) =>
    (((patch.spec as Obj).template as Obj).spec as Obj).volumes as Obj[];

  it("each patch adds a scratch emptyDir it owns, after naming the pod's own volumes", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const dep = one(r, "kubernetes:apps/v1:DeploymentPatch").inputs;
    const live = (
      ((sourceDeployment().spec as Obj).template as Obj).spec as { volumes: { name: string }[] }
    ).volumes.map((v) => ({ name: v.name }));
    assert.deepEqual(volumesOf(dep), [
      ...live,
      { name: "ptm-scratch", emptyDir: { sizeLimit: "256Mi" } },
    ]);
    const sts = one(r, "kubernetes:apps/v1:StatefulSetPatch").inputs;
    assert.deepEqual(volumesOf(sts).at(-1), {
      name: "ptm-scratch",
      emptyDir: { sizeLimit: "256Mi" },
    });
  });

  it("the sidecars write only there: TMPDIR and rsyncd's run dir point at it", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    for (const type of PATCH_TYPES) {
      const c = containersOf(one(r, type).inputs).at(-1)!;
      const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value]));
      assert.equal(env.TMPDIR, "/ptm-scratch");
      assert.equal(env.PTM_RUN, "/ptm-scratch/run");
    }
  });
});

describe("program: includeHead", () => {
  it("switches the admin API on after the sidecar rollout, and off exactly at the revert", async () => {
    const r = await runProgram(
      { phase: "prepare", source: SOURCE_CONFIG, includeHead: true },
      cluster(),
      { slow: ["migration-source-rsync-daemon"] },
    );
    const sw = one(r, "command:local:Command", "migration-source-admin-api");
    const create = String(sw.inputs.create);
    const del = String(sw.inputs.delete);
    assert.match(
      create,
      /'admin-api' 'enable' 'monitoring' 'deployment' 'prometheus-server' 'prometheus-server' '600' 'test'$/,
    );
    assert.match(
      del,
      /'admin-api' 'restore' 'monitoring' 'deployment' 'prometheus-server' 'prometheus-server' '600' 'test'$/,
    );
    const script = (sw.inputs.environment as Record<string, string>).PTM_CREATE_SCRIPT;
    assert.ok(
      script.includes('\\"op\\":\\"add\\",\\"path\\":\\"$path/args/-\\"'),
      "appends, never replaces the list",
    );
    // The flag and its record on the workload go in one JSON patch: a failed or killed
    // create still leaves the record that the revert removes the flag by.
    assert.ok(
      script.includes("$record]") && script.includes("admin_record_key"),
      "the same patch records the change on the workload",
    );
    assert.match(
      create,
      /^sh -c "\$PTM_CREATE_SCRIPT" 'admin-api'/,
      "the script travels in the environment",
    );
    const patch = r.resources.find((x) => x.type === "kubernetes:apps/v1:DeploymentPatch")!;
    assert.ok(sw.seq > patch.seq, "one rollout after the other");
  });

  it("needs no switch when the admin API is on already", async () => {
    const c = cluster();
    const prom = (
      (
        (
          ((c.objects["deployment/monitoring/prometheus-server"] as Obj).spec as Obj)
            .template as Obj
        ).spec as Obj
      ).containers as Obj[]
    )[1];
    (prom.args as string[]).push("--web.enable-admin-api");
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG, includeHead: true }, c);
    const sw = one(r, "command:local:Command", "migration-source-admin-api");
    assert.ok(
      sw,
      "declared all the same: its enable step reports changed=false and restores nothing",
    );
  });
});

describe("program: bad input is refused before anything is declared", () => {
  const cases: {
    name: string;
    config: Obj;
    mutate?: (c: ReturnType<typeof cluster>) => void;
    error: RegExp;
  }[] = [
    {
      name: "unknown phase",
      config: { phase: "go", source: SOURCE_CONFIG },
      error: /:phase: unknown phase "go"/,
    },
    {
      name: "missing source name",
      config: { phase: "prepare", source: { namespace: "monitoring" } },
      error: /:source\.name: is required/,
    },
    {
      name: "unsupported kind",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, kind: "DaemonSet" } },
      error: /:source\.kind: unsupported kind "DaemonSet"/,
    },
    {
      name: "unknown key",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, volumes: "x" } },
      error: /:source\.volumes: unknown key/,
    },
    {
      name: "workload missing",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, name: "nope" } },
      error: /:source\.name: Deployment monitoring\/nope does not exist/,
    },
    {
      name: "target missing",
      config: { phase: "prepare", source: SOURCE_CONFIG, target: { namespace: "other" } },
      error: /:target\.name: StatefulSet other\/prometheus does not exist/,
    },
    {
      name: "container missing",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, container: "prom" } },
      error:
        /:source\.container: .* has no container "prom"; it has: prometheus-server-configmap-reload, prometheus-server/,
    },
    {
      name: "volume missing",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, volume: "nope" } },
      error: /:source\.volume: .* has no volume "nope"/,
    },
    {
      name: "volume not at TSDB path",
      config: { phase: "prepare", source: { ...SOURCE_CONFIG, volume: "config-volume" } },
      error: /:source\.volume: volume "config-volume" is not mounted at the TSDB path \/data/,
    },
    {
      name: "target volume missing",
      config: { phase: "prepare", source: SOURCE_CONFIG, target: { volume: "nope" } },
      error: /:target\.volume: .* has no volume "nope"/,
    },
    {
      name: "TSDB path unknown: the server can't be asked and the spec hides it (issue 10)",
      config: { phase: "prepare", source: SOURCE_CONFIG },
      mutate: (c) => {
        delete c.servers!["deployment/monitoring/prometheus-server"];
        const prom = (
          (
            (
              ((c.objects["deployment/monitoring/prometheus-server"] as Obj).spec as Obj)
                .template as Obj
            ).spec as Obj
          ).containers as Obj[]
        )[1];
        prom.command = ["sh", "-c", "exec prometheus --storage.tsdb.path=$DATA"];
      },
      error:
        /:source\.dataPath: can't tell where Deployment monitoring\/prometheus-server keeps its TSDB: the server could not be asked \(GET .* failed \(exit 1: Error from server \(ServiceUnavailable\).*Set source\.dataPath/,
    },
    {
      name: "source equals target",
      config: { phase: "prepare", source: SOURCE_CONFIG, target: SOURCE_CONFIG },
      error: /:target: is the same workload as source/,
    },
    {
      name: "rolling update with a PVC",
      config: { phase: "prepare", source: SOURCE_CONFIG },
      mutate: (c) => {
        ((c.objects["deployment/monitoring/prometheus-server"] as Obj).spec as Obj).strategy = {
          type: "RollingUpdate",
        };
      },
      error:
        /:source\.name: Deployment monitoring\/prometheus-server uses strategy RollingUpdate: .*Set it to Recreate first/,
    },
    {
      name: "TSDB on emptyDir",
      config: { phase: "prepare", source: SOURCE_CONFIG },
      mutate: (c) => {
        (
          (
            (
              ((c.objects["deployment/monitoring/prometheus-server"] as Obj).spec as Obj)
                .template as Obj
            ).spec as Obj
          ).volumes as Obj[]
        )[1] = { name: "storage-volume", emptyDir: {} };
      },
      error: /:source\.volume: the TSDB of .* is on emptyDir volume "storage-volume"/,
    },
    {
      name: "two replicas",
      config: { phase: "prepare", source: SOURCE_CONFIG },
      mutate: (c) => {
        ((c.objects["statefulset/kubeprod/prometheus"] as Obj).spec as Obj).replicas = 2;
      },
      error: /:target\.name: StatefulSet kubeprod\/prometheus has 2 replicas/,
    },
    {
      name: "bad bandwidth",
      config: { phase: "prepare", source: SOURCE_CONFIG, bandwidthLimit: "fast" },
      error: /:bandwidthLimit: "fast" is not an rsync --bwlimit value/,
    },
    {
      name: "too many copy streams",
      config: { phase: "prepare", source: SOURCE_CONFIG, copyStreams: 17 },
      error: /:copyStreams: must be auto or a whole number from 1 to 16/,
    },
    {
      name: "includeHead on a container without args",
      config: { phase: "prepare", source: SOURCE_CONFIG, includeHead: true },
      mutate: (c) => {
        const prom = (
          (
            ((c.objects["deployment/monitoring/prometheus-server"] as Obj).spec as Obj)
              .template as Obj
          ).spec as Obj
        ).containers as Obj[];
        delete prom[1].args;
        prom[1].volumeMounts = [{ name: "storage-volume", mountPath: "/prometheus" }];
      },
      error: /:includeHead: the source container has no args/,
    },
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const c = cluster();
      tc.mutate?.(c);
      const r = runProgram(tc.config, c);
      await assert.rejects(r, tc.error);
    });
  }

  it("declares nothing when the input is bad", async () => {
    const res = await runProgram(
      { phase: "prepare", source: { ...SOURCE_CONFIG, name: "nope" } },
      cluster(),
    ).catch(() => "failed");
    assert.equal(res, "failed");
  });

  it("reads the BKPR fixture unchanged (sanity)", () => {
    assert.equal((bkprStatefulSet().metadata as Obj).namespace, "kubeprod");
  });
});

describe("program: includeHead checks the source volume first (issue 9 item 16)", () => {
  const migrating = (dfAvailableBytes: number): FakeCluster => ({
    ...cluster(),
    exec: {
      "ptm-rsyncd:probe": line({ ...sourceProbe(), dfAvailableBytes }),
      "ptm-rsync:probe": line(targetProbe()),
    },
  });
  const config = { phase: "migrate", source: SOURCE_CONFIG, includeHead: true };

  it("refuses at preview when the head block would not fit, with the numbers", async () => {
    await assert.rejects(
      runProgram(config, migrating(100 * 2 ** 20), { preview: true }),
      /:includeHead: a head snapshot writes about \d+ MiB on the source volume \(plus 256 MiB kept free for its WAL\), and 100 MiB are free\. Free space on the source volume, or set includeHead to false/,
    );
  });
});

describe("program: one cluster for the patches and every kubectl (issue 9 item 13)", () => {
  const access = {
    "kubernetes:kubeconfig": "/etc/ptm/kubeconfig",
    "kubernetes:context": "prod-eu",
  };

  it("every kubectl names the stack's kubeconfig and context", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG, ...access }, cluster());
    assert.ok(r.commands.length >= 3);
    for (const c of r.commands) {
      assert.match(c, /^kubectl --kubeconfig '\/etc\/ptm\/kubeconfig' --context 'prod-eu' /, c);
    }
  });

  it("the patches go through one explicit provider with the same kubeconfig and context", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG, ...access }, cluster());
    const p = one(r, "pulumi:providers:kubernetes");
    assert.equal(p.inputs.kubeconfig, "/etc/ptm/kubeconfig");
    assert.equal(p.inputs.context, "prod-eu");
    for (const type of PATCH_TYPES) {
      assert.match(
        one(r, type).provider ?? "",
        /\$pulumi:providers:kubernetes::cluster::cluster-id$/,
      );
    }
    assert.match(one(r, "kubernetes:core/v1:Service").provider ?? "", /::cluster::/);
  });

  it("the admin-API switch, run on this machine, gets them too", async () => {
    const r = await runProgram(
      { phase: "prepare", source: SOURCE_CONFIG, includeHead: true, ...access },
      cluster(),
    );
    const sw = one(r, "command:local:Command", "migration-source-admin-api").inputs;
    const env = sw.environment as Record<string, string>;
    assert.equal(env.PTM_KUBECONFIG, "/etc/ptm/kubeconfig");
    assert.equal(env.PTM_KUBE_CONTEXT, "prod-eu");
  });

  it("a kubeconfig given as contents is refused: kubectl needs a file", async () => {
    await assert.rejects(
      runProgram(
        {
          phase: "prepare",
          source: SOURCE_CONFIG,
          "kubernetes:kubeconfig": "apiVersion: v1\nkind: Config\n",
        },
        cluster(),
      ),
      /:kubernetes:kubeconfig: holds a kubeconfig's contents; kubectl needs a file/,
    );
  });

  it("without them: plain kubectl and the default provider, as before", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    // Reads, execs, permission questions, and the admission dry-run (which persists nothing).
    assert.ok(
      r.commands.every((c) =>
        /^kubectl (get |exec |auth |create --dry-run=server |create -f - -o 'jsonpath=\{\.spec\.resourceAttributes)/.test(
          c,
        ),
      ),
    );
    assert.equal(byType(r, "pulumi:providers:kubernetes").length, 0);
  });
});

describe("program: a sidecar that can't start fails the step fast (issue 9 item 18)", () => {
  it("each patch skips the provider's long await; a rollout watch follows it, and later steps wait for that", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster(), {
      slow: ["migration-source-rsync-daemon", "migration-target-rsync-client"],
    });
    for (const [patchName, type, kind] of [
      ["migration-source-rsync-daemon", "kubernetes:apps/v1:DeploymentPatch", "deployment"],
      ["migration-target-rsync-client", "kubernetes:apps/v1:StatefulSetPatch", "statefulset"],
    ] as const) {
      const patch = one(r, type, patchName);
      const watch = one(r, "command:local:Command", `${patchName}-rollout`);
      assert.ok(watch.seq > patch.seq, `${patchName}: the watch runs after its patch`);
      assert.match(String(watch.inputs.create), /^sh -c "\$PTM_SCRIPT" 'rollout-watch' '[a-z]+' '/);
      assert.match(String(watch.inputs.create), new RegExp(`'${kind}'`));
      assert.match(
        (watch.inputs.environment as Record<string, string>).PTM_SCRIPT,
        /CrashLoopBackOff\|ImagePullBackOff/,
      );
    }
    // The Service's own await (a ready endpoint, i.e. the source sidecar) would block the
    // failed up for 10 min: the watch speaks for it.
    const svc = one(r, "kubernetes:core/v1:Service").inputs.metadata as Obj;
    assert.deepEqual(svc.annotations, { "pulumi.com/skipAwait": "true" });
  });

  it("the revert waits for the restored template, replacing a pod stuck on the broken revision (item 20)", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    for (const [patchName, type] of [
      ["migration-source-rsync-daemon", "kubernetes:apps/v1:DeploymentPatch"],
      ["migration-target-rsync-client", "kubernetes:apps/v1:StatefulSetPatch"],
    ] as const) {
      const settle = one(r, "command:local:Command", `${patchName}-settle`);
      // Created before the patch, so deleted after it.
      assert.ok(settle.seq < one(r, type, patchName).seq);
      assert.equal(settle.inputs.create, undefined);
      assert.match(String(settle.inputs.delete), /^sh -c "\$PTM_SCRIPT" 'rollout-settle' /);
      assert.match(
        (settle.inputs.environment as Record<string, string>).PTM_SCRIPT,
        /stuck on revision/,
      );
      // A flag a failed or killed admin-API step appended is removed by its record (item 21).
      const env = settle.inputs.environment as Record<string, string>;
      assert.equal(env.PTM_STACK, "test");
      assert.match(env.PTM_SCRIPT, /admin_api_remove "\$ns" "\$kind" "\$name" "\$PTM_STACK"/);
    }
  });
});

/** The revert declares the destroy guard alone, told that its check was just made. */
function onlyTheGuard(r: Awaited<ReturnType<typeof runProgram>>): void {
  const custom = r.resources.filter((x) => !x.type.startsWith("ptm:"));
  assert.deepEqual(
    custom.map((x) => x.name),
    ["migration-target-restart-guard"],
  );
  const env = custom[0]!.inputs.environment as Record<string, string>;
  assert.equal(env.PTM_FORCE_REVERT, "true");
}

describe("program: pulumi destroy checks the target's restart first (issue 9 item 12)", () => {
  it("a guard whose delete runs restart-guard.sh is declared last, after every other step", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    const guard = one(r, "command:local:Command", "migration-target-restart-guard");
    assert.equal(Math.max(...r.resources.map((x) => x.seq)), guard.seq);
    assert.match(
      String(guard.inputs.delete),
      /^sh -c "\$PTM_SCRIPT" 'restart-guard' 'kubeprod' 'statefulset' 'prometheus' 'statefulset\/prometheus' 'ptm-rsync' 'prometheus' '\/opt\/bitnami\/prometheus\/data' 'http:\/\/localhost:9090'$/,
    );
    const env = guard.inputs.environment as Record<string, string>;
    assert.match(env.PTM_SCRIPT!, /restart_risk\(\)/);
    assert.equal(env.PTM_PROBE_SCRIPT, sidecarScript("probe"));
    assert.equal(env.PTM_FORCE_REVERT, undefined, "checks unless forceRevert");
    // An update only stores the new inputs: a replacement would run the old delete.
    assert.ok(guard.inputs.update);
  });

  it("forceRevert tells the guard not to check", async () => {
    const r = await runProgram(
      { phase: "prepare", source: SOURCE_CONFIG, forceRevert: true },
      cluster(),
    );
    const env = one(r, "command:local:Command", "migration-target-restart-guard").inputs
      .environment as Record<string, string>;
    assert.equal(env.PTM_FORCE_REVERT, "true");
  });
});
