// The pre-2.39 rule against a real Prometheus 2.26.0 target (BKPR's
// version), built by test/real/build-prometheus-2.26.sh. Skipped when that
// binary is not there.
//
// - The plan copies only blocks ending before the target's first sample and
//   skips the head block; the copied blocks hot-load and match the source.
// - Why the rule (and dedupe) matter: two overlapping blocks (what an
//   undeduped listing taken during a compaction gives) make 2.26 fail its
//   reload ("invalid block sequence"); observed: its compactor then merges
//   them. See the comment in the second test for the head case.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { BlockMeta, ProbeResult, parseProbe } from "../../components/decisions/sidecarOutput";
import { headRange, targetOwnEarliestMs } from "../../components/decisions/tsdb";
import { planMigration } from "../../components/decisions/plan";
import { CountsResult, compareCounts, windowsToCompare } from "../../components/decisions/verify";
import {
  H,
  Prom,
  backfill,
  killAll,
  mkTemp,
  runJson,
  selfMetric,
  sleep,
  startPrometheus,
  startRsyncd,
  waitFor,
  takeSnapshot,
} from "../support/real";

const BIN = path.join(
  process.env["PTM_CACHE"] ?? "/var/cache/ptm",
  "prometheus-2.26.0",
  "bin",
  "prometheus",
);

describe("pre-2.39 target (Prometheus 2.26.0): copy only what does not overlap", function () {
  const password = randomBytes(12).toString("hex");
  let root = "";
  let src: Prom;
  let tgt: Prom;
  let snapBlocks: BlockMeta[] = [];
  let url = "";

  const probe = async (p: Prom): Promise<ProbeResult> =>
    parseProbe(
      (await runJson<unknown>("probe", [], { env: { PTM_DATA: p.dataDir, PTM_PROM_URL: p.url } }))
        .res.stdout,
    );

  before(async function () {
    if (!fs.existsSync(BIN)) {
      console.error(`    (skipped: ${BIN} not built; run test/real/build-prometheus-2.26.sh)`);
      this.skip();
    }
    root = mkTemp("ptm-pre239-");
    const end = Math.floor((Date.now() - 3 * H) / (2 * H)) * 2 * H;
    const srcDir = path.join(root, "source", "data");
    backfill(path.join(root, "bf"), { startMs: end - 20 * H, endMs: end, series: 50, stepS: 30 });
    fs.mkdirSync(path.dirname(srcDir), { recursive: true });
    fs.renameSync(path.join(root, "bf"), srcDir);
    src = await startPrometheus({
      dataDir: srcDir,
      scrape: (port) => [`127.0.0.1:${port}`],
      adminApi: true,
    });
    await waitFor("source compaction", 60_000, async () =>
      (await probe(src)).blocks.some((b) => b.compaction.level > 1) ? true : undefined,
    );
    tgt = await startPrometheus({
      binary: BIN,
      dataDir: path.join(root, "target", "data"),
      scrape: () => [`127.0.0.1:${src.port}`],
    });
    await sleep(10_000);
    const rsyncd = await startRsyncd(srcDir, password, path.join(root, "rsyncd"));
    url = `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/ptm-head`;
    snapBlocks = (
      await takeSnapshot({
        env: {
          PTM_DATA: srcDir,
          PTM_SNAPSHOT: "ptm-head",
          PTM_PROM_URL: src.url,
          PTM_INCLUDE_HEAD: "true",
        },
      })
    ).json.blocks;
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("plans without the head block, copies, hot-loads, and every copied sample matches", async () => {
    const [sp, tp] = await Promise.all([probe(src), probe(tgt)]);
    assert.match(tp.buildinfo!.version, /^2\.26\./);
    const te = targetOwnEarliestMs(tp)!;
    const plan = planMigration({
      sourceBlocks: snapBlocks,
      sourceHead: headRange(sp.tsdb),
      targetVersion: tp.buildinfo!.version,
      targetFlags: tp.flags ?? {},
      targetBlocks: tp.blocks,
      targetEarliestMs: te,
      includeHead: true,
      nowMs: tp.nowMs,
    });
    assert.equal(plan.overlapAllowed, false);
    assert.equal(plan.blocks.length, snapBlocks.length - 1, "all but the head block");
    assert.equal(plan.skipped.length, 1);
    assert.match(plan.skipped[0]!.reason, /rejects overlapping blocks/);
    assert.equal(plan.gapMs, te - plan.cutoffMs);

    const ulids = plan.blocks.map((b) => b.ulid);
    const before = await selfMetric(tgt.url, "prometheus_tsdb_blocks_loaded");
    const env = { PTM_DATA: tgt.dataDir, PTM_RSYNC_URL: url, RSYNC_PASSWORD: password };
    await runJson("copy", ulids, { env });
    await runJson("install", ulids, { env: { PTM_DATA: tgt.dataDir } });
    const oldest = Math.min(...plan.blocks.map((b) => b.minTime));
    const loaded = await runJson<CountsResult>("counts", [], {
      env: { PTM_PROM_URL: tgt.url, PTM_WAIT_LOADED_MS: String(oldest), PTM_WAIT_SECONDS: "150" },
    });
    assert.ok(loaded.json.health.blocksLoaded > before);
    assert.equal(loaded.json.health.reloadFailures, 0);

    const ends = windowsToCompare(plan, { targetEarliestMs: te }).map(String);
    const [s, t] = await Promise.all([
      runJson<CountsResult>("counts", ends, { env: { PTM_PROM_URL: src.url } }),
      runJson<CountsResult>("counts", ends, { env: { PTM_PROM_URL: tgt.url } }),
    ]);
    const cmp = compareCounts(s.json.windows, t.json.windows, te);
    assert.ok(cmp.ok, cmp.summary);
  });

  it("an overlapping pair (merged block + a copy) fails 2.26's reload until its compactor merges them", async () => {
    // What copying an undeduped listing would do: a level-1 block next to
    // the merged block that contains it (fresh ULID, same data and range).
    const merged = fs
      .readdirSync(tgt.dataDir)
      .map((n) => path.join(tgt.dataDir, n, "meta.json"))
      .filter((m) => fs.existsSync(m))
      .map((m) => JSON.parse(fs.readFileSync(m, "utf8")) as BlockMeta)
      .find((b) => b.compaction.level > 1)!;
    assert.ok(merged !== undefined);
    const dup = "01ZZZZZZZZZZZZZZZZZZZZZZZZ".slice(0, 26);
    const tmp = path.join(tgt.dataDir, "ptm-dup-tmp");
    execFileSync("cp", ["-r", path.join(tgt.dataDir, merged.ulid), tmp]);
    const metaPath = path.join(tmp, "meta.json");
    const meta = JSON.parse(fs.readFileSync(metaPath, "utf8")) as Record<string, unknown>;
    meta["ulid"] = dup;
    fs.writeFileSync(metaPath, JSON.stringify(meta));
    const failures0 = await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total");
    fs.renameSync(tmp, path.join(tgt.dataDir, dup));
    await waitFor(
      "a failed reload",
      150_000,
      async () =>
        (await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total")) > failures0
          ? true
          : undefined,
      2_000,
    );
    const log = fs.readFileSync(tgt.logFile, "utf8");
    assert.match(log, /invalid block sequence: block time ranges overlap/);
    // Observed on 2.26: right after the failed reload its compactor merges
    // the overlapping pair (vertical compaction runs without the flag, only
    // loading is refused). A block overlapping the target's HEAD would not
    // heal that way: 2.26's compactHead (tsdb/db.go) removes the block it just
    // wrote when the reload fails and fails the compaction, every time, so
    // the head never shrinks (read in the source; not run here, it needs a
    // 3h head). That is the case the plan prevents.
    await waitFor(
      "the compactor to merge the pair",
      60_000,
      async () =>
        /Found overlapping blocks during compaction/.test(fs.readFileSync(tgt.logFile, "utf8"))
          ? true
          : undefined,
      1_000,
    );
    fs.rmSync(path.join(tgt.dataDir, dup), { recursive: true, force: true });
  });
});
