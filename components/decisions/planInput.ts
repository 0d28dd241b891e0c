// Glue between the probes and the planner: which of the target's data is its own, and how
// the plan is shown to the user. Pure.

import { headRange, ProbeResult, targetOwnEarliestMs } from "./sidecarOutput";
import { BlockMeta, Plan, PlanInput } from "./plan";

/** ULIDs of source blocks and of the level-1 blocks they were compacted from. */
function sourceIds(blocks: BlockMeta[]): Set<string> {
  const ids = new Set<string>();
  for (const b of blocks) {
    ids.add(b.ulid);
    for (const s of b.compaction.sources ?? []) ids.add(s);
  }
  return ids;
}

/**
 * The target's blocks that hold its own data. Blocks we imported (same ULID as a source
 * block, or compacted from one) are not.
 */
export function ownTargetBlocks(target: BlockMeta[], source: BlockMeta[]): BlockMeta[] {
  const ids = sourceIds(source);
  return target.filter(
    (b) => !ids.has(b.ulid) && !(b.compaction.sources ?? []).some((s) => ids.has(s)),
  );
}

/**
 * Before a head snapshot exists, the head it will contain, as a block: what `includeHead`
 * adds to the plan (the snapshot writes the head as one more block).
 */
export function headAsBlock(source: ProbeResult): BlockMeta[] {
  const head = headRange(source.tsdb);
  if (!head) return [];
  return [
    { ulid: "(head)", minTime: head.minTime, maxTime: head.maxTime + 1, compaction: { level: 1 } },
  ];
}

export function planInput(
  sourceBlocks: BlockMeta[],
  source: ProbeResult,
  target: ProbeResult,
  includeHead: boolean,
): PlanInput {
  const all = [...source.blocks, ...sourceBlocks];
  return {
    sourceBlocks,
    sourceHead: headRange(source.tsdb),
    targetVersion: target.buildinfo?.version ?? "",
    targetFlags: target.flags ?? {},
    targetBlocks: ownTargetBlocks(target.blocks, all),
    targetEarliestMs: targetOwnEarliestMs(target, sourceIds(all)),
    includeHead,
    nowMs: target.nowMs,
  };
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The plan as a stack output: numbers a person can read. */
export function summarizePlan(plan: Plan) {
  return {
    blocks: plan.blocks.length,
    bytes: plan.bytes,
    samples: plan.samples,
    from: plan.blocks.length ? iso(Math.min(...plan.blocks.map((b) => b.minTime))) : null,
    cutoff: plan.blocks.length ? iso(plan.cutoffMs) : null,
    gapSeconds: Math.round(plan.gapMs / 1000),
    overlapAllowed: plan.overlapAllowed,
    skipped: plan.skipped,
    nextSourceCompaction: iso(plan.nextCompactionMs),
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
