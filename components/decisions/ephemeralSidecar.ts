// sidecarMode: ephemeral. The rsync sidecars go into the running pods as ephemeral containers
// (the pods/ephemeralcontainers subresource) instead of into the pod templates, so no pod
// restarts. Pure functions over what kubectl prints, so that each rule has a table test:
// whether the cluster can do it (version, RBAC), which pods get a sidecar, under which name,
// and how the sidecar sees the TSDB.
//
// Kubernetes facts (k8s.io/api core/v1 EphemeralContainerCommon, pkg/apis/core/validation):
// ephemeral containers are GA since 1.25; they may not set ports, probes, lifecycle or
// resources, nor a volumeMount with subPath or subPathExpr; they can't be changed or removed
// once added, and are never restarted: a stopped one stays in spec.ephemeralContainers and
// status.ephemeralContainerStatuses until the pod is deleted.

import { ConfigError } from "./config";
import { TsdbLocation } from "./workload";

/** The first Kubernetes minor version with ephemeral containers enabled and GA. */
export const MIN_MINOR = 25;

/** Where an ephemeral sidecar mounts the root of the TSDB's volume (its own path: no clash). */
export const VOLUME_ROOT = "/ptm-volume";

/** Its scratch space: the container's own root filesystem (it can't add a volume to the pod). */
export const EPHEMERAL_TMP = "/tmp";
export const EPHEMERAL_RUN = "/tmp/ptm-run";

const USE_PATCH =
  "or set sidecarMode to patch (the sidecars then go into the pod templates, and the pods restart)";

/** `kubectl version -o json`: the server's version, or a ConfigError naming sidecarMode. */
export function checkServerVersion(json: string): string {
  let v: { major?: string; minor?: string; gitVersion?: string } | undefined;
  try {
    v = (JSON.parse(json) as { serverVersion?: typeof v }).serverVersion;
  } catch {
    v = undefined;
  }
  const major = Number((v?.major ?? "").replace(/\D+$/, ""));
  const minor = Number((v?.minor ?? "").replace(/\D+$/, ""));
  if (!v || !Number.isInteger(major) || !Number.isInteger(minor) || v.major === "") {
    throw new ConfigError(
      "sidecarMode",
      `ephemeral needs Kubernetes 1.${MIN_MINOR} or newer, and the server's version could not be ` +
        `read (\`kubectl version -o json\` printed no serverVersion); check the cluster access, ${USE_PATCH}`,
    );
  }
  const name = v.gitVersion ?? `${major}.${minor}`;
  if (major < 1 || (major === 1 && minor < MIN_MINOR)) {
    throw new ConfigError(
      "sidecarMode",
      `ephemeral needs Kubernetes 1.${MIN_MINOR} or newer (ephemeral containers); the cluster runs ` +
        `${name}. Upgrade the cluster, ${USE_PATCH}`,
    );
  }
  return name;
}

/** The subset of a pod this mode reads. */
export interface EphemeralPodObject {
  metadata?: { name?: string; uid?: string; deletionTimestamp?: string };
  spec?: { ephemeralContainers?: { name: string; image?: string }[] };
  status?: {
    phase?: string;
    ephemeralContainerStatuses?: {
      name: string;
      state?: {
        running?: object;
        waiting?: { reason?: string };
        terminated?: { reason?: string; exitCode?: number };
      };
    }[];
  };
}

/** How an ephemeral container of a pod stands. */
export type EphemeralState = "absent" | "starting" | "running" | "stuck" | "stopped";

/** A pod that gets a sidecar: its name and UID, and its ephemeral containers' states. */
export interface PodView {
  name: string;
  uid: string;
  ephemeral: Record<string, EphemeralState>;
  /** The image of each ephemeral container. */
  images: Record<string, string>;
}

// Waiting reasons that won't pass by themselves (as rollout-watch.sh has them).
const STUCK = [
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
];

export function podView(p: EphemeralPodObject): PodView {
  const ephemeral: Record<string, EphemeralState> = {};
  for (const c of p.spec?.ephemeralContainers ?? []) ephemeral[c.name] = "starting";
  for (const s of p.status?.ephemeralContainerStatuses ?? []) {
    const st = s.state ?? {};
    ephemeral[s.name] = st.running
      ? "running"
      : st.terminated
        ? "stopped"
        : st.waiting && STUCK.includes(st.waiting.reason ?? "")
          ? "stuck"
          : "starting";
  }
  const images: Record<string, string> = {};
  for (const c of p.spec?.ephemeralContainers ?? []) if (c.image) images[c.name] = c.image;
  return { name: p.metadata?.name ?? "", uid: p.metadata?.uid ?? "", ephemeral, images };
}

/**
 * An ephemeral container can't be changed once added: a sidecarImage changed while the
 * sidecar runs (or starts) would be silently ignored. Refused instead, naming the key, with
 * the image that runs. A stopped sidecar is replaced under a new name (sidecarName), with
 * the image asked for.
 */
export function checkEphemeralImage(
  key: "source" | "target",
  container: string,
  pods: PodView[],
  image: string,
): void {
  for (const p of pods) {
    const state = p.ephemeral[container];
    const running = p.images[container];
    if (
      (state === "running" || state === "starting") &&
      running !== undefined &&
      running !== image
    ) {
      throw new ConfigError(
        "sidecarImage",
        `the ${key}'s ephemeral sidecar ${container} in pod ${p.name} runs ${running}, and an ` +
          `ephemeral container can't be changed: set sidecarImage back to ${running}, or revert ` +
          `(remove the phase key and run pulumi up) and prepare again with the new image`,
      );
    }
  }
}

/**
 * The pods that get a sidecar. `names`: the pods the steps run in (each replica of a
 * `Prometheus` target, the chosen replica of a source); unset: the workload's one pod. Each
 * must exist, run, and not be terminating.
 */
export function sidecarPods(
  key: "source" | "target",
  what: string,
  pods: EphemeralPodObject[],
  names?: string[],
): PodView[] {
  const live = pods.filter((p) => p.metadata?.name && !p.metadata.deletionTimestamp);
  const fail = (why: string) =>
    new ConfigError(
      "sidecarMode",
      `ephemeral adds the ${key}'s sidecar to its running pod, and ${what} ${why}; wait until it ` +
        `runs one pod and run again, or set sidecarMode to patch`,
    );
  let chosen: EphemeralPodObject[];
  if (names && names.length > 0) {
    chosen = names.map((n) => {
      const p = live.find((x) => x.metadata!.name === n);
      if (!p) throw fail(`has no live pod ${n}`);
      return p;
    });
  } else {
    if (live.length !== 1) {
      throw fail(
        `has ${live.length} live pods${live.length ? ` (${live.map((p) => p.metadata!.name).join(", ")})` : ""}`,
      );
    }
    chosen = live;
  }
  for (const p of chosen) {
    if (p.status?.phase !== "Running") {
      throw fail(`has pod ${p.metadata!.name} in phase ${p.status?.phase ?? "unknown"}`);
    }
    if (!p.metadata?.uid) throw fail(`has pod ${p.metadata!.name} without a uid`);
  }
  return chosen.map(podView);
}

/**
 * The sidecar's container name: `base`, or `base-2`, `base-3`, ... The first name that every
 * pod either lacks or runs (or is still starting) is used. A stopped ephemeral container (a
 * revert, a crash) or one that can't start can neither be restarted nor removed, so the next
 * sidecar needs a new name. `running`: every pod runs it already.
 */
export function sidecarName(base: string, pods: PodView[]): { name: string; running: boolean } {
  for (let g = 1; ; g++) {
    const name = g === 1 ? base : `${base}-${g}`;
    const states = pods.map((p) => p.ephemeral[name] ?? "absent");
    if (states.every((s) => s === "absent" || s === "running" || s === "starting")) {
      return { name, running: states.length > 0 && states.every((s) => s === "running") };
    }
  }
}

/**
 * Where an ephemeral sidecar finds the TSDB. It may not mount with a subPath, so it mounts the
 * volume's root at VOLUME_ROOT and goes down the subPath as a directory. A subPathExpr can't be
 * resolved outside the kubelet: refused.
 */
export function ephemeralDataPath(key: "source" | "target", loc: TsdbLocation): string {
  if (loc.subPathExpr) {
    throw new ConfigError(
      "sidecarMode",
      `ephemeral can't reach the ${key}'s TSDB: its volume "${loc.volume}" is mounted with ` +
        `subPathExpr ${loc.subPathExpr}, which only the kubelet expands, and an ephemeral container ` +
        `can't mount with a subPath. Set sidecarMode to patch`,
    );
  }
  const mount = loc.mountPath.replace(/\/+$/, "");
  const rel = loc.dataPath.slice(mount.length).replace(/^\/+/, "");
  const sub = (loc.subPath ?? "").replace(/^\/+|\/+$/g, "");
  return [VOLUME_ROOT, sub, rel].filter((s) => s !== "").join("/");
}

/**
 * The Prometheus container's securityContext, for a sidecar that runs as the same user, with
 * its own root filesystem writable: an ephemeral container can't add a volume for its scratch
 * space (rsyncd's config, temp files), and its root filesystem is the sidecar image's own,
 * not Prometheus's, so nothing of Prometheus becomes writable.
 */
export function ephemeralSecurityContext(
  sc: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (!sc) return undefined;
  if (sc.readOnlyRootFilesystem !== true) return sc;
  return { ...sc, readOnlyRootFilesystem: false };
}

/** The includeHead decision: the admin API can't be switched on without a restart. */
export function headInEphemeral(
  includeHead: boolean,
  adminApi: boolean,
): { includeHead: boolean; message?: string } {
  if (!includeHead) return { includeHead };
  if (adminApi) {
    return {
      includeHead,
      message:
        "sidecarMode ephemeral: includeHead uses the source's admin API, which is on already (nothing to switch)",
    };
  }
  return {
    includeHead: false,
    message:
      "sidecarMode ephemeral: includeHead is set but the source's admin API is off, and switching it on " +
      "needs a restart: the plan leaves the head out (the gap below is what that costs). To include " +
      "the head, start the source with --web.enable-admin-api yourself, or set sidecarMode to patch",
  };
}
