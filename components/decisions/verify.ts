// Comparing sample counts of the source and the target (sidecar/counts.sh).
// Pure, so the rules are table-tested.

import {
  BlockMeta,
  failNaming,
  numberAtLeast0,
  parseBlockList,
  parseLastJsonLine,
} from "./sidecarOutput";
import type { Plan } from "./plan";
import { iso } from "./time";
import { sourcesOf } from "./tsdb";

/** Samples in [endMs - window, endMs) on one server. */
export interface WindowCount {
  endMs: number;
  /** Every sample: floats and native histograms. */
  count: number;
  /**
   * Of those, the native histogram samples (counts.sh: samples of the series that hold
   * histograms). Absent from an older counts.sh: then not compared.
   */
  histograms?: number;
}

/** The server's own TSDB health, from its /metrics. Every value is >= 0. */
export interface Health {
  blocksLoaded: number;
  reloadFailures: number;
  compactionsFailed: number;
  lowestTimestampMs: number;
}

/** What counts.sh prints. */
export interface CountsResult {
  windows: WindowCount[];
  health: Health;
  /**
   * With PTM_LIST_BLOCKS=true: the meta.json of every block dir in the server's data dir,
   * listed once their number equals prometheus_tsdb_blocks_loaded (so all are loaded).
   */
  blocks?: BlockMeta[];
}

export interface Comparison {
  ok: boolean;
  /** Windows with source samples whose counts hold: the evidence. */
  windowsCompared: number;
  /** Windows where both servers count 0: reported, but no evidence of anything. */
  windowsEmptyOnBoth: number;
  /** Source samples in the compared windows. */
  samplesCompared: number;
  /** Of those, native histogram samples (where both servers counted them). */
  histogramsCompared: number;
  /**
   * Of the compared windows, those before the target's first own sample: target == source,
   * so the target holds exactly the source's samples there. With their source samples.
   */
  equal: { windows: number; samples: number };
  /**
   * Of the compared windows, those after the target's first own sample: target >= source
   * only, because the target's own scrapes are counted there too. A lost copied sample can
   * hide behind one the target scraped itself: these windows show no loss larger than the
   * target's own samples, not that every copied sample is there.
   */
  atLeast: { windows: number; samples: number };
  /**
   * Windows left out of the comparison because the source's retention deleted their data
   * after the snapshot (issue 20 row 13); undefined when nothing tells (no retention context).
   */
  leftOut: {
    windows: number;
    /** Of those, proven instead against the snapshot's block stats (the plan's blocks). */
    provenByBlockStats: number;
    /** Samples of the planned blocks in those proven windows (= the target's count there). */
    samples: number;
    notComparable: number;
    /** The source's oldest sample when its counts were taken. */
    sourceLowestMs: number;
  };
  windows: {
    endMs: number;
    source: number;
    target: number;
    /**
     * equal / at-least: compared with the source. block-stats: left out (the source's
     * retention deleted its data after the snapshot), the target's count equals the planned
     * blocks wholly inside it. not comparable: left out, and the blocks prove nothing there.
     */
    rule: "equal" | "at-least" | "block-stats" | "not comparable";
    /** Both servers count 0 here: no evidence. */
    empty: boolean;
  }[];
  mismatches: { endMs: number; source: number; target: number; rule: string }[];
  summary: string;
}

/** Default comparison window: one default block range. */
export const WINDOW_MS = 2 * 3_600_000;

const count = (x: unknown, what: string): number => numberAtLeast0(x, what, failNaming("counts"));

/**
 * Parse and validate counts.sh output. A missing, negative or non-numeric value is an
 * error: counts.sh once printed -1 for a metric missing from /metrics, and a -1 failure
 * count offset a real failure.
 */
export function parseCounts(stdout: string): CountsResult {
  const x = parseLastJsonLine(stdout) as {
    windows?: unknown;
    health?: Record<string, unknown>;
    blocks?: unknown;
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
  const result: CountsResult = {
    windows: x.windows.map((raw: unknown, i) => {
      const o = raw as Record<string, unknown>;
      const w: WindowCount = {
        endMs: count(o?.["endMs"], `windows[${i}].endMs`),
        count: count(o?.["count"], `windows[${i}].count`),
      };
      if (o?.["histograms"] !== undefined) {
        w.histograms = count(o["histograms"], `windows[${i}].histograms`);
        if (w.histograms > w.count) {
          throw new Error(
            `counts: windows[${i}]: ${w.histograms} histogram samples > ${w.count} samples in all`,
          );
        }
      }
      return w;
    }),
    health: {
      blocksLoaded: count(h["blocksLoaded"], "health.blocksLoaded"),
      reloadFailures: count(h["reloadFailures"], "health.reloadFailures"),
      compactionsFailed: count(h["compactionsFailed"], "health.compactionsFailed"),
      lowestTimestampMs: count(h["lowestTimestampMs"], "health.lowestTimestampMs"),
    },
  };
  if (x.blocks !== undefined) result.blocks = parseBlockList(x.blocks, "counts: blocks");
  return result;
}

/**
 * Default of `verifyWindows`: at most this many windows are counted on each server. The four
 * that matter (first copied, last aligned before the cutoff, the cutoff tail, the target's
 * first own sample) plus evenly spaced spot checks. Chosen from BENCHMARKS.md: at 2,048 blocks
 * the counts stay a small share of the copy's time, and a migration of up to two days (24 2h
 * windows) is still counted window by window, as before.
 */
export const DEFAULT_VERIFY_WINDOWS = 24;

/**
 * Ends of the windows to compare, oldest first. The candidates are every aligned window end E
 * (a multiple of windowMs, as blocks are aligned) with firstCopied < E <= cutoff, plus two
 * unaligned ends that cover what aligned windows miss: the cutoff itself (the tail of the
 * newest copied block) and the target's first own sample when it falls inside the copied
 * range (with includeHead: the window just before it holds the copied head data only, so it
 * must match exactly).
 *
 * At most `maxWindows` of them (default DEFAULT_VERIFY_WINDOWS; 0 = every candidate): the
 * ones that matter always (the first aligned end, the last aligned end before the cutoff, the
 * cutoff, the target's first own sample), and the rest evenly spaced over the aligned ends in
 * between (deterministic: the same plan gives the same windows). The proof of completeness
 * does not rest on these windows: every planned block is checked on the target by ID and
 * meta.json stats (compareBlocks); the windows prove that the data reads back through the
 * query path, and their number bounds what the source has to answer.
 */
export function windowsToCompare(
  plan: Pick<Plan, "blocks" | "cutoffMs">,
  opts: { windowMs?: number; targetEarliestMs?: number; maxWindows?: number } = {},
): number[] {
  const w = opts.windowMs ?? WINDOW_MS;
  if (!(w > 0)) throw new Error(`windowsToCompare: windowMs must be > 0, got ${w}`);
  const max = opts.maxWindows ?? DEFAULT_VERIFY_WINDOWS;
  if (!Number.isInteger(max) || max < 0)
    throw new Error(`windowsToCompare: maxWindows must be a whole number >= 0, got ${max}`);
  if (plan.blocks.length === 0) return [];
  const from = Math.min(...plan.blocks.map((b) => b.minTime));
  const aligned: number[] = [];
  for (let end = Math.floor(from / w) * w + w; end <= plan.cutoffMs; end += w) aligned.push(end);
  const must = new Set<number>();
  if (aligned.length > 0) {
    must.add(aligned[0]!);
    must.add(aligned[aligned.length - 1]!);
  }
  if (plan.cutoffMs > from) must.add(plan.cutoffMs);
  const te = opts.targetEarliestMs;
  if (te !== undefined && te > from && te < plan.cutoffMs) must.add(te);
  const rest = aligned.filter((e) => !must.has(e));
  let spots = rest;
  if (max > 0 && must.size + rest.length > max) {
    const k = Math.max(0, max - must.size);
    // k evenly spaced picks: the middle of each of k equal slices of the candidates.
    spots = Array.from({ length: k }, (_, j) => rest[Math.floor(((j + 0.5) * rest.length) / k)]!);
  }
  return [...new Set([...must, ...spots])].sort((a, b) => a - b);
}

/** 1234567 -> "1,234,567". */
const fmt = (n: number): string => n.toLocaleString("en-US");
const plural = (n: number, one: string, many = `${one}s`): string =>
  `${fmt(n)} ${n === 1 ? one : many}`;

/**
 * Windows that end at or before the target's first own sample hold copied
 * data only: the counts must be equal (fewer = lost samples, more =
 * duplicated blocks). Later windows also hold what the target scraped
 * itself: it must have at least the source's count. A window missing on the
 * target is a mismatch. A window where both servers count 0 proves nothing:
 * it is reported as empty on both and is not evidence, and without a single
 * window that holds source samples the comparison is not ok.
 *
 * With `retention` (the source's oldest sample when it counted, and where the copied data
 * starts), a window whose copied data the source no longer held when it counted is left out
 * of the comparison (issue 20 row 13): its retention deleted the oldest blocks after the
 * snapshot, so its count there is short for reasons that are no fault of the copy, and
 * comparing it would fail the migration for good (the record keeps those counts). A window
 * [E - w, E) is left out when it overlaps what was deleted, [copiedFromMs, sourceLowestMs):
 * not merely because it starts before the source's oldest sample (the oldest block begins
 * at the first sample, inside its window). A left-out window is never counted as equal nor
 * as a mismatch. It is proven instead against the snapshot's block stats when that can be
 * exact: a window before the target's own first sample (so the target holds copied data
 * only), with at least one planned block wholly inside it and none reaching into it from
 * outside, and the target counting exactly their numSamples. Otherwise it is "not
 * comparable": e.g. staleness markers are samples in a block's stats that count_over_time
 * does not count, so a lower count can't be told from a loss here (the blocks' own IDs and
 * stats are checked by compareBlocks regardless). If every window is left out, nothing was
 * compared with the source: not ok. Without `retention`, or without copiedFromMs, no window
 * is left out (a window before the source's data may be a wiring error, not retention).
 */
export interface RetentionContext {
  /** The source's prometheus_tsdb_lowest_timestamp when it counted (health.lowestTimestampMs). */
  sourceLowestMs: number;
  /** Where the copied data starts: the oldest planned block's minTime. */
  copiedFromMs: number | undefined;
  /** The windows' length; default WINDOW_MS. */
  windowMs?: number | undefined;
  /** The plan's blocks, with their ranges: the proof of a left-out window. */
  blocks?: ExpectedBlock[] | undefined;
}

export function compareCounts(
  source: WindowCount[],
  target: WindowCount[],
  targetEarliestMs: number | undefined,
  retention?: RetentionContext,
): Comparison {
  const windowMs = retention?.windowMs ?? WINDOW_MS;
  const deletedFrom = retention?.copiedFromMs;
  const deletedTo = retention?.sourceLowestMs;
  /** Whether the source's retention deleted copied data in [end - windowMs, end). */
  const leftOut = (end: number): boolean =>
    deletedFrom !== undefined &&
    deletedTo !== undefined &&
    Math.max(end - windowMs, deletedFrom) < Math.min(end, deletedTo);
  /** The planned blocks' samples in the window, when they alone can be all of its samples. */
  const blockStats = (end: number): { samples: number; blocks: number } | undefined => {
    const blocks = retention?.blocks;
    if (blocks === undefined || blocks.length === 0) return undefined;
    const start = end - windowMs;
    let samples = 0;
    let inside = 0;
    for (const b of blocks) {
      if (b.minTime === undefined || b.maxTime === undefined) return undefined;
      if (b.maxTime <= start || b.minTime >= end) continue;
      if (b.minTime < start || b.maxTime > end) return undefined; // reaches in from outside
      inside++;
      samples += b.numSamples ?? 0;
    }
    return inside > 0 ? { samples, blocks: inside } : undefined;
  };
  const out = { windows: 0, provenByBlockStats: 0, samples: 0, blocks: 0, notComparable: 0 };
  const t = new Map(target.map((w) => [w.endMs, w.count]));
  const th = new Map(target.map((w) => [w.endMs, w.histograms]));
  const windows: Comparison["windows"] = [];
  const mismatches: Comparison["mismatches"] = [];
  let evidence = 0;
  let empty = 0;
  let targetOnly = 0;
  let samples = 0;
  let histograms = 0;
  const eq = { windows: 0, samples: 0, histograms: 0 };
  const al = { windows: 0, samples: 0, histograms: 0 };
  for (const s of source) {
    const tc = t.get(s.endMs);
    const rule =
      targetEarliestMs === undefined || s.endMs <= targetEarliestMs ? "equal" : "at-least";
    if (tc === undefined) {
      mismatches.push({ endMs: s.endMs, source: s.count, target: NaN, rule: "missing on target" });
      continue;
    }
    if (leftOut(s.endMs)) {
      out.windows++;
      const stats = rule === "equal" ? blockStats(s.endMs) : undefined;
      const proven = stats !== undefined && stats.samples === tc;
      if (proven) {
        out.provenByBlockStats++;
        out.samples += stats.samples;
        out.blocks += stats.blocks;
      } else out.notComparable++;
      windows.push({
        endMs: s.endMs,
        source: s.count,
        target: tc,
        rule: proven ? "block-stats" : "not comparable",
        empty: false,
      });
      continue;
    }
    const both0 = s.count === 0 && tc === 0;
    windows.push({ endMs: s.endMs, source: s.count, target: tc, rule, empty: both0 });
    // Native histogram samples: the same rule, where the source counted them.
    const sh = s.histograms;
    const thc = th.get(s.endMs);
    const histBad =
      sh !== undefined && (thc === undefined || (rule === "equal" ? thc !== sh : thc < sh));
    if (rule === "equal" ? tc !== s.count : tc < s.count) {
      mismatches.push({ endMs: s.endMs, source: s.count, target: tc, rule });
    } else if (histBad) {
      mismatches.push({
        endMs: s.endMs,
        source: sh,
        target: thc ?? NaN,
        rule: `${rule}, native histogram samples`,
      });
    } else if (both0) {
      empty++;
    } else if (s.count === 0) {
      targetOnly++; // at-least: the target's own samples, nothing copied to compare
    } else {
      evidence++;
      samples += s.count;
      histograms += sh ?? 0;
      const k = rule === "equal" ? eq : al;
      k.windows++;
      k.samples += s.count;
      k.histograms += sh ?? 0;
    }
  }
  const notes = [
    ...(empty > 0 ? [`${fmt(empty)} empty on both (not counted)`] : []),
    ...(targetOnly > 0 ? [`${plural(targetOnly, "window")} with target samples only`] : []),
  ].join(", ");
  const lowest = iso(deletedTo ?? 0);
  const leftOutNote =
    out.windows === 0
      ? ""
      : `${plural(out.windows, "window")} not compared with the source: its retention deleted ` +
        `the data after the snapshot (its oldest sample at the install: ${lowest}): ` +
        [
          ...(out.provenByBlockStats > 0
            ? [
                `${fmt(out.provenByBlockStats)} proven against the snapshot's block stats ` +
                  `instead (${fmt(out.samples)} samples in ${plural(out.blocks, "block")})`,
              ]
            : []),
          ...(out.notComparable > 0 ? [`${fmt(out.notComparable)} not comparable`] : []),
        ].join(", ");
  let summary: string;
  if (mismatches.length > 0) {
    summary =
      `${mismatches.length} of ${source.length} windows differ: ` +
      mismatches
        .slice(0, 5)
        .map(
          (m) =>
            `${new Date(m.endMs).toISOString()} source ${m.source} target ${m.target} (${m.rule})`,
        )
        .join("; ");
  } else if (evidence === 0 && out.windows > 0 && out.windows === source.length) {
    summary =
      `nothing was compared with the source: its retention deleted the data of ` +
      `${out.windows === 1 ? "the only window" : `all ${fmt(out.windows)} windows`} after the ` +
      `snapshot (its oldest sample at the install: ${lowest})` +
      (out.provenByBlockStats > 0
        ? `; ${fmt(out.provenByBlockStats)} proven against the snapshot's block stats ` +
          `(${fmt(out.samples)} samples in ${plural(out.blocks, "block")}), which is not a ` +
          `comparison with the source`
        : "") +
      `. The copy's samples can't be proven by counts: migrate again from a fresh snapshot ` +
      `while the source still holds the data (its retention must outlast the copy and the ` +
      `install), or compare the target with the snapshot's blocks by hand`;
  } else if (evidence === 0) {
    summary =
      source.length === 0
        ? "no window was compared: no window holds source samples, so nothing is proven"
        : `no window holds source samples: ${empty} of ${source.length} windows are empty on both` +
          `${targetOnly > 0 ? `, ${targetOnly} hold target samples only` : ""}, so nothing is proven` +
          (leftOutNote ? `; ${leftOutNote}` : "");
  } else {
    // Exactly what each kind of window proves: "equal" windows hold the source's samples and
    // nothing else; "at least" windows hold at least as many, some of them the target's own.
    const hist = (n: number) => (n > 0 ? `, ${fmt(n)} of them native histogram samples` : "");
    const parts = [
      eq.windows > 0
        ? `${plural(eq.windows, "window")} equal (${fmt(eq.samples)} samples${hist(eq.histograms)})`
        : "no window equal",
      ...(al.windows > 0
        ? [
            `${plural(al.windows, "window")} at least the source's (${fmt(al.samples)} source ` +
              `samples${hist(al.histograms)}; the target also scraped them itself)`,
          ]
        : []),
    ];
    summary =
      parts.join(", ") + (notes ? `; ${notes}` : "") + (leftOutNote ? `; ${leftOutNote}` : "");
  }
  return {
    ok: mismatches.length === 0 && evidence > 0,
    windowsCompared: evidence,
    windowsEmptyOnBoth: empty,
    samplesCompared: samples,
    histogramsCompared: histograms,
    equal: { windows: eq.windows, samples: eq.samples },
    atLeast: { windows: al.windows, samples: al.samples },
    leftOut: {
      windows: out.windows,
      provenByBlockStats: out.provenByBlockStats,
      samples: out.samples,
      notComparable: out.notComparable,
      sourceLowestMs: deletedTo ?? 0,
    },
    windows,
    mismatches,
    summary,
  };
}

/** A block the target must have loaded: the plan's meta.json values. */
export interface ExpectedBlock {
  ulid: string;
  /** meta.json stats.numSamples; omitted (Go omitempty) means 0. */
  numSamples?: number | undefined;
  numSeries?: number | undefined;
  /** meta.json compaction.sources: finds the block after the target compacted it further. */
  sources?: string[] | undefined;
  /**
   * The block's [minTime, maxTime) (ms): which compared windows cover it, once the target has
   * compacted it with its own data. Absent from records taken by earlier versions.
   */
  minTime?: number | undefined;
  maxTime?: number | undefined;
}

/** A time range [startMs, endMs): a window whose counts proved the target's samples. */
export interface Span {
  startMs: number;
  endMs: number;
}

/** The plan's blocks as verification expects them on the target. */
export function expectedBlocks(blocks: BlockMeta[]): ExpectedBlock[] {
  return blocks.map((b) => {
    const e: ExpectedBlock = {
      ulid: b.ulid,
      numSamples: b.stats?.numSamples,
      numSeries: b.stats?.numSeries,
      minTime: b.minTime,
      maxTime: b.maxTime,
    };
    // A level-1 block is its own only source, which is what no sources means: leave it out
    // (the record is kept in the state, per block).
    const s = b.compaction.sources;
    if (s !== undefined && !(s.length === 1 && s[0] === b.ulid)) e.sources = s;
    return e;
  });
}

export interface BlockCheck {
  ok: boolean;
  /** Blocks expected (the plan's). */
  expected: number;
  /** Loaded under their own ID with equal numSamples and numSeries. */
  equal: number;
  /**
   * Merged by the target's own compaction into blocks that list them as sources: how many,
   * into how many blocks, and the first few of those (a result is kept in the state twice, so
   * it does not list per block; issue 14).
   */
  compacted: { blocks: number; into: number; intoFirst: string[] };
  /**
   * Merged by the target's compaction with its own data: found by lineage only (their sample
   * counts can't be attributed), each covered by at least one window compared equal.
   */
  lineage: { blocks: number; into: number; intoFirst: string[] };
  /** Merged with the target's own data and covered by no window compared equal: unproven. */
  unproven: string[];
  missing: string[];
  differ: string[];
  summary: string;
}

/**
 * The plan's blocks against the target's listing (counts.sh PTM_LIST_BLOCKS: the meta.json
 * of every block dir in its data dir, taken when their number equals
 * prometheus_tsdb_blocks_loaded). Each expected block must be there under its ID with the
 * same numSamples and numSeries (an omitted count is 0, as Prometheus omits zero values), or,
 * when the target has compacted it further (it merges overlapping blocks on 2.39+), inside a
 * block whose compaction.sources include all of its sources (its lineage). And the listing
 * must hold exactly as many blocks as the server has loaded: a block on disk that failed to
 * load fails the check.
 *
 * What a merged block can prove depends on what else went into it (issue 20 row 12):
 * - Only imported blocks (every source of the merged block is a source of a planned block):
 *   its numSamples is theirs alone, so it must equal their sum (fewer: lost; more: from
 *   nowhere). This assumes the imported blocks do not share samples, as one source's blocks
 *   do not; if they did, the merge would hold fewer and the check fails closed.
 * - The target's own data too (a source that no planned block has): its numSamples mixes
 *   the import with the target's scrapes and can't be attributed. What is claimed is only
 *   (1) lineage: Prometheus lists a block in compaction.sources only when it read it as an
 *   input of that compaction, so the target loaded and merged it; (2) the merged block holds
 *   at least the planned block's samples (fewer is a loss whatever else is in it; more
 *   proves nothing); and (3) the planned block's range overlaps at least one window in
 *   `proven`, where the target's count equalled the source's before its own first sample.
 *   Samples of its range outside those windows are not proven by any count. A block with no
 *   such window, or whose range is unknown (a record taken by an earlier version), is
 *   reported unproven and fails the check: lineage alone does not show that its samples
 *   survived.
 */
export function compareBlocks(
  expected: ExpectedBlock[],
  target: BlockMeta[],
  blocksLoaded: number,
  proven: Span[] = [],
): BlockCheck {
  const byId = new Map(target.map((b) => [b.ulid, b]));
  const missing: string[] = [];
  const differ: string[] = [];
  const compacted = new Map<string, ExpectedBlock[]>();
  const ownSources = (e: ExpectedBlock) =>
    e.sources !== undefined && e.sources.length > 0 ? e.sources : [e.ulid];
  const imported = new Set(expected.flatMap(ownSources));
  let equal = 0;
  for (const e of expected) {
    const b = byId.get(e.ulid);
    if (b !== undefined) {
      let same = true;
      for (const k of ["numSamples", "numSeries"] as const) {
        const want = e[k] ?? 0;
        const got = b.stats?.[k] ?? 0;
        if (want !== got) {
          differ.push(`${e.ulid} ${k}: plan ${fmt(want)}, target ${fmt(got)}`);
          same = false;
        }
      }
      if (same) equal++;
      continue;
    }
    const own = ownSources(e);
    const into = target.find((t) => {
      if ((t.compaction.parents ?? []).some((p) => p.ulid === e.ulid)) return true;
      const ts = sourcesOf(t);
      return own.every((s) => ts.has(s));
    });
    if (into === undefined) missing.push(e.ulid);
    else compacted.set(into.ulid, [...(compacted.get(into.ulid) ?? []), e]);
  }
  const attributed = new Map<string, number>();
  const lineage = new Map<string, number>();
  const unproven: string[] = [];
  const noRange: string[] = [];
  let fullyCovered = 0;
  for (const [into, parts] of compacted) {
    const m = byId.get(into)!;
    const have = m.stats?.numSamples ?? 0;
    const want = parts.reduce((n, p) => n + (p.numSamples ?? 0), 0);
    const withOwnData = [...sourcesOf(m)].some((s) => !imported.has(s));
    if (have < want)
      differ.push(
        `${into} (compacted on the target from ${parts.length} imported) holds ${fmt(have)} ` +
          `samples, fewer than the ${fmt(want)} of the imported blocks in it`,
      );
    else if (!withOwnData && have > want)
      differ.push(
        `${into} (compacted on the target from ${parts.length} imported blocks only) holds ` +
          `${fmt(have)} samples, more than the ${fmt(want)} of the imported blocks in it`,
      );
    if (!withOwnData) {
      attributed.set(into, parts.length);
      continue;
    }
    for (const p of parts) {
      const parent = (m.compaction.parents ?? []).find((x) => x.ulid === p.ulid);
      const min = p.minTime ?? parent?.minTime;
      const max = p.maxTime ?? parent?.maxTime;
      if (min === undefined || max === undefined) {
        noRange.push(p.ulid);
        continue;
      }
      const over = proven.filter((w) => w.startMs < max && w.endMs > min);
      if (over.length === 0) {
        unproven.push(p.ulid);
        continue;
      }
      lineage.set(into, (lineage.get(into) ?? 0) + 1);
      if (covers(over, min, max)) fullyCovered++;
    }
  }
  const first = (ids: string[]) => ids.slice(0, 5).join(", ") + (ids.length > 5 ? ", ..." : "");
  const problems: string[] = [];
  if (missing.length > 0)
    problems.push(
      `${missing.length} of ${plural(expected.length, "block")} not on the target: ` +
        first(missing),
    );
  if (differ.length > 0) problems.push(`stats differ: ${differ.slice(0, 5).join("; ")}`);
  if (unproven.length > 0) {
    const one = unproven.length === 1;
    problems.push(
      `${plural(unproven.length, "block")} compacted with the target's own data not proven: ` +
        `no window compared equal covers ${one ? "its range" : "their ranges"} ` +
        `(${first(unproven)}): lineage shows the target read ${one ? "it" : "them"}, not that ` +
        `it kept ${one ? "its" : "their"} samples; compare the target's counts over ` +
        `${one ? "that range" : "those ranges"} with the source's`,
    );
  }
  if (noRange.length > 0)
    problems.push(
      `${plural(noRange.length, "block")} compacted with the target's own data not proven: ` +
        `the record (taken by an earlier version) has no time range for ` +
        `${noRange.length === 1 ? "it" : "them"} (${first(noRange)}); take the record again ` +
        `(delete the verification ConfigMap from the state, then \`pulumi up\`)`,
    );
  if (target.length !== blocksLoaded)
    problems.push(
      `${target.length} block dirs on the target's disk but prometheus_tsdb_blocks_loaded is ` +
        `${blocksLoaded}: a block is not loaded`,
    );
  const SHOWN = 3;
  const listOf = (into: string[]) =>
    into.length <= SHOWN
      ? into.join(", ")
      : `${fmt(into.length)} blocks (${into.slice(0, SHOWN).join(", ")}, …)`;
  const sum = (m: Map<string, number>) => [...m.values()].reduce((n, k) => n + k, 0);
  const merged = sum(attributed);
  const held = sum(lineage);
  const heldText = (): string => {
    const one = held === 1;
    const cover =
      fullyCovered === held
        ? one
          ? "its range"
          : "their ranges"
        : fullyCovered === 0
          ? one
            ? "part of its range"
            : "part of each one's range"
          : `${fmt(fullyCovered)} of their ranges fully, the others in part`;
    return (
      `${fmt(held)} held by lineage in ${listOf([...lineage.keys()])} (compacted with the ` +
      `target's own data: ${one ? "its sample count" : "their sample counts"} can't be ` +
      `attributed; windows compared equal cover ${cover})`
    );
  };
  const summary =
    problems.length > 0
      ? problems.join("; ")
      : merged === 0 && held === 0
        ? `${plural(expected.length, "block")}: IDs and sample/series counts equal, all loaded`
        : `${plural(expected.length, "block")}: ${fmt(equal)} with IDs and sample/series counts ` +
          `equal, ` +
          [
            ...(merged > 0
              ? [
                  `${fmt(merged)} compacted on the target with other imported blocks only into ` +
                    `${listOf([...attributed.keys()])} (exactly their samples)`,
                ]
              : []),
            ...(held > 0 ? [heldText()] : []),
          ].join(", ") +
          "; all loaded";
  const intoIds = [...attributed.keys()];
  const heldIds = [...lineage.keys()];
  return {
    ok: problems.length === 0,
    expected: expected.length,
    equal,
    compacted: { blocks: merged, into: intoIds.length, intoFirst: intoIds.slice(0, SHOWN) },
    lineage: { blocks: held, into: heldIds.length, intoFirst: heldIds.slice(0, SHOWN) },
    unproven: [...unproven, ...noRange].slice(0, 5),
    missing,
    differ,
    summary,
  };
}

/** Whether the spans together cover all of [min, max). */
function covers(spans: Span[], min: number, max: number): boolean {
  let at = min;
  const sorted = [...spans].sort((a, b) => a.startMs - b.startMs);
  for (const w of sorted) {
    if (w.startMs > at) return false;
    at = Math.max(at, w.endMs);
    if (at >= max) return true;
  }
  return at >= max;
}

/**
 * The target's counts.sh environment: wait until it has hot-loaded down to the oldest
 * imported block, and list its blocks when the plan's are known. A non-finite time (what
 * Math.min() of no blocks gives) would make the wait pass at once, so it is refused unless
 * the plan has no blocks (nothing to wait for).
 */
export function loadWaitEnv(
  loadedDownToMs: number,
  blocks: ExpectedBlock[] | undefined,
): Record<string, string> {
  if (blocks !== undefined && blocks.length === 0) return {};
  if (!Number.isSafeInteger(loadedDownToMs) || loadedDownToMs < 0)
    throw new Error(
      `verification: loadedDownToMs must be a ms timestamp (an integer >= 0), got ` +
        `${String(loadedDownToMs)}: the wait for the target to load the installed blocks would ` +
        `pass at once. It is the oldest planned block's minTime; this is a bug in the program`,
    );
  return {
    PTM_WAIT_LOADED_MS: String(loadedDownToMs),
    ...(blocks !== undefined ? { PTM_LIST_BLOCKS: "true" } : {}),
  };
}

export interface VerifyInput {
  /** The window ends both servers were asked to count. */
  windowEnds: number[];
  source: CountsResult;
  target: CountsResult;
  targetEarliestMs: number | undefined;
  /** The plan's blocks; undefined when not given (then the blocks are not checked). */
  blocks?: ExpectedBlock[] | undefined;
  /** The plan's gap; undefined when not given. */
  gapMs?: number | undefined;
  /** The windows' length (counts.sh PTM_WINDOW); default WINDOW_MS. */
  windowMs?: number | undefined;
  /**
   * The oldest planned block's minTime (the record's): where the copied data starts. With it
   * (or the plan's block ranges), windows whose data the source's retention deleted after the
   * snapshot are left out of the comparison (compareCounts).
   */
  loadedDownToMs?: number | undefined;
}

export interface Verification extends Comparison {
  /** The plan copies nothing and leaves no gap: nothing to compare, and that is all right. */
  nothingToVerify: boolean;
  /** The plan's blocks against the target's; undefined when the plan's were not given. */
  blockCheck: BlockCheck | undefined;
  targetHealth: Health;
  sourceHealth: Health;
  /** Why it is not ok, each with what to do; empty when ok. */
  problems: string[];
}

function healthProblems(side: string, h: Health): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(h)) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      out.push(
        `${side} health: ${k} is ${String(v)} (missing from its /metrics?); ` +
          `check that the server is a Prometheus 2.x/3.x and its /metrics is reachable`,
      );
  }
  return out;
}

/**
 * The verdict of seed step 5. Ok only when something was proven: at least one window with
 * source samples counted equal (or at least equal after the target's own start), every
 * requested window counted on both servers, the plan's blocks loaded on the target with their
 * stats, and no reload or compaction failure on the target. The one exception is a plan that
 * copies nothing and leaves no gap: "nothing to verify", said explicitly.
 */
export function verifyMigration(v: VerifyInput): Verification {
  const { source, target, windowEnds } = v;
  const problems: string[] = [];
  const nothing =
    windowEnds.length === 0 && v.blocks !== undefined && v.blocks.length === 0 && v.gapMs === 0;

  // Every requested window counted by the source (the target is checked by compareCounts).
  const counted = new Set(source.windows.map((w) => w.endMs));
  const lacking = windowEnds.filter((e) => !counted.has(e));
  if (lacking.length > 0)
    problems.push(
      `the source's counts lack ${lacking.length} of ${windowEnds.length} requested windows ` +
        `(first ${new Date(lacking[0]!).toISOString()}): counts.sh output is incomplete; run again`,
    );

  const windowMs = v.windowMs ?? WINDOW_MS;
  const starts = (v.blocks ?? []).map((b) => b.minTime);
  const copiedFromMs =
    v.loadedDownToMs ??
    (starts.length > 0 && starts.every((t) => t !== undefined)
      ? Math.min(...(starts as number[]))
      : undefined);
  const cmp = compareCounts(source.windows, target.windows, v.targetEarliestMs, {
    sourceLowestMs: source.health.lowestTimestampMs,
    copiedFromMs,
    windowMs,
    blocks: v.blocks,
  });
  if (nothing) {
    // No window, no block, no gap: compareCounts' "nothing proven" is expected here.
  } else if (windowEnds.length === 0) {
    const what =
      v.blocks === undefined
        ? "no window was compared"
        : v.blocks.length > 0
          ? `the plan copies ${plural(v.blocks.length, "block")} but no window was compared`
          : v.gapMs === undefined
            ? "the plan copies no blocks, its gap is unknown, and no window was compared"
            : `the plan copies no blocks but leaves a gap of ${fmt(Math.round(v.gapMs / 60_000))} min`;
    problems.push(`${what}: nothing is proven (a bug in the program, or nothing to migrate)`);
  } else if (!cmp.ok) {
    problems.push(
      cmp.mismatches.length > 0
        ? `${cmp.summary} (see the target's log for reload errors; compare the install step's ` +
            `output with the plan)`
        : cmp.leftOut.windows > 0 && cmp.leftOut.windows === source.windows.length
          ? cmp.summary // says why and what to do
          : `${cmp.summary} (the window ends or PTM_SELECTOR select no data)`,
    );
  }

  problems.push(
    ...healthProblems("source", source.health),
    ...healthProblems("target", target.health),
  );
  const th = target.health;
  if (th.reloadFailures > 0 || th.compactionsFailed > 0)
    problems.push(
      `the target reports ${th.reloadFailures} reload and ${th.compactionsFailed} compaction ` +
        `${th.reloadFailures + th.compactionsFailed === 1 ? "failure" : "failures"}; see its log`,
    );

  let blockCheck: BlockCheck | undefined;
  if (v.blocks !== undefined && v.blocks.length > 0) {
    if (target.blocks === undefined) {
      problems.push(
        "the target did not list its blocks (counts.sh without PTM_LIST_BLOCKS, or an older " +
          "script): the plan's blocks were not checked",
      );
    } else {
      // The windows that proved the target's samples: equal before its own first sample.
      // And those left out but proven against the snapshot's block stats.
      const proven = cmp.windows
        .filter(
          (x) =>
            (x.rule === "equal" && x.source > 0 && x.target === x.source) ||
            x.rule === "block-stats",
        )
        .map((x) => ({ startMs: x.endMs - windowMs, endMs: x.endMs }));
      blockCheck = compareBlocks(v.blocks, target.blocks, th.blocksLoaded, proven);
      if (!blockCheck.ok) problems.push(`blocks: ${blockCheck.summary}`);
    }
  }

  const ok = problems.length === 0;
  let summary: string;
  if (!ok) summary = problems.join("; ");
  else if (nothing)
    summary =
      "nothing to verify: the plan copies no blocks and leaves no gap " +
      "(no window compared, no block checked)";
  else
    summary =
      `${cmp.summary}; ` +
      (blockCheck !== undefined
        ? blockCheck.summary
        : "block IDs and stats not checked (the plan's blocks were not given)");
  return {
    ...cmp,
    ok,
    summary,
    nothingToVerify: ok && nothing,
    blockCheck,
    targetHealth: target.health,
    sourceHealth: source.health,
    problems,
  };
}
