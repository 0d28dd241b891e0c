// The version gate (components/decisions/blockFormat.ts) and the overlap rules per target
// version (plan.ts overlapRules), as tables.

import * as assert from "node:assert/strict";
import {
  checkBlockFormats,
  histogramsIn,
  unreadableBecause,
  BlockWriter,
} from "../../components/decisions/blockFormat";
import { OverlapRule, overlapRules, planMigration } from "../../components/decisions/plan";
import { headAsBlock } from "../../components/decisions/planInput";
import { BlockMeta, parseBlockMeta } from "../../components/decisions/sidecarOutput";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 0, 0, 0);
const ULID = "01JAAAAAAAAAAAAAAAAAAAAAA1";

function block(over: Partial<BlockMeta> = {}): BlockMeta {
  return {
    ulid: ULID,
    minTime: T0,
    maxTime: T0 + 2 * H,
    compaction: { level: 1, sources: [ULID] },
    stats: { numSamples: 100, numSeries: 2, numChunks: 2 },
    version: 1,
    indexFormat: 2,
    ...over,
  };
}

// Stats as each writer puts them in meta.json.
const floats3x = { numSamples: 100, numFloatSamples: 100, numSeries: 2, numChunks: 2 };
const hist3x = {
  numSamples: 100,
  numFloatSamples: 60,
  numHistogramSamples: 40,
  numSeries: 3,
  numChunks: 3,
};
const histOnly3x = { numSamples: 40, numHistogramSamples: 40, numSeries: 1, numChunks: 1 };
const old = { numSamples: 100, numSeries: 2, numChunks: 2 }; // 2.x: no split

const w226: BlockWriter = { version: "2.26.0", flags: {} };
const w242: BlockWriter = { version: "2.42.0", flags: {} };
const w242nh: BlockWriter = { version: "2.42.0", flags: { "enable-feature": "native-histograms" } };
const w313: BlockWriter = { version: "3.13.5", flags: {} };
const w313xor2: BlockWriter = { version: "3.13.5", flags: { "enable-feature": "xor2-encoding" } };

describe("version gate: can the target read the blocks?", () => {
  const cases: [string, Partial<BlockMeta>, string, BlockWriter, RegExp | undefined][] = [
    // [what, block, target, writer, refusal (undefined: readable)]
    ["2.42 floats -> 3.13 (the common upgrade)", { stats: old }, "3.13.5", w242, undefined],
    ["2.42 histograms -> 3.13", { stats: old }, "3.13.5", w242nh, undefined],
    ["2.26 -> 3.13", { stats: old }, "3.13.5", w226, undefined],
    ["3.13 -> 3.16", { stats: hist3x }, "3.16.0", w313, undefined],
    [
      "3.16 -> 3.13 (downgrade, formats unchanged)",
      { stats: hist3x },
      "3.13.5",
      // Its flags read: no experimental encoding (unread flags refuse it: gateFlags.test.ts).
      { version: "3.16.0", flags: {} },
      undefined,
    ],
    [
      "3.13 floats, index 2 -> 2.55 (safe downgrade)",
      { stats: floats3x },
      "2.55.1",
      w313,
      undefined,
    ],
    [
      "3.13 floats, index 2 -> 2.42 (formats allow it)",
      { stats: floats3x },
      "2.42.0",
      w313,
      undefined,
    ],
    [
      "3.13 histograms -> 2.55 (NHCB decoded from 2.55)",
      { stats: hist3x },
      "2.55.1",
      w313,
      undefined,
    ],
    [
      "3.13 histograms -> 2.42: maybe custom buckets",
      { stats: hist3x },
      "2.42.0",
      w313,
      /holds native histograms written by 3\.13\.5, possibly with custom buckets \(NHCB\), decoded only by 2\.55\.0/,
    ],
    [
      "index format 3 -> 2.54",
      { indexFormat: 3, stats: floats3x },
      "2.54.0",
      w313,
      /index format 3 is read only by 2\.55\.0 and later/,
    ],
    ["index format 3 -> 2.55", { indexFormat: 3, stats: floats3x }, "2.55.0", w313, undefined],
    ["index format 3 -> 3.0", { indexFormat: 3, stats: floats3x }, "3.0.0", w313, undefined],
    ["index format 1 -> 2.26", { indexFormat: 1, stats: old }, "2.26.0", w226, undefined],
    ["unknown index format 4", { indexFormat: 4 }, "3.16.0", w313, /unknown index format 4/],
    [
      "index unreadable (null)",
      { indexFormat: null },
      "3.13.5",
      w313,
      /index format could not be read/,
    ],
    [
      "index not reported",
      { indexFormat: undefined },
      "3.13.5",
      w313,
      /index format could not be read/,
    ],
    [
      "meta.json version 2",
      { version: 2 },
      "3.13.5",
      w313,
      /meta.json version 2: .* reads only version 1/,
    ],
    [
      "meta.json without version",
      { version: undefined },
      "3.13.5",
      w313,
      /meta.json has no version/,
    ],
    [
      "histograms -> 2.26",
      { stats: hist3x },
      "2.26.0",
      w313,
      /holds native histograms \(meta.json: 40 histogram samples\), read only by 2\.40\.0/,
    ],
    [
      "histogram-only block (numFloatSamples omitted as zero) -> 2.26",
      { stats: histOnly3x },
      "2.26.0",
      w313,
      /holds native histograms/,
    ],
    [
      "2.42 with native-histograms -> 2.39: may hold",
      { stats: old },
      "2.39.0",
      w242nh,
      /may hold native histograms/,
    ],
    ["2.42 without the feature -> 2.26 (downgrade)", { stats: old }, "2.26.0", w242, undefined],
    ["2.42 with native-histograms -> 2.42", { stats: old }, "2.42.0", w242nh, undefined],
    [
      "no split, unknown writer -> 2.26",
      { stats: old },
      "2.26.0",
      {},
      /may hold native histograms/,
    ],
    ["empty block, unknown writer -> 2.26", { stats: { numSamples: 0 } }, "2.26.0", {}, undefined],
    ["3.x floats -> 2.26", { stats: floats3x }, "2.26.0", w313, undefined],
    ["XOR2 source -> same release", { stats: floats3x }, "3.13.5", w313xor2, undefined],
    [
      "XOR2 source -> 3.16",
      { stats: floats3x },
      "3.16.0",
      w313xor2,
      /experimental chunk encodings \(--enable-feature=xor2-encoding; .* same release \(3\.13\.5\)/,
    ],
    ["XOR2 source -> 2.55", { stats: floats3x }, "2.55.1", w313xor2, /xor2-encoding/],
    [
      "st-storage source (3.16) -> 3.16 (same release)",
      { stats: hist3x },
      "3.16.0",
      { version: "3.16.0", flags: { "enable-feature": "st-storage,exemplar-storage" } },
      undefined,
    ],
    [
      "histograms-st-encoding source (3.14) -> 3.16",
      { stats: hist3x },
      "3.16.0",
      { version: "3.14.0", flags: { "enable-feature": "histograms-st-encoding" } },
      /--enable-feature=histograms-st-encoding; .* same release \(3\.14\.0\)/,
    ],
    ["target version unknown", {}, "", w313, /target's version is unknown/],
  ];
  for (const [what, over, target, writer, refusal] of cases) {
    it(`${what}: ${refusal ? "refused" : "readable"}`, () => {
      const reason = unreadableBecause(block(over), target, writer);
      if (refusal === undefined) assert.equal(reason, undefined);
      else assert.match(reason ?? "(readable)", refusal);
    });
  }

  it("histogramsIn says how it knows", () => {
    assert.deepEqual(histogramsIn(block({ stats: hist3x }), w313).has, "yes");
    assert.deepEqual(histogramsIn(block({ stats: floats3x }), w313).has, "no");
    assert.match(histogramsIn(block({ stats: old }), w226).why, /written by 2\.26\.0/);
    assert.match(
      histogramsIn(block({ stats: old }), w242).why,
      /without --enable-feature=native-histograms/,
    );
    assert.equal(histogramsIn(block({ stats: old }), w313).has, "unknown");
  });

  it("checkBlockFormats refuses the whole copy with one clear line", () => {
    const blocks = [
      block({ stats: floats3x }),
      block({ ulid: "01JAAAAAAAAAAAAAAAAAAAAAA2", stats: hist3x }),
      block({ ulid: "01JAAAAAAAAAAAAAAAAAAAAAA3", indexFormat: 3 }),
    ];
    const c = checkBlockFormats(blocks, "2.26.0", w313);
    assert.equal(c.ok, false);
    assert.deepEqual(
      c.refused.map((r) => r.ulid),
      ["01JAAAAAAAAAAAAAAAAAAAAAA2", "01JAAAAAAAAAAAAAAAAAAAAAA3"],
    );
    assert.match(
      c.message,
      /^the target \(Prometheus 2\.26\.0\) can't read 2 of the 3 block\(s\) to copy: block 01JAAAAAAAAAAAAAAAAAAAAAA2: it holds native histograms .* \(and 1 more block\(s\)\)\. A block it can't open fails its whole reload\. Upgrade the target/,
    );
    assert.deepEqual(checkBlockFormats(blocks.slice(0, 1), "2.26.0", w313), {
      ok: true,
      refused: [],
      message: "",
    });
  });

  it("the plan carries the gate; the head block of includeHead counts as written by the source", () => {
    const input = {
      sourceBlocks: [block({ stats: hist3x })],
      sourceHead: { minTime: T0 + 2 * H, maxTime: T0 + 3 * H },
      targetVersion: "2.26.0",
      targetFlags: {},
      targetBlocks: [],
      targetEarliestMs: T0 + 2.5 * H,
      includeHead: false,
      nowMs: T0 + 3 * H,
      writer: w313,
    };
    const p = planMigration(input);
    assert.equal(p.formats.ok, false);
    assert.equal(planMigration({ ...input, targetVersion: "3.16.0" }).formats.ok, true);
    const head = headAsBlock({
      blocks: [],
      snapshotBlocks: [],
      buildinfo: { version: "3.13.5" },
      flags: {},
      tsdb: { minTime: T0, maxTime: T0 + H, numSeries: 3 },
      dfAvailableBytes: 1,
      nowMs: T0 + H,
    });
    assert.equal(unreadableBecause(head[0]!, "3.16.0", w313), undefined);
    assert.match(unreadableBecause(head[0]!, "2.26.0", w313)!, /may hold native histograms/);
  });

  it("parseBlockMeta keeps version, indexFormat and the float/histogram split", () => {
    const b = parseBlockMeta({
      ulid: ULID,
      minTime: T0,
      maxTime: T0 + 2 * H,
      stats: hist3x,
      compaction: { level: 1 },
      version: 1,
      sizeBytes: 10,
      indexFormat: 2,
    });
    assert.equal(b.version, 1);
    assert.equal(b.indexFormat, 2);
    assert.equal(b.stats?.numHistogramSamples, 40);
    assert.equal(b.stats?.numFloatSamples, 60);
    const n = parseBlockMeta({
      ulid: ULID,
      minTime: 0,
      maxTime: 1,
      compaction: { level: 1 },
      indexFormat: null,
    });
    assert.equal(n.indexFormat, null);
    assert.throws(
      () =>
        parseBlockMeta({
          ulid: ULID,
          minTime: 0,
          maxTime: 1,
          compaction: { level: 1 },
          indexFormat: "2",
        }),
      /"indexFormat" must be a finite number/,
    );
  });
});

describe("overlap rules per target version (what changed in 3.0, what stayed)", () => {
  const cases: [string, Record<string, string>, OverlapRule][] = [
    ["2.7.0", {}, "rejected"],
    ["2.26.0", {}, "rejected"],
    ["2.26.0", { "storage.tsdb.allow-overlapping-blocks": "true" }, "merged-by-compaction"],
    ["2.38.0", {}, "rejected"],
    ["2.39.0", {}, "merged-by-compaction"],
    ["2.42.0", {}, "merged-by-compaction"],
    // allow-overlapping-compaction appeared in 2.50: before it the flag does not exist.
    ["2.42.0", { "storage.tsdb.allow-overlapping-compaction": "false" }, "merged-by-compaction"],
    ["2.55.1", { "storage.tsdb.allow-overlapping-compaction": "false" }, "merged-at-query-time"],
    ["3.0.0", {}, "merged-by-compaction"],
    ["3.13.5", {}, "merged-by-compaction"],
    ["3.16.0", { "storage.tsdb.allow-overlapping-compaction": "false" }, "merged-at-query-time"],
    ["3.13.5", { "storage.tsdb.allow-overlapping-compaction": "true" }, "merged-by-compaction"],
  ];
  for (const [version, flags, rule] of cases) {
    it(`${version} ${JSON.stringify(flags)} -> ${rule}`, () => {
      assert.equal(overlapRules(version, flags), rule);
    });
  }

  it("the plan copies overlapping blocks into 3.x like into 2.39+, and says which rule applies", () => {
    const own = T0 + 1 * H; // the target's first own sample, inside the newest block
    const input = {
      sourceBlocks: [block({ stats: floats3x })],
      sourceHead: undefined,
      targetVersion: "3.13.5",
      targetFlags: {},
      targetBlocks: [],
      targetEarliestMs: own,
      includeHead: false,
      nowMs: T0 + 3 * H,
      writer: w242,
    };
    for (const v of ["2.42.0", "3.13.5", "3.16.0"]) {
      const p = planMigration({ ...input, targetVersion: v });
      assert.equal(p.blocks.length, 1, v);
      assert.equal(p.gapMs, 0, v);
      assert.equal(p.overlapRule, "merged-by-compaction", v);
    }
    const p226 = planMigration({ ...input, targetVersion: "2.26.0" });
    assert.equal(p226.blocks.length, 0);
    assert.equal(p226.overlapRule, "rejected");
  });
});
