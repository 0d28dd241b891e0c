// Comparing sample counts of the source and the target (sidecar/counts.sh).
// Pure, so the rules are table-tested.

import { parseLastJsonLine } from "./sidecarOutput";
import type { Plan } from "./plan";

/** Samples in [endMs - window, endMs) on one server. */
export interface WindowCount {
  endMs: number;
  count: number;
}

/** What counts.sh prints. */
export interface CountsResult {
  windows: WindowCount[];
  health: {
    blocksLoaded: number;
    reloadFailures: number;
    compactionsFailed: number;
    lowestTimestampMs: number;
  };
}

export interface Comparison {
  ok: boolean;
  windowsCompared: number;
  windows: { endMs: number; source: number; target: number; rule: "equal" | "at-least" }[];
  mismatches: { endMs: number; source: number; target: number; rule: string }[];
  summary: string;
}

/** Default comparison window: one default block range. */
export const WINDOW_MS = 2 * 3_600_000;

function finite(x: unknown, what: string): number {
  if (typeof x !== "number" || !Number.isFinite(x))
    throw new Error(`counts: ${what} must be a finite number, got ${JSON.stringify(x)}`);
  return x;
}

/** Parse and validate counts.sh output. */
export function parseCounts(stdout: string): CountsResult {
  const x = parseLastJsonLine(stdout) as {
    windows?: unknown;
    health?: Record<string, unknown>;
  } | null;
  if (
    x === null ||
    typeof x !== "object" ||
    !Array.isArray(x.windows) ||
    typeof x.health !== "object" ||
    x.health === null
  ) {
    throw new Error("counts: expected {windows:[...],health:{...}}");
  }
  const h = x.health;
  return {
    windows: x.windows.map((w: unknown, i) => {
      const o = w as Record<string, unknown>;
      return {
        endMs: finite(o?.["endMs"], `windows[${i}].endMs`),
        count: finite(o?.["count"], `windows[${i}].count`),
      };
    }),
    health: {
      blocksLoaded: finite(h["blocksLoaded"], "blocksLoaded"),
      reloadFailures: finite(h["reloadFailures"], "reloadFailures"),
      compactionsFailed: finite(h["compactionsFailed"], "compactionsFailed"),
      lowestTimestampMs: finite(h["lowestTimestampMs"], "lowestTimestampMs"),
    },
  };
}

/**
 * Ends of the windows to compare, oldest first: every aligned window end E
 * (a multiple of windowMs, as blocks are aligned) with firstCopied < E <=
 * cutoff, plus two unaligned ends that cover what aligned windows miss:
 * the cutoff itself (the tail of the newest copied block) and the target's
 * first own sample when it falls inside the copied range (with includeHead:
 * the window just before it holds the copied head data only, so it must
 * match exactly).
 */
export function windowsToCompare(
  plan: Plan,
  opts: { windowMs?: number; targetEarliestMs?: number } = {},
): number[] {
  const w = opts.windowMs ?? WINDOW_MS;
  if (!(w > 0)) throw new Error(`windowsToCompare: windowMs must be > 0, got ${w}`);
  if (plan.blocks.length === 0) return [];
  const from = Math.min(...plan.blocks.map((b) => b.minTime));
  const ends = new Set<number>();
  for (let end = Math.floor(from / w) * w + w; end <= plan.cutoffMs; end += w) ends.add(end);
  if (plan.cutoffMs > from) ends.add(plan.cutoffMs);
  const te = opts.targetEarliestMs;
  if (te !== undefined && te > from && te < plan.cutoffMs) ends.add(te);
  return [...ends].sort((a, b) => a - b);
}

/**
 * Windows that end at or before the target's first own sample hold copied
 * data only: the counts must be equal (fewer = lost samples, more =
 * duplicated blocks). Later windows also hold what the target scraped
 * itself: it must have at least the source's count. A window missing on the
 * target is a mismatch.
 */
export function compareCounts(
  source: WindowCount[],
  target: WindowCount[],
  targetEarliestMs: number | undefined,
): Comparison {
  const t = new Map(target.map((w) => [w.endMs, w.count]));
  const windows: Comparison["windows"] = [];
  const mismatches: Comparison["mismatches"] = [];
  for (const s of source) {
    const tc = t.get(s.endMs);
    const rule =
      targetEarliestMs === undefined || s.endMs <= targetEarliestMs ? "equal" : "at-least";
    if (tc === undefined) {
      mismatches.push({ endMs: s.endMs, source: s.count, target: NaN, rule: "missing on target" });
      continue;
    }
    windows.push({ endMs: s.endMs, source: s.count, target: tc, rule });
    if (rule === "equal" ? tc !== s.count : tc < s.count)
      mismatches.push({ endMs: s.endMs, source: s.count, target: tc, rule });
  }
  const total = source.reduce((n, w) => n + w.count, 0);
  const summary =
    mismatches.length > 0
      ? `${mismatches.length} of ${source.length} windows differ: ` +
        mismatches
          .slice(0, 5)
          .map(
            (m) =>
              `${new Date(m.endMs).toISOString()} source ${m.source} target ${m.target} (${m.rule})`,
          )
          .join("; ")
      : `${windows.length} windows, ${total} source samples, all on the target`;
  return {
    ok: mismatches.length === 0,
    windowsCompared: windows.length,
    windows,
    mismatches,
    summary,
  };
}
