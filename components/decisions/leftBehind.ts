// What a delete leaves behind when the pod it needed is gone, in words for its log: the
// revert and `pulumi destroy` finish once the old server was decommissioned (issue 20 row 8),
// and the user learns what to clean up by hand. Pure.

import { VOLUME_ROOT } from "./ephemeralSidecar";
import { TsdbLocation } from "./workload";

/** The directory below the volume's root, when the location tells (else undefined). */
function onVolume(loc: TsdbLocation, dir: string): string | undefined {
  const under = (root: string) => dir === root || dir.startsWith(root === "/" ? "/" : `${root}/`);
  // sidecarMode ephemeral: the sidecar mounts the volume's root and goes down the subPath.
  const [root, sub] = under(VOLUME_ROOT)
    ? [VOLUME_ROOT, ""]
    : under(loc.mountPath)
      ? [loc.mountPath, loc.subPath ?? ""]
      : [undefined, ""];
  if (root === undefined) return undefined;
  return [sub, dir.slice(root.length)]
    .join("/")
    .split("/")
    .filter((p) => p !== "")
    .join("/");
}

/** The volume, and the claim that keeps it where there is one. */
function volumeOf(loc: TsdbLocation): string {
  const { ref } = loc;
  if (loc.claimName) {
    return `volume ${loc.volume} (PersistentVolumeClaim ${ref.namespace}/${loc.claimName})`;
  }
  if (loc.volumeKind === "volumeClaimTemplate") {
    // The StatefulSet controller names a replica's claim <template>-<pod>; kubectl picks the
    // first replica of a workload that names no pod.
    const pod = ref.pod ?? `${ref.name}-0`;
    return `volume ${loc.volume} (PersistentVolumeClaim ${ref.namespace}/${loc.volume}-${pod})`;
  }
  return `volume ${loc.volume} (${loc.volumeKind})`;
}

/**
 * What stays when the source's snapshot can't be removed: its directory (as the sidecar saw it,
 * and below the volume's root), on which volume, and how to get rid of it.
 */
export function snapshotLeftBehind(loc: TsdbLocation, snapshot: string): string {
  const dir = `${loc.dataPath.replace(/\/+$/, "")}/snapshots/${snapshot}`;
  const rel = onVolume(loc, dir);
  return (
    `the snapshot directory ${dir}${rel ? ` (${rel} on the volume)` : ""} stays on ` +
    `${volumeOf(loc)}, which no pod mounts now; delete it when you delete the volume, or with ` +
    `\`rm -rf ${dir}\` in a pod that mounts it`
  );
}

/**
 * What stays when a target replica's staging dir can't be removed (the replica was removed
 * since the decision): the directory, on which volume, and how to get rid of it.
 */
export function stagingLeftBehind(loc: TsdbLocation): string {
  const dir = `${loc.dataPath.replace(/\/+$/, "")}/ptm-staging`;
  const rel = onVolume(loc, dir);
  return (
    `the staging directory ${dir}${rel ? ` (${rel} on the volume)` : ""} stays on ` +
    `${volumeOf(loc)}, which no pod mounts now; delete it with \`rm -rf ${dir}\` in a pod ` +
    `that mounts it, or with the volume`
  );
}
