import * as assert from "node:assert/strict";
import { BLOCK_MS, headRange, targetOwnEarliestMs } from "../../components/decisions/tsdb";
import { BlockMeta, parseLastJsonLine, parseProbe } from "../../components/decisions/sidecarOutput";
import {
  PlanInput,
  dedupeBlocks,
  formatDuration,
  overlapAllowed,
  parseVersion,
  planMigration,
} from "../../components/decisions/plan";
import { decideGap } from "../../components/decisions/gap";

const H = 3_600_000;
// A fixed "now" on a 2h boundary plus 40 min: 2026-11-26T06:40Z.
const T0 = Date.UTC(2026, 10, 26, 6, 0, 0);
const NOW = T0 + 40 * 60_000;

let seq = 0;
/** A valid-looking ULID, unique per call, ordered by creation. */
function ulid(tag = ""): string {
  seq++;
  const base = `01J${tag}${String(seq).padStart(6, "0")}`.replace(/[ILOU]/g, "X");
  return (base + "0".repeat(26)).slice(0, 26);
}

function block(
  minTime: number,
  maxTime: number,
  extra: Partial<BlockMeta> & { level?: number } = {},
): BlockMeta {
  const id = extra.ulid ?? ulid();
  return {
    ulid: id,
    minTime,
    maxTime,
    stats: { numSamples: 1000, numSeries: 10, numChunks: 10 },
    compaction: extra.compaction ?? { level: extra.level ?? 1, sources: [id] },
    sizeBytes: extra.sizeBytes ?? 1_000_000,
  };
}

/** A merged block made from `parents`, as a compaction writes it. */
function merged(parents: BlockMeta[], level = 2): BlockMeta {
  const id = ulid("M");
  const minTime = Math.min(...parents.map((p) => p.minTime));
  const maxTime = Math.max(...parents.map((p) => p.maxTime));
  return {
    ulid: id,
    minTime,
    maxTime,
    stats: { numSamples: parents.reduce((a, p) => a + (p.stats?.numSamples ?? 0), 0) },
    compaction: {
      level,
      sources: parents.flatMap((p) => p.compaction.sources ?? [p.ulid]),
      parents: parents.map((p) => ({ ulid: p.ulid, minTime: p.minTime, maxTime: p.maxTime })),
    },
    sizeBytes: parents.reduce((a, p) => a + (p.sizeBytes ?? 0), 0),
  };
}

/** Source history: 2-hour blocks from `hoursBack` hours before T0 up to T0 - 2h... */
function history(fromH: number, toH: number): BlockMeta[] {
  const out: BlockMeta[] = [];
  for (let h = fromH; h < toH; h += 2) out.push(block(T0 + h * H, T0 + (h + 2) * H));
  return out;
}

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    sourceBlocks: history(-48, -2),
    sourceHead: { minTime: T0 - 2 * H, maxTime: NOW },
    targetVersion: "2.42.0",
    targetFlags: {},
    targetBlocks: [],
    targetEarliestMs: T0 + 10 * 60_000,
    includeHead: false,
    nowMs: NOW,
    ...over,
  };
}

describe("parseVersion / overlapAllowed", () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ["2.42.0", {}, true],
    ["2.42.0+ds", {}, true],
    ["v2.39.0", {}, true],
    ["2.39.0-rc.0", {}, true],
    ["2.38.0", {}, false],
    ["2.38.0", { "storage.tsdb.allow-overlapping-blocks": "true" }, true],
    ["2.26.0", { "storage.tsdb.allow-overlapping-blocks": "false" }, false],
    ["2.26.0", { "storage.tsdb.allow-overlapping-blocks": "true" }, true],
    ["2.8.0", { "storage.tsdb.allow-overlapping-blocks": "true" }, true],
    ["2.7.1", { "storage.tsdb.allow-overlapping-blocks": "true" }, false],
    ["2.4.3", {}, false],
    ["3.0.0", {}, true],
    ["3.5.1", { "storage.tsdb.allow-overlapping-blocks": "false" }, true],
    ["1.8.2", {}, false],
  ];
  for (const [v, flags, want] of cases) {
    it(`${v} ${JSON.stringify(flags)} -> ${want}`, () =>
      assert.equal(overlapAllowed(v, flags), want));
  }
  for (const bad of ["", "2.42", "2.42.x", "latest", "02.42.0", "2.42.0 extra", "version=2.42.0"]) {
    it(`rejects ${JSON.stringify(bad)}`, () =>
      assert.throws(() => parseVersion(bad), /not a Prometheus version/));
  }
  it("parses the numbers", () =>
    assert.deepEqual(parseVersion("2.53.1"), { major: 2, minor: 53, patch: 1 }));
});

describe("dedupeBlocks (compaction race)", () => {
  it("keeps the merged block when its parents are listed too", () => {
    const ps = history(-12, -6);
    const m = merged(ps);
    const r = dedupeBlocks([...ps, m]);
    assert.deepEqual(
      r.blocks.map((b) => b.ulid),
      [m.ulid],
    );
    assert.deepEqual(
      r.superseded.map((s) => s.by),
      [m.ulid, m.ulid, m.ulid],
    );
  });
  it("uses sources when parents are absent (level-3 over level-1 sources)", () => {
    const ps = history(-18, -12);
    const l2 = merged(ps);
    const l3: BlockMeta = {
      ...merged([l2], 3),
      compaction: { level: 3, sources: ps.map((p) => p.ulid) },
    };
    const r = dedupeBlocks([l3, ...ps]);
    assert.deepEqual(
      r.blocks.map((b) => b.ulid),
      [l3.ulid],
    );
  });
  it("keeps the highest level of a chain l1 -> l2 -> l3 listed together", () => {
    const ps = history(-18, -12);
    const l2 = merged(ps);
    const l3 = merged([l2], 3);
    const r = dedupeBlocks([...ps, l2, l3]);
    assert.deepEqual(
      r.blocks.map((b) => b.ulid),
      [l3.ulid],
    );
  });
  it("keeps unrelated blocks and partial merges' other blocks", () => {
    const ps = history(-12, -6);
    const m = merged(ps.slice(0, 2));
    const r = dedupeBlocks([...ps, m]);
    assert.deepEqual(r.blocks.map((b) => b.ulid).sort(), [ps[2]!.ulid, m.ulid].sort());
  });
  it("lists a duplicated ULID once", () => {
    const b = block(T0 - 4 * H, T0 - 2 * H);
    assert.equal(dedupeBlocks([b, { ...b }]).blocks.length, 1);
  });
  it("same sources, different ULIDs: exactly one survives", () => {
    const ps = history(-6, -2);
    const a = merged(ps);
    const b: BlockMeta = {
      ...a,
      ulid: ulid("Z"),
      compaction: { level: 2, sources: a.compaction.sources! },
    };
    const r = dedupeBlocks([a, b]);
    assert.equal(r.blocks.length, 1);
  });
  it("no sources listed: a block is its own source", () => {
    const a: BlockMeta = { ulid: ulid(), minTime: 0, maxTime: 10, compaction: { level: 1 } };
    const b: BlockMeta = { ulid: ulid(), minTime: 10, maxTime: 20, compaction: { level: 1 } };
    assert.equal(dedupeBlocks([a, b]).blocks.length, 2);
  });
});

describe("planMigration on a target that accepts overlaps (>= 2.39)", () => {
  it("copies every block, oldest first; gap = target start - cutoff", () => {
    const inp = input();
    const p = planMigration(inp);
    assert.equal(p.overlapAllowed, true);
    assert.equal(p.blocks.length, 23);
    assert.deepEqual(
      p.blocks.map((b) => b.minTime),
      [...p.blocks.map((b) => b.minTime)].sort((a, b) => a - b),
    );
    assert.equal(p.cutoffMs, T0 - 2 * H);
    assert.equal(p.gapMs, 2 * H + 10 * 60_000);
    assert.equal(p.bytes, 23_000_000);
    assert.equal(p.samples, 23_000);
    assert.deepEqual(p.skipped, []);
    assert.match(p.advice, /includeHead/);
  });
  it("sorts an unsorted listing", () => {
    const p = planMigration(input({ sourceBlocks: history(-48, -2).reverse() }));
    assert.equal(p.blocks[0]!.minTime, T0 - 48 * H);
  });
  it("includeHead: the head block ends after the target's start, gap 0", () => {
    const head = block(T0 - 2 * H + 1, NOW - 1000);
    const p = planMigration(
      input({ sourceBlocks: [...history(-48, -2), head], includeHead: true }),
    );
    assert.equal(p.blocks.length, 24);
    assert.equal(p.cutoffMs, NOW - 1000);
    assert.equal(p.gapMs, 0);
    assert.match(p.advice, /No gap/);
  });
  it("target started before the cutoff (long overlap): gap 0", () => {
    const p = planMigration(input({ targetEarliestMs: T0 - 30 * H }));
    assert.equal(p.gapMs, 0);
    assert.equal(p.blocks.length, 23);
  });
  it("empty target: gap runs to now, and the advice says to start the target", () => {
    const p = planMigration(input({ targetEarliestMs: undefined }));
    assert.equal(p.gapMs, NOW - (T0 - 2 * H));
    assert.match(p.advice, /no data yet/);
  });
  it("drops the parents of a merged block listed in the same snapshot", () => {
    const hist = history(-48, -2);
    const m = merged(hist.slice(0, 3));
    const p = planMigration(input({ sourceBlocks: [...hist, m] }));
    assert.equal(p.blocks.length, 21);
    assert.equal(p.blocks[0]!.ulid, m.ulid);
    assert.equal(p.skipped.length, 3);
    assert.ok(p.skipped.every((s) => /superseded by/.test(s.reason)));
    assert.equal(p.samples, 23_000); // no sample counted twice
  });
  it("3.x behaves like 2.39+", () => {
    assert.equal(planMigration(input({ targetVersion: "3.1.0" })).blocks.length, 23);
  });
  it("blocks already on the target (previous partial run) stay in the plan", () => {
    const hist = history(-48, -2);
    const p = planMigration(input({ sourceBlocks: hist, targetBlocks: hist.slice(0, 5) }));
    assert.equal(p.blocks.length, 23);
    assert.deepEqual(p.skipped, []);
  });
});

describe("planMigration on a pre-2.39 target without the flag", () => {
  const old = {
    targetVersion: "2.26.0",
    targetFlags: { "storage.tsdb.allow-overlapping-blocks": "false" },
  };
  it("copies only blocks ending at or before the target's first sample", () => {
    // Target started 5h ago: blocks [-6h,-4h) fit, [-4h,-2h) overlaps its data.
    const p = planMigration(input({ ...old, targetEarliestMs: T0 - 4 * H - 30 * 60_000 }));
    assert.equal(p.overlapAllowed, false);
    assert.equal(p.cutoffMs, T0 - 6 * H);
    assert.equal(p.blocks.length, 21);
    assert.deepEqual(p.skipped.map((s) => s.ulid).length, 2);
    assert.ok(p.skipped.every((s) => /rejects overlapping blocks/.test(s.reason)));
    assert.equal(p.gapMs, 1.5 * H);
    assert.match(p.advice, /2\.39\.0/);
  });
  it("a block ending exactly at the target's first sample is allowed ([min, max) ranges)", () => {
    const p = planMigration(input({ ...old, targetEarliestMs: T0 - 2 * H }));
    assert.equal(p.blocks.length, 23);
    assert.equal(p.gapMs, 0);
  });
  it("skips blocks overlapping the target's own blocks even before its earliest sample estimate", () => {
    const own = block(T0 - 10 * H, T0 - 8 * H);
    const p = planMigration(input({ ...old, targetBlocks: [own], targetEarliestMs: T0 - 10 * H }));
    assert.equal(p.cutoffMs, T0 - 10 * H);
    assert.ok(p.skipped.length >= 1);
  });
  it("skips a source block that overlaps another selected source block", () => {
    const hist = history(-10, -4);
    const odd = block(T0 - 9 * H, T0 - 7 * H);
    const p = planMigration(input({ ...old, sourceBlocks: [...hist, odd], targetEarliestMs: T0 }));
    assert.equal(p.blocks.length, 3);
    assert.match(p.skipped[0]!.reason, /overlaps source block/);
  });
  it("includeHead cannot close the gap: the head block is skipped", () => {
    const head = block(T0 - 2 * H + 1, NOW - 1000);
    const p = planMigration(
      input({ ...old, sourceBlocks: [...history(-48, -2), head], includeHead: true }),
    );
    assert.equal(p.blocks.length, 23);
    assert.ok(p.skipped.some((s) => s.ulid === head.ulid));
    assert.equal(p.gapMs, 2 * H + 10 * 60_000);
  });
  it("with the flag set, behaves like 2.39+", () => {
    const p = planMigration(
      input({
        targetVersion: "2.26.0",
        targetFlags: { "storage.tsdb.allow-overlapping-blocks": "true" },
        targetEarliestMs: T0 - 30 * H,
      }),
    );
    assert.equal(p.blocks.length, 23);
  });
  it("empty target: everything fits", () => {
    const p = planMigration(input({ ...old, targetEarliestMs: undefined }));
    assert.equal(p.blocks.length, 23);
  });
  it("every block overlaps: nothing copied, gap from the source's first sample", () => {
    const p = planMigration(input({ ...old, targetEarliestMs: T0 - 47 * H }));
    assert.equal(p.blocks.length, 0);
    assert.equal(p.cutoffMs, T0 - 48 * H);
    assert.equal(p.gapMs, H);
    assert.equal(p.bytes, 0);
  });
  it("imported blocks on the target are not its own data", () => {
    const hist = history(-48, -2);
    const p = planMigration(
      input({ ...old, sourceBlocks: hist, targetBlocks: hist.slice(0, 3), targetEarliestMs: T0 }),
    );
    assert.equal(p.blocks.length, 23);
  });
});

describe("next source compaction", () => {
  it("head minTime + 3h; the block it writes ends on the next 2h boundary", () => {
    const p = planMigration(input({ sourceHead: { minTime: T0 - 2 * H, maxTime: NOW } }));
    assert.equal(p.nextCompactionMs, T0 + H);
    // That block ends at T0, before the target's start (T0 + 10m): gap 10 min.
    assert.equal(p.gapAfterNextCompactionMs, 10 * 60_000);
    assert.match(p.advice, /next source compaction/);
  });
  it("target already covers that block: 0", () => {
    const p = planMigration(input({ targetEarliestMs: T0 - 30 * 60_000 }));
    assert.equal(p.gapAfterNextCompactionMs, 0);
  });
  it("unknown head: undefined", () => {
    const p = planMigration(input({ sourceHead: undefined }));
    assert.equal(p.nextCompactionMs, undefined);
    assert.equal(p.gapAfterNextCompactionMs, undefined);
  });
  it("pre-2.39: a next block that would overlap the target does not help", () => {
    const p = planMigration(input({ targetVersion: "2.26.0", targetEarliestMs: T0 - 30 * 60_000 }));
    assert.equal(p.gapAfterNextCompactionMs, p.gapMs);
  });
});

describe("planMigration rejects bad input", () => {
  it("bad version", () =>
    assert.throws(() => planMigration(input({ targetVersion: "" })), /not a Prometheus version/));
  it("NaN now", () => assert.throws(() => planMigration(input({ nowMs: NaN })), /nowMs/));
  it("inverted block", () =>
    assert.throws(() => planMigration(input({ sourceBlocks: [block(10, 5)] })), /bad time range/));
  it("infinite target start", () =>
    assert.throws(() => planMigration(input({ targetEarliestMs: Infinity })), /targetEarliestMs/));
  it("no source blocks: nothing to copy, but the head's samples are a gap (issue 9 item 7)", () => {
    const p = planMigration(input({ sourceBlocks: [] }));
    assert.equal(p.blocks.length, 0);
    assert.match(p.advice, /no persisted blocks: .* only in its head\. Set includeHead/);
  });
});

describe("parseProbe / parseLastJsonLine", () => {
  const meta = (id: string) => ({
    ulid: id,
    minTime: T0 - 4 * H,
    maxTime: T0 - 2 * H,
    stats: { numSamples: 5, numSeries: 1, numChunks: 1 },
    compaction: { level: 1, sources: [id] },
    version: 1,
    sizeBytes: 123,
  });
  const id = "01M8B7T4N74Y46AFHHH4XPRV92";
  const probe = {
    blocks: [meta(id)],
    snapshotBlocks: [],
    buildinfo: { version: "2.42.0+ds", revision: "x" },
    flags: { "storage.tsdb.path": "/data", "web.enable-admin-api": "false" },
    tsdb: { numSeries: 3, chunkCount: 3, minTime: T0, maxTime: NOW, numLabelPairs: 2 },
    dfAvailableBytes: 1e9,
    nowMs: NOW,
  };
  it("parses the last line, ignoring noise before it", () => {
    const p = parseProbe(`some kubectl warning\n${JSON.stringify(probe)}\n\n`);
    assert.equal(p.blocks[0]!.ulid, id);
    assert.equal(p.blocks[0]!.sizeBytes, 123);
    assert.equal(p.buildinfo!.version, "2.42.0+ds");
    assert.deepEqual(headRange(p.tsdb), { minTime: T0, maxTime: NOW });
  });
  it("null API fields when Prometheus was unreachable", () => {
    const p = parseProbe(JSON.stringify({ ...probe, buildinfo: null, flags: null, tsdb: null }));
    assert.equal(p.buildinfo, null);
    assert.equal(headRange(p.tsdb), undefined);
  });
  it("empty head sentinels mean no head", () => {
    assert.equal(
      // MaxInt64 / MinInt64 as JSON.parse reads them.
      headRange(JSON.parse('{"minTime":9223372036854775807,"maxTime":-9223372036854775808}')),
      undefined,
    );
    assert.equal(headRange({ numSeries: 0, minTime: T0, maxTime: T0 }), undefined);
  });
  it("rejects a bad ULID, a bad range, missing compaction, non-JSON", () => {
    assert.throws(
      () => parseProbe(JSON.stringify({ ...probe, blocks: [{ ...meta(id), ulid: "x" }] })),
      /bad ulid/,
    );
    assert.throws(
      () => parseProbe(JSON.stringify({ ...probe, blocks: [{ ...meta(id), maxTime: 0 }] })),
      /maxTime/,
    );
    assert.throws(
      () =>
        parseProbe(JSON.stringify({ ...probe, blocks: [{ ...meta(id), compaction: undefined }] })),
      /compaction/,
    );
    assert.throws(() => parseLastJsonLine("copy: ERROR: boom"), /not JSON/);
    assert.throws(() => parseLastJsonLine("\n"), /no output/);
  });
  it("targetOwnEarliestMs ignores imported blocks and blocks compacted from them", () => {
    const own = "01M8B7T532JCYWTDPXMAQRBNVH";
    const mixed = {
      ...meta("01M8B7T5BBT92X82TP19VMEETY"),
      minTime: T0 - 40 * H,
      compaction: { level: 2, sources: [id, own] },
    };
    const p = parseProbe(
      JSON.stringify({
        ...probe,
        blocks: [
          { ...meta(id), minTime: T0 - 48 * H },
          { ...meta(own), minTime: T0 - 3 * H },
          mixed,
        ],
      }),
    );
    assert.equal(targetOwnEarliestMs(p, [id]), T0 - 3 * H);
    assert.equal(targetOwnEarliestMs(p), T0 - 48 * H);
    assert.equal(
      targetOwnEarliestMs(parseProbe(JSON.stringify({ ...probe, blocks: [], tsdb: null }))),
      undefined,
    );
  });
});

describe("formatDuration", () => {
  for (const [ms, s] of [
    [0, "0s"],
    [45_000, "45s"],
    [BLOCK_MS + 5 * 60_000, "2h 5m"],
    [61 * 60_000, "1h 1m"],
  ] as const) {
    it(`${ms} -> ${s}`, () => assert.equal(formatDuration(ms), s));
  }
});

describe("a source with no persisted blocks (young, or all in its head)", () => {
  // The source started 1h before T0: everything it has is in its head.
  const young = { sourceBlocks: [], sourceHead: { minTime: T0 - 1 * H, maxTime: NOW } };

  it("without includeHead: the head's samples before the target's first scrape are the gap", () => {
    const p = planMigration(input(young));
    assert.equal(p.blocks.length, 0);
    assert.equal(p.cutoffMs, T0 - 1 * H);
    assert.equal(p.gapMs, T0 + 10 * 60_000 - (T0 - 1 * H));
    assert.match(p.advice, /no persisted blocks.*includeHead/);
  });

  it("the gap gate then asks for includeHead or acceptGap", () => {
    const d = decideGap(planMigration(input(young)), { maxWaitMinutes: 0, acceptGap: false }, NOW);
    assert.equal(d.action, "fail");
  });

  it("with includeHead the head is copied: no gap", () => {
    const head = block(T0 - 1 * H, NOW + 1, { ulid: "01JHEAD0000000000000000000" });
    const p = planMigration(input({ ...young, sourceBlocks: [head], includeHead: true }));
    assert.equal(p.gapMs, 0);
  });

  it("an empty source (no blocks, empty head) has nothing to lose", () => {
    const p = planMigration(input({ sourceBlocks: [], sourceHead: undefined }));
    assert.equal(p.gapMs, 0);
    assert.match(p.advice, /nothing to copy/);
  });
});
