import * as assert from "node:assert/strict";
import { snapshotUse } from "../../components/decisions/snapshotUse";
import { parseProbe } from "../../components/decisions/sidecarOutput";

describe("snapshotUse: only this migration's snapshot is used as it is", () => {
  const table = [
    { owner: "none", action: "plan" },
    { owner: "ours", action: "resume" },
    { owner: "earlier", action: "replace" },
    { owner: "other", action: "refuse" },
  ] as const;
  for (const t of table) {
    it(`${t.owner} -> ${t.action}`, () => {
      assert.equal(snapshotUse(t.owner, "/data/snapshots/ptm-x").action, t.action);
    });
  }

  const probe = (o: Record<string, unknown>) =>
    JSON.stringify({ blocks: [], snapshotBlocks: [], dfAvailableBytes: 1, nowMs: 1, ...o });
  const meta = {
    ulid: "01AAAAAAAAAAAAAAAAAAAAAAA1",
    minTime: 0,
    maxTime: 1,
    compaction: { level: 1 },
  };

  it("a probe that does not say who made a snapshot makes it nobody's we know", () => {
    assert.equal(parseProbe(probe({ snapshotBlocks: [meta] })).snapshotOwner, "other");
    assert.equal(parseProbe(probe({})).snapshotOwner, "none");
  });

  it("an unknown owner value fails the parse, naming the field", () => {
    assert.throws(
      () => parseProbe(probe({ snapshotOwner: "mine" })),
      /snapshotOwner must be one of/,
    );
  });
});
