// snapshot.sh with PTM_INCLUDE_HEAD when the head snapshot request fails after it reached a
// real Prometheus (issue 20 row 10): Prometheus has then already written a snapshot dir with a
// full head block on the source volume. The script must remove what its own request made,
// nothing else, and never send a second request (a wget failure after the request was sent
// must not fall back to curl). The HTTP clients are wrappers on PATH that forward the request
// to the real server and then fail, as a client that times out or loses the answer does.
// Requests are counted by the server itself (prometheus_http_requests_total). The wrappers run
// under sh (dash): busybox sh runs its own wget applet whatever PATH says.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  Prom,
  busyboxPath,
  httpText,
  killAll,
  mkTemp,
  queryValue,
  runScript,
  sleep,
  startPrometheus,
  takeSnapshot,
  waitFor,
} from "../support/real";

const HANDLER = 'handler="/api/v1/admin/tsdb/snapshot"';

/** Snapshot requests the server has answered, summed over the status codes. */
async function snapshotRequests(p: Prom): Promise<number> {
  const text = await httpText(`${p.url}/metrics`);
  return text
    .split("\n")
    .filter((l) => l.startsWith("prometheus_http_requests_total{") && l.includes(HANDLER))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}

describe("snapshot.sh: a failed head snapshot request leaves nothing and is never repeated (issue 20 row 10)", function () {
  let root = "";
  let prom: Prom;
  let snapdir = "";
  // Someone else's snapshots: one named the way Prometheus names them, one not. Never touched.
  const foreign = ["20200101T000000Z-0123456789abcdef", "someone-else"];

  before(async () => {
    root = mkTemp("ptm-snapfail-");
    prom = await startPrometheus({
      dataDir: path.join(root, "data"),
      scrape: (port) => [`127.0.0.1:${port}`],
      intervalS: 1,
      adminApi: true,
    });
    snapdir = path.join(prom.dataDir, "snapshots");
    for (const f of foreign) {
      fs.mkdirSync(path.join(snapdir, f), { recursive: true });
      fs.writeFileSync(path.join(snapdir, f, "keep"), "not ours\n");
    }
    // A few scrapes (the first comes ~5 s after start): the snapshot then writes a head block.
    await waitFor("the first scrapes", 60_000, async () =>
      (await queryValue(prom.url, "count(up)")) >= 1 ? true : undefined,
    );
    await sleep(2_000);
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  /** A dir of HTTP client wrappers; each logs its name to `calls`, then runs `body`. */
  function clients(name: string, wrappers: Record<string, string>): { bin: string; calls: string } {
    const bin = path.join(root, `bin-${name}`);
    const calls = path.join(root, `calls-${name}`);
    fs.mkdirSync(bin);
    fs.writeFileSync(calls, "");
    for (const [client, body] of Object.entries(wrappers)) {
      fs.writeFileSync(
        path.join(bin, client),
        `#!/bin/sh\necho ${client} >>'${calls}'\n${body}\n`,
        { mode: 0o755 },
      );
    }
    return { bin, calls };
  }

  const snapshots = (): string[] => fs.readdirSync(snapdir).sort();
  const env = (snap: string, PATH: string) => ({
    PTM_DATA: prom.dataDir,
    PTM_SNAPSHOT: snap,
    PTM_PROM_URL: prom.url,
    PTM_INCLUDE_HEAD: "true",
    PATH,
  });

  async function failedRun(
    snap: string,
    PATH: string,
  ): Promise<{ stderr: string; requests: number }> {
    const before = await snapshotRequests(prom);
    const res = await runScript("snapshot", [], { env: env(snap, PATH) });
    const requests = (await snapshotRequests(prom)) - before;
    assert.deepEqual(snapshots(), foreign, `left in ${snapdir}; stderr:\n${res.stderr}`);
    for (const f of foreign) assert.ok(fs.existsSync(path.join(snapdir, f, "keep")));
    assert.equal(
      requests,
      1,
      `exactly one snapshot request reached Prometheus; stderr:\n${res.stderr}`,
    );
    assert.notEqual(res.code, 0, `snapshot.sh must fail; stderr:\n${res.stderr}`);
    return { stderr: res.stderr, requests };
  }

  it("wget sends the request and then fails: the snapshot Prometheus wrote is removed, and curl sends no second one", async () => {
    const realWget = execFileSync("sh", ["-c", "command -v wget"]).toString().trim();
    const realCurl = execFileSync("sh", ["-c", "command -v curl"]).toString().trim();
    const c = clients("wget-fails", {
      wget: `${realWget} "$@" >/dev/null 2>&1; echo 'wget: download timed out' >&2; exit 1`,
      curl: `exec ${realCurl} "$@"`,
    });
    const r = await failedRun("wget-fails", `${c.bin}:${process.env["PATH"]}`);
    assert.equal(fs.readFileSync(c.calls, "utf8"), "wget\n", "one client, called once");
    assert.match(r.stderr, /removed .*20\d{6}T\d{6}Z-[0-9a-f]{16}/);
  });

  it("the answer can't be parsed: the snapshot the request made is removed", async () => {
    const realWget = execFileSync("sh", ["-c", "command -v wget"]).toString().trim();
    const c = clients("garbled", {
      wget: `${realWget} "$@" >/dev/null 2>&1; echo '<html>proxy error</html>'`,
    });
    const r = await failedRun("garbled", `${c.bin}:${process.env["PATH"]}`);
    assert.equal(fs.readFileSync(c.calls, "utf8"), "wget\n");
    assert.match(r.stderr, /unexpected snapshot API answer/);
  });

  it("curl (no wget) times out after sending: one request, nothing left (busybox tools)", async () => {
    // busybox applets without wget: curl is the client.
    const bb = path.join(root, "bb-no-wget");
    fs.mkdirSync(bb);
    for (const a of fs.readdirSync(busyboxPath()))
      if (a !== "wget")
        fs.symlinkSync(fs.readlinkSync(path.join(busyboxPath(), a)), path.join(bb, a));
    const realCurl = execFileSync("sh", ["-c", "command -v curl"]).toString().trim();
    const c = clients("curl-times-out", {
      curl: `${realCurl} "$@" >/dev/null 2>&1; echo 'curl: (28) Operation timed out' >&2; exit 28`,
    });
    // sh itself stays dash: busybox sh would find its own wget applet.
    fs.symlinkSync(
      execFileSync("sh", ["-c", "command -v sh"]).toString().trim(),
      path.join(c.bin, "sh"),
    );
    const r = await failedRun("curl-times-out", `${c.bin}:${bb}`);
    assert.equal(fs.readFileSync(c.calls, "utf8"), "curl\n");
    assert.match(r.stderr, /removed .*20\d{6}T\d{6}Z-[0-9a-f]{16}/);
  });

  it("the client gives up before the answer while the server goes on writing: removed once written", async () => {
    const realWget = execFileSync("sh", ["-c", "command -v wget"]).toString().trim();
    const c = clients("gives-up", {
      wget: `${realWget} "$@" >/dev/null 2>&1 & sleep 0.05; echo 'wget: timed out' >&2; exit 1`,
    });
    const r = await failedRun("gives-up", `${c.bin}:${process.env["PATH"]}`);
    assert.equal(fs.readFileSync(c.calls, "utf8"), "wget\n");
    assert.match(r.stderr, /removed .*20\d{6}T\d{6}Z-[0-9a-f]{16}/);
  });

  it("busybox sh, server unreachable: fails, removes nothing, leaves no snapshot", async () => {
    const res = await runScript("snapshot", [], {
      env: { ...env("unreachable", busyboxPath()), PTM_PROM_URL: "http://127.0.0.1:1" },
      busybox: true,
    });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /snapshot API call failed/);
    assert.doesNotMatch(res.stderr, /removed/);
    assert.deepEqual(snapshots(), foreign);
  });

  it("a request that succeeds still makes exactly one snapshot, renamed to ours", async () => {
    const before = await snapshotRequests(prom);
    const r = await takeSnapshot({ env: env("ok", busyboxPath()), busybox: true });
    assert.equal(r.json.reused, false);
    assert.ok(r.json.blocks.length >= 1, "the head block");
    assert.equal((await snapshotRequests(prom)) - before, 1);
    assert.deepEqual(snapshots(), [...foreign, "ok"].sort());
  });
});
