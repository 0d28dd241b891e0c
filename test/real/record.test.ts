// Issue 9 item 8, on real servers: a later `pulumi up` verifies against the record taken at the
// install, because the live servers move on. Here the source's retention drops its oldest
// blocks after the migration (restarted with a short --storage.tsdb.retention.time): verified
// against the live source, the windows it deleted are left out (issue 20 row 13); against the
// record, every window is compared. The record goes through the same serialize/parse as the
// ConfigMap that keeps it in the state.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseProbe, ProbeResult } from "../../components/decisions/sidecarOutput";
import { planMigration } from "../../components/decisions/plan";
import { headRange, targetOwnEarliestMs } from "../../components/decisions/tsdb";
import {
  expectedBlocks,
  loadWaitEnv,
  parseCounts,
  verifyMigration,
  windowsToCompare,
} from "../../components/decisions/verify";
import { parseRecord, serializeRecord } from "../../components/decisions/verificationRecord";
import {
  H,
  Prom,
  backfill,
  killAll,
  mkTemp,
  runJson,
  runScript,
  sleep,
  startPrometheus,
} from "../support/real";

describe("real servers: later runs verify against the record taken at the install (issue 9 item 8)", function () {
  let root = "";
  let src: Prom;
  let tgt: Prom;

  const probe = async (p: Prom): Promise<ProbeResult> =>
    parseProbe(
      (await runJson<unknown>("probe", [], { env: { PTM_DATA: p.dataDir, PTM_PROM_URL: p.url } }))
        .res.stdout,
    );
  const counts = async (p: Prom, ends: number[], env: Record<string, string> = {}) => {
    const r = await runScript("counts", ends.map(String), {
      env: { PTM_PROM_URL: p.url, PTM_DATA: p.dataDir, PTM_WAIT_SECONDS: "150", ...env },
    });
    assert.equal(r.code, 0, r.stderr);
    return parseCounts(r.stdout);
  };

  before(async () => {
    root = mkTemp("ptm-record-");
    // Twelve hours of history in 2h blocks, ending at least 3h ago.
    const end = Math.floor((Date.now() - 4 * H) / (2 * H)) * 2 * H;
    const srcDir = path.join(root, "source", "data");
    backfill(path.join(root, "hist"), { startMs: end - 12 * H, endMs: end, series: 10, stepS: 60 });
    fs.mkdirSync(path.dirname(srcDir), { recursive: true });
    fs.renameSync(path.join(root, "hist"), srcDir);
    src = await startPrometheus({ dataDir: srcDir, scrape: (port) => [`127.0.0.1:${port}`] });
    tgt = await startPrometheus({
      dataDir: path.join(root, "target", "data"),
      scrape: () => [`127.0.0.1:${src.port}`],
    });
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("the source's retention drops its oldest blocks: the live check leaves those windows out, the record passes", async () => {
    await sleep(10_000); // the target's own samples, before anything is installed
    const [sp, tp] = await Promise.all([probe(src), probe(tgt)]);
    const te = targetOwnEarliestMs(tp)!;
    const plan = planMigration({
      sourceBlocks: sp.blocks,
      sourceHead: headRange(sp.tsdb),
      targetVersion: tp.buildinfo!.version,
      targetFlags: tp.flags ?? {},
      targetBlocks: tp.blocks,
      targetEarliestMs: te,
      includeHead: false,
      nowMs: tp.nowMs,
    });
    assert.ok(plan.blocks.length >= 2, JSON.stringify(plan.skipped));

    // Copy and install as copy.sh and install.sh do: staged, then renamed into place.
    const staging = path.join(tgt.dataDir, "ptm-staging");
    fs.mkdirSync(staging, { recursive: true });
    for (const b of plan.blocks) {
      execFileSync("cp", ["-a", path.join(src.dataDir, b.ulid), path.join(staging, b.ulid)]);
      fs.renameSync(path.join(staging, b.ulid), path.join(tgt.dataDir, b.ulid));
    }
    const windowEnds = windowsToCompare(plan, { targetEarliestMs: te });
    const blocks = expectedBlocks(plan.blocks);
    const loadedDownToMs = Math.min(...plan.blocks.map((b) => b.minTime));

    // The record, as MigrationVerification takes it at the install.
    const record = parseRecord(
      serializeRecord({
        frozenAtMs: Date.now(),
        windowEnds,
        targetEarliestMs: te,
        loadedDownToMs,
        blocks,
        gapMs: plan.gapMs,
        source: await counts(src, windowEnds),
      }),
    );
    const target = await counts(tgt, record.windowEnds, loadWaitEnv(loadedDownToMs, blocks));
    const atInstall = verifyMigration({ ...record, target });
    assert.equal(atInstall.ok, true, atInstall.summary);

    // Later: the source runs with a 3h retention, which drops every block that ends more than
    // 3h before its newest.
    const oldest = Math.min(...sp.blocks.map((b) => b.minTime));
    await src.stop();
    src = await startPrometheus({
      dataDir: src.dataDir,
      scrape: (port) => [`127.0.0.1:${port}`],
      extraArgs: ["--storage.tsdb.retention.time=3h"],
    });
    const after = await probe(src);
    assert.ok(
      Math.min(...after.blocks.map((b) => b.minTime)) > oldest,
      "the source dropped its oldest blocks",
    );

    const liveSource = await counts(src, record.windowEnds);
    const laterTarget = await counts(tgt, record.windowEnds, loadWaitEnv(loadedDownToMs, blocks));
    const live = verifyMigration({ ...record, source: liveSource, target: laterTarget });
    // Issue 20 row 13: the windows the retention deleted are left out of the comparison
    // instead of differing (before, the live check failed: "source 0 target N (equal)").
    assert.doesNotMatch(live.summary, /differ/);
    assert.match(
      live.summary,
      /(\d+ windows? not compared with the source|nothing was compared with the source): its retention deleted the data/,
    );
    const frozen = verifyMigration({ ...record, target: laterTarget });
    assert.equal(frozen.ok, true, frozen.summary);
    console.log(`    live: ${live.summary.slice(0, 160)}`);
    console.log(`    record: ${frozen.summary}`);
  });
});
