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
  windows: {
    endMs: number;
    source: number;
    target: number;
    rule: "equal" | "at-least";
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
 */
export function compareCounts(
  source: WindowCount[],
  target: WindowCount[],
  targetEarliestMs: number | undefined,
): Comparison {
  const t = new Map(target.map((w) => [w.endMs, w.count]));
  const th = new Map(target.map((w) => [w.endMs, w.histograms]));
  const windows: Comparison["windows"] = [];
  const mismatches: Comparison["mismatches"] = [];
  let evidence = 0;
  let empty = 0;
  let targetOnly = 0;
  let samples = 0;
  let histograms = 0;
  for (const s of source) {
    const tc = t.get(s.endMs);
    const rule =
      targetEarliestMs === undefined || s.endMs <= targetEarliestMs ? "equal" : "at-least";
    if (tc === undefined) {
      mismatches.push({ endMs: s.endMs, source: s.count, target: NaN, rule: "missing on target" });
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
    }
  }
  const notes = [
    ...(empty > 0 ? [`${fmt(empty)} empty on both (not counted)`] : []),
    ...(targetOnly > 0 ? [`${plural(targetOnly, "window")} with target samples only`] : []),
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
  } else if (evidence === 0) {
    summary =
      source.length === 0
        ? "no window was compared: no window holds source samples, so nothing is proven"
        : `no window holds source samples: ${empty} of ${source.length} windows are empty on both` +
          `${targetOnly > 0 ? `, ${targetOnly} hold target samples only` : ""}, so nothing is proven`;
  } else {
    summary =
      `${plural(evidence, "window")}, ${fmt(samples)} source samples` +
      (histograms > 0 ? ` (${fmt(histograms)} of them native histogram samples)` : "") +
      ", all on the target" +
      (notes ? `; ${notes}` : "");
  }
  return {
    ok: mismatches.length === 0 && evidence > 0,
    windowsCompared: evidence,
    windowsEmptyOnBoth: empty,
    samplesCompared: samples,
    histogramsCompared: histograms,
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
}

/** The plan's blocks as verification expects them on the target. */
export function expectedBlocks(blocks: BlockMeta[]): ExpectedBlock[] {
  return blocks.map((b) => {
    const e: ExpectedBlock = {
      ulid: b.ulid,
      numSamples: b.stats?.numSamples,
      numSeries: b.stats?.numSeries,
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
 * block whose compaction.sources include all of its sources; such a block must hold at least
 * the samples of the imported blocks in it. And the listing must hold exactly as many blocks
 * as the server has loaded: a block on disk that failed to load fails the check.
 */
export function compareBlocks(
  expected: ExpectedBlock[],
  target: BlockMeta[],
  blocksLoaded: number,
): BlockCheck {
  const byId = new Map(target.map((b) => [b.ulid, b]));
  const missing: string[] = [];
  const differ: string[] = [];
  const compacted = new Map<string, ExpectedBlock[]>();
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
    const own = e.sources !== undefined && e.sources.length > 0 ? e.sources : [e.ulid];
    const into = target.find((t) => {
      if ((t.compaction.parents ?? []).some((p) => p.ulid === e.ulid)) return true;
      const ts = sourcesOf(t);
      return own.every((s) => ts.has(s));
    });
    if (into === undefined) missing.push(e.ulid);
    else compacted.set(into.ulid, [...(compacted.get(into.ulid) ?? []), e]);
  }
  for (const [into, parts] of compacted) {
    const have = byId.get(into)!.stats?.numSamples ?? 0;
    const want = parts.reduce((n, p) => n + (p.numSamples ?? 0), 0);
    if (have < want)
      differ.push(
        `${into} (compacted on the target from ${parts.length} imported) holds ${fmt(have)} ` +
          `samples, fewer than the ${fmt(want)} of the imported blocks`,
      );
  }
  const problems: string[] = [];
  if (missing.length > 0)
    problems.push(
      `${missing.length} of ${plural(expected.length, "block")} not on the target: ` +
        missing.slice(0, 5).join(", ") +
        (missing.length > 5 ? ", ..." : ""),
    );
  if (differ.length > 0) problems.push(`stats differ: ${differ.slice(0, 5).join("; ")}`);
  if (target.length !== blocksLoaded)
    problems.push(
      `${target.length} block dirs on the target's disk but prometheus_tsdb_blocks_loaded is ` +
        `${blocksLoaded}: a block is not loaded`,
    );
  const merged = [...compacted.values()].reduce((n, p) => n + p.length, 0);
  const into = [...compacted.keys()];
  const SHOWN = 3;
  const intoText =
    into.length <= SHOWN
      ? into.join(", ")
      : `${fmt(into.length)} blocks (${into.slice(0, SHOWN).join(", ")}, …)`;
  const summary =
    problems.length > 0
      ? problems.join("; ")
      : merged === 0
        ? `${plural(expected.length, "block")}: IDs and sample/series counts equal, all loaded`
        : `${plural(expected.length, "block")}: ${fmt(equal)} with IDs and sample/series counts ` +
          `equal, ${fmt(merged)} compacted on the target into ${intoText} ` +
          `(holding at least their samples); all loaded`;
  return {
    ok: problems.length === 0,
    expected: expected.length,
    equal,
    compacted: { blocks: merged, into: into.length, intoFirst: into.slice(0, SHOWN) },
    missing,
    differ,
    summary,
  };
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

  const cmp = compareCounts(source.windows, target.windows, v.targetEarliestMs);
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
      blockCheck = compareBlocks(v.blocks, target.blocks, th.blocksLoaded);
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
