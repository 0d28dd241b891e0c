// End to end (issue 11): from the prometheus Helm chart's server (a Deployment) into a
// prometheus-operator `Prometheus` resource with replicas: 2 and a volumeClaimTemplate, with
// the real engine and the real operator (test/lab/operator.sh: built from its Go module, its
// CRDs from the same version). Every claim is checked with our own kubectl and PromQL.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import {
  currentCluster,
  deleteOwnNamespaces,
  execIn,
  kubectl,
  namespace,
  podTemplate,
  rolloutStatus,
  waitFor,
} from "./cluster";
import { SOURCE, TARGET as BKPR } from "./fixtures";
import {
  applyFixtures,
  changes,
  configure,
  DEFAULTS,
  historyCounts,
  openStack,
  pulumiEnv,
  REPO,
} from "./scenario";

const log = (l: string) => process.stdout.write(`      ${l}\n`);
const quiet = () => undefined;
const H = 3_600_000;
const HISTORY_HOURS = 24;

const NS = "kps";
const NAME = "kube-prometheus-stack-prometheus";
const STS = `prometheus-${NAME}`;
const PODS = [`${STS}-0`, `${STS}-1`];
const PROMETHEUS = "prometheuses.monitoring.coreos.com";

type Obj = Record<string, unknown>;

/** The resource as kube-prometheus-stack renders it (values' defaults), with the lab's image. */
function prometheusResource(exporterAddress: string): Obj[] {
  const scrape = [
    "- job_name: prometheus",
    '  static_configs: [{targets: ["localhost:9090"], labels: {server: "target"}}]',
    "- job_name: exporter",
    `  static_configs: [{targets: ["${exporterAddress}"]}]`,
    "",
  ].join("\n");
  return [
    namespace(NS),
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "kps-additional-scrape-configs", namespace: NS },
      stringData: { "additional-scrape-configs.yaml": scrape },
    },
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "Prometheus",
      metadata: {
        name: NAME,
        namespace: NS,
        labels: { app: NAME, release: "kube-prometheus-stack", heritage: "Helm" },
      },
      spec: {
        image: DEFAULTS.prometheusImage,
        version: "v2.42.0",
        paused: false,
        replicas: 2,
        shards: 1,
        logLevel: "info",
        logFormat: "logfmt",
        listenLocal: false,
        enableAdminAPI: false,
        retention: "10d",
        walCompression: true,
        routePrefix: "/",
        portName: "http-web",
        serviceMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
        additionalScrapeConfigs: {
          name: "kps-additional-scrape-configs",
          key: "additional-scrape-configs.yaml",
        },
        securityContext: {
          runAsGroup: 2000,
          runAsNonRoot: true,
          runAsUser: 1000,
          fsGroup: 2000,
          seccompProfile: { type: "RuntimeDefault" },
        },
        storage: {
          volumeClaimTemplate: {
            spec: {
              storageClassName: "ptm-local",
              accessModes: ["ReadWriteOnce"],
              resources: { requests: { storage: "2Gi" } },
            },
          },
        },
      },
    },
  ];
}

const resourceSpec = () =>
  JSON.parse(kubectl(["get", PROMETHEUS, NAME, "-n", NS, "-o", "json"])) as {
    metadata: { labels?: Record<string, string> };
    spec: Obj;
  };

interface PodState {
  uid: string;
  restarts: number;
  containers: string[];
}
function pods(): Record<string, PodState> {
  const list = JSON.parse(
    kubectl(["get", "pods", "-n", NS, "-l", `operator.prometheus.io/name=${NAME}`, "-o", "json"]),
  ).items as {
    metadata: { name: string; uid: string; deletionTimestamp?: string };
    spec: { containers: { name: string }[] };
    status: { containerStatuses?: { restartCount: number }[] };
  }[];
  const out: Record<string, PodState> = {};
  for (const p of list.filter((x) => !x.metadata.deletionTimestamp)) {
    out[p.metadata.name] = {
      uid: p.metadata.uid,
      restarts: (p.status.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0),
      containers: p.spec.containers.map((c) => c.name),
    };
  }
  return out;
}

/** PromQL in one pod's Prometheus container. */
function query(pod: string, promql: string, timeMs: number): number {
  const url = `http://localhost:9090/api/v1/query?query=${encodeURIComponent(promql)}&time=${(timeMs / 1000).toFixed(3)}`;
  const out = JSON.parse(
    kubectl(["exec", "-n", NS, pod, "-c", "prometheus", "--", "wget", "-qO-", url]),
  ) as { data: { result: { value: [number, string] }[] } };
  return out.data.result.reduce((n, r) => n + Number(r.value[1]), 0);
}
const HISTORY_Q =
  "sum(count_over_time(demo_requests_total[2h])) + sum(count_over_time(demo_temperature[2h]))";

describe("end to end: into a prometheus-operator Prometheus with 2 replicas (issue 11)", function () {
  this.timeout(40 * 60_000);
  let stack: Stack;
  let ends: number[];
  let sourceCounts: number[];
  let original: { spec: Obj; labels?: Record<string, string>; source: unknown };
  let afterRollout: Record<string, PodState>;

  before(async function () {
    // The operator, its CRDs and its reloader image (built from the Go module, cached).
    if (currentCluster().lab) {
      execFileSync("bash", [path.join(REPO, "test/lab/operator.sh"), "up"], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
    kubectl(["get", "crd", PROMETHEUS]);
    deleteOwnNamespaces([SOURCE.namespace, BKPR.namespace, NS], { wait: true });
    execFileSync("bash", [path.join(REPO, "test/lab/recycle-pvs.sh")], { stdio: "ignore" });
    // The Helm chart's server as the source (the e2e fixtures without the BKPR target).
    applyFixtures({ ...DEFAULTS, historyHours: HISTORY_HOURS }, prometheusResource, (o) => {
      const m = o.metadata as { name: string; namespace?: string };
      return (
        m.namespace !== BKPR.namespace && !(o.kind === "Namespace" && m.name === BKPR.namespace)
      );
    });
    rolloutStatus(SOURCE);
    await waitFor(
      "the operator's StatefulSet",
      120_000,
      () =>
        kubectl(["get", "statefulset", STS, "-n", NS, "--ignore-not-found", "-o", "name"]).trim() ||
        undefined,
    );
    rolloutStatus({ namespace: NS, kind: "StatefulSet", name: STS, container: "prometheus" });
    await waitFor("source history loaded", 180_000, () => {
      const lowest = Number(
        execIn(
          SOURCE,
          "wget -qO- http://localhost:9090/metrics | grep '^prometheus_tsdb_lowest_timestamp ' | cut -d' ' -f2",
        ),
      );
      return lowest > 0 && lowest < Date.now() - (HISTORY_HOURS - 4) * H ? lowest : undefined;
    });
    ({ ends, counts: sourceCounts } = historyCounts(SOURCE, HISTORY_HOURS));
    assert.ok(sourceCounts.length >= 8 && sourceCounts.every((c) => c > 0), String(sourceCounts));
    const r = resourceSpec();
    original = { spec: r.spec, labels: r.metadata.labels, source: podTemplate(SOURCE) };
    stack = await openStack(`e2e-kps-${Date.now()}`, pulumiEnv());
    const { namespace, name, container } = SOURCE;
    await configure(stack, {
      source: { namespace, name, container },
      target: { namespace: NS, kind: "Prometheus", name: NAME },
      sidecarImage: DEFAULTS.sidecarImage,
      acceptGap: "true",
      phase: "prepare",
    });
  });

  after(async function () {
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    // Its two claims would hold two of the lab's PVs; the source's namespace is the other
    // e2e tests' to reset.
    deleteOwnNamespaces([NS], { wait: false });
  });

  it("prepares: the sidecar goes in through spec.containers, into both replicas", async () => {
    const t0 = Date.now();
    await stack.up({ onOutput: quiet });
    log(`prepare: ${Math.round((Date.now() - t0) / 1000)} s`);
    const spec = resourceSpec().spec as { containers?: { name: string }[] };
    assert.deepEqual(
      (spec.containers ?? []).map((c) => c.name),
      ["ptm-rsync"],
    );
    afterRollout = pods();
    assert.deepEqual(Object.keys(afterRollout).sort(), PODS);
    for (const p of PODS) assert.ok(afterRollout[p].containers.includes("ptm-rsync"), p);
    // The operator's own settings hold for the sidecar: non-root, read-only root filesystem.
    const id = kubectl(["exec", "-n", NS, PODS[0], "-c", "ptm-rsync", "--", "id", "-u"]).trim();
    assert.equal(id, "1000");
  });

  it("migrates into every replica; both answer for the source's history, window for window", async () => {
    await configure(stack, { phase: "migrate" });
    const t0 = Date.now();
    const r = await stack.up({ onOutput: quiet });
    log(`migrate: ${Math.round((Date.now() - t0) / 1000)} s`);
    const m = r.outputs.migration.value as {
      replicas: { pod: string; verification: { ok: boolean } }[];
    };
    assert.deepEqual(
      m.replicas.map((x) => [x.pod, x.verification.ok]),
      PODS.map((p) => [p, true]),
    );
    for (const p of PODS) {
      const counts = ends.map((e) => query(p, HISTORY_Q, e - 1));
      log(`${p}: ${counts.length} windows, ${counts.reduce((a, b) => a + b, 0)} samples`);
      assert.deepEqual(counts, sourceCounts, p);
    }
  });

  it("no replica restarted after its sidecar rollout, and the operator kept the sidecar", () => {
    const now = pods();
    for (const p of PODS) {
      assert.equal(now[p].uid, afterRollout[p].uid, `${p} was replaced`);
      assert.equal(now[p].restarts, afterRollout[p].restarts, `${p} restarted`);
      assert.ok(now[p].containers.includes("ptm-rsync"), `${p} lost its sidecar`);
    }
    const sts = JSON.parse(kubectl(["get", "statefulset", STS, "-n", NS, "-o", "json"]));
    assert.ok(
      (sts.spec.template.spec.containers as { name: string }[]).some((c) => c.name === "ptm-rsync"),
    );
  });

  it("a second up changes nothing", async () => {
    // What would change, resource by resource, for the failure message.
    let diff = "";
    await stack.preview({ diff: true, onOutput: (o) => (diff += o) });
    const changed = diff
      .split("\n")
      .filter((l) => /^\s*[~+-]{1,2}\s|^\s*[~+-]\s*\w+:/.test(l))
      .slice(0, 60)
      .join("\n");
    const r = await stack.up({ onOutput: quiet });
    assert.deepEqual(changes(r), {}, changed);
  });

  it("the revert gives the resource its spec back exactly, and the source its pod template", async () => {
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    const t0 = Date.now();
    await stack.up({ onOutput: quiet });
    log(`revert: ${Math.round((Date.now() - t0) / 1000)} s`);
    const r = resourceSpec();
    assert.deepEqual(r.spec, original.spec);
    assert.deepEqual(r.metadata.labels, original.labels);
    assert.deepEqual(podTemplate(SOURCE), original.source);
    const sts = JSON.parse(kubectl(["get", "statefulset", STS, "-n", NS, "-o", "json"]));
    const names = (sts.spec.template.spec.containers as { name: string }[]).map((c) => c.name);
    assert.ok(!names.some((n) => n.startsWith("ptm-")), names.join(","));
    const ours = kubectl([
      "get",
      "services,networkpolicies,secrets",
      "-A",
      "-l",
      "app.kubernetes.io/name=prometheus-tsdb-migration",
      "-o",
      "name",
    ]).trim();
    assert.equal(ours, "");
    // and the history stays on both replicas
    rolloutStatus({ namespace: NS, kind: "StatefulSet", name: STS, container: "prometheus" });
    for (const p of PODS)
      assert.deepEqual(
        ends.map((e) => query(p, HISTORY_Q, e - 1)),
        sourceCounts,
        p,
      );
  });
});
