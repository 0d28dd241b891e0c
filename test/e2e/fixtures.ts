// The demo's starting point, as Kubernetes objects: the prometheus Helm chart's server as a
// Deployment whose storage volume is mounted with a `persistentVolume.subPath`, with two
// days of backfilled history, BKPR's exact Prometheus StatefulSet (which sets no
// --storage.tsdb.path: the Bitnami image's working directory decides), and a small exporter
// that both scrape. The workloads are the fixtures of the unit tests (test/fixtures/
// workloads.ts, built from the published manifests) with the lab's images and these
// additions only: the chart's `server.extraInitContainers` seeds the history, and the two
// configmap-reload containers run a stand-in image (ptm/config-reloader:stand-in).

import * as fs from "node:fs";
import * as path from "node:path";
import { bkprStatefulSet, helmServer } from "../fixtures/workloads";
import { namespace } from "./cluster";

// The demo's own namespaces (the chart's "monitoring" and BKPR's "kubeprod" with a prefix):
// a user's cluster may hold the real ones, and only namespaces the demo labelled are deleted.
// PTM_E2E_NAMESPACE_PREFIX gives one run its own namespaces (e.g. on a lab other runs share).
const PREFIX = process.env.PTM_E2E_NAMESPACE_PREFIX || "ptm-demo";
/** Only the source's namespace, name and container: everything else is discovered. */
export const SOURCE = {
  namespace: `${PREFIX}-monitoring`,
  kind: "Deployment",
  name: "prometheus-server",
  container: "prometheus-server",
};
export const TARGET = {
  namespace: `${PREFIX}-kubeprod`,
  kind: "StatefulSet",
  name: "prometheus",
  container: "prometheus",
};
/** The source's `server.persistentVolume.subPath`. */
export const SOURCE_SUBPATH = "prometheus-db";

export interface FixtureOptions {
  /** The source's image: official-shaped (test/lab/images/build.sh). */
  prometheusImage: string;
  /** The target's image: Bitnami-shaped, as BKPR runs. */
  targetImage: string;
  /** Stands in for the configmap-reload containers; unset: the manifests' own images. */
  reloaderImage?: string;
  toolsImage: string;
  /** Hours of backfilled source history. */
  historyHours: number;
  /** The backfilled history ends this many hours ago (seed-history.sh TO_HOURS; default 3). */
  historyEndHours?: number;
  /** The seed's series per metric and sample interval (seed-history.sh: 20 and 30 s). */
  historySeries?: number;
  historyStepSeconds?: number;
  /** Chart values of the source: `server.retention`, `server.extraFlags`. */
  sourceRetention?: string;
  sourceExtraFlags?: string[];
  /** The BKPR target's `retention_days` (default 183). */
  targetRetentionDays?: number;
  /** The exporter's address as host:port: its Service's ClusterIP, allocated by the cluster. */
  exporterAddress: string;
}

type Obj = Record<string, unknown>;

// The exporter's ClusterIP goes into the scrape configs, so they need no cluster DNS.
function scrapeConfig(self: string, exporterAddress: string): string {
  return [
    "global: {scrape_interval: 15s, evaluation_interval: 1m}",
    "scrape_configs:",
    `  - job_name: prometheus`,
    `    static_configs: [{targets: ["localhost:9090"], labels: {server: "${self}"}}]`,
    "  - job_name: exporter",
    // metrics.txt: busybox httpd sends text/plain for it (nothing for /metrics), which
    // Prometheus 3.x requires of a target (the BKPR target runs 3.x in the lab).
    "    metrics_path: /metrics.txt",
    `    static_configs: [{targets: ["${exporterAddress}"]}]`,
    "",
  ].join("\n");
}

const metricsFile = [
  "# TYPE demo_up gauge",
  ...Array.from({ length: 10 }, (_, i) => `demo_up{series="${i}"} 1`),
  "",
].join("\n");

/** The namespaces and the exporter: applied first, for the ClusterIP the cluster gives it. */
export function exporterFixtures(o: Pick<FixtureOptions, "toolsImage">): Obj[] {
  return [
    namespace(SOURCE.namespace),
    namespace(TARGET.namespace),
    // The exporter: busybox httpd serving a static metrics page.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "exporter", namespace: SOURCE.namespace },
      data: { metrics: metricsFile, "metrics.txt": metricsFile },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "exporter", namespace: SOURCE.namespace },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "exporter" } },
        template: {
          metadata: { labels: { app: "exporter" } },
          spec: {
            // busybox httpd as PID 1 ignores SIGTERM: without this every reset of the
            // namespaces waited out the default 30 s grace period.
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: "httpd",
                image: o.toolsImage,
                imagePullPolicy: "IfNotPresent",
                command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                volumeMounts: [{ name: "www", mountPath: "/www" }],
              },
            ],
            volumes: [{ name: "www", configMap: { name: "exporter" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "exporter", namespace: SOURCE.namespace },
      spec: { selector: { app: "exporter" }, ports: [{ port: 8080 }] },
    },
  ];
}

/** The two Prometheus servers and what they need, scraping the exporter at its address. */
export function fixtures(o: FixtureOptions): Obj[] {
  const seed = fs.readFileSync(path.join(__dirname, "seed-history.sh"), "utf8");
  return [
    // The source: the prometheus Helm chart's server (release "prometheus", default values,
    // persistentVolume.subPath set), its ConfigMap, PVC and ServiceAccount.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
      data: {
        "prometheus.yml": scrapeConfig("source", o.exporterAddress),
        "seed-history.sh": seed,
      },
    },
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "8Gi" } } },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
    },
    labSource(o),
    // The target: BKPR's StatefulSet, its ConfigMap (prometheus.yml at conf/custom) and
    // ServiceAccount.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "prometheus", namespace: TARGET.namespace },
      data: { "prometheus.yml": scrapeConfig("target", o.exporterAddress) },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "prometheus", namespace: TARGET.namespace },
    },
    inNamespace(
      bkprStatefulSet({
        image: o.targetImage,
        reloadImage: o.reloaderImage,
        retentionDays: o.targetRetentionDays,
      }),
      TARGET.namespace,
    ),
  ];
}

/** A published manifest's workload, moved into the demo's own namespace. */
function inNamespace(w: Obj, namespace: string): Obj {
  return { ...w, metadata: { ...(w.metadata as Obj), namespace } };
}

type Container = { name: string; image?: string; volumeMounts?: Obj[] };

/** The chart's Deployment with the lab's images, and the history seeded by an init container. */
function labSource(o: FixtureOptions): Obj {
  const w = helmServer({
    subPath: SOURCE_SUBPATH,
    image: o.prometheusImage,
    ...(o.sourceRetention ? { retention: o.sourceRetention } : {}),
    ...(o.sourceExtraFlags ? { extraFlags: o.sourceExtraFlags } : {}),
  });
  const spec = (w.spec as { template: { spec: Obj } }).template.spec;
  const [reloader, server] = spec.containers as Container[];
  if (o.reloaderImage) reloader.image = o.reloaderImage;
  // server.extraInitContainers: the same volume and subPath as the server's TSDB.
  const storage = (server.volumeMounts ?? []).find((m) => m.name === "storage-volume");
  spec.initContainers = [
    {
      name: "seed-history",
      image: o.prometheusImage,
      imagePullPolicy: "IfNotPresent",
      command: ["sh", "/etc/config/seed-history.sh"],
      env: [
        { name: "DATA", value: "/data" },
        { name: "FROM_HOURS", value: String(o.historyHours) },
        ...(o.historyEndHours !== undefined
          ? [{ name: "TO_HOURS", value: o.historyEndHours.toFixed(4) }]
          : []),
        ...(o.historySeries ? [{ name: "SERIES", value: String(o.historySeries) }] : []),
        ...(o.historyStepSeconds
          ? [{ name: "STEP_SECONDS", value: String(o.historyStepSeconds) }]
          : []),
      ],
      volumeMounts: [{ name: "config-volume", mountPath: "/etc/config" }, storage],
    },
  ];
  return inNamespace(w, SOURCE.namespace);
}
