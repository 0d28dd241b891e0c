// Rules of the Prometheus TSDB that every decision shares: block timing, the head's time
// range, and block lineage (which target blocks are imported from the source and which are
// the target's own). Pure. Sources: prometheus/prometheus tsdb/db.go, tsdb/head.go,
// docs/storage.md.

import { HOUR_MS } from "./time";
import type { BlockMeta, HeadStats, ProbeResult } from "./sidecarOutput";

/** Prometheus' default block range (tsdb DefaultBlockDuration). */
export const BLOCK_MS = 2 * HOUR_MS;
/** The head is compacted once it spans 1.5 block ranges (tsdb/head.go compactable()). */
export const HEAD_COMPACT_SPAN_MS = 3 * HOUR_MS;
/** Compaction runs on a one-minute loop and takes a moment: allow for both. */
export const COMPACTION_SLACK_MS = 3 * 60_000;

// Anything later than this is a sentinel, not a sample time: an empty head
// reports minTime = MaxInt64 (and maxTime = MinInt64).
const MAX_PLAUSIBLE_MS = 1e15;

/**
 * The head's time range, or undefined when the head holds no samples. An
 * empty head reports sentinels (MaxInt64/MinInt64) or, right after start,
 * minTime = maxTime = the newest block's maxTime with zero series.
 */
export function headRange(
  head: HeadStats | null,
): { minTime: number; maxTime: number } | undefined {
  if (head === null) return undefined;
  if (head.numSeries === 0) return undefined;
  if (head.minTime > head.maxTime || head.minTime >= MAX_PLAUSIBLE_MS || head.maxTime <= 0)
    return undefined;
  return { minTime: head.minTime, maxTime: head.maxTime };
}

/** The level-1 blocks a block was made from (compaction.sources; a level-1 block is its own). */
export function sourcesOf(b: BlockMeta): Set<string> {
  const s = b.compaction.sources;
  return new Set(s !== undefined && s.length > 0 ? s : [b.ulid]);
}

/** ULIDs of the given source blocks and of the level-1 blocks they were compacted from. */
export function lineageIds(blocks: Iterable<BlockMeta>): Set<string> {
  const ids = new Set<string>();
  for (const b of blocks) {
    ids.add(b.ulid);
    for (const s of sourcesOf(b)) ids.add(s);
  }
  return ids;
}

/**
 * Whether a target block came from the source: it has a source block's ULID, or was
 * compacted from one. Every other target block holds the target's own data.
 */
export function isImported(b: BlockMeta, sourceIds: Set<string>): boolean {
  return sourceIds.has(b.ulid) || [...sourcesOf(b)].some((s) => sourceIds.has(s));
}

/** The target's blocks that hold its own data (not imported from these source blocks). */
export function ownTargetBlocks(target: BlockMeta[], source: Iterable<BlockMeta>): BlockMeta[] {
  const ids = lineageIds(source);
  return target.filter((b) => !isImported(b, ids));
}

/**
 * Earliest sample the target holds of its OWN (blocks and head), undefined if
 * empty. Blocks that are, or were compacted from, blocks listed in
 * `importedUlids` are ignored: after a partial run the target also holds
 * imported blocks, and counting them would move "the target's own start"
 * back in time. (Once the target merges imported and own data into one block
 * this cannot be told apart any more: compute the plan before installing and
 * keep it.)
 */
export function targetOwnEarliestMs(
  probe: ProbeResult,
  importedUlids: Iterable<string> = [],
): number | undefined {
  const imported = new Set(importedUlids);
  let earliest: number | undefined;
  for (const b of probe.blocks) {
    if (isImported(b, imported)) continue;
    earliest = earliest === undefined ? b.minTime : Math.min(earliest, b.minTime);
  }
  const head = headRange(probe.tsdb);
  if (head !== undefined)
    earliest = earliest === undefined ? head.minTime : Math.min(earliest, head.minTime);
  return earliest;
}
