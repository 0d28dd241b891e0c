import * as assert from "node:assert/strict";
import { COMPACTION_SLACK_MS } from "../../components/decisions/tsdb";
import { decideGap } from "../../components/decisions/gap";

describe("decideGap", () => {
  const H = 3_600_000;
  const now = 100 * H;
  const cases: {
    name: string;
    facts: Parameters<typeof decideGap>[0];
    wait?: number;
    accept?: boolean;
    want: string;
    key?: string;
  }[] = [
    { name: "no gap goes", facts: { gapMs: 0 }, want: "go" },
    {
      name: "gap closable soon, no wait allowed: fail with advice",
      facts: { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: 0 },
      want: "fail",
      key: "maxWaitMinutes",
    },
    {
      name: "gap closable within the limit: wait",
      facts: { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: 0 },
      wait: 90,
      want: "wait",
    },
    {
      name: "gap closable but beyond the limit: fail",
      facts: { gapMs: 2 * H, nextCompactionMs: now + 2 * H, gapAfterNextCompactionMs: 0 },
      wait: 60,
      want: "fail",
      key: "maxWaitMinutes",
    },
    {
      name: "beyond the limit but accepted: go",
      facts: { gapMs: 2 * H, nextCompactionMs: now + 2 * H, gapAfterNextCompactionMs: 0 },
      wait: 60,
      accept: true,
      want: "go",
    },
    {
      name: "waiting gains nothing: fail naming acceptGap",
      facts: { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: 2 * H },
      want: "fail",
      key: "acceptGap",
    },
    {
      name: "waiting gains nothing, accepted: go",
      facts: { gapMs: 2 * H },
      accept: true,
      want: "go",
    },
    // Issue 20, item 5: a wait that only shrinks the gap must not end in a silent go.
    {
      name: "waiting only shrinks the gap, within the limit, not accepted: fail naming acceptGap",
      facts: { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: H / 2 },
      wait: 90,
      want: "fail",
      key: "acceptGap",
    },
    {
      name: "waiting only shrinks the gap, within the limit, accepted: wait, then go",
      facts: { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: H / 2 },
      wait: 90,
      accept: true,
      want: "wait",
    },
    // Issue 20, item 14: a plan that copies nothing proves nothing, acceptGap or not.
    {
      name: "no block to copy and a gap, accepted: fail naming includeHead",
      facts: { gapMs: 2 * 60_000, blocks: [] },
      accept: true,
      want: "fail",
      key: "includeHead",
    },
    {
      name: "no block to copy and a gap that a wait would shrink: fail naming includeHead",
      facts: { gapMs: 2 * H, blocks: [], nextCompactionMs: now + H, gapAfterNextCompactionMs: 0 },
      wait: 90,
      want: "fail",
      key: "includeHead",
    },
    {
      name: "no block to copy and no gap (the target has it all): go",
      facts: { gapMs: 0, blocks: [] },
      want: "go",
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const d = decideGap(
        tc.facts,
        { maxWaitMinutes: tc.wait ?? 0, acceptGap: tc.accept ?? false },
        now,
      );
      assert.equal(d.action, tc.want);
      if (d.action === "fail") assert.equal(d.key, tc.key);
      if (d.action === "wait")
        assert.equal(d.untilMs, tc.facts.nextCompactionMs! + COMPACTION_SLACK_MS);
    });
  }
  it("the advice names the numbers", () => {
    const d = decideGap(
      { gapMs: 2 * H, nextCompactionMs: now + H, gapAfterNextCompactionMs: 0 },
      { maxWaitMinutes: 0, acceptGap: false },
      now,
    );
    assert.match(d.message, /gap of 120 min/);
    assert.match(d.message, /maxWaitMinutes to at least 63/);
  });
  it("a plan that copies nothing says what to set and why", () => {
    const d = decideGap(
      { gapMs: 2 * 60_000, blocks: [] },
      { maxWaitMinutes: 0, acceptGap: true },
      now,
    );
    assert.match(d.message, /copies no block/);
    assert.match(d.message, /Set includeHead to true/);
  });
});
