// Real servers, real rsync daemon, real scripts: the migration end to end on
// loopback. One source Prometheus (backfilled history, compacted to several
// levels, plus live self-scraping) and two targets started later that scrape
// the same target: A migrates a skip_head snapshot (under busybox), B one with
// the head (admin API). The `it`s run in order and build on each other.
//
// What a 2h wait would be needed for is not covered: the source's live head
// is never compacted during the test (its "head" is the live-scraped part).

import * as assert from "node:assert/strict";
import { ChildProcess, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import {
  BlockMeta,
  CopyResult,
  parseProbe,
  ProbeResult,
} from "../../components/decisions/sidecarOutput";
import { Plan, planMigration } from "../../components/decisions/plan";
import { targetOwnEarliestMs, headRange } from "../../components/decisions/tsdb";
import { restartRisk } from "../../components/decisions/restartRisk";
import {
  CountsResult,
  DEFAULT_VERIFY_WINDOWS,
  compareCounts,
  expectedBlocks,
  parseCounts,
  verifyMigration,
  windowsToCompare,
} from "../../components/decisions/verify";
import {
  H,
  Prom,
  REPO,
  backfill,
  blockChecksums,
  busyboxPath,
  dirBytes,
  duBytes,
  killAll,
  mkTemp,
  planIntoEmpty242,
  runJson,
  runScript,
  selfMetric,
  sleep,
  startPrometheus,
  startRsyncd,
  waitFor,
  takeSnapshot,
} from "../support/real";

const SERIES = 200;
const STEP_S = 15;
const HOURS = 50;
const SNAP = "ptm-test";
const SNAP_HEAD = "ptm-test-head";
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

type SnapshotOut = Awaited<ReturnType<typeof takeSnapshot>>["json"];
// Counts: the scripts' stdout is kept in the Pulumi state (issue 14).
/** What copy.sh prints (counts), as the program parses it. */
type CopyOut = Required<CopyResult>;
interface InstallOut {
  installed: number;
  alreadyPresent: number;
}
/** The block dirs (ULIDs) in a dir, sorted. */
const blockDirs = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((n) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(n))
    .sort();

const timings: Record<string, number> = {};
async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = Date.now() - t;
  }
}

describe("real servers: snapshot -> copy -> install -> verify", function () {
  const password = randomBytes(12).toString("hex");
  let root = "";
  let srcDir = "";
  let level1Dir = "";
  let src: Prom;
  let tgtA: Prom;
  let tgtB: Prom;
  let rsyncUrl = (snap: string): string => snap;
  let backfillStart = 0;
  let backfillEnd = 0;
  let sourceStartMs = 0;
  let sumsBefore: ReturnType<typeof blockChecksums>;
  let snap: SnapshotOut;
  let snapHead: SnapshotOut;
  let probeA: ProbeResult;
  let probeB: ProbeResult;
  let teA = 0;
  let teB = 0;
  let planA: Plan;
  let planB: Plan;
  let loadedBefore = { a: 0, b: 0 };
  let startTime = { a: 0, b: 0 };
  let tmpfs = "";

  const probe = async (
    p: Prom,
    opts: { busybox?: boolean; snapshot?: string } = {},
  ): Promise<ProbeResult> => {
    const { res } = await runJson<unknown>("probe", [], {
      busybox: opts.busybox ?? false,
      env: {
        PTM_DATA: p.dataDir,
        PTM_PROM_URL: p.url,
        ...(opts.snapshot ? { PTM_SNAPSHOT: opts.snapshot } : {}),
      },
    });
    return parseProbe(res.stdout);
  };
  const copyEnv = (dataDir: string, snapName: string, extra: Record<string, string> = {}) => ({
    PTM_DATA: dataDir,
    PTM_RSYNC_URL: rsyncUrl(snapName),
    RSYNC_PASSWORD: password,
    PTM_PROGRESS_SECONDS: "2",
    ...extra,
  });

  before(async function () {
    root = mkTemp("ptm-real-");
    srcDir = path.join(root, "source", "data");
    level1Dir = path.join(root, "level1");
    const now = Date.now();
    // History ends on a 2h boundary at least 3h ago: nothing a head could hold.
    backfillEnd = Math.floor((now - 3 * H) / (2 * H)) * 2 * H;
    backfillStart = backfillEnd - HOURS * H;
    await timed("backfill", async () =>
      backfill(level1Dir, {
        startMs: backfillStart,
        endMs: backfillEnd,
        series: SERIES,
        stepS: STEP_S,
      }),
    );
    fs.mkdirSync(path.dirname(srcDir), { recursive: true });
    execFileSync("cp", ["-a", level1Dir, srcDir]);

    sourceStartMs = Date.now();
    src = await startPrometheus({
      dataDir: srcDir,
      scrape: (port) => [`127.0.0.1:${port}`],
      adminApi: true,
    });
    // The source compacts the backfilled 2h blocks into 6h/18h ones at start.
    await timed("source compaction", () =>
      waitFor("level > 1 blocks on the source", 120_000, async () => {
        const p = await probe(src);
        return p.blocks.some((b) => b.compaction.level > 1) ? true : undefined;
      }),
    );
    await sleep(5_000); // let it finish the compaction chain and scrape a bit

    // Targets start later, scraping the same target (the source's /metrics).
    const scrapeSource = (): string[] => [`127.0.0.1:${src.port}`];
    tgtA = await startPrometheus({
      dataDir: path.join(root, "targetA", "data"),
      scrape: scrapeSource,
    });
    tgtB = await startPrometheus({
      dataDir: path.join(root, "targetB", "data"),
      scrape: scrapeSource,
    });
    await waitFor("targets to hold own samples", 60_000, async () => {
      const [a, b] = await Promise.all([probe(tgtA), probe(tgtB)]);
      return headRange(a.tsdb) && headRange(b.tsdb) ? true : undefined;
    });
    // Let the targets scrape for a while: their first own samples must lie
    // well before the snapshots (the source scrapes every 2 s too).
    await sleep(10_000);
    startTime = {
      a: await selfMetric(tgtA.url, "process_start_time_seconds"),
      b: await selfMetric(tgtB.url, "process_start_time_seconds"),
    };

    const rsyncd = await startRsyncd(srcDir, password, path.join(root, "rsyncd"));
    rsyncUrl = (s: string) => `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${s}`;
    sumsBefore = blockChecksums(srcDir);
  });

  after(async function () {
    await killAll();
    if (tmpfs) {
      try {
        execFileSync("umount", [tmpfs]);
      } catch {
        /* not mounted */
      }
    }
    console.log(`    measurements: ${JSON.stringify(timings)}`);
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("has several compaction levels and no backfilled data in the last 3 hours", async () => {
    const p = await probe(src);
    const levels = new Set(p.blocks.map((b) => b.compaction.level));
    assert.ok(levels.size >= 2 && Math.max(...levels) >= 2, `levels ${[...levels]}`);
    assert.ok(Math.max(...p.blocks.map((b) => b.maxTime)) <= Date.now() - 3 * H);
    assert.equal(p.buildinfo?.version.startsWith("2.42"), true);
    assert.equal(p.flags?.["web.enable-admin-api"], "true");
  });

  it("probe.sh gives the same answer under busybox (no GNU tools on PATH)", async () => {
    const [gnu, bb] = await Promise.all([probe(src), probe(src, { busybox: true })]);
    assert.deepEqual(
      bb.blocks.map((b) => [b.ulid, b.sizeBytes]),
      gnu.blocks.map((b) => [b.ulid, b.sizeBytes]),
    );
    assert.equal(bb.buildinfo?.version, gnu.buildinfo?.version);
    assert.ok(bb.tsdb !== null && bb.dfAvailableBytes > 0);
  });

  it("snapshot.sh hard-links the blocks (~0 extra disk) and is idempotent", async () => {
    const duBefore = duBytes(srcDir);
    const { json, res } = await timed("snapshot (hard links)", () =>
      takeSnapshot({ env: { PTM_DATA: srcDir, PTM_SNAPSHOT: SNAP } }),
    );
    snap = json;
    const extra = duBytes(srcDir) - duBefore;
    const p = await probe(src);
    assert.deepEqual(snap.blocks.map((b) => b.ulid).sort(), p.blocks.map((b) => b.ulid).sort());
    assert.equal(snap.reused, false);
    // Only directory entries are new: a few KiB per block dir.
    assert.ok(extra < 64 * 1024 * (snap.blocks.length + 1), `snapshot used ${extra} bytes`);
    timings["snapshot extra bytes"] = extra;
    timings["snapshot bytes"] = snap.blocks.reduce((a, b) => a + (b.sizeBytes ?? 0), 0);
    assert.match(res.stderr, /hard-linked snapshot/);
    const again = await takeSnapshot({
      env: { PTM_DATA: srcDir, PTM_SNAPSHOT: SNAP },
    });
    assert.equal(again.json.reused, true);
    assert.equal(again.json.createdMs, snap.createdMs);
  });

  it("snapshot.sh with PTM_INCLUDE_HEAD uses the admin API and adds a head block", async () => {
    const { json } = await timed("snapshot (with head)", () =>
      takeSnapshot({
        env: {
          PTM_DATA: srcDir,
          PTM_SNAPSHOT: SNAP_HEAD,
          PTM_PROM_URL: src.url,
          PTM_INCLUDE_HEAD: "true",
        },
      }),
    );
    snapHead = json;
    assert.equal(snapHead.blocks.length, snap.blocks.length + 1);
    const head = snapHead.blocks.find((b) => !snap.blocks.some((s) => s.ulid === b.ulid));
    const newest = Math.max(...snap.blocks.map((b) => b.maxTime));
    assert.ok(head !== undefined, "a head block");
    // The block spans the head's range: from (about) the newest persisted
    // block up to the snapshot time.
    assert.ok(
      head.minTime >= newest - 2 * H && head.maxTime > Date.now() - 60_000,
      JSON.stringify({ head, newest, sourceStartMs }),
    );
  });

  it("copy.sh: a wrong rsync password is refused and nothing is staged", async () => {
    const dir = path.join(root, "wrongpw");
    fs.mkdirSync(dir);
    const res = await runScript("copy", [snap.blocks[0]!.ulid], {
      env: { ...copyEnv(dir, SNAP), RSYNC_PASSWORD: "wrong" },
    });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /auth failed/);
    assert.match(res.stderr, /cannot list the snapshot/);
    assert.deepEqual(
      fs.readdirSync(path.join(dir, "ptm-staging")).filter((n) => ULID.test(n)),
      [],
    );
  });

  it("copy.sh: a too-small target volume is refused before copying, with the numbers", async function () {
    if (process.getuid?.() !== 0) this.skip();
    tmpfs = path.join(root, "small");
    fs.mkdirSync(tmpfs);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", tmpfs]);
    const dir = path.join(tmpfs, "data");
    fs.mkdirSync(dir);
    const ulids = snap.blocks.map((b) => b.ulid);
    const total = snap.blocks.reduce((a, b) => a + (b.sizeBytes ?? 0), 0);
    assert.ok(total > 8 * 1024 * 1024, `test data must exceed the 8 MiB volume (is ${total})`);
    // Margin 0: the blocks alone do not fit.
    const res = await runScript("copy", ulids, {
      env: copyEnv(dir, SNAP, { PTM_FREE_MARGIN_BYTES: "0" }),
    });
    assert.equal(res.code, 3, res.stderr);
    const out = JSON.parse(res.stdout.trim().split("\n").pop()!) as {
      error: string;
      needBytes: number;
      availableBytes: number;
    };
    assert.equal(out.error, "insufficient-space");
    assert.equal(out.needBytes, total);
    assert.ok(out.availableBytes <= 8 * 1024 * 1024);
    assert.match(
      res.stderr,
      new RegExp(`need ${total} bytes .* available ${out.availableBytes} bytes`),
    );
    assert.deepEqual(
      fs.readdirSync(path.join(dir, "ptm-staging")).filter((n) => ULID.test(n)),
      [],
    );
  });

  it("plans: A (skip_head) leaves the gap up to its first scrape, B (head) none", async () => {
    [probeA, probeB] = await Promise.all([probe(tgtA), probe(tgtB)]);
    teA = targetOwnEarliestMs(probeA)!;
    teB = targetOwnEarliestMs(probeB)!;
    const srcProbe = await probe(src);
    const input = (blocks: BlockMeta[], t: ProbeResult, te: number, includeHead: boolean) => ({
      sourceBlocks: blocks,
      sourceHead: headRange(srcProbe.tsdb),
      targetVersion: t.buildinfo!.version,
      targetFlags: t.flags ?? {},
      targetBlocks: t.blocks,
      targetEarliestMs: te,
      includeHead,
      nowMs: t.nowMs,
    });
    planA = planMigration(input(snap.blocks, probeA, teA, false));
    planB = planMigration(input(snapHead.blocks, probeB, teB, true));
    const newest = Math.max(...snap.blocks.map((b) => b.maxTime));
    assert.equal(planA.blocks.length, snap.blocks.length);
    assert.equal(planA.cutoffMs, newest);
    assert.equal(planA.gapMs, teA - newest);
    assert.ok(planA.gapMs > 3 * H);
    assert.equal(planA.samples, SERIES * HOURS * (3600 / STEP_S));
    assert.equal(planB.gapMs, 0);
    assert.equal(planB.blocks.length, snapHead.blocks.length);
  });

  it("copy.sh + install.sh: A under busybox sh, B under sh; reruns skip everything", async () => {
    loadedBefore = {
      a: await selfMetric(tgtA.url, "prometheus_tsdb_blocks_loaded"),
      b: await selfMetric(tgtB.url, "prometheus_tsdb_blocks_loaded"),
    };
    const ulidsA = planA.blocks.map((b) => b.ulid);
    const ulidsB = planB.blocks.map((b) => b.ulid);
    const [ca, cb] = await timed("copy A and B", () =>
      Promise.all([
        runJson<CopyOut>("copy", ulidsA, { busybox: true, env: copyEnv(tgtA.dataDir, SNAP) }),
        runJson<CopyOut>("copy", ulidsB, { env: copyEnv(tgtB.dataDir, SNAP_HEAD) }),
      ]),
    );
    assert.equal(ca.json.copied, ulidsA.length);
    assert.deepEqual(blockDirs(path.join(tgtA.dataDir, "ptm-staging")), [...ulidsA].sort());
    assert.equal(ca.json.bytesTotal, planA.bytes);
    assert.equal(ca.json.bytesCopied, planA.bytes);
    // Progress: summed over the streams (1 by default in the script), no line per block.
    assert.match(ca.res.stderr, /copy: 1 stream ended after \d+ s: .* transferred in this run/);
    assert.match(ca.res.stderr, new RegExp(`copy: ${ulidsA.length} blocks copied and verified`));
    assert.doesNotMatch(ca.res.stderr, /[0-9A-HJKMNP-TV-Z]{26}/);
    assert.equal(cb.json.copied, ulidsB.length);
    const [ia, ib] = await Promise.all([
      runJson<InstallOut>("install", ulidsA, { busybox: true, env: { PTM_DATA: tgtA.dataDir } }),
      runJson<InstallOut>("install", ulidsB, { env: { PTM_DATA: tgtB.dataDir } }),
    ]);
    assert.equal(ia.json.installed, ulidsA.length);
    assert.equal(ib.json.installed, ulidsB.length);
    for (const [dir, ulids] of [
      [tgtA.dataDir, ulidsA],
      [tgtB.dataDir, ulidsB],
    ] as const)
      for (const u of ulids)
        assert.ok(fs.existsSync(path.join(dir, u, "meta.json")), `${u} installed`);
    // Reruns: nothing copied, nothing moved, nothing overwritten.
    const again = await runJson<CopyOut>("copy", ulidsA, { env: copyEnv(tgtA.dataDir, SNAP) });
    assert.equal(again.json.copied, 0);
    assert.equal(again.json.skipped, ulidsA.length);
    assert.equal(again.json.bytesReceived, 0);
    const iagain = await runJson<InstallOut>("install", ulidsA, {
      env: { PTM_DATA: tgtA.dataDir },
    });
    assert.equal(iagain.json.alreadyPresent, ulidsA.length);
    assert.equal(iagain.json.installed, 0);
  });

  it("the targets hot-load the blocks, without a restart", async () => {
    const oldest = (p: Plan) => Math.min(...p.blocks.map((b) => b.minTime));
    const counts = (p: Prom, plan: Plan) =>
      runJson<CountsResult>("counts", [], {
        env: {
          PTM_PROM_URL: p.url,
          PTM_WAIT_LOADED_MS: String(oldest(plan)),
          PTM_WAIT_SECONDS: "150",
        },
      });
    const [a, b] = await timed("hot load wait", () =>
      Promise.all([counts(tgtA, planA), counts(tgtB, planB)]),
    );
    for (const [name, r, t, before0, start] of [
      ["A", a.json, tgtA, loadedBefore.a, startTime.a],
      ["B", b.json, tgtB, loadedBefore.b, startTime.b],
    ] as const) {
      assert.ok(
        r.health.blocksLoaded > before0,
        `${name}: blocks loaded ${before0} -> ${r.health.blocksLoaded}`,
      );
      assert.equal(r.health.reloadFailures, 0);
      assert.equal(r.health.compactionsFailed, 0);
      assert.equal(t.child.exitCode, null, `${name} still running`);
      assert.equal(
        await selfMetric(t.url, "process_start_time_seconds"),
        start,
        `${name} never restarted`,
      );
    }
    assert.equal(tgtA.child.pid, tgtA.pid);
  });

  it("the destroy guard's restart_risk (sh) reads the real probe line as restartRisk.ts does (issue 9 item 12)", async () => {
    // probe.sh embeds each meta.json as Prometheus wrote it (indented, "key": value): the sh
    // rule once missed every block's maxTime on real output and called B's restart safe.
    const seen: string[] = [];
    for (const [name, t] of [
      ["A", tgtA],
      ["B", tgtB],
    ] as const) {
      const { res } = await runJson<unknown>("probe", [], {
        env: { PTM_DATA: t.dataDir, PTM_PROM_URL: t.url },
      });
      const line = res.stdout.trim().split("\n").pop()!;
      const p = parseProbe(line);
      const r = restartRisk(p.blocks, headRange(p.tsdb));
      const want = r ? `risk ${r.lossFromMs} ${r.lossToMs} ${r.safeAfterMs}` : "safe";
      for (const shell of ["sh", path.join(busyboxPath(), "sh")]) {
        const got = execFileSync(
          shell,
          ["-c", `. "${path.join(REPO, "components/cluster/lib.sh")}"; restart_risk`],
          { input: line + "\n" },
        )
          .toString()
          .trim();
        assert.equal(got, want, `${name} under ${shell}`);
      }
      seen.push(`${name}: ${want}`);
    }
    // B imported the source's head: its own head is older than that block, so a restart of B
    // would drop samples until its next compaction.
    assert.match(seen[1]!, /^B: risk /);
    console.log(`    ${seen.join("; ")}`);
  });

  it("every source sample before the cutoff is on the targets (equal counts per window)", async () => {
    // Every window (verifyWindows 0): counts.sh counts the whole copied range exactly.
    const cmp = async (t: Prom, plan: Plan, te: number) => {
      const ends = windowsToCompare(plan, { targetEarliestMs: te, maxWindows: 0 }).map(String);
      const [s, g] = await Promise.all([
        runJson<CountsResult>("counts", ends, { env: { PTM_PROM_URL: src.url } }),
        // Target A's counts run under busybox (wget --post-file, busybox awk).
        runJson<CountsResult>("counts", ends, {
          env: { PTM_PROM_URL: t.url },
          busybox: t === tgtA,
        }),
      ]);
      return { c: compareCounts(s.json.windows, g.json.windows, te), s: s.json };
    };
    const a = await cmp(tgtA, planA, teA);
    assert.ok(a.c.ok, a.c.summary);
    assert.ok(a.c.windows.every((w) => w.rule === "equal"));
    // The aligned windows cover the backfill but its last 2h exactly once;
    // the window ending at the cutoff holds that last 2h.
    const aligned = a.s.windows.filter((w) => w.endMs % (2 * H) === 0);
    assert.equal(
      aligned.reduce((n, w) => n + w.count, 0),
      SERIES * (HOURS - 2) * (3600 / STEP_S),
    );
    assert.equal(
      a.s.windows.find((w) => w.endMs === planA.cutoffMs)?.count,
      SERIES * 2 * (3600 / STEP_S),
    );
    const b = await cmp(tgtB, planB, teB);
    assert.ok(b.c.ok, b.c.summary);
    // The window ending at B's first own sample holds copied head data only.
    const headWin = b.c.windows.find((w) => w.endMs === teB);
    assert.ok(
      headWin !== undefined && headWin.rule === "equal" && headWin.source > 0,
      JSON.stringify(headWin),
    );
    timings["windows compared A"] = a.c.windowsCompared;
    timings["windows compared B"] = b.c.windowsCompared;
  });

  it("the verification as the program runs it: windows, samples, and the plan's blocks loaded with their stats", async () => {
    // Issue 9: what MigrationVerification does, on real output. The target lists its blocks
    // (PTM_LIST_BLOCKS) once every block dir is loaded; the plan's IDs, numSamples and
    // numSeries must be there (or inside a block the target compacted them into).
    const verify = async (t: Prom, plan: Plan, te: number) => {
      const ends = windowsToCompare(plan, { targetEarliestMs: te }).map(String);
      const [s, g] = await Promise.all([
        runJson<unknown>("counts", ends, { env: { PTM_PROM_URL: src.url } }),
        runJson<unknown>("counts", ends, {
          env: {
            PTM_PROM_URL: t.url,
            PTM_DATA: t.dataDir,
            PTM_WAIT_LOADED_MS: String(Math.min(...plan.blocks.map((b) => b.minTime))),
            PTM_LIST_BLOCKS: "true",
          },
          busybox: t === tgtA,
        }),
      ]);
      return verifyMigration({
        windowEnds: ends.map(Number),
        source: parseCounts(s.res.stdout),
        target: parseCounts(g.res.stdout),
        targetEarliestMs: te,
        blocks: expectedBlocks(plan.blocks),
        gapMs: plan.gapMs,
      });
    };
    const [a, b] = await Promise.all([verify(tgtA, planA, teA), verify(tgtB, planB, teB)]);
    for (const [name, v, plan] of [
      ["A", a, planA],
      ["B", b, planB],
    ] as const) {
      assert.equal(v.ok, true, `${name}: ${v.summary}`);
      assert.equal(v.blockCheck?.expected, plan.blocks.length);
      assert.match(
        v.summary,
        new RegExp(
          `^(\\d+ windows? equal \\([\\d,]+ samples\\)|no window equal)` +
            `(, \\d+ windows? at least the source's \\([\\d,]+ source samples; the target also scraped them itself\\))?` +
            `(; \\d+ empty on both \\(not counted\\))?; ` +
            `${plan.blocks.length} blocks: `,
        ),
      );
      console.log(`    verification ${name}: ${v.summary}`);
    }
    // Issue 14: at most verifyWindows' default (24) of the 26 windows of A's 50 hours are counted
    // (every one in the test above); each holds copied data only, 2h of every series, and the
    // first aligned window and the cutoff's are among them. Every block is checked regardless.
    const endsA = windowsToCompare(planA, { targetEarliestMs: teA });
    assert.equal(endsA.length, DEFAULT_VERIFY_WINDOWS);
    assert.equal(a.windowsCompared, endsA.length);
    assert.equal(a.samplesCompared, endsA.length * SERIES * 2 * (3600 / STEP_S));
    assert.ok(endsA.includes(planA.cutoffMs));
    assert.equal(a.blockCheck?.equal, planA.blocks.length);
  });

  it("the gap is what the plan says: A lacks exactly [cutoff, first scrape), B lacks nothing", async () => {
    // counts.sh with one window [cutoff, te) on each server.
    const gapCount = async (p: Prom, te: number) =>
      (
        await runJson<CountsResult>("counts", [String(te)], {
          env: { PTM_PROM_URL: p.url, PTM_WINDOW: `${te - planA.cutoffMs}ms` },
        })
      ).json.windows[0]!.count;
    const [onSource, onA, onSourceB, onB] = await Promise.all([
      gapCount(src, teA),
      gapCount(tgtA, teA),
      gapCount(src, teB),
      gapCount(tgtB, teB),
    ]);
    assert.ok(onSource > 0, "the source scraped during the gap");
    assert.equal(onA, 0, "target A has nothing in the gap");
    assert.equal(onB, onSourceB, "target B has every source sample up to its first scrape");
    timings["gap A ms"] = planA.gapMs;
    timings["gap A: source samples in the gap (missing on A)"] = onSource;
    timings["gap B: source samples before B's first scrape (all on B)"] = onSourceB;
  });

  it("a killed copy resumes without recopying finished files or blocks", async () => {
    const dir = path.join(root, "resume");
    fs.mkdirSync(dir);
    const ulids = planA.blocks.map((b) => b.ulid);
    const staging = path.join(dir, "ptm-staging");
    const total = planA.bytes;
    let child: ChildProcess | undefined;
    const first = runScript("copy", ulids, {
      env: copyEnv(dir, SNAP, { PTM_BWLIMIT: "2000" }),
      onSpawn: (c) => (child = c),
    });
    // Kill the whole process group (sh, rsync, awk) with SIGKILL, like a
    // dropped `kubectl exec`, once a third of the bytes are staged.
    await waitFor(
      "a third of the bytes staged",
      120_000,
      async () => (dirBytes(staging) > total / 3 ? true : undefined),
      100,
    );
    process.kill(-child!.pid!, "SIGKILL");
    const killed = await first;
    assert.equal(killed.signal, "SIGKILL");
    // Files complete before the kill: same name and size as in the snapshot.
    const snapDir = path.join(srcDir, "snapshots", SNAP);
    const finished = new Map<string, number>();
    for (const u of ulids) {
      for (const rel of [
        "index",
        "meta.json",
        "tombstones",
        ...fs.readdirSync(path.join(snapDir, u, "chunks")).map((c) => `chunks/${c}`),
      ]) {
        const p = path.join(staging, u, rel);
        if (
          fs.existsSync(p) &&
          fs.statSync(p).size === fs.statSync(path.join(snapDir, u, rel)).size
        )
          finished.set(p, fs.statSync(p).ino);
      }
    }
    const stagedBefore = dirBytes(staging);
    // The file in flight at the kill is a temp file that cannot be reused.
    const finishedBytes = [...finished.keys()].reduce((a, p) => a + fs.statSync(p).size, 0);
    assert.ok(finished.size > 0 && finishedBytes < total, `finished ${finishedBytes} of ${total}`);
    const { json } = await timed("resume rerun", () =>
      runJson<CopyOut>("copy", ulids, { env: copyEnv(dir, SNAP) }),
    );
    assert.equal(json.copied, ulids.length);
    // Only what was missing came over the wire (plus file lists/checksums).
    assert.ok(
      json.bytesReceived < total - finishedBytes + 256 * 1024,
      `rerun received ${json.bytesReceived}, finished before ${finishedBytes} of ${total}`,
    );
    // Files finished before the kill were not rewritten (rsync replaces a file by renaming a new one over it).
    for (const [p, ino] of finished) assert.equal(fs.statSync(p).ino, ino, `${p} was rewritten`);
    assert.equal(fs.readdirSync(path.join(staging, ".complete")).length, ulids.length);
    assert.ok(!fs.existsSync(path.join(staging, ".lock")), "lock released");
    // The staged copy is byte-identical to the snapshot (temp files of the killed run are gone).
    assert.deepEqual(blockChecksums(staging).files, blockChecksums(snapDir).files);
    // And a third run skips every block by its marker.
    const third = await runJson<CopyOut>("copy", ulids, { env: copyEnv(dir, SNAP) });
    assert.equal(third.json.skipped, ulids.length);
    assert.equal(third.json.bytesReceived, 0);
    timings["resume: files finished before kill"] = finished.size;
    timings["resume: bytes staged before kill (incl. the temp file in flight)"] = stagedBefore;
    timings["resume: bytes in files finished before kill"] = finishedBytes;
    timings["resume: bytes received on rerun"] = json.bytesReceived;
    timings["resume: bytes total"] = total;
  });

  it("a listing taken during a compaction yields no duplicated blocks", async () => {
    // The backfilled level-1 blocks next to the merged blocks the source made
    // of them: what a listing between "merged block written" and "parents
    // deleted" holds.
    const race = path.join(root, "race");
    execFileSync("cp", ["-a", level1Dir, race]);
    for (const b of snap.blocks) {
      if (!fs.existsSync(path.join(race, b.ulid)))
        execFileSync("cp", ["-al", path.join(srcDir, b.ulid), path.join(race, b.ulid)]);
    }
    const { res } = await runJson<unknown>("probe", [], {
      env: { PTM_DATA: race, PTM_PROM_URL: "http://127.0.0.1:1" },
    });
    const listing = parseProbe(res.stdout);
    assert.ok(listing.blocks.length > snap.blocks.length);
    const plan = planIntoEmpty242(listing.blocks);
    assert.deepEqual(plan.blocks.map((b) => b.ulid).sort(), snap.blocks.map((b) => b.ulid).sort());
    assert.equal(plan.samples, SERIES * HOURS * (3600 / STEP_S));
    // Every level-1 source is covered exactly once.
    const sources = plan.blocks.flatMap((b) => b.compaction.sources ?? [b.ulid]);
    assert.equal(new Set(sources).size, sources.length);
  });

  it("cleanup removes only the snapshots and the staging dir; source blocks unchanged", async () => {
    for (const s of [SNAP, SNAP_HEAD]) {
      await runJson("cleanup-source", [], { env: { PTM_DATA: srcDir, PTM_SNAPSHOT: s } });
      const again = await runJson<{ removed: string[] }>("cleanup-source", [], {
        env: { PTM_DATA: srcDir, PTM_SNAPSHOT: s },
      });
      assert.deepEqual(again.json.removed, []);
    }
    const bad = await runScript("cleanup-source", [], {
      env: { PTM_DATA: srcDir, PTM_SNAPSHOT: "../x" },
    });
    assert.notEqual(bad.code, 0);
    const after = blockChecksums(srcDir);
    assert.deepEqual(after.files, sumsBefore.files, "source block files unchanged");
    assert.deepEqual(
      after.top,
      sumsBefore.top.includes("snapshots")
        ? sumsBefore.top
        : [...sumsBefore.top, "snapshots"].sort(),
    );
    assert.deepEqual(fs.readdirSync(path.join(srcDir, "snapshots")), []);

    const t = await runJson<{ removed: string[] }>("cleanup-target", [], {
      env: { PTM_DATA: tgtA.dataDir },
    });
    assert.equal(t.json.removed.length, 1);
    assert.ok(
      fs.readdirSync(tgtA.dataDir).filter((n) => ULID.test(n)).length >= planA.blocks.length,
    );
    const t2 = await runJson<{ removed: string[] }>("cleanup-target", [], {
      env: { PTM_DATA: tgtA.dataDir },
    });
    assert.deepEqual(t2.json.removed, []);
    const refuse = await runScript("cleanup-target", [], {
      env: { PTM_DATA: tgtA.dataDir, PTM_STAGING: tgtA.dataDir },
    });
    assert.notEqual(refuse.code, 0);
  });
});
