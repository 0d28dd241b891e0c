// The version matrix (issue 12): real servers of different Prometheus versions, the real
// sidecar scripts, source -> target:
//   2.42 -> 3.13 LTS   (the common upgrade; the source scrapes native histograms behind
//                       --enable-feature=native-histograms)
//   3.13 LTS -> 3.16   (3.x -> 3.x; scrape_native_histograms: true; UTF-8 metric and label
//                       names scraped from a text exposition)
//   2.26 -> 3.13 LTS   (BKPR's version straight to 3.x)
// Each source holds backfilled history (promtool, several blocks) and live-scraped data,
// native histograms included: every source and target also scrapes a third server, a 3.13
// Prometheus that serves native histograms on its /metrics. The snapshot includes the head
// (admin API), so the copied blocks hold those histograms; the targets start later and scrape
// the same targets. The plan passes the version gate, the blocks hot-load, and the
// per-window counts (all samples, and native histogram samples) are equal up to the target's
// first own sample. Binaries: test/real/build-prometheus-3.sh and build-prometheus-2.26.sh
// (cached in /var/cache/ptm); a pair whose binary is missing is skipped (pending: a failure
// of the real level under CI).

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { checkBlockFormats } from "../../components/decisions/blockFormat";
import { Plan, planMigration } from "../../components/decisions/plan";
import { planInput } from "../../components/decisions/planInput";
import { BlockMeta, ProbeResult, parseProbe } from "../../components/decisions/sidecarOutput";
import { headRange } from "../../components/decisions/tsdb";
import {
  CountsResult,
  Verification,
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
  queryValue,
  runJson,
  runScript,
  selfMetric,
  sleep,
  startPrometheus,
  startRsyncd,
  waitFor,
  takeSnapshot,
} from "../support/real";

const CACHE = process.env["PTM_CACHE"] ?? "/var/cache/ptm";
const bin = (v: string) => path.join(CACHE, `prometheus-${v}`, "bin", "prometheus");
/**
 * The 3.x LTS (3.13 is LTS until July 2027) and the newest 3.x: the two lines of
 * test/real/prometheus-3-versions, which CI builds (.ci/run).
 */
const [LTS, NEWEST] = fs
  .readFileSync(path.join(__dirname, "prometheus-3-versions"), "utf8")
  .split("\n")
  .filter((l) => /^3\.\d+\.\d+$/.test(l.trim()))
  .map((l) => l.trim()) as [string, string];

interface Side {
  version: string;
  binary: string;
  /** How this version is told to scrape native histograms. */
  native: { global?: Record<string, string>; extraArgs?: string[] };
}

const side = (version: string): Side => {
  const major = Number(version.split(".")[0]);
  return {
    version,
    binary: version === "2.42.0" ? "prometheus" : bin(version),
    native:
      major >= 3
        ? // 3.x: a scrape config setting (docs/configuration/configuration.md); the old
          // feature flag is a no-op there.
          { global: { scrape_native_histograms: "true" } }
        : version === "2.26.0"
          ? {} // no native histograms before 2.40
          : { extraArgs: ["--enable-feature=native-histograms"] },
  };
};

const available = (s: Side): boolean =>
  s.binary === "prometheus" ? true : fs.existsSync(s.binary);

/** A text exposition with UTF-8 metric and label names (3.x quoted syntax). */
const UTF8_METRICS = [
  '# HELP "ptm.utf8.requests" UTF-8 names allowed from 3.0',
  '# TYPE "ptm.utf8.requests" counter',
  '{"ptm.utf8.requests", "path.name"="/a,b", code="200"} 7',
  '{"ptm.utf8.requests", "path.name"="/c", code="500"} 1',
  '{"ptm.odd, \\"name\\" ü"} 3',
  "",
].join("\n");

/** Who owns the snapshot (snapshot.sh records it): a stack and a migration id. */
const OWNER = { PTM_STACK_ID: "ptm-real-versions", PTM_MIGRATION_ID: "matrix" };

export interface MatrixRow {
  pair: string;
  blocks: number;
  samples: number;
  histogramSamples: number;
  gapMs: number;
  result: string;
}
export const matrix: MatrixRow[] = [];

function pairSuite(srcVersion: string, tgtVersion: string, opts: { utf8?: boolean } = {}): void {
  const S = side(srcVersion);
  const T = side(tgtVersion);
  const X = side(LTS);
  const pair = `${srcVersion} -> ${tgtVersion}`;

  describe(`version matrix ${pair}`, function () {
    const password = randomBytes(12).toString("hex");
    let root = "";
    let exporter: Prom;
    let src: Prom;
    let tgt: Prom;
    let utf8Server: http.Server | undefined;
    let utf8Target = "";
    let snapBlocks: BlockMeta[] = [];
    let srcProbe: ProbeResult;
    let tgtProbe: ProbeResult;
    let plan: Plan;
    let te = 0;
    let rsyncUrl = "";
    let verification: Verification;
    let srcCounts: CountsResult;
    let tgtCounts: CountsResult;
    const SNAP = "ptm-matrix";

    const probe = async (p: Prom, snapshot?: string): Promise<ProbeResult> =>
      parseProbe(
        (
          await runJson<unknown>("probe", [], {
            env: {
              PTM_DATA: p.dataDir,
              PTM_PROM_URL: p.url,
              ...(snapshot ? { PTM_SNAPSHOT: snapshot } : {}),
            },
          })
        ).res.stdout,
      );

    before(async function () {
      const missing = [S, T, X].filter((s) => !available(s)).map((s) => s.binary);
      if (missing.length > 0) {
        console.error(
          `    (skipped: ${[...new Set(missing)].join(", ")} not built; run test/real/build-prometheus-3.sh / build-prometheus-2.26.sh)`,
        );
        this.skip();
      }
      root = mkTemp("ptm-matrix-");
      // A third server that serves native histograms on /metrics (3.x instruments its HTTP
      // handlers with native histograms): what both servers scrape besides the source.
      exporter = await startPrometheus({
        binary: X.binary,
        dataDir: path.join(root, "exporter", "data"),
        scrape: (port) => [`127.0.0.1:${port}`],
        intervalS: 5,
      });
      const jobs: [string, string[]][] = [["exporter", [`127.0.0.1:${exporter.port}`]]];
      if (opts.utf8) {
        const port = await freePort();
        utf8Server = http.createServer((_req, res) => {
          res.setHeader(
            "Content-Type",
            "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
          );
          res.end(UTF8_METRICS);
        });
        await new Promise<void>((r) => utf8Server!.listen(port, "127.0.0.1", r));
        utf8Target = `127.0.0.1:${port}`;
        jobs.push(["utf8", [utf8Target]]);
      }

      // History: 2h blocks from promtool, ending on a 2h boundary at least 3h ago.
      const end = Math.floor((Date.now() - 3 * H) / (2 * H)) * 2 * H;
      const srcDir = path.join(root, "source", "data");
      backfill(path.join(root, "bf"), { startMs: end - 12 * H, endMs: end, series: 40, stepS: 30 });
      fs.mkdirSync(path.dirname(srcDir), { recursive: true });
      fs.renameSync(path.join(root, "bf"), srcDir);
      src = await startPrometheus({
        binary: S.binary,
        dataDir: srcDir,
        scrape: (port) => [`127.0.0.1:${port}`],
        adminApi: true,
        jobs,
        ...(S.native.global ? { global: S.native.global } : {}),
        ...(S.native.extraArgs ? { extraArgs: S.native.extraArgs } : {}),
      });
      await sleep(15_000); // the source scrapes (histograms too) before the target starts
      tgt = await startPrometheus({
        binary: T.binary,
        dataDir: path.join(root, "target", "data"),
        scrape: () => [`127.0.0.1:${src.port}`],
        jobs,
        ...(T.native.global ? { global: T.native.global } : {}),
        ...(T.native.extraArgs ? { extraArgs: T.native.extraArgs } : {}),
      });
      await waitFor("the target's own samples", 60_000, async () =>
        headRange((await probe(tgt)).tsdb) ? true : undefined,
      );
      await sleep(10_000);
      const rsyncd = await startRsyncd(srcDir, password, path.join(root, "rsyncd"));
      rsyncUrl = `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${SNAP}`;
    });

    after(async function () {
      await killAll();
      utf8Server?.close();
      if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
    });

    it("the servers run the versions of the pair and scrape native histograms", async () => {
      srcProbe = await probe(src);
      tgtProbe = await probe(tgt);
      assert.equal(srcProbe.buildinfo?.version.replace(/\+.*/, ""), srcVersion);
      assert.equal(tgtProbe.buildinfo?.version.replace(/\+.*/, ""), tgtVersion);
      // histogram_count() has a value only for native histogram samples.
      const hist = (p: Prom) =>
        queryValue(
          p.url,
          'count(histogram_count(prometheus_http_request_duration_seconds{job="exporter"}))',
        );
      if (srcVersion !== "2.26.0")
        assert.ok((await hist(src)) > 0, "the source holds native histograms");
      assert.ok((await hist(tgt)) > 0, "the target scrapes native histograms");
    });

    it("snapshot with the head; the plan passes the version gate with no gap", async () => {
      const { json } = await takeSnapshot({
        env: {
          PTM_DATA: src.dataDir,
          PTM_SNAPSHOT: SNAP,
          ...OWNER,
          PTM_PROM_URL: src.url,
          PTM_INCLUDE_HEAD: "true",
        },
      });
      assert.ok(json.blocks.length > 1);
      srcProbe = await probe(src, SNAP);
      tgtProbe = await probe(tgt);
      snapBlocks = srcProbe.snapshotBlocks;
      for (const b of snapBlocks) {
        assert.equal(b.version, 1, `${b.ulid} meta.json version`);
        assert.equal(
          b.indexFormat,
          2,
          `${b.ulid} index format (every release up to 3.16 writes 2)`,
        );
      }
      const input = planInput(snapBlocks, srcProbe, tgtProbe, true);
      te = input.targetEarliestMs!;
      plan = planMigration(input);
      assert.equal(plan.formats.ok, true, plan.formats.message);
      assert.equal(plan.overlapRule, "merged-by-compaction");
      assert.equal(plan.blocks.length, snapBlocks.length);
      assert.equal(plan.gapMs, 0, plan.advice);
      // The head block a 3.x source writes says how many histogram samples it holds.
      if (Number(srcVersion.split(".")[0]) >= 3) {
        assert.ok(
          snapBlocks.some((b) => (b.stats?.numHistogramSamples ?? 0) > 0),
          "the head block's meta.json counts native histogram samples",
        );
        // ... and the gate refuses them for a release that can't read histograms.
        const old = checkBlockFormats(snapBlocks, "2.26.0", input.writer!);
        assert.equal(old.ok, false);
        assert.ok(
          old.refused.some((r) =>
            /holds native histograms \(meta.json: \d+ histogram samples\), read only by 2\.40\.0/.test(
              r.reason,
            ),
          ),
          old.message,
        );
      }
    });

    it("copy.sh and install.sh; the target hot-loads every block without a restart", async () => {
      const started = await selfMetric(tgt.url, "process_start_time_seconds");
      const ulids = plan.blocks.map((b) => b.ulid);
      const copy = await runJson<{ copied: number }>("copy", ulids, {
        env: { PTM_DATA: tgt.dataDir, PTM_RSYNC_URL: rsyncUrl, RSYNC_PASSWORD: password },
      });
      assert.equal(copy.json.copied, ulids.length);
      const inst = await runJson<{ installed: number }>("install", ulids, {
        env: { PTM_DATA: tgt.dataDir },
      });
      assert.equal(inst.json.installed, ulids.length);
      for (const u of ulids) assert.ok(fs.existsSync(path.join(tgt.dataDir, u, "meta.json")), u);

      const ends = windowsToCompare(plan, { targetEarliestMs: te });
      const [s, t] = await Promise.all([
        runScript("counts", ends.map(String), { env: { PTM_PROM_URL: src.url } }),
        runScript("counts", ends.map(String), {
          env: {
            PTM_PROM_URL: tgt.url,
            PTM_DATA: tgt.dataDir,
            PTM_WAIT_LOADED_MS: String(Math.min(...plan.blocks.map((b) => b.minTime))),
            PTM_LIST_BLOCKS: "true",
            PTM_WAIT_SECONDS: "180",
          },
        }),
      ]);
      assert.equal(s.code, 0, s.stderr);
      assert.equal(t.code, 0, t.stderr);
      srcCounts = parseCounts(s.stdout);
      tgtCounts = parseCounts(t.stdout);
      verification = verifyMigration({
        windowEnds: ends,
        source: srcCounts,
        target: tgtCounts,
        targetEarliestMs: te,
        blocks: expectedBlocks(plan.blocks),
        gapMs: plan.gapMs,
      });
      assert.equal(await selfMetric(tgt.url, "process_start_time_seconds"), started);
      assert.equal(await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total"), 0);
      assert.equal(verification.ok, true, verification.summary);
      console.log(`    verification ${pair}: ${verification.summary}`);
    });

    it("native histogram samples per window: the target's equal the source's", async () => {
      const equalWindows = verification.windows.filter((w) => w.rule === "equal" && !w.empty);
      assert.ok(equalWindows.length > 0);
      if (srcVersion === "2.26.0") {
        assert.equal(verification.histogramsCompared, 0, "2.26 has no native histograms");
      } else {
        assert.ok(
          verification.histogramsCompared > 0,
          `histogram samples compared: ${verification.histogramsCompared}`,
        );
      }
      // Window by window, and for the busiest window against the raw samples: the range
      // vector {__name__=~".+"}[w] returns floats as "values" and native histograms as
      // "histograms", so this count does not depend on how counts.sh finds histograms.
      const tw = new Map(tgtCounts.windows.map((w) => [w.endMs, w]));
      for (const w of equalWindows) {
        const sw = srcCounts.windows.find((x) => x.endMs === w.endMs)!;
        assert.equal(tw.get(w.endMs)?.histograms, sw.histograms, `window ${w.endMs}`);
      }
      const busiest = [...srcCounts.windows]
        .filter((w) => equalWindows.some((e) => e.endMs === w.endMs))
        .sort((a, b) => (b.histograms ?? 0) - (a.histograms ?? 0))[0]!;
      const raw = async (p: Prom, version: string) => {
        const range = Number(version.split(".")[0]) >= 3 ? 2 * H : 2 * H - 1;
        const q = new URLSearchParams({
          query: `{__name__=~".+"}[${range}ms]`,
          time: ((busiest.endMs - 1) / 1000).toFixed(3),
        });
        const body = JSON.parse(await httpText(`${p.url}/api/v1/query?${q}`)) as {
          data: { result: { values?: unknown[]; histograms?: unknown[] }[] };
        };
        let floats = 0;
        let hists = 0;
        for (const r of body.data.result) {
          floats += r.values?.length ?? 0;
          hists += r.histograms?.length ?? 0;
        }
        return { floats, hists };
      };
      const [rs, rt] = await Promise.all([raw(src, srcVersion), raw(tgt, tgtVersion)]);
      assert.equal(
        rs.hists,
        busiest.histograms,
        "counts.sh's histograms = the raw histogram samples (source)",
      );
      assert.equal(
        rs.floats + rs.hists,
        busiest.count,
        "counts.sh's count = all raw samples (source)",
      );
      assert.deepEqual(rt, rs, "the target holds the same raw samples in that window");
      matrix.push({
        pair,
        blocks: plan.blocks.length,
        samples: verification.samplesCompared,
        histogramSamples: verification.histogramsCompared,
        gapMs: plan.gapMs,
        result: verification.ok ? "ok" : "FAILED",
      });
    });

    if (opts.utf8) {
      it("UTF-8 metric and label names are counted on both (quoted-name exposition, JSON-escaped names)", async () => {
        // Both servers scraped the UTF-8 target: the names are in the label values API.
        const names = await fetch(`${tgt.url}/api/v1/label/__name__/values`).then(
          (r) => r.json() as Promise<{ data: string[] }>,
        );
        assert.ok(names.data.includes("ptm.utf8.requests"), JSON.stringify(names.data));
        assert.ok(names.data.includes('ptm.odd, "name" ü'), JSON.stringify(names.data));
        // One window over the last minute, with a selector narrowed to the UTF-8 job; the
        // same count computed here name by name (JSON.stringify gives a valid PromQL string).
        const end = Date.now() - 5_000;
        const one = async (p: Prom) => {
          const r = await runJson<{ windows: { count: number }[] }>("counts", [String(end)], {
            env: { PTM_PROM_URL: p.url, PTM_WINDOW: "60s", PTM_SELECTOR: '{job="utf8"}' },
            // The target's under busybox (awk, wget), as in a sidecar image.
            busybox: p === tgt,
          });
          return r.json.windows[0]!.count;
        };
        const byHand = async (p: Prom) => {
          const q = new URLSearchParams({ "match[]": '{job="utf8"}' });
          const body = (await fetch(`${p.url}/api/v1/label/__name__/values?${q}`).then((r) =>
            r.json(),
          )) as { data: string[] };
          let n = 0;
          for (const name of body.data) {
            n += await queryValue(
              p.url,
              `sum(count_over_time({__name__=${JSON.stringify(name)}, job="utf8"}[60000ms]))`,
              end - 1,
            );
          }
          return { n, names: body.data };
        };
        for (const p of [src, tgt]) {
          const [counted, hand] = await Promise.all([one(p), byHand(p)]);
          assert.ok(hand.names.includes('ptm.odd, "name" ü'), JSON.stringify(hand.names));
          assert.ok(hand.n > 0);
          assert.equal(
            counted,
            hand.n,
            `counts.sh vs by hand on ${p.url} (${hand.names.join(" | ")})`,
          );
        }
        // The quoted 3.x selector syntax selects the same series the program's form does.
        const quoted = await queryValue(src.url, 'count({"ptm.utf8.requests"})');
        assert.equal(quoted, 2);
        const label = await queryValue(src.url, 'count({"ptm.utf8.requests", "path.name"="/a,b"})');
        assert.equal(label, 1);
      });
    }
  });
}

// A downgrade the formats allow: blocks written by the newest 3.x (its promtool and its
// compactor: float samples only, index format 2, meta.json with the float/histogram split)
// into a running 2.42. The snapshot skips the head (the source's live head holds native
// histograms written by 3.x, which the gate would refuse for 2.42).
describe(`version matrix ${NEWEST} -> 2.42.0 (downgrade, floats only)`, function () {
  const password = randomBytes(12).toString("hex");
  const S = side(NEWEST);
  const pair = `${NEWEST} -> 2.42.0`;
  let root = "";
  let src: Prom;
  let tgt: Prom;
  const SNAP = "ptm-downgrade";

  before(async function () {
    if (!available(S)) {
      console.error(`    (skipped: ${S.binary} not built; run test/real/build-prometheus-3.sh)`);
      this.skip();
    }
    root = mkTemp("ptm-downgrade-");
    const end = Math.floor((Date.now() - 3 * H) / (2 * H)) * 2 * H;
    const srcDir = path.join(root, "source", "data");
    backfill(path.join(root, "bf"), {
      startMs: end - 12 * H,
      endMs: end,
      series: 40,
      stepS: 30,
      promtool: path.join(path.dirname(S.binary), "promtool"),
    });
    fs.mkdirSync(path.dirname(srcDir), { recursive: true });
    fs.renameSync(path.join(root, "bf"), srcDir);
    src = await startPrometheus({
      binary: S.binary,
      dataDir: srcDir,
      scrape: (port) => [`127.0.0.1:${port}`],
    });
    tgt = await startPrometheus({
      dataDir: path.join(root, "target", "data"),
      scrape: () => [`127.0.0.1:${src.port}`],
    });
    await sleep(10_000);
  });

  after(async function () {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("the gate allows it; 2.42 hot-loads the 3.x blocks and counts every sample", async () => {
    await runJson("snapshot", [], {
      env: { PTM_DATA: src.dataDir, PTM_SNAPSHOT: SNAP, ...OWNER },
    });
    const probe = async (p: Prom, snapshot?: string) =>
      parseProbe(
        (
          await runJson<unknown>("probe", [], {
            env: {
              PTM_DATA: p.dataDir,
              PTM_PROM_URL: p.url,
              ...(snapshot ? { PTM_SNAPSHOT: snapshot } : {}),
            },
          })
        ).res.stdout,
      );
    const [sp, tp] = await Promise.all([probe(src, SNAP), probe(tgt)]);
    const blocks = sp.snapshotBlocks;
    assert.ok(blocks.length > 0);
    for (const b of blocks) {
      assert.equal(b.indexFormat, 2);
      assert.equal(b.stats?.numFloatSamples, b.stats?.numSamples, "3.x writes the split");
    }
    const input = planInput(blocks, sp, tp, false);
    const plan = planMigration(input);
    assert.equal(plan.formats.ok, true, plan.formats.message);
    const rsyncd = await startRsyncd(src.dataDir, password, path.join(root, "rsyncd"));
    const ulids = plan.blocks.map((b) => b.ulid);
    await runJson("copy", ulids, {
      env: {
        PTM_DATA: tgt.dataDir,
        PTM_RSYNC_URL: `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${SNAP}`,
        RSYNC_PASSWORD: password,
      },
    });
    await runJson("install", ulids, { env: { PTM_DATA: tgt.dataDir } });
    const te = input.targetEarliestMs!;
    const ends = windowsToCompare(plan, { targetEarliestMs: te });
    const [s, t] = await Promise.all([
      runScript("counts", ends.map(String), { env: { PTM_PROM_URL: src.url } }),
      runScript("counts", ends.map(String), {
        env: {
          PTM_PROM_URL: tgt.url,
          PTM_DATA: tgt.dataDir,
          PTM_WAIT_LOADED_MS: String(Math.min(...plan.blocks.map((b) => b.minTime))),
          PTM_LIST_BLOCKS: "true",
        },
      }),
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(t.code, 0, t.stderr);
    const v = verifyMigration({
      windowEnds: ends,
      source: parseCounts(s.stdout),
      target: parseCounts(t.stdout),
      targetEarliestMs: te,
      blocks: expectedBlocks(plan.blocks),
      gapMs: plan.gapMs,
    });
    assert.equal(v.ok, true, v.summary);
    assert.equal(await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total"), 0);
    console.log(`    verification ${pair}: ${v.summary}`);
    matrix.push({
      pair,
      blocks: plan.blocks.length,
      samples: v.samplesCompared,
      histogramSamples: v.histogramsCompared,
      gapMs: plan.gapMs,
      result: v.ok ? "ok" : "FAILED",
    });
  });
});

pairSuite("2.42.0", LTS);
pairSuite(LTS, NEWEST, { utf8: true });
pairSuite("2.26.0", LTS);

after(() => {
  if (matrix.length === 0) return;
  console.log("\n    version pair        blocks  samples  histogram samples     gap  result");
  for (const r of matrix) {
    console.log(
      `    ${r.pair.padEnd(18)}  ${String(r.blocks).padStart(6)}  ${String(r.samples).padStart(7)}  ${String(r.histogramSamples).padStart(17)}  ${`${Math.round(r.gapMs / 1000)}s`.padStart(6)}  ${r.result}`,
    );
  }
  const out = process.env["PTM_MATRIX_OUT"];
  if (out) fs.writeFileSync(out, JSON.stringify(matrix, null, 2));
});
