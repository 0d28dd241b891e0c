// The copy's fixed costs (issue 25), the ones plain `rsync -a` does not pay.
//
// The rsync connections: every protocol round trip of an rsync daemon
// connection waits out Linux's delayed ACK (40 ms) unless both ends send at once (Nagle
// off: TCP_NODELAY). A listing of a tiny module took 0.22 s on this machine with neither end
// setting it, 0.055 s with both: the copy opens 1 + streams connections, and plain `rsync -a`
// one. So sidecar/rsyncd.sh sets `socket options = TCP_NODELAY`, and copy.sh passes
// `--sockopts=TCP_NODELAY` on each of its own.
//
// The timing is a ratio measured in one run: the same listings against rsyncd.sh's daemon
// and against a daemon with rsyncd.sh's config minus that line.
//
// The streams' filters: rsync matches every file against every filter rule, on both sides.
// One "/ULID/***" rule per block (a wildcard match each) cost 1.3 s of CPU at 2,048 blocks of
// 4 files, about 4% of the 14 GiB copy, and grows with blocks x files. A copy's rsyncs should
// cost about what plain `rsync -a` of the same blocks costs.
//
// The end: whoever runs the copy (kubectl exec, the bench, these tests) waits until its
// stdout and stderr close, not only until it exits. A background loop that still sleeps
// holds them open up to a second longer (copy.sh's free-space watcher did: 1 s of every
// 1-stream copy in the bench).

import * as assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { median } from "../bench/stats";
import { freePort, killAll, mkTemp, runScript, startRsyncd, track, waitFor } from "../support/real";

const NODELAY = "--sockopts=TCP_NODELAY";
// What copy.sh passes each stream besides its filter: progress, stats, resume and deletion of
// a killed rsync's temp files cost rsync work per file of their own.
const COPY_FLAGS = [
  "-a",
  "--delete",
  "--no-h",
  NODELAY,
  "--partial-dir=.rsync-partial",
  "--timeout=600",
  "--info=progress2,name1",
  "--stats",
];

describe("the copy's fixed costs: TCP_NODELAY at both ends, nothing left holding its output", function () {
  const password = randomBytes(12).toString("hex");
  let root = "";
  let srcData = "";
  let port = 0;
  let runDir = "";
  const blocks = ["01JCPYAVT0000000000000A0XX", "01JCPYAVT0000000000000A1XX"];

  before(async function () {
    root = mkTemp("ptm-conn-");
    srcData = path.join(root, "src");
    for (const u of blocks) {
      const dir = path.join(srcData, "snapshots", "s", u);
      fs.mkdirSync(path.join(dir, "chunks"), { recursive: true });
      fs.writeFileSync(
        path.join(dir, "meta.json"),
        JSON.stringify({ ulid: u, minTime: 0, maxTime: 1, version: 1 }),
      );
      fs.writeFileSync(path.join(dir, "index"), randomBytes(4096));
      fs.writeFileSync(path.join(dir, "chunks", "000001"), randomBytes(65536));
    }
    fs.mkdirSync(path.join(srcData, "tiny"));
    fs.writeFileSync(path.join(srcData, "tiny", "f"), "x");
    runDir = path.join(root, "rsyncd");
    ({ port } = await startRsyncd(srcData, password, runDir));
  });
  after(killAll);

  /** copy.sh's env: the blocks of snapshot s from rsyncd.sh's daemon into `data`. */
  const copyEnv = (data: string, streams: string): Record<string, string> => ({
    PTM_DATA: data,
    PTM_RSYNC_URL: `rsync://ptm@127.0.0.1:${port}/tsdb/snapshots/s`,
    RSYNC_PASSWORD: password,
    PTM_STREAMS: streams,
    PTM_AUTO_MIN_BYTES: "1",
  });

  for (const streams of ["1", "2", "auto"]) {
    it(`copy.sh (PTM_STREAMS=${streams}) opens every rsync connection with ${NODELAY}: the listing and each stream`, async function () {
      const bin = path.join(root, `bin-${streams}`);
      fs.mkdirSync(bin);
      const real = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
      const calls = path.join(root, `calls-${streams}.log`);
      fs.writeFileSync(
        path.join(bin, "rsync"),
        `#!/bin/sh\necho "$*" >>'${calls}'\nexec '${real}' "$@"\n`,
        { mode: 0o755 },
      );
      const data = path.join(root, `target-${streams}`);
      fs.mkdirSync(data);
      const res = await runScript("copy", blocks, {
        env: {
          ...copyEnv(data, streams),
          PATH: `${bin}:${process.env["PATH"]}`,
        },
      });
      assert.equal(res.code, 0, res.stderr);
      const lines = fs.readFileSync(calls, "utf8").trim().split("\n");
      const listings = lines.filter((l) => l.includes("--list-only"));
      const copies = lines.filter((l) => l.includes("--filter=merge "));
      assert.equal(listings.length, 1, lines.join("\n"));
      assert.ok(copies.length >= 1, lines.join("\n"));
      if (streams === "2") assert.equal(copies.length, 2, lines.join("\n"));
      for (const l of [...listings, ...copies]) assert.ok(l.split(" ").includes(NODELAY), l);
    });
  }

  /** The processes other than `pid` whose fd 1 or 2 is one of `pid`'s stdout/stderr pipes. */
  const holders = (pid: number, pipes: string[]): string[] => {
    const out: string[] = [];
    for (const p of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      if (Number(p) === pid) continue;
      for (const fd of ["1", "2"]) {
        try {
          if (pipes.includes(fs.readlinkSync(`/proc/${p}/fd/${fd}`))) {
            const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ");
            out.push(`${p}: ${cmd.trim()}`);
            break;
          }
        } catch {
          // gone, or not ours to read
        }
      }
    }
    return out;
  };

  for (const streams of ["1", "2", "auto"]) {
    it(`copy.sh (PTM_STREAMS=${streams}) leaves no process holding its stdout or stderr when it exits`, async function () {
      const data = path.join(root, `end-${streams}`);
      fs.mkdirSync(data);
      let left: string[] | undefined;
      const res = await runScript("copy", blocks, {
        env: {
          ...copyEnv(data, streams),
        },
        onSpawn: (c: ChildProcess) => {
          const pid = c.pid!;
          const pipes = ["1", "2"].map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          c.on("exit", () => (left = holders(pid, pipes)));
        },
      });
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(left, [], "still holding copy.sh's output after it exited");
    });
  }

  for (const streams of ["1", "2"])
    it(`a copy right after one that ended (PTM_STREAMS=${streams}) takes the lock at once: nothing of the first holds it`, async function () {
      const data = path.join(root, `again-${streams}`);
      fs.mkdirSync(data);
      const env = copyEnv(data, streams);
      const first = await runScript("copy", blocks, { env });
      assert.equal(first.code, 0, first.stderr);
      const again = await runScript("copy", blocks, { env });
      assert.equal(again.code, 0, again.stderr);
      assert.doesNotMatch(again.stderr, /waiting for the earlier copy/);
      assert.match(again.stderr, /2 of 2 blocks skipped/);
    });

  it("rsyncd.sh's daemon answers without the 40 ms delayed-ACK waits: a listing takes at most 0.6x of one from the same config without `socket options = TCP_NODELAY`", async function () {
    this.timeout(120_000);
    const conf = fs.readFileSync(path.join(runDir, "rsyncd.conf"), "utf8");
    const oldPort = await freePort();
    const oldConf = path.join(root, "old-rsyncd.conf");
    fs.writeFileSync(
      oldConf,
      conf
        .split("\n")
        .filter((l) => !/^\s*socket options\s*=/.test(l))
        .join("\n")
        .replace(/^port = \d+$/m, `port = ${oldPort}`),
    );
    const old = track(
      spawn("rsync", ["--daemon", "--no-detach", `--config=${oldConf}`], {
        stdio: ["ignore", "ignore", "ignore"],
      }),
    );
    await waitFor(
      `the old-style daemon on ${oldPort}`,
      15_000,
      () =>
        new Promise<true | undefined>((resolve) => {
          if (old.exitCode !== null) throw new Error("the old-style rsync daemon exited");
          const s = net.connect(oldPort, "127.0.0.1", () => {
            s.destroy();
            resolve(true);
          });
          s.on("error", () => resolve(undefined));
        }),
    );
    const listing = (p: number): number => {
      const t = process.hrtime.bigint();
      execFileSync("rsync", [NODELAY, "--list-only", `rsync://ptm@127.0.0.1:${p}/tsdb/tiny/`], {
        env: { ...process.env, RSYNC_PASSWORD: password },
        stdio: "ignore",
      });
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    // Interleaved, so that load on the machine hits both alike; medians of 7.
    const ours: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < 7; i++) {
      ours.push(listing(port));
      without.push(listing(oldPort));
    }
    const ratio = median(ours) / median(without);
    assert.ok(
      ratio <= 0.6,
      `a listing from rsyncd.sh's daemon took ${median(ours).toFixed(0)} ms (median of 7), ` +
        `${median(without).toFixed(0)} ms without its socket options: ${ratio.toFixed(2)}x`,
    );
  });

  describe("a copy of many blocks", function () {
    // 1,024 tiny blocks of 4 files: the bytes are nothing, what is left is rsync's work per
    // file. (The old filter's cost grows with blocks x files: 1.9 s of user CPU at 2,048 blocks
    // against plain rsync's 0.1, 0.45 s at 1,024.)
    const many = Array.from({ length: 1024 }, (_, i) =>
      `01JCPYAVT0${i.toString().padStart(14, "0")}XX`.replace(/[ILOU]/g, "0"),
    );
    let manyPort = 0;
    before(async function () {
      this.timeout(120_000);
      const src = path.join(root, "many");
      for (const u of many) {
        const dir = path.join(src, "snapshots", "s", u);
        fs.mkdirSync(path.join(dir, "chunks"), { recursive: true });
        fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify({ ulid: u, version: 1 }));
        fs.writeFileSync(path.join(dir, "index"), "i");
        fs.writeFileSync(path.join(dir, "tombstones"), "t");
        fs.writeFileSync(path.join(dir, "chunks", "000001"), "c");
      }
      ({ port: manyPort } = await startRsyncd(src, password, path.join(root, "rsyncd-many")));
    });

    // The user CPU seconds of the rsync client processes that copy (not the listing): an
    // rsync in front of the real one adds its children's times to a log. User time only:
    // matching rules is user time, and the system time of writing 8,192 tiny files varied
    // 0.9-6 s between runs of the same plain rsync here.
    const cpuShim = (name: string): { bin: string; log: string } => {
      const bin = path.join(root, `bin-cpu-${name}`);
      fs.mkdirSync(bin);
      const log = path.join(root, `cpu-${name}.log`);
      const real = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
      fs.writeFileSync(
        path.join(bin, "rsync"),
        [
          "#!/bin/sh",
          `case " $* " in *" --list-only "*) exec '${real}' "$@" ;; esac`,
          `rc=0; '${real}' "$@" || rc=$?`,
          // times: this shell's, then its children's "user system" (e.g. 0m1.25s 0m0.10s).
          // (Not into a pipe: a subshell's own children have no times.)
          `times >'${log}.t'`,
          `sed -n 2p '${log}.t' >>'${log}'`,
          'exit "$rc"',
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      return { bin, log };
    };
    const cpuOf = (log: string): number =>
      fs
        .readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[0] ?? "")
        .reduce((a, t) => {
          const m = /^(\d+)m([\d.]+)s$/.exec(t);
          assert.ok(m, `not a time from sh's times: ${t}`);
          return a + Number(m[1]) * 60 + Number(m[2]);
        }, 0);

    for (const streams of ["1", "2"])
      it(`copy.sh's rsyncs (PTM_STREAMS=${streams}) cost at most 1.5x the user CPU of plain rsync -a with copy.sh's flags, no filter, of the same 1,024 blocks (medians of 3, interleaved)`, async function () {
        this.timeout(300_000);
        const url = `rsync://ptm@127.0.0.1:${manyPort}/tsdb/snapshots/s`;
        const ours: number[] = [];
        const plain: number[] = [];
        for (let i = 0; i < 3; i++) {
          const a = cpuShim(`copy-${streams}-${i}`);
          const data = path.join(root, `many-${streams}-${i}`);
          fs.mkdirSync(data);
          const res = await runScript("copy", many, {
            env: {
              ...copyEnv(data, streams),
              PTM_RSYNC_URL: url,
              PATH: `${a.bin}:${process.env["PATH"]}`,
            },
          });
          assert.equal(res.code, 0, res.stderr);
          assert.match(res.stderr, /1024 blocks copied and verified/);
          ours.push(cpuOf(a.log));
          const b = cpuShim(`plain-${streams}-${i}`);
          const dest = path.join(root, `plain-${streams}-${i}`);
          fs.mkdirSync(dest);
          execFileSync(path.join(b.bin, "rsync"), [...COPY_FLAGS, `${url}/`, `${dest}/`], {
            env: { ...process.env, RSYNC_PASSWORD: password },
            stdio: "ignore",
          });
          plain.push(cpuOf(b.log));
          fs.rmSync(data, { recursive: true, force: true });
          fs.rmSync(dest, { recursive: true, force: true });
        }
        assert.ok(median(plain) > 0, `plain rsync -a measured no CPU: ${plain.join(", ")}`);
        const ratio = median(ours) / median(plain);
        assert.ok(
          ratio <= 1.5,
          `copy.sh's rsyncs took ${median(ours).toFixed(2)} s of user CPU (median of 3: ${ours.join(", ")}), ` +
            `plain rsync -a with copy.sh's flags ${median(plain).toFixed(2)} s (${plain.join(", ")}): ${ratio.toFixed(2)}x`,
        );
      });
  });
});
