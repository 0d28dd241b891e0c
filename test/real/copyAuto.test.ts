// copy.sh with PTM_STREAMS=auto (the program's default copyStreams) against a real rsync
// daemon (sidecar/rsyncd.sh): one stream first, one more while the copy gets 10% faster,
// within PTM_STREAMS_MAX, the container's CPU limit and the node's idle cores.
//
// How fast more streams go is set here, not left to the machine: an rsync in front of the
// real one (on PATH) gives each copy run a --bwlimit per connection. "Per connection": k
// streams move k times as much (each one adds). "Shared": the limit is split among the run's
// streams (the number of filter files copy.sh wrote), so more streams move no more. "Shared
// and contended": k streams move 1/k of what one does. The CPU probes read files the test
// writes (PTM_STAT_FILE, PTM_CGROUP_DIR) instead of this machine's.

import type { CopyResult } from "../../components/decisions/sidecarOutput";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
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
  waitFor,
} from "../support/real";

type CopyOut = Required<CopyResult>;

/** How the rsync in front of the real one limits a copy run of k streams. */
type Limit = "per-connection" | "shared" | "shared-and-contended";

describe("copy.sh with PTM_STREAMS=auto, from a real rsync daemon", function () {
  const password = randomBytes(12).toString("hex");
  const SNAP = "auto";
  const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let root = "";
  let srcData = "";
  let url = "";
  let blocks: string[] = []; // 40 blocks of 1 MiB
  let small: string[] = []; // 4 blocks of 64 KiB

  const ulid = (i: number): string => {
    let tail = "";
    for (let n = i, k = 0; k < 8; k++, n = Math.floor(n / 32)) tail = CROCKFORD[n % 32] + tail;
    return `01JCPYAVT0000000${tail}XX`.slice(0, 26);
  };
  const makeBlock = (u: string, chunkBytes: number): void => {
    const dir = path.join(srcData, "snapshots", SNAP, u);
    fs.mkdirSync(path.join(dir, "chunks"), { recursive: true });
    const meta = { ulid: u, minTime: 0, maxTime: 7_200_000, stats: { numSamples: 1 }, version: 1 };
    fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify(meta, null, "\t"));
    fs.writeFileSync(path.join(dir, "index"), randomBytes(4096));
    fs.writeFileSync(path.join(dir, "tombstones"), Buffer.from([0x01, 0x30, 0xba, 0x30]));
    fs.writeFileSync(path.join(dir, "chunks", "000001"), randomBytes(chunkBytes));
  };
  const snapDir = (): string => path.join(srcData, "snapshots", SNAP);

  /**
   * A bin dir with an rsync that limits each copy run (--filter=merge FILE) as `limit` says,
   * logs the streams of each run ("run K" per stream started) and, for the listing
   * (--list-only), runs `onList` first; `onCopy` before each copy stream.
   */
  const rsyncFront = (
    name: string,
    limit: Limit,
    kib: number,
    onList = "",
    onCopy = "",
  ): string => {
    const bin = path.join(root, `bin-${name}`);
    fs.mkdirSync(bin);
    const real = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
    fs.writeFileSync(
      path.join(bin, "rsync"),
      [
        "#!/bin/sh",
        'f=""; l=""',
        'for a in "$@"; do case "$a" in --filter=merge\\ *) f="${a#--filter=merge }" ;; --list-only) l=1 ;; esac; done',
        `[ -z "$l" ] || { ${onList || ":"}; }`,
        `[ -n "$f" ] || exec '${real}' "$@"`,
        // The run's streams: copy.sh writes one filter per stream before it starts them.
        'k=$(ls "${f%/*}"/filter.* | wc -l)',
        `echo "run $k" >>'${path.join(root, `runs-${name}.log`)}'`,
        onCopy,
        limit === "per-connection"
          ? `b=${kib}`
          : limit === "shared"
            ? `b=$((${kib} / k))`
            : `b=$((${kib} / k / k))`,
        `exec '${real}' "$@" --bwlimit="$b"k`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return bin;
  };
  const runsOf = (name: string): number[] =>
    fs
      .readFileSync(path.join(root, `runs-${name}.log`), "utf8")
      .trim()
      .split("\n")
      .map((l) => Number(l.split(" ")[1]));

  // A /proc/stat of a node with `cpus` cores, `busy` and `total` ticks since boot.
  const procStat = (cpus: number, busy: number, total: number): string => {
    const idle = total - busy;
    const lines = [`cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0`];
    for (let i = 0; i < cpus; i++) lines.push(`cpu${i} 0 0 0 0 0 0 0 0 0 0`);
    return lines.join("\n") + "\n";
  };
  // A node whose ticks do not move: its idle cores can't be read, so they cap nothing.
  const stillNode = (name: string): string => {
    const f = path.join(root, `stat-${name}`);
    fs.writeFileSync(f, procStat(2, 0, 0));
    return f;
  };
  const noCgroup = (): string => {
    const d = path.join(root, "no-cgroup");
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
  const env = (data: string, extra: Record<string, string> = {}) => ({
    PTM_DATA: data,
    PTM_RSYNC_URL: url,
    RSYNC_PASSWORD: password,
    PTM_STREAMS: "auto",
    PTM_AUTO_MIN_BYTES: "1",
    PTM_CGROUP_DIR: noCgroup(),
    ...extra,
  });
  const target = (name: string): { data: string; staging: string } => {
    const data = path.join(root, name);
    fs.mkdirSync(data);
    return { data, staging: path.join(data, "ptm-staging") };
  };
  const assertAllStaged = (staging: string, list: string[]): void => {
    const want = blockChecksums(snapDir()).files;
    assert.deepEqual(
      blockChecksums(staging).files,
      Object.fromEntries(Object.entries(want).filter(([k]) => list.includes(k.slice(0, 26)))),
      "every block staged byte-identically, and nothing else",
    );
    assert.deepEqual(fs.readdirSync(path.join(staging, ".complete")).sort(), [...list].sort());
  };

  before(async () => {
    root = mkTemp("ptm-auto-");
    srcData = path.join(root, "source");
    blocks = Array.from({ length: 40 }, (_, i) => ulid(i));
    for (const u of blocks) makeBlock(u, 1024 * 1024);
    small = Array.from({ length: 4 }, (_, i) => ulid(100 + i));
    for (const u of small) makeBlock(u, 64 * 1024);
    const d = await startRsyncd(srcData, password, path.join(root, "rsyncd"));
    url = `rsync://ptm@127.0.0.1:${d.port}/tsdb/snapshots/${SNAP}`;
  });

  after(async () => {
    await killAll();
    if (root && !process.env["PTM_KEEP"]) fs.rmSync(root, { recursive: true, force: true });
  });

  for (const busybox of [false, true]) {
    it(`adds a stream while each one adds 10%, up to PTM_STREAMS_MAX${busybox ? " (busybox)" : ""}`, async () => {
      const name = `grow-${busybox ? "bb" : "sh"}`;
      const t = target(name);
      const bin = rsyncFront(name, "per-connection", 1024);
      const { json, res } = await runJson<CopyOut>("copy", blocks, {
        busybox,
        env: env(t.data, {
          PTM_STREAMS_MAX: "3",
          PTM_STAT_FILE: stillNode(name),
          PATH: `${bin}:${busybox ? busyboxPath() : process.env["PATH"]}`,
        }),
      });
      assert.equal(json.copied, blocks.length, res.stderr);
      assert.equal(json.streams, 3, res.stderr);
      assert.match(res.stderr, /streams: auto starts 1 stream .* up to 3 \(PTM_STREAMS_MAX=3\)/);
      assert.match(res.stderr, /streams: 1 stream moves [\d.]+ \w+\/s/);
      assert.match(res.stderr, /streams: 2 streams move [\d.]+ \w+\/s, \+\d+% on 1\n/);
      assert.match(res.stderr, /streams: 3 streams move [\d.]+ \w+\/s, \+\d+% on 2\n/);
      assert.match(res.stderr, /streams: keeping 3 \(PTM_STREAMS_MAX=3\)/);
      assert.doesNotMatch(res.stderr, /rsync error/, "the runs auto stopped are not errors");
      // One run per number of streams, in order: 1, then 2, then 3.
      assert.deepEqual([...new Set(runsOf(name))], [1, 2, 3]);
      assertAllStaged(t.staging, blocks);
      assert.equal(json.bytesCopied, json.bytesTotal, JSON.stringify(json));
      // The runs auto stopped print no stats: the bytes they staged (du) stand in, partial
      // files too, which the next run's rsync then receives only the rest of.
      assert.ok(json.bytesReceived >= json.bytesCopied * 0.99, JSON.stringify(json));
      assert.ok(json.bytesReceived <= json.bytesCopied * 1.2, JSON.stringify(json));
    });
  }

  it("stops adding when a stream adds less than 10%, and the streams it has go on", async () => {
    const name = "flat";
    const t = target(name);
    const bin = rsyncFront(name, "shared", 2048);
    const { json, res } = await runJson<CopyOut>("copy", blocks.slice(0, 32), {
      env: env(t.data, {
        PTM_STAT_FILE: stillNode(name),
        PATH: `${bin}:${process.env["PATH"]}`,
      }),
    });
    assert.equal(json.copied, 32, res.stderr);
    assert.match(res.stderr, /up to 16 \(at most 16\)/);
    assert.match(
      res.stderr,
      /streams: 2 streams move [\d.]+ \w+\/s, [+-]\d+% on 1 \(within 10%\): no more streams, these 2 go on/,
    );
    assert.equal(json.streams, 2);
    assert.deepEqual([...new Set(runsOf(name))], [1, 2], "never 3");
    assertAllStaged(t.staging, blocks.slice(0, 32));
  });

  it("takes a stream back when it makes the copy slower, and copies its rest after", async () => {
    const name = "slower";
    const t = target(name);
    const bin = rsyncFront(name, "shared-and-contended", 2048);
    const { json, res } = await runJson<CopyOut>("copy", blocks.slice(0, 32), {
      env: env(t.data, {
        PTM_STAT_FILE: stillNode(name),
        PATH: `${bin}:${process.env["PATH"]}`,
      }),
    });
    assert.equal(json.copied, 32, res.stderr);
    assert.match(
      res.stderr,
      /streams: 2 streams move [\d.]+ \w+\/s, -\d+% on 1: stream 2 stops, the rest of its blocks follow in 1/,
    );
    assert.equal(json.streams, 1);
    assert.deepEqual(runsOf(name), [1, 2, 2, 1], "1 stream, 2, then 1 for the rest");
    assert.doesNotMatch(res.stderr, /rsync error/);
    assertAllStaged(t.staging, blocks.slice(0, 32));
    assert.equal(json.bytesCopied, json.bytesTotal, JSON.stringify(json));
  });

  it("goes no further than this container's CPU limit (cgroup v2 cpu.max, rounded up)", async () => {
    const name = "cgroup";
    const t = target(name);
    const cg = path.join(root, "cgroup-1500m");
    fs.mkdirSync(cg);
    fs.writeFileSync(path.join(cg, "cpu.max"), "150000 100000\n");
    const bin = rsyncFront(name, "per-connection", 1024);
    const { json, res } = await runJson<CopyOut>("copy", blocks.slice(0, 24), {
      env: env(t.data, {
        PTM_CGROUP_DIR: cg,
        PTM_STAT_FILE: stillNode(name),
        PATH: `${bin}:${process.env["PATH"]}`,
      }),
    });
    assert.match(res.stderr, /up to 2 \(this container's CPU limit\)/);
    assert.match(res.stderr, /streams: keeping 2 \(this container's CPU limit\)/);
    assert.equal(json.streams, 2);
    assert.deepEqual([...new Set(runsOf(name))], [1, 2]);
    assertAllStaged(t.staging, blocks.slice(0, 24));
  });

  it("goes no further than the node's idle cores, read while one stream runs (no wait before it)", async () => {
    const name = "idle";
    const t = target(name);
    // 4 cores. The ticks move only once the first copy stream has started (the rsync in
    // front writes them): read before it, the node's idle cores can't be known. Between the
    // read before the listing and the one after the first stream's measurement, 1000 ticks
    // went by, 700 of them busy: 1.2 idle cores, so 1 stream.
    const stat = path.join(root, "stat-idle");
    fs.writeFileSync(stat, procStat(4, 5000, 20000));
    const after = path.join(root, "stat-idle-after");
    fs.writeFileSync(after, procStat(4, 5700, 21000));
    const bin = rsyncFront(name, "per-connection", 1024, "", `cp '${after}' '${stat}'`);
    const { json, res } = await runJson<CopyOut>("copy", blocks.slice(0, 8), {
      env: env(t.data, { PTM_STAT_FILE: stat, PATH: `${bin}:${process.env["PATH"]}` }),
    });
    assert.match(res.stderr, /streams: 1 stream moves/);
    assert.match(res.stderr, /streams: keeping 1 \(this node's idle cores\)/);
    assert.equal(json.streams, 1);
    assert.deepEqual(runsOf(name), [1]);
    assertAllStaged(t.staging, blocks.slice(0, 8));
  });

  for (const busybox of [false, true])
    it(`ends with its copy: a run that ends while auto measures is noticed at once, not at auto's next look a second later${busybox ? " (busybox)" : ""}`, async () => {
      const name = `ends-measuring-${busybox ? "bb" : "sh"}`;
      const t = target(name);
      // The copy stream takes 1.5 s (then the real rsync, a moment): it ends in the middle of
      // one of auto's seconds of measuring, and its end time goes to a log.
      const bin = path.join(root, `bin-${name}`);
      fs.mkdirSync(bin);
      const ends = path.join(root, `ends-${name}.log`);
      const real = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
      const date = execFileSync("sh", ["-c", "command -v date"]).toString().trim();
      fs.writeFileSync(
        path.join(bin, "rsync"),
        [
          "#!/bin/sh",
          `case " $* " in *" --list-only "*) exec '${real}' "$@" ;; esac`,
          "sleep 1.5",
          `rc=0; '${real}' "$@" || rc=$?`,
          `'${date}' +%s%N >>'${ends}'`,
          'exit "$rc"',
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      const gaps: number[] = [];
      for (let i = 0; i < 3; i++) {
        fs.rmSync(t.staging, { recursive: true, force: true });
        const { json, res } = await runJson<CopyOut>("copy", small, {
          busybox,
          env: env(t.data, {
            PTM_STAT_FILE: stillNode(name),
            PATH: `${bin}:${busybox ? busyboxPath() : process.env["PATH"]}`,
          }),
        });
        const exited = Date.now();
        assert.match(res.stderr, /streams: auto starts 1 stream/);
        assert.equal(json.streams, 1);
        assertAllStaged(t.staging, small);
        const end = fs.readFileSync(ends, "utf8").trim().split("\n").pop()!;
        gaps.push(exited - Number(BigInt(end) / 1_000_000n));
      }
      // After the stream: the verification of 4 tiny blocks and the JSON line, tens of ms.
      assert.ok(
        Math.max(...gaps) < 300,
        `copy.sh ended ${gaps.join(", ")} ms after its copy stream did (3 runs)`,
      );
    });

  it("keeps one stream when it moved nothing over a measurement (a stalled copy gains nothing from more)", async () => {
    const name = "stalled";
    const t = target(name);
    // The first copy stream waits 6 s before it connects: nothing is staged while auto
    // measures (1 s to settle, 3 s).
    const bin = rsyncFront(name, "per-connection", 4096, "", "sleep 6");
    const { json, res } = await runJson<CopyOut>("copy", blocks.slice(0, 8), {
      env: env(t.data, { PTM_STAT_FILE: stillNode(name), PATH: `${bin}:${process.env["PATH"]}` }),
    });
    assert.match(res.stderr, /streams: keeping 1: nothing was staged over 3 s/);
    assert.equal(json.streams, 1);
    assert.deepEqual(runsOf(name), [1]);
    assertAllStaged(t.staging, blocks.slice(0, 8));
  });

  for (const shell of ["sh", "busybox"] as const)
    it(`the pod's SIGTERM while auto measures: the copy stops, says why, and resumes (${shell})`, async () => {
      // As in scripts.test.ts (issue 23): a PID namespace of its own, idle.sh as the
      // container's main process, the copy an exec'd step; the SIGTERM goes to idle.sh only,
      // once 2 streams run (auto's second measurement).
      const name = `pod-stops-${shell}`;
      const t = target(name);
      const bin = rsyncFront(name, "per-connection", 1024);
      const trigger = path.join(root, `${name}.now`);
      const list = blocks.slice(0, 24);
      const pod = copyInPod(
        list,
        {
          PATH: `${bin}:${shell === "busybox" ? busyboxPath() : (process.env["PATH"] ?? "/usr/bin:/bin")}`,
          ...env(t.data, { PTM_STREAMS_MAX: "3", PTM_STAT_FILE: stillNode(name) }),
        },
        trigger,
      );
      await waitFor(
        "2 streams running",
        60_000,
        async () => (runsOf(name).includes(2) ? true : undefined),
        100,
      );
      assertStoppedByPod(await pod.stop(), 24);
      const staged = dirBytes(t.staging);
      const { json } = await runJson<CopyOut>("copy", list, {
        env: env(t.data, { PTM_STREAMS: "1" }),
      });
      assert.equal(json.copied + json.skipped, list.length);
      assert.ok(json.skipped > 0 && staged > 0, JSON.stringify(json));
      assertAllStaged(t.staging, list);
    });

  it("is one stream under a bandwidth limit, and for a copy under PTM_AUTO_MIN_BYTES", async () => {
    const limited = target("auto-bwlimit");
    const a = await runJson<CopyOut>("copy", small, {
      env: env(limited.data, { PTM_BWLIMIT: "8m" }),
    });
    assert.equal(a.json.streams, 1);
    assert.match(a.res.stderr, /streams: auto is 1 stream under PTM_BWLIMIT=8m/);
    const tiny = target("auto-min");
    const b = await runJson<CopyOut>("copy", small, {
      env: env(tiny.data, { PTM_AUTO_MIN_BYTES: "1073741824" }),
    });
    assert.equal(b.json.streams, 1);
    assert.match(
      b.res.stderr,
      /streams: auto is 1 stream: [\d.]+ KiB to copy is under the 1\.0 GiB/,
    );
    assertAllStaged(tiny.staging, small);
  });

  for (const bad of ["0", "17", "x", "auto"]) {
    it(`PTM_STREAMS_MAX=${JSON.stringify(bad)} is refused before anything is staged`, async () => {
      const t = target(`bad-max-${bad}`);
      const r = await runScript("copy", small, { env: env(t.data, { PTM_STREAMS_MAX: bad }) });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /copy: ERROR: PTM_STREAMS_MAX must be a whole number from 1 to 16/);
      assert.ok(!fs.existsSync(t.staging), "nothing staged");
    });
  }
});
