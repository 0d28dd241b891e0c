// Issue 10: the program asks the running servers (pod proxy) at preview, on each published
// shape, with only the source's namespace, name and container set.

import * as assert from "node:assert/strict";
import {
  BKPR_SERVER,
  bkprStatefulSet,
  HELM_SERVER,
  helmServer,
  SOURCE_CONFIG,
} from "../fixtures/workloads";
import { FakeCluster, one, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const containersOf = (patch: Obj) =>
  (((patch.spec as Obj).template as Obj).spec as Obj).containers as Obj[];
const envOf = (c: Obj) =>
  Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));

interface Described {
  dataPath: string;
  volume: string;
  subPath?: string;
  url: string;
  version: string;
  server: string;
  sources: Record<string, string>;
}

function helmCluster(statefulSet: boolean, subPath: string): FakeCluster {
  const kind = statefulSet ? "statefulset" : "deployment";
  return {
    objects: {
      [`${kind}/monitoring/prometheus-server`]: helmServer({ statefulSet, subPath }),
      "statefulset/kubeprod/prometheus": bkprStatefulSet(),
    },
    servers: {
      [`${kind}/monitoring/prometheus-server`]: HELM_SERVER,
      "statefulset/kubeprod/prometheus": BKPR_SERVER,
    },
  };
}

describe("program: discovery from the running servers (issue 10)", () => {
  for (const statefulSet of [false, true]) {
    for (const subPath of ["", "prometheus-db"]) {
      const kind = statefulSet ? "StatefulSet" : "Deployment";
      it(`Helm ${kind}${subPath ? " with persistentVolume.subPath" : ""} into BKPR, preview, only namespace/name/container set`, async () => {
        const r = await runProgram(
          { phase: "prepare", source: { ...SOURCE_CONFIG, kind } },
          helmCluster(statefulSet, subPath),
          { preview: true },
        );
        // Asked through the API server's pod proxy, both servers, all three endpoints.
        const pod = statefulSet ? "prometheus-server-0" : "prometheus-server-7c9d8b5f4-x2x7q";
        for (const ep of ["flags", "runtimeinfo", "buildinfo"]) {
          assert.ok(
            r.commands.includes(
              `kubectl get --raw '/api/v1/namespaces/monitoring/pods/${pod}:9090/proxy/api/v1/status/${ep}'`,
            ),
            r.commands.join("\n"),
          );
          assert.ok(
            r.commands.includes(
              `kubectl get --raw '/api/v1/namespaces/kubeprod/pods/prometheus-0:9090/proxy/api/v1/status/${ep}'`,
            ),
          );
        }
        const source = r.outputs.source as Described;
        assert.equal(source.dataPath, "/data");
        assert.equal(source.volume, "storage-volume");
        assert.equal(source.subPath, subPath || undefined);
        assert.equal(source.version, "3.14.0");
        assert.equal(source.server, `asked pod ${pod}`);
        assert.equal(source.sources.dataPath, `server ${pod}: flag storage.tsdb.path`);
        const target = r.outputs.target as Described;
        assert.equal(target.dataPath, "/opt/bitnami/prometheus/data");
        assert.equal(target.volume, "data");
        // The sidecar sees the same directory of the volume as Prometheus: same subPath.
        const patchType = `kubernetes:apps/v1:${kind}Patch`;
        const patches = r.resources.filter((x) => x.type === patchType);
        const sourcePatch = patches.find(
          (p) => (p.inputs.metadata as Obj).namespace === "monitoring",
        )!;
        const sidecar = containersOf(sourcePatch.inputs).find((c) => c.name === "ptm-rsyncd")!;
        assert.deepEqual((sidecar.volumeMounts as Obj[])[0], {
          name: "storage-volume",
          mountPath: "/data",
          ...(subPath ? { subPath } : {}),
        });
        assert.equal(envOf(sidecar).PTM_DATA, "/data");
        const targetPatch = r.resources.find(
          (p) =>
            p.type === "kubernetes:apps/v1:StatefulSetPatch" &&
            (p.inputs.metadata as Obj).namespace === "kubeprod",
        )!;
        const client = containersOf(targetPatch.inputs).find((c) => c.name === "ptm-rsync");
        assert.equal(envOf(client!).PTM_DATA, "/opt/bitnami/prometheus/data");
      });
    }
  }

  it("a source that can't be reached falls back to its spec, and says so", async () => {
    const c = helmCluster(false, "db");
    delete c.servers!["deployment/monitoring/prometheus-server"];
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c, { preview: true });
    const source = r.outputs.source as Described;
    assert.equal(source.dataPath, "/data");
    assert.equal(source.subPath, "db");
    assert.equal(source.sources.dataPath, "container spec: --storage.tsdb.path");
    assert.equal(source.version, "unknown");
    assert.match(
      source.server,
      /^not reached: GET .*\/status\/flags failed \(exit 1: Error from server \(ServiceUnavailable\)/,
    );
  });

  it("a BKPR target that can't be reached: its spec can't tell, the error names target.dataPath", async () => {
    const c = helmCluster(false, "");
    delete c.servers!["statefulset/kubeprod/prometheus"];
    await assert.rejects(
      runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c, { preview: true }),
      /prometheus-tsdb-migration:target\.dataPath: can't tell where StatefulSet kubeprod\/prometheus keeps its TSDB: the server could not be asked .*Set target\.dataPath/,
    );
  });

  it("the explicit key wins, and works without the server", async () => {
    const c = helmCluster(false, "");
    delete c.servers!["statefulset/kubeprod/prometheus"];
    const r = await runProgram(
      {
        phase: "prepare",
        source: SOURCE_CONFIG,
        target: { dataPath: "/opt/bitnami/prometheus/data" },
      },
      c,
      { preview: true },
    );
    const target = r.outputs.target as Described;
    assert.equal(target.volume, "data");
    // Nothing to check it against (no server, no path in the spec): taken, and said so.
    assert.match(target.sources.dataPath, /^config target\.dataPath \(not checked: .*\)$/);
  });

  it("honours a route prefix: the proxy path and the sidecars' API URL carry it", async () => {
    const c = helmCluster(false, "");
    const w = c.objects["deployment/monitoring/prometheus-server"] as Obj;
    const prom = ((((w.spec as Obj).template as Obj).spec as Obj).containers as Obj[])[1];
    (prom.args as string[]).push("--web.route-prefix=/prom", "--web.listen-address=:9091");
    const r = await runProgram({ phase: "prepare", source: SOURCE_CONFIG }, c);
    assert.ok(
      r.commands.includes(
        "kubectl get --raw '/api/v1/namespaces/monitoring/pods/prometheus-server-7c9d8b5f4-x2x7q:9091/proxy/prom/api/v1/status/flags'",
      ),
      r.commands.join("\n"),
    );
    const source = r.outputs.source as Described;
    assert.equal(source.url, "http://localhost:9091/prom");
    const sidecar = containersOf(one(r, "kubernetes:apps/v1:DeploymentPatch").inputs).find(
      (x) => x.name === "ptm-rsyncd",
    )!;
    assert.equal(envOf(sidecar).PTM_PROM_URL, "http://localhost:9091/prom");
  });

  it("uses the stack's cluster access for the pod list and the proxy", async () => {
    const r = await runProgram(
      {
        phase: "prepare",
        source: SOURCE_CONFIG,
        "kubernetes:kubeconfig": "/tmp/kc",
        "kubernetes:context": "lab",
      },
      helmCluster(false, ""),
      { preview: true },
    );
    const reads = r.commands.filter((x) => / get (pods|--raw) /.test(x) && !/ auth /.test(x));
    assert.ok(reads.length >= 8, reads.join("\n"));
    for (const x of reads)
      assert.match(x, /^kubectl --kubeconfig '\/tmp\/kc' --context 'lab' get /);
    // The RBAC check asks about the same user in the same cluster.
    const asked = r.commands.filter((x) => / (auth |create -f - )/.test(x));
    assert.equal(asked.length, 2, asked.join("\n"));
    assert.ok(r.accessReviews.length > 20);
    for (const x of asked)
      assert.match(
        x,
        /^kubectl --kubeconfig '\/tmp\/kc' --context 'lab' (auth whoami|create -f -) /,
      );
  });
});
