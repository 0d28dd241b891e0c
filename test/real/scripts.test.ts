// Sidecar script edge cases that need no Prometheus: the snapshot's retry
// when a compaction deletes a block while it is being linked, and refusals.

import type { CopyResult } from "../../components/decisions/sidecarOutput";
import * as assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  H,
  REPO,
  backfill,
  blockChecksums,
  busyboxPath,
  assertStoppedByPod,
  copyInPod,
  dirBytes,
  killAll,
  mkTemp,
  runJson,
  runScript,
  startRsyncd,
  takeSnapshot,
  waitFor,
} from "../support/real";
import { restartRisk } from "../../components/decisions/restartRisk";
import { headRange } from "../../components/decisions/tsdb";

describe("sidecar scripts without a server", function () {
  let root = "";
  let data = "";
  let ulids: string[] = [];

  before(() => {
    root = mkTemp("ptm-scripts-");
    data = path.join(root, "data");
    const end = Math.floor((Date.now() - 3 * H) / (2 * H)) * 2 * H;
    backfill(data, { startMs: end - 6 * H, endMs: end, series: 5, stepS: 60 });
    ulids = fs
      .readdirSync(data)
      .filter((n) => /^[0-9A-Z]{26}$/.test(n))
      .sort();
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  it("snapshot.sh retries when a block disappears while it is linked (compaction race)", async () => {
    // A `cp` shim that, the first time, deletes the block it is asked to
    // link (as a compaction deleting a parent would) and fails.
    const bin = path.join(root, "bin");
    fs.mkdirSync(bin);
    const flag = path.join(root, "raced");
    const realCp = execFileSync("sh", ["-c", "command -v cp"]).toString().trim();
    fs.writeFileSync(
      path.join(bin, "cp"),
      `#!/bin/sh\nif [ ! -e '${flag}' ]; then : > '${flag}'; src="$2"; rm -rf "$src"; echo "cp: cannot stat '$src'" >&2; exit 1; fi\nexec ${realCp} "$@"\n`,
      { mode: 0o755 },
    );
    const res = await takeSnapshot({
      env: { PTM_DATA: data, PTM_SNAPSHOT: "race", PATH: `${bin}:${process.env["PATH"]}` },
    });
    assert.match(res.res.stderr, /block set changed while linking \(attempt 1\); retrying/);
    const left = fs
      .readdirSync(data)
      .filter((n) => /^[0-9A-Z]{26}$/.test(n))
      .sort();
    assert.equal(left.length, ulids.length - 1, "the shim deleted one block");
    assert.deepEqual(res.json.blocks.map((b) => b.ulid).sort(), left);
    assert.ok(!fs.existsSync(path.join(data, "snapshots", "race.tmp")), "no .tmp left");
    ulids = left;
  });

  for (const busybox of [false, true]) {
    it(`snapshot.sh reuses only this migration's snapshot: replaces an earlier attempt's, refuses others (issue 9 item 9)${busybox ? ", busybox" : ""}`, async () => {
      const snap = `owned-${busybox ? "bb" : "sh"}`;
      const dir = path.join(data, "snapshots", snap);
      const env = { PTM_DATA: data, PTM_SNAPSHOT: snap };
      const owner = () => fs.readFileSync(path.join(dir, ".ptm-owner"), "utf8");
      const probeOwner = async (extra: Record<string, string> = {}) =>
        (
          await runJson<{ snapshotOwner: string }>("probe", [], {
            env: { ...env, ...extra },
            busybox,
          })
        ).json.snapshotOwner;
      assert.equal(await probeOwner(), "none");
      const first = await takeSnapshot({ env, busybox });
      assert.equal(first.json.reused, false);
      assert.match(
        owner(),
        /^stack=organization\/prometheus-tsdb-migration\/real-tests migration=0123456789abcdef created=\d+$/m,
      );
      assert.equal(await probeOwner(), "ours");
      // A resume of this migration reuses it.
      assert.equal((await takeSnapshot({ env, busybox })).json.reused, true);
      // An earlier attempt of this stack (another migration ID): replaced, not reused.
      const later = { ...env, PTM_MIGRATION_ID: "fedcba9876543210" };
      assert.equal(await probeOwner({ PTM_MIGRATION_ID: "fedcba9876543210" }), "earlier");
      const replaced = await takeSnapshot({ env: later, busybox });
      assert.equal(replaced.json.reused, false);
      assert.match(replaced.res.stderr, /replacing .* made by an earlier attempt of this stack/);
      assert.match(owner(), /migration=fedcba9876543210 /);
      // Another stack's, and one with no owner record: refused, and left as they are.
      const other = { ...later, PTM_STACK_ID: "someone/else/dev" };
      assert.equal(await probeOwner({ PTM_STACK_ID: "someone/else/dev" }), "other");
      const refused = await runScript("snapshot", [], { env: other, busybox });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /was not made by this migration \(made by: stack=organization/);
      assert.match(owner(), /migration=fedcba9876543210 /, "untouched");
      fs.rmSync(path.join(dir, ".ptm-owner"));
      const ownerless = await runScript("snapshot", [], { env: later, busybox });
      assert.notEqual(ownerless.code, 0);
      assert.match(ownerless.stderr, /made by: unknown \(no \.ptm-owner file\)/);
      assert.ok(fs.existsSync(dir), "never removed");
      fs.rmSync(dir, { recursive: true });
    });
  }

  for (const busybox of [false, true]) {
    it(`probe.sh writes no file: it runs in a Prometheus container with a read-only root filesystem${busybox ? " (busybox)" : ""}`, async () => {
      // The revert's restart check looks through the Prometheus container when the sidecar
      // can't run (issue 9 item 20); kube-prometheus-stack's is read-only, and has no scratch.
      const r = await runJson<{ blocks: { ulid: string }[] }>("probe", [], {
        env: { PTM_DATA: data, TMPDIR: "/proc/ptm-not-writable" },
        busybox,
      });
      assert.deepEqual(r.json.blocks.map((b) => b.ulid).sort(), ulids);
    });
  }

  it("snapshot.sh and cleanup-source.sh work under busybox", async () => {
    const env = { PTM_DATA: data, PTM_SNAPSHOT: "bb" };
    const r = await takeSnapshot({ env, busybox: true });
    assert.deepEqual(r.json.blocks.map((b) => b.ulid).sort(), ulids);
    const ino = (p: string): number => fs.statSync(p).ino;
    assert.equal(
      ino(path.join(data, "snapshots", "bb", ulids[0]!, "index")),
      ino(path.join(data, ulids[0]!, "index")),
      "hard link",
    );
    const again = await takeSnapshot({ env, busybox: true });
    assert.equal(again.json.reused, true);
    const c = await runJson<{ removed: string[] }>("cleanup-source", [], { env, busybox: true });
    assert.equal(c.json.removed.length, 1);
    assert.ok(fs.existsSync(path.join(data, ulids[0]!, "index")));
  });

  it("install.sh refuses blocks that are not completely staged, and installs nothing", async () => {
    const tgt = path.join(root, "target");
    const staging = path.join(tgt, "ptm-staging");
    fs.mkdirSync(path.join(staging, ".complete"), { recursive: true });
    execFileSync("cp", ["-a", path.join(data, ulids[0]!), path.join(staging, ulids[0]!)]);
    fs.writeFileSync(path.join(staging, ".complete", ulids[0]!), "");
    execFileSync("cp", ["-a", path.join(data, ulids[1]!), path.join(staging, ulids[1]!)]); // no marker
    const res = await runScript("install", [ulids[0]!, ulids[1]!], { env: { PTM_DATA: tgt } });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, new RegExp(`${ulids[1]} is neither installed nor completely staged`));
    assert.ok(!fs.existsSync(path.join(tgt, ulids[0]!)), "nothing installed");
    const ok = await runJson<{ installed: number }>("install", [ulids[0]!], {
      env: { PTM_DATA: tgt },
    });
    assert.equal(ok.json.installed, 1);
    assert.ok(fs.existsSync(path.join(tgt, ulids[0]!, "meta.json")), "installed");
    const bad = await runScript("install", ["not-a-ulid"], { env: { PTM_DATA: tgt } });
    assert.notEqual(bad.code, 0);
  });

  it("cleanup scripts validate their names", async () => {
    for (const snap of ["", "a/b", "..", ".hidden"]) {
      const r = await runScript("cleanup-source", [], {
        env: { PTM_DATA: data, PTM_SNAPSHOT: snap },
      });
      assert.notEqual(r.code, 0, `PTM_SNAPSHOT=${JSON.stringify(snap)}`);
    }
    for (const staging of [data, root, path.join(data, "wal"), path.join(data, ulids[0]!)]) {
      const r = await runScript("cleanup-target", [], {
        env: { PTM_DATA: data, PTM_STAGING: staging },
      });
      assert.notEqual(r.code, 0, `PTM_STAGING=${staging}`);
      assert.ok(fs.existsSync(data));
    }
    assert.ok(fs.existsSync(path.join(data, ulids[0]!)));
  });

  it("rsyncd.sh refuses to start without a password", async () => {
    const r = await runScript("rsyncd", [], {
      env: { PTM_DATA: data, PTM_RSYNC_PASSWORD: "", PTM_RUN: path.join(root, "run") },
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PTM_RSYNC_PASSWORD is empty/);
  });

  // A lock left by a copy that died with its pod names a PID that, after the restart, may
  // belong to another live process: it must not block the next copy for 30 minutes.
  for (const busybox of [false, true]) {
    const shell = busybox ? "busybox sh (no flock: PID + start time)" : "sh with flock";
    it(`copy.sh: a dead copy's lock never blocks the next one, under ${shell}`, async () => {
      const staging = path.join(root, `staging-lock-${busybox ? "bb" : "sh"}`);
      fs.mkdirSync(path.join(staging, ".lock"), { recursive: true });
      // The format before this fix, naming a live process (this test runner).
      fs.writeFileSync(path.join(staging, ".lock", "pid"), String(process.pid));
      fs.mkdirSync(path.join(staging, ".copy.lock.d"));
      // A reused PID: alive, but started at another time than the copy that wrote it.
      fs.writeFileSync(path.join(staging, ".copy.lock.d", "holder"), `${process.pid} 1\n`);
      const res = await runScript("copy", [ulids[0]!], {
        busybox,
        env: {
          PTM_DATA: data,
          PTM_STAGING: staging,
          PTM_RSYNC_URL: "rsync://ptm@127.0.0.1:1/tsdb/snapshots/none",
          RSYNC_PASSWORD: "x",
          PTM_CONNECT_SECONDS: "1",
          PTM_LOCK_WAIT_SECONDS: "3",
        },
      });
      assert.notEqual(res.code, 0);
      assert.doesNotMatch(res.stderr, /another copy|waiting for the earlier copy/);
      assert.match(res.stderr, /rsync daemon|connect|listing/i, res.stderr);
    });
  }

  it("copy.sh: a live copy's lock makes the next one wait, then give up with the reason", async () => {
    const staging = path.join(root, "staging-lock-live");
    fs.mkdirSync(staging, { recursive: true });
    // Hold the flock as a running copy (or an rsync it left behind) would.
    const holder = spawn("flock", [path.join(staging, ".copy.lock"), "sleep", "30"], {
      stdio: "ignore",
    });
    await new Promise((r) => setTimeout(r, 300));
    try {
      const res = await runScript("copy", [ulids[0]!], {
        env: {
          PTM_DATA: data,
          PTM_STAGING: staging,
          PTM_RSYNC_URL: "rsync://ptm@127.0.0.1:1/tsdb/snapshots/none",
          RSYNC_PASSWORD: "x",
          PTM_LOCK_WAIT_SECONDS: "2",
        },
      });
      assert.notEqual(res.code, 0);
      assert.match(
        res.stderr,
        /another copy still holds .*\.copy\.lock after \d+s; wait for it or kill it/,
      );
    } finally {
      holder.kill();
    }
  });

  it("every script is POSIX sh and shellcheck-clean", () => {
    execFileSync("sh", ["-c", "shellcheck -s sh components/sidecar/*.sh"], {
      cwd: path.resolve(__dirname, "..", ".."),
      stdio: "inherit",
    });
  });
});

interface StreamRun {
  blocks: string[];
  start: number;
  end: number;
}

/** What copy.sh prints (counts), as the program parses it. */
type CopyOut = Required<CopyResult>;

// copy.sh in parallel rsync streams (PTM_STREAMS, the program's copyStreams) against a real
// rsync daemon (sidecar/rsyncd.sh). copy.sh reads no TSDB data: the blocks are dirs named by
// ULID with a meta.json naming it (as Prometheus writes it), an index, tombstones and chunks
// of random bytes, in sizes that differ so that the streams' shares must be balanced.
describe("copy.sh in parallel streams, from a real rsync daemon", function () {
  const password = randomBytes(12).toString("hex");
  const SNAP = "streams";
  const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let root = "";
  let srcData = "";
  let url = "";
  let big: string[] = []; // 9 blocks of 0.5 to 2.5 MiB
  let many: string[] = []; // 240 blocks of a few KiB
  let bigBytes = 0;

  const ulid = (i: number): string => {
    let tail = "";
    for (let n = i, k = 0; k < 8; k++, n = Math.floor(n / 32)) tail = CROCKFORD[n % 32] + tail;
    return `01JCPYSTREAMS0000${tail}X`.slice(0, 26);
  };
  const makeBlock = (u: string, chunkBytes: number): void => {
    const dir = path.join(srcData, "snapshots", SNAP, u);
    fs.mkdirSync(path.join(dir, "chunks"), { recursive: true });
    const meta = {
      ulid: u,
      minTime: 0,
      maxTime: 7_200_000,
      stats: { numSamples: 1, numSeries: 1, numChunks: 1 },
      compaction: { level: 1, sources: [u] },
      version: 1,
    };
    fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify(meta, null, "\t"));
    fs.writeFileSync(path.join(dir, "index"), randomBytes(4096));
    fs.writeFileSync(path.join(dir, "tombstones"), Buffer.from([0x01, 0x30, 0xba, 0x30]));
    fs.writeFileSync(path.join(dir, "chunks", "000001"), randomBytes(chunkBytes));
  };
  const env = (data: string, extra: Record<string, string> = {}) => ({
    PTM_DATA: data,
    PTM_RSYNC_URL: url,
    RSYNC_PASSWORD: password,
    ...extra,
  });
  const target = (name: string): { data: string; staging: string } => {
    const data = path.join(root, name);
    fs.mkdirSync(data);
    return { data, staging: path.join(data, "ptm-staging") };
  };
  const snapDir = (): string => path.join(srcData, "snapshots", SNAP);
  // An rsync that records each run (start and end time, and the blocks copy.sh gave it: blocks.<stream> beside its filter) in
  // $log, then is the real one.
  const rsyncShim = (name: string): { path: string; runs: () => StreamRun[] } => {
    const bin = path.join(root, `bin-${name}`);
    const log = path.join(root, `rsync-${name}.log`);
    fs.mkdirSync(bin);
    const real = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
    // The host's date (busybox's has no %N): the shim is the test's, not the sidecar's.
    const date = execFileSync("sh", ["-c", "command -v date"]).toString().trim();
    fs.writeFileSync(
      path.join(bin, "rsync"),
      [
        "#!/bin/sh",
        `log='${log}'`,
        `d='${date}'`,
        'f=""; for a in "$@"; do case "$a" in --filter=merge\\ *) f="${a#--filter=merge }" ;; esac; done',
        `[ -z "$f" ] && exec '${real}' "$@"`,
        'id="$$"; echo "start $id $("$d" +%s%N) $(tr "\\n" " " <"${f%/filter.*}/blocks.${f##*.}")" >>"$log"',
        `rc=0; '${real}' "$@" || rc=$?`,
        'echo "end $id $("$d" +%s%N)" >>"$log"',
        'exit "$rc"',
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return {
      path: bin,
      runs: () => {
        const lines = fs.readFileSync(log, "utf8").trim().split("\n");
        return lines
          .filter((l) => l.startsWith("start "))
          .map((l) => {
            const [, id, t, ...blocks] = l.trim().split(" ");
            const endLine = lines.find((e) => e.startsWith(`end ${id} `));
            return {
              blocks: blocks.filter(Boolean),
              start: Number(BigInt(t!) / 1000000n),
              end: endLine ? Number(BigInt(endLine.split(" ")[2]!) / 1000000n) : Infinity,
            };
          });
      },
    };
  };
  const ULID_RE = /[0-9A-HJKMNP-TV-Z]{26}/;

  before(async () => {
    root = mkTemp("ptm-streams-");
    srcData = path.join(root, "source");
    big = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => ulid(i));
    // Sizes 2.5, 0.5, 1.5, 2, 1, 0.5, 2.5, 1, 1.5 MiB: a round-robin split would be off.
    const mib = [2.5, 0.5, 1.5, 2, 1, 0.5, 2.5, 1, 1.5];
    big.forEach((u, i) => makeBlock(u, mib[i]! * 1024 * 1024));
    bigBytes = dirBytes(snapDir());
    many = Array.from({ length: 240 }, (_, i) => ulid(1000 + i));
    for (const u of many) makeBlock(u, 2048);
    const d = await startRsyncd(srcData, password, path.join(root, "rsyncd"));
    url = `rsync://ptm@127.0.0.1:${d.port}/tsdb/snapshots/${SNAP}`;
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  for (const busybox of [false, true]) {
    it(`3 streams copy every block byte-identically and verify it${busybox ? " (busybox)" : ""}`, async () => {
      const t = target(`three-${busybox ? "bb" : "sh"}`);
      const shim = rsyncShim(busybox ? "bb" : "sh");
      const { json, res } = await runJson<CopyOut>("copy", big, {
        busybox,
        env: env(t.data, {
          PTM_STREAMS: "3",
          PTM_PROGRESS_SECONDS: "0",
          PATH: `${shim.path}:${busybox ? busyboxPath() : process.env["PATH"]}`,
        }),
      });
      assert.equal(json.copied, big.length);
      assert.equal(json.skipped, 0);
      const want = blockChecksums(snapDir());
      const got = blockChecksums(t.staging);
      for (const u of big)
        for (const f of Object.keys(want.files).filter((k) => k.startsWith(u)))
          assert.equal(got.files[f], want.files[f], f);
      assert.equal(
        Object.keys(got.files).length,
        Object.keys(want.files).filter((k) => big.includes(k.slice(0, 26))).length,
        "no other file in the staged blocks",
      );
      assert.deepEqual(fs.readdirSync(path.join(t.staging, ".complete")).sort(), [...big].sort());
      assert.equal(json.bytesTotal, json.bytesCopied, `${JSON.stringify(json)}\n${res.stderr}`);
      assert.ok(json.bytesReceived >= json.bytesCopied, JSON.stringify(json));
      // Three rsync runs at once, over disjoint blocks that together are all of them, each
      // with its share of the bytes (greedy: no stream is more than a block ahead of another).
      const runs = shim.runs();
      assert.equal(runs.length, 3, JSON.stringify(runs));
      assert.ok(
        Math.max(...runs.map((r) => r.start)) < Math.min(...runs.map((r) => r.end)),
        `the streams ran at once: ${JSON.stringify(runs)}`,
      );
      assert.deepEqual(runs.flatMap((r) => r.blocks).sort(), [...big].sort());
      const bytesOf = (u: string) => dirBytes(path.join(snapDir(), u));
      const loads = runs.map((r) => r.blocks.reduce((a, u) => a + bytesOf(u), 0));
      assert.ok(
        Math.max(...loads) - Math.min(...loads) <= Math.max(...big.map(bytesOf)),
        `balanced by bytes: ${loads.join(", ")}`,
      );
      assert.match(res.stderr, /copy: 9\/9 blocks done, .* \(100%\), .*\/s, 3 streams/);
      assert.match(res.stderr, /copy: 9 blocks copied and verified/);
      assert.doesNotMatch(res.stderr, ULID_RE, "no line per block");
    });
  }

  it("2 streams share the bandwidth limit: the whole copy stays under it", async () => {
    const t = target("limit");
    const { json, res } = await runJson<CopyOut>("copy", big.slice(0, 4), {
      env: env(t.data, { PTM_STREAMS: "2", PTM_BWLIMIT: "4m" }),
    });
    const mib = json.bytesCopied / 1024 / 1024;
    // 6.5 MiB at 4 MiB/s in all: at least 1.5 s (at 4 MiB/s per stream it would take 0.8 s).
    assert.ok(res.ms >= (mib / 4) * 1000 * 0.9, `${mib.toFixed(1)} MiB in ${res.ms} ms`);
  });

  it("a copy in 3 streams killed mid-way resumes and finishes, without recopying finished files", async () => {
    const t = target("killed");
    let child: ChildProcess | undefined;
    const first = runScript("copy", big, {
      env: env(t.data, { PTM_STREAMS: "3", PTM_BWLIMIT: "1536k" }),
      onSpawn: (c) => (child = c),
    });
    // Kill the whole process group (sh, the rsyncs, the awks) with SIGKILL, like a dropped
    // `kubectl exec`, once a third of the bytes are staged.
    await waitFor(
      "a third of the bytes staged",
      60_000,
      async () => (dirBytes(t.staging) > bigBytes / 3 ? true : undefined),
      50,
    );
    process.kill(-child!.pid!, "SIGKILL");
    const killed = await first;
    assert.equal(killed.signal, "SIGKILL");
    const finished = new Map<string, number>();
    for (const u of big)
      for (const rel of ["index", "meta.json", "tombstones", "chunks/000001"]) {
        const p = path.join(t.staging, u, rel);
        if (
          fs.existsSync(p) &&
          fs.statSync(p).size === fs.statSync(path.join(snapDir(), u, rel)).size
        )
          finished.set(p, fs.statSync(p).ino);
      }
    const finishedBytes = [...finished.keys()].reduce((a, p) => a + fs.statSync(p).size, 0);
    assert.ok(
      finished.size > 0 && finishedBytes < bigBytes,
      `finished ${finishedBytes} of ${bigBytes}`,
    );
    const { json, res } = await runJson<CopyOut>("copy", big, {
      env: env(t.data, { PTM_STREAMS: "3" }),
    });
    assert.equal(json.copied, big.length);
    assert.ok(
      json.bytesReceived < bigBytes - finishedBytes + 256 * 1024,
      `rerun received ${json.bytesReceived}, finished before ${finishedBytes} of ${bigBytes} ` +
        `in ${finished.size} files (${[...finished.keys()].map((p) => path.relative(t.staging, p)).join(" ")}); ` +
        `killed run's stderr:\n${killed.stderr}\nrerun's:\n${res.stderr}`,
    );
    for (const [p, ino] of finished) assert.equal(fs.statSync(p).ino, ino, `${p} was rewritten`);
    const want = blockChecksums(snapDir()).files;
    const got = blockChecksums(t.staging).files;
    assert.deepEqual(
      got,
      Object.fromEntries(Object.entries(want).filter(([k]) => big.includes(k.slice(0, 26)))),
      "byte-identical, no temp file left",
    );
    assert.equal(fs.readdirSync(path.join(t.staging, ".complete")).length, big.length);
  });

  for (const shell of ["sh", "busybox"] as const)
    it(`the pod's SIGTERM, passed on by idle.sh: the copy stops, says why and what it kept (issue 23, ${shell})`, async () => {
      // A pod of its own: a PID namespace whose /proc shows only these processes, as in the
      // target sidecar. idle.sh is the container's main process, the copy a `kubectl exec`'d
      // step, and the SIGTERM goes to idle.sh only, as the kubelet sends it.
      const t = target(`pod-stops-${shell}`);
      const trigger = path.join(root, `pod-stops-${shell}.now`);
      const pod = copyInPod(
        big,
        {
          // The sidecar image's busybox, or the host's sh and tools.
          PATH: shell === "busybox" ? busyboxPath() : (process.env["PATH"] ?? "/usr/bin:/bin"),
          ...env(t.data, { PTM_STREAMS: "2", PTM_BWLIMIT: "1536k" }),
        },
        trigger,
      );
      await waitFor(
        "a third of the bytes staged",
        60_000,
        async () => (dirBytes(t.staging) > bigBytes / 3 ? true : undefined),
        50,
      );
      assertStoppedByPod(await pod.stop(), 9);
      // What it kept is not fetched again.
      const { json } = await runJson<CopyOut>("copy", big, {
        env: env(t.data, { PTM_STREAMS: "2" }),
      });
      assert.equal(json.copied + json.skipped, big.length);
      assert.ok(json.bytesReceived < bigBytes, JSON.stringify(json));
    });

  it("the target volume filling up mid-copy: the copy stops above the reserve, says why, and resumes (issue 23)", async () => {
    // A small filesystem of its own (tmpfs: root, as CI and the lab run), filled by another
    // writer while the copy runs, as the target's own growth or a neighbour would.
    assert.equal(process.getuid?.(), 0, "this test mounts a tmpfs: run the real level as root");
    const t = target("fills-up");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=32m", "tmpfs", t.data]);
    try {
      const MiB = 1024 * 1024;
      const spaceEnv = {
        PTM_STREAMS: "2",
        PTM_FREE_MARGIN_BYTES: String(1 * MiB),
        PTM_FREE_RESERVE_BYTES: String(8 * MiB),
      };
      const run = runScript("copy", big, {
        env: env(t.data, { ...spaceEnv, PTM_BWLIMIT: "1024k" }),
      });
      await waitFor(
        "a quarter of the bytes staged",
        60_000,
        async () => (dirBytes(t.staging) > bigBytes / 4 ? true : undefined),
        50,
      );
      const free = () =>
        Number(
          execFileSync("df", ["-Pk", t.data], { encoding: "utf8" }).split("\n")[1].split(/\s+/)[3],
        ) * 1024;
      const filler = path.join(t.data, "filler");
      fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 6 * MiB)));
      const filledAt = Date.now();
      const res = await run;
      const seconds = (Date.now() - filledAt) / 1000;
      assert.notEqual(res.code, 0);
      assert.match(
        res.stderr,
        /copy: ERROR: stopped: the free space on the target volume was falling below the 8\.0 MiB the copy leaves the target for its own writes: [\d.]+ MiB free, [\d.]+ [KM]iB less than a second before \(something else is filling the volume\); \d+ of 9 blocks complete and kept\. Free space on the volume or grow it, then run pulumi up again: the copy resumes/,
        res.stderr,
      );
      assert.ok(seconds < 10, `stopped ${seconds} s after the volume filled`);
      // It looks every second (a busy machine: later): at 1 MiB/s it wrote at most a few MiB
      // of the 6 left, and never met a full volume (rsync's "No space left on device").
      assert.ok(free() > 1 * MiB, `the copy left the target room: ${free()} bytes free`);
      assert.doesNotMatch(res.stderr, /No space left on device/);
      // The user frees the space: the rerun fetches only what was not complete.
      fs.rmSync(filler);
      const { json } = await runJson<CopyOut>("copy", big, { env: env(t.data, spaceEnv) });
      assert.equal(json.copied + json.skipped, big.length);
      assert.ok(json.bytesReceived < bigBytes, JSON.stringify(json));
      const want = blockChecksums(snapDir()).files;
      assert.deepEqual(
        blockChecksums(t.staging).files,
        Object.fromEntries(Object.entries(want).filter(([k]) => big.includes(k.slice(0, 26)))),
      );
    } finally {
      execFileSync("umount", [t.data]);
    }
  });

  for (const bad of ["0", "x", "17", "1.5", "-2", " 3"]) {
    it(`PTM_STREAMS=${JSON.stringify(bad)} is refused before anything is staged`, async () => {
      const t = target(`bad-${bad.trim().replace(/\W/g, "_")}-${bad.length}`);
      const r = await runScript("copy", big, { env: env(t.data, { PTM_STREAMS: bad }) });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /copy: ERROR: PTM_STREAMS must be a whole number from 1 to 16/);
      assert.ok(!fs.existsSync(t.staging), "nothing staged");
    });
  }

  it("the progress on stderr does not grow with the blocks: 240 blocks, no line per block", async () => {
    const t = target("many");
    const { json, res } = await runJson<CopyOut>("copy", many, {
      env: env(t.data, { PTM_STREAMS: "2", PTM_PROGRESS_SECONDS: "1", PTM_BWLIMIT: "1m" }),
    });
    assert.equal(json.copied, 240);
    const lines = res.stderr.trimEnd().split("\n");
    // listing, sizes, at most one progress line a second, the streams' end, verified.
    assert.ok(
      lines.length <= 4 + Math.ceil(res.ms / 1000),
      `${lines.length} lines in ${res.ms} ms:\n${res.stderr}`,
    );
    assert.doesNotMatch(res.stderr, ULID_RE, "no line per block");
    assert.match(
      res.stderr,
      /copy: \d+\/240 blocks done, [\d.]+ \w+ \/ [\d.]+ MiB \(\d+%\), [\d.]+ \w+\/s, 2 streams/,
    );
    assert.match(res.stderr, /copy: 240 blocks copied and verified/);
    // A rerun after 10 of them were installed: one summary line for the 240 skipped.
    await runJson("install", many.slice(0, 10), { env: { PTM_DATA: t.data } });
    const again = await runJson<CopyOut>("copy", many, { env: env(t.data, { PTM_STREAMS: "2" }) });
    assert.equal(again.json.skipped, 240);
    assert.match(
      again.res.stderr,
      /copy: 240 of 240 blocks skipped: 10 already installed, 230 already staged, [\d.]+ MiB/,
    );
    assert.ok(again.res.stderr.trimEnd().split("\n").length <= 3, again.res.stderr);
    assert.doesNotMatch(again.res.stderr, ULID_RE);
  });
});

// The destroy guard (components/cluster/restart-guard.sh) decides with lib.sh's restart_risk,
// on probe.sh's JSON line; the revert decides with restartRisk.ts. They must agree, under the
// machine's awk and under busybox's.
describe("restart_risk (sh) agrees with restartRisk.ts", () => {
  const T = 1_764_000_000_000 - (1_764_000_000_000 % (2 * H));
  const block = (minTime: number, maxTime: number, parents: number[] = []) => ({
    ulid: "01HZZZZZZZZZZZZZZZZZZZZZZZ",
    minTime,
    maxTime,
    stats: { numSamples: 10 },
    compaction: { level: parents.length ? 2 : 1, parents: parents.map((m) => ({ maxTime: m })) },
    sizeBytes: 1,
  });
  // probe.sh prints /api/v1/status/tsdb's headStats as "tsdb".
  const head = (numSeries: number, minTime: number, maxTime: number) => ({
    numSeries,
    numLabelPairs: 3,
    chunkCount: 5,
    minTime,
    maxTime,
  });
  const cases: {
    name: string;
    blocks: ReturnType<typeof block>[];
    tsdb: unknown;
    snap?: unknown[];
  }[] = [
    {
      name: "head older than an imported block",
      blocks: [block(T - 8 * H, T + 2 * H)],
      tsdb: head(9, T - H, T + 3 * H),
    },
    { name: "head newer than every block", blocks: [block(T - 8 * H, T)], tsdb: head(9, T, T + H) },
    {
      name: "empty head (sentinels)",
      blocks: [block(T - 8 * H, T)],
      tsdb: head(0, 2 ** 63, -(2 ** 63)), // MaxInt64, MinInt64 (as JSON prints them: integers)
    },
    { name: "no blocks", blocks: [], tsdb: head(9, T - H, T) },
    {
      name: "head ends before the newest block",
      blocks: [block(T, T + 6 * H, [T + 2 * H])],
      tsdb: head(9, T + H, T + 3 * H),
    },
    {
      name: "a snapshot's blocks don't count",
      blocks: [block(T - 8 * H, T)],
      tsdb: head(9, T, T + H),
      snap: [block(T, T + 4 * H)],
    },
    { name: "tsdb unreadable", blocks: [block(T - 8 * H, T)], tsdb: null },
  ];
  for (const shell of ["sh", "busybox"] as const) {
    for (const c of cases) {
      it(`${c.name} (${shell})`, () => {
        // probe.sh embeds each meta.json as Prometheus writes it, indented with tabs, its
        // newlines turned into spaces (lib.sh meta_with_size).
        const metas = (bs: unknown[]) =>
          `[${bs.map((b) => JSON.stringify(b, null, "\t").replace(/\n/g, " ")).join(",")}]`;
        const line = JSON.stringify({
          blocks: "@BLOCKS@",
          snapshotBlocks: "@SNAP@",
          buildinfo: null,
          flags: null,
          tsdb: c.tsdb,
          dfAvailableBytes: 1,
          nowMs: T,
        })
          .replace('"@BLOCKS@"', metas(c.blocks))
          .replace('"@SNAP@"', metas(c.snap ?? []));
        const env = shell === "busybox" ? { ...process.env, PATH: busyboxPath() } : process.env;
        const got = execFileSync(
          shell === "busybox" ? path.join(busyboxPath(), "sh") : "sh",
          ["-c", `. "${path.join(REPO, "components/cluster/lib.sh")}"; restart_risk`],
          { input: line + "\n", env },
        )
          .toString()
          .trim();
        const tsdb = c.tsdb as { numSeries: number; minTime: number; maxTime: number } | null;
        const want =
          tsdb === null
            ? "unknown"
            : ((r) => (r ? `risk ${r.lossFromMs} ${r.lossToMs} ${r.safeAfterMs}` : "safe"))(
                restartRisk(c.blocks, headRange({ ...tsdb, chunkCount: 0 } as never)),
              );
        assert.equal(got, want);
      });
    }
  }
});
