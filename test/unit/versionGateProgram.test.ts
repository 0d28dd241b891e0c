// The version gate wired into the program (issue 12): at preview, a copy the target can't
// read is refused with the config key and the reason, before anything changes; a readable
// one is planned as before.

import * as assert from "node:assert/strict";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import {
  line,
  migrateSteps,
  SOURCE_BLOCKS,
  sourceProbe,
  T0,
  targetProbe,
} from "../fixtures/probes";
import { byType, FakeCluster, runProgram } from "./harness";

const config = { phase: "migrate", source: SOURCE_CONFIG };
const H = 3_600_000;
const windows = [2, 4, 5, 6].map((h) => ({ endMs: T0 + h * H, count: 2000, histograms: 10 }));
const health = { blocksLoaded: 3, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 };

/** The fixtures' probes with the source's blocks and versions changed. */
function probing(o: {
  source: string;
  target: string;
  block?: (b: (typeof SOURCE_BLOCKS)[number]) => Record<string, unknown>;
  sourceFlags?: Record<string, string>;
}): FakeCluster {
  const src = sourceProbe();
  const blocks = SOURCE_BLOCKS.map((b) => (o.block ? o.block(b) : b));
  const base = cluster();
  return {
    ...base,
    exec: {
      "ptm-rsyncd:probe": line({
        ...src,
        blocks,
        buildinfo: { version: o.source },
        flags: { ...src.flags, ...(o.sourceFlags ?? {}) },
      }),
      "ptm-rsync:probe": line(targetProbe({ version: o.target })),
      "ptm-rsyncd:counts": line({ windows, health }),
      "ptm-rsync:counts": line({ windows, health, blocks }),
      "ptm-rsyncd:snapshot-blocks": migrateSteps(blocks).listing,
    },
    // What the steps print when the mocks run them (as in migrate.test.ts).
    commandStdout: migrateSteps(blocks).stdout,
  };
}

const withHistograms = (b: (typeof SOURCE_BLOCKS)[number]) => ({
  ...b,
  stats: { ...b.stats, numFloatSamples: b.stats.numSamples - 10, numHistogramSamples: 10 },
});

describe("program: the version gate at preview", () => {
  it("refuses native histogram blocks for a 2.26 target, naming the key and the block", async () => {
    const c = probing({ source: "3.13.5", target: "2.26.0", block: withHistograms });
    await assert.rejects(
      runProgram(config, c, { preview: true }),
      new RegExp(
        `:target: the target \\(Prometheus 2\\.26\\.0\\) can't read 2 of the 2 block\\(s\\) to copy: ` +
          `block ${SOURCE_BLOCKS[0]!.ulid}: it holds native histograms \\(meta.json: 10 histogram samples\\), ` +
          `read only by 2\\.40\\.0 and later \\(and 1 more block\\(s\\)\\)`,
      ),
    );
  });

  it("refuses index format 3 for a target before 2.55", async () => {
    const c = probing({
      source: "3.16.0",
      target: "2.54.1",
      // Float-only blocks as 3.x writes them (with the split), one in index format 3.
      block: (b) => ({
        ...b,
        stats: { ...b.stats, numFloatSamples: b.stats.numSamples },
        ...(b === SOURCE_BLOCKS[1] ? { indexFormat: 3 } : {}),
      }),
    });
    await assert.rejects(
      runProgram(config, c, { preview: true }),
      new RegExp(`block ${SOURCE_BLOCKS[1]!.ulid}: index format 3 is read only by 2\\.55\\.0`),
    );
  });

  it("refuses when the probe could not read a block's index format (fails closed)", async () => {
    const c = probing({
      source: "2.42.0",
      target: "3.13.5",
      block: (b) => ({ ...b, indexFormat: null }),
    });
    await assert.rejects(
      runProgram(config, c, { preview: true }),
      /its index format could not be read/,
    );
  });

  for (const [source, target, flags] of [
    ["2.42.0", "3.13.5", { "enable-feature": "native-histograms" }],
    ["3.13.5", "3.16.0", {}],
    ["3.16.0", "3.13.5", {}],
    ["2.26.0", "3.13.5", {}],
  ] as const) {
    it(`plans ${source} -> ${target} as before`, async () => {
      const c = probing({ source, target, block: withHistograms, sourceFlags: flags });
      const r = await runProgram(config, c, { preview: true });
      assert.equal((r.outputs.plan as Record<string, unknown>).blocks, 3);
      assert.ok(byType(r, "command:local:Command").length > 0);
    });
  }
});
