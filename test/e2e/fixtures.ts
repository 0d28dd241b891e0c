// The demo's starting point, as Kubernetes objects: a source Prometheus Deployment with a
// persistent volume, `strategy: Recreate` and two days of backfilled history, a BKPR-shaped
// target StatefulSet, and a small exporter that both scrape.

import * as fs from "node:fs";
import * as path from "node:path";

export const SOURCE = {
  namespace: "monitoring",
  kind: "Deployment",
  name: "prometheus-server",
  container: "prometheus",
};
export const TARGET = {
  namespace: "kubeprod",
  kind: "StatefulSet",
  name: "prometheus",
  container: "prometheus",
};
/** A fixed ClusterIP for the exporter, so that scrape configs need no cluster DNS. */
export const EXPORTER_IP = "10.96.100.100";

export interface FixtureOptions {
  prometheusImage: string;
  toolsImage: string;
  /** Hours of backfilled source history. */
  historyHours: number;
}

type Obj = Record<string, unknown>;

function scrapeConfig(self: string): string {
  return [
    "global: {scrape_interval: 15s, evaluation_interval: 1m}",
    "scrape_configs:",
    `  - job_name: prometheus`,
    `    static_configs: [{targets: ["localhost:9090"], labels: {server: "${self}"}}]`,
    "  - job_name: exporter",
    `    static_configs: [{targets: ["${EXPORTER_IP}:8080"]}]`,
    "",
  ].join("\n");
}

const metricsFile = [
  "# TYPE demo_up gauge",
  ...Array.from({ length: 10 }, (_, i) => `demo_up{series="${i}"} 1`),
  "",
].join("\n");

export function fixtures(o: FixtureOptions): Obj[] {
  const seed = fs.readFileSync(path.join(__dirname, "seed-history.sh"), "utf8");
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: SOURCE.namespace } },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: TARGET.namespace } },
    // The exporter: busybox httpd serving a static metrics page.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "exporter", namespace: SOURCE.namespace },
      data: { metrics: metricsFile },
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
      spec: { clusterIP: EXPORTER_IP, selector: { app: "exporter" }, ports: [{ port: 8080 }] },
    },
    // The source: the prometheus Helm chart's shape.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
      data: { "prometheus.yml": scrapeConfig("source"), "seed-history.sh": seed },
    },
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "5Gi" } } },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: SOURCE.name, namespace: SOURCE.namespace },
      spec: {
        replicas: 1,
        strategy: { type: "Recreate" },
        selector: { matchLabels: { app: "prometheus", component: "server" } },
        template: {
          metadata: { labels: { app: "prometheus", component: "server" } },
          spec: {
            securityContext: { runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534 },
            initContainers: [
              {
                name: "seed-history",
                image: o.prometheusImage,
                imagePullPolicy: "IfNotPresent",
                command: ["sh", "/etc/config/seed-history.sh"],
                env: [
                  { name: "DATA", value: "/data" },
                  { name: "FROM_HOURS", value: String(o.historyHours) },
                ],
                volumeMounts: [
                  { name: "config-volume", mountPath: "/etc/config" },
                  { name: "storage-volume", mountPath: "/data" },
                ],
              },
            ],
            containers: [
              {
                name: SOURCE.container,
                image: o.prometheusImage,
                imagePullPolicy: "IfNotPresent",
                args: [
                  "--config.file=/etc/config/prometheus.yml",
                  "--storage.tsdb.path=/data",
                  "--storage.tsdb.retention.time=15d",
                  "--web.enable-lifecycle",
                ],
                ports: [{ containerPort: 9090 }],
                readinessProbe: { httpGet: { path: "/-/ready", port: 9090 }, periodSeconds: 5 },
                volumeMounts: [
                  { name: "config-volume", mountPath: "/etc/config" },
                  { name: "storage-volume", mountPath: "/data" },
                ],
              },
            ],
            volumes: [
              { name: "config-volume", configMap: { name: "prometheus-server" } },
              { name: "storage-volume", persistentVolumeClaim: { claimName: "prometheus-server" } },
            ],
          },
        },
      },
    },
    // The target: BKPR's StatefulSet shape.
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "prometheus", namespace: TARGET.namespace },
      data: { "prometheus.yml": scrapeConfig("target") },
    },
    {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: TARGET.name, namespace: TARGET.namespace },
      spec: {
        replicas: 1,
        serviceName: "prometheus",
        selector: { matchLabels: { name: "prometheus" } },
        volumeClaimTemplates: [
          {
            metadata: { name: "data" },
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "5Gi" } } },
          },
        ],
        template: {
          metadata: { labels: { name: "prometheus" } },
          spec: {
            securityContext: { runAsUser: 1001, runAsGroup: 1001, fsGroup: 1001 },
            containers: [
              {
                name: TARGET.container,
                image: o.prometheusImage,
                imagePullPolicy: "IfNotPresent",
                args: [
                  "--config.file=/opt/bitnami/prometheus/conf/prometheus.yml",
                  "--storage.tsdb.path=/opt/bitnami/prometheus/data",
                  "--storage.tsdb.retention.time=15d",
                ],
                ports: [{ containerPort: 9090, name: "web" }],
                readinessProbe: { httpGet: { path: "/-/ready", port: 9090 }, periodSeconds: 5 },
                volumeMounts: [
                  { name: "data", mountPath: "/opt/bitnami/prometheus/data" },
                  { name: "config", mountPath: "/opt/bitnami/prometheus/conf" },
                ],
              },
            ],
            volumes: [{ name: "config", configMap: { name: "prometheus" } }],
          },
        },
      },
    },
  ];
}
