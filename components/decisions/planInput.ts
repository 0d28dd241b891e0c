// Glue between the probes and the planner: the planner's input from what the probes saw, and
// how the plan is shown to the user. Pure.

import type { Sourced } from "./discovery";
import { OverlapRule, Plan, PlanInput } from "./plan";
import { confirmSourceEmpty, requireServerAnswers, unreadable } from "./serverAnswers";
import { BlockMeta, ProbeResult } from "./sidecarOutput";
import { iso } from "./time";
import { headRange, lineageIds, ownTargetBlocks, targetOwnEarliestMs } from "./tsdb";

/**
 * Before a head snapshot exists, the head it will contain, as a block: what `includeHead`
 * adds to the plan (the snapshot writes the head as one more block).
 */
export function headAsBlock(source: ProbeResult): BlockMeta[] {
  const head = headRange(source.tsdb);
  if (!head) return [];
  // The snapshot writes it as every release does: meta.json version 1, index format 2
  // (blockFormat.ts); whether it holds histograms is the source's to tell.
  return [
    {
      ulid: "(head)",
      minTime: head.minTime,
      maxTime: head.maxTime + 1,
      compaction: { level: 1 },
      version: 1,
      indexFormat: 2,
    },
  ];
}

/** The flags discovery read (workload.ts `flags`): the server through the pod proxy, else the spec. */
export interface DiscoveredFlags {
  source?: Sourced<Record<string, string>> | undefined;
  target?: Sourced<Record<string, string>> | undefined;
}

/**
 * The planner's input. Fails closed (a ConfigError naming the key to set) when a server did
 * not give what the plan needs (serverAnswers.ts): its version and head; the target's flags
 * (retention, overlaps), from its probe or else from discovery; and, for a source that looks
 * empty, the server's agreement. The source's flags may be unknown: the version gate then
 * assumes the worst (blockFormat.ts).
 */
export function planInput(
  sourceBlocks: BlockMeta[],
  source: ProbeResult,
  target: ProbeResult,
  includeHead: boolean,
  discovered: DiscoveredFlags = {},
): PlanInput {
  const src = requireServerAnswers("source", source);
  const tgt = requireServerAnswers("target", target);
  const empty = confirmSourceEmpty(sourceBlocks, source);
  if (empty) throw empty;
  const targetFlags = target.flags ?? discovered.target?.value;
  if (targetFlags === undefined) {
    throw unreadable(
      "target",
      target,
      ["flags"],
      `Its flags (retention, overlapping blocks) were not in its container spec either: they ` +
        `decide which blocks it keeps`,
    );
  }
  const all = [...source.blocks, ...sourceBlocks];
  return {
    sourceBlocks,
    sourceHead: headRange(src.head),
    targetVersion: tgt.version,
    targetFlags,
    targetBlocks: ownTargetBlocks(target.blocks, all),
    targetEarliestMs: targetOwnEarliestMs(target, lineageIds(all)),
    includeHead,
    nowMs: target.nowMs,
    writer: { version: src.version, flags: source.flags ?? discovered.source?.value ?? null },
  };
}

const isoOrNull = (ms: number | undefined) => (ms === undefined ? null : iso(ms));

/** The plan as a stack output: numbers a person can read. */
export interface PlanSummary {
  /** Blocks to copy, their bytes and samples. */
  blocks: number;
  bytes: number;
  samples: number;
  /** The oldest copied sample and the cutoff (ISO times); null when nothing is copied. */
  from: string | null;
  cutoff: string | null;
  /** Seconds between the last copied sample and the target's first own one. */
  gapSeconds: number;
  overlapAllowed: boolean;
  /** What the target's version does with overlapping blocks (plan.ts overlapRules). */
  overlapRule: OverlapRule;
  /** The version gate: every block readable by the target (else the preview refused). */
  formatsReadable: boolean;
  /** The plan's skipped blocks, the first 10 (an output is kept in the state). */
  skipped: { ulid: string; reason: string }[];
  skippedCount: number;
  nextSourceCompaction: string | null;
  gapSecondsAfterNextCompaction: number | null;
  advice: string;
}

export function summarizePlan(plan: Plan): PlanSummary {
  return {
    blocks: plan.blocks.length,
    bytes: plan.bytes,
    samples: plan.samples,
    from: plan.blocks.length ? isoOrNull(Math.min(...plan.blocks.map((b) => b.minTime))) : null,
    cutoff: plan.blocks.length ? isoOrNull(plan.cutoffMs) : null,
    gapSeconds: Math.round(plan.gapMs / 1000),
    overlapAllowed: plan.overlapAllowed,
    overlapRule: plan.overlapRule,
    formatsReadable: plan.formats.ok,
    skipped: plan.skipped.slice(0, 10),
    skippedCount: plan.skipped.length,
    nextSourceCompaction: isoOrNull(plan.nextCompactionMs),
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
