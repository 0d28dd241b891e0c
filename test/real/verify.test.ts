// Issue 9, "proof that cannot pass vacuously", against real servers: counts.sh and the
// verification rules (components/decisions/verify.ts) on real Prometheus 2.42 (and 2.26)
// output.
//
// - The load wait refuses a time that would make it pass at once (Infinity, NaN, ...).
// - A metric missing from /metrics, or not a number, fails with its name (no -1 any more).
// - The target lists its blocks once all of them are loaded, and the plan's block IDs,
//   numSamples and numSeries are compared with it (also after the target compacted the
//   imported blocks further, and on 2.26); a block dir the server can't load fails.
// - Windows that hold no data on either server are no proof.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import {
  BlockMeta,
  ProbeResult,
  parseBlockMeta,
  parseProbe,
} from "../../components/decisions/sidecarOutput";
import { Plan, planMigration } from "../../components/decisions/plan";
import { headRange, targetOwnEarliestMs } from "../../components/decisions/tsdb";
import {
  compareBlocks,
  expectedBlocks,
  parseCounts,
  verifyMigration,
  windowsToCompare,
} from "../../components/decisions/verify";
import {
  H,
  Prom,
  backfill,
  freePort,
  httpText,
  killAll,
  mkTemp,
  runJson,
  runScript,
  sleep,
  startPrometheus,
  waitFor,
} from "../support/real";

const BIN_226 = path.join(
  process.env["PTM_CACHE"] ?? "/var/cache/ptm",
  "prometheus-2.26.0",
  "bin",
  "prometheus",
);
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** Blocks moved into a running server's data dir the way install.sh does: one rename each. */
function install(fromDir: string, ulids: string[], dataDir: string): void {
  const staging = path.join(dataDir, "ptm-staging");
  fs.mkdirSync(staging, { recursive: true });
  for (const u of ulids) {
    execFileSync("cp", ["-a", path.join(fromDir, u), path.join(staging, u)]);
    fs.renameSync(path.join(staging, u), path.join(dataDir, u));
  }
}

function blockUlids(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => ULID.test(n))
    .sort();
}

describe("real servers: verification that cannot pass vacuously", function () {
  let root = "";
  let src: Prom;
  let tgt: Prom;
  let tgtC: Prom;
  let tgt226: Prom | undefined;
  let hist12 = "";
  let plan: Plan;
  let te = 0;

  const probe = async (p: Prom): Promise<ProbeResult> =>
    parseProbe(
      (await runJson<unknown>("probe", [], { env: { PTM_DATA: p.dataDir, PTM_PROM_URL: p.url } }))
        .res.stdout,
    );
  const counts = (p: Prom, ends: number[], env: Record<string, string> = {}, busybox = false) =>
    runScript("counts", ends.map(String), {
      env: { PTM_PROM_URL: p.url, PTM_DATA: p.dataDir, ...env },
      busybox,
    });

  before(async function () {
    root = mkTemp("ptm-verify-");
    // Two 2h blocks in different 6h ranges: neither server compacts them further, so the
    // target keeps their IDs. They end at least 3h ago (nothing a head could hold).
    const six = Math.floor((Date.now() - 5 * H) / (6 * H)) * 6 * H;
    const srcDir = path.join(root, "source", "data");
    backfill(path.join(root, "hist"), {
      startMs: six - 2 * H,
      endMs: six + 2 * H,
      series: 20,
      stepS: 30,
    });
    fs.mkdirSync(path.dirname(srcDir), { recursive: true });
    fs.renameSync(path.join(root, "hist"), srcDir);
    // Twelve hours in six 2h blocks, 6h-aligned: the target compacts them into one 6h block.
    hist12 = path.join(root, "hist12");
    backfill(hist12, { startMs: six - 18 * H, endMs: six - 6 * H, series: 10, stepS: 60 });

    src = await startPrometheus({ dataDir: srcDir, scrape: (port) => [`127.0.0.1:${port}`] });
    const scrapeSource = (): string[] => [`127.0.0.1:${src.port}`];
    [tgt, tgtC] = await Promise.all([
      startPrometheus({ dataDir: path.join(root, "target", "data"), scrape: scrapeSource }),
      startPrometheus({ dataDir: path.join(root, "targetC", "data"), scrape: scrapeSource }),
    ]);
    if (fs.existsSync(BIN_226)) {
      tgt226 = await startPrometheus({
        binary: BIN_226,
        dataDir: path.join(root, "target226", "data"),
        scrape: scrapeSource,
      });
    } else {
      console.error(`    (2.26 case skipped: ${BIN_226} not built)`);
    }
    await sleep(10_000); // own samples on the targets, well before the blocks are installed
    const [sp, tp] = await Promise.all([probe(src), probe(tgt)]);
    te = targetOwnEarliestMs(tp)!;
    plan = planMigration({
      sourceBlocks: sp.blocks,
      sourceHead: headRange(sp.tsdb),
      targetVersion: tp.buildinfo!.version,
      targetFlags: tp.flags ?? {},
      targetBlocks: tp.blocks,
      targetEarliestMs: te,
      includeHead: false,
      nowMs: tp.nowMs,
    });
    assert.equal(plan.blocks.length, 2, JSON.stringify(plan.skipped));
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("item 2: counts.sh refuses a load-wait time that is not a non-negative integer", async () => {
    for (const bad of ["Infinity", "NaN", "-1", "1.5e12", "", "1764000000000 "]) {
      const r = await counts(tgt, [], { PTM_WAIT_LOADED_MS: bad, PTM_WAIT_SECONDS: "4" });
      assert.notEqual(r.code, 0, `PTM_WAIT_LOADED_MS=${JSON.stringify(bad)} passed: ${r.stdout}`);
      assert.match(r.stderr, /counts: ERROR: PTM_WAIT_LOADED_MS must be a non-negative integer/);
    }
    // The honest wait: nothing installed yet, so a real time is not reached and it times out.
    const oldest = Math.min(...plan.blocks.map((b) => b.minTime));
    const r = await counts(tgt, [], {
      PTM_WAIT_LOADED_MS: String(oldest),
      PTM_WAIT_SECONDS: "4",
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /blocks not loaded after 4s: prometheus_tsdb_lowest_timestamp=\d+ >/);
  });

  it("item 3: a metric missing from /metrics, or not a number, fails with its name", async () => {
    const real = await httpText(`${tgt.url}/metrics`);
    let served = "";
    const port = await freePort();
    const server = http.createServer((_req, res) => res.end(served));
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    try {
      const fake = { url: `http://127.0.0.1:${port}`, dataDir: tgt.dataDir } as Prom;
      for (const name of [
        "prometheus_tsdb_blocks_loaded",
        "prometheus_tsdb_reloads_failures_total",
        "prometheus_tsdb_compactions_failed_total",
        "prometheus_tsdb_lowest_timestamp",
      ]) {
        served = real
          .split("\n")
          .filter((l) => !l.startsWith(`${name} `))
          .join("\n");
        // With a load wait too: a missing lowest timestamp must not pass it at once.
        const r = await counts(fake, [], { PTM_WAIT_LOADED_MS: "0", PTM_WAIT_SECONDS: "4" });
        assert.notEqual(r.code, 0, `${name} missing passed: ${r.stdout}`);
        assert.match(r.stderr, new RegExp(`counts: ERROR: ${name} is missing from .*/metrics`));
        served = real.replace(new RegExp(`^${name} .*$`, "m"), `${name} NaN`);
        const n = await counts(fake, []);
        assert.notEqual(n.code, 0, `${name} NaN passed: ${n.stdout}`);
        assert.match(n.stderr, new RegExp(`counts: ERROR: ${name} is not a number >= 0: NaN`));
      }
      served = real;
      const ok = await counts(fake, []);
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      server.close();
    }
  });

  it("item 4: the target lists its blocks once all are loaded; IDs and stats equal the plan's", async () => {
    const ulids = plan.blocks.map((b) => b.ulid);
    install(src.dataDir, ulids, tgt.dataDir);
    install(hist12, blockUlids(hist12), tgtC.dataDir);
    if (tgt226) install(src.dataDir, ulids, tgt226.dataDir);
    const ends = windowsToCompare(plan, { targetEarliestMs: te });
    const oldest = Math.min(...plan.blocks.map((b) => b.minTime));
    // The target's counts under busybox, as in a sidecar image.
    const [s, t] = await Promise.all([
      counts(src, ends),
      counts(
        tgt,
        ends,
        { PTM_WAIT_LOADED_MS: String(oldest), PTM_LIST_BLOCKS: "true", PTM_WAIT_SECONDS: "150" },
        true,
      ),
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(t.code, 0, t.stderr);
    const target = parseCounts(t.stdout);
    assert.ok(target.blocks !== undefined, "the target listed its blocks");
    assert.equal(target.blocks.length, target.health.blocksLoaded);
    const v = verifyMigration({
      windowEnds: ends,
      source: parseCounts(s.stdout),
      target,
      targetEarliestMs: te,
      blocks: expectedBlocks(plan.blocks),
      gapMs: plan.gapMs,
    });
    assert.equal(v.ok, true, v.summary);
    assert.equal(v.blockCheck?.equal, 2);
    assert.match(
      v.summary,
      /^\d+ windows? equal \([\d,]+ samples\)(, \d+ windows? at least the source's \([^)]*\))?; 2 blocks: IDs and sample\/series counts equal, all loaded$/,
    );
    assert.equal(v.samplesCompared, 20 * 4 * 120);
    // The plan's stats against this real listing: one sample off is a failure.
    const off = expectedBlocks(plan.blocks).map((b, i) =>
      i === 0 ? { ...b, numSamples: b.numSamples! + 1 } : b,
    );
    const bad = compareBlocks(off, target.blocks, target.health.blocksLoaded);
    assert.equal(bad.ok, false);
    assert.match(bad.summary, new RegExp(`${ulids[0]} numSamples: plan [\\d,]+, target [\\d,]+`));
    console.log(`    verification: ${v.summary}`);
  });

  it("item 4: blocks the target compacted further are found by their sources, with their samples", async () => {
    const expected: BlockMeta[] = blockUlids(hist12).map((u) =>
      parseBlockMeta(JSON.parse(fs.readFileSync(path.join(hist12, u, "meta.json"), "utf8"))),
    );
    // The reload loop loads them within a minute and compacts them right after.
    await waitFor("target C to compact the imported blocks", 180_000, async () =>
      (await probe(tgtC)).blocks.some((b) => b.compaction.level > 1) ? true : undefined,
    );
    const r = await counts(tgtC, [], {
      PTM_WAIT_LOADED_MS: String(Math.min(...expected.map((b) => b.minTime))),
      PTM_LIST_BLOCKS: "true",
      PTM_WAIT_SECONDS: "150",
    });
    assert.equal(r.code, 0, r.stderr);
    const listed = parseCounts(r.stdout);
    const c = compareBlocks(expectedBlocks(expected), listed.blocks!, listed.health.blocksLoaded);
    assert.equal(c.ok, true, c.summary);
    assert.ok(c.compacted.into >= 1 && c.compacted.blocks >= 2, c.summary);
    assert.match(
      c.summary,
      /^6 blocks: \d with IDs and sample\/series counts equal, \d compacted on the target with other imported blocks only into [0-9A-Z]{26}.* \(exactly their samples\); all loaded$/,
    );
    console.log(`    compacted: ${c.summary}`);
  });

  it("item 4: on Prometheus 2.26 too, the listing after the hot load equals the plan's blocks", async function () {
    if (!tgt226) this.skip();
    const r = await counts(tgt226!, [], {
      PTM_WAIT_LOADED_MS: String(Math.min(...plan.blocks.map((b) => b.minTime))),
      PTM_LIST_BLOCKS: "true",
      PTM_WAIT_SECONDS: "150",
    });
    assert.equal(r.code, 0, r.stderr);
    const listed = parseCounts(r.stdout);
    const c = compareBlocks(
      expectedBlocks(plan.blocks),
      listed.blocks!,
      listed.health.blocksLoaded,
    );
    assert.equal(c.ok, true, c.summary);
    assert.equal(c.equal, 2);
  });

  it("item 5: windows that hold no data on either server are no proof", async () => {
    // Window ends in seconds instead of ms (a plausible wiring slip): 1970, nothing there.
    const ends = windowsToCompare(plan, { targetEarliestMs: te }).map((e) => Math.floor(e / 1000));
    const [s, t] = await Promise.all([counts(src, ends), counts(tgt, ends)]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(t.code, 0, t.stderr);
    const v = verifyMigration({
      windowEnds: ends,
      source: parseCounts(s.stdout),
      target: parseCounts(t.stdout),
      targetEarliestMs: te,
    });
    assert.equal(v.ok, false);
    assert.equal(v.windowsCompared, 0);
    assert.equal(v.windowsEmptyOnBoth, ends.length);
    assert.match(v.summary, /no window holds source samples: \d+ of \d+ windows are empty on both/);
  });

  it("item 4: a block dir the server can't load fails the listing, naming the numbers", async () => {
    // A ULID dir with a meta.json and no index: every reload fails from now on.
    const broken = "01BBBBBBBBBBBBBBBBBBBBBBBB";
    assert.match(broken, ULID);
    const good = plan.blocks[0]!.ulid;
    fs.mkdirSync(path.join(tgtC.dataDir, broken));
    const m = JSON.parse(fs.readFileSync(path.join(src.dataDir, good, "meta.json"), "utf8")) as {
      ulid: string;
    };
    m.ulid = broken;
    fs.writeFileSync(path.join(tgtC.dataDir, broken, "meta.json"), JSON.stringify(m));
    const r = await counts(tgtC, [], { PTM_LIST_BLOCKS: "true", PTM_WAIT_SECONDS: "90" });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(
      r.stderr,
      /counts: ERROR: (\d+ block dirs in .* but prometheus_tsdb_blocks_loaded=\d+|prometheus_tsdb_reloads_failures_total rose from \d+ to \d+)/,
    );
  });
});
