// Whether the migration may go ahead now, given the gap the plan leaves. Pure, so that
// every branch of the advice has a table test.

export interface GapFacts {
  /** The gap the plan leaves, in ms. */
  gapMs: number;
  /** When the source's next head compaction is due (ms), if known. */
  nextCompactionMs?: number;
  /** The gap if we snapshot right after that compaction (ms), if known. */
  gapAfterNextCompactionMs?: number;
}

export interface GateSettings {
  maxWaitMinutes: number;
  acceptGap: boolean;
}

export type GateDecision =
  | { action: "go"; message: string }
  | { action: "wait"; untilMs: number; message: string }
  | { action: "fail"; key: string; message: string };

// Compaction runs on a one-minute loop and takes a moment: allow for both.
export const COMPACTION_SLACK_MS = 3 * 60_000;

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;
const iso = (ms: number) => new Date(ms).toISOString();

export function decideGap(facts: GapFacts, s: GateSettings, nowMs: number): GateDecision {
  if (facts.gapMs <= 0) return { action: "go", message: "no gap: every sample is kept" };
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
    if (waitMs <= s.maxWaitMinutes * 60_000) {
      return {
        action: "wait",
        untilMs: readyMs,
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

export interface RestartRisk {
  /** The target's own samples in [lossFromMs, lossToMs) would be dropped by a restart. */
  lossFromMs: number;
  lossToMs: number;
  /** From about then on, a restart loses nothing. */
  safeAfterMs: number;
}

const HOUR = 3_600_000;
const BLOCK_MS = 2 * HOUR;

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
    safeAfterMs: Math.ceil(newest / BLOCK_MS) * BLOCK_MS + HOUR + COMPACTION_SLACK_MS,
  };
}
