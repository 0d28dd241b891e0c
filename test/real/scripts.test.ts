// Sidecar script edge cases that need no Prometheus: the snapshot's retry
// when a compaction deletes a block while it is being linked, and refusals.

import * as assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  H,
  REPO,
  backfill,
  busyboxPath,
  killAll,
  mkTemp,
  runJson,
  runScript,
  takeSnapshot,
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
