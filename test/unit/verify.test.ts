import * as assert from "node:assert/strict";
import type { BlockMeta } from "../../components/decisions/sidecarOutput";
import type { Plan } from "../../components/decisions/plan";
import {
  compareBlocks,
  compareCounts,
  DEFAULT_VERIFY_WINDOWS,
  CountsResult,
  expectedBlocks,
  loadWaitEnv,
  parseCounts,
  verifyMigration,
  windowsToCompare,
  WINDOW_MS,
} from "../../components/decisions/verify";
import { parseRecord, serializeRecord } from "../../components/decisions/verificationRecord";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 6, 0, 0); // on a 2h boundary

function blk(minTime: number, maxTime: number): BlockMeta {
  return { ulid: "01M8B7T4N74Y46AFHHH4XPRV92", minTime, maxTime, compaction: { level: 1 } };
}

function plan(blocks: BlockMeta[], cutoffMs = Math.max(...blocks.map((b) => b.maxTime))): Plan {
  return {
    blocks,
    skipped: [],
    overlapAllowed: true,
    cutoffMs,
    gapMs: 0,
    bytes: 0,
    samples: 0,
    nextCompactionMs: undefined,
    gapAfterNextCompactionMs: undefined,
    advice: "",
    formats: { ok: true, refused: [], message: "" },
    overlapRule: "merged-by-compaction",
  };
}

describe("windowsToCompare", () => {
  it("aligned ends covering the copied range, cutoff on a boundary", () => {
    const p = plan([blk(T0 - 6 * H, T0 - 4 * H), blk(T0 - 4 * H, T0 - 2 * H)]);
    assert.deepEqual(windowsToCompare(p), [T0 - 4 * H, T0 - 2 * H]);
  });
  it("adds the unaligned cutoff (backfilled blocks end at last sample + 1 ms)", () => {
    const p = plan([blk(T0 - 6 * H, T0 - 4 * H - 14_999)]);
    assert.deepEqual(windowsToCompare(p), [T0 - 4 * H - 14_999]);
  });
  it("an unaligned first block still gets its first aligned window", () => {
    const p = plan([blk(T0 - 5 * H, T0 - 2 * H)]);
    assert.deepEqual(windowsToCompare(p), [T0 - 4 * H, T0 - 2 * H]);
  });
  it("includeHead: adds the target's first own sample inside the copied range", () => {
    const te = T0 + 25 * 60_000;
    const p = plan([blk(T0 - 4 * H, T0 - 2 * H), blk(T0 - 2 * H + 5, T0 + 40 * 60_000)]);
    assert.deepEqual(windowsToCompare(p, { targetEarliestMs: te }), [
      T0 - 2 * H,
      T0,
      te,
      T0 + 40 * 60_000,
    ]);
  });
  it("ignores a target start outside the copied range", () => {
    const p = plan([blk(T0 - 4 * H, T0 - 2 * H)]);
    assert.deepEqual(windowsToCompare(p, { targetEarliestMs: T0 + H }), [T0 - 2 * H]);
  });
  it("no blocks: no windows", () => assert.deepEqual(windowsToCompare(plan([], 0)), []));
  it("custom window length", () => {
    const p = plan([blk(T0 - 2 * H, T0)]);
    assert.deepEqual(windowsToCompare(p, { windowMs: H }), [T0 - H, T0]);
    assert.throws(() => windowsToCompare(p, { windowMs: 0 }), /windowMs/);
  });
  it("every window end lies within (first copied, cutoff]", () => {
    const p = plan([blk(T0 - 48 * H, T0 - 30 * H), blk(T0 - 30 * H, T0 - 2 * H - 1)]);
    const ends = windowsToCompare(p);
    // 22 aligned ends (T0-46h .. T0-4h) plus the unaligned cutoff.
    assert.equal(ends.length, 23);
    assert.equal(ends[ends.length - 1], p.cutoffMs);
    assert.ok(ends.every((e) => e > T0 - 48 * H && e <= p.cutoffMs));
    assert.equal(WINDOW_MS, 2 * H);
  });
});

describe("windowsToCompare: a bounded set (verifyWindows)", () => {
  // 2,048 aligned 2h blocks ending at T0, as in the scale benchmark's largest size.
  const big = plan([blk(T0 - 4096 * H, T0)]);
  const cases: {
    name: string;
    p: Plan;
    max?: number;
    te?: number;
    want: number | number[];
    must: number[];
  }[] = [
    {
      name: "2,048 windows, default: the default's number, first and last included",
      p: big,
      want: DEFAULT_VERIFY_WINDOWS,
      must: [T0 - 4094 * H, T0],
    },
    {
      name: "2,048 windows, max 4: first, last and two spot checks",
      p: big,
      max: 4,
      want: [T0 - 4094 * H, T0 - 3070 * H, T0 - 1024 * H, T0],
      must: [],
    },
    {
      name: "max 0: every window, as before the bound",
      p: big,
      max: 0,
      want: 2048,
      must: [T0 - 4094 * H, T0 - 2 * H, T0],
    },
    {
      name: "fewer candidates than the maximum: all of them",
      p: plan([blk(T0 - 10 * H, T0)]),
      max: 24,
      want: [T0 - 8 * H, T0 - 6 * H, T0 - 4 * H, T0 - 2 * H, T0],
      must: [],
    },
    {
      name: "unaligned cutoff and target start kept even when the maximum is smaller",
      p: plan([blk(T0 - 4096 * H, T0 + 40 * 60_000)]),
      max: 2,
      te: T0 + 25 * 60_000,
      want: [T0 - 4094 * H, T0, T0 + 25 * 60_000, T0 + 40 * 60_000],
      must: [],
    },
    {
      name: "max 5 with cutoff and target start: those, first, last aligned, one spot",
      p: plan([blk(T0 - 20 * H, T0 + 40 * 60_000)]),
      max: 5,
      te: T0 + 25 * 60_000,
      want: [T0 - 18 * H, T0 - 8 * H, T0, T0 + 25 * 60_000, T0 + 40 * 60_000],
      must: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const ends = windowsToCompare(c.p, {
        ...(c.max !== undefined ? { maxWindows: c.max } : {}),
        ...(c.te !== undefined ? { targetEarliestMs: c.te } : {}),
      });
      if (typeof c.want === "number") assert.equal(ends.length, c.want);
      else assert.deepEqual(ends, c.want);
      for (const m of c.must) assert.ok(ends.includes(m), `${new Date(m).toISOString()} kept`);
      // Sorted, unique, all within (first copied, cutoff].
      const first = Math.min(...c.p.blocks.map((b) => b.minTime));
      assert.deepEqual(
        ends,
        [...new Set(ends)].sort((a, b) => a - b),
      );
      assert.ok(ends.every((e) => e > first && e <= c.p.cutoffMs));
      // Deterministic.
      assert.deepEqual(
        windowsToCompare(c.p, {
          ...(c.max !== undefined ? { maxWindows: c.max } : {}),
          ...(c.te !== undefined ? { targetEarliestMs: c.te } : {}),
        }),
        ends,
      );
    });
  }
  it("spot checks are evenly spaced: no two more than twice the even spacing apart", () => {
    const ends = windowsToCompare(big, { maxWindows: 34 });
    assert.equal(ends.length, 34);
    const gaps = ends.slice(1).map((e, i) => e - ends[i]!);
    const even = (4094 * H) / 33;
    assert.ok(Math.max(...gaps) <= 2 * even, `largest spacing ${Math.max(...gaps) / H}h`);
  });
  it("refuses a maximum that is not a whole number >= 0", () => {
    assert.throws(() => windowsToCompare(big, { maxWindows: -1 }), /maxWindows/);
    assert.throws(() => windowsToCompare(big, { maxWindows: 2.5 }), /maxWindows/);
  });
});

describe("compareCounts", () => {
  const te = T0 - H; // target's first own sample
  it("equal counts before the target's start, at-least after: ok", () => {
    const src = [
      { endMs: T0 - 4 * H, count: 100 },
      { endMs: T0 - 2 * H, count: 100 },
      { endMs: T0, count: 80 },
    ];
    const tgt = [
      { endMs: T0 - 4 * H, count: 100 },
      { endMs: T0 - 2 * H, count: 100 },
      { endMs: T0, count: 120 },
    ];
    const c = compareCounts(src, tgt, te);
    assert.equal(c.ok, true, c.summary);
    assert.deepEqual(
      c.windows.map((w) => w.rule),
      ["equal", "equal", "at-least"],
    );
    assert.equal(c.windowsCompared, 3);
    assert.match(
      c.summary,
      /^2 windows equal \(200 samples\), 1 window at least the source's \(80 source samples;/,
    );
  });
  it("a window ending exactly at the target's start is compared for equality", () => {
    const c = compareCounts([{ endMs: te, count: 5 }], [{ endMs: te, count: 6 }], te);
    assert.equal(c.ok, false);
    assert.equal(c.mismatches[0]!.rule, "equal");
  });
  it("fewer samples on the target before its start: lost data", () => {
    const c = compareCounts(
      [{ endMs: T0 - 4 * H, count: 100 }],
      [{ endMs: T0 - 4 * H, count: 99 }],
      te,
    );
    assert.equal(c.ok, false);
    assert.match(c.summary, /1 of 1 windows differ: .* source 100 target 99 \(equal\)/);
  });
  it("more samples on the target before its start: duplicated blocks", () => {
    const c = compareCounts(
      [{ endMs: T0 - 4 * H, count: 100 }],
      [{ endMs: T0 - 4 * H, count: 200 }],
      te,
    );
    assert.equal(c.ok, false);
  });
  it("fewer samples after the target's start fails too", () => {
    const c = compareCounts([{ endMs: T0, count: 100 }], [{ endMs: T0, count: 90 }], te);
    assert.equal(c.ok, false);
    assert.equal(c.mismatches[0]!.rule, "at-least");
  });
  it("empty target (undefined start): all windows must be equal", () => {
    const c = compareCounts([{ endMs: T0, count: 1 }], [{ endMs: T0, count: 2 }], undefined);
    assert.equal(c.ok, false);
  });
  it("a window missing on the target is a mismatch", () => {
    const c = compareCounts([{ endMs: T0, count: 1 }], [], te);
    assert.equal(c.ok, false);
    assert.equal(c.mismatches[0]!.rule, "missing on target");
  });
  // Issue 9 item 1: this test asserted `ok: true` ("trivially ok"), which is the defect: no
  // compared window proves nothing.
  it("no windows: not a pass (nothing was compared)", () => {
    const c = compareCounts([], [], te);
    assert.equal(c.ok, false);
    assert.equal(c.windowsCompared, 0);
    assert.match(c.summary, /no window holds source samples/);
  });
  it("windows that are empty on both sides are reported, and are not evidence", () => {
    const src = [
      { endMs: T0 - 4 * H, count: 0 },
      { endMs: T0 - 2 * H, count: 1_234_567 },
      { endMs: T0, count: 0 },
    ];
    const c = compareCounts(src, src, undefined);
    assert.equal(c.ok, true, c.summary);
    assert.equal(c.windowsCompared, 1);
    assert.equal(c.windowsEmptyOnBoth, 2);
    assert.equal(c.samplesCompared, 1_234_567);
    assert.deepEqual(
      c.windows.map((w) => w.empty),
      [true, false, true],
    );
    assert.match(c.summary, /^1 window equal \(1,234,567 samples\); 2 empty on both/);
  });
  it("every window empty on both sides fails like no windows", () => {
    const src = [
      { endMs: T0 - 2 * H, count: 0 },
      { endMs: T0, count: 0 },
    ];
    const c = compareCounts(src, src, te);
    assert.equal(c.ok, false);
    assert.equal(c.windowsCompared, 0);
    assert.equal(c.windowsEmptyOnBoth, 2);
    assert.match(c.summary, /no window holds source samples: 2 of 2 windows are empty on both/);
  });
});

describe("parseCounts", () => {
  const ok = {
    windows: [{ endMs: T0, count: 12000 }],
    health: {
      blocksLoaded: 6,
      reloadFailures: 0,
      compactionsFailed: 0,
      lowestTimestampMs: T0 - 48 * H,
    },
  };
  it("parses counts.sh output", () => {
    const r = parseCounts(`counts: noise\n${JSON.stringify(ok)}\n`);
    assert.deepEqual(r, ok);
  });
  it("rejects missing fields and non-numbers", () => {
    assert.throws(() => parseCounts(JSON.stringify({ windows: [] })), /expected/);
    assert.throws(
      () => parseCounts(JSON.stringify({ ...ok, windows: [{ endMs: T0, count: "1" }] })),
      /count/,
    );
    assert.throws(
      () => parseCounts(JSON.stringify({ ...ok, health: { ...ok.health, blocksLoaded: null } })),
      /blocksLoaded/,
    );
  });
  // Item 3: counts.sh printed -1 for a metric missing from /metrics.
  it("rejects a negative or missing health value instead of reading it as 0", () => {
    for (const key of Object.keys(ok.health)) {
      assert.throws(
        () => parseCounts(JSON.stringify({ ...ok, health: { ...ok.health, [key]: -1 } })),
        new RegExp(`counts: health.${key} must be a number >= 0, got -1`),
      );
      const missing: Record<string, number> = { ...ok.health };
      delete missing[key];
      assert.throws(
        () => parseCounts(JSON.stringify({ ...ok, health: missing })),
        new RegExp(`health.${key}`),
      );
    }
    assert.throws(
      () => parseCounts(JSON.stringify({ ...ok, windows: [{ endMs: T0, count: -1 }] })),
      /windows\[0\].count must be a number >= 0/,
    );
  });
  it("parses the target's block listing, validating every meta.json", () => {
    const b = { ulid: "01M8B7T4N74Y46AFHHH4XPRV92", minTime: T0, maxTime: T0 + 2 * H };
    const withBlocks = { ...ok, blocks: [{ ...b, compaction: { level: 1 }, stats: {} }] };
    assert.equal(parseCounts(JSON.stringify(withBlocks)).blocks?.[0]?.ulid, b.ulid);
    assert.equal(parseCounts(JSON.stringify(ok)).blocks, undefined);
    assert.throws(
      () => parseCounts(JSON.stringify({ ...ok, blocks: [{ ...b, ulid: "x" }] })),
      /counts: blocks\[0\]: bad ulid/,
    );
  });
});

const HEALTH = { blocksLoaded: 2, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 };
const U1 = "01AAAAAAAAAAAAAAAAAAAAAAA1";
const U2 = "01AAAAAAAAAAAAAAAAAAAAAAA2";
const U3 = "01AAAAAAAAAAAAAAAAAAAAAAA3";

function meta(ulid: string, numSamples: number, numSeries: number, sources = [ulid]): BlockMeta {
  return {
    ulid,
    minTime: T0,
    maxTime: T0 + 2 * H,
    stats: { numSamples, numSeries },
    compaction: { level: sources.length > 1 ? 2 : 1, sources },
  };
}

function counts(windows: number[], over: Partial<CountsResult> = {}): CountsResult {
  return {
    windows: windows.map((count, i) => ({ endMs: T0 + 2 * (i + 1) * H, count })),
    health: HEALTH,
    ...over,
  };
}

describe("verifyMigration", () => {
  const ends = [T0 + 2 * H, T0 + 4 * H];
  const expected = [
    { ulid: U1, numSamples: 100, numSeries: 10 },
    { ulid: U2, numSamples: 50, numSeries: 10 },
  ];
  const loaded = [meta(U1, 100, 10), meta(U2, 50, 10)];

  it("ok names what it compared: windows, samples, blocks with their stats", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100, 50]),
      target: counts([100, 50], { blocks: loaded }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, true, v.summary);
    assert.equal(v.nothingToVerify, false);
    assert.equal(
      v.summary,
      "2 windows equal (150 samples); 2 blocks: IDs and sample/series counts equal, all loaded",
    );
  });

  // Item 1: zero windows is not a pass.
  it("a plan with blocks but no compared windows fails", () => {
    const v = verifyMigration({
      windowEnds: [],
      source: counts([]),
      target: counts([], { blocks: loaded }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.problems.join("; "), /the plan copies 2 blocks but no window was compared/);
  });
  it("without the plan's blocks, no compared windows fails too", () => {
    const v = verifyMigration({
      windowEnds: [],
      source: counts([]),
      target: counts([]),
      targetEarliestMs: undefined,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /no window was compared/);
  });
  it("only nothing to copy and no gap is 'nothing to verify', and it says so", () => {
    const v = verifyMigration({
      windowEnds: [],
      source: counts([]),
      target: counts([]),
      targetEarliestMs: undefined,
      blocks: [],
      gapMs: 0,
    });
    assert.equal(v.ok, true, v.summary);
    assert.equal(v.nothingToVerify, true);
    assert.match(v.summary, /^nothing to verify: the plan copies no blocks and leaves no gap/);
  });
  it("nothing to copy but a gap is not 'nothing to verify'", () => {
    const v = verifyMigration({
      windowEnds: [],
      source: counts([]),
      target: counts([]),
      targetEarliestMs: undefined,
      blocks: [],
      gapMs: 30 * 60_000,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /copies no blocks but leaves a gap of 30 min/);
  });

  // Item 5: empty on both is not evidence.
  it("a plan whose every window is empty on both sides fails", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([0, 0]),
      target: counts([0, 0], { blocks: loaded }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /no window holds source samples: 2 of 2 windows are empty on both/);
  });

  it("a window the source did not count is an error, not a skipped window", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100]),
      target: counts([100, 50], { blocks: loaded }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /the source's counts lack 1 of 2 requested windows/);
  });

  // Item 3: a negative or missing health value is an error, not 0.
  it("a negative health value fails instead of offsetting a real failure", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100, 50]),
      target: counts([100, 50], {
        blocks: loaded,
        health: { ...HEALTH, reloadFailures: -1, compactionsFailed: 1 },
      }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /target health: reloadFailures is -1/);
    assert.match(v.summary, /1 compaction failure/);
  });
  it("reload or compaction failures on the target fail", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100, 50]),
      target: counts([100, 50], { blocks: loaded, health: { ...HEALTH, reloadFailures: 2 } }),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /the target reports 2 reload and 0 compaction failures/);
  });

  // Item 4: the totals too.
  it("expected blocks but a target that listed none fails", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100, 50]),
      target: counts([100, 50]),
      targetEarliestMs: undefined,
      blocks: expected,
      gapMs: 0,
    });
    assert.equal(v.ok, false);
    assert.match(v.summary, /the target did not list its blocks/);
  });
  it("without expected blocks, says that the blocks were not checked", () => {
    const v = verifyMigration({
      windowEnds: ends,
      source: counts([100, 50]),
      target: counts([100, 50]),
      targetEarliestMs: undefined,
    });
    assert.equal(v.ok, true, v.summary);
    assert.match(v.summary, /block IDs and stats not checked/);
  });
});

describe("compareBlocks", () => {
  it("equal IDs and stats, all loaded", () => {
    const c = compareBlocks(
      [{ ulid: U1, numSamples: 100, numSeries: 10 }],
      [meta(U1, 100, 10), meta(U3, 7, 1)],
      2,
    );
    assert.equal(c.ok, true, c.summary);
    assert.equal(c.summary, "1 block: IDs and sample/series counts equal, all loaded");
  });
  it("a missing block fails, naming it", () => {
    const c = compareBlocks(
      [
        { ulid: U1, numSamples: 100, numSeries: 10 },
        { ulid: U2, numSamples: 1, numSeries: 1 },
      ],
      [meta(U1, 100, 10)],
      1,
    );
    assert.equal(c.ok, false);
    assert.deepEqual(c.missing, [U2]);
    assert.match(c.summary, new RegExp(`1 of 2 blocks not on the target: ${U2}`));
  });
  it("different sample or series counts fail, with the numbers", () => {
    const c = compareBlocks([{ ulid: U1, numSamples: 100, numSeries: 10 }], [meta(U1, 99, 10)], 1);
    assert.equal(c.ok, false);
    assert.match(c.summary, new RegExp(`${U1} numSamples: plan 100, target 99`));
  });
  it("an omitted count is 0, as Prometheus omits zero stats from meta.json", () => {
    const b = meta(U1, 0, 0);
    b.stats = {};
    const c = compareBlocks([{ ulid: U1 }], [b], 1);
    assert.equal(c.ok, true, c.summary);
  });
  it("blocks the target compacted further are found by their sources", () => {
    const merged = meta(U3, 150, 12, [U1, U2]);
    const c = compareBlocks(
      [
        { ulid: U1, numSamples: 100, numSeries: 10, sources: [U1] },
        { ulid: U2, numSamples: 50, numSeries: 10, sources: [U2] },
      ],
      [merged],
      1,
    );
    assert.equal(c.ok, true, c.summary);
    assert.match(
      c.summary,
      new RegExp(
        `^2 blocks: 0 with IDs .*, 2 compacted on the target with other imported blocks only into ${U3} \\(exactly their samples\\)`,
      ),
    );
  });
  it("2,048 blocks compacted into 512: the result counts them instead of listing (issue 14)", () => {
    // Distinct valid ULIDs: the index in Crockford base32.
    const B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    const id = (i: number) => {
      let t = "";
      for (let k = 0; k < 6; k++, i = Math.floor(i / 32)) t = B32[i % 32] + t;
      return `01M8V8AYSMYTKK5WWH${t}00`;
    };
    const imported = Array.from({ length: 2048 }, (_, i) => id(i));
    const into = Array.from({ length: 512 }, (_, k) =>
      meta(id(100_000 + k), 400, 10, imported.slice(4 * k, 4 * k + 4)),
    );
    const c = compareBlocks(
      imported.map((u) => ({ ulid: u, numSamples: 100, numSeries: 10 })),
      into,
      512,
    );
    assert.equal(c.ok, true, c.summary);
    assert.deepEqual(c.compacted, {
      blocks: 2048,
      into: 512,
      intoFirst: into.slice(0, 3).map((b) => b.ulid),
    });
    assert.match(
      c.summary,
      /2,048 compacted on the target with other imported blocks only into 512 blocks \(\S+, \S+, \S+, …\)/,
    );
    assert.ok(JSON.stringify(c).length < 1000, `${JSON.stringify(c).length} bytes`);
  });
  it("a compacted block with fewer samples than its imported parts fails", () => {
    const merged = meta(U3, 120, 12, [U1, U2]);
    const c = compareBlocks(
      [
        { ulid: U1, numSamples: 100, numSeries: 10 },
        { ulid: U2, numSamples: 50, numSeries: 10 },
      ],
      [merged],
      1,
    );
    assert.equal(c.ok, false);
    assert.match(c.summary, /holds 120 samples, fewer than the 150 of the imported blocks/);
  });
  it("a block on disk that the server has not loaded fails", () => {
    const c = compareBlocks([{ ulid: U1, numSamples: 100 }], [meta(U1, 100, 10)], 0);
    assert.equal(c.ok, false);
    assert.match(
      c.summary,
      /1 block dirs on the target's disk but prometheus_tsdb_blocks_loaded is 0/,
    );
  });
  it("expectedBlocks takes ID, stats and sources from the plan's meta.json", () => {
    assert.deepEqual(expectedBlocks([meta(U3, 160, 12, [U1, U2])]), [
      {
        ulid: U3,
        numSamples: 160,
        numSeries: 12,
        minTime: T0,
        maxTime: T0 + 2 * H,
        sources: [U1, U2],
      },
    ]);
  });
  it("expectedBlocks leaves out a level-1 block's own source (no sources means itself)", () => {
    const [e] = expectedBlocks([meta(U1, 100, 10)]);
    assert.deepEqual(e, {
      ulid: U1,
      numSamples: 100,
      numSeries: 10,
      minTime: T0,
      maxTime: T0 + 2 * H,
    });
    // Found by its ID as before, and by lineage once the target compacted it with another.
    assert.equal(compareBlocks([e!], [meta(U1, 100, 10)], 1).ok, true);
    // Merged with U2, which the plan does not have (the target's own): proven by a window.
    assert.equal(compareBlocks([e!], [meta(U3, 160, 12, [U1, U2])], 1).ok, false);
    assert.equal(
      compareBlocks([e!], [meta(U3, 160, 12, [U1, U2])], 1, [{ startMs: T0, endMs: T0 + 2 * H }])
        .ok,
      true,
    );
    assert.equal(compareBlocks([e!], [meta(U3, 160, 12, [U2, U3])], 1).ok, false);
  });
});

// Issue 14: the record is kept in the state, per block.
describe("verification record", () => {
  const record = (blocks: unknown[]) =>
    JSON.stringify({
      frozenAtMs: T0,
      windowEnds: [T0 + 2 * H],
      targetEarliestMs: null,
      loadedDownToMs: T0,
      blocks,
      gapMs: 0,
      source: counts([100]),
    });
  it("keeps each block as a row and reads it back as it was", () => {
    const blocks = [
      { ulid: U1, numSamples: 100, numSeries: 10 },
      { ulid: U3, numSamples: 160, numSeries: 12, sources: [U1, U2] },
      { ulid: U2, numSamples: undefined, numSeries: undefined },
    ];
    const text = serializeRecord({ ...parseRecord(record([])), blocks });
    assert.match(
      text,
      new RegExp(
        `"blocks":\\[\\["${U1}",100,10\\],\\["${U3}",160,12,\\["${U1}","${U2}"\\]\\],\\["${U2}",null,null\\]\\]`,
      ),
    );
    assert.deepEqual(parseRecord(text).blocks, [
      { ulid: U1, numSamples: 100, numSeries: 10, sources: undefined },
      { ulid: U3, numSamples: 160, numSeries: 12, sources: [U1, U2] },
      { ulid: U2, numSamples: undefined, numSeries: undefined, sources: undefined },
    ]);
  });
  it("reads records taken by earlier versions (blocks as objects)", () => {
    const old = record([{ ulid: U3, numSamples: 160, numSeries: 12, sources: [U1, U2] }]);
    assert.deepEqual(parseRecord(old).blocks, [
      { ulid: U3, numSamples: 160, numSeries: 12, sources: [U1, U2] },
    ]);
  });
  it("a damaged row names its place", () => {
    assert.throws(
      () => parseRecord(record([[U1, "many", 10]])),
      /blocks\[0\]\.numSamples must be a number >= 0, got "many"/,
    );
    assert.throws(() => parseRecord(record([[42, 1, 1]])), /blocks\[0\]\.ulid is missing/);
    assert.throws(() => parseRecord(record([U1])), /blocks\[0\] is not a row or an object/);
  });
});

// Item 2: the load wait can't be skipped.
describe("loadWaitEnv", () => {
  const blocks = [{ ulid: U1 }];
  it("waits down to the oldest block and lists the target's blocks", () =>
    assert.deepEqual(loadWaitEnv(T0, blocks), {
      PTM_WAIT_LOADED_MS: String(T0),
      PTM_LIST_BLOCKS: "true",
    }));
  it("refuses a non-finite or negative time when there are blocks to wait for", () => {
    for (const bad of [Infinity, -Infinity, NaN, -1, 1.5]) {
      assert.throws(() => loadWaitEnv(bad, blocks), /loadedDownToMs must be/);
      assert.throws(() => loadWaitEnv(bad, undefined), /loadedDownToMs must be/);
    }
  });
  it("nothing to wait for when the plan has no blocks", () => {
    assert.deepEqual(loadWaitEnv(Infinity, []), {});
  });
  it("without the plan's blocks it still waits, and lists nothing", () =>
    assert.deepEqual(loadWaitEnv(T0, undefined), { PTM_WAIT_LOADED_MS: String(T0) }));
});

// Issue 20 row 12: the verification's evidence is weaker than its summary. A window after the
// target's first own sample proves only "at least the source's"; a block the target compacted
// with its own data holds a sample count that can't be attributed to the import.
describe("issue 20 row 12: the summary says exactly what was proven", () => {
  const U4 = "01AAAAAAAAAAAAAAAAAAAAAAA4"; // the target's own block: no plan block's source
  const ranged = (ulid: string, numSamples: number, fromH: number, toH: number) => ({
    ulid,
    numSamples,
    numSeries: 10,
    minTime: T0 + fromH * H,
    maxTime: T0 + toH * H,
  });
  const win = (fromH: number, toH: number) => ({ startMs: T0 + fromH * H, endMs: T0 + toH * H });

  it("compareCounts names equal windows and at-least windows apart, never 'all on the target'", () => {
    const src = [
      { endMs: T0 - 4 * H, count: 100 },
      { endMs: T0 - 2 * H, count: 100 },
      { endMs: T0, count: 80 },
    ];
    const tgt = [
      { endMs: T0 - 4 * H, count: 100 },
      { endMs: T0 - 2 * H, count: 100 },
      { endMs: T0, count: 120 },
    ];
    const c = compareCounts(src, tgt, T0 - H);
    assert.equal(c.ok, true, c.summary);
    assert.equal(
      c.summary,
      "2 windows equal (200 samples), 1 window at least the source's (80 source samples; " +
        "the target also scraped them itself)",
    );
    assert.doesNotMatch(c.summary, /all on the target/);
  });

  it("compareBlocks: a block compacted with the target's own data is held by lineage, its count not attributed", () => {
    // U2 merged with the target's own U4 into U3: U3's 400 samples are U2's and the target's.
    const c = compareBlocks(
      [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)],
      [meta(U1, 100, 10), meta(U3, 400, 12, [U2, U4])],
      2,
      [win(0, 2), win(2, 4)],
    );
    assert.equal(c.ok, true, c.summary);
    assert.equal(
      c.summary,
      `2 blocks: 1 with IDs and sample/series counts equal, 1 held by lineage in ${U3} ` +
        "(compacted with the target's own data: its sample count can't be attributed; " +
        "windows compared equal cover its range); all loaded",
    );
    assert.doesNotMatch(c.summary, /at least their samples/);
  });

  it("compareBlocks: such a block that no window compared equal covers is unproven (fail closed)", () => {
    const c = compareBlocks(
      [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)],
      [meta(U1, 100, 10), meta(U3, 400, 12, [U2, U4])],
      2,
      [win(0, 2)], // U2's range [2h, 4h) is in no window compared equal
    );
    assert.equal(c.ok, false, c.summary);
    assert.match(
      c.summary,
      new RegExp(
        `1 block compacted with the target's own data not proven: no window compared equal ` +
          `covers its range \\(${U2}\\)`,
      ),
    );
  });

  it("compareBlocks: still fewer samples than the imported part is a loss, own data or not", () => {
    const c = compareBlocks([ranged(U2, 50, 2, 4)], [meta(U3, 40, 12, [U2, U4])], 1, [win(2, 4)]);
    assert.equal(c.ok, false);
    assert.match(c.summary, /holds 40 samples, fewer than the 50 of the imported blocks/);
  });

  it("compareBlocks: a merge of imported blocks only is attributed: exactly their samples", () => {
    const c = compareBlocks(
      [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)],
      [meta(U3, 160, 12, [U1, U2])],
      1,
      [],
    );
    assert.equal(c.ok, false, c.summary);
    assert.match(c.summary, /holds 160 samples, more than the 150 of the imported blocks/);
    const exact = compareBlocks(
      [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)],
      [meta(U3, 150, 12, [U1, U2])],
      1,
      [],
    );
    assert.equal(exact.ok, true, exact.summary);
    assert.match(
      exact.summary,
      new RegExp(
        `2 compacted on the target with other imported blocks only into ${U3} ` +
          `\\(exactly their samples\\)`,
      ),
    );
  });

  it("verifyMigration: the lineage block is proven only by a window before the target's own start", () => {
    const input = (te: number) => ({
      windowEnds: [T0 + 2 * H, T0 + 4 * H],
      source: counts([100, 50]),
      target: counts([100, 60], { blocks: [meta(U1, 100, 10), meta(U3, 400, 12, [U2, U4])] }),
      targetEarliestMs: te,
      blocks: [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)],
      gapMs: 0,
    });
    // The target's own samples start at 3h: the window [2h, 4h) is at-least, U2 is unproven.
    const v = verifyMigration(input(T0 + 3 * H));
    assert.equal(v.ok, false, v.summary);
    assert.match(v.summary, /not proven: no window compared equal covers its range/);
    // They start at 4h: both windows are equal (the target counts 50 there too).
    const w = verifyMigration({
      ...input(T0 + 4 * H),
      target: counts([100, 50], { blocks: input(0).target.blocks! }),
    });
    assert.equal(w.ok, true, w.summary);
    assert.equal(
      w.summary,
      `2 windows equal (150 samples); 2 blocks: 1 with IDs and sample/series counts equal, ` +
        `1 held by lineage in ${U3} (compacted with the target's own data: its sample count ` +
        `can't be attributed; windows compared equal cover its range); all loaded`,
    );
  });

  it("the record keeps each block's range, and reads rows of earlier versions without one", () => {
    const blocks = [{ ...ranged(U1, 100, 0, 2) }, { ...ranged(U3, 160, 2, 8), sources: [U1, U2] }];
    const text = serializeRecord({
      frozenAtMs: T0,
      windowEnds: [T0 + 2 * H],
      targetEarliestMs: undefined,
      loadedDownToMs: T0,
      blocks,
      gapMs: 0,
      source: counts([100]),
    });
    assert.deepEqual(
      parseRecord(text).blocks.map((b) => [b.ulid, b.minTime, b.maxTime]),
      [
        [U1, T0, T0 + 2 * H],
        [U3, T0 + 2 * H, T0 + 8 * H],
      ],
    );
    assert.deepEqual(parseRecord(text).blocks[1]!.sources, [U1, U2]);
  });
});

// Issue 20 row 13: the source's retention deletes its oldest blocks between the snapshot and
// the install. The record's source counts, taken at the install, then read 0 (or part) in the
// first windows while the target holds the copied samples: compared, that fails for good.
describe("issue 20 row 13: windows the source's retention deleted after the snapshot", () => {
  const ranged = (ulid: string, numSamples: number, fromH: number, toH: number) => ({
    ulid,
    numSamples,
    numSeries: 10,
    minTime: T0 + fromH * H,
    maxTime: T0 + toH * H,
  });
  const loadedBlocks = [
    meta(U1, 100, 10),
    { ...meta(U2, 50, 10), minTime: T0 + 2 * H, maxTime: T0 + 4 * H },
  ];
  const planned = [ranged(U1, 100, 0, 2), ranged(U2, 50, 2, 4)];
  // At the install the source's oldest sample is at 2h: its block [0h, 2h) was deleted.
  const input = (targetWindows: number[], lowestH = 2, sourceWindows = [0, 50]) => ({
    windowEnds: [T0 + 2 * H, T0 + 4 * H],
    source: counts(sourceWindows, { health: { ...HEALTH, lowestTimestampMs: T0 + lowestH * H } }),
    target: counts(targetWindows, { blocks: loadedBlocks }),
    targetEarliestMs: undefined,
    blocks: planned,
    gapMs: 0,
    loadedDownToMs: T0,
  });

  it("a window the source no longer holds is left out, and proven against the snapshot's block stats", () => {
    const v = verifyMigration(input([100, 50]));
    assert.equal(v.ok, true, v.summary);
    assert.equal(v.windowsCompared, 1);
    assert.equal(v.samplesCompared, 50);
    assert.deepEqual(
      v.windows.map((w) => w.rule),
      ["block-stats", "equal"],
    );
    assert.equal(
      v.summary,
      "1 window equal (50 samples); 1 window not compared with the source: its retention " +
        "deleted the data after the snapshot (its oldest sample at the install: " +
        `${new Date(T0 + 2 * H).toISOString()}): 1 proven against the snapshot's block stats ` +
        "instead (100 samples in 1 block); 2 blocks: IDs and sample/series counts equal, all loaded",
    );
  });

  it("a count that differs from the blocks' stats there is not comparable, never a failure", () => {
    // Staleness markers are samples in a block's stats that count_over_time does not count.
    const v = verifyMigration(input([97, 50]));
    assert.equal(v.ok, true, v.summary);
    assert.equal(v.windows[0]!.rule, "not comparable");
    assert.match(v.summary, /1 window not compared with the source: .*: 1 not comparable/);
    assert.doesNotMatch(v.summary, /differ/);
  });

  it("a block not wholly inside the window proves nothing there: not comparable", () => {
    const v = verifyMigration({
      ...input([100, 50]),
      blocks: [ranged(U1, 100, 0, 2), ranged(U2, 50, 1, 4)], // U2 reaches into [0h, 2h)
    });
    assert.equal(v.windows[0]!.rule, "not comparable");
    assert.doesNotMatch(v.summary, /proven against the snapshot's block stats/);
  });

  it("every window left out: nothing was compared with the source, not ok, and what to do", () => {
    const v = verifyMigration(input([100, 50], 4, [0, 0]));
    assert.equal(v.ok, false, v.summary);
    assert.equal(v.windowsCompared, 0);
    assert.match(
      v.summary,
      /nothing was compared with the source: its retention deleted the data of all 2 windows after the snapshot/,
    );
    assert.match(v.summary, /fresh snapshot/);
  });

  it("the first block starting inside its window (no retention) is compared as before", () => {
    // The source's oldest block begins at its first sample, not on a window boundary.
    const v = verifyMigration({
      ...input([100, 50], 0.5, [100, 50]),
      blocks: [ranged(U1, 100, 0.5, 2), ranged(U2, 50, 2, 4)],
      loadedDownToMs: T0 + 0.5 * H,
    });
    assert.equal(v.ok, true, v.summary);
    assert.match(v.summary, /^2 windows equal \(150 samples\); 2 blocks/);
  });
});
