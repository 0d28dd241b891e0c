// sidecarMode: ephemeral (issue 15): the rules as table tests, and the program's resources in
// each mode against the fake cluster, with the preflight's refusals.

import * as assert from "node:assert/strict";
import { bkprStatefulSet, cluster, helmServer, SOURCE_CONFIG } from "../fixtures/workloads";
import { migratingCluster } from "../fixtures/probes";
import {
  checkServerVersion,
  ephemeralDataPath,
  ephemeralSecurityContext,
  headInEphemeral,
  podView,
  sidecarName,
  sidecarPods,
} from "../../components/decisions/ephemeralSidecar";
import { TsdbLocation } from "../../components/decisions/workload";
import { byType, FakeCluster, one, Recorded, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const SOURCE_POD = "prometheus-server-7c9d8b5f4-x2x7q";
const TARGET_POD = "prometheus-0";
const EPHEMERAL = { sidecarMode: "ephemeral" };

const version = (major: string, minor: string) =>
  JSON.stringify({ serverVersion: { major, minor, gitVersion: `v${major}.${minor}.0` } });

describe("ephemeral sidecars: the rules", () => {
  it("needs Kubernetes 1.25 or newer, and says so naming sidecarMode and patch", () => {
    assert.equal(checkServerVersion(version("1", "25")), "v1.25.0");
    assert.equal(checkServerVersion(version("1", "34")), "v1.34.0");
    // Managed clusters print a minor such as "27+".
    assert.equal(checkServerVersion(version("1", "27+")), "v1.27+.0");
    assert.throws(
      () => checkServerVersion(version("1", "24")),
      /:sidecarMode: ephemeral needs Kubernetes 1\.25 or newer .*runs v1\.24\.0.*set sidecarMode to patch/,
    );
    assert.throws(
      () => checkServerVersion('{"clientVersion":{"major":"1","minor":"34"}}'),
      /:sidecarMode: .*could not be read.*sidecarMode to patch/,
    );
    assert.throws(() => checkServerVersion(""), /could not be read/);
  });

  it("mounts the volume root and goes down the subPath as a directory; subPathExpr is refused", () => {
    const loc = (o: Partial<TsdbLocation>) =>
      ({ volume: "v", mountPath: "/data", dataPath: "/data", ...o }) as TsdbLocation;
    assert.equal(ephemeralDataPath("source", loc({})), "/ptm-volume");
    assert.equal(
      ephemeralDataPath("source", loc({ subPath: "prometheus-db" })),
      "/ptm-volume/prometheus-db",
    );
    assert.equal(
      ephemeralDataPath(
        "target",
        loc({
          mountPath: "/opt/bitnami/prometheus/data",
          dataPath: "/opt/bitnami/prometheus/data",
        }),
      ),
      "/ptm-volume",
    );
    assert.equal(
      ephemeralDataPath(
        "source",
        loc({ mountPath: "/prometheus/", dataPath: "/prometheus/tsdb", subPath: "a/b/" }),
      ),
      "/ptm-volume/a/b/tsdb",
    );
    assert.throws(
      () => ephemeralDataPath("target", loc({ subPathExpr: "$(POD_NAME)" })),
      /:sidecarMode: ephemeral can't reach the target's TSDB: its volume "v" is mounted with subPathExpr \$\(POD_NAME\).*Set sidecarMode to patch/,
    );
  });

  it("runs as the Prometheus container's user, with its own root filesystem writable", () => {
    assert.equal(ephemeralSecurityContext(undefined), undefined);
    assert.deepEqual(ephemeralSecurityContext({ runAsUser: 1001 }), { runAsUser: 1001 });
    assert.deepEqual(
      ephemeralSecurityContext({
        runAsUser: 1000,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      }),
      { runAsUser: 1000, readOnlyRootFilesystem: false, capabilities: { drop: ["ALL"] } },
    );
  });

  it("names the sidecar anew when an earlier one stopped or can't start (neither can be removed)", () => {
    const pod = (e: Record<string, Obj>) =>
      podView({
        metadata: { name: "p", uid: "u" },
        spec: { ephemeralContainers: Object.keys(e).map((name) => ({ name })) },
        status: {
          ephemeralContainerStatuses: Object.entries(e).map(([name, state]) => ({ name, state })),
        },
      });
    assert.deepEqual(sidecarName("ptm-rsync", [pod({})]), { name: "ptm-rsync", running: false });
    assert.deepEqual(sidecarName("ptm-rsync", [pod({ "ptm-rsync": { running: {} } })]), {
      name: "ptm-rsync",
      running: true,
    });
    assert.deepEqual(
      sidecarName("ptm-rsync", [
        pod({ "ptm-rsync": { waiting: { reason: "ContainerCreating" } } }),
      ]),
      { name: "ptm-rsync", running: false },
    );
    assert.deepEqual(
      sidecarName("ptm-rsync", [pod({ "ptm-rsync": { terminated: { exitCode: 143 } } })]),
      { name: "ptm-rsync-2", running: false },
    );
    assert.deepEqual(
      sidecarName("ptm-rsync", [
        pod({
          "ptm-rsync": { terminated: { exitCode: 0 } },
          "ptm-rsync-2": { waiting: { reason: "ImagePullBackOff" } },
          "ptm-rsync-3": { running: {} },
        }),
      ]),
      { name: "ptm-rsync-3", running: true },
    );
    // Several replicas share one name: the first every pod can use.
    assert.deepEqual(sidecarName("ptm-rsync", [pod({ "ptm-rsync": { running: {} } }), pod({})]), {
      name: "ptm-rsync",
      running: false,
    });
  });

  it("needs the workload's one running pod", () => {
    const p = (name: string, phase = "Running", deleting = false) => ({
      metadata: { name, uid: `uid-${name}`, ...(deleting ? { deletionTimestamp: "x" } : {}) },
      status: { phase },
    });
    assert.equal(sidecarPods("source", "Deployment m/p", [p("a")])[0].uid, "uid-a");
    assert.equal(
      sidecarPods("source", "Deployment m/p", [p("a"), p("b", "Running", true)]).length,
      1,
    );
    assert.throws(
      () => sidecarPods("source", "Deployment m/p", [p("a"), p("b")]),
      /:sidecarMode: ephemeral adds the source's sidecar to its running pod, and Deployment m\/p has 2 live pods \(a, b\)/,
    );
    assert.throws(() => sidecarPods("target", "StatefulSet k/p", []), /has 0 live pods/);
    assert.throws(
      () => sidecarPods("target", "StatefulSet k/p", [p("a", "Pending")]),
      /has pod a in phase Pending/,
    );
    assert.deepEqual(
      sidecarPods("target", "StatefulSet k/p", [p("x-0"), p("x-1")], ["x-1", "x-0"]).map(
        (v) => v.name,
      ),
      ["x-1", "x-0"],
    );
    assert.throws(
      () => sidecarPods("target", "StatefulSet k/p", [p("x-0")], ["x-0", "x-1"]),
      /has no live pod x-1/,
    );
  });

  it("includeHead: on already is used; off leaves the head out and says why (no restart)", () => {
    assert.deepEqual(headInEphemeral(false, false), { includeHead: false });
    assert.equal(headInEphemeral(true, true).includeHead, true);
    const off = headInEphemeral(true, false);
    assert.equal(off.includeHead, false);
    assert.match(off.message!, /admin API is off.*needs a restart: the plan leaves the head out/);
  });
});

const commands = (r: { resources: Recorded[] }) =>
  byType(r as never, "command:local:Command")
    .map((x) => x.name)
    .sort();

/** The container an ephemeral command adds, from its environment. */
function added(r: Awaited<ReturnType<typeof runProgram>>, name: string): Obj {
  const env = one(r, "command:local:Command", name).inputs.environment as Record<string, string>;
  return JSON.parse(env.PTM_EPHEMERAL_CONTAINER) as Obj;
}

describe("program: sidecarMode", () => {
  it("patch is the default: pod template patches, and no ephemeral preflight", async () => {
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, cluster());
    assert.equal(byType(r, "kubernetes:apps/v1:DeploymentPatch").length, 1);
    assert.equal(byType(r, "kubernetes:apps/v1:StatefulSetPatch").length, 1);
    // No version preflight, and no question about the ephemeralcontainers subresource.
    assert.ok(!r.commands.some((c) => /version|ephemeralcontainers/.test(c)));
    assert.equal(r.outputs.sidecarMode, "patch");
  });

  it("refuses an unknown mode, naming the key", async () => {
    await assert.rejects(
      runProgram({ phase: "prepare", source: SOURCE_CONFIG, sidecarMode: "debug" }, cluster()),
      /:sidecarMode: "debug" is not patch or ephemeral/,
    );
  });
});

describe("program: sidecarMode ephemeral, phase prepare", () => {
  const prepare = { phase: "prepare", source: SOURCE_CONFIG, ...EPHEMERAL };

  it("changes no template: one command per pod adds the sidecar, and the Service, policy and Secrets stay", async () => {
    const r = await runProgram(prepare, cluster());
    const custom = r.resources.filter((x) => !x.type.startsWith("ptm:"));
    assert.deepEqual(custom.map((x) => x.type).sort(), [
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      // the Events: prepared and reverted, on each workload
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "command:local:Command",
      "kubernetes:core/v1:Secret",
      "kubernetes:core/v1:Secret",
      "kubernetes:core/v1:Service",
      "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    ]);
    assert.deepEqual(commands(r), [
      "migration-rsync-credentials-migration-id",
      "migration-rsync-credentials-password",
      "migration-source-rsync-daemon-ephemeral",
      "migration-source-rsync-daemon-event",
      "migration-source-rsync-daemon-reverted-event",
      "migration-target-restart-guard",
      "migration-target-rsync-client-ephemeral",
      "migration-target-rsync-client-event",
      "migration-target-rsync-client-reverted-event",
    ]);
    assert.equal(r.outputs.sidecarMode, "ephemeral");
  });

  it("checks the version and the right in each namespace at preview", async () => {
    const r = await runProgram(prepare, cluster(), { preview: true });
    assert.ok(r.commands.includes("kubectl version -o json"));
    for (const ns of ["monitoring", "kubeprod"]) {
      for (const verb of ["get", "patch"]) {
        assert.ok(
          r.accessReviews.includes(`${verb} pods/ephemeralcontainers -n ${ns}`),
          `${verb} in ${ns}`,
        );
      }
    }
  });

  it("the source's daemon: the volume's root, the Prometheus user, the same module and Secret, no ports", async () => {
    const r = await runProgram(prepare, cluster());
    const cmd = one(r, "command:local:Command", "migration-source-rsync-daemon-ephemeral").inputs;
    assert.deepEqual(cmd.triggers, [SOURCE_POD, `uid-${SOURCE_POD}`, "ptm-rsyncd"]);
    assert.match(
      String(cmd.create),
      new RegExp(
        `^sh -c "\\$PTM_CREATE_SCRIPT" 'ephemeral-sidecar' 'add' 'monitoring' '${SOURCE_POD}' 'uid-${SOURCE_POD}' 'ptm-rsyncd' '600'$`,
      ),
    );
    assert.match(String(cmd.delete), /'ephemeral-sidecar' 'stop' 'monitoring' /);
    const c = added(r, "migration-source-rsync-daemon-ephemeral");
    assert.equal(c.name, "ptm-rsyncd");
    assert.deepEqual(c.volumeMounts, [{ name: "storage-volume", mountPath: "/ptm-volume" }]);
    for (const k of ["ports", "resources", "readinessProbe", "livenessProbe", "startupProbe"]) {
      assert.equal(c[k], undefined, k);
    }
    const env = Object.fromEntries(
      (c.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [
        e.name,
        e.value ?? e.valueFrom,
      ]),
    );
    assert.equal(env.PTM_DATA, "/ptm-volume");
    assert.equal(env.PTM_RSYNC_PORT, "8873");
    assert.equal(env.TMPDIR, "/tmp");
    assert.equal(env.PTM_RUN, "/tmp/ptm-run");
    assert.deepEqual(env.PTM_RSYNC_PASSWORD, {
      secretKeyRef: {
        name: (
          one(r, "kubernetes:core/v1:Secret", "migration-rsync-credentials-source").inputs
            .metadata as Obj
        ).name,
        key: "password",
      },
    });
    // The Helm chart sets the user in the pod's securityContext, which ephemeral containers
    // get too; the container's own is copied (none here).
    assert.equal(c.securityContext, undefined);
    const script = (c.command as string[])[2];
    assert.match(script, /main\.pid/);
    assert.match(script, /read only = yes/);
  });

  it("the Service selects the source pod by its labels, on a numeric targetPort", async () => {
    const r = await runProgram(prepare, cluster());
    const svc = one(r, "kubernetes:core/v1:Service").inputs.spec as Obj;
    const ports = svc.ports as Obj[];
    assert.equal(ports[0].targetPort, 8873);
    assert.deepEqual(
      svc.selector,
      (helmServer().spec as { template: { metadata: { labels: Obj } } }).template.metadata.labels,
    );
    one(r, "kubernetes:networking.k8s.io/v1:NetworkPolicy");
  });

  it("the target's client: its subPath as a directory, the container's user, a writable root filesystem", async () => {
    const c0 = cluster();
    const sts = bkprStatefulSet() as Obj;
    const spec = ((sts.spec as Obj).template as Obj).spec as Obj;
    const prom = (spec.containers as Obj[]).find((x) => x.name === "prometheus")!;
    prom.securityContext = { runAsUser: 1001, readOnlyRootFilesystem: true };
    (prom.volumeMounts as Obj[]).find((m) => m.name === "data")!.subPath = "tsdb";
    c0.objects["statefulset/kubeprod/prometheus"] = sts;
    const r = await runProgram(prepare, c0);
    const c = added(r, "migration-target-rsync-client-ephemeral");
    assert.deepEqual(c.securityContext, { runAsUser: 1001, readOnlyRootFilesystem: false });
    assert.deepEqual(c.volumeMounts, [{ name: "data", mountPath: "/ptm-volume" }]);
    const env = c.env as { name: string; value?: string }[];
    assert.equal(env.find((e) => e.name === "PTM_DATA")!.value, "/ptm-volume/tsdb");
    const cmd = one(r, "command:local:Command", "migration-target-rsync-client-ephemeral").inputs;
    assert.deepEqual(cmd.triggers, [TARGET_POD, `uid-${TARGET_POD}`, "ptm-rsync"]);
  });

  it("a source with its TSDB in a subPath: the daemon serves that directory of the volume", async () => {
    const c0 = cluster();
    c0.objects["deployment/monitoring/prometheus-server"] = helmServer({
      subPath: "prometheus-db",
    });
    const r = await runProgram(prepare, c0);
    const env = added(r, "migration-source-rsync-daemon-ephemeral").env as {
      name: string;
      value?: string;
    }[];
    assert.equal(env.find((e) => e.name === "PTM_DATA")!.value, "/ptm-volume/prometheus-db");
  });

  it("a pod with a stopped sidecar (an earlier migration) gets one under a new name", async () => {
    const c0: FakeCluster = {
      ...cluster(),
      ephemeral: {
        [SOURCE_POD]: [{ name: "ptm-rsyncd", state: { terminated: { exitCode: 143 } } }],
      },
    };
    const r = await runProgram(prepare, c0);
    assert.equal(added(r, "migration-source-rsync-daemon-ephemeral").name, "ptm-rsyncd-2");
    assert.deepEqual((r.outputs.sidecars as Obj).source, "ptm-rsyncd-2");
  });

  it("a pod replaced since the last up (a new UID) gets the sidecar again: its command is replaced", async () => {
    const before = await runProgram(prepare, {
      ...cluster(),
      ephemeral: { [TARGET_POD]: [{ name: "ptm-rsync", state: { running: {} } }] },
    });
    const after = await runProgram(prepare, {
      ...cluster(),
      podUids: { [TARGET_POD]: "uid-new" },
    });
    const triggers = (r: typeof before) =>
      one(r, "command:local:Command", "migration-target-rsync-client-ephemeral").inputs.triggers;
    assert.deepEqual(triggers(before), [TARGET_POD, `uid-${TARGET_POD}`, "ptm-rsync"]);
    assert.deepEqual(triggers(after), [TARGET_POD, "uid-new", "ptm-rsync"]);
    // Triggers replace the command: the new pod gets the sidecar, the old pod's stop finds it gone.
    const create = String(
      one(after, "command:local:Command", "migration-target-rsync-client-ephemeral").inputs.create,
    );
    assert.match(create, / 'add' 'kubeprod' 'prometheus-0' 'uid-new' 'ptm-rsync' /);
  });

  it("a RollingUpdate Deployment is fine: nothing rolls out", async () => {
    const c0 = cluster();
    const dep = helmServer() as { spec: { strategy?: unknown } };
    dep.spec.strategy = { type: "RollingUpdate" };
    c0.objects["deployment/monitoring/prometheus-server"] = dep;
    await assert.rejects(runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c0), /Recreate/);
    await runProgram(prepare, c0);
  });

  it("includeHead with the admin API off: no switch (a restart), the head left out, and preview says so", async () => {
    const r = await runProgram({ ...prepare, includeHead: true }, cluster());
    assert.equal(byType(r, "ptm:index:AdminApiSwitch").length, 0);
    assert.ok(!commands(r).includes("migration-source-admin-api"));
  });

  it("refuses a workload whose template still has the patch mode's sidecar", async () => {
    const c0 = cluster();
    const sts = bkprStatefulSet() as Obj;
    (((sts.spec as Obj).template as Obj).spec as { containers: Obj[] }).containers.push({
      name: "ptm-rsync",
      image: "rsync",
    });
    c0.objects["statefulset/kubeprod/prometheus"] = sts;
    await assert.rejects(
      runProgram(prepare, c0),
      /:sidecarMode: the target's pod template still has the sidecar ptm-rsync of sidecarMode patch/,
    );
  });
});

describe("program: sidecarMode ephemeral, preflight refusals at preview", () => {
  const prepare = { phase: "prepare", source: SOURCE_CONFIG, ...EPHEMERAL };
  const refuses = async (c: FakeCluster, re: RegExp) => {
    await assert.rejects(runProgram(prepare, c, { preview: true }), re);
  };

  it("Kubernetes older than 1.25", () =>
    refuses(
      { ...cluster(), serverVersion: { major: "1", minor: "24", gitVersion: "v1.24.17" } },
      /prometheus-tsdb-migration:sidecarMode: ephemeral needs Kubernetes 1\.25 or newer \(ephemeral containers\); the cluster runs v1\.24\.17.*set sidecarMode to patch/,
    ));

  it("a server whose version can't be read", () =>
    refuses({ ...cluster(), serverVersion: null }, /:sidecarMode: .*version could not be read/));

  // `kubectl patch --subresource=ephemeralcontainers` is a patch of the subresource, checked
  // with --subresource (`can-i update pods/ephemeralcontainers` asked about a pod named so).
  it("no right to patch pods/ephemeralcontainers in the target's namespace", () =>
    refuses(
      { ...cluster(), canI: { "patch pods/ephemeralcontainers -n kubeprod": "no" } },
      /kubernetes:kubeconfig.*lacks 1 permission.*patch pods\/ephemeralcontainers in namespace kubeprod \(sidecarMode ephemeral.*or set sidecarMode to patch/,
    ));

  it("a right that can't be checked", () =>
    refuses(
      { ...cluster(), canI: { "get pods/ephemeralcontainers -n monitoring": "error" } },
      /could not check any of the \d+ permissions this migration needs \(the access review: .*You must be logged in/,
    ));

  it("a TSDB mounted with subPathExpr", () => {
    const c0 = cluster();
    const sts = bkprStatefulSet() as Obj;
    const spec = ((sts.spec as Obj).template as Obj).spec as Obj;
    const prom = (spec.containers as Obj[]).find((x) => x.name === "prometheus")!;
    (prom.volumeMounts as Obj[]).find((m) => m.name === "data")!.subPathExpr = "$(POD_NAME)";
    c0.objects["statefulset/kubeprod/prometheus"] = sts;
    return refuses(
      c0,
      /:sidecarMode: ephemeral can't reach the target's TSDB: .*subPathExpr \$\(POD_NAME\)/,
    );
  });
});

describe("program: sidecarMode ephemeral, phase migrate", () => {
  const running = (name: string) => [
    { name, state: { running: { startedAt: "2026-01-01T00:00:00Z" } } },
  ];
  const migrating = (): FakeCluster => ({
    ...migratingCluster(),
    ephemeral: { [SOURCE_POD]: running("ptm-rsyncd"), [TARGET_POD]: running("ptm-rsync") },
  });
  const config = { phase: "migrate", source: SOURCE_CONFIG, ...EPHEMERAL };

  it("runs every step in the sidecars, on the TSDB below the volume root; by workload, so a replaced pod changes no step", async () => {
    const r = await runProgram(config, migrating());
    assert.deepEqual(commands(r), [
      "migration-block-copy",
      "migration-block-copy-event",
      "migration-block-install",
      "migration-block-install-event",
      "migration-compaction-wait",
      "migration-rsync-credentials-migration-id",
      "migration-rsync-credentials-password",
      "migration-source-rsync-daemon-ephemeral",
      "migration-source-rsync-daemon-event",
      "migration-source-rsync-daemon-reverted-event",
      "migration-source-snapshot",
      "migration-source-snapshot-event",
      "migration-target-restart-guard",
      "migration-target-rsync-client-ephemeral",
      "migration-target-rsync-client-event",
      "migration-target-rsync-client-reverted-event",
      "migration-verification-event",
    ]);
    const probes = r.commands.filter((c) => /'ptm-probe'/.test(c));
    assert.ok(
      probes.some((c) => c.includes(`'deployment/prometheus-server' -c 'ptm-rsyncd'`)),
      probes.join("\n"),
    );
    assert.ok(
      probes.some((c) => c.includes(`'statefulset/prometheus' -c 'ptm-rsync'`)),
      probes.join("\n"),
    );
    const install = one(r, "command:local:Command", "migration-block-install").inputs;
    assert.match(String(install.create), new RegExp(`'statefulset/prometheus' -c 'ptm-rsync'`));
    const snap = one(r, "command:local:Command", "migration-source-snapshot").inputs;
    assert.match(String(snap.create), new RegExp(`'deployment/prometheus-server' -c 'ptm-rsyncd'`));
    const m = r.outputs.migration as { verification: { ok: boolean } };
    assert.equal(m.verification.ok, true);
    assert.deepEqual((r.outputs.ephemeral as { source: Obj }).source, {
      pods: [{ name: SOURCE_POD, uid: `uid-${SOURCE_POD}` }],
      container: "ptm-rsyncd",
      dataPath: "/ptm-volume",
    });
  });

  it("before the sidecars run, the plan waits for the next up instead of failing", async () => {
    const c0 = migrating();
    delete c0.ephemeral;
    delete c0.exec;
    const r = await runProgram(config, c0);
    assert.equal(r.outputs.status, "waiting-for-sidecars");
    assert.match(String(r.outputs.message), /the sidecars are not running yet/);
  });

  it("a sidecar that runs but can't be probed is an error with the reason", async () => {
    const c0 = migrating();
    delete c0.exec;
    await assert.rejects(runProgram(config, c0), /kubectl exec failed/);
  });
});
