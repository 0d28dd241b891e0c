// Issue 21 item 6: "the source holds no samples" is said only when its blocks and head are
// both empty AND the server agrees (prometheus_tsdb_blocks_loaded and
// prometheus_tsdb_head_series from its own /metrics, as probe.sh reads them). Otherwise the
// plan is refused (fail closed) instead of an empty migration.

import * as assert from "node:assert/strict";
import { ConfigError } from "../../components/decisions/config";
import { planMigration } from "../../components/decisions/plan";
import { planInput } from "../../components/decisions/planInput";
import { confirmSourceEmpty } from "../../components/decisions/serverAnswers";
import { BlockMeta, ProbeResult } from "../../components/decisions/sidecarOutput";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 0, 0, 0);
const ULID = "01JAAAAAAAAAAAAAAAAAAAAAA1";
const block: BlockMeta = {
  ulid: ULID,
  minTime: T0 - 2 * H,
  maxTime: T0,
  compaction: { level: 1, sources: [ULID] },
  stats: { numSamples: 100, numSeries: 2, numChunks: 2, numFloatSamples: 100 },
  version: 1,
  indexFormat: 2,
};
// An empty head as a fresh server reports it: its range at the newest block's end, no series.
const EMPTY_HEAD = { minTime: T0, maxTime: T0, numSeries: 0 };

function source(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    blocks: [],
    snapshotBlocks: [],
    buildinfo: { version: "3.13.5" },
    flags: { "storage.tsdb.path": "/prometheus" },
    tsdb: EMPTY_HEAD,
    dfAvailableBytes: 1e9,
    nowMs: T0 + H,
    apiUrl: "http://localhost:9090",
    apiErrors: {},
    server: { blocksLoaded: 0, headSeries: 0 },
    ...over,
  };
}
const target = source({
  buildinfo: { version: "3.16.0" },
  tsdb: { minTime: T0 + 0.5 * H, maxTime: T0 + H, numSeries: 5 },
  server: { blocksLoaded: 0, headSeries: 5 },
});

describe("confirmSourceEmpty", () => {
  it("empty on disk, empty head, and the server agrees: confirmed", () => {
    assert.equal(confirmSourceEmpty([], source()), undefined);
  });
  const refused: { name: string; p: ProbeResult; key: string; want: RegExp }[] = [
    {
      name: "the server has blocks loaded that the probe did not find: wrong data path",
      p: source({ server: { blocksLoaded: 8, headSeries: 0 } }),
      key: "source.dataPath",
      want: /8 blocks loaded.*no block in \/prometheus|no block.*8 blocks loaded/,
    },
    {
      name: "the server's head holds series the head stats did not show",
      p: source({ server: { blocksLoaded: 0, headSeries: 120 } }),
      key: "source",
      want: /prometheus_tsdb_head_series 120/,
    },
    {
      name: "the server's /metrics could not be read",
      p: source({
        server: null,
        apiErrors: { metrics: "wget: server returned error: HTTP/1.1 503" },
      }),
      key: "source.url",
      want: /\/metrics.*503/,
    },
    {
      name: "an older probe that did not read /metrics",
      p: source({ server: undefined }),
      key: "source.url",
      want: /could not confirm/,
    },
  ];
  for (const c of refused) {
    it(`refused: ${c.name}`, () => {
      assert.throws(
        () => {
          const r = confirmSourceEmpty([], c.p);
          if (r) throw r;
        },
        (e: Error) => e instanceof ConfigError && e.key === c.key && c.want.test(e.message),
      );
    });
  }
  it("not empty (a block, or a head with samples): nothing to confirm", () => {
    assert.equal(confirmSourceEmpty([block], source({ server: null })), undefined);
    assert.equal(
      confirmSourceEmpty(
        [],
        source({ tsdb: { minTime: T0, maxTime: T0 + H, numSeries: 3 }, server: null }),
      ),
      undefined,
    );
  });
});

describe("planInput: no empty migration unless the server agrees", () => {
  it("confirmed: the plan says the source holds no samples", () => {
    const p = planMigration(planInput([], source(), target, false));
    assert.equal(p.blocks.length, 0);
    assert.match(p.advice, /holds no samples/);
  });
  it("not confirmed: refused before any plan", () => {
    assert.throws(
      () => planInput([], source({ server: { blocksLoaded: 8, headSeries: 0 } }), target, false),
      /source\.dataPath: /,
    );
  });
});
