// The migration plan: which source blocks go to the target, and what gap (a
// time range on neither the copied blocks nor the target's own data) is
// left. Pure functions of probe data, so every rule is table-tested.
// TSDB facts relied on (tsdb.ts): blocks span 2h; the head is compacted once it
// spans more than 3h; overlapping blocks are merged by the target from 2.39 on
// (or with --storage.tsdb.allow-overlapping-blocks) and make older versions fail
// to reload/compact (prometheus/prometheus CHANGELOG 2.39.0, tsdb/db.go).

import { BlockWriter, FormatCheck, checkBlockFormats } from "./blockFormat";
import type { BlockMeta } from "./sidecarOutput";
import { iso } from "./time";
import { BLOCK_MS, HEAD_COMPACT_SPAN_MS, isImported, lineageIds, sourcesOf } from "./tsdb";

export interface PlanInput {
  /** Blocks of the source snapshot (with the head block if includeHead). */
  sourceBlocks: BlockMeta[];
  /** Source head range from /api/v1/status/tsdb, undefined if empty/unknown. */
  sourceHead: { minTime: number; maxTime: number } | undefined;
  targetVersion: string;
  targetFlags: Record<string, string>;
  /**
   * The target's blocks. Blocks imported from this source (same ULID, or
   * compacted from one) are recognised and ignored, so passing all is fine.
   */
  targetBlocks: BlockMeta[];
  /** Earliest sample the target holds of its own (blocks and head); undefined if none. */
  targetEarliestMs: number | undefined;
  /** The snapshot was taken with skip_head=false (its head block is in sourceBlocks). */
  includeHead: boolean;
  nowMs: number;
  /**
   * The source's version and flags: what the blocks' meta.json doesn't say about their chunk
   * encodings (blockFormat.ts). Unknown: the version gate assumes the worst.
   */
  writer?: BlockWriter;
}

export interface Plan {
  /**
   * Blocks the target must end up with, oldest first. Blocks already on the
   * target stay in the list (copy/install skip them), so planning again after
   * a partial run yields the same plan.
   */
  blocks: BlockMeta[];
  skipped: { ulid: string; reason: string }[];
  overlapAllowed: boolean;
  /**
   * Newest copied maxTime: every source sample before it is copied. With
   * nothing to copy: the source's first sample (or now without any block).
   */
  cutoffMs: number;
  /** Length of the time range that is neither copied nor on the target. */
  gapMs: number;
  bytes: number;
  samples: number;
  /** When the source head is compacted next: head minTime + 3h. */
  nextCompactionMs: number | undefined;
  /** End of the block that compaction writes (the head's first aligned 2h range). */
  nextBlockEndMs?: number | undefined;
  /** The gap a skip_head migration would leave right after that compaction. */
  gapAfterNextCompactionMs: number | undefined;
  advice: string;
  /**
   * The version gate (blockFormat.ts): whether the target can read every block to copy.
   * Not ok: the copy must be refused (the caller raises it at preview).
   */
  formats: FormatCheck;
  /** The target's rules for blocks that overlap (overlapRules). */
  overlapRule: OverlapRule;
}

/** Strict "MAJOR.MINOR.PATCH[-pre][+build]" (also "v2.42.0", "2.42.0+ds"). */
export function parseVersion(version: string): { major: number; minor: number; patch: number } {
  const m =
    /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(
      version.trim(),
    );
  if (m === null) throw new Error(`not a Prometheus version: ${JSON.stringify(version)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/**
 * Whether a server of this version, with these flags, accepts blocks that
 * overlap each other or its own data. 2.39.0 made it the default (and
 * pre-releases of 2.39.0 count as 2.39.0: the change shipped in rc.0); from
 * 2.8 to 2.38 only with --storage.tsdb.allow-overlapping-blocks; 3.x always
 * (the flag was removed).
 */
export function overlapAllowed(version: string, flags: Record<string, string>): boolean {
  const v = parseVersion(version);
  if (v.major >= 3) return true;
  if (v.major < 2) return false;
  if (v.minor >= 39) return true;
  if (v.minor >= 8) return flags["storage.tsdb.allow-overlapping-blocks"] === "true";
  return false;
}

/** What a target does with blocks that overlap each other or its own data. */
export type OverlapRule =
  /** Loaded, and merged by vertical compaction (duplicate timestamps kept once). */
  | "merged-by-compaction"
  /** Loaded and merged at query time; left overlapping on disk. */
  | "merged-at-query-time"
  /** A reload with overlapping blocks fails (and so does the next head compaction). */
  | "rejected";

/**
 * The overlap rules per target version. What changed in 3.0 and what stayed:
 * - before 2.8: overlapping blocks are rejected.
 * - 2.8 to 2.38: rejected unless --storage.tsdb.allow-overlapping-blocks (off by default).
 * - 2.39.0 (#11331): allowed by default, merged by vertical compaction; the flag is a no-op.
 * - 2.50.0 (#13282): hidden --storage.tsdb.allow-overlapping-compaction (default true); false
 *   loads overlapping blocks and merges them at query time only, leaving them on disk.
 * - 3.0.0 (#14640): --storage.tsdb.allow-overlapping-blocks is removed (passing it stops the
 *   start); overlaps are always allowed. allow-overlapping-compaction stays as in 2.50, and
 *   so do the 2h blocks, head compaction at 1.5 block ranges, the one-minute reload loop
 *   that hot-loads new block dirs, and meta.json/index formats written (1 and 2).
 * - 3.0.0 (#13904) also made range selectors left-open: counts.sh asks each server for its
 *   version and sizes its window range so both count [E - w, E).
 */
export function overlapRules(version: string, flags: Record<string, string>): OverlapRule {
  if (!overlapAllowed(version, flags)) return "rejected";
  const v = parseVersion(version);
  const compactionOff = flags["storage.tsdb.allow-overlapping-compaction"] === "false";
  if (compactionOff && (v.major >= 3 || (v.major === 2 && v.minor >= 50))) {
    return "merged-at-query-time";
  }
  return "merged-by-compaction";
}

function isSubset(a: Set<string>, b: Set<string>): boolean {
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** Whether `m` holds all the data of `b` (and replaces it). */
function supersedes(m: BlockMeta, b: BlockMeta): boolean {
  if (m.ulid === b.ulid) return false;
  if ((m.compaction.parents ?? []).some((p) => p.ulid === b.ulid)) return true;
  const sb = sourcesOf(b);
  const sm = sourcesOf(m);
  if (!isSubset(sb, sm)) return false;
  // Same sources: a re-compaction. Keep one deterministic winner so two
  // blocks never supersede each other.
  if (sm.size !== sb.size) return true;
  if (m.compaction.level !== b.compaction.level) return m.compaction.level > b.compaction.level;
  return m.ulid > b.ulid;
}

/**
 * Drop blocks whose data is also in another listed block. A compaction
 * writes the merged block first and deletes its inputs a moment later, so a
 * listing (or snapshot) taken in between holds both; copying both would
 * duplicate every sample of that range. Rule: a block is dropped when another
 * listed block names it as a parent, or when its level-1 sources
 * (compaction.sources; a level-1 block is its own source) are a subset of
 * another block's sources (ties: higher level, then larger ULID wins).
 * Identical ULIDs listed twice are kept once.
 */
export function dedupeBlocks(blocks: BlockMeta[]): {
  blocks: BlockMeta[];
  superseded: { ulid: string; by: string }[];
} {
  const unique = new Map<string, BlockMeta>();
  for (const b of blocks) if (!unique.has(b.ulid)) unique.set(b.ulid, b);
  const all = [...unique.values()];
  const kept: BlockMeta[] = [];
  const superseded: { ulid: string; by: string }[] = [];
  for (const b of all) {
    const by = all.find((m) => supersedes(m, b));
    if (by === undefined) kept.push(b);
    else superseded.push({ ulid: b.ulid, by: by.ulid });
  }
  return { blocks: kept, superseded };
}

type Range = { minTime: number; maxTime: number };
function overlaps(a: Range, b: Range): boolean {
  return a.minTime < b.maxTime && b.minTime < a.maxTime;
}

function byTime(a: BlockMeta, b: BlockMeta): number {
  return (
    a.minTime - b.minTime ||
    a.maxTime - b.maxTime ||
    (a.ulid < b.ulid ? -1 : a.ulid > b.ulid ? 1 : 0)
  );
}

function checkInput(input: PlanInput): void {
  const nums: [string, number | undefined][] = [
    ["nowMs", input.nowMs],
    ["targetEarliestMs", input.targetEarliestMs],
    ["sourceHead.minTime", input.sourceHead?.minTime],
    ["sourceHead.maxTime", input.sourceHead?.maxTime],
  ];
  for (const [k, v] of nums) {
    if (v !== undefined && !Number.isFinite(v)) {
      throw new Error(`planMigration: ${k} must be finite, got ${v}`);
    }
  }
  for (const b of [...input.sourceBlocks, ...input.targetBlocks]) {
    if (!Number.isFinite(b.minTime) || !Number.isFinite(b.maxTime) || b.maxTime <= b.minTime) {
      throw new Error(
        `planMigration: block ${b.ulid} has a bad time range [${b.minTime}, ${b.maxTime})`,
      );
    }
  }
}

/** "2h 5m" style duration for advice texts. */
export function formatDuration(ms: number): string {
  if (!(ms > 0)) return "0s";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [h > 0 ? `${h}h` : "", m > 0 ? `${m}m` : "", sec > 0 && h === 0 ? `${sec}s` : ""];
  return parts.filter(Boolean).join(" ") || "0s";
}

/**
 * Decide which blocks to copy and what gap remains.
 *
 * - Target accepts overlaps (>= 2.39, or the flag): copy every deduped block;
 *   overlaps with the target's own data are merged by vertical compaction.
 * - Otherwise: copy only blocks ending at or before the target's first own
 *   sample that overlap neither the target's blocks nor each other (an
 *   overlapping block would fail the target's reload or next compaction).
 * - gap = targetEarliest - cutoff (never negative). With an empty target
 *   nothing after the cutoff is on the target yet, so the gap runs to now;
 *   it shrinks to snapshot-to-first-scrape once the target starts scraping.
 * - With includeHead the snapshot's head block ends at the snapshot time,
 *   after the target's first sample on any target that accepts overlaps, so
 *   the gap is 0.
 */
export function planMigration(input: PlanInput): Plan {
  checkInput(input);
  const allowed = overlapAllowed(input.targetVersion, input.targetFlags);
  const skipped: { ulid: string; reason: string }[] = [];

  const deduped = dedupeBlocks(input.sourceBlocks);
  for (const s of deduped.superseded) {
    skipped.push({
      ulid: s.ulid,
      reason: `superseded by ${s.by}, which holds the same data (listing taken during a compaction)`,
    });
  }
  const candidates = [...deduped.blocks].sort(byTime);

  // Blocks the target already got from this source (a previous partial run)
  // are neither "own data" to avoid nor a reason to skip.
  const sourceIds = lineageIds(input.sourceBlocks);
  const targetOwn = input.targetBlocks.filter((t) => !isImported(t, sourceIds));

  const selected: BlockMeta[] = [];
  const reject = `target ${input.targetVersion} rejects overlapping blocks`;
  for (const b of candidates) {
    if (!allowed) {
      const te = input.targetEarliestMs;
      if (te !== undefined && b.maxTime > te) {
        skipped.push({
          ulid: b.ulid,
          reason: `overlaps the target's own data from ${iso(te)}; ${reject}`,
        });
        continue;
      }
      const t = targetOwn.find((o) => overlaps(o, b));
      if (t !== undefined) {
        skipped.push({ ulid: b.ulid, reason: `overlaps target block ${t.ulid}; ${reject}` });
        continue;
      }
      const s = selected.find((o) => overlaps(o, b));
      if (s !== undefined) {
        skipped.push({ ulid: b.ulid, reason: `overlaps source block ${s.ulid}; ${reject}` });
        continue;
      }
    }
    selected.push(b);
  }

  // Nothing copied: nothing from the source's first sample on is covered. A source with no
  // persisted blocks has its first sample in its head.
  const cutoffMs =
    selected.length > 0
      ? Math.max(...selected.map((b) => b.maxTime))
      : candidates.length > 0
        ? Math.min(...candidates.map((b) => b.minTime))
        : (input.sourceHead?.minTime ?? input.nowMs);
  const gapTo = (cutoff: number, end: number): number =>
    Math.max(0, (input.targetEarliestMs ?? end) - cutoff);
  const gapMs = gapTo(cutoffMs, input.nowMs);

  let nextCompactionMs: number | undefined;
  let nextBlockEndMs: number | undefined;
  let gapAfterNextCompactionMs: number | undefined;
  if (input.sourceHead !== undefined) {
    nextCompactionMs = input.sourceHead.minTime + HEAD_COMPACT_SPAN_MS;
    // That compaction persists the oldest aligned 2h range of the head.
    nextBlockEndMs = Math.floor(input.sourceHead.minTime / BLOCK_MS) * BLOCK_MS + BLOCK_MS;
    const te = input.targetEarliestMs;
    const usable = allowed || te === undefined || nextBlockEndMs <= te;
    gapAfterNextCompactionMs = gapTo(
      usable ? Math.max(cutoffMs, nextBlockEndMs) : cutoffMs,
      nextCompactionMs,
    );
  }

  const bytes = selected.reduce((a, b) => a + (b.sizeBytes ?? 0), 0);
  const samples = selected.reduce((a, b) => a + (b.stats?.numSamples ?? 0), 0);

  let advice: string;
  if (candidates.length === 0 && gapMs === 0) {
    advice = "The source holds no samples: nothing to copy.";
  } else if (candidates.length === 0) {
    advice =
      `The source has no persisted blocks: its ${formatDuration(gapMs)} of samples from ` +
      `${iso(cutoffMs)} are only in its head. Set includeHead (needs the source admin API) to copy them.`;
  } else if (gapMs === 0) {
    const own = input.targetEarliestMs === undefined ? "(none yet)" : iso(input.targetEarliestMs);
    advice = `No gap: every source sample before ${iso(cutoffMs)} is copied and the target has its own data from ${own} on.`;
  } else {
    const parts = [`Gap of ${formatDuration(gapMs)} after ${iso(cutoffMs)}.`];
    if (input.targetEarliestMs === undefined) {
      parts.push(
        "The target has no data yet: start it (scraping the same targets) before the snapshot; the gap then ends at its first scrape.",
      );
    }
    if (!allowed) {
      const n = skipped.length - deduped.superseded.length;
      parts.push(
        `Target ${input.targetVersion} rejects overlapping blocks: ${n} block(s) skipped. Upgrade the target to >= 2.39.0 or set --storage.tsdb.allow-overlapping-blocks to copy them.`,
      );
    } else if (!input.includeHead) {
      parts.push(
        "Set includeHead (snapshot with skip_head=false, needs the source admin API) to close it.",
      );
    }
    if (
      nextCompactionMs !== undefined &&
      gapAfterNextCompactionMs !== undefined &&
      gapAfterNextCompactionMs < gapMs
    ) {
      parts.push(
        `Or migrate right after the next source compaction (~${iso(nextCompactionMs)}): gap ${formatDuration(gapAfterNextCompactionMs)}.`,
      );
    }
    advice = parts.join(" ");
  }

  return {
    blocks: selected,
    skipped,
    formats: checkBlockFormats(selected, input.targetVersion, input.writer ?? {}),
    overlapRule: overlapRules(input.targetVersion, input.targetFlags),
    overlapAllowed: allowed,
    cutoffMs,
    gapMs,
    bytes,
    samples,
    nextCompactionMs,
    nextBlockEndMs,
    gapAfterNextCompactionMs,
    advice,
  };
}
