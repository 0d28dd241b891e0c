// Read-only probes of the cluster, run on every preview and up through `command.local.run`.
// They return plain values, so every decision below them is a pure function. A probe that
// can't look fails with what kubectl said; it never passes for "nothing there".

import * as command from "@pulumi/command";
import { ClusterAccess, WorkloadRef } from "../decisions/config";
import { NetworkPolicyObject } from "../decisions/access";
import { StepError } from "../decisions/errors";
import {
  execScript,
  findLabelledWorkloadsCommand,
  getConfigMapsCommand,
  getNetworkPoliciesCommand,
  getPodsCommand,
  getRawCommand,
  getWorkloadCommand,
  workloadArg,
} from "./kubectl";
import { MigrationNames, recognisedPatchedLabels } from "./naming";
import {
  BlockMeta,
  parseProbe,
  parseSnapshotBlocks,
  ProbeResult,
  SnapshotResult,
} from "../decisions/sidecarOutput";
import { TsdbLocation, WorkloadObject } from "../decisions/workload";
import type { Looked } from "../decisions/preview";
import {
  DECISION_RECORD_COMPONENT,
  DECISION_RECORD_KEY,
  DecisionRecord,
  newestDecision,
} from "../decisions/decisionRecord";
import {
  parseCwd,
  parseFlags,
  parseVersion,
  pickPod,
  PodObject,
  proxyPath,
  proxyTarget,
  ServerReport,
} from "../decisions/discovery";

// The command's exit code travels on stderr's last line, so that a failing kubectl is an
// answer to read (RBAC, wrong context, pod not ready) instead of an exception.
const EXIT_MARK = "ptm-exit=";

export interface Ran {
  code: number;
  stdout: string;
  /** What the command printed on stderr, without the exit mark. */
  stderr: string;
}

export async function run(
  cmd: string,
  environment: Record<string, string> = {},
  stdin?: string,
): Promise<Ran> {
  const res = await command.local.run({
    command: `${cmd}; echo "${EXIT_MARK}$?" >&2`,
    environment,
    logging: "none",
    ...(stdin !== undefined ? { stdin } : {}),
  });
  const lines = (res.stderr ?? "").trimEnd().split("\n");
  const last = lines[lines.length - 1] ?? "";
  const code = last.startsWith(EXIT_MARK) ? Number(last.slice(EXIT_MARK.length)) : NaN;
  return {
    code: Number.isInteger(code) ? code : -1,
    stdout: (res.stdout ?? "").trim(),
    stderr: lines.slice(0, -1).join("\n").trim(),
  };
}

/**
 * For a command run as an invoke whose stderr is the user's progress (logging "stderr"): its
 * exit code on stdout's last line instead, read back by {@link ranFromStdout}. A failed
 * kubectl exec (the pod went away) is then an answer, not a rejected invoke, which the
 * program would report as an unhandled exception with a stack.
 */
export function exitOnStdout(cmd: string): string {
  return `${cmd}; echo; echo "${EXIT_MARK}$?"`;
}

export function ranFromStdout(stdout: string, stderr: string): Ran {
  const lines = stdout.trimEnd().split("\n");
  const last = lines[lines.length - 1] ?? "";
  const code = last.startsWith(EXIT_MARK) ? Number(last.slice(EXIT_MARK.length)) : NaN;
  return {
    code: Number.isInteger(code) ? code : -1,
    stdout: lines.slice(0, -1).join("\n").trim(),
    stderr: stderr.trim(),
  };
}

/** The last lines of what a failed command said, for an error message. */
export function said(r: Ran): string {
  const tail = r.stderr.split("\n").slice(-3).join(" | ").trim();
  return `exit ${r.code}${tail ? `: ${tail}` : ", nothing on stderr"}`;
}

async function getJson<T>(cmd: string, step: string): Promise<T | undefined> {
  const r = await run(cmd);
  if (r.code !== 0) {
    throw new StepError(
      step,
      `\`${cmd}\` failed (${said(r)}). Check that kubectl reaches the cluster (KUBECONFIG, ` +
        `context) and may read it, then run again`,
    );
  }
  if (r.stdout === "") return undefined;
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new StepError(
      step,
      `kubectl printed something that is not JSON: ${r.stdout.slice(0, 200)}`,
    );
  }
}

/** The live workload, or undefined when it doesn't exist. */
export function readWorkload(ref: WorkloadRef): Promise<WorkloadObject | undefined> {
  return getJson<WorkloadObject>(
    getWorkloadCommand(ref),
    `read ${ref.kind} ${ref.namespace}/${ref.name}`,
  );
}

/**
 * Asks the workload's running Prometheus for its flags, runtime info and build info, through
 * the API server's pod proxy (`kubectl get --raw .../pods/POD:PORT/proxy/<prefix>/api/v1/...`):
 * no sidecar, Service or port-forward needed, and kubectl's cluster and identity are used.
 * Never throws for a server that can't be asked: the answer says why, and the caller falls
 * back to the container spec (discovery.ts).
 */
export async function readServer(
  ref: WorkloadRef,
  w: WorkloadObject | undefined,
): Promise<ServerReport> {
  const c = w?.spec?.template?.spec?.containers?.find((x) => x.name === ref.container);
  const selector = w?.spec?.selector?.matchLabels ?? {};
  if (!c || Object.keys(selector).length === 0) {
    return { reached: false, why: "no container or pod selector to find its pods by" };
  }
  const pods = await run(getPodsCommand(ref.namespace, selector, ref.access));
  if (pods.code !== 0) return { reached: false, why: `listing its pods failed (${said(pods)})` };
  let items: PodObject[];
  try {
    items = (JSON.parse(pods.stdout) as { items?: PodObject[] }).items ?? [];
  } catch {
    return { reached: false, why: "kubectl get pods printed something that is not JSON" };
  }
  // A ref that names its pod (a replica of a `Prometheus` resource) asks that one.
  const named = ref.pod ? items.filter((p) => p.metadata?.name === ref.pod) : items;
  if (ref.pod && named.length === 0) {
    return { reached: false, why: `its pod ${ref.pod} is not among the pods it selects` };
  }
  const picked = pickPod(named, ref.container);
  if (picked.pod === undefined) return { reached: false, why: picked.why };
  const pod = picked.pod;
  const target = proxyTarget(ref, c);
  const get = async (endpoint: string): Promise<{ json?: unknown; why?: string }> => {
    const path = proxyPath(ref.namespace, pod, target, endpoint);
    const r = await run(getRawCommand(path, ref.access));
    if (r.code !== 0) return { why: `GET ${path} failed (${said(r)})` };
    try {
      return { json: JSON.parse(r.stdout) as unknown };
    } catch {
      return { why: `GET ${path} did not answer JSON: ${r.stdout.slice(0, 120)}` };
    }
  };
  const [flags, runtime, build] = await Promise.all([
    get("/api/v1/status/flags"),
    get("/api/v1/status/runtimeinfo"),
    get("/api/v1/status/buildinfo"),
  ]);
  if (flags.why) return { reached: false, why: flags.why };
  // runtimeinfo and buildinfo exist since 2.14: an older server still tells its flags.
  const optional = <T>(parse: (j: unknown) => T, a: { json?: unknown }): T | undefined => {
    try {
      return a.json === undefined ? undefined : parse(a.json);
    } catch {
      return undefined;
    }
  };
  try {
    const cwd = optional(parseCwd, runtime);
    const version = optional(parseVersion, build);
    return {
      reached: true,
      pod,
      flags: parseFlags(flags.json),
      ...(cwd ? { cwd } : {}),
      ...(version ? { version } : {}),
    };
  } catch (e) {
    return { reached: false, why: (e as Error).message };
  }
}

/** The workloads this migration's patches carry the given role label on (see naming.ts). */
export async function findPatched(
  names: MigrationNames,
  role: "source" | "target",
  access: ClusterAccess | undefined,
): Promise<WorkloadRef[]> {
  // The labels this version writes, then those of earlier versions (naming.ts): one query
  // each, since a selector can't say "either key".
  const found: WorkloadObject[] = [];
  for (const labels of recognisedPatchedLabels(names, role)) {
    const list = await getJson<{ items?: WorkloadObject[] }>(
      findLabelledWorkloadsCommand(labels, access),
      `find the ${role} this stack patched`,
    );
    for (const w of list?.items ?? []) {
      const same = (o: WorkloadObject) =>
        o.kind === w.kind &&
        o.metadata?.namespace === w.metadata?.namespace &&
        o.metadata?.name === w.metadata?.name;
      if (!found.some(same)) found.push(w);
    }
  }
  return found.map((w) => ({
    ...(access ? { access } : {}),
    namespace: w.metadata?.namespace ?? "",
    kind: w.kind === "StatefulSet" ? "StatefulSet" : "Deployment",
    name: w.metadata?.name ?? "",
    container: "",
  }));
}

/** The NetworkPolicies of a namespace. */
export async function readNetworkPolicies(
  namespace: string,
  access: ClusterAccess | undefined,
): Promise<NetworkPolicyObject[]> {
  const list = await getJson<{ items?: NetworkPolicyObject[] }>(
    getNetworkPoliciesCommand(namespace, access),
    `read NetworkPolicies in ${namespace}`,
  );
  return list?.items ?? [];
}

/**
 * Runs probe.sh in a sidecar. `running`: whether the live pod template has the sidecar.
 * Without it the answer is undefined (before the first `prepare`), so that preview can still
 * show everything else; with it, a probe that fails is an error that says why.
 */
export async function probe(
  ref: WorkloadRef,
  container: string,
  snapshot: string,
  running: boolean,
  env: Record<string, string> = {},
): Promise<ProbeResult | undefined> {
  const step = `probe of ${ref.kind} ${ref.namespace}/${ref.name} (container ${container})`;
  const { command: cmd, environment } = execScript(
    ref,
    container,
    "probe",
    [],
    { PTM_SNAPSHOT: snapshot, ...env },
    "PTM_SCRIPT",
    { exec: false },
  );
  const r = await run(cmd, environment);
  if (r.code !== 0) {
    if (!running) return undefined;
    throw new StepError(
      step,
      `kubectl exec failed (${said(r)}). The sidecar is in the pod template but can't be reached: ` +
        `check \`kubectl -n ${ref.namespace} get pods\` (a rollout still running, a crash-looping ` +
        `sidecar, RBAC for pods/exec), then run \`pulumi up\` again`,
    );
  }
  try {
    return parseProbe(r.stdout);
  } catch (e) {
    throw new StepError(step, `its output does not parse: ${(e as Error).message}`);
  }
}

/**
 * probe.sh run in a workload's own Prometheus container (no sidecar needed: the official and
 * Bitnami images have a shell), told where its TSDB and API are. Never throws for a container
 * that can't run it: the answer says why (a shell-less image, no right to exec).
 */
export async function lookIntoTsdb(loc: TsdbLocation, snapshot: string): Promise<Looked> {
  const { command: cmd, environment } = execScript(
    loc.ref,
    loc.ref.container,
    "probe",
    [],
    { PTM_SNAPSHOT: snapshot, PTM_DATA: loc.dataPath, PTM_PROM_URL: loc.url },
    "PTM_SCRIPT",
    { exec: false },
  );
  const r = await run(cmd, environment);
  const where = `kubectl exec into container ${loc.ref.container} of ${workloadArg(loc.ref)}`;
  if (r.code !== 0) return { why: `${where} failed (${said(r)})` };
  try {
    return { probe: parseProbe(r.stdout) };
  } catch (e) {
    return { why: `${where}: probe.sh's output does not parse: ${(e as Error).message}` };
  }
}

/**
 * The blocks of this migration's snapshot (snapshot-blocks.sh in the source sidecar), checked
 * against what the snapshot step reported. Read, not kept: the state holds the step's summary.
 */
export async function readSnapshotBlocks(
  ref: WorkloadRef,
  container: string,
  made: SnapshotResult,
): Promise<BlockMeta[]> {
  const step = "source-snapshot";
  const { command: cmd, environment } = execScript(
    ref,
    container,
    "snapshot-blocks",
    [],
    { PTM_SNAPSHOT: made.snapshot },
    "PTM_SCRIPT",
    { exec: false },
  );
  const r = await run(cmd, environment);
  if (r.code !== 0)
    throw new StepError(
      step,
      `reading the blocks of snapshots/${made.snapshot} in ${ref.kind} ` +
        `${ref.namespace}/${ref.name} (container ${container}) failed (${said(r)}); run ` +
        "`pulumi up` again once the source sidecar answers",
    );
  try {
    return parseSnapshotBlocks(r.stdout, made);
  } catch (e) {
    throw new StepError(step, (e as Error).message.replace(/^source-snapshot: /, ""));
  }
}

/** The pods of a namespace that match a selector, as `kubectl get pods -o json` lists them. */
export async function readPods<T>(
  namespace: string,
  selector: Record<string, string>,
  access: ClusterAccess | undefined,
): Promise<T[]> {
  const list = await getJson<{ items?: T[] }>(
    getPodsCommand(namespace, selector, access),
    `list the pods in ${namespace}`,
  );
  return list?.items ?? [];
}

/**
 * The migration's recorded decision (decisions/decisionRecord.ts), read from its ConfigMap in
 * the target's namespace before anything is planned; undefined before the first decision.
 * Several generations may be listed while a re-decision replaces one: the newest counts.
 */
export async function readDecision(
  names: MigrationNames,
  namespace: string,
  access: ClusterAccess | undefined,
): Promise<DecisionRecord | undefined> {
  const list = await getJson<{ items?: { data?: Record<string, string> }[] }>(
    getConfigMapsCommand(
      namespace,
      {
        "app.kubernetes.io/instance": names.instance,
        "app.kubernetes.io/component": DECISION_RECORD_COMPONENT,
      },
      access,
    ),
    `read the migration's decision record in ${namespace}`,
  );
  return newestDecision((list?.items ?? []).map((c) => c.data?.[DECISION_RECORD_KEY] ?? ""));
}
