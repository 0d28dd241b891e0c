// install.sh on a pre-2.39 target (Prometheus 2.26.0, BKPR's version; built by
// test/real/build-prometheus-2.26.sh, skipped without it) whose own compactor has already
// merged an imported block X into a bigger block (issue 20 row 1b). A re-run of copy and
// install (prepare then migrate again, a program upgrade that re-creates the commands) stages
// X again; X's directory name is gone from the data dir, but its data is there, in the merged
// block's compaction.sources. Renaming X in would make an overlapping block, which 2.26 refuses
// at every reload and at the next start. install.sh must see X by lineage, leave it out, say
// so in its summary, and remove it from staging.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { BlockMeta, parseInstall } from "../../components/decisions/sidecarOutput";
import {
  H,
  Prom,
  backfill,
  killAll,
  mkTemp,
  runJson,
  runScript,
  selfMetric,
  startPrometheus,
  waitFor,
} from "../support/real";

const BIN = path.join(
  process.env["PTM_CACHE"] ?? "/var/cache/ptm",
  "prometheus-2.26.0",
  "bin",
  "prometheus",
);
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

interface InstallJson {
  installed: number;
  alreadyPresent: number;
  presentByLineage?: number;
  lineage?: { block: string; heldBy: string }[];
}

describe("install.sh refuses a block the target already holds by lineage (issue 20 row 1b, Prometheus 2.26.0)", function () {
  let root = "";
  let tgt: Prom;
  let staging = "";
  let x = "";
  let holder = "";

  const blocks = (dir: string): BlockMeta[] =>
    fs
      .readdirSync(dir)
      .filter((n) => ULID.test(n) && fs.existsSync(path.join(dir, n, "meta.json")))
      .map((n) => JSON.parse(fs.readFileSync(path.join(dir, n, "meta.json"), "utf8")) as BlockMeta);

  before(async function () {
    if (!fs.existsSync(BIN)) {
      console.error(`    (skipped: ${BIN} not built; run test/real/build-prometheus-2.26.sh)`);
      this.skip();
    }
    root = mkTemp("ptm-lineage-");
    const data = path.join(root, "target", "data");
    staging = path.join(data, "ptm-staging");
    // 22 h of 2 h blocks from an 18 h boundary, ending 3 h or more ago: 2.26's compactor
    // merges the first nine into three 6 h blocks, then those into one 18 h block (it leaves
    // the newest block alone). X, the first, is then in that block's compaction.sources but not
    // in its parents: 2.26 drops a staged block only when a loaded block names it as a parent.
    const start = Math.floor((Date.now() - 25 * H) / (18 * H)) * 18 * H;
    fs.mkdirSync(path.dirname(data), { recursive: true });
    backfill(data, { startMs: start, endMs: start + 22 * H, series: 20, stepS: 60 });
    x = blocks(data).sort((a, b) => a.minTime - b.minTime)[0]!.ulid;
    // X was imported once (it is in the data dir now) and is staged again, as a re-run of copy
    // leaves it: a complete copy and its marker.
    fs.mkdirSync(path.join(staging, ".complete"), { recursive: true });
    execFileSync("cp", ["-a", path.join(data, x), path.join(staging, x)]);
    fs.writeFileSync(path.join(staging, ".complete", x), "");
    tgt = await startPrometheus({
      binary: BIN,
      dataDir: data,
      scrape: (port) => [`127.0.0.1:${port}`],
    });
    // The target's compactor merges X into a level-3 block; X's own dir goes.
    holder = await waitFor("2.26 to compact X into a level-3 block", 150_000, async () => {
      const merged = blocks(data).find(
        (b) => b.compaction.level >= 3 && b.compaction.sources?.includes(x),
      );
      return merged !== undefined && !fs.existsSync(path.join(data, x)) ? merged.ulid : undefined;
    });
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("does not rename X in: present by lineage, naming the block that holds it; removed from staging; 2.26 reloads fine", async () => {
    const failures0 = await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total");
    const reloads0 = await selfMetric(tgt.url, "prometheus_tsdb_reloads_total");
    const { json, res } = await runJson<InstallJson>("install", [x], {
      env: { PTM_DATA: tgt.dataDir },
      busybox: true,
    });
    // The next periodic reload (every minute) reads the data dir as install.sh left it.
    await waitFor(
      "the target's next reload",
      150_000,
      async () =>
        (await selfMetric(tgt.url, "prometheus_tsdb_reloads_total")) > reloads0 ? true : undefined,
      2_000,
    );
    const failures = await selfMetric(tgt.url, "prometheus_tsdb_reloads_failures_total");
    const log = fs.readFileSync(tgt.logFile, "utf8");
    assert.equal(
      failures,
      failures0,
      `reload failures went from ${failures0} to ${failures}; install.sh said ${res.stdout}${res.stderr}; log:\n${log
        .split("\n")
        .filter((l) => /overlap/i.test(l))
        .join("\n")}`,
    );
    assert.doesNotMatch(log, /overlap/i);
    assert.ok(!fs.existsSync(path.join(tgt.dataDir, x)), "X not renamed in");

    assert.deepEqual(json, {
      installed: 0,
      alreadyPresent: 1,
      presentByLineage: 1,
      lineage: [{ block: x, heldBy: holder }],
    });
    assert.match(res.stderr, new RegExp(`${x}: already in ${holder}`));
    const parsed: InstallJson = parseInstall(res.stdout, [x]);
    assert.equal(parsed.installed, 0);
    assert.equal(parsed.alreadyPresent, 1);
    assert.equal(parsed.presentByLineage, 1);
    assert.ok(!fs.existsSync(path.join(staging, x)), "removed from staging");
    assert.ok(!fs.existsSync(path.join(staging, ".complete", x)), "its marker too");

    // Install again (the same command re-run): still present by lineage, not a failure.
    const again = await runJson<InstallJson>("install", [x], { env: { PTM_DATA: tgt.dataDir } });
    const parsedAgain: InstallJson = parseInstall(again.res.stdout, [x]);
    assert.equal(parsedAgain.presentByLineage, 1);
  });
});

// The same rule on constructed meta.json files (no server): a merged block whose sources are
// all in the target (spread over two of its blocks) is present; one that shares only some is
// refused, and nothing is installed.
describe("install.sh lineage rule on a merged staged block (no server)", function () {
  let root = "";
  after(() => {
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  const u = (c: string, i: number): string => `01${c.repeat(23)}${i}`;
  // Prometheus writes meta.json indented, sources one per line.
  const meta = (ulid: string, sources: string[]): string =>
    JSON.stringify(
      { ulid, minTime: 0, maxTime: 1, stats: {}, compaction: { level: 2, sources }, version: 1 },
      null,
      "\t",
    );
  const block = (dir: string, ulid: string, sources: string[]): void => {
    fs.mkdirSync(path.join(dir, ulid), { recursive: true });
    fs.writeFileSync(path.join(dir, ulid, "meta.json"), meta(ulid, sources));
  };

  for (const busybox of [false, true]) {
    it(`all sources held -> present by lineage; some held -> refused${busybox ? " (busybox)" : ""}`, async () => {
      root ||= mkTemp("ptm-lineage-rule-");
      const data = path.join(root, busybox ? "bb" : "sh");
      const staging = path.join(data, "ptm-staging");
      const [a, b, c, d] = [1, 2, 3, 4].map((i) => u("A", i)) as [string, string, string, string];
      const [t1, t2] = [u("T", 1), u("T", 2)];
      block(data, t1, [a, b]);
      block(data, t2, [c]);
      const held = u("M", 1); // sources a, c: in t1 and t2
      const partial = u("P", 1); // sources c, d: d is nowhere
      const fresh = u("F", 1); // its own
      for (const [x, s] of [
        [held, [a, c]],
        [partial, [c, d]],
        [fresh, [fresh]],
      ] as const) {
        block(staging, x, [...s]);
        fs.mkdirSync(path.join(staging, ".complete"), { recursive: true });
        fs.writeFileSync(path.join(staging, ".complete", x), "");
      }
      const env = { PTM_DATA: data };
      const refused = await runScript("install", [fresh, held, partial], { env, busybox });
      assert.notEqual(refused.code, 0);
      assert.match(
        refused.stderr,
        new RegExp(`block ${partial} holds data that .* already has in block ${t2}`),
      );
      assert.ok(!fs.existsSync(path.join(data, fresh)), "nothing installed");
      assert.ok(fs.existsSync(path.join(staging, held)), "nothing removed");

      const { json } = await runJson<InstallJson>("install", [fresh, held], { env, busybox });
      assert.deepEqual(json, {
        installed: 1,
        alreadyPresent: 1,
        presentByLineage: 1,
        lineage: [{ block: held, heldBy: t1 }],
      });
      assert.ok(fs.existsSync(path.join(data, fresh, "meta.json")));
      assert.ok(!fs.existsSync(path.join(data, held)));
      assert.ok(!fs.existsSync(path.join(staging, held)));
      // Run again: `held` is no longer staged; its kept meta.json still gives its sources.
      const again = await runJson<InstallJson>("install", [fresh, held], { env, busybox });
      assert.deepEqual(again.json, {
        installed: 0,
        alreadyPresent: 2,
        presentByLineage: 1,
        lineage: [{ block: held, heldBy: t1 }],
      });
    });
  }
});
