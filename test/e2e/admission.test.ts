// Admission before the rollout (issue 21 item 4), in the lab:
// - a target namespace whose ResourceQuota requires limits refuses, at preview, a sidecar
//   without them: the server-side dry-run names the quota and the key, and no pod changes;
// - rollout-watch.sh, run as the program runs it, stops within seconds when a patched
//   Deployment's or StatefulSet's new pod is refused by that quota, naming it.
// Kept small (CI's budget): the Helm chart's server as source (Deployment) and target
// (StatefulSet, `server.statefulSet.enabled`), with `server.resources` and
// `configmapReload.prometheus.resources` set (chart values), a preview only, no history.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Stack } from "@pulumi/pulumi/automation";
import { readScript } from "../../components/cluster/kubectl";
import { helmServer } from "../fixtures/workloads";
import {
  apply,
  currentCluster,
  deleteOwnNamespaces,
  kubectl,
  namespace,
  podOf,
  podTemplate,
  rolloutStatus,
  waitFor,
  Workload,
} from "./cluster";
import { configure, DEFAULTS, openStack, pulumiEnv } from "./scenario";

const SRC_NS = "adm-src";
const DST_NS = "adm-dst";
const SRC: Workload = {
  namespace: SRC_NS,
  kind: "Deployment",
  name: "prometheus-server",
  container: "prometheus-server",
};
const DST: Workload = { ...SRC, namespace: DST_NS, kind: "StatefulSet" };
const QUOTA = "compute";

type Obj = Record<string, unknown>;
type Container = { name: string; image?: string; resources?: Obj };

/** The chart's server in a namespace, with the lab's images and limits on both containers. */
function server(ns: string, statefulSet: boolean): Obj {
  const w = helmServer({ statefulSet, image: DEFAULTS.prometheusImage });
  const spec = (w.spec as { template: { spec: { containers: Container[] } } }).template.spec;
  const [reloader, prometheus] = spec.containers;
  if (DEFAULTS.reloaderImage) reloader.image = DEFAULTS.reloaderImage;
  reloader.resources = { limits: { cpu: "50m", memory: "32Mi" } };
  prometheus.resources = { limits: { cpu: "500m", memory: "512Mi" } };
  return { ...w, metadata: { ...(w.metadata as Obj), namespace: ns } };
}

const config = (ns: string) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "prometheus-server", namespace: ns },
  data: { "prometheus.yml": "global: {scrape_interval: 15s}\nscrape_configs: []\n" },
});
const account = (ns: string) => ({
  apiVersion: "v1",
  kind: "ServiceAccount",
  metadata: { name: "prometheus-server", namespace: ns },
});

/** A small workload rollout-watch.sh is tried on: busybox, limits set, quick to stop. */
function sleeper(kind: "Deployment" | "StatefulSet", name: string): Obj {
  return {
    apiVersion: "apps/v1",
    kind,
    metadata: { name, namespace: DST_NS },
    spec: {
      replicas: 1,
      ...(kind === "Deployment" ? { strategy: { type: "Recreate" } } : { serviceName: name }),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "main",
              image: DEFAULTS.sidecarImage,
              imagePullPolicy: "IfNotPresent",
              command: ["busybox", "sleep", "3600"],
              resources: { limits: { cpu: "10m", memory: "16Mi" } },
            },
          ],
        },
      },
    },
  };
}

const objects = [
  namespace(SRC_NS),
  namespace(DST_NS),
  {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: { name: QUOTA, namespace: DST_NS },
    spec: { hard: { "limits.cpu": "4", "limits.memory": "4Gi" } },
  },
  config(SRC_NS),
  config(DST_NS),
  account(SRC_NS),
  account(DST_NS),
  {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "prometheus-server", namespace: SRC_NS },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
  },
  server(SRC_NS, false),
  server(DST_NS, true),
  sleeper("Deployment", "watch-deploy"),
  sleeper("StatefulSet", "watch-sts"),
];

/** rollout-watch.sh after lib.sh, as the program runs it (kubectl.ts localScript). */
function rolloutWatch(kind: string, name: string, container: string, timeout: number) {
  const script = `${readScript("cluster", "lib.sh")}\n${readScript("cluster", "rollout-watch.sh")}`;
  const c = currentCluster();
  const t0 = Date.now();
  const r = spawnSync(
    "sh",
    ["-c", script, "rollout-watch", DST_NS, kind, name, container, String(timeout)],
    {
      encoding: "utf8",
      env: { ...process.env, PTM_KUBECONFIG: c.kubeconfig, PTM_KUBE_CONTEXT: c.context },
      timeout: (timeout + 60) * 1000,
    },
  );
  return {
    status: r.status,
    stderr: r.stderr,
    stdout: r.stdout,
    seconds: (Date.now() - t0) / 1000,
  };
}

describe("end to end: admission before the rollout (issue 21 item 4)", function () {
  this.timeout(600_000);
  let stack: Stack;

  before(async () => {
    deleteOwnNamespaces([SRC_NS, DST_NS], { wait: true });
    apply(objects);
    // Only their pods' identities matter here: the preview reads the specs if a server is
    // not ready yet.
    for (const w of [SRC, DST]) await waitFor(`a pod of ${w.name}`, 120_000, () => podOf(w));
    stack = await openStack(`e2e-admission-${Date.now()}`, pulumiEnv());
    await configure(stack, {
      source: { namespace: SRC_NS, name: SRC.name, container: SRC.container },
      target: { namespace: DST_NS, kind: "StatefulSet", name: DST.name, container: DST.container },
      sidecarImage: DEFAULTS.sidecarImage,
      phase: "prepare",
    });
    // A sidecar without a CPU limit (its limits section replaced by a memory limit alone), in
    // a namespace whose quota counts limits.cpu.
    await configure(stack, { sidecarResources: { "limits.memory": "256Mi" } });
  });

  after(async () => {
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    deleteOwnNamespaces([SRC_NS, DST_NS], { wait: false });
  });

  it("a ResourceQuota that requires limits is refused at preview, naming it; no pod changes", async () => {
    const before = {
      src: podOf(SRC),
      dst: podOf(DST),
      templates: [podTemplate(SRC), podTemplate(DST)],
    };
    const t0 = Date.now();
    let out = "";
    await assert.rejects(stack.preview({ onOutput: (l) => void (out += l) }), (e: Error) => {
      out += e.message;
      return true;
    });
    const seconds = (Date.now() - t0) / 1000;
    assert.match(
      out,
      /prometheus-tsdb-migration:sidecarResources: StatefulSet adm-dst\/prometheus-server with the sidecar ptm-rsync would not be admitted: ResourceQuota adm-dst\/compute requires limits\.cpu of every container, and the sidecar ptm-rsync sets none/,
    );
    // The source's namespace has no quota: its pod was admitted, and said so.
    assert.match(
      out,
      /admission: Deployment adm-src\/prometheus-server with the sidecar ptm-rsyncd: admitted by a server-side dry-run/,
    );
    assert.equal(podOf(SRC).uid, before.src.uid);
    assert.equal(podOf(DST).uid, before.dst.uid);
    assert.deepEqual([podTemplate(SRC), podTemplate(DST)], before.templates);
    process.stdout.write(`      preview refused in ${seconds.toFixed(1)} s\n`);
  });

  for (const [kind, name] of [
    ["deployment", "watch-deploy"],
    ["statefulset", "watch-sts"],
  ] as const) {
    it(`rollout-watch stops at once when the ${kind}'s new pod is refused by the quota`, () => {
      const w: Workload = { namespace: DST_NS, kind, name, container: "main" };
      rolloutStatus(w, 120);
      // What a patch without limits does: a container the quota refuses.
      kubectl([
        "patch",
        kind,
        name,
        "-n",
        DST_NS,
        "--type=strategic",
        "-p",
        JSON.stringify({
          spec: {
            template: {
              spec: {
                containers: [
                  {
                    name: "extra",
                    image: DEFAULTS.sidecarImage,
                    imagePullPolicy: "IfNotPresent",
                    command: ["busybox", "sleep", "3600"],
                  },
                ],
              },
            },
          },
        }),
      ]);
      const r = rolloutWatch(kind, name, "extra", 120);
      assert.equal(r.status, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `rollout-watch: ERROR: ${kind} ${DST_NS}/${name} can't create its pod after \\d+s: the cluster refused it \\(ResourceQuota ${DST_NS}/${QUOTA}: .*must specify limits\\.cpu for: extra`,
        ),
      );
      assert.ok(r.seconds < 30, `stopped after ${r.seconds} s`);
      process.stdout.write(`      ${kind}: stopped after ${r.seconds.toFixed(1)} s\n`);
    });
  }
});
