// Issue 21 item 2: the plan counts only what the target keeps under its retention.

import * as assert from "node:assert/strict";
import {
  cutToRetention,
  DEFAULT_RETENTION_MS,
  parsePromDuration,
  parseRetentionSize,
  targetRetention,
} from "../../components/decisions/retention";
import { block, line, migratingCluster, SOURCE_BLOCKS, T0, targetProbe } from "../fixtures/probes";
import { SOURCE_CONFIG } from "../fixtures/workloads";
import { one, runProgram } from "./harness";

const H = 3_600_000;
const D = 24 * H;

describe("retention: Prometheus' durations and sizes", () => {
  const durations: [string, number | "throws"][] = [
    ["15d", 15 * D],
    ["10d", 10 * D],
    ["1y2w", 365 * D + 14 * D],
    ["36h", 36 * H],
    ["1d12h", 36 * H],
    ["90m", 90 * 60_000],
    ["0s", 0],
    ["500ms", 500],
    ["15 days", "throws"],
    ["1h1d", "throws"],
    ["", "throws"],
    ["-1d", "throws"],
  ];
  for (const [text, want] of durations) {
    it(`duration ${JSON.stringify(text)}: ${want}`, () => {
      if (want === "throws")
        assert.throws(() => parsePromDuration(text), /not a Prometheus duration/);
      else assert.equal(parsePromDuration(text), want);
    });
  }
  const sizes: [string, number | "throws"][] = [
    ["512MB", 512 * 2 ** 20],
    ["1GB", 2 ** 30],
    ["100GiB", 100 * 2 ** 30],
    ["0B", 0],
    ["1TB", 2 ** 40],
    ["10 gigs", "throws"],
    ["1G", "throws"],
  ];
  for (const [text, want] of sizes) {
    it(`size ${JSON.stringify(text)}: ${want}`, () => {
      if (want === "throws") assert.throws(() => parseRetentionSize(text), /not a retention size/);
      else assert.equal(parseRetentionSize(text), want);
    });
  }
});

describe("retention: the target's, from its server's flags", () => {
  const cases: [string, Record<string, string>, number | undefined, number | undefined][] = [
    ["nothing set: the default 15d", {}, DEFAULT_RETENTION_MS, undefined],
    [
      "unset flags read 0s: the default",
      { "storage.tsdb.retention.time": "0s" },
      DEFAULT_RETENTION_MS,
      undefined,
    ],
    ["kube-prometheus-stack's 10d", { "storage.tsdb.retention.time": "10d" }, 10 * D, undefined],
    [
      "the deprecated flag",
      { "storage.tsdb.retention.time": "0s", "storage.tsdb.retention": "30d" },
      30 * D,
      undefined,
    ],
    [
      "a size only: no time retention",
      { "storage.tsdb.retention.time": "0s", "storage.tsdb.retention.size": "1GB" },
      undefined,
      2 ** 30,
    ],
    [
      "both",
      { "storage.tsdb.retention.time": "183d", "storage.tsdb.retention.size": "512MB" },
      183 * D,
      512 * 2 ** 20,
    ],
  ];
  it("says when the default is assumed because no flag was reported", () => {
    assert.match(targetRetention({}).from, /assumed: the target reported no retention flag/);
    assert.equal(targetRetention({ "storage.tsdb.retention.time": "0s" }).from, "the default 15d");
  });
  for (const [what, flags, time, size] of cases) {
    it(what, () => {
      const r = targetRetention(flags);
      assert.equal(r.timeMs, time);
      assert.equal(r.sizeBytes, size);
    });
  }
});

describe("retention: which planned blocks the target keeps", () => {
  const blocks = [block("01A", 0, 2), block("01B", 2, 4), block("01C", 4, 6)];
  it("time: a block whose end is more than the retention before the newest data is beyond", () => {
    const cut = cutToRetention(
      blocks,
      { timeMs: 4 * H, sizeBytes: undefined, from: "4h" },
      T0 + 7.5 * H,
      0,
    );
    assert.deepEqual(
      cut.kept.map((b) => b.ulid),
      ["01B", "01C"],
    );
    assert.deepEqual(
      cut.beyond.map((b) => b.ulid),
      ["01A"],
    );
    assert.equal(cut.timeNeededMs, 5.5 * H);
  });
  it("time: exactly at the limit is kept (Prometheus deletes only what is further)", () => {
    const cut = cutToRetention(
      blocks,
      { timeMs: 5.5 * H, sizeBytes: undefined, from: "" },
      T0 + 7.5 * H,
      0,
    );
    assert.deepEqual(cut.beyond, []);
  });
  it("size: the oldest go first until the rest fits beside the target's own blocks", () => {
    // Blocks of 2 MB each; 5 MB allowed, 1 MB of the target's own: only the newest two fit.
    const cut = cutToRetention(
      blocks,
      { timeMs: undefined, sizeBytes: 5_000_000, from: "" },
      T0 + 7.5 * H,
      1_000_000,
    );
    assert.deepEqual(
      cut.kept.map((b) => b.ulid),
      ["01B", "01C"],
    );
    assert.match(cut.beyond[0].reason, /size retention/);
  });
  it("nothing beyond: all kept", () => {
    const cut = cutToRetention(
      blocks,
      { timeMs: 15 * D, sizeBytes: 2 ** 30, from: "" },
      T0 + 7.5 * H,
      0,
    );
    assert.equal(cut.kept.length, 3);
    assert.deepEqual(cut.beyond, []);
  });
});

describe("program: the plan and the target's retention (issue 21 item 2)", () => {
  // The fixtures: blocks 0-2h, 2-4h and 4-6h; the target's head runs to 7.5h. With a 4h
  // retention the first block ends 5.5h before the newest data: deleted at the next reload.
  const withRetention = (time: string) => {
    const c = migratingCluster();
    c.exec = {
      ...c.exec,
      "ptm-rsync:probe": line({
        ...targetProbe(),
        flags: {
          "storage.tsdb.path": "/opt/bitnami/prometheus/data",
          "storage.tsdb.retention.time": time,
        },
      }),
    };
    return c;
  };
  const config = { phase: "migrate", source: SOURCE_CONFIG };

  it("refused before anything is created, naming the flag to raise and the key", async () => {
    await assert.rejects(
      runProgram(config, withRetention("4h")),
      /:target: the target would delete 1 of the 3 planned blocks \(2000 samples, from .*\) at its next reload: they are beyond its retention \(--storage\.tsdb\.retention\.time=4h\)\. Raise it \(--storage\.tsdb\.retention\.time of at least 1d; a Prometheus resource: spec\.retention, spec\.retentionSize\) before migrating, or set trimToTargetRetention to true/,
    );
  });

  it("trimToTargetRetention: only the blocks it keeps are copied, the rest reported as skipped", async () => {
    const c = withRetention("4h");
    c.commandStdout = {
      ...c.commandStdout,
      "migration-block-copy": line({ copied: 2, skipped: 0, bytesCopied: 4e6, bytesTotal: 4e6 }),
      "migration-block-install": line({ installed: 2, alreadyPresent: 0 }),
    };
    const r = await runProgram({ ...config, trimToTargetRetention: true }, c);
    const copy = one(r, "command:local:Command", "migration-block-copy").inputs as Record<
      string,
      string
    >;
    const kept = SOURCE_BLOCKS.slice(1)
      .map((b) => `'${b.ulid}'`)
      .join(" ");
    assert.ok(copy.create.endsWith(`'ptm-copy' ${kept}`), copy.create);
    const plan = r.outputs.plan as { blocks: number; skipped: { ulid: string; reason: string }[] };
    assert.equal(plan.blocks, 2);
    assert.match(
      plan.skipped[0].reason,
      /older than the target's time retention \(--storage\.tsdb\.retention\.time=4h\)/,
    );
  });

  it("a retention that keeps everything changes nothing", async () => {
    const r = await runProgram(config, withRetention("10d"));
    assert.equal((r.outputs.plan as { blocks: number }).blocks, 3);
  });
});
