// kubectl helpers for the demo and the end-to-end test: apply fixtures, wait, and ask the
// Prometheus servers our own questions (never the program's outputs). Every command goes to
// the cluster chosen once by clusterChoice.ts (kubeconfig and context both explicit), and
// only namespaces these tests created and labelled are ever deleted.

import * as assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { ClusterChoice } from "./clusterChoice";

export interface Workload {
  namespace: string;
  kind: string;
  name: string;
  container: string;
}

let chosen: ClusterChoice | undefined;

/** Sets the cluster every later kubectl acts on (test/e2e/guard.ts, demo.ts). */
export function useCluster(c: ClusterChoice): void {
  chosen = c;
}

/** The chosen cluster; fails closed when nothing was chosen. */
export function currentCluster(): ClusterChoice {
  if (!chosen)
    throw new Error(
      "no cluster chosen: the demo and the e2e tests act only on the cluster that clusterChoice.ts allows (test/e2e/guard.ts)",
    );
  return chosen;
}

/** kubectl against the chosen cluster, with its kubeconfig and context both explicit. */
export function kubectl(args: string[], input?: string | Buffer): string {
  const c = currentCluster();
  return execFileSync("kubectl", ["--context", c.context, ...args], {
    input,
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: c.kubeconfig },
    maxBuffer: 64 * 2 ** 20,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** The label on everything the demo and the tests create; only what has it is ever deleted. */
export const OWNER_KEY = "app.kubernetes.io/managed-by";
export const OWNER = "prometheus-tsdb-migration-tests";
/** On each namespace: its own name, so a delete can select exactly one labelled namespace. */
export const NAMESPACE_KEY = "app.kubernetes.io/instance";

type Obj = { kind?: string; metadata?: { name?: string; labels?: Record<string, string> } };

/** A namespace's labels, or undefined when it does not exist. */
function namespaceLabels(ns: string): Record<string, string> | undefined {
  const out = kubectl(["get", "namespace", ns, "--ignore-not-found", "-o", "json"]).trim();
  if (!out) return undefined;
  return (
    (JSON.parse(out) as { metadata: { labels?: Record<string, string> } }).metadata.labels ?? {}
  );
}

function notOurs(ns: string): Error {
  return new Error(
    `namespace ${ns} exists and was not created by the demo or the tests (it lacks the label ` +
      `${OWNER_KEY}=${OWNER}): left untouched. Delete it yourself if it is a leftover, or run ` +
      "against another cluster.",
  );
}

/**
 * Applies the objects. A Namespace in the list gets the owner label, and must be new or already
 * ours: an existing one of anybody else's is refused before anything is applied. The objects
 * inside keep exactly their published labels (a fixture without labels stays without): the
 * namespace's label is what makes them ours, and they go with it.
 */
export function apply(objects: object[]): void {
  const items = (objects as Obj[]).map((o) => {
    if (o.kind !== "Namespace") return o;
    const name = o.metadata?.name ?? "";
    const have = namespaceLabels(name);
    if (have && have[OWNER_KEY] !== OWNER) throw notOurs(name);
    const labels = { ...o.metadata?.labels, [OWNER_KEY]: OWNER, [NAMESPACE_KEY]: name };
    return { ...o, metadata: { ...o.metadata, labels } };
  });
  kubectl(
    ["apply", "--server-side", "--field-manager=ptm-e2e-fixture", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  );
}

/** A namespace with the owner label, made by {@link apply}. */
export function namespace(name: string): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name } };
}

/**
 * Deletes namespaces this code created (labelled by {@link apply}); a missing one is fine, an
 * unlabelled one is refused. The delete selects by label, so it can't reach anything else.
 */
export function deleteOwnNamespaces(names: string[], opts: { wait: boolean }): void {
  for (const ns of names) {
    const have = namespaceLabels(ns);
    if (!have) continue;
    if (have[OWNER_KEY] !== OWNER) throw notOurs(ns);
    kubectl([
      "delete",
      "namespaces",
      "-l",
      `${OWNER_KEY}=${OWNER},${NAMESPACE_KEY}=${ns}`,
      `--wait=${opts.wait}`,
      ...(opts.wait ? ["--timeout=180s"] : []),
    ]);
  }
}

export function rolloutStatus(w: Workload, timeoutSeconds = 300): void {
  kubectl([
    "rollout",
    "status",
    `${w.kind.toLowerCase()}/${w.name}`,
    "-n",
    w.namespace,
    `--timeout=${timeoutSeconds}s`,
  ]);
}

/** The pod of a one-replica workload: name, uid, start time and restart counts. */
export function podOf(w: Workload): {
  name: string;
  uid: string;
  restarts: number;
  startTime: string;
} {
  const sel = JSON.parse(
    kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]),
  ).spec.selector.matchLabels as Record<string, string>;
  const selector = Object.entries(sel)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const pods = JSON.parse(kubectl(["get", "pods", "-n", w.namespace, "-l", selector, "-o", "json"]))
    .items as {
    metadata: { name: string; uid: string; deletionTimestamp?: string };
    status: { startTime: string; containerStatuses?: { restartCount: number }[] };
  }[];
  const live = pods.filter((p) => !p.metadata.deletionTimestamp);
  if (live.length !== 1)
    throw new Error(`expected one pod of ${w.kind} ${w.namespace}/${w.name}, found ${live.length}`);
  const p = live[0];
  return {
    name: p.metadata.name,
    uid: p.metadata.uid,
    restarts: (p.status.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0),
    startTime: p.status.startTime,
  };
}

/** The workload's pod template, as the API server holds it. */
export function podTemplate(w: Workload): unknown {
  return JSON.parse(kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]))
    .spec.template;
}

/** Runs a shell command in the Prometheus container of the workload's pod. */
export function execIn(w: Workload, script: string): string {
  return kubectl([
    "exec",
    "-n",
    w.namespace,
    `${w.kind.toLowerCase()}/${w.name}`,
    "-c",
    w.container,
    "--",
    "sh",
    "-c",
    script,
  ]);
}

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  fn: () => T | undefined,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/**
 * Every pod of a workload that exists while it watches (a rollout's pods included, however
 * briefly they live): `kubectl get pods --watch` prints each pod's UID at every change.
 */
export function watchPods(w: Workload): { stop(): Set<string> } {
  const sel = JSON.parse(
    kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]),
  ).spec.selector.matchLabels as Record<string, string>;
  const selector = Object.entries(sel)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const uids = new Set<string>();
  const c = currentCluster();
  const child: ChildProcess = spawn(
    "kubectl",
    [
      "--context",
      c.context,
      "get",
      "pods",
      "-n",
      w.namespace,
      "-l",
      selector,
      "--watch",
      "-o",
      "custom-columns=UID:.metadata.uid",
      "--no-headers",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KUBECONFIG: c.kubeconfig } },
  );
  let err = "";
  child.on("error", (e) => (err += String(e)));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  let rest = "";
  child.stdout!.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) if (l.trim()) uids.add(l.trim());
  });
  return {
    stop() {
      child.kill();
      // A watch that saw nothing has not looked: not "no pods".
      assert.ok(uids.size > 0, `kubectl get pods --watch saw no pod of ${w.name}: ${err}`);
      return uids;
    },
  };
}
