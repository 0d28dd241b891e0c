// Glue between the probes and the planner: which of the target's data is its own, and how
// the plan is shown to the user. Pure.

import { ProbeResult } from "./live";
import { BlockMeta, Plan, PlanInput } from "./plan";

const BLOCK_MS = 2 * 3_600_000;

/**
 * The target's blocks that hold its own data. Blocks we imported (same ULID as a source
 * block, or compacted from one: their `compaction.sources` share a source ULID) are not.
 */
export function ownTargetBlocks(target: BlockMeta[], source: BlockMeta[]): BlockMeta[] {
  const sourceIds = new Set<string>();
  for (const b of source) {
    sourceIds.add(b.ulid);
    for (const s of b.compaction.sources ?? []) sourceIds.add(s);
  }
  return target.filter(
    (b) => !sourceIds.has(b.ulid) && !(b.compaction.sources ?? []).some((s) => sourceIds.has(s)),
  );
}

/** The earliest sample the target scraped itself: its own blocks and its head. */
export function earliestOwnSampleMs(
  own: BlockMeta[],
  head: ProbeResult["tsdb"],
): number | undefined {
  const candidates = own.map((b) => b.minTime);
  // An empty head reports minTime as a huge sentinel, or above its maxTime.
  if (head && head.minTime <= head.maxTime && head.minTime > 0) candidates.push(head.minTime);
  return candidates.length ? Math.min(...candidates) : undefined;
}

export function planInput(
  sourceBlocks: BlockMeta[],
  source: ProbeResult,
  target: ProbeResult,
  includeHead: boolean,
): PlanInput {
  const own = ownTargetBlocks(target.blocks, [...source.blocks, ...sourceBlocks]);
  const head = source.tsdb;
  return {
    sourceBlocks,
    sourceHead:
      head && head.minTime <= head.maxTime
        ? { minTime: head.minTime, maxTime: head.maxTime }
        : undefined,
    targetVersion: target.buildinfo?.version ?? "",
    targetFlags: target.flags ?? {},
    targetBlocks: own,
    targetEarliestMs: earliestOwnSampleMs(own, target.tsdb),
    includeHead,
    nowMs: target.nowMs,
  };
}

/** The end of the block the source's next head compaction writes: 2h after the head's start. */
export function nextBlockEndMs(plan: Plan): number | undefined {
  return plan.nextCompactionMs === undefined
    ? undefined
    : plan.nextCompactionMs - 3 * 3_600_000 + BLOCK_MS;
}

/** The plan as a stack output: numbers a person can read. */
export function summarizePlan(plan: Plan) {
  return {
    blocks: plan.blocks.length,
    bytes: plan.bytes,
    samples: plan.samples,
    from: plan.blocks.length
      ? new Date(Math.min(...plan.blocks.map((b) => b.minTime))).toISOString()
      : null,
    cutoff: plan.blocks.length ? new Date(plan.cutoffMs).toISOString() : null,
    gapSeconds: Math.round(plan.gapMs / 1000),
    overlapAllowed: plan.overlapAllowed,
    skipped: plan.skipped,
    nextSourceCompaction:
      plan.nextCompactionMs === undefined ? null : new Date(plan.nextCompactionMs).toISOString(),
    gapSecondsAfterNextCompaction:
      plan.gapAfterNextCompactionMs === undefined
        ? null
        : Math.round(plan.gapAfterNextCompactionMs / 1000),
    advice: plan.advice,
  };
}

export function describePlan(plan: Plan): string {
  const s = summarizePlan(plan);
  return `${s.blocks} blocks, ${(s.bytes / 2 ** 20).toFixed(1)} MiB, ${s.samples} samples, up to ${s.cutoff}, gap ${s.gapSeconds}s`;
}
