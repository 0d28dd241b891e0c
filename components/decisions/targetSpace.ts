// Whether the target's volume can take the copy (issue 21 item 3): the planned blocks are
// staged on the target's own volume (copy.sh's staging dir is on the TSDB's filesystem), and
// a full volume stops the target. copy.sh refuses too, but only mid-`up`, after the snapshot:
// this says so at the decision, before anything is created. Pure.

import type { BlockMeta } from "./sidecarOutput";
import { lineageIds } from "./tsdb";

const MiB = 2 ** 20;
/** copy.sh's default margin: 64 MiB plus a tenth of what it copies (PTM_FREE_MARGIN_BYTES). */
export function copyMarginBytes(needBytes: number): number {
  return 64 * MiB + Math.floor(needBytes / 10);
}

export type TargetSpace =
  | { ok: true; needBytes: number; availableBytes: number }
  | { ok: false; needBytes: number; availableBytes: number; message: string };

const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

/**
 * What the copy needs on the target's volume: the planned blocks it doesn't hold yet (by ID
 * or by lineage: a block it imported and compacted), plus copy.sh's margin.
 */
export function decideTargetSpace(
  planned: BlockMeta[],
  targetBlocks: BlockMeta[],
  availableBytes: number,
  volume: string,
): TargetSpace {
  const held = lineageIds(targetBlocks);
  const needBytes = planned
    .filter((b) => !held.has(b.ulid))
    .reduce((s, b) => s + (b.sizeBytes ?? 0), 0);
  if (needBytes === 0) return { ok: true, needBytes, availableBytes };
  const margin = copyMarginBytes(needBytes);
  if (needBytes + margin <= availableBytes) return { ok: true, needBytes, availableBytes };
  return {
    ok: false,
    needBytes,
    availableBytes,
    message:
      `the copy needs ${mib(needBytes)} plus a margin of ${mib(margin)} on the target's volume ` +
      `${volume}, which has ${mib(availableBytes)} free (the blocks are staged next to the TSDB, ` +
      `and a full volume stops the target). Free space or grow the volume, then run again`,
  };
}
