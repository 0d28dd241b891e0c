// Issue 21 item 6: the version gate uses the flags discovery read (the server through the pod
// proxy, else the container's args) when the probe has none; with none at all, the source's
// features are unknown, never "none".

import * as assert from "node:assert/strict";
import { histogramsIn, unreadableBecause } from "../../components/decisions/blockFormat";
import { resolveFlags, specFlags } from "../../components/decisions/discovery";
import { planMigration } from "../../components/decisions/plan";
import { planInput } from "../../components/decisions/planInput";
import { BlockMeta, ProbeResult } from "../../components/decisions/sidecarOutput";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 0, 0, 0);
const ULID = "01JAAAAAAAAAAAAAAAAAAAAAA1";
const floats3x: BlockMeta = {
  ulid: ULID,
  minTime: T0 - 2 * H,
  maxTime: T0,
  compaction: { level: 1, sources: [ULID] },
  stats: { numSamples: 100, numFloatSamples: 100, numSeries: 2, numChunks: 2 },
  version: 1,
  indexFormat: 2,
};
// Written by 2.42 (no float/histogram split in meta.json).
const noSplit: BlockMeta = { ...floats3x, stats: { numSamples: 100, numSeries: 2, numChunks: 2 } };

function probe(version: string, flags: Record<string, string> | null): ProbeResult {
  return {
    blocks: [],
    snapshotBlocks: [],
    buildinfo: { version },
    flags,
    tsdb: { minTime: T0, maxTime: T0 + H, numSeries: 3 },
    dfAvailableBytes: 1e9,
    nowMs: T0 + H,
    apiUrl: "http://localhost:9090",
    apiErrors:
      flags === null ? { flags: "wget: server returned error: HTTP/1.1 404 Not Found" } : {},
    server: { blocksLoaded: 1, headSeries: 3 },
  };
}

describe("blockFormat: unknown source flags are unknown features, not none", () => {
  it("2.42 without readable flags may have ingested native histograms", () => {
    assert.equal(histogramsIn(noSplit, { version: "2.42.0", flags: null }).has, "unknown");
    assert.equal(histogramsIn(noSplit, { version: "2.42.0", flags: {} }).has, "no");
  });
  it("3.13 without readable flags may write experimental encodings: only the same release", () => {
    assert.match(
      unreadableBecause(floats3x, "3.16.0", { version: "3.13.5", flags: null }) ?? "",
      /flags .*could not be read/,
    );
    assert.equal(
      unreadableBecause(floats3x, "3.13.5", { version: "3.13.5", flags: null }),
      undefined,
    );
    // Before 3.11 there was no experimental chunk encoding to write.
    assert.equal(
      unreadableBecause(floats3x, "3.16.0", { version: "3.10.0", flags: null }),
      undefined,
    );
  });
});

describe("discovery flags: the container's args", () => {
  it("repeated --enable-feature are joined as the flags API joins them", () => {
    const got = specFlags({
      name: "p",
      args: [
        "--enable-feature=xor2-encoding",
        "--enable-feature",
        "exemplar-storage",
        "--web.enable-lifecycle",
      ],
    });
    assert.equal(got?.value["enable-feature"], "xor2-encoding,exemplar-storage");
    assert.equal(got?.value["web.enable-lifecycle"], "true");
    assert.match(got?.from ?? "", /container spec/);
  });
  it("the image's default command line, or a shell wrapper: can't tell", () => {
    assert.equal(specFlags({ name: "p" }), undefined);
    assert.equal(
      specFlags({ name: "p", command: ["sh", "-c", "exec prometheus $ARGS"] }),
      undefined,
    );
  });
  it("the server's flags win over the spec's", () => {
    const c = { name: "p", args: ["--enable-feature=st-storage"] };
    const server = {
      reached: true as const,
      pod: "p-0",
      flags: { "storage.tsdb.path": "/p", "enable-feature": "" },
    };
    assert.equal(resolveFlags(c, server)?.value["enable-feature"], "");
    assert.equal(
      resolveFlags(c, { reached: false, why: "x" })?.value["enable-feature"],
      "st-storage",
    );
  });
});

describe("planInput: the version gate with the flags discovery read", () => {
  const target = probe("3.16.0", { "storage.tsdb.path": "/prometheus" });
  it("the probe read no flags; the container spec says xor2-encoding: refused", () => {
    const discovered = {
      source: { value: { "enable-feature": "xor2-encoding" }, from: "container spec" },
    };
    const p = planMigration(
      planInput([floats3x], probe("3.13.5", null), target, false, discovered),
    );
    assert.equal(p.formats.ok, false);
    assert.match(p.formats.message, /xor2-encoding/);
  });
  it("the probe read no flags; the container spec has none: goes ahead", () => {
    const discovered = { source: { value: {}, from: "container spec" } };
    const p = planMigration(
      planInput([floats3x], probe("3.13.5", null), target, false, discovered),
    );
    assert.equal(p.formats.ok, true, p.formats.message);
  });
  it("no flags anywhere: refused as unknown, never taken for none", () => {
    const p = planMigration(planInput([floats3x], probe("3.13.5", null), target, false));
    assert.equal(p.formats.ok, false);
    assert.match(p.formats.message, /could not be read/);
  });
  it("the target's flags: the probe's, else discovery's, else refused", () => {
    const src = probe("3.13.5", {});
    const noFlags = probe("3.16.0", null);
    assert.throws(() => planInput([floats3x], src, noFlags, false), /target\.url: .*flags/);
    const discovered = {
      target: { value: { "storage.tsdb.retention.time": "30d" }, from: "container spec" },
    };
    const input = planInput([floats3x], src, noFlags, false, discovered);
    assert.equal(input.targetFlags["storage.tsdb.retention.time"], "30d");
  });
});
