import * as assert from "node:assert/strict";
import { restartRisk } from "../../components/decisions/restartRisk";

describe("restartRisk", () => {
  const H = 3_600_000;
  const T = 1000 * 2 * H;
  const cases: {
    name: string;
    blocks: { maxTime: number }[];
    head?: { minTime: number; maxTime: number };
    want?: [number, number, number];
  }[] = [
    { name: "no head: nothing to lose", blocks: [{ maxTime: T }] },
    { name: "no blocks: nothing to lose", blocks: [], head: { minTime: T, maxTime: T + H } },
    {
      name: "own blocks only: head starts at the newest block",
      blocks: [{ maxTime: T }],
      head: { minTime: T, maxTime: T + H },
    },
    {
      name: "imported block ends inside the head: the older head samples are at risk",
      blocks: [{ maxTime: T - 2 * H }, { maxTime: T + 2 * H }],
      head: { minTime: T, maxTime: T + 2.5 * H },
      want: [T, T + 2 * H, T + 3 * H + 3 * 60_000],
    },
    {
      name: "unaligned newest block: safe after the next boundary + 1h",
      blocks: [{ maxTime: T + 1.5 * H }],
      head: { minTime: T, maxTime: T + 2 * H },
      want: [T, T + 1.5 * H, T + 3 * H + 3 * 60_000],
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const r = restartRisk(tc.blocks, tc.head);
      if (!tc.want) assert.equal(r, undefined);
      else
        assert.deepEqual(r, {
          lossFromMs: tc.want[0],
          lossToMs: tc.want[1],
          safeAfterMs: tc.want[2],
        });
    });
  }
});
