// Stack configuration: the raw values Pulumi hands us, validated into typed settings.
// Pure and synchronous, so that every bad input is reported at preview, before anything
// changes, with the name of the offending key.

import { DEFAULT_VERIFY_WINDOWS } from "./verify";

export const PROJECT = "prometheus-tsdb-migration";

/** The phases `pulumi up` can advance to. Unset means: revert everything the migration added. */
export type Phase = "prepare" | "migrate" | "revert";

/**
 * A Deployment or StatefulSet, or a prometheus-operator `Prometheus` resource
 * (`monitoring.coreos.com/v1`), whose generated StatefulSet runs the pods.
 */
export type WorkloadKind = "Deployment" | "StatefulSet" | "Prometheus";

/**
 * Which cluster, and as whom: one kubeconfig and context for the Kubernetes provider and for
 * every kubectl the program runs, so that patches and commands land in the same cluster.
 */
export interface ClusterAccess {
  /** Path of the kubeconfig file. Default: kubectl's own ($KUBECONFIG, ~/.kube/config). */
  kubeconfig?: string;
  /** Context in it. Default: its current context. */
  context?: string;
}

/** Which workload, container and volume hold a Prometheus TSDB. */
export interface WorkloadRef {
  /** The cluster it runs in; unset: kubectl's defaults. */
  access?: ClusterAccess;
  namespace: string;
  kind: WorkloadKind;
  name: string;
  container: string;
  /** The pod volume that holds the TSDB; derived from the container when unset. */
  volume?: string;
  /** The TSDB path inside the container; derived from `--storage.tsdb.path` when unset. */
  dataPath?: string;
  /** Base URL of the Prometheus API as seen from inside the pod; derived when unset. */
  url?: string;
  /**
   * One pod of the workload: commands run in it (`kubectl exec pod/<pod>`) instead of in a
   * pod kubectl picks. The config key `source.pod` chooses which replica of a source with
   * several is read; the program sets it for each replica of a `Prometheus` target.
   */
  pod?: string;
}

export interface MigrationConfig {
  phase: Phase;
  source: WorkloadRef;
  target: WorkloadRef;
  /** Image of both sidecars: must provide a POSIX sh (busybox is enough) and rsync. */
  sidecarImage: string;
  /** Pull policy of the sidecar image. */
  sidecarImagePullPolicy: "IfNotPresent" | "Always" | "Never";
  /** Requests and limits of each sidecar container. */
  sidecarResources: SidecarResources;
  /** Secrets (in each workload's namespace) the sidecar image is pulled with; [] = none. */
  imagePullSecrets: string[];
  /** Passed to `rsync --bwlimit` (e.g. "20m"); empty means unlimited. */
  bandwidthLimit: string;
  /**
   * Parallel rsync streams of the copy, over disjoint blocks (1..16), or "auto": one, and
   * one more while the copy gets 10% faster (copy.sh), up to {@link autoStreamsMax}.
   */
  copyStreams: number | "auto";
  /** Snapshot the source head too (needs the admin API), which closes the gap on 2.39+. */
  includeHead: boolean;
  /** How long `migrate` may wait for the next source compaction to shrink the gap. 0 = fail. */
  maxWaitMinutes: number;
  /** Accept a non-zero gap instead of failing with advice. */
  acceptGap: boolean;
  trimToTargetRetention: boolean;
  /** At most this many time windows counted on both servers by the verification; 0 = all. */
  verifyWindows: number;
  /** Seconds to wait for a patched workload to roll out. */
  rolloutTimeoutSeconds: number;
  /** Revert even when restarting the target now would drop some of its own samples. */
  forceRevert: boolean;
  /**
   * How the sidecars get into the pods: "patch" adds them to the pod templates (the pods
   * restart), "ephemeral" adds them to the running pods as ephemeral containers (no restart).
   */
  sidecarMode: SidecarMode;
  /** The cluster, when one is named (also set on source and target). */
  cluster?: ClusterAccess;
}

/** A container's requests and limits: resource name (cpu, memory, ephemeral-storage) to quantity. */
export interface SidecarResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

/** How the sidecars are added: see {@link MigrationConfig.sidecarMode}. */
export type SidecarMode = "patch" | "ephemeral";

/** An error in the stack configuration; the message always starts with the key. */
export class ConfigError extends Error {
  constructor(
    public readonly key: string,
    message: string,
  ) {
    super(`${PROJECT}:${key}: ${message}`);
    this.name = "ConfigError";
  }
}

/** A Prometheus workload and where its TSDB is. Unset fields are read from the live object. */
export interface WorkloadArgs {
  /** Namespace. Default: "default" for the source, "kubeprod" for the target (BKPR). */
  namespace?: string;
  /**
   * "Deployment", "StatefulSet" or "Prometheus" (a prometheus-operator resource).
   * Default: Deployment for the source, StatefulSet for the target.
   */
  kind?: WorkloadKind;
  /** Name of the workload. Required for the source; default "prometheus" for the target. */
  name?: string;
  /** The Prometheus container. Default: "prometheus". */
  container?: string;
  /** The pod volume that holds the TSDB. Default: the volume mounted at the TSDB path. */
  volume?: string;
  /** Absolute TSDB path in the container. Default: `--storage.tsdb.path`, resolved. */
  dataPath?: string;
  /** Prometheus API URL as seen from inside the pod. Default: from the listen address and route prefix. */
  url?: string;
  /**
   * Source only: the replica to read when the source runs several (a `Prometheus` resource
   * with `replicas` > 1). Default: its first pod (ordinal 0), which must be Ready.
   */
  pod?: string;
}

/**
 * The migration's settings: the component's args, and the stack config's keys with the
 * same names (Pulumi.yaml documents the same defaults).
 */
export interface MigrationArgs {
  /**
   * How far the migration goes. "prepare" adds the rsync sidecars, Service, NetworkPolicy
   * and Secrets; "migrate" also snapshots, copies, installs and verifies the blocks.
   * Default: unset, which reverts every change (pod templates return exactly to what they
   * were; installed blocks stay).
   */
  phase?: "prepare" | "migrate";
  /** The old Prometheus. `name` is required unless reverting. */
  source?: WorkloadArgs;
  /** The new Prometheus. Default: the BKPR destination, StatefulSet kubeprod/prometheus. */
  target?: WorkloadArgs;
  /**
   * Image of both sidecars: a POSIX sh (busybox is enough) and rsync.
   * Default: "docker.io/instrumentisto/rsync-ssh:alpine3.22".
   */
  sidecarImage?: string;
  /** Pull policy of the sidecar image: IfNotPresent, Always or Never. Default: "IfNotPresent". */
  sidecarImagePullPolicy?: string;
  /**
   * Requests and limits of each sidecar container, `{requests: {cpu, memory}, limits: {cpu,
   * memory}}` (also ephemeral-storage); a section given replaces that section of the default.
   * Limits are set so that a namespace whose ResourceQuota counts limits admits the pods.
   * Default: {@link DEFAULT_SIDECAR_RESOURCES}. Not used by sidecarMode ephemeral (an ephemeral
   * container has no resources of its own).
   */
  sidecarResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /**
   * Secrets (docker-registry, in the workload's namespace) to pull the sidecar image with:
   * added to each patched pod template's imagePullSecrets, and removed again at the revert
   * unless the pod listed them already. Default: none.
   */
  imagePullSecrets?: string[];
  /** Limit of the copy as `rsync --bwlimit` takes it ("500k", "20m"). Default: "" (unlimited). */
  bandwidthLimit?: string;
  /**
   * Parallel rsync streams of the copy, each over its share of the blocks (balanced by
   * bytes), 1 to 16, or "auto": the copy starts one stream and adds one while the copy gets
   * at least 10% faster, up to the source sidecar's CPU limit (sidecarResources.limits.cpu,
   * rounded up), the target sidecar's, and its node's idle cores. One rsync stream is
   * CPU-bound on each side; more streams only help where cores are free. bandwidthLimit is
   * the limit of all of them together (auto is then one stream). Default: "auto".
   */
  copyStreams?: number | string;
  /**
   * Snapshot the source's in-memory head too (needs its admin API, which is switched on for
   * the snapshot and restored at the revert). Closes the gap on targets >= 2.39. Default: false.
   */
  includeHead?: boolean;
  /** Wait up to this long for the source's next compaction when that shrinks the gap. Default: 0 (fail with advice). */
  maxWaitMinutes?: number;
  /** Go ahead with a gap that waiting can't close, instead of failing with the numbers. Default: false. */
  acceptGap?: boolean;
  /**
   * Copy only the blocks the target keeps under its retention (time and size), and report the
   * rest as skipped, instead of refusing a plan whose oldest blocks the target would delete at
   * its next reload. Default: false.
   */
  trimToTargetRetention?: boolean;
  /**
   * The verification counts samples in at most this many 2h windows on both servers: the
   * first and last copied, the cutoff, the target's first own sample, and evenly spaced spot
   * checks; every copied block is checked by ID and stats regardless. 0 = every window.
   * Default: 24.
   */
  verifyWindows?: number;
  /** How long a patched workload may take to roll out, in seconds. Default: 600. */
  rolloutTimeoutSeconds?: number;
  /** Revert even when restarting the target now would drop some of its own samples. Default: false. */
  forceRevert?: boolean;
  /**
   * "patch": the sidecars are added to both pod templates (each pod restarts when they come
   * and again when they go). "ephemeral": they are added to the running pods as ephemeral
   * containers (pods/ephemeralcontainers, Kubernetes 1.25+), and no pod restarts; their
   * stopped entries stay in the pods' status until the pods are replaced. Default: "patch".
   */
  sidecarMode?: SidecarMode;
  /**
   * The cluster: a kubeconfig path and a context, used by the component's Kubernetes provider
   * and by every kubectl it runs. The stack reads them from `kubernetes:kubeconfig` and
   * `kubernetes:context`. Default: kubectl's defaults and the default provider.
   */
  cluster?: ClusterAccess;
}

/** The same settings as `pulumi.Config` returns them: any string, any JSON object. */
export type RawConfig = Omit<
  MigrationArgs,
  "phase" | "source" | "target" | "sidecarMode" | "sidecarResources" | "imagePullSecrets"
> & {
  sidecarMode?: string;
  sidecarResources?: unknown;
  imagePullSecrets?: unknown;
  phase?: string;
  source?: unknown;
  target?: unknown;
};

export const DEFAULT_SIDECAR_IMAGE = "docker.io/instrumentisto/rsync-ssh:alpine3.22";
/**
 * Each sidecar's requests and limits when sidecarResources is unset. Small requests (the
 * sidecars idle until the copy); limits, so that a ResourceQuota on limits.cpu/limits.memory
 * admits the pods: 1 CPU (a copy stream is CPU-bound, BENCHMARKS.md), 256Mi (rsync needs
 * about 100 bytes a file, the scripts' JSON a few MiB at 2,000 blocks).
 */
export const DEFAULT_SIDECAR_RESOURCES: SidecarResources = {
  requests: { cpu: "10m", memory: "32Mi" },
  limits: { cpu: "1", memory: "256Mi" },
};

/**
 * Parallel rsync streams of the copy: auto, since more streams help only where cores are
 * idle, which a busy Prometheus's node rarely has (BENCHMARKS.md, issue 25).
 */
export const DEFAULT_COPY_STREAMS = "auto";

/** The BKPR destination, the seed's target. */
export const BKPR_TARGET: WorkloadRef = {
  namespace: "kubeprod",
  kind: "StatefulSet",
  name: "prometheus",
  container: "prometheus",
};

const SOURCE_DEFAULTS = { namespace: "default", kind: "Deployment", container: "prometheus" };

const WORKLOAD_KEYS = [
  "namespace",
  "kind",
  "name",
  "container",
  "volume",
  "dataPath",
  "url",
  "pod",
];

// RFC 1123 names, as Kubernetes requires for namespaces, workloads, containers and volumes.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function parseWorkload(key: "source" | "target", raw: unknown, defaults: object): WorkloadRef {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(
      key,
      "must be an object such as {name: prometheus, namespace: monitoring}",
    );
  }
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!WORKLOAD_KEYS.includes(k)) {
      throw new ConfigError(
        `${key}.${k}`,
        `unknown key; expected one of ${WORKLOAD_KEYS.join(", ")}`,
      );
    }
    if (obj[k] !== undefined && typeof obj[k] !== "string") {
      throw new ConfigError(`${key}.${k}`, "must be a string");
    }
  }
  const merged = { ...defaults, ...obj } as Record<string, string | undefined>;
  const ref: WorkloadRef = {
    namespace: merged.namespace ?? "",
    kind: merged.kind as WorkloadKind,
    name: merged.name ?? "",
    container: merged.container ?? "",
    volume: merged.volume || undefined,
    dataPath: merged.dataPath || undefined,
    url: merged.url || undefined,
    ...(merged.pod ? { pod: merged.pod } : {}),
  };
  if (!ref.name) throw new ConfigError(`${key}.name`, "is required: the workload to migrate");
  if (ref.kind !== "Deployment" && ref.kind !== "StatefulSet" && ref.kind !== "Prometheus") {
    throw new ConfigError(
      `${key}.kind`,
      `unsupported kind "${merged.kind}"; use Deployment, StatefulSet or Prometheus`,
    );
  }
  if (!DNS_LABEL.test(ref.namespace)) {
    throw new ConfigError(`${key}.namespace`, `"${ref.namespace}" is not a valid namespace name`);
  }
  if (!DNS_SUBDOMAIN.test(ref.name)) {
    throw new ConfigError(`${key}.name`, `"${ref.name}" is not a valid workload name`);
  }
  for (const k of ["container", "volume"] as const) {
    const v = ref[k];
    if (v !== undefined && !DNS_LABEL.test(v)) {
      throw new ConfigError(`${key}.${k}`, `"${v}" is not a valid ${k} name`);
    }
  }
  if (ref.pod !== undefined) {
    if (key === "target") {
      throw new ConfigError(
        "target.pod",
        "is for the source only: every replica of the target gets the blocks and is verified",
      );
    }
    if (!DNS_SUBDOMAIN.test(ref.pod)) {
      throw new ConfigError(`${key}.pod`, `"${ref.pod}" is not a valid pod name`);
    }
    if (ref.kind === "Deployment") {
      throw new ConfigError(
        `${key}.pod`,
        "names a pod of a Deployment, whose pods get new names when the sidecar rolls out; leave it unset",
      );
    }
  }
  if (ref.dataPath !== undefined && !ref.dataPath.startsWith("/")) {
    throw new ConfigError(`${key}.dataPath`, `"${ref.dataPath}" must be an absolute path`);
  }
  if (ref.url !== undefined && !/^https?:\/\/[^/\s]+(\/\S*)?$/.test(ref.url)) {
    throw new ConfigError(`${key}.url`, `"${ref.url}" is not an http(s) URL`);
  }
  return ref;
}

function parsePhase(raw: string | undefined): Phase {
  const v = (raw ?? "").trim();
  if (v === "") return "revert";
  if (v === "prepare" || v === "migrate") return v;
  throw new ConfigError(
    "phase",
    `unknown phase "${raw}"; use prepare, migrate, or remove the key to revert`,
  );
}

function nonNegativeInt(key: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0)
    throw new ConfigError(key, `must be a whole number >= 0, got ${v}`);
  return v;
}

function parseCluster(raw: ClusterAccess | undefined): ClusterAccess | undefined {
  const kubeconfig = raw?.kubeconfig?.trim() || undefined;
  const context = raw?.context?.trim() || undefined;
  if (
    kubeconfig !== undefined &&
    (kubeconfig.includes("\n") || /^\s*(apiVersion|\{)/.test(kubeconfig))
  ) {
    throw new ConfigError(
      "kubernetes:kubeconfig",
      "holds a kubeconfig's contents; kubectl needs a file: set it to the file's path",
    );
  }
  if (kubeconfig === undefined && context === undefined) return undefined;
  return { ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) };
}

// A Kubernetes resource.Quantity without a sign: digits, a decimal SI or binary SI suffix, or
// an exponent ("100m", "0.5", "256Mi", "1e3").
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const QUANTITY_FACTOR: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const RESOURCE_NAMES = ["cpu", "memory", "ephemeral-storage"];

/**
 * copyStreams: "auto" (any case), or a whole number from 1 to 16, as a number or as the
 * string Pulumi config hands over.
 */
function parseCopyStreams(raw: number | string | undefined): number | "auto" {
  if (raw === undefined) return DEFAULT_COPY_STREAMS;
  const text = String(raw).trim();
  if (text.toLowerCase() === "auto") return "auto";
  const n = typeof raw === "number" ? raw : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 16) {
    throw new ConfigError(
      "copyStreams",
      `must be auto or a whole number from 1 to 16 (parallel rsync streams), got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/**
 * The most streams copyStreams auto may use, as far as the source's side goes: its sidecar's
 * CPU limit in whole cores, rounded up (one rsync stream sends with about one core). Nothing
 * when the sidecar has no CPU limit (sidecarMode ephemeral: an ephemeral container has no
 * resources of its own): copy.sh then caps by what it reads on the target's side.
 */
export function autoStreamsMax(
  resources: SidecarResources,
  sidecarMode: SidecarMode,
): AutoStreamsMax | undefined {
  const cpu = sidecarMode === "patch" ? resources.limits["cpu"] : undefined;
  const cores = cpu === undefined ? undefined : quantityValue(cpu);
  if (cpu === undefined || cores === undefined || !(cores > 0)) return undefined;
  const streams = Math.min(16, Math.max(1, Math.ceil(cores - 1e-9)));
  return {
    streams,
    why: `the CPU limit of the source sidecar, sidecarResources.limits.cpu ${cpu}`,
  };
}

/** How many streams copyStreams auto may use at most, and what says so (copy.sh logs it). */
export interface AutoStreamsMax {
  streams: number;
  why: string;
}

/** The value of a quantity, to compare a request with its limit; undefined: not a quantity. */
export function quantityValue(q: string): number | undefined {
  const m = QUANTITY.exec(q);
  if (!m) return undefined;
  const suffix = m[3] ?? "";
  const factor = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : QUANTITY_FACTOR[suffix];
  return Number(m[1]) * factor;
}

function parseResourceMap(key: string, raw: unknown, positive: boolean): Record<string, string> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(key, `must be an object such as {cpu: 100m, memory: 64Mi}`);
  }
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!RESOURCE_NAMES.includes(name)) {
      throw new ConfigError(`${key}.${name}`, `unknown resource; use ${RESOURCE_NAMES.join(", ")}`);
    }
    const q = typeof v === "number" ? String(v) : typeof v === "string" ? v.trim() : "";
    const value = quantityValue(q);
    if (value === undefined) {
      throw new ConfigError(
        `${key}.${name}`,
        `"${String(v)}" is not a Kubernetes quantity such as 100m, 0.5, 64Mi or 1Gi`,
      );
    }
    // A zero limit is refused by the API server; a zero request means "none".
    if (positive && value === 0) throw new ConfigError(`${key}.${name}`, "must be more than 0");
    out[name] = q;
  }
  return out;
}

function parseSidecarResources(raw: unknown): SidecarResources {
  if (raw === undefined || raw === null) return DEFAULT_SIDECAR_RESOURCES;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(
      "sidecarResources",
      "must be an object such as {requests: {cpu: 10m, memory: 32Mi}, limits: {cpu: 1, memory: 256Mi}}",
    );
  }
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k !== "requests" && k !== "limits") {
      throw new ConfigError(`sidecarResources.${k}`, "unknown key; expected requests, limits");
    }
  }
  // A section given replaces the default's, so `limits: {}` leaves the sidecars without limits.
  const requests =
    obj.requests === undefined
      ? DEFAULT_SIDECAR_RESOURCES.requests
      : parseResourceMap("sidecarResources.requests", obj.requests, false);
  const limits =
    obj.limits === undefined
      ? DEFAULT_SIDECAR_RESOURCES.limits
      : parseResourceMap("sidecarResources.limits", obj.limits, true);
  for (const [name, q] of Object.entries(requests)) {
    const limit = limits[name];
    // The API server refuses a request above its limit; say so at preview.
    if (limit !== undefined && quantityValue(q)! > quantityValue(limit)!) {
      throw new ConfigError(
        `sidecarResources.requests.${name}`,
        `${q} is more than its limit ${limit}`,
      );
    }
  }
  return { requests, limits };
}

function parseImagePullSecrets(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    throw new ConfigError("imagePullSecrets", "must be a list of Secret names, such as [regcred]");
  }
  const names: string[] = [];
  for (const [i, v] of raw.entries()) {
    const name = typeof v === "string" ? v.trim() : "";
    if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
      throw new ConfigError(`imagePullSecrets[${i}]`, `"${String(v)}" is not a Secret name`);
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Validates and defaults the whole configuration. Throws ConfigError naming the key. */
/** One namespace, kind and name (in one cluster: the caller knows). */
export function sameWorkload(
  a: Pick<WorkloadRef, "namespace" | "kind" | "name">,
  b: Pick<WorkloadRef, "namespace" | "kind" | "name">,
): boolean {
  return a.namespace === b.namespace && a.kind === b.kind && a.name === b.name;
}

export function parseConfig(raw: RawConfig): MigrationConfig {
  const phase = parsePhase(raw.phase);
  // Reverting needs no workload names: it only removes what earlier phases added.
  const source =
    phase === "revert" && raw.source === undefined
      ? { ...(SOURCE_DEFAULTS as WorkloadRef), name: "" }
      : parseWorkload("source", raw.source, SOURCE_DEFAULTS);
  const target = parseWorkload("target", raw.target, BKPR_TARGET);
  if (source.name && sameWorkload(source, target)) {
    throw new ConfigError(
      "target",
      `is the same workload as source (${source.kind} ${source.namespace}/${source.name})`,
    );
  }
  const bandwidthLimit = (raw.bandwidthLimit ?? "").trim();
  if (bandwidthLimit !== "" && !/^\d+(\.\d+)?[kKmMgG]?$/.test(bandwidthLimit)) {
    throw new ConfigError(
      "bandwidthLimit",
      `"${bandwidthLimit}" is not an rsync --bwlimit value such as 500k or 20m`,
    );
  }
  const copyStreams = parseCopyStreams(raw.copyStreams);
  const sidecarImage = (raw.sidecarImage ?? DEFAULT_SIDECAR_IMAGE).trim();
  if (!sidecarImage || /\s/.test(sidecarImage)) {
    throw new ConfigError("sidecarImage", `"${raw.sidecarImage}" is not an image reference`);
  }
  const pull = (raw.sidecarImagePullPolicy ?? "IfNotPresent").trim();
  if (pull !== "IfNotPresent" && pull !== "Always" && pull !== "Never") {
    throw new ConfigError(
      "sidecarImagePullPolicy",
      `"${pull}" is not IfNotPresent, Always or Never`,
    );
  }
  const sidecarResources = parseSidecarResources(raw.sidecarResources);
  const imagePullSecrets = parseImagePullSecrets(raw.imagePullSecrets);
  const rolloutTimeoutSeconds = nonNegativeInt(
    "rolloutTimeoutSeconds",
    raw.rolloutTimeoutSeconds,
    600,
  );
  if (rolloutTimeoutSeconds === 0) {
    throw new ConfigError("rolloutTimeoutSeconds", "must be at least 1");
  }
  const sidecarMode = (raw.sidecarMode ?? "patch").trim() || "patch";
  if (sidecarMode !== "patch" && sidecarMode !== "ephemeral") {
    throw new ConfigError(
      "sidecarMode",
      `"${raw.sidecarMode}" is not patch or ephemeral (patch: the sidecars go into the pod ` +
        `templates and the pods restart; ephemeral: ephemeral containers, no restart)`,
    );
  }
  const cluster = parseCluster(raw.cluster);
  if (cluster) {
    source.access = cluster;
    target.access = cluster;
  }
  return {
    ...(cluster ? { cluster } : {}),
    phase,
    source,
    target,
    sidecarImage,
    sidecarImagePullPolicy: pull,
    sidecarResources,
    imagePullSecrets,
    bandwidthLimit,
    copyStreams,
    includeHead: raw.includeHead ?? false,
    maxWaitMinutes: nonNegativeInt("maxWaitMinutes", raw.maxWaitMinutes, 0),
    acceptGap: raw.acceptGap ?? false,
    trimToTargetRetention: raw.trimToTargetRetention ?? false,
    verifyWindows: nonNegativeInt("verifyWindows", raw.verifyWindows, DEFAULT_VERIFY_WINDOWS),
    rolloutTimeoutSeconds,
    forceRevert: raw.forceRevert ?? false,
    sidecarMode,
  };
}
