// What the program learns from a live Prometheus workload: where its TSDB lives, how its pods
// are labelled, and whether patching it is safe. Pure functions over the JSON that
// `kubectl get -o json` prints, so that each rule has a table test.

import { ConfigError, WorkloadRef } from "./config";
import { containerApplyManager, ManagedFieldsEntry } from "./conventions";
import {
  normalize,
  resolveAdminApi,
  resolveDataPath,
  resolveFlags,
  resolveStorageFlags,
  resolveUrl,
  resolveVersion,
  ServerReport,
  Sourced,
} from "./discovery";

export { flagValue } from "./discovery";

// The subset of the Kubernetes objects we read. Everything is optional: live JSON omits empty fields.
export interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  subPathExpr?: string;
  readOnly?: boolean;
}
export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  volumeMounts?: VolumeMount[];
  ports?: { containerPort: number; name?: string }[];
  securityContext?: Record<string, unknown>;
  env?: unknown[];
  resources?: unknown;
}
export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: object;
  [source: string]: unknown;
}
export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    containers?: Container[];
    initContainers?: Container[];
    volumes?: Volume[];
    imagePullSecrets?: { name?: string }[];
    securityContext?: Record<string, unknown>;
  };
}
export interface WorkloadObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    /** Read with `--show-managed-fields`: who applied what (conventions.ts). */
    managedFields?: ManagedFieldsEntry[];
    ownerReferences?: {
      apiVersion?: string;
      kind?: string;
      name?: string;
      uid?: string;
      controller?: boolean;
    }[];
  };
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> };
    strategy?: { type?: string };
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
    volumeClaimTemplates?: { metadata?: { name?: string }; spec?: { accessModes?: string[] } }[];
    template?: PodTemplate;
  };
}

/** Names of the containers this program adds; ignored when reading a workload back. */
export const SOURCE_SIDECAR = "ptm-rsyncd";
export const TARGET_SIDECAR = "ptm-rsync";
const OWN_CONTAINERS = [SOURCE_SIDECAR, TARGET_SIDECAR];

/** Where a workload keeps its TSDB, and what is needed to reach it from a sidecar. */
export interface TsdbLocation {
  ref: WorkloadRef;
  /** Labels of the pod template: the Service and NetworkPolicy select pods with them. */
  podLabels: Record<string, string>;
  volume: string;
  /** How the volume is provided: a PVC, a StatefulSet claim template, an emptyDir, ... */
  volumeKind: string;
  /** The PersistentVolumeClaim a `persistentVolumeClaim` volume names (what a user deletes). */
  claimName?: string;
  mountPath: string;
  subPath?: string;
  subPathExpr?: string;
  /** Absolute TSDB directory inside the container (and inside our sidecar, same mount). */
  dataPath: string;
  /** The Prometheus API from inside the pod, including any route prefix. */
  url: string;
  /** Whether `--web.enable-admin-api` is already on. */
  adminApi: boolean;
  /** Whether the container sets args (a flag can be appended without replacing the image's). */
  hasArgs: boolean;
  /** Names of the pod's containers, in order (ours included once they run). */
  containers: string[];
  /** Names of the pod template's volumes, in order (ours included once they run). */
  volumes: string[];
  /** Names of the pod template's imagePullSecrets, in order (ours included once added). */
  imagePullSecrets?: string[];
  /**
   * The Server-Side Apply manager of this side's sidecar in the live template: the patch of
   * an earlier run (conventions.ts patchFieldManager). Unset: no patch has added it.
   */
  sidecarOwner?: string;
  /**
   * This side's sidecar as it runs in the live template (sidecarMode patch), once a prepare
   * added it: a later run keeps what the program set there (decisions/sidecarChange.ts).
   */
  liveSidecar?: Container;
  /** The Prometheus container's securityContext, copied so the sidecar writes as the same user. */
  securityContext?: Record<string, unknown>;
  /**
   * The workload whose pods run Prometheus when `ref` is not one: the StatefulSet that
   * prometheus-operator generates for a `Prometheus` resource (prometheusResource.ts).
   */
  workload?: WorkloadRef;
  /** How many pods run it (a `Prometheus` resource's replicas); unset: one. */
  replicas?: number;
  /**
   * The pods the steps run in, one ref per pod (`pod` set): every replica of a `Prometheus`
   * target, the chosen replica of a source. Unset: a pod kubectl picks.
   */
  pods?: WorkloadRef[];
  /** The server's version (buildinfo), when it could be asked. */
  version?: string;
  /** Retention and block-duration flags, as the server (or the spec) gives them. */
  storage: Record<string, string>;
  /**
   * Every flag, as the server (pod proxy) or else the container spec gives them; unset when
   * neither can tell. The plan falls back on them where its probe read none (planInput.ts).
   */
  flags?: Sourced<Record<string, string>>;
  /** Whether the running server answered, and which pod; or why not. */
  server: { reached: true; pod: string } | { reached: false; why: string };
  /** Where each value came from: a config key, the server, or the container spec. */
  sources: {
    dataPath: string;
    volume: string;
    url: string;
    adminApi: string;
    version: string;
    storage: string;
  };
}

/** Whether path is dir or below it. */
function isUnder(path: string, dir: string): boolean {
  const d = normalize(dir);
  return path === d || path.startsWith(d === "/" ? "/" : d + "/");
}

function claimOf(w: WorkloadObject, name: string): { claimName?: string } {
  const v = w.spec?.template?.spec?.volumes?.find((x) => x.name === name);
  const claim = v?.persistentVolumeClaim?.claimName;
  return claim ? { claimName: claim } : {};
}

function volumeKind(w: WorkloadObject, name: string): string | undefined {
  const v = w.spec?.template?.spec?.volumes?.find((x) => x.name === name);
  if (v) {
    const kinds = Object.keys(v).filter((k) => k !== "name");
    return kinds[0] ?? "emptyDir";
  }
  if (w.spec?.volumeClaimTemplates?.some((t) => t.metadata?.name === name)) {
    return "volumeClaimTemplate";
  }
  return undefined;
}

/**
 * Finds the TSDB in a live workload. `server` is what its running Prometheus reported (see
 * discovery.ts); explicit config keys win over it, and without it the container spec is read.
 * Every failure names the config key to fix.
 */
export function locateTsdb(
  key: "source" | "target",
  ref: WorkloadRef,
  w: WorkloadObject | undefined,
  server?: ServerReport,
): TsdbLocation {
  const what = `${ref.kind} ${ref.namespace}/${ref.name}`;
  if (!w || !w.spec) {
    throw new ConfigError(
      `${key}.name`,
      `${what} does not exist (check ${key}.namespace and ${key}.kind)`,
    );
  }
  const pod = w.spec.template?.spec ?? {};
  const containers = (pod.containers ?? []).filter((c) => !OWN_CONTAINERS.includes(c.name));
  const c = containers.find((x) => x.name === ref.container);
  if (!c) {
    throw new ConfigError(
      `${key}.container`,
      `${what} has no container "${ref.container}"; it has: ${containers.map((x) => x.name).join(", ") || "none"}`,
    );
  }
  const mounts = c.volumeMounts ?? [];
  const dataPath = resolveDataPath(key, ref, c, server);
  const path = dataPath.value;
  let mount: VolumeMount | undefined;
  let volumeFrom: string;
  if (ref.volume) {
    if (volumeKind(w, ref.volume) === undefined) {
      throw new ConfigError(`${key}.volume`, `${what} has no volume "${ref.volume}"`);
    }
    const ms = mounts.filter((m) => m.name === ref.volume);
    if (ms.length === 0) {
      throw new ConfigError(
        `${key}.volume`,
        `volume "${ref.volume}" is not mounted in container "${ref.container}" of ${what}`,
      );
    }
    mount = ms.find((m) => isUnder(path, m.mountPath));
    if (!mount) {
      throw new ConfigError(
        `${key}.volume`,
        `volume "${ref.volume}" is not mounted at the TSDB path ${path} in ${what}`,
      );
    }
    volumeFrom = `config ${key}.volume`;
  } else {
    // The deepest mount that contains the TSDB path is the one Prometheus writes to; its
    // subPath (if any) says which directory of the volume that is.
    const holding = mounts
      .filter((m) => isUnder(path, m.mountPath))
      .sort((a, b) => normalize(b.mountPath).length - normalize(a.mountPath).length);
    mount = holding[0];
    if (!mount) {
      throw new ConfigError(
        `${key}.volume`,
        `the TSDB path ${path} of ${what} (${dataPath.from}) is not on any volume: its data ` +
          `would not survive a restart. If the path is wrong, set ${key}.dataPath`,
      );
    }
    volumeFrom =
      `volumeMounts: ${mount.mountPath}` +
      (mount.subPath ? ` (subPath ${mount.subPath})` : "") +
      (mount.subPathExpr ? ` (subPathExpr ${mount.subPathExpr})` : "") +
      ` holds ${path}`;
  }
  const kind = volumeKind(w, mount.name);
  if (kind === undefined) {
    throw new ConfigError(
      `${key}.volume`,
      `${what} mounts "${mount.name}" but defines no such volume`,
    );
  }
  const url = resolveUrl(key, ref, c, server);
  const adminApi = resolveAdminApi(c, server);
  const version = resolveVersion(server);
  const storage = resolveStorageFlags(c, server);
  const flags = resolveFlags(c, server);
  return {
    ref,
    podLabels: { ...(w.spec.template?.metadata?.labels ?? {}) },
    volume: mount.name,
    volumeKind: kind,
    ...claimOf(w, mount.name),
    mountPath: mount.mountPath,
    subPath: mount.subPath,
    subPathExpr: mount.subPathExpr,
    dataPath: path,
    url: url.value,
    adminApi: adminApi.value,
    hasArgs: (c.args ?? []).length > 0,
    containers: (pod.containers ?? []).map((x) => x.name),
    volumes: (pod.volumes ?? []).map((v) => v.name),
    imagePullSecrets: (pod.imagePullSecrets ?? []).flatMap((x) => (x.name ? [x.name] : [])),
    ...sidecarOwnerOf(w, key),
    ...liveSidecarOf(pod.containers ?? [], key),
    securityContext: c.securityContext,
    ...(version.value ? { version: version.value } : {}),
    storage: storage.value,
    ...(flags ? { flags } : {}),
    server: server?.reached
      ? { reached: true, pod: server.pod }
      : { reached: false, why: server ? server.why : "not asked" },
    sources: {
      dataPath: dataPath.from,
      volume: volumeFrom,
      url: url.from,
      adminApi: adminApi.from,
      version: version.from,
      storage: storage.from,
    },
  };
}

/**
 * Refuses workloads whose patch would hang or lose data. Adding a sidecar rolls the pods
 * out again, so the rollout must be able to finish and the TSDB must survive a restart.
 */
export function preflight(key: "source" | "target", loc: TsdbLocation, w: WorkloadObject): void {
  const what = `${loc.ref.kind} ${loc.ref.namespace}/${loc.ref.name}`;
  // Its controller would undo our patch at its next reconcile (prometheus-operator does).
  const owner =
    (w.metadata?.ownerReferences ?? []).find((o) => o.controller) ??
    w.metadata?.ownerReferences?.[0];
  // A `Prometheus` resource's own StatefulSet: the sidecar goes through the resource.
  const throughResource =
    loc.ref.kind === "Prometheus" && owner?.kind === "Prometheus" && owner.name === loc.ref.name;
  if (owner && !throughResource) {
    throw new ConfigError(
      `${key}.name`,
      `${what} is managed by ${owner.kind} ${owner.name} (${owner.apiVersion}), which would undo the ` +
        `sidecar patch; ` +
        (owner.kind === "Prometheus"
          ? `set ${key}.kind to Prometheus and ${key}.name to ${owner.name}: the sidecar then goes through the resource`
          : `migrate into (or out of) a workload that nothing else manages`),
    );
  }
  const replicas = w.spec?.replicas ?? 1;
  // Each replica of a `Prometheus` target gets the blocks; a source is read from one replica.
  if (replicas !== 1 && !throughResource) {
    throw new ConfigError(
      `${key}.name`,
      `${what} has ${replicas} replicas; a migration needs exactly one Prometheus pod on each side`,
    );
  }
  if (loc.volumeKind === "emptyDir") {
    throw new ConfigError(
      `${key}.volume`,
      `the TSDB of ${what} is on emptyDir volume "${loc.volume}": adding a sidecar restarts the pod and would erase it`,
    );
  }
  if (loc.ref.kind === "Deployment") {
    const strategy = w.spec?.strategy?.type ?? "RollingUpdate";
    if (strategy !== "Recreate") {
      throw new ConfigError(
        `${key}.name`,
        `${what} uses strategy ${strategy}: its new pod can never take the TSDB volume and lock while the old pod ` +
          `holds them, so the sidecar rollout would hang. Set it to Recreate first: kubectl -n ${loc.ref.namespace} ` +
          `patch deployment ${loc.ref.name} -p '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}'`,
      );
    }
  } else if (w.spec?.updateStrategy?.type === "OnDelete") {
    throw new ConfigError(
      `${key}.name`,
      `${what} uses updateStrategy OnDelete: the sidecar would never roll out. Use RollingUpdate during the migration`,
    );
  } else if ((w.spec?.updateStrategy?.rollingUpdate?.partition ?? 0) > 0) {
    const partition = w.spec!.updateStrategy!.rollingUpdate!.partition;
    throw new ConfigError(
      `${key}.name`,
      `${what} has updateStrategy.rollingUpdate.partition ${partition}: pods below it keep the old ` +
        `template, so the sidecar would never roll out. Set the partition to 0 during the migration`,
    );
  }
}

/** Two workloads whose pods one selector would both match can't be told apart by the Service. */
export function checkDistinctPods(source: TsdbLocation, target: TsdbLocation): void {
  if (source.ref.namespace !== target.ref.namespace) return;
  const sel = Object.entries(source.podLabels);
  if (sel.length === 0) {
    throw new ConfigError("source.name", `the pods of the source have no labels to select them by`);
  }
  if (sel.every(([k, v]) => target.podLabels[k] === v)) {
    throw new ConfigError(
      "source.name",
      `the source pod labels ${JSON.stringify(source.podLabels)} also match the target pods, so the rsync ` +
        `Service would reach the target too; give the two workloads distinct labels`,
    );
  }
}

/** The side's sidecar in the live template, when a prepare added it. */
function liveSidecarOf(
  containers: Container[],
  key: "source" | "target",
): { liveSidecar?: Container } {
  const name = key === "source" ? SOURCE_SIDECAR : TARGET_SIDECAR;
  const live = containers.find((c) => c.name === name);
  return live ? { liveSidecar: live } : {};
}

/** The manager of the side's sidecar in the live template, when a patch applied it. */
function sidecarOwnerOf(w: WorkloadObject, key: "source" | "target"): { sidecarOwner?: string } {
  const owner = containerApplyManager(
    w.metadata?.managedFields,
    key === "source" ? SOURCE_SIDECAR : TARGET_SIDECAR,
  );
  return owner ? { sidecarOwner: owner } : {};
}
