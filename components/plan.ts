// Which source blocks to copy and what gap that leaves. Pure, so every rule has a table test.
// Facts it relies on (see ../shared/reference/facts.md): blocks span 2h; the head is compacted
// once it spans more than 3h; overlapping blocks are merged by the target from 2.39 on (or
// with --storage.tsdb.allow-overlapping-blocks) and make older versions fail to compact.

export interface BlockMeta {
  ulid: string;
  minTime: number;
  maxTime: number;
  stats?: { numSamples?: number; numSeries?: number; numChunks?: number };
  compaction: {
    level: number;
    sources?: string[];
    parents?: { ulid: string; minTime: number; maxTime: number }[];
  };
  sizeBytes?: number;
}

export interface PlanInput {
  sourceBlocks: BlockMeta[];
  sourceHead: { minTime: number; maxTime: number } | undefined;
  targetVersion: string;
  targetFlags: Record<string, string>;
  /** The target's own blocks (not imported ones). */
  targetBlocks: BlockMeta[];
  /** Earliest sample the target holds of its own; undefined when it holds none. */
  targetEarliestMs: number | undefined;
  includeHead: boolean;
  nowMs: number;
}

export interface Plan {
  /** Blocks to copy, oldest first. */
  blocks: BlockMeta[];
  skipped: { ulid: string; reason: string }[];
  overlapAllowed: boolean;
  /** The newest copied maxTime: everything before it is on the target afterwards. */
  cutoffMs: number;
  /** Time between the cutoff and the target's own earliest sample that neither covers. */
  gapMs: number;
  bytes: number;
  samples: number;
  /** When the source's head is compacted next, if known. */
  nextCompactionMs: number | undefined;
  /** The gap a snapshot taken right after that compaction would leave. */
  gapAfterNextCompactionMs: number | undefined;
  advice: string;
}

const HOUR = 3_600_000;
const BLOCK_MS = 2 * HOUR;

/** Major, minor, patch of a Prometheus version such as "2.42.0+ds" or "v3.5.0-rc.1". */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Whether the server accepts blocks that overlap its own and merges them. */
export function overlapAllowed(version: string, flags: Record<string, string>): boolean {
  const v = parseVersion(version);
  if (!v) throw new Error(`can't read the target's Prometheus version "${version}"`);
  const [major, minor] = v;
  if (major >= 3 || (major === 2 && minor >= 39)) return true;
  // The flag exists from 2.8 to 2.x.
  return flags["storage.tsdb.allow-overlapping-blocks"] === "true";
}

/**
 * Drops blocks that a merged block in the same listing replaces. A compaction writes the
 * merged block before it deletes its parents, so a listing can hold both; the merged one
 * holds the same data, so it is kept and its parents and sources are dropped.
 */
export function dedupeBlocks(blocks: BlockMeta[]): {
  kept: BlockMeta[];
  dropped: { ulid: string; reason: string }[];
} {
  const replacedBy = new Map<string, string>();
  for (const b of blocks) {
    const covers = new Set([
      ...(b.compaction.sources ?? []),
      ...(b.compaction.parents ?? []).map((p) => p.ulid),
    ]);
    for (const other of blocks) {
      if (other.ulid === b.ulid || !covers.size) continue;
      const otherSources = other.compaction.sources?.length
        ? other.compaction.sources
        : [other.ulid];
      const inside = covers.has(other.ulid) || otherSources.every((s) => covers.has(s));
      if (inside && b.compaction.level > other.compaction.level) replacedBy.set(other.ulid, b.ulid);
    }
  }
  return {
    kept: blocks.filter((b) => !replacedBy.has(b.ulid)),
    dropped: [...replacedBy].map(([ulid, by]) => ({
      ulid,
      reason: `replaced by merged block ${by}`,
    })),
  };
}

export function planMigration(input: PlanInput): Plan {
  const overlap = overlapAllowed(input.targetVersion, input.targetFlags);
  const { kept, dropped } = dedupeBlocks(input.sourceBlocks);
  const skipped = [...dropped];
  const sorted = [...kept].sort((a, b) => a.minTime - b.minTime || a.maxTime - b.maxTime);
  const earliest = input.targetEarliestMs;

  let blocks: BlockMeta[];
  if (overlap) {
    blocks = sorted;
  } else {
    // Before 2.39 an overlap makes the target's compactions fail: copy only what ends
    // before the target's own data starts and touches none of its own blocks.
    blocks = [];
    for (const b of sorted) {
      const endsInTime = earliest === undefined || b.maxTime <= earliest;
      const clash = input.targetBlocks.find((t) => b.minTime < t.maxTime && t.minTime < b.maxTime);
      if (!endsInTime)
        skipped.push({
          ulid: b.ulid,
          reason: `ends after the target's first own sample (no overlap before 2.39)`,
        });
      else if (clash)
        skipped.push({ ulid: b.ulid, reason: `overlaps the target's block ${clash.ulid}` });
      else blocks.push(b);
    }
  }

  const cutoffMs = blocks.length ? Math.max(...blocks.map((b) => b.maxTime)) : 0;
  // With no own data the target holds nothing after the cutoff yet: the gap runs until now.
  const end = earliest ?? input.nowMs;
  const gapMs = blocks.length ? Math.max(0, end - cutoffMs) : 0;

  let nextCompactionMs: number | undefined;
  let gapAfterNextCompactionMs: number | undefined;
  const head = input.sourceHead;
  if (head && !input.includeHead) {
    // The head is compacted once it spans more than 1.5 block ranges; the block written
    // then covers the head's first 2h range.
    const headStart = Math.floor(head.minTime / BLOCK_MS) * BLOCK_MS;
    nextCompactionMs = headStart + 3 * HOUR;
    const newCutoff = Math.max(cutoffMs, headStart + BLOCK_MS);
    const usable = overlap || earliest === undefined || newCutoff <= earliest;
    gapAfterNextCompactionMs = usable ? Math.max(0, end - newCutoff) : gapMs;
  }

  const advice =
    gapMs === 0
      ? "no gap: the target holds every sample from the oldest copied block on"
      : overlap
        ? input.includeHead
          ? "the head snapshot did not reach the target's first sample"
          : "set includeHead (admin API) to close the gap now, or wait for the next source compaction"
        : "Prometheus before 2.39 rejects overlapping blocks: the gap can only shrink when the source compacts before the target's first sample";

  return {
    blocks,
    skipped,
    overlapAllowed: overlap,
    cutoffMs,
    gapMs,
    bytes: blocks.reduce((n, b) => n + (b.sizeBytes ?? 0), 0),
    samples: blocks.reduce((n, b) => n + (b.stats?.numSamples ?? 0), 0),
    nextCompactionMs,
    gapAfterNextCompactionMs,
    advice,
  };
}
