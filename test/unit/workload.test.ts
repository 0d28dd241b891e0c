import * as assert from "node:assert/strict";
import { WorkloadRef } from "../../components/decisions/config";
import {
  Container,
  deriveDataPath,
  deriveUrl,
  flagValue,
  locateTsdb,
  preflight,
  WorkloadObject,
} from "../../components/decisions/workload";
import { bkprStatefulSet, sourceDeployment } from "../fixtures/workloads";

describe("deriveDataPath", () => {
  const cases: { name: string; c: Container; want: string | undefined }[] = [
    { name: "image default (no args)", c: { name: "p" }, want: "/prometheus" },
    { name: "absolute flag", c: { name: "p", args: ["--storage.tsdb.path=/data"] }, want: "/data" },
    {
      name: "flag with space",
      c: { name: "p", args: ["--storage.tsdb.path", "/data/"] },
      want: "/data",
    },
    {
      name: "relative flag uses workingDir",
      c: { name: "p", workingDir: "/opt/p", args: ["--storage.tsdb.path=data"] },
      want: "/opt/p/data",
    },
    {
      name: "args without flag: data/ under the image workdir",
      c: { name: "p", args: ["--config.file=/etc/p.yml"] },
      want: "/prometheus/data",
    },
    {
      name: "flag in command",
      c: { name: "p", command: ["/bin/prometheus", "--storage.tsdb.path=/tsdb"] },
      want: "/tsdb",
    },
    {
      name: "shell wrapper hides it",
      c: { name: "p", command: ["sh", "-c", "prometheus --storage.tsdb.path=/x"] },
      want: undefined,
    },
    {
      name: "env expansion hides it",
      c: { name: "p", args: ["--storage.tsdb.path=$(DATA)"] },
      want: undefined,
    },
  ];
  for (const tc of cases) it(tc.name, () => assert.equal(deriveDataPath(tc.c), tc.want));
});

describe("deriveUrl", () => {
  const cases: { args: string[]; want: string }[] = [
    { args: [], want: "http://localhost:9090" },
    { args: ["--web.listen-address=0.0.0.0:9091"], want: "http://localhost:9091" },
    { args: ["--web.route-prefix=/prom/"], want: "http://localhost:9090/prom" },
    {
      args: ["--web.external-url=https://x.example.com/prometheus"],
      want: "http://localhost:9090/prometheus",
    },
    {
      args: ["--web.external-url=https://x.example.com/p", "--web.route-prefix=/"],
      want: "http://localhost:9090",
    },
  ];
  for (const tc of cases)
    it(JSON.stringify(tc.args), () =>
      assert.equal(deriveUrl({ name: "p", args: tc.args }), tc.want),
    );
  it("flagValue reads single-dash flags too", () =>
    assert.equal(flagValue(["-storage.tsdb.path=/a"], "storage.tsdb.path"), "/a"));
});

describe("locateTsdb", () => {
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

  it("finds the Helm chart's storage volume", () => {
    const loc = locateTsdb("source", src, sourceDeployment() as WorkloadObject);
    assert.equal(loc.volume, "storage-volume");
    assert.equal(loc.volumeKind, "persistentVolumeClaim");
    assert.equal(loc.dataPath, "/data");
    assert.equal(loc.subPath, "");
  });
  it("finds the BKPR claim template and route prefix", () => {
    const loc = locateTsdb("target", tgt, bkprStatefulSet() as WorkloadObject);
    assert.equal(loc.volume, "data");
    assert.equal(loc.volumeKind, "volumeClaimTemplate");
    assert.equal(loc.dataPath, "/opt/bitnami/prometheus/data");
    assert.equal(loc.url, "http://localhost:9090");
    assert.equal(loc.adminApi, false);
  });
  it("prefers the deepest mount holding the TSDB", () => {
    const w = sourceDeployment() as WorkloadObject;
    const c = w.spec!.template!.spec!.containers![1];
    c.volumeMounts = [
      { name: "config-volume", mountPath: "/" },
      { name: "storage-volume", mountPath: "/data" },
    ];
    assert.equal(locateTsdb("source", src, w).volume, "storage-volume");
  });
  it("ignores its own sidecars when reading back a patched workload", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers!.push({
      name: "ptm-rsyncd",
      volumeMounts: [{ name: "storage-volume", mountPath: "/data" }],
    });
    assert.equal(locateTsdb("source", src, w).volume, "storage-volume");
    assert.throws(
      () => locateTsdb("source", { ...src, container: "ptm-rsyncd" }, w),
      /has no container "ptm-rsyncd"/,
    );
  });
  it("honours an explicit dataPath", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers![1].args = ["--storage.tsdb.path=$(P)"];
    assert.equal(locateTsdb("source", { ...src, dataPath: "/data/" }, w).dataPath, "/data");
  });
  it("refuses a TSDB path on no volume", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers![1].args = ["--storage.tsdb.path=/tmp/tsdb"];
    assert.throws(
      () => locateTsdb("source", src, w),
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
