import * as assert from "node:assert/strict";
import { ConfigError, WorkloadRef as Ref } from "../../components/decisions/config";
import { ServerReport } from "../../components/decisions/discovery";
import {
  locateTsdb as locate,
  preflight,
  TsdbLocation,
  WorkloadObject,
} from "../../components/decisions/workload";
import {
  BKPR_SERVER,
  bkprStatefulSet,
  HELM_SERVER,
  helmServer,
  reportOf,
  sourceDeployment,
} from "../fixtures/workloads";

type WorkloadRef = Ref;

/** locateTsdb; without a report, the fixture's own server is asked (as the program does). */
function locateTsdb(
  key: "source" | "target",
  ref: WorkloadRef,
  w: WorkloadObject,
  server?: ServerReport,
): TsdbLocation {
  const fake = ref.namespace === "kubeprod" ? BKPR_SERVER : HELM_SERVER;
  return locate(key, ref, w, server ?? reportOf(w as Record<string, unknown>, fake));
}

const src: WorkloadRef = {
  namespace: "monitoring",
  kind: "Deployment",
  name: "prometheus-server",
  container: "prometheus-server",
};
const tgt: WorkloadRef = {
  namespace: "kubeprod",
  kind: "StatefulSet",
  name: "prometheus",
  container: "prometheus",
};
const helmRef = (statefulSet: boolean): WorkloadRef => ({
  ...src,
  kind: statefulSet ? "StatefulSet" : "Deployment",
});
const down: ServerReport = { reached: false, why: "Error from server (ServiceUnavailable)" };

describe("locateTsdb: each published shape, with the server asked", () => {
  // The prometheus Helm chart's server, as a Deployment and as a StatefulSet, each with and
  // without persistentVolume.subPath; and BKPR's StatefulSet, which sets no TSDB path.
  const cases: {
    name: string;
    w: () => Record<string, unknown>;
    ref: WorkloadRef;
    server: typeof HELM_SERVER;
    want: Partial<TsdbLocation>;
  }[] = [
    {
      name: "Helm Deployment",
      w: () => helmServer(),
      ref: helmRef(false),
      server: HELM_SERVER,
      want: {
        dataPath: "/data",
        volume: "storage-volume",
        volumeKind: "persistentVolumeClaim",
        subPath: undefined,
        url: "http://localhost:9090",
        version: "3.14.0",
      },
    },
    {
      name: "Helm Deployment with persistentVolume.subPath",
      w: () => helmServer({ subPath: "prometheus-db" }),
      ref: helmRef(false),
      server: HELM_SERVER,
      want: {
        dataPath: "/data",
        volume: "storage-volume",
        volumeKind: "persistentVolumeClaim",
        mountPath: "/data",
        subPath: "prometheus-db",
      },
    },
    {
      name: "Helm StatefulSet",
      w: () => helmServer({ statefulSet: true }),
      ref: helmRef(true),
      server: HELM_SERVER,
      want: {
        dataPath: "/data",
        volume: "storage-volume",
        volumeKind: "volumeClaimTemplate",
        subPath: undefined,
      },
    },
    {
      name: "Helm StatefulSet with persistentVolume.subPath",
      w: () => helmServer({ statefulSet: true, subPath: "prometheus-db" }),
      ref: helmRef(true),
      server: HELM_SERVER,
      want: {
        dataPath: "/data",
        volume: "storage-volume",
        volumeKind: "volumeClaimTemplate",
        subPath: "prometheus-db",
      },
    },
    {
      name: "BKPR StatefulSet: data/ in the Bitnami image's CWD",
      w: () => bkprStatefulSet(),
      ref: tgt,
      server: BKPR_SERVER,
      want: {
        dataPath: "/opt/bitnami/prometheus/data",
        volume: "data",
        volumeKind: "volumeClaimTemplate",
        url: "http://localhost:9090",
        adminApi: false,
        version: "2.26.0",
      },
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const w = tc.w();
      const loc = locateTsdb("source", tc.ref, w as WorkloadObject, reportOf(w, tc.server));
      for (const [k, v] of Object.entries(tc.want)) {
        assert.deepEqual(loc[k as keyof TsdbLocation], v, k);
      }
      assert.match(loc.sources.dataPath, /^server pod-0: flag storage\.tsdb\.path/);
      assert.match(loc.sources.volume, /^volumeMounts: /);
      assert.deepEqual(loc.server, { reached: true, pod: "pod-0" });
    });
  }
  it("the BKPR path says it was relative and which CWD resolved it", () => {
    const w = bkprStatefulSet();
    const loc = locateTsdb("target", tgt, w as WorkloadObject, reportOf(w, BKPR_SERVER));
    assert.equal(
      loc.sources.dataPath,
      'server pod-0: flag storage.tsdb.path "data/" in runtimeinfo CWD /opt/bitnami/prometheus',
    );
    assert.equal(
      loc.sources.volume,
      "volumeMounts: /opt/bitnami/prometheus/data holds /opt/bitnami/prometheus/data",
    );
  });
  it("the subPath is named where the volume came from", () => {
    const w = helmServer({ subPath: "prometheus-db" });
    const loc = locateTsdb("source", src, w as WorkloadObject, reportOf(w, HELM_SERVER));
    assert.equal(loc.sources.volume, "volumeMounts: /data (subPath prometheus-db) holds /data");
  });
});

describe("locateTsdb: where each value comes from", () => {
  it("server flags: the path, listen address, route prefix and admin API as the server runs them", () => {
    const w = helmServer();
    const report = reportOf(w, HELM_SERVER);
    report.flags = {
      ...report.flags,
      "storage.tsdb.path": "/data/tsdb",
      "web.listen-address": ":9091",
      "web.route-prefix": "/prom",
      "web.enable-admin-api": "true",
    };
    const loc = locateTsdb("source", src, w as WorkloadObject, report);
    assert.equal(loc.dataPath, "/data/tsdb");
    assert.equal(loc.url, "http://localhost:9091/prom");
    assert.equal(loc.adminApi, true);
    assert.equal(loc.sources.dataPath, "server pod-0: flag storage.tsdb.path");
    assert.equal(loc.sources.url, "server pod-0: flags web.listen-address, web.route-prefix");
    assert.equal(loc.sources.adminApi, "server pod-0: flag web.enable-admin-api");
  });
  it("runtimeinfo: a relative path resolves against the server's CWD, not an assumed one", () => {
    const w = bkprStatefulSet();
    const report = { ...reportOf(w, BKPR_SERVER), cwd: "/somewhere/else" };
    assert.throws(
      () => locateTsdb("target", tgt, w as WorkloadObject, report),
      /target\.volume: the TSDB path \/somewhere\/else\/data .* is not on any volume/,
    );
  });
  it("a server without runtimeinfo and a relative path: the key to set", () => {
    const w = bkprStatefulSet();
    const { cwd: _cwd, ...report } = reportOf(w, BKPR_SERVER);
    void _cwd;
    assert.throws(
      () => locateTsdb("target", tgt, w as WorkloadObject, report),
      /prometheus-tsdb-migration:target\.dataPath: can't tell .* "data\/" is relative and it reports no CWD.*Set target\.dataPath/,
    );
  });
  it("spec fallback: an absolute --storage.tsdb.path when the server can't be asked", () => {
    const w = helmServer({ subPath: "db" });
    const loc = locateTsdb("source", src, w as WorkloadObject, down);
    assert.equal(loc.dataPath, "/data");
    assert.equal(loc.subPath, "db");
    assert.equal(loc.sources.dataPath, "container spec: --storage.tsdb.path");
    assert.match(loc.sources.url, /^container spec: /);
    assert.equal(loc.version, undefined);
    assert.match(loc.sources.version, /^unknown: the server could not be asked$/);
    assert.deepEqual(loc.server, down);
  });
  it("spec fallback: BKPR's spec can't tell (no path, no workingDir): the error names the key", () => {
    assert.throws(
      () => locateTsdb("target", tgt, bkprStatefulSet() as WorkloadObject, down),
      (e: Error) =>
        e instanceof ConfigError &&
        e.key === "target.dataPath" &&
        /can't tell where StatefulSet kubeprod\/prometheus keeps its TSDB: the server could not be asked \(Error from server \(ServiceUnavailable\)\).*Set target\.dataPath/.test(
          e.message,
        ),
    );
  });
  it("spec fallback: a relative path under an explicit workingDir", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    w.spec!.template!.spec!.containers![0].workingDir = "/opt/bitnami/prometheus";
    const loc = locateTsdb("target", tgt, w, down);
    assert.equal(loc.dataPath, "/opt/bitnami/prometheus/data");
    assert.equal(
      loc.sources.dataPath,
      "container spec: no --storage.tsdb.path, so data/ under its workingDir",
    );
  });
  it("explicit keys win over the server", () => {
    const w = helmServer();
    const report = reportOf(w, HELM_SERVER);
    const loc = locateTsdb(
      "source",
      { ...src, dataPath: "/data/", volume: "storage-volume", url: "http://localhost:9090/x/" },
      w as WorkloadObject,
      report,
    );
    assert.equal(loc.dataPath, "/data");
    assert.equal(loc.url, "http://localhost:9090/x");
    assert.equal(loc.sources.dataPath, "config source.dataPath");
    assert.equal(loc.sources.volume, "config source.volume");
    assert.equal(loc.sources.url, "config source.url");
  });
  it("an explicit dataPath also covers a spec that hides its flags", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers![1].args = ["--storage.tsdb.path=$(P)"];
    assert.equal(locateTsdb("source", { ...src, dataPath: "/data/" }, w, down).dataPath, "/data");
    assert.throws(() => locateTsdb("source", src, w, down), /source\.dataPath: can't tell/);
  });
});

describe("locateTsdb: mounts", () => {
  const asked = (w: Record<string, unknown>) => reportOf(w, HELM_SERVER);
  it("prefers the deepest mount holding the TSDB", () => {
    const w = sourceDeployment() as WorkloadObject;
    const c = w.spec!.template!.spec!.containers![1];
    c.volumeMounts = [
      { name: "config-volume", mountPath: "/" },
      { name: "storage-volume", mountPath: "/data" },
    ];
    assert.equal(locateTsdb("source", src, w, asked(w as never)).volume, "storage-volume");
  });
  it("picks the mount of the TSDB path when one volume is mounted twice with two subPaths", () => {
    const w = sourceDeployment() as WorkloadObject;
    const c = w.spec!.template!.spec!.containers![1];
    c.volumeMounts = [
      { name: "storage-volume", mountPath: "/wal-archive", subPath: "archive" },
      { name: "storage-volume", mountPath: "/data", subPath: "tsdb" },
    ];
    const loc = locateTsdb("source", src, w, asked(w as never));
    assert.equal(loc.mountPath, "/data");
    assert.equal(loc.subPath, "tsdb");
  });
  it("ignores its own sidecars when reading back a patched workload", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers!.push({
      name: "ptm-rsyncd",
      volumeMounts: [{ name: "storage-volume", mountPath: "/data" }],
    });
    assert.equal(locateTsdb("source", src, w, asked(w as never)).volume, "storage-volume");
    assert.throws(
      () => locateTsdb("source", { ...src, container: "ptm-rsyncd" }, w),
      /has no container "ptm-rsyncd"/,
    );
  });
  it("refuses a TSDB path on no volume", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers![1].args = ["--storage.tsdb.path=/tmp/tsdb"];
    assert.throws(
      () => locateTsdb("source", src, w, asked(w as never)),
      /source\.volume: the TSDB path \/tmp\/tsdb .* is not on any volume/,
    );
  });
});

describe("preflight", () => {
  const src: WorkloadRef = {
    namespace: "monitoring",
    kind: "Deployment",
    name: "prometheus-server",
    container: "prometheus-server",
  };
  const cases: { name: string; mutate: (w: WorkloadObject) => void; error?: RegExp }[] = [
    { name: "Recreate with a PVC is fine", mutate: () => undefined },
    {
      name: "strategy unset means RollingUpdate",
      mutate: (w) => delete w.spec!.strategy,
      error: /uses strategy RollingUpdate/,
    },
    { name: "zero replicas", mutate: (w) => (w.spec!.replicas = 0), error: /has 0 replicas/ },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const w = sourceDeployment() as WorkloadObject;
      tc.mutate(w);
      const loc = locateTsdb("source", src, w);
      if (tc.error) assert.throws(() => preflight("source", loc, w), tc.error);
      else preflight("source", loc, w);
    });
  }
  it("OnDelete StatefulSets never roll out", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    w.spec!.updateStrategy = { type: "OnDelete" };
    const ref: WorkloadRef = {
      namespace: "kubeprod",
      kind: "StatefulSet",
      name: "prometheus",
      container: "prometheus",
    };
    assert.throws(
      () => preflight("target", locateTsdb("target", ref, w), w),
      /target\.name: .*OnDelete/,
    );
  });
});

describe("preflight refuses workloads whose rollout or patch would not hold", () => {
  const ref: WorkloadRef = {
    namespace: "kubeprod",
    kind: "StatefulSet",
    name: "prometheus",
    container: "prometheus",
  };
  it("a StatefulSet partition above 0 never rolls out the sidecar", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    w.spec!.updateStrategy = { type: "RollingUpdate", rollingUpdate: { partition: 1 } };
    assert.throws(
      () => preflight("target", locateTsdb("target", ref, w), w),
      /target\.name: StatefulSet kubeprod\/prometheus has updateStrategy\.rollingUpdate\.partition 1/,
    );
  });
  it("partition 0 is fine", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    w.spec!.updateStrategy = { type: "RollingUpdate", rollingUpdate: { partition: 0 } };
    preflight("target", locateTsdb("target", ref, w), w);
  });
  it("a workload that a controller owns would have its patch undone", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    w.metadata!.ownerReferences = [
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "Prometheus",
        name: "k8s",
        uid: "u-1",
        controller: true,
      },
    ];
    assert.throws(
      () => preflight("target", locateTsdb("target", ref, w), w),
      /target\.name: StatefulSet kubeprod\/prometheus is managed by Prometheus k8s \(monitoring\.coreos\.com\/v1\)/,
    );
  });
});
