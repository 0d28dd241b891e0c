// prometheus-resource.sh against a real API server with prometheus-operator's CRD and the
// operator running (test/lab/operator.sh): what the revert gives back is the resource's spec,
// exactly, whatever the user had in spec.containers, spec.volumes, metadata.labels and
// spec.enableAdminAPI (issue 11). The resources have replicas: 0, so the operator generates
// its StatefulSet (which the script waits on) without starting pods: it takes seconds.

import * as assert from "node:assert/strict";
import { execFileSync, execSync } from "node:child_process";
import * as path from "node:path";
import { localScript } from "../../components/cluster/kubectl";
import { apply, currentCluster, deleteOwnNamespaces, kubectl, namespace, waitFor } from "./cluster";
import { REPO } from "./scenario";

const NS = "ptm-prom-script";
const PROMETHEUS = "prometheuses.monitoring.coreos.com";
type Obj = Record<string, unknown>;

const CONTAINER = {
  name: "ptm-rsync",
  image: "docker.io/ptm/rsync:latest",
  command: ["sh", "-c", "sleep 1"],
  volumeMounts: [{ name: "ptm-scratch", mountPath: "/ptm-scratch" }],
};
const VOLUME = { name: "ptm-scratch", emptyDir: { sizeLimit: "256Mi" } };
const LABELS =
  "prometheus-tsdb-migration.io/patched-by=script prometheus-tsdb-migration.io/role=target";
const ENV = {
  PTM_CONTAINER: JSON.stringify(CONTAINER),
  PTM_CONTAINER_NAME: CONTAINER.name,
  PTM_VOLUME: JSON.stringify(VOLUME),
  PTM_VOLUME_NAME: VOLUME.name,
  PTM_LABELS: LABELS,
};

/** Runs the script exactly as the program does (lib.sh + script in one `sh -c`). */
function run(args: string[], env: Record<string, string> = {}): string {
  const s = localScript("prometheus-resource", args, currentCluster());
  return execSync(s.command, {
    env: { ...process.env, ...s.environment, ...ENV, ...env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

function resource(name: string, spec: Obj, labels?: Record<string, string>): Obj {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "Prometheus",
    metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
    spec: { image: "docker.io/ptm/prometheus:2.42", version: "v2.42.0", replicas: 0, ...spec },
  };
}

const live = (name: string) =>
  JSON.parse(kubectl(["get", PROMETHEUS, name, "-n", NS, "-o", "json"])) as {
    metadata: { labels?: Record<string, string> };
    spec: Obj;
  };
const generated = (name: string) =>
  JSON.parse(kubectl(["get", "statefulset", `prometheus-${name}`, "-n", NS, "-o", "json"])) as {
    spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } };
  };

describe("prometheus-resource.sh gives a Prometheus resource back exactly (issue 11)", function () {
  this.timeout(10 * 60_000);

  before(async function () {
    // The operator, its CRDs and its reloader image (built from the Go module, cached).
    if (currentCluster().lab) {
      execFileSync("bash", [path.join(REPO, "test/lab/operator.sh"), "up"], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
    deleteOwnNamespaces([NS], { wait: true });
    apply([
      namespace(NS),
      // kube-prometheus-stack's shape: labels, enableAdminAPI false, no containers.
      resource("kps", { enableAdminAPI: false }, { release: "kube-prometheus-stack" }),
      // A user's own sidecar and volume, no labels, enableAdminAPI unset.
      resource("own", {
        containers: [{ name: "auth-proxy", image: "docker.io/ptm/rsync:latest" }],
        volumes: [{ name: "proxy-config", emptyDir: {} }],
      }),
    ]);
    for (const n of ["kps", "own"]) {
      await waitFor(
        `StatefulSet of ${n}`,
        120_000,
        () =>
          kubectl([
            "get",
            "statefulset",
            `prometheus-${n}`,
            "-n",
            NS,
            "--ignore-not-found",
            "-o",
            "name",
          ]).trim() || undefined,
      );
    }
  });

  after(() => {
    deleteOwnNamespaces([NS], { wait: false });
  });

  for (const name of ["kps", "own"]) {
    it(`${name}: the sidecar is added to spec.containers and removed again, spec and labels as before`, () => {
      const before = live(name);
      const added = run(["add-sidecar", NS, name]);
      const during = live(name);
      const own = ((before.spec.containers as Obj[] | undefined) ?? []).map((c) => c.name);
      assert.deepEqual(
        (during.spec.containers as Obj[]).map((c) => c.name),
        [...own, "ptm-rsync"],
      );
      assert.equal(during.metadata.labels?.["prometheus-tsdb-migration.io/role"], "target");
      assert.match(
        added,
        name === "kps"
          ? /"containers":"created".*"labels":"added"/
          : /"containers":"appended".*"labels":"created"/,
      );
      run(["wait-generated", NS, name, `prometheus-${name}`, "has-container", "ptm-rsync", "120"]);
      assert.ok(generated(name).spec.template.spec.containers.some((c) => c.name === "ptm-rsync"));

      run(["remove-sidecar", NS, name, `prometheus-${name}`, "120"], {
        PULUMI_COMMAND_STDOUT: added,
      });
      const after = live(name);
      assert.deepEqual(after.spec, before.spec);
      assert.deepEqual(after.metadata.labels, before.metadata.labels);
      assert.ok(!generated(name).spec.template.spec.containers.some((c) => c.name === "ptm-rsync"));
      // a second removal finds nothing to remove
      run(["remove-sidecar", NS, name, `prometheus-${name}`, "60"], {
        PULUMI_COMMAND_STDOUT: added,
      });
      assert.deepEqual(live(name).spec, before.spec);
    });

    it(`${name}: spec.enableAdminAPI goes back to what it was (${name === "kps" ? "false" : "unset"})`, () => {
      const before = live(name);
      const out = run(["enable-admin-api", NS, name]);
      assert.equal(out, `{"changed":true,"was":"${name === "kps" ? "false" : "unset"}"}`);
      assert.equal(live(name).spec.enableAdminAPI, true);
      run([
        "wait-generated",
        NS,
        name,
        `prometheus-${name}`,
        "has-flag",
        "--web.enable-admin-api",
        "120",
      ]);
      run(["restore-admin-api", NS, name, `prometheus-${name}`, "120"], {
        PULUMI_COMMAND_STDOUT: out,
      });
      const after = live(name);
      assert.deepEqual(after.spec, before.spec);
      assert.equal("enableAdminAPI" in after.spec, name === "kps");
      const args =
        generated(name).spec.template.spec.containers.find((c) => c.name === "prometheus")!.args ??
        [];
      assert.ok(!args.includes("--web.enable-admin-api"));
    });
  }

  it("kps: added again as an update (the first output in PULUMI_COMMAND_STDOUT), the revert still removes the list it created", () => {
    const before = live("kps");
    const first = run(["add-sidecar", NS, "kps"]);
    const again = run(["add-sidecar", NS, "kps"], { PULUMI_COMMAND_STDOUT: first });
    assert.equal(again, first);
    assert.equal((live("kps").spec.containers as Obj[]).length, 1);
    run(["remove-sidecar", NS, "kps", "prometheus-kps", "120"], { PULUMI_COMMAND_STDOUT: again });
    assert.deepEqual(live("kps").spec, before.spec);
    assert.deepEqual(live("kps").metadata.labels, before.metadata.labels);
  });

  it("an admin API that is on already is left alone, at both ends", () => {
    kubectl([
      "patch",
      PROMETHEUS,
      "own",
      "-n",
      NS,
      "--type=merge",
      "-p",
      '{"spec":{"enableAdminAPI":true}}',
    ]);
    const out = run(["enable-admin-api", NS, "own"]);
    assert.equal(out, '{"changed":false}');
    run(["restore-admin-api", NS, "own", "prometheus-own", "60"], { PULUMI_COMMAND_STDOUT: out });
    assert.equal(live("own").spec.enableAdminAPI, true);
  });
});
