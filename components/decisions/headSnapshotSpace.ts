// Whether the source volume can take a head snapshot: with includeHead, Prometheus writes its
// in-memory head as one more block into <data>/snapshots, on the source's own volume, while it
// keeps writing its WAL there. Pure, so every branch has a table test.

import type { BlockMeta, HeadStats } from "./sidecarOutput";

const MiB = 2 ** 20;
/** Free space the source keeps besides the head block: its WAL and compactions go on. */
export const HEAD_SNAPSHOT_MARGIN_BYTES = 256 * MiB;
/** Bytes per chunk when the source has no block to learn it from (XOR chunks of 120 samples, index). */
const FALLBACK_BYTES_PER_CHUNK = 1024;
/** A head block is written from fresh chunks: allow for a worse ratio than compacted blocks. */
const HEAD_FACTOR = 1.5;

export type HeadSpaceDecision =
  | { ok: true; needBytes: number; availableBytes: number; message: string }
  | { ok: false; needBytes?: number; availableBytes?: number; message: string };

/** The head block's size: its chunks at the bytes per chunk of the source's own blocks. */
export function headBlockBytes(head: HeadStats, blocks: BlockMeta[]): number | undefined {
  if (head.chunkCount === undefined || !(head.chunkCount >= 0)) return undefined;
  let bytes = 0;
  let chunks = 0;
  for (const b of blocks) {
    const n = b.stats?.numChunks;
    if (b.sizeBytes !== undefined && n !== undefined && n > 0) {
      bytes += b.sizeBytes;
      chunks += n;
    }
  }
  const perChunk = chunks > 0 ? bytes / chunks : FALLBACK_BYTES_PER_CHUNK;
  return Math.ceil(head.chunkCount * perChunk * HEAD_FACTOR);
}

const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;

/**
 * Whether a head snapshot fits on the source volume now. It fails closed: without the head's
 * chunk count or the free space, the answer is no, with what is missing.
 */
export function decideHeadSnapshotSpace(
  head: HeadStats | null,
  blocks: BlockMeta[],
  availableBytes: number | undefined,
): HeadSpaceDecision {
  if (head === null) {
    return {
      ok: false,
      message:
        "the source's head size is unknown (its /api/v1/status/tsdb did not answer), so whether a head snapshot fits on its volume can't be checked",
    };
  }
  const est = headBlockBytes(head, blocks);
  if (est === undefined) {
    return {
      ok: false,
      message:
        "the source reports no head chunk count, so the head block's size can't be estimated",
    };
  }
  if (availableBytes === undefined || !(availableBytes >= 0)) {
    return { ok: false, message: "the free space on the source volume is unknown" };
  }
  const needBytes = est + HEAD_SNAPSHOT_MARGIN_BYTES;
  const what = `a head snapshot writes about ${mib(est)} on the source volume (plus ${mib(HEAD_SNAPSHOT_MARGIN_BYTES)} kept free for its WAL), and ${mib(availableBytes)} are free`;
  return needBytes <= availableBytes
    ? { ok: true, needBytes, availableBytes, message: what }
    : { ok: false, needBytes, availableBytes, message: what };
}
