// Issue 14: the verification's counts never need a raised --query.max-samples. A real
// Prometheus 2.42 with --query.max-samples=1000 holds 12 hours of 100 series every 30 s:
// 24,000 samples per 2h window (24 times the limit), 144,000 in all. counts.sh counts each
// window exactly: it queries per metric name and per window, so the engine holds one series'
// points of one window at a time (240 here) plus one sample per series (100), never the
// window's samples. The same count over the whole history in one range (1,440 points per
// series) is refused by the same server: the limit is real, and the windows are what keeps
// the proof under it.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseCounts } from "../../components/decisions/verify";
import {
  H,
  Prom,
  backfill,
  httpText,
  killAll,
  mkTemp,
  runScript,
  startPrometheus,
} from "../support/real";

describe("real servers: counts.sh under --query.max-samples (issue 14)", function () {
  let root = "";
  let prom: Prom;
  let end = 0;

  before(async function () {
    root = mkTemp("ptm-maxsamples-");
    // 12h ending at a 2h boundary at least 4h ago: nothing a head could hold.
    end = Math.floor((Date.now() - 4 * H) / (2 * H)) * 2 * H;
    const data = path.join(root, "data");
    backfill(data, { startMs: end - 12 * H, endMs: end, series: 100, stepS: 30 });
    prom = await startPrometheus({
      dataDir: data,
      scrape: (port) => [`127.0.0.1:${port}`],
      extraArgs: ["--query.max-samples=1000", "--storage.tsdb.retention.time=10y"],
    });
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("counts every 2h window exactly, each holding 24x the limit", async () => {
    const ends = Array.from({ length: 6 }, (_, i) => end - i * 2 * H).reverse();
    const r = await runScript("counts", ends.map(String), { env: { PTM_PROM_URL: prom.url } });
    assert.equal(r.code, 0, r.stderr);
    const c = parseCounts(r.stdout);
    assert.deepEqual(
      c.windows.map((w) => w.count),
      ends.map(() => 24_000),
    );
  });

  it("the same server refuses one count over the whole history (the limit is real)", async () => {
    const q = new URLSearchParams({
      query: 'sum(count_over_time(ptm_backfill{series=~".+"}[12h]))',
      time: ((end - 1) / 1000).toFixed(3),
    });
    const body = await httpText(`${prom.url}/api/v1/query?${q}`).catch((e: Error) => e.message);
    assert.match(body, /too many samples/);
  });
});
