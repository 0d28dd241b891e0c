// Whether a snapshot dir found on the source may be used: only the one this migration made.
// Pure. The sidecars record who made a snapshot (sidecar/snapshot.sh writes .ptm-owner with
// the stack and this migration's random ID; sidecar/lib.sh snapshot_owner_state reads it).

import type { SnapshotOwner } from "./sidecarOutput";

export type SnapshotUse =
  /** No snapshot yet: plan from the live blocks, through the gap gate. */
  | { action: "plan" }
  /** This migration's own snapshot: its plan passed the gate when it was made (a resume). */
  | { action: "resume" }
  /** An earlier attempt's: never reused; planned afresh, through the gate, and replaced. */
  | { action: "replace"; message: string }
  /** Somebody else's: never reused, never touched. */
  | { action: "refuse"; message: string };

export function snapshotUse(owner: SnapshotOwner, dir: string): SnapshotUse {
  switch (owner) {
    case "none":
      return { action: "plan" };
    case "ours":
      return { action: "resume" };
    case "earlier":
      return {
        action: "replace",
        message:
          `the snapshot ${dir} on the source was made by an earlier attempt of this stack, not by ` +
          `this migration: it is not reused; the plan is made afresh and the snapshot step replaces it`,
      };
    case "other":
      return {
        action: "refuse",
        message:
          `${dir} on the source was not made by this migration (another stack, or no owner ` +
          `record): it is neither reused nor removed. If nothing uses it any more, remove it ` +
          `(kubectl exec into the source's ptm-rsyncd container: rm -rf ${dir}), then run ` +
          `\`pulumi up\` again`,
      };
  }
}
