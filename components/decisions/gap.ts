// Whether the migration may go ahead now, given the gap the plan leaves. Pure, so that
// every branch of the advice has a table test.

import { iso } from "./time";
import { COMPACTION_SLACK_MS } from "./tsdb";

export interface GapFacts {
  /** The gap the plan leaves, in ms. */
  gapMs: number;
  /** When the source's next head compaction is due (ms), if known. */
  nextCompactionMs?: number;
  /** The gap if we snapshot right after that compaction (ms), if known. */
  gapAfterNextCompactionMs?: number;
  /** End of the block that compaction writes (ms), if known: what a wait waits for. */
  nextBlockEndMs?: number;
  /** The blocks the plan copies (the head's included), when known: none proves nothing. */
  blocks?: readonly unknown[];
}

export interface GateSettings {
  maxWaitMinutes: number;
  acceptGap: boolean;
}

export type GateDecision =
  | { action: "go"; message: string }
  | {
      action: "wait";
      /** When the compaction should be done (ms, wall clock). */
      untilMs: number;
      /** Wait until the source has a block that reaches this time (ms). */
      blockEndMs: number;
      message: string;
    }
  | { action: "fail"; key: string; message: string };

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

export function decideGap(facts: GapFacts, s: GateSettings, nowMs: number): GateDecision {
  if (facts.gapMs <= 0) return { action: "go", message: "no gap: every sample is kept" };
  // Nothing copied and a gap: the verification would have nothing to compare, and acceptGap
  // can't make that a migration. Typically the source's history is still all in its head.
  if (facts.blocks !== undefined && facts.blocks.length === 0) {
    return {
      action: "fail",
      key: "includeHead",
      message:
        `the plan copies no block but leaves a gap of ${minutes(facts.gapMs)}: the source's ` +
        `history is not in any block yet (only in its head), so there is nothing to migrate and ` +
        `nothing to verify. Set includeHead to true to snapshot the head too (needs the admin API), ` +
        `or run again after the source's first compaction` +
        (facts.nextCompactionMs !== undefined ? ` (about ${iso(facts.nextCompactionMs)})` : ""),
    };
  }
  const gain =
    facts.nextCompactionMs !== undefined && facts.gapAfterNextCompactionMs !== undefined
      ? facts.gapMs - facts.gapAfterNextCompactionMs
      : 0;
  if (gain > 0) {
    const readyMs = facts.nextCompactionMs! + COMPACTION_SLACK_MS;
    const waitMs = Math.max(0, readyMs - nowMs);
    const advice =
      `the plan leaves a gap of ${minutes(facts.gapMs)}; the source compacts next at about ` +
      `${iso(facts.nextCompactionMs!)}, and a snapshot after that leaves ${minutes(facts.gapAfterNextCompactionMs!)}`;
    // A wait that leaves a gap still needs acceptGap: without it, refuse now rather than wait
    // and then go ahead with that gap unasked.
    if (facts.gapAfterNextCompactionMs! > 0 && !s.acceptGap) {
      return {
        action: "fail",
        key: "acceptGap",
        message:
          `${advice}, not 0: waiting shrinks the gap but doesn't close it. Set includeHead to ` +
          `true (needs the admin API, closes it on Prometheus 2.39+), or set acceptGap to true ` +
          `(with maxWaitMinutes at least ${Math.ceil(waitMs / 60_000)} to wait for the smaller gap first)`,
      };
    }
    if (waitMs <= s.maxWaitMinutes * 60_000) {
      return {
        action: "wait",
        untilMs: readyMs,
        blockEndMs: facts.nextBlockEndMs ?? 0,
        message: `${advice}: waiting ${minutes(waitMs)} for it`,
      };
    }
    if (!s.acceptGap) {
      return {
        action: "fail",
        key: "maxWaitMinutes",
        message:
          `${advice}. Run \`pulumi up\` again after ${iso(readyMs)}, or set maxWaitMinutes to at least ` +
          `${Math.ceil(waitMs / 60_000)} to wait, or set acceptGap to true to go ahead now`,
      };
    }
  } else if (!s.acceptGap) {
    return {
      action: "fail",
      key: "acceptGap",
      message:
        `the plan leaves a gap of ${minutes(facts.gapMs)} that waiting would not close (the target ` +
        `started after the source's newest complete data). Set includeHead to true (needs the admin API, ` +
        `closes it on Prometheus 2.39+), or set acceptGap to true to go ahead`,
    };
  }
  return { action: "go", message: `going ahead with a gap of ${minutes(facts.gapMs)} (acceptGap)` };
}
