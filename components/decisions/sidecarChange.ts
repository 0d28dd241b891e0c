// What a later run may change in a sidecar that already runs in a pod template (issue 20).
// Any change to the template rolls the pods, and rolling the target after the install drops
// its own samples that are older than the newest imported block (restartRisk.ts). So:
// - what the program sets by itself (the command, which embeds the scripts; the env, mounts,
//   ports, securityContext; the default resources) is kept exactly as it runs: upgrading the
//   program never rolls a pod;
// - what a config key sets (sidecarImage, sidecarImagePullPolicy, sidecarResources) changes
//   only through that key, and the caller checks the restart it causes before it happens.
// Pure.

import type { Container } from "./workload";

/** The sidecar container as the program would apply it (a k8s container input). */
export type SidecarContainer = { name: string; image?: string; imagePullPolicy?: string } & Record<
  string,
  unknown
>;

/** A config key whose change restarts the pods, with what runs and what is asked. */
export interface RestartingChange {
  key: "sidecarImage" | "sidecarImagePullPolicy" | "sidecarResources";
  running: string;
  wanted: string;
}

export interface SidecarChange {
  /** The container to apply. */
  container: SidecarContainer;
  /** The config keys changed since the sidecar was added; empty: nothing rolls. */
  restarting: RestartingChange[];
}

/** Fields the program sets by itself: kept as they run, so that an upgrade rolls nothing. */
const PROGRAM_FIELDS = ["command", "args", "env", "volumeMounts", "ports", "securityContext"];

const show = (v: unknown) => (v === undefined ? "(unset)" : JSON.stringify(v));

/** Objects compared by value, whatever the order of their keys. */
function sameValue(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, norm((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(norm)
        : v;
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

/**
 * The sidecar to apply, given the one that runs (undefined before the first prepare) and
 * whether sidecarResources is set in the config (unset: the program's default, which an
 * upgrade may change, so the running resources are kept).
 */
export function keepRunningSidecar(
  wanted: SidecarContainer,
  live: Container | undefined,
  resourcesConfigured: boolean,
): SidecarChange {
  if (!live) return { container: wanted, restarting: [] };
  const container: SidecarContainer = { ...wanted };
  const liveFields = live as unknown as Record<string, unknown>;
  for (const f of PROGRAM_FIELDS) {
    if (liveFields[f] === undefined) delete container[f];
    else container[f] = liveFields[f];
  }
  if (!resourcesConfigured) {
    if (liveFields["resources"] === undefined) delete container["resources"];
    else container["resources"] = liveFields["resources"];
  }
  const restarting: RestartingChange[] = [];
  if (wanted.image !== live.image) {
    restarting.push({ key: "sidecarImage", running: show(live.image), wanted: show(wanted.image) });
  }
  // The API server fills in IfNotPresent (or Always for :latest) when unset: compare only what
  // both say.
  if (
    live.imagePullPolicy !== undefined &&
    wanted.imagePullPolicy !== undefined &&
    wanted.imagePullPolicy !== live.imagePullPolicy
  ) {
    restarting.push({
      key: "sidecarImagePullPolicy",
      running: show(live.imagePullPolicy),
      wanted: show(wanted.imagePullPolicy),
    });
  }
  if (resourcesConfigured && !sameValue(wanted["resources"], liveFields["resources"])) {
    restarting.push({
      key: "sidecarResources",
      running: show(liveFields["resources"]),
      wanted: show(wanted["resources"]),
    });
  }
  return { container, restarting };
}
