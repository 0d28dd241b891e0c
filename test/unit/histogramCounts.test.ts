// Native histogram samples in the per-window counts (counts.sh "histograms"): parsed,
// compared with the same rule as all samples, and reported.

import * as assert from "node:assert/strict";
import { compareCounts, parseCounts } from "../../components/decisions/verify";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 0, 0, 0);
const health = { blocksLoaded: 1, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: 0 };

describe("native histogram samples in the per-window counts", () => {
  it("parseCounts reads histograms, and refuses more histograms than samples", () => {
    const ok = parseCounts(
      JSON.stringify({ windows: [{ endMs: T0, count: 10, histograms: 4 }], health }),
    );
    assert.equal(ok.windows[0]!.histograms, 4);
    const old = parseCounts(JSON.stringify({ windows: [{ endMs: T0, count: 10 }], health }));
    assert.equal(old.windows[0]!.histograms, undefined);
    assert.throws(
      () =>
        parseCounts(JSON.stringify({ windows: [{ endMs: T0, count: 3, histograms: 4 }], health })),
      /4 histogram samples > 3 samples in all/,
    );
    assert.throws(
      () =>
        parseCounts(JSON.stringify({ windows: [{ endMs: T0, count: 3, histograms: -1 }], health })),
      /histograms/,
    );
  });

  const te = T0 + 4 * H; // the target's first own sample
  const cases: [string, number, number, number, number, boolean, RegExp][] = [
    // [what, window end, source histograms, target histograms, ..., ok, summary]
    [
      "equal before the target's start",
      T0 + 2 * H,
      40,
      40,
      0,
      true,
      /^1 window equal \(100 samples, 40 of them native histogram samples\)$/,
    ],
    [
      "one histogram sample lost",
      T0 + 2 * H,
      40,
      39,
      0,
      false,
      /source 40 target 39 \(equal, native histogram samples\)/,
    ],
    [
      "a duplicated histogram sample",
      T0 + 2 * H,
      40,
      41,
      0,
      false,
      /source 40 target 41 \(equal, native histogram samples\)/,
    ],
    [
      "more after the target's start (its own scrapes)",
      T0 + 6 * H,
      40,
      45,
      5,
      true,
      /^no window equal, 1 window at least the source's \(100 source samples, 40 of them native histogram samples; the target also scraped them itself\)$/,
    ],
    [
      "fewer after the target's start",
      T0 + 6 * H,
      40,
      39,
      0,
      false,
      /at-least, native histogram samples/,
    ],
  ];
  for (const [what, end, sh, th, extra, ok, summary] of cases) {
    it(`${what}: ${ok ? "ok" : "mismatch"}`, () => {
      const c = compareCounts(
        [{ endMs: end, count: 100, histograms: sh }],
        [{ endMs: end, count: 100 + extra, histograms: th }],
        te,
      );
      assert.equal(c.ok, ok, c.summary);
      assert.match(c.summary, summary);
      if (ok) assert.equal(c.histogramsCompared, sh);
    });
  }

  it("a target that did not count histograms fails when the source did", () => {
    const c = compareCounts(
      [{ endMs: T0, count: 100, histograms: 40 }],
      [{ endMs: T0, count: 100 }],
      te,
    );
    assert.equal(c.ok, false);
    assert.match(c.summary, /source 40 target NaN/);
  });

  it("counts from an older counts.sh (no histograms) compare as before", () => {
    const c = compareCounts([{ endMs: T0, count: 100 }], [{ endMs: T0, count: 100 }], te);
    assert.equal(c.ok, true);
    assert.equal(c.histogramsCompared, 0);
    assert.match(c.summary, /^1 window equal \(100 samples\)$/);
  });
});
