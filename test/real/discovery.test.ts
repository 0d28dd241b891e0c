// Issue 10 against real servers: what Prometheus 2.26 (BKPR's version), 3.x and Debian's 2.42
// really answer on /api/v1/status/{flags,runtimeinfo,buildinfo}, fed to the discovery rules,
// must resolve to the directory the server really writes its TSDB to. The pod proxy only
// carries these answers; here they come straight from the server on loopback.

import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { WorkloadRef } from "../../components/decisions/config";
import {
  parseCwd,
  parseFlags,
  parseVersion,
  proxyTarget,
  resolveDataPath,
  resolveUrl,
  ServerReport,
} from "../../components/decisions/discovery";
import { freePort, killAll, mkTemp, track, waitFor } from "../support/real";

const CACHE = process.env.PTM_CACHE ?? "/var/cache/ptm";
const ref: WorkloadRef = {
  namespace: "kubeprod",
  kind: "StatefulSet",
  name: "prometheus",
  container: "prometheus",
};

/** Starts `binary` in `cwd` with `args` (plus a loopback listen address), as a container would. */
async function serve(binary: string, cwd: string, args: string[]): Promise<string> {
  const port = await freePort();
  const log = fs.openSync(path.join(cwd, "..", `prometheus-${port}.log`), "a");
  const child = track(
    spawn(binary, [...args, `--web.listen-address=127.0.0.1:${port}`], {
      cwd,
      stdio: ["ignore", log, log],
    }),
  );
  fs.closeSync(log);
  return `127.0.0.1:${port}|${child.pid}`;
}

async function ask(base: string, prefix: string, pod: string): Promise<ServerReport> {
  const get = async (ep: string) => {
    const r = await fetch(`http://${base}${prefix}/api/v1/status/${ep}`);
    if (!r.ok) throw new Error(`${ep}: HTTP ${r.status}`);
    return (await r.json()) as unknown;
  };
  const flags = await waitFor(`${base} flags`, 60_000, async () => get("flags"));
  const [runtime, build] = await Promise.all([get("runtimeinfo"), get("buildinfo")]);
  return {
    reached: true,
    pod,
    flags: parseFlags(flags),
    cwd: parseCwd(runtime),
    version: parseVersion(build),
  };
}

/** BKPR's args (prometheus.jsonnet), with the config file in this test's dir. */
function bkprArgs(config: string): string[] {
  return [
    `--config.file=${config}`,
    "--storage.tsdb.retention.time=183d",
    "--web.console.libraries=/opt/bitnami/prometheus/conf/console_libraries",
    "--web.console.templates=/opt/bitnami/prometheus/conf/consoles",
    "--web.external-url=http://prometheus.example.com/",
    "--web.enable-lifecycle",
  ];
}

describe("discovery against real servers (issue 10)", function () {
  this.timeout(180_000);
  after(killAll);

  const upstream = [
    ["2.26.0", path.join(CACHE, "prometheus-2.26.0/bin/prometheus")],
    ["3.13.5", path.join(CACHE, "prometheus-3.13.5/bin/prometheus")],
  ];
  for (const [version, binary] of upstream) {
    it(`${version}: BKPR's command line (no --storage.tsdb.path) writes to data/ in its CWD, as resolved`, async function () {
      if (!fs.existsSync(binary)) {
        throw new Error(
          `${binary} is missing: build it (test/real/build-prometheus-2.26.sh or build-prometheus-3.sh ${version})`,
        );
      }
      const root = mkTemp("ptm-discovery-");
      // The Bitnami image's working directory is /opt/bitnami/prometheus.
      const cwd = path.join(root, "opt", "bitnami", "prometheus");
      fs.mkdirSync(cwd, { recursive: true });
      const config = path.join(root, "prometheus.yml");
      fs.writeFileSync(config, "global: {scrape_interval: 15s}\n");
      const [base] = (await serve(binary, cwd, bkprArgs(config))).split("|");
      const c = { name: "prometheus", args: bkprArgs(config) };
      // The spec alone can't tell (no path flag, no workingDir): the key is named.
      assert.throws(
        () => resolveDataPath("target", ref, c, { reached: false, why: "x" }),
        /target\.dataPath: can't tell/,
      );
      const target = proxyTarget(ref, c);
      assert.equal(target.prefix, "", "external URL path / is no prefix");
      const report = await ask(base, target.prefix, "prometheus-0");
      assert.ok(report.reached);
      assert.equal(report.flags["storage.tsdb.path"], "data/");
      assert.equal(report.cwd, cwd);
      assert.equal(report.version, version);
      const got = resolveDataPath("target", ref, c, report);
      assert.equal(got.value, path.join(cwd, "data"));
      assert.match(got.from, /"data\/" in runtimeinfo CWD /);
      // Where the server really writes: its lock and WAL are there.
      await waitFor("the TSDB in data/", 30_000, async () =>
        fs.existsSync(path.join(got.value, "wal")) ? true : undefined,
      );
      assert.equal(
        resolveUrl("target", ref, c, report).value,
        `http://localhost:${base.split(":")[1]}`,
      );
    });
  }

  it("Debian's 2.42: a relative --storage.tsdb.path and a route prefix", async () => {
    const root = mkTemp("ptm-discovery-");
    const cwd = path.join(root, "work");
    fs.mkdirSync(cwd);
    const config = path.join(root, "prometheus.yml");
    fs.writeFileSync(config, "global: {scrape_interval: 15s}\n");
    const args = [
      `--config.file=${config}`,
      "--storage.tsdb.path=tsdb/",
      "--web.route-prefix=/prom/",
    ];
    const [base] = (await serve("prometheus", cwd, args)).split("|");
    const c = { name: "prometheus", args };
    const target = proxyTarget(ref, c);
    assert.equal(target.prefix, "/prom");
    const report = await ask(base, target.prefix, "p-0");
    assert.ok(report.reached);
    assert.equal(report.flags["web.route-prefix"], "/prom");
    const got = resolveDataPath("target", ref, c, report);
    assert.equal(got.value, path.join(cwd, "tsdb"));
    await waitFor("the TSDB in tsdb/", 30_000, async () =>
      fs.existsSync(path.join(got.value, "wal")) ? true : undefined,
    );
    const url = resolveUrl("target", ref, c, report).value;
    assert.match(url, /^http:\/\/localhost:\d+\/prom$/);
  });
});
