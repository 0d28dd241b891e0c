// kubectl helpers for the demo and the end-to-end test: apply fixtures, wait, and ask the
// Prometheus servers our own questions (never the program's outputs).

import { execFileSync } from "node:child_process";

export interface Workload {
  namespace: string;
  kind: string;
  name: string;
  container: string;
}

export function kubectl(args: string[], input?: string): string {
  return execFileSync("kubectl", args, {
    input,
    encoding: "utf8",
    maxBuffer: 64 * 2 ** 20,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

export function apply(objects: object[]): void {
  kubectl(
    ["apply", "--server-side", "--field-manager=ptm-e2e-fixture", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: objects,
    }),
  );
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
