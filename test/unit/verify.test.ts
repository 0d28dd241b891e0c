import * as assert from "node:assert/strict";
import type { BlockMeta } from "../../components/decisions/sidecarOutput";
import type { Plan } from "../../components/decisions/plan";
import {
  compareCounts,
  parseCounts,
  windowsToCompare,
  WINDOW_MS,
} from "../../components/decisions/verify";

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
    assert.match(c.summary, /3 windows, 280 source samples/);
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
  it("no windows: trivially ok", () => assert.equal(compareCounts([], [], te).ok, true));
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
});
