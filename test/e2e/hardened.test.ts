// Hardened pods in the lab: both Prometheus containers run with `readOnlyRootFilesystem: true`
// as non-root (kube-prometheus-stack's default, common in hardened clusters). The sidecars copy
// that securityContext, so they must write only to the scratch volume the patch adds; and the
// revert must take that volume away again. Issue 9 item 14.
//
// The stack also runs with a kubeconfig whose current context points at no cluster, and names
// the lab's context in `kubernetes:context`: the patches and every kubectl must follow the
// stack's config, not the current context. Issue 9 item 13.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import {
  apply,
  currentCluster,
  deleteOwnNamespaces,
  kubectl,
  namespace,
  podTemplate,
  rolloutStatus,
  Workload,
} from "./cluster";
import { LABEL_DOMAINS, ROLE_LABEL } from "../../components/cluster/naming";
import { configure, DEFAULTS, openStack, pulumiEnv } from "./scenario";

// Its own namespace: ptm-hardened, or <PTM_E2E_NAMESPACE_PREFIX>-hardened for a run that must
// not meet another one on a shared lab (test/e2e/fixtures.ts reads the same variable).
const NS = `${process.env.PTM_E2E_NAMESPACE_PREFIX || "ptm"}-hardened`;
/** The lab's one node (test/lab). */
const NODE = "vm";
const SRC: Workload = { namespace: NS, kind: "Deployment", name: "src", container: "prometheus" };
const DST: Workload = { namespace: NS, kind: "StatefulSet", name: "dst", container: "prometheus" };
const HARDENED = {
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
};

function prometheus(dataPath: string, volume: string) {
  return {
    name: "prometheus",
    image: DEFAULTS.prometheusImage,
    imagePullPolicy: "IfNotPresent",
    args: ["--config.file=/etc/prometheus/prometheus.yml", `--storage.tsdb.path=${dataPath}`],
    ports: [{ containerPort: 9090 }],
    readinessProbe: { httpGet: { path: "/-/ready", port: 9090 }, periodSeconds: 5 },
    securityContext: HARDENED,
    volumeMounts: [
      { name: "config", mountPath: "/etc/prometheus" },
      { name: volume, mountPath: dataPath },
    ],
  };
}

/**
 * Uncordons the lab's node, retrying while the API server does not answer (on a shared lab it
 * may be stopped for a minute): a node left cordoned stops every later rollout, this file's
 * and those of any other run on the lab.
 */
async function uncordon(): Promise<void> {
  const end = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      kubectl(["uncordon", NODE]);
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 5_000));
    }
  }
}

const podSecurity = { runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534 };
const config = {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "prometheus", namespace: NS },
  data: { "prometheus.yml": "global: {scrape_interval: 15s}\nscrape_configs: []\n" },
};

const objects = [
  namespace(NS),
  config,
  {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "src-data", namespace: NS },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
  },
  {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: SRC.name, namespace: NS },
    spec: {
      replicas: 1,
      strategy: { type: "Recreate" },
      selector: { matchLabels: { app: "src" } },
      template: {
        metadata: { labels: { app: "src" } },
        spec: {
          securityContext: podSecurity,
          containers: [prometheus("/prometheus", "data")],
          volumes: [
            { name: "config", configMap: { name: "prometheus" } },
            { name: "data", persistentVolumeClaim: { claimName: "src-data" } },
          ],
        },
      },
    },
  },
  {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: DST.name, namespace: NS },
    spec: {
      replicas: 1,
      serviceName: "dst",
      selector: { matchLabels: { app: "dst" } },
      volumeClaimTemplates: [
        {
          metadata: { name: "data" },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
        },
      ],
      template: {
        metadata: { labels: { app: "dst" } },
        spec: {
          securityContext: podSecurity,
          containers: [prometheus("/prometheus", "data")],
          volumes: [{ name: "config", configMap: { name: "prometheus" } }],
        },
      },
    },
  },
];

describe("end to end: sidecars on a read-only root filesystem", function () {
  this.timeout(900_000);
  let stack: Stack;
  let templates: { source: unknown; target: unknown };

  before(async () => {
    deleteOwnNamespaces([NS], { wait: true });
    apply(objects);
    rolloutStatus(SRC);
    rolloutStatus(DST);
    templates = { source: podTemplate(SRC), target: podTemplate(DST) };
    // The lab's kubeconfig plus a context "wrong" (a server nobody listens on), made current.
    const lab = JSON.parse(kubectl(["config", "view", "--raw", "-o", "json"])) as {
      clusters: { name: string; cluster: Record<string, unknown> }[];
      contexts: { name: string; context: Record<string, unknown> }[];
      "current-context": string;
    };
    const labContext = currentCluster().context;
    lab.clusters.push({ name: "wrong", cluster: { server: "https://127.0.0.1:1" } });
    lab.contexts.push({ name: "wrong", context: { cluster: "wrong", user: "admin" } });
    lab["current-context"] = "wrong";
    const wrongCurrent = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ptm-kc-")), "config");
    fs.writeFileSync(wrongCurrent, JSON.stringify(lab), { mode: 0o600 });
    stack = await openStack(`e2e-hardened-${Date.now()}`, pulumiEnv(wrongCurrent));
    await stack.setConfig("kubernetes:kubeconfig", { value: wrongCurrent });
    await stack.setConfig("kubernetes:context", { value: labContext });
    await configure(stack, {
      source: { namespace: NS, kind: "Deployment", name: SRC.name, container: "prometheus" },
      target: { namespace: NS, kind: "StatefulSet", name: DST.name, container: "prometheus" },
      sidecarImage: DEFAULTS.sidecarImage,
      sidecarImagePullPolicy: "IfNotPresent",
      rolloutTimeoutSeconds: 240,
      phase: "prepare",
    });
  });

  after(async () => {
    if (stack) {
      await stack.destroy({ onOutput: () => undefined }).catch(() => undefined);
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    }
    deleteOwnNamespaces([NS], { wait: false });
  });

  it("prepare rolls out both sidecars, which run and write only to their scratch volume", async () => {
    await stack.up({ onOutput: () => undefined });
    for (const [w, sidecar] of [
      [SRC, "ptm-rsyncd"],
      [DST, "ptm-rsync"],
    ] as const) {
      const pods = JSON.parse(
        kubectl(["get", "pods", "-n", NS, "-l", `app=${w.name}`, "-o", "json"]),
      ) as {
        items: {
          status: { containerStatuses: { name: string; ready: boolean; restartCount: number }[] };
        }[];
      };
      const statuses = pods.items.flatMap((p) => p.status.containerStatuses);
      const s = statuses.find((c) => c.name === sidecar);
      assert.ok(s?.ready, `${sidecar} of ${w.name} is ready: ${JSON.stringify(statuses)}`);
      assert.equal(s.restartCount, 0, `${sidecar} of ${w.name} never restarted`);
      const ro = kubectl([
        "exec",
        "-n",
        NS,
        `${w.kind.toLowerCase()}/${w.name}`,
        "-c",
        sidecar,
        "--",
        "sh",
        "-c",
        "touch /probe-ro 2>/dev/null && echo writable || echo read-only",
      ]).trim();
      assert.equal(ro, "read-only", `the root filesystem of ${sidecar} stays read-only`);
    }
    const labels = kubectl([
      "get",
      "statefulset",
      "dst",
      "-n",
      NS,
      "-o",
      "jsonpath={.metadata.labels}",
    ]);
    assert.equal((JSON.parse(labels) as Record<string, string>)[ROLE_LABEL], "target");
    const conf = kubectl([
      "exec",
      "-n",
      NS,
      "deployment/src",
      "-c",
      "ptm-rsyncd",
      "--",
      "ls",
      "/ptm-scratch/run",
    ]);
    assert.match(conf, /rsyncd\.conf/);
  });

  it("the revert removes the sidecars and the scratch volume: templates as they were", async () => {
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    // Nothing was imported, so the target's restart loses nothing: the guard lets it go.
    await stack.up({ onOutput: () => undefined });
    assert.deepEqual(podTemplate(SRC), templates.source);
    assert.deepEqual(podTemplate(DST), templates.target);
    for (const w of [SRC, DST]) {
      const labels = JSON.parse(
        kubectl([
          "get",
          w.kind.toLowerCase(),
          w.name,
          "-n",
          NS,
          "-o",
          "jsonpath={.metadata.labels}",
        ]) || "{}",
      ) as Record<string, string>;
      assert.deepEqual(
        Object.keys(labels).filter((k) => LABEL_DOMAINS.some((d) => k.startsWith(`${d}/`))),
        [],
        `the patch's labels left ${w.name} with it`,
      );
    }
  });

  it("a prepare whose sidecar can't start fails fast with the reason; the revert brings both back (items 18, 20)", async () => {
    await configure(stack, { sidecarImage: "docker.io/ptm/no-such-image:1", phase: "prepare" });
    const t0 = Date.now();
    let output = "";
    await assert.rejects(
      stack.up({ onOutput: (o) => (output += o) }),
      (e: Error) =>
        /can't run \((ErrImagePull|ImagePullBackOff)/.test(e.message + output) &&
        !/timed out|context deadline/i.test(e.message),
    );
    const failedAfter = Math.round((Date.now() - t0) / 1000);
    process.stdout.write(
      `      the failing prepare stopped after ${failedAfter}s (rolloutTimeoutSeconds 240)\n`,
    );
    // The revert, as the README says, with no kubectl by hand.
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    let revertOut = "";
    await stack.up({ onOutput: (o) => (revertOut += o) });
    rolloutStatus(SRC, 120);
    rolloutStatus(DST, 120);
    assert.deepEqual(podTemplate(SRC), templates.source);
    assert.deepEqual(podTemplate(DST), templates.target);
    const lines = revertOut.split("\n").filter((l) => /rollout-settle: deleting pod/.test(l));
    process.stdout.write(
      `      revert: ${lines.map((l) => l.trim()).join(" | ") || "no pod deleted"}\n`,
    );
  });

  // Item 21: every change to a workload is undone by the revert, whether or not its step
  // finished. The admin-API switch appends a flag; a failed create leaves nothing in the state.
  const sourceArgs = () =>
    kubectl([
      "get",
      "deployment",
      SRC.name,
      "-n",
      NS,
      "-o",
      'jsonpath={.spec.template.spec.containers[?(@.name=="prometheus")].args}',
    ]);
  const records = () =>
    Object.keys(
      JSON.parse(
        kubectl([
          "get",
          "deployment",
          SRC.name,
          "-n",
          NS,
          "-o",
          "jsonpath={.metadata.annotations}",
        ]) || "{}",
      ) as Record<string, string>,
    ).filter((k) => k.startsWith("admin-api.prometheus-tsdb-migration.io/"));

  it("an admin-API switch whose rollout fails takes its flag out again before it fails (item 21)", async () => {
    await configure(stack, {
      sidecarImage: DEFAULTS.sidecarImage,
      phase: "prepare",
      includeHead: "false",
      rolloutTimeoutSeconds: 240,
    });
    await stack.up({ onOutput: () => undefined });
    // No node takes the new pod: the rollout after the switch can't finish in time.
    await configure(stack, { includeHead: "true", rolloutTimeoutSeconds: 20 });
    let output = "";
    kubectl(["cordon", NODE]);
    try {
      await assert.rejects(stack.up({ onOutput: (o) => (output += o) }), (e: Error) =>
        /did not roll out with the admin API on within 20s, so --web.enable-admin-api was removed again/.test(
          e.message + output,
        ),
      );
    } finally {
      await uncordon();
    }
    assert.doesNotMatch(sourceArgs(), /enable-admin-api/, "the flag is gone at once");
    assert.deepEqual(records(), [], "and so is its record");
    await configure(stack, { includeHead: "false", rolloutTimeoutSeconds: 240 });
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    await stack.up({ onOutput: () => undefined });
    rolloutStatus(SRC, 120);
    rolloutStatus(DST, 120);
    assert.deepEqual(podTemplate(SRC), templates.source);
    assert.deepEqual(podTemplate(DST), templates.target);
  });

  // Runs `up` with includeHead while no node takes a new pod, so that the switch is still
  // waiting for its rollout when `interrupt` runs, right after the flag is on the source.
  async function upInterrupted(interrupt: (abort: AbortController) => void): Promise<string> {
    const abort = new AbortController();
    let stop = false;
    const watcher = (async () => {
      while (!stop) {
        if (/enable-admin-api/.test(sourceArgs())) {
          interrupt(abort);
          return true;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      return false;
    })();
    kubectl(["cordon", NODE]);
    const result = await stack
      .up({ signal: abort.signal, onOutput: () => undefined })
      .then(
        () => "finished",
        (e: unknown) => `failed: ${String(e).slice(0, 300)}`,
      )
      .finally(uncordon);
    stop = true;
    assert.equal(await watcher, true, `the flag never appeared; the up ${result}`);
    assert.match(result, /^failed/, "the up was stopped before the switch finished");
    return result;
  }

  it("an admin-API switch cancelled (Ctrl-C) after its patch takes its flag out again (item 21)", async () => {
    await configure(stack, { phase: "prepare", includeHead: "false", rolloutTimeoutSeconds: 240 });
    await stack.up({ onOutput: () => undefined });
    // The cancelled up waits for the switch in flight, whose rollout can't finish while the
    // node is cordoned: it times out, and the script takes its flag and record out before it
    // fails. A short timeout makes that the same path in 30 s instead of 240.
    await configure(stack, { includeHead: "true", rolloutTimeoutSeconds: 30 });
    await upInterrupted((abort) => abort.abort());
    assert.doesNotMatch(sourceArgs(), /enable-admin-api/, "the cancelled switch undid itself");
    assert.deepEqual(records(), []);
  });

  it("an admin-API switch killed (SIGKILL) after its patch is undone by the revert, by its record (item 21)", async () => {
    // The revert below waits for real rollouts: the timeout of the prepare again.
    await configure(stack, { rolloutTimeoutSeconds: 240 });
    // Killed hard, as when the machine running `pulumi up` dies: the script can't undo.
    await upInterrupted(() => {
      execFileSync("pkill", ["-9", "-f", `admin-api enable ${NS} deployment ${SRC.name}`]);
      try {
        // Its rollout wait dies with it, as it would with the machine.
        execFileSync("pkill", ["-9", "-f", `rollout status deployment/${SRC.name} -n ${NS}`]);
      } catch {
        // already gone
      }
    });
    assert.match(sourceArgs(), /enable-admin-api/, "the flag stayed");
    assert.deepEqual(records(), [`admin-api.prometheus-tsdb-migration.io/${stack.name}`]);
    // The revert, as the README says: nothing of the switch is in the state, its record is
    // on the workload.
    await configure(stack, { includeHead: "false" });
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    let revertOut = "";
    await stack.up({ onOutput: (o) => (revertOut += o) });
    rolloutStatus(SRC, 120);
    rolloutStatus(DST, 120);
    assert.match(revertOut, /admin-api: removing --web.enable-admin-api from deployment/);
    assert.deepEqual(podTemplate(SRC), templates.source, "args byte for byte as they were");
    assert.deepEqual(podTemplate(DST), templates.target);
    assert.deepEqual(records(), []);
  });
});
