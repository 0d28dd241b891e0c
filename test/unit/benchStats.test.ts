import * as assert from "node:assert/strict";
import {
  autoVerdict,
  flippedPairs,
  median,
  ordering,
  orderingSentence,
  parseRounds,
  roundOrder,
  roundList,
  spread,
} from "../bench/stats";
import { readCopyRun } from "../bench/copyRun";

// The scale benchmark's statistics (issue 25): medians of interleaved rounds, their spread,
// the orderings that flip, and the verdict on copy.sh's auto streams against plain rsync.

describe("bench stats: PTM_BENCH_ROUNDS", () => {
  const cases: { raw: string | undefined; rounds?: number; smoke?: boolean; error?: RegExp }[] = [
    { raw: undefined, rounds: 3, smoke: false },
    { raw: "", rounds: 3, smoke: false },
    { raw: "3", rounds: 3, smoke: false },
    { raw: "5", rounds: 5, smoke: false },
    { raw: "1", rounds: 1, smoke: true },
    { raw: "2", rounds: 2, smoke: true },
    { raw: "0", error: /1 or more/ },
    { raw: "-1", error: /PTM_BENCH_ROUNDS/ },
    { raw: "2.5", error: /whole number/ },
    { raw: "three", error: /whole number/ },
  ];
  for (const tc of cases)
    it(`${JSON.stringify(tc.raw)} -> ${tc.error ? "refused" : `${tc.rounds}${tc.smoke ? ", smoke" : ""}`}`, () => {
      if (tc.error) assert.throws(() => parseRounds(tc.raw), tc.error);
      else assert.deepEqual(parseRounds(tc.raw), { rounds: tc.rounds, smoke: tc.smoke });
    });
});

describe("bench stats: round k steps k methods at a time, from 2(k-1) on", () => {
  const m = ["A", "B", "C"];
  const cases: { round: number; want: string[] }[] = [
    { round: 1, want: ["A", "B", "C"] },
    { round: 2, want: ["C", "B", "A"] },
    { round: 3, want: ["B", "C", "A"] },
    { round: 4, want: ["A", "C", "B"] },
  ];
  for (const tc of cases)
    it(`round ${tc.round}: ${tc.want.join("")}`, () =>
      assert.deepEqual(roundOrder(m, tc.round), tc.want));
  const seven = ["cp", "tar", "rsync", "s1", "s2", "s4", "auto"];
  it("every round runs every method once", () => {
    for (const r of [1, 2, 3, 4, 5, 6, 7, 8])
      assert.deepEqual([...roundOrder(seven, r)].sort(), [...seven].sort());
  });
  it("no method runs first twice in as many rounds as methods", () => {
    const firsts = [1, 2, 3, 4, 5, 6, 7].map((r) => roundOrder(seven, r)[0]);
    assert.equal(new Set(firsts).size, 7);
  });
  it("no method follows the same one twice in the first 3 rounds (the bench's 7 methods)", () => {
    const seen = new Set<string>();
    for (const r of [1, 2, 3]) {
      const o = roundOrder(seven, r);
      for (let i = 1; i < o.length; i++) {
        const pair = `${o[i - 1]} > ${o[i]}`;
        assert.ok(!seen.has(pair), `${pair} again in round ${r}`);
        seen.add(pair);
      }
    }
  });
  it("no method runs last in two of the first 3 rounds (the bench's 7 methods)", () => {
    const lasts = [1, 2, 3].map((r) => roundOrder(seven, r)[6]);
    assert.deepEqual(lasts, ["auto", "cp", "tar"]);
  });
  it("auto follows 4 streams, 2 streams, 1 stream in rounds 1-3", () =>
    assert.deepEqual(
      [1, 2, 3].map((r) => {
        const o = roundOrder(seven, r);
        return o[o.indexOf("auto") - 1];
      }),
      ["s4", "s2", "s1"],
    ));
  it("refuses round 0", () => assert.throws(() => roundOrder(m, 0), /round/));
});

describe("bench stats: median and spread", () => {
  const cases: {
    values: number[];
    median: number;
    min: number;
    max: number;
    halfRange: number;
  }[] = [
    { values: [5], median: 5, min: 5, max: 5, halfRange: 0 },
    { values: [3, 1, 2], median: 2, min: 1, max: 3, halfRange: 1 },
    { values: [10, 40, 20, 30], median: 25, min: 10, max: 40, halfRange: 15 },
    // One slow round (a busy machine) moves the median not at all, the spread a lot.
    { values: [1000, 1010, 5000], median: 1010, min: 1000, max: 5000, halfRange: 2000 },
  ];
  for (const tc of cases)
    it(`${tc.values.join(", ")}`, () => {
      const s = spread(tc.values);
      assert.deepEqual(s, {
        median: tc.median,
        min: tc.min,
        max: tc.max,
        halfRange: tc.halfRange,
        values: tc.values,
      });
    });
  it("keeps each run's value in round order, not sorted", () =>
    assert.deepEqual(spread([3, 1, 2]).values, [3, 1, 2]));
  it("refuses no values", () => assert.throws(() => median([]), /no values/));
});

describe("bench stats: orderings that flip between rounds", () => {
  const cases: {
    name: string;
    a: number[];
    b: number[];
    flips: boolean;
    sentence: string;
  }[] = [
    {
      name: "faster in rounds 1 and 3, slower in round 2",
      a: [10, 30, 10],
      b: [20, 20, 20],
      flips: true,
      sentence:
        "copy.sh, 2 streams was faster than plain rsync -a in rounds 1 and 3, slower in round 2",
    },
    {
      name: "slower in every round",
      a: [30, 31, 32],
      b: [20, 20, 20],
      flips: false,
      sentence: "copy.sh, 2 streams was slower than plain rsync -a in all 3 rounds",
    },
    {
      name: "faster in every round",
      a: [1, 2, 3],
      b: [4, 5, 6],
      flips: false,
      sentence: "copy.sh, 2 streams was faster than plain rsync -a in all 3 rounds",
    },
    {
      name: "slower first, then faster, then as fast",
      a: [30, 10, 10, 20],
      b: [20, 20, 20, 20],
      flips: true,
      sentence:
        "copy.sh, 2 streams was faster than plain rsync -a in rounds 2 and 3, slower in round 1, as fast in round 4",
    },
    {
      name: "one round (a smoke run): nothing to flip",
      a: [30],
      b: [20],
      flips: false,
      sentence: "copy.sh, 2 streams was slower than plain rsync -a in the only round",
    },
    {
      name: "as fast in every round",
      a: [5, 6],
      b: [5, 6],
      flips: false,
      sentence: "copy.sh, 2 streams was as fast as plain rsync -a in both rounds",
    },
  ];
  for (const tc of cases)
    it(tc.name, () => {
      const o = ordering(tc.a, tc.b);
      assert.equal(o.flips, tc.flips);
      assert.equal(orderingSentence("copy.sh, 2 streams", "plain rsync -a", o), tc.sentence);
    });
  it("refuses runs of different rounds", () =>
    assert.throws(() => ordering([1, 2], [1]), /rounds/));

  it("lists every pair that flips, once, and no pair that keeps its order", () => {
    const pairs = flippedPairs([
      { name: "A", values: [1, 5, 1] },
      { name: "B", values: [2, 2, 2] },
      { name: "C", values: [9, 9, 9] },
    ]);
    assert.deepEqual(
      pairs.map((p) => [p.a, p.b, p.ordering.faster, p.ordering.slower]),
      [["A", "B", [1, 3], [2]]],
    );
  });

  const lists: { rounds: number[]; want: string }[] = [
    { rounds: [], want: "no round" },
    { rounds: [2], want: "round 2" },
    { rounds: [1, 3], want: "rounds 1 and 3" },
    { rounds: [1, 2, 4], want: "rounds 1, 2 and 4" },
  ];
  for (const tc of lists)
    it(`round list: ${tc.want}`, () => assert.equal(roundList(tc.rounds), tc.want));
});

describe("bench stats: is auto no slower than plain rsync beyond the spread?", () => {
  const cases: {
    name: string;
    auto: number[] | undefined;
    rsync: number[];
    unavailable?: string;
    held: boolean | undefined;
    boundMs?: number;
    text?: RegExp;
  }[] = [
    {
      name: "faster median: holds",
      auto: [9000, 9500, 10000],
      rsync: [10000, 10300, 11000],
      held: true,
      boundMs: 10300 + 500,
      text: /^yes, no slower .*: median of copy.sh with PTM_STREAMS=auto 9.50 s <= median of plain rsync -a 10.3 s \+ 0.50 s .* = 10.8 s, over the same 3 rounds$/,
    },
    {
      name: "slower median, within the larger half-range (auto's): holds",
      auto: [9000, 11000, 13000],
      rsync: [10000, 10100, 10200],
      held: true,
      boundMs: 10100 + 2000,
      text: /^yes.*auto 2.00 s, plain rsync 0.10 s/,
    },
    {
      name: "slower median, within the larger half-range (rsync's): holds",
      auto: [10600, 10600, 10600],
      rsync: [9000, 10000, 11000],
      held: true,
      boundMs: 11000,
      text: /^yes.*10.6 s <= .*10.0 s \+ 1.00 s/,
    },
    {
      name: "exactly at the bound: holds (<=)",
      auto: [11000, 11000, 11000],
      rsync: [9000, 10000, 11000],
      held: true,
      boundMs: 11000,
      text: /11.0 s <= /,
    },
    {
      name: "slower beyond the spread: does not hold",
      auto: [13700, 16500, 13300],
      rsync: [10300, 8520, 10000],
      held: false,
      boundMs: 10000 + 1600,
      text: /^no, slower than plain rsync -a beyond the spread: .*13.7 s > .*10.0 s \+ 1.60 s/,
    },
    {
      name: "one round: the numbers, but no verdict",
      auto: [13000],
      rsync: [10000],
      held: undefined,
      boundMs: 10000,
      text: /^no verdict \(1 round, fewer than 3\): .*13.0 s > .*over the same round$/,
    },
    {
      name: "auto rejected by copy.sh: no verdict, saying why",
      auto: undefined,
      rsync: [10000, 10000, 10000],
      unavailable: "not available (copy.sh rejected PTM_STREAMS=auto)",
      held: undefined,
      text: /^no verdict: copy.sh with PTM_STREAMS=auto was not available \(copy.sh rejected PTM_STREAMS=auto\)/,
    },
  ];
  for (const tc of cases)
    it(tc.name, () => {
      const v = autoVerdict({ auto: tc.auto, rsync: tc.rsync, unavailable: tc.unavailable });
      assert.equal(v.held, tc.held);
      assert.equal(v.boundMs, tc.boundMs);
      if (tc.text) assert.match(v.text, tc.text);
    });
  it("refuses auto and rsync from different rounds", () =>
    assert.throws(() => autoVerdict({ auto: [1, 2, 3], rsync: [1, 2] }), /rounds differ/));
});

describe("bench: reading a copy.sh run", () => {
  const counts =
    '{"copied":128,"skipped":0,"bytesCopied":965000000,"bytesReceived":965100000,"bytesTotal":965000000';
  const cases: {
    name: string;
    res: { code: number | null; stdout: string; stderr: string };
    value: string;
    want: Record<string, unknown>;
  }[] = [
    {
      name: "a copy.sh from before auto refuses it: not available, not a crash",
      res: {
        code: 1,
        stdout: "",
        stderr: 'copy: ERROR: PTM_STREAMS must be a whole number from 1 to 16 (got "auto")\n',
      },
      value: "auto",
      want: {
        kind: "rejected",
        note: "not available (copy.sh rejected PTM_STREAMS=auto)",
        message: 'copy: ERROR: PTM_STREAMS must be a whole number from 1 to 16 (got "auto")',
      },
    },
    {
      name: "auto: the streams it ended with and how it chose",
      res: {
        code: 0,
        stdout: counts + ',"streams":2}\n',
        stderr:
          "copy: listing rsync://x\ncopy: streams: 1 -> 2 (+31%), 2 -> 3 (+4%): 2\ncopy: 2 streams ended after 3 s\n",
      },
      value: "auto",
      want: {
        kind: "ok",
        counts: {
          copied: 128,
          skipped: 0,
          bytesCopied: 965000000,
          bytesReceived: 965100000,
          bytesTotal: 965000000,
        },
        streams: 2,
        streamsLine: "copy: streams: 1 -> 2 (+31%), 2 -> 3 (+4%): 2",
      },
    },
    {
      name: "a fixed number of streams, no streams field",
      res: { code: 0, stdout: counts + "}\n", stderr: "" },
      value: "2",
      want: {
        kind: "ok",
        counts: {
          copied: 128,
          skipped: 0,
          bytesCopied: 965000000,
          bytesReceived: 965100000,
          bytesTotal: 965000000,
        },
      },
    },
    {
      name: "any other failure is a failure (the bench stops)",
      res: { code: 1, stdout: "", stderr: "copy: ERROR: cannot list the snapshot at rsync://x\n" },
      value: "auto",
      want: {
        kind: "failed",
        message:
          "copy.sh with PTM_STREAMS=auto exited 1: copy: ERROR: cannot list the snapshot at rsync://x",
      },
    },
    {
      name: "a refusal of another value is not taken for auto's",
      res: {
        code: 1,
        stdout: "",
        stderr: 'copy: ERROR: PTM_STREAMS must be a whole number from 1 to 16 (got "17")\n',
      },
      value: "auto",
      want: {
        kind: "failed",
        message:
          'copy.sh with PTM_STREAMS=auto exited 1: copy: ERROR: PTM_STREAMS must be a whole number from 1 to 16 (got "17")',
      },
    },
    {
      name: "a count missing from the JSON line is a failure",
      res: { code: 0, stdout: '{"copied":1}\n', stderr: "" },
      value: "1",
      want: {
        kind: "failed",
        message: 'copy.sh with PTM_STREAMS=1: no "skipped" count in {"copied":1}',
      },
    },
  ];
  for (const tc of cases)
    it(tc.name, () => assert.deepEqual(readCopyRun(tc.res, tc.value), tc.want));
});
