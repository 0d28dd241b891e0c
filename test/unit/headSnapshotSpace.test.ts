import * as assert from "node:assert/strict";
import {
  decideHeadSnapshotSpace,
  HEAD_SNAPSHOT_MARGIN_BYTES,
  headBlockBytes,
} from "../../components/decisions/headSnapshotSpace";
import type { BlockMeta, HeadStats } from "../../components/decisions/sidecarOutput";

const MiB = 2 ** 20;
const block = (sizeBytes: number, numChunks: number): BlockMeta => ({
  ulid: "01J00000000000000000000000",
  minTime: 0,
  maxTime: 1,
  stats: { numChunks },
  compaction: { level: 1 },
  sizeBytes,
});
const head = (chunkCount?: number): HeadStats => ({ minTime: 0, maxTime: 1, chunkCount });

describe("headBlockBytes", () => {
  it("uses the source's own bytes per chunk, with a factor for fresh chunks", () =>
    assert.equal(headBlockBytes(head(1000), [block(200_000, 1000)]), 300_000));
  it("falls back to 1 KiB per chunk without blocks", () =>
    assert.equal(headBlockBytes(head(1000), []), 1_536_000));
  it("no chunk count: unknown", () => assert.equal(headBlockBytes(head(), []), undefined));
});

describe("decideHeadSnapshotSpace", () => {
  const blocks = [block(100 * MiB, 100_000)];
  const cases: {
    name: string;
    head: HeadStats | null;
    free: number | undefined;
    ok: boolean;
    match: RegExp;
  }[] = [
    {
      name: "fits with the margin",
      head: head(100_000),
      free: 150 * MiB + HEAD_SNAPSHOT_MARGIN_BYTES,
      ok: true,
      match: /writes about 150 MiB .* 406 MiB are free/,
    },
    {
      name: "does not fit once the margin is kept",
      head: head(100_000),
      free: 150 * MiB + HEAD_SNAPSHOT_MARGIN_BYTES - 1,
      ok: false,
      match: /writes about 150 MiB/,
    },
    { name: "head unknown: no", head: null, free: 1e12, ok: false, match: /head size is unknown/ },
    {
      name: "no chunk count: no",
      head: head(),
      free: 1e12,
      ok: false,
      match: /no head chunk count/,
    },
    {
      name: "free space unknown: no",
      head: head(1),
      free: undefined,
      ok: false,
      match: /free space .* unknown/,
    },
    {
      name: "free space NaN: no",
      head: head(1),
      free: NaN,
      ok: false,
      match: /free space .* unknown/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideHeadSnapshotSpace(c.head, blocks, c.free);
      assert.equal(d.ok, c.ok);
      assert.match(d.message, c.match);
    });
  }
});
