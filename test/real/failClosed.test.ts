// Issue 21 item 6 against real servers: probe.sh, run as the program runs it (sh -s, and
// busybox's sh with busybox's wget alone on PATH), against a Prometheus whose API the probe
// can't read (a TLS web config, basic auth, a listen address that is not loopback or
// 0.0.0.0), and what the program then decides from its output: a refusal that names the key
// and says what to set, never a plan. And an empty-looking source is taken for empty only
// when the server's own /metrics agrees.

import * as assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { WorkloadRef } from "../../components/decisions/config";
import { parseFlags, resolveDataPath, resolveUrl } from "../../components/decisions/discovery";
import { planInput } from "../../components/decisions/planInput";
import {
  apiFailureCause,
  confirmSourceEmpty,
  requireServerAnswers,
} from "../../components/decisions/serverAnswers";
import { parseProbe, ProbeResult } from "../../components/decisions/sidecarOutput";
import { backfill, freePort, H, killAll, mkTemp, runScript, track, waitFor } from "../support/real";

// basic_auth_users wants a bcrypt hash. This one is of "ptm-test-password" (cost 10), made
// once with golang.org/x/crypto/bcrypt v0.45.0 (GenerateFromPassword), the package Prometheus's
// exporter-toolkit checks it with; fixed here so the test needs no bcrypt library.
const USER = "ptm";
const PASSWORD = "ptm-test-password";
const BCRYPT = "$2a$10$A9X/G97W9xTsI64w1IBX/e7lmn/ZwvqqBZIry.EVNUli08sZ/5k9y";

interface Server {
  /** host:port it listens on. */
  addr: string;
  dataDir: string;
  logFile: string;
}

/** Debian's prometheus with `extra` flags, listening on `host`; ready once its log says so. */
async function serve(root: string, name: string, host: string, extra: string[]): Promise<Server> {
  const port = await freePort();
  const dataDir = path.join(root, name, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const config = path.join(root, name, "prometheus.yml");
  // No scrape job: the head stays empty unless the test fills the server.
  fs.writeFileSync(config, "global: {scrape_interval: 15s}\n");
  const logFile = path.join(root, name, "prometheus.log");
  const log = fs.openSync(logFile, "a");
  const child = track(
    spawn(
      "prometheus",
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${dataDir}`,
        `--web.listen-address=${host}:${port}`,
        ...extra,
      ],
      { stdio: ["ignore", log, log] },
    ),
  );
  fs.closeSync(log);
  await waitFor(`${name} ready (log ${logFile})`, 60_000, async () => {
    if (child.exitCode !== null)
      throw new Error(`${name} exited ${child.exitCode}; see ${logFile}`);
    return /Server is ready to receive web requests/.test(fs.readFileSync(logFile, "utf8"))
      ? true
      : undefined;
  });
  return { addr: `${host}:${port}`, dataDir, logFile };
}

async function probe(dataDir: string, url: string, busybox: boolean): Promise<ProbeResult> {
  const r = await runScript("probe", [], {
    busybox,
    env: { PTM_DATA: dataDir, PTM_PROM_URL: url },
  });
  assert.equal(r.code, 0, `probe.sh failed:\n${r.stderr}`);
  return parseProbe(r.stdout);
}

/** curl, for the positive controls: the server is up, only the probe's plain request fails. */
const curl = (...args: string[]) =>
  execFileSync("curl", ["-sS", "--max-time", "10", ...args]).toString();

describe("fail closed at the start: real servers the probe can't read (issue 21 item 6)", function () {
  this.timeout(300_000);
  after(killAll);

  let root: string;
  let tls: Server;
  let auth: Server;
  let podIp: Server;
  before(async function () {
    root = mkTemp("ptm-failclosed-");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
      ].concat(["-keyout", path.join(root, "key.pem"), "-out", path.join(root, "cert.pem")]),
      { stdio: "ignore" },
    );
    const tlsConfig = path.join(root, "web-tls.yml");
    fs.writeFileSync(
      tlsConfig,
      `tls_server_config:\n  cert_file: ${root}/cert.pem\n  key_file: ${root}/key.pem\n`,
    );
    const authConfig = path.join(root, "web-auth.yml");
    fs.writeFileSync(authConfig, `basic_auth_users:\n  ${USER}: ${BCRYPT}\n`);
    // 127.0.0.2 stands for the pod IP: an address of this host that is not the one the probe
    // asks (localhost), so the probe's connection is refused as it is in such a pod.
    [tls, auth, podIp] = await Promise.all([
      serve(root, "tls", "127.0.0.1", [`--web.config.file=${tlsConfig}`]),
      serve(root, "auth", "127.0.0.1", [`--web.config.file=${authConfig}`]),
      serve(root, "podip", "127.0.0.2", []),
    ]);
    // The positive controls: each server answers when asked as it wants to be.
    assert.match(curl("-k", `https://${tls.addr}/api/v1/status/buildinfo`), /"version"/);
    assert.match(
      curl("-u", `${USER}:${PASSWORD}`, `http://${auth.addr}/api/v1/status/buildinfo`),
      /"version"/,
    );
    assert.match(curl(`http://${podIp.addr}/api/v1/status/buildinfo`), /"version"/);
  });

  const cases: { name: string; server: () => Server; key: RegExp; cause: string }[] = [
    { name: "TLS web config", server: () => tls, cause: "tls", key: /tls_server_config/ },
    { name: "basic auth", server: () => auth, cause: "basic-auth", key: /basic_auth_users/ },
    {
      name: "listen address not on loopback (the pod IP)",
      server: () => podIp,
      cause: "refused",
      key: /--web\.listen-address=0\.0\.0\.0:\d+/,
    },
  ];
  for (const busybox of [false, true]) {
    for (const c of cases) {
      it(`${c.name}: probe.sh says why${busybox ? " (busybox wget)" : " (sh, wget then curl)"}, and the plan is refused naming source.url`, async () => {
        const s = c.server();
        // The probe asks at localhost, as the program tells it to inside the pod.
        const url = `http://127.0.0.1:${s.addr.split(":")[1]}`;
        const p = await probe(s.dataDir, url, busybox);
        assert.equal(p.buildinfo, null);
        assert.equal(p.tsdb, null);
        assert.equal(p.server, null);
        assert.equal(p.apiUrl, url);
        for (const read of ["buildinfo", "flags", "tsdb", "metrics"]) {
          assert.equal(
            apiFailureCause(p.apiErrors?.[read] ?? ""),
            c.cause,
            JSON.stringify(p.apiErrors),
          );
        }
        assert.throws(
          () => requireServerAnswers("source", p),
          (e: Error) => /source\.url: /.test(e.message) && c.key.test(e.message),
        );
        // The whole plan: refused before anything is planned (the gap never reads 0).
        assert.throws(() => planInput([], p, p, false), /source\.url: /);
        console.log(`      ${c.name}: ${p.apiErrors?.["tsdb"]}`);
      });
    }
  }

  it("the pod-IP listen address, as its flags API reports it, is refused at discovery", async () => {
    const ref: WorkloadRef = { namespace: "m", kind: "Deployment", name: "p", container: "p" };
    const flags = parseFlags(JSON.parse(curl(`http://${podIp.addr}/api/v1/status/flags`)));
    assert.equal(flags["web.listen-address"], podIp.addr);
    assert.throws(
      () => resolveUrl("source", ref, { name: "p" }, { reached: true, pod: "p-0", flags }),
      /source\.url: .*listens only on 127\.0\.0\.2:\d+.*--web\.listen-address=0\.0\.0\.0:/,
    );
    // An explicit dataPath elsewhere than the server's own storage.tsdb.path: refused.
    assert.throws(
      () =>
        resolveDataPath(
          "source",
          { ...ref, dataPath: "/prometheus" },
          { name: "p" },
          {
            reached: true,
            pod: "p-0",
            flags,
          },
        ),
      /source\.dataPath: \/prometheus is not where .*--storage\.tsdb\.path is /,
    );
    // What curl (and kubectl through the pod proxy) show of the TLS port's 400.
    const body = curl(`http://${tls.addr}/api/v1/status/flags`);
    assert.match(body, /Client sent an HTTP request to an HTTPS server/);
    assert.equal(apiFailureCause(body), "tls");
  });

  it("an empty-looking source: taken for empty only when the server's /metrics agrees", async () => {
    // A server with 3 backfilled blocks loaded, and an empty dir standing for a wrong dataPath.
    const full = path.join(root, "full", "data");
    fs.mkdirSync(full, { recursive: true });
    const end = Math.floor((Date.now() - 6 * H) / (2 * H)) * 2 * H;
    backfill(full, { startMs: end - 6 * H, endMs: end, series: 3, stepS: 60 });
    const s = await serve(root, "full", "127.0.0.1", []);
    const url = `http://${s.addr}`;
    const right = await probe(s.dataDir, url, true);
    assert.ok(right.blocks.length > 0);
    assert.equal(right.server?.blocksLoaded, right.blocks.length);
    const wrongDir = path.join(root, "full", "not-the-tsdb");
    fs.mkdirSync(wrongDir);
    const wrong = await probe(wrongDir, url, true);
    assert.equal(wrong.blocks.length, 0);
    assert.throws(
      () => {
        const e = confirmSourceEmpty([], wrong);
        if (e) throw e;
      },
      new RegExp(
        `source\\.dataPath: the probe found no block in ${wrongDir}, but the server has ${right.blocks.length} blocks loaded`,
      ),
    );
    // A truly empty server (fresh, nothing scraped): confirmed, and the plan says so.
    const fresh = await serve(root, "empty", "127.0.0.1", []);
    const empty = await probe(fresh.dataDir, `http://${fresh.addr}`, true);
    assert.deepEqual(empty.server, { blocksLoaded: 0, headSeries: 0 });
    assert.equal(confirmSourceEmpty([], empty), undefined);
  });
});
