// Whether reverting now is safe for the target: removing its sidecar restarts it. Pure.

import { BLOCK_MS, COMPACTION_SLACK_MS } from "./tsdb";
import { HOUR_MS } from "./time";

export interface RestartRisk {
  /** The target's own samples in [lossFromMs, lossToMs) would be dropped by a restart. */
  lossFromMs: number;
  lossToMs: number;
  /** From about then on, a restart loses nothing. */
  safeAfterMs: number;
}

/**
 * What a restart of the target would lose now. On start, Prometheus replays its WAL only
 * above the newest block's maxTime, so head samples older than an imported block are
 * dropped until a head compaction has persisted them. The head's start moves to the next
 * 2h boundary once the head spans 3h, hence "boundary after the newest block + 1h".
 */
export function restartRisk(
  blocks: { maxTime: number }[],
  head: { minTime: number; maxTime: number } | undefined,
): RestartRisk | undefined {
  if (!head || blocks.length === 0) return undefined;
  const newest = Math.max(...blocks.map((b) => b.maxTime));
  if (head.minTime >= newest) return undefined;
  return {
    lossFromMs: head.minTime,
    lossToMs: Math.min(newest, head.maxTime),
    safeAfterMs: Math.ceil(newest / BLOCK_MS) * BLOCK_MS + HOUR_MS + COMPACTION_SLACK_MS,
  };
}
