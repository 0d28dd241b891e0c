// What the target keeps of the blocks it is given (issue 21 item 2). At its next reload,
// Prometheus deletes every block whose maxTime is more than retention.time older than its
// newest block's (tsdb/db.go BeyondTimeRetention), and then the oldest blocks while all of
// them together are bigger than retention.size (BeyondSizeRetention). A copied block beyond
// either is deleted within a minute of its install, and the verification then fails with a
// message about loading. The plan counts only what the target keeps. Pure.

import type { Plan } from "./plan";
import type { BlockMeta } from "./sidecarOutput";
import { iso } from "./time";

/** Prometheus' default time retention, when neither time nor size is set (tsdb/db.go). */
export const DEFAULT_RETENTION_MS = 15 * 24 * 3_600_000;

export interface TargetRetention {
  /** Time retention (ms); undefined: none (only a size is set). */
  timeMs: number | undefined;
  /** Size retention (bytes); undefined: none. */
  sizeBytes: number | undefined;
  /** Where it came from, for messages: the flags as the server reported them, or the default. */
  from: string;
}

const UNIT_MS: Record<string, number> = {
  y: 365 * 86_400_000,
  w: 7 * 86_400_000,
  d: 86_400_000,
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
};

/**
 * A Prometheus duration ("15d", "1y2w", "36h", "0s"), as prometheus/common model.ParseDuration
 * reads it: units from years to milliseconds, each at most once, largest first. Throws on
 * anything else.
 */
export function parsePromDuration(text: string): number {
  const m = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(
    text.trim(),
  );
  if (m === null || text.trim() === "") throw new Error(`not a Prometheus duration: "${text}"`);
  return ["y", "w", "d", "h", "m", "s", "ms"].reduce(
    (sum, unit, i) => sum + Number(m[i + 1] ?? 0) * UNIT_MS[unit],
    0,
  );
}

/**
 * A retention size ("512MB", "1GB", "100GiB", "0B"), as Prometheus reads it (alecthomas/units
 * Base2Bytes: every unit a power of 1024). Throws on anything else.
 */
export function parseRetentionSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTPE]?)(i?)B$/.exec(text.trim());
  if (m === null) throw new Error(`not a retention size: "${text}"`);
  const power = ["", "K", "M", "G", "T", "P", "E"].indexOf(m[2]);
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/**
 * The target's retention from the flags its server reports (`/api/v1/status/flags`):
 * `storage.tsdb.retention.time`, else the deprecated `storage.tsdb.retention`, each "0s" when
 * unset; `storage.tsdb.retention.size`. With neither a time nor a size, Prometheus keeps 15d.
 */
export function targetRetention(flags: Record<string, string>): TargetRetention {
  const time = [flags["storage.tsdb.retention.time"], flags["storage.tsdb.retention"]]
    .filter((v): v is string => v !== undefined && v !== "")
    .map((v) => ({ text: v, ms: parsePromDuration(v) }))
    .find((v) => v.ms > 0);
  const sizeText = flags["storage.tsdb.retention.size"];
  const size = sizeText ? parseRetentionSize(sizeText) : 0;
  const sizeBytes = size > 0 ? size : undefined;
  if (time) {
    return {
      timeMs: time.ms,
      sizeBytes,
      from: `--storage.tsdb.retention.time=${time.text}${sizeBytes ? `, --storage.tsdb.retention.size=${sizeText}` : ""}`,
    };
  }
  if (sizeBytes) {
    return {
      timeMs: undefined,
      sizeBytes,
      from: `--storage.tsdb.retention.size=${sizeText} (no time retention)`,
    };
  }
  // Every server reports the flag ("0s" when unset): without it, the flags were not read.
  const reported = flags["storage.tsdb.retention.time"] !== undefined;
  return {
    timeMs: DEFAULT_RETENTION_MS,
    sizeBytes: undefined,
    from: reported
      ? "the default 15d"
      : "the default 15d, assumed: the target reported no retention flag",
  };
}

export interface RetentionCut {
  /** The planned blocks the target keeps, in their order. */
  kept: BlockMeta[];
  /** The planned blocks it would delete at its next reload, with why. */
  beyond: { ulid: string; reason: string }[];
  /** The time retention that would keep every planned block (ms); undefined: none is needed. */
  timeNeededMs: number | undefined;
}

/**
 * Which planned blocks the target keeps. `newestMs`: the newest maxTime the target will hold
 * (its own blocks', its head's, the planned blocks'): counting from the newest of all, not
 * just its newest block, errs towards refusing. `targetBytes`: what its own blocks take.
 */
export function cutToRetention(
  planned: BlockMeta[],
  r: TargetRetention,
  newestMs: number,
  targetBytes: number,
): RetentionCut {
  const beyond: RetentionCut["beyond"] = [];
  let kept = planned;
  let timeNeededMs: number | undefined;
  if (r.timeMs !== undefined) {
    const limit = r.timeMs;
    const old = planned.filter((b) => newestMs - b.maxTime > limit);
    if (old.length > 0) {
      timeNeededMs = Math.max(...old.map((b) => newestMs - b.maxTime));
      for (const b of old) {
        beyond.push({
          ulid: b.ulid,
          reason: `older than the target's time retention (${r.from}) counted from its newest data`,
        });
      }
      kept = planned.filter((b) => !old.includes(b));
    }
  }
  if (r.sizeBytes !== undefined) {
    // The oldest go first, as Prometheus deletes them, until the rest fits.
    const byAge = [...kept].sort((a, b) => a.minTime - b.minTime);
    let total = targetBytes + byAge.reduce((s, b) => s + (b.sizeBytes ?? 0), 0);
    const dropped = new Set<string>();
    for (const b of byAge) {
      if (total <= r.sizeBytes) break;
      dropped.add(b.ulid);
      total -= b.sizeBytes ?? 0;
      beyond.push({
        ulid: b.ulid,
        reason: `beyond the target's size retention (${r.from}) with its own blocks`,
      });
    }
    kept = kept.filter((b) => !dropped.has(b.ulid));
  }
  return { kept, beyond, timeNeededMs };
}

/** What the target can tell about its own data, for {@link planWithinRetention}. */
export interface TargetFacts {
  flags: Record<string, string>;
  /** The target's own blocks (imported ones excluded). */
  ownBlocks: BlockMeta[];
  /** Its head's newest sample (ms), if it has one. */
  headMaxMs: number | undefined;
}

/**
 * The plan with only the blocks the target keeps, or the refusal when some would be deleted
 * and `trim` (config trimToTargetRetention) is off. The refusal names the flag to raise.
 */
export function planWithinRetention(
  plan: Plan,
  target: TargetFacts,
  trim: boolean,
): { plan: Plan; refusal?: string } {
  const r = targetRetention(target.flags);
  const newestMs = Math.max(
    0,
    target.headMaxMs ?? 0,
    ...target.ownBlocks.map((b) => b.maxTime),
    ...plan.blocks.map((b) => b.maxTime),
  );
  const ownBytes = target.ownBlocks.reduce((s, b) => s + (b.sizeBytes ?? 0), 0);
  const cut = cutToRetention(plan.blocks, r, newestMs, ownBytes);
  if (cut.beyond.length === 0) return { plan };
  const lost = plan.blocks.filter((b) => cut.beyond.some((x) => x.ulid === b.ulid));
  const samples = lost.reduce((s, b) => s + (b.stats?.numSamples ?? 0), 0);
  if (!trim) {
    const days =
      cut.timeNeededMs === undefined ? undefined : Math.ceil(cut.timeNeededMs / 86_400_000);
    return {
      plan,
      refusal:
        `the target would delete ${lost.length} of the ${plan.blocks.length} planned blocks ` +
        `(${samples} samples, from ${iso(Math.min(...lost.map((b) => b.minTime)))}) at its next ` +
        `reload: they are beyond its retention (${r.from}). Raise it (` +
        (days !== undefined ? `--storage.tsdb.retention.time of at least ${days}d` : "") +
        (days !== undefined && r.sizeBytes !== undefined ? ", and " : "") +
        (r.sizeBytes !== undefined ? "a larger --storage.tsdb.retention.size" : "") +
        `; a Prometheus resource: spec.retention, spec.retentionSize) before migrating, or set ` +
        `trimToTargetRetention to true to copy only the blocks it keeps`,
    };
  }
  const kept = cut.kept;
  if (kept.length === 0) {
    return {
      plan,
      refusal:
        `the target would keep none of the ${plan.blocks.length} planned blocks: all are beyond ` +
        `its retention (${r.from}). Raise it before migrating (a Prometheus resource: ` +
        `spec.retention, spec.retentionSize)`,
    };
  }
  return {
    plan: {
      ...plan,
      blocks: kept,
      skipped: [...plan.skipped, ...cut.beyond],
      bytes: kept.reduce((s, b) => s + (b.sizeBytes ?? 0), 0),
      samples: kept.reduce((s, b) => s + (b.stats?.numSamples ?? 0), 0),
    },
  };
}
