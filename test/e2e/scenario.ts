// A whole migration in a real cluster with the real Pulumi engine, through the Automation API.
// Shared by the demo (which prints what happens) and the end-to-end test (which asserts it).

import { LocalWorkspace, Stack, UpResult } from "@pulumi/pulumi/automation";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
import {
  apply,
  currentCluster,
  deleteOwnNamespaces,
  execIn,
  kubectl,
  podOf,
  podTemplate,
  rolloutStatus,
  waitFor,
  Workload,
} from "./cluster";
import { ClusterChoice } from "./clusterChoice";
import { exporterFixtures, FixtureOptions, fixtures, SOURCE, TARGET } from "./fixtures";

export const REPO = path.resolve(__dirname, "..", "..");
const PROJECT = "prometheus-tsdb-migration";
const H = 3_600_000;

export interface ScenarioOptions {
  /** The source's image: official-shaped (ptm/prometheus:<version>). */
  prometheusImage: string;
  /** The BKPR target's image: Bitnami-shaped (ptm/bitnami-prometheus:<version>). */
  targetImage: string;
  /** Stands in for the charts' configmap-reload containers; unset: the manifests' own images. */
  reloaderImage?: string;
  sidecarImage: string;
  historyHours: number;
  log: (line: string) => void;
  /** Fixture variations (test/e2e/fixtures.ts); the e2e tests use the defaults. */
  fixture?: Pick<
    FixtureOptions,
    | "historySeries"
    | "historyStepSeconds"
    | "historyEndHours"
    | "sourceRetention"
    | "sourceExtraFlags"
    | "targetRetentionDays"
  >;
}

export const DEFAULTS: ScenarioOptions = {
  prometheusImage: "docker.io/ptm/prometheus:2.42",
  // BKPR pins bitnami/prometheus:2.26.0 (images.json); the lab's target is an upstream
  // build in the same Bitnami shape at a version that loads includeHead's overlapping head
  // block (2.39+). Debian's 2.42 can't stand in: Debian changed its default TSDB path.
  targetImage: "docker.io/ptm/bitnami-prometheus:3.13.5",
  reloaderImage: "docker.io/ptm/config-reloader:stand-in",
  sidecarImage: "docker.io/ptm/rsync:latest",
  historyHours: 50,
  log: (l) => process.stdout.write(l + "\n"),
};

/**
 * Outside the lab (PTM_DEMO_CONTEXT) the lab's images don't exist: public ones, each a
 * setting. The source runs the official image (the Helm chart's), the target Bitnami's (a 3.x:
 * BKPR's own 2.26 can't read a 3.x source's blocks), the reloaders the manifests' own images.
 */
export function scenarioFor(c: ClusterChoice, env = process.env): ScenarioOptions {
  if (c.lab) return DEFAULTS;
  return {
    ...DEFAULTS,
    prometheusImage: env.PTM_DEMO_SOURCE_IMAGE || "quay.io/prometheus/prometheus:v3.14.0",
    targetImage: env.PTM_DEMO_TARGET_IMAGE || "docker.io/bitnami/prometheus:latest",
    reloaderImage: env.PTM_DEMO_RELOADER_IMAGE || undefined,
    sidecarImage: env.PTM_DEMO_SIDECAR_IMAGE || DEFAULT_SIDECAR_IMAGE,
  };
}

/** Deletes the demo's own namespaces (and so their volumes' claims), to start from scratch. */
export async function resetCluster(log: (l: string) => void): Promise<void> {
  deleteOwnNamespaces([SOURCE.namespace, TARGET.namespace], { wait: true });
  log(`namespaces ${SOURCE.namespace} and ${TARGET.namespace} deleted (if they were there)`);
  // The lab's PVs are Retain: those the deleted claims released are wiped and offered again,
  // or a run of many scenarios would use up the lab's twelve.
  if (currentCluster().lab) {
    execFileSync("bash", [path.join(REPO, "test/lab/recycle-pvs.sh")], { stdio: "ignore" });
  }
}

type Obj = Record<string, unknown>;

/**
 * Applies the fixtures (those `keep` accepts) plus `extra`: the exporter first, then the
 * servers, whose scrape configs name the ClusterIP the cluster gave the exporter.
 */
export function applyFixtures(
  o: ScenarioOptions,
  extra: (exporterAddress: string) => Obj[] = () => [],
  keep: (obj: Obj) => boolean = () => true,
): void {
  apply(exporterFixtures({ toolsImage: o.sidecarImage }).filter(keep));
  const ip = kubectl([
    "get",
    "service",
    "exporter",
    "-n",
    SOURCE.namespace,
    "-o",
    "jsonpath={.spec.clusterIP}",
  ]).trim();
  if (!ip) throw new Error(`service ${SOURCE.namespace}/exporter has no ClusterIP`);
  const exporterAddress = `${ip}:8080`;
  apply([
    ...fixtures({
      prometheusImage: o.prometheusImage,
      targetImage: o.targetImage,
      reloaderImage: o.reloaderImage,
      toolsImage: o.sidecarImage,
      historyHours: o.historyHours,
      exporterAddress,
      ...o.fixture,
    }).filter(keep),
    ...extra(exporterAddress),
  ]);
}

/** Deploys the source and target Prometheus and waits until both serve. */
export async function deployFixtures(o: ScenarioOptions): Promise<void> {
  applyFixtures(o);
  rolloutStatus(SOURCE, 900); // seeding a long history takes minutes
  rolloutStatus(TARGET);
  // The source has loaded its backfilled history once its lowest timestamp is that old.
  await waitFor("source history loaded", 120_000, () => {
    const lowest = Number(
      execIn(
        SOURCE,
        "wget -qO- http://localhost:9090/metrics | grep '^prometheus_tsdb_lowest_timestamp ' | cut -d' ' -f2",
      ),
    );
    return lowest > 0 && lowest < Date.now() - (o.historyHours - 4) * H ? lowest : undefined;
  });
  o.log(
    `fixtures ready: ${SOURCE.kind} ${SOURCE.namespace}/${SOURCE.name} with ${o.historyHours}h of history, ${TARGET.kind} ${TARGET.namespace}/${TARGET.name}`,
  );
}

/**
 * Opens a fresh stack of the program in this repository, with a file backend, on the chosen
 * cluster's context (the program's provider and its kubectl both take it from the config).
 */
export async function openStack(name: string, env: Record<string, string>): Promise<Stack> {
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: name, workDir: REPO },
    { envVars: env },
  );
  await stack.setConfig("kubernetes:context", { value: currentCluster().context });
  return stack;
}

/** Sets object keys with `--path` semantics, as the project's config schema wants objects. */
export async function configure(stack: Stack, config: Record<string, unknown>): Promise<void> {
  for (const [k, v] of Object.entries(config)) {
    if (v !== null && typeof v === "object") {
      for (const [sub, sv] of Object.entries(v as Record<string, string>)) {
        await stack.setConfig(`${PROJECT}:${k}.${sub}`, { value: String(sv) }, true);
      }
    } else {
      await stack.setConfig(`${PROJECT}:${k}`, { value: String(v) });
    }
  }
}

/**
 * The demo's stack: the fixtures' source by namespace, name and container only (kind
 * Deployment is the default; the TSDB path, volume, subPath and API are discovered), the
 * target by its namespace only (the rest is BKPR's default), the sidecar image, phase prepare.
 */
export function configurePrepare(stack: Stack, o: ScenarioOptions = DEFAULTS): Promise<void> {
  const { namespace, name, container } = SOURCE;
  return configure(stack, {
    source: { namespace, name, container },
    target: { namespace: TARGET.namespace },
    sidecarImage: o.sidecarImage,
    phase: "prepare",
  });
}

export function changes(r: UpResult): Record<string, number> {
  const c = { ...(r.summary.resourceChanges ?? {}) } as Record<string, number>;
  delete c.same;
  return c;
}

/** Samples of the backfilled metrics per aligned 2h window, counted by the server itself. */
export function historyCounts(
  w: Workload,
  historyHours: number,
  // The same windows as an earlier call: a run that crosses a 2h boundary would shift them.
  windows?: number[],
): { ends: number[]; counts: number[] } {
  const now = Date.now();
  const ends: number[] = windows ? [...windows] : [];
  for (
    let e = Math.ceil((now - historyHours * H) / (2 * H)) * 2 * H + 2 * H;
    !windows && e <= now - 3 * H;
    e += 2 * H
  ) {
    ends.push(e);
  }
  // One sum per metric: count_over_time drops the name, so two metrics' series would clash.
  const q =
    "sum(count_over_time(demo_requests_total[2h])) + sum(count_over_time(demo_temperature[2h]))";
  return { ends, counts: ends.map((e) => Number(execQuery(w, q, e - 1))) };
}

function execQuery(w: Workload, promql: string, timeMs: number): number {
  const url = `http://localhost:9090/api/v1/query?query=${encodeURIComponent(promql)}&time=${(timeMs / 1000).toFixed(3)}`;
  const out = JSON.parse(execIn(w, `wget -qO- '${url}'`)) as {
    data: { result: { value: [number, string] }[] };
  };
  return out.data.result.reduce((n, r) => n + Number(r.value[1]), 0);
}

/** Raw sample timestamps (ms) of a selector over the last `hours`, from the server itself. */
export function sampleTimes(w: Workload, selector: string, hours: number): number[] {
  const url = `http://localhost:9090/api/v1/query?query=${encodeURIComponent(`${selector}[${hours}h]`)}`;
  const out = JSON.parse(execIn(w, `wget -qO- '${url}'`)) as {
    data: { result: { values: [number, string][] }[] };
  };
  return out.data.result
    .flatMap((r) => r.values.map(([t]) => Math.round(t * 1000)))
    .sort((a, b) => a - b);
}

/**
 * The gap as the target sees it: from the newest sample it holds of the source's own
 * self-scrape (imported) to the oldest sample of its own self-scrape, when that is later.
 */
export function measuredGapMs(hours: number): {
  gapMs: number;
  newestImported: number;
  oldestOwn: number;
} {
  const imported = sampleTimes(TARGET, 'up{job="prometheus",server="source"}', hours);
  const own = sampleTimes(TARGET, 'up{job="prometheus",server="target"}', hours);
  const newestImported = imported.length ? imported[imported.length - 1] : 0;
  const oldestOwn = own.length ? own[0] : Date.now();
  return { gapMs: Math.max(0, oldestOwn - newestImported), newestImported, oldestOwn };
}

/** What the migration may leave behind: its labelled objects, sidecars, snapshot and staging dirs. */
export function leftovers(): string[] {
  // Reverting rolls both pods out once more: look at the new ones.
  rolloutStatus(SOURCE);
  rolloutStatus(TARGET);
  const found: string[] = [];
  // In the scenario's own namespaces: another run in the same cluster is not this one's.
  for (const ns of new Set([SOURCE.namespace, TARGET.namespace])) {
    const objs = kubectl([
      "get",
      "services,networkpolicies,secrets",
      "-n",
      ns,
      "-l",
      `app.kubernetes.io/name=${PROJECT}`,
      "-o",
      "name",
    ]).trim();
    if (objs) found.push(...objs.split("\n"));
  }
  for (const w of [SOURCE, TARGET]) {
    const names = (
      JSON.parse(kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]))
        .spec.template.spec.containers as { name: string }[]
    ).map((c) => c.name);
    for (const n of names) if (n.startsWith("ptm-")) found.push(`${w.name}: container ${n}`);
  }
  const snap = execIn(SOURCE, "ls /data/snapshots 2>/dev/null || true").trim();
  if (snap) found.push(`source snapshots: ${snap.replace(/\n/g, " ")}`);
  const staging = execIn(
    TARGET,
    "ls -d /opt/bitnami/prometheus/data/ptm-staging 2>/dev/null || true",
  ).trim();
  if (staging) found.push(`target staging: ${staging}`);
  return found;
}

export { podOf, podTemplate, SOURCE, TARGET };

/** Environment for the Pulumi CLI: the ambient one (test/engine/env.sh) plus a private backend. */
export function pulumiEnv(kubeconfig = currentCluster().kubeconfig): Record<string, string> {
  const backend =
    process.env.PTM_E2E_BACKEND ?? fs.mkdtempSync(path.join(os.tmpdir(), "ptm-e2e-backend-"));
  fs.mkdirSync(backend, { recursive: true });
  return {
    KUBECONFIG: kubeconfig,
    PULUMI_BACKEND_URL: `file://${backend}`,
    PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "",
    PULUMI_SKIP_UPDATE_CHECK: "true",
  };
}
