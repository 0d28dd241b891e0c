import * as assert from "node:assert/strict";
import { SOURCE_CONFIG } from "../fixtures/workloads";
import {
  COUNTED_WINDOWS,
  HEALTHY,
  line,
  migratingCluster,
  snapshotOf,
  SOURCE_BLOCKS,
  sourceProbe,
  T0,
  targetProbe,
} from "../fixtures/probes";
import { sidecarScript } from "../../components/cluster/kubectl";
import { namesFor } from "../../components/cluster/naming";
import { TsdbLocation } from "../../components/decisions/workload";
import { ExpectedBlock, expectedBlocks } from "../../components/decisions/verify";
import { MigrationVerification } from "../../components/steps/migrationVerification";
import { serializeRecord } from "../../components/decisions/verificationRecord";
import { parseWait } from "../../components/decisions/sidecarOutput";
import { byType, FakeCluster, one, runProgram, runWith } from "./harness";

const H = 3_600_000;
const ULIDS = SOURCE_BLOCKS.map((b) => b.ulid);

// Every window the program asks for: aligned ends, the target's first own sample (5h), the
// cutoff. (Before issue 9 this answered only 2, 4 and 6, and the 5h window went unchecked.)
const windows = COUNTED_WINDOWS;
const health = HEALTHY;

function migrating(over: Partial<FakeCluster> = {}): FakeCluster {
  return { ...migratingCluster(), ...over };
}

const config = { phase: "migrate", source: SOURCE_CONFIG };
const commandNamed = (r: Awaited<ReturnType<typeof runProgram>>, name: string) =>
  one(r, "command:local:Command", name).inputs as Record<string, string>;

describe("program: phase migrate", () => {
  it("adds the snapshot, copy and install steps to everything prepare has", async () => {
    const r = await runProgram(config, migrating());
    const names = byType(r, "command:local:Command")
      .map((x) => x.name)
      .sort();
    assert.deepEqual(names, [
      "migration-block-copy",
      "migration-block-copy-event",
      "migration-block-install",
      "migration-block-install-event",
      "migration-compaction-wait",
      "migration-rsync-credentials-migration-id",
      "migration-rsync-credentials-password",
      "migration-source-rsync-daemon-event",
      "migration-source-rsync-daemon-reverted-event",
      "migration-source-rsync-daemon-rollout",
      "migration-source-rsync-daemon-settle",
      "migration-source-snapshot",
      "migration-source-snapshot-event",
      "migration-target-restart-guard",
      "migration-target-rsync-client-event",
      "migration-target-rsync-client-reverted-event",
      "migration-target-rsync-client-rollout",
      "migration-target-rsync-client-settle",
      "migration-verification-event",
    ]);
    assert.equal(byType(r, "kubernetes:apps/v1:DeploymentPatch").length, 1);
    assert.equal(byType(r, "kubernetes:apps/v1:StatefulSetPatch").length, 1);
  });

  it("snapshots in the source sidecar, and removes only the snapshot when deleted", async () => {
    const r = await runProgram(config, migrating());
    const snap = commandNamed(r, "migration-source-snapshot");
    assert.match(
      snap.create,
      /^exec kubectl exec -n 'monitoring' 'deployment\/prometheus-server' -c 'ptm-rsyncd' -- env 'PTM_SNAPSHOT=ptm-test' 'PTM_INCLUDE_HEAD=false' sh -c /,
    );
    assert.match(snap.create, /'ptm-snapshot'$/);
    // The command runs exactly the repository's scripts, carried in its environment.
    const env = snap.environment as unknown as Record<string, string>;
    assert.equal(env.PTM_CREATE_SCRIPT, sidecarScript("snapshot"));
    // The removal runs in the sidecar through snapshot-cleanup.sh, which first looks whether
    // the source still has a pod to run it in (issue 20 row 8).
    assert.equal(env.PTM_CLEANUP_SCRIPT, sidecarScript("cleanup-source"));
    assert.match(env.PTM_DELETE_SCRIPT, /pod_presence\(\)/);
    assert.match(
      snap.delete,
      /^sh -c "\$PTM_DELETE_SCRIPT" 'snapshot-cleanup' 'monitoring' 'deployment' 'prometheus-server' '' 'ptm-rsyncd' 'ptm-test' 'the snapshot directory \/data\/snapshots\/ptm-test /,
    );
  });

  it("copies exactly the planned blocks from the daemon into the target, within the bandwidth limit", async () => {
    const r = await runProgram({ ...config, bandwidthLimit: "20m" }, migrating());
    const copy = commandNamed(r, "migration-block-copy");
    assert.match(
      copy.create,
      /^exec kubectl exec -n 'kubeprod' 'statefulset\/prometheus' -c 'ptm-rsync' -- env /,
    );
    assert.match(
      copy.create,
      /'PTM_RSYNC_URL=rsync:\/\/ptm@10\.0\.0\.42:873\/tsdb\/snapshots\/ptm-test'/,
    );
    assert.match(copy.create, /'PTM_BWLIMIT=20m'/);
    // copyStreams' default (issue 25): auto, up to the source sidecar's CPU limit (1 CPU by
    // default, so one stream).
    assert.match(
      copy.create,
      /'PTM_STREAMS=auto' 'PTM_STREAMS_MAX=1' 'PTM_STREAMS_MAX_WHY=the CPU limit of the source sidecar, sidecarResources\.limits\.cpu 1' /,
      "copyStreams' default",
    );
    assert.ok(copy.create.endsWith(`'ptm-copy' ${ULIDS.map((u) => `'${u}'`).join(" ")}`));
    // Through snapshot-cleanup.sh, which first looks whether the replica still has a pod
    // (issue 20 row 7), then runs cleanup-target.sh in its sidecar.
    assert.match(
      copy.delete,
      /^sh -c "\$PTM_DELETE_SCRIPT" 'snapshot-cleanup' 'kubeprod' 'statefulset' 'prometheus' '' 'ptm-rsync' '' '.*' 'cleanup-target' 'the staging dir'$/,
    );
    const env = copy.environment as unknown as Record<string, string>;
    assert.equal(env.PTM_CLEANUP_SCRIPT, sidecarScript("cleanup-target"));
    const install = commandNamed(r, "migration-block-install");
    assert.ok(install.create.endsWith(`'ptm-install' ${ULIDS.map((u) => `'${u}'`).join(" ")}`));
    assert.equal(install.delete, undefined, "installed blocks stay on the target");
  });

  it("copies in the configured number of parallel rsync streams (copyStreams)", async () => {
    const r = await runProgram({ ...config, copyStreams: 4 }, migrating());
    const copy = commandNamed(r, "migration-block-copy");
    assert.match(copy.create, /'PTM_STREAMS=4' /);
    assert.doesNotMatch(copy.create, /PTM_STREAMS_MAX/, "an explicit number wins");
    assert.match(copy.create, /'PTM_BWLIMIT=' /);
  });

  it("copyStreams auto goes up to the source sidecar's CPU limit, rounded up (issue 25)", async () => {
    const resources = { limits: { cpu: "2500m", memory: "256Mi" } };
    const r = await runProgram({ ...config, sidecarResources: resources }, migrating());
    const copy = commandNamed(r, "migration-block-copy");
    assert.match(copy.create, /'PTM_STREAMS=auto' 'PTM_STREAMS_MAX=3' /);
  });

  it("runs the steps in order: rollout, snapshot, copy, install", async () => {
    const r = await runProgram(config, migrating(), {
      slow: [
        "migration-source-rsync-daemon",
        "migration-target-rsync-client",
        "migration-source-snapshot",
        "migration-block-copy",
      ],
    });
    const seq = (name: string) =>
      r.resources.find((x) => x.name === name && !x.type.startsWith("ptm:"))!.seq;
    assert.ok(seq("migration-source-snapshot") > seq("migration-source-rsync-daemon"));
    assert.ok(seq("migration-source-snapshot") > seq("migration-compaction-wait"));
    assert.ok(seq("migration-block-copy") > seq("migration-source-snapshot"));
    assert.ok(seq("migration-block-copy") > seq("migration-target-rsync-client"));
    assert.ok(seq("migration-block-install") > seq("migration-block-copy"));
  });

  it("reports the plan, the copy and the verification as stack outputs", async () => {
    const r = await runProgram(config, migrating());
    const plan = r.outputs.plan as Record<string, unknown>;
    assert.equal(plan.blocks, 3);
    assert.equal(plan.bytes, 6e6);
    assert.equal(plan.gapSeconds, 0);
    const m = r.outputs.migration as Record<string, Record<string, unknown>>;
    assert.equal((m.verification as Record<string, unknown>).ok, true);
    assert.equal((m.verification as Record<string, unknown>).windowsCompared, 4);
    assert.equal((m.copy as Record<string, unknown>).bytesCopied, 6e6);
  });

  it("fails the up with the numbers when the counts differ", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:counts"] = line({
      windows: [2, 4, 5, 6].map((h) => ({ endMs: T0 + h * H, count: h === 4 ? 1999 : 2000 })),
      health: { blocksLoaded: 3, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 },
    });
    await assert.rejects(
      runProgram(config, c),
      /verification failed: 1 of 4 windows differ: .* source 2000 target 1999/,
    );
  });

  it("shows the plan at preview, before anything runs", async () => {
    const r = await runProgram(config, migrating(), { preview: true });
    assert.equal((r.outputs.plan as Record<string, unknown>).blocks, 3);
  });

  it("refuses with advice when the target started too late and waiting is not allowed", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:probe"] = line(targetProbe({ startedAtH: 7 }));
    await assert.rejects(
      runProgram(config, c),
      /:maxWaitMinutes: the plan leaves a gap of 60 min; .* set maxWaitMinutes to at least/,
    );
  });

  it("with includeHead, plans the head too, so a late target leaves no gap", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:probe"] = line(targetProbe({ startedAtH: 7 }));
    const r = await runProgram({ ...config, includeHead: true }, c, { preview: true });
    const plan = r.outputs.plan as Record<string, unknown>;
    assert.equal(plan.blocks, 4);
    assert.equal(plan.gapSeconds, 0);
    assert.match(commandNamed(r, "migration-source-snapshot").create, /'PTM_INCLUDE_HEAD=true'/);
  });

  it("waits for the next compaction when that is allowed", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:probe"] = line(targetProbe({ startedAtH: 7 }));
    const r = await runProgram({ ...config, maxWaitMinutes: 120 }, c);
    const wait = commandNamed(r, "migration-compaction-wait");
    assert.match(wait.create, new RegExp(`'PTM_AFTER_MS=${T0 + 8 * H}'`));
  });

  it("does not wait when there is no gap", async () => {
    const r = await runProgram(config, migrating());
    assert.match(commandNamed(r, "migration-compaction-wait").create, /'PTM_AFTER_MS=0'/);
  });

  it("only prepares when the sidecars are not running yet", async () => {
    const c = migrating();
    delete c.exec!["ptm-rsyncd:probe"];
    const r = await runProgram(config, c);
    assert.deepEqual(
      byType(r, "command:local:Command")
        .map((x) => x.name)
        .sort(),
      [
        "migration-rsync-credentials-migration-id",
        "migration-rsync-credentials-password",
        "migration-source-rsync-daemon-event",
        "migration-source-rsync-daemon-reverted-event",
        "migration-source-rsync-daemon-rollout",
        "migration-source-rsync-daemon-settle",
        "migration-target-rsync-client-event",
        "migration-target-rsync-client-reverted-event",
        "migration-target-rsync-client-rollout",
        "migration-target-rsync-client-settle",
      ],
    );
    assert.equal(r.outputs.status, "waiting-for-sidecars");
    assert.equal(r.outputs.plan, null);
    assert.match(String(r.outputs.message), /run `pulumi up` again/);
  });
});

describe("program: phase migrate, proof that cannot pass vacuously (issue 9)", () => {
  // Item 3: a metric missing from /metrics was -1, and -1 + 1 compaction failure passed.
  it("a negative health value fails instead of offsetting a real failure", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:counts"] = line({
      windows,
      health: { ...health, reloadFailures: -1, compactionsFailed: 1 },
    });
    await assert.rejects(
      runProgram(config, c),
      /verification: counts\.sh on the target StatefulSet kubeprod\/prometheus: counts: health\.reloadFailures must be a number >= 0, got -1/,
    );
  });

  // Item 5.
  it("counts that are 0 on both sides in every window fail the up", async () => {
    const c = migrating();
    const zero = line({ windows: windows.map((w) => ({ ...w, count: 0 })), health });
    c.exec!["ptm-rsyncd:counts"] = zero;
    c.exec!["ptm-rsync:counts"] = zero;
    await assert.rejects(
      runProgram(config, c),
      /verification failed: no window holds source samples: 4 of 4 windows are empty on both/,
    );
  });

  // Item 6: every parse of sidecar output is validated, and names the step.
  it("counts output that doesn't validate names the step and the value", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:counts"] = line({ windows: [{ endMs: T0 + 2 * H, count: "2k" }], health });
    await assert.rejects(
      runProgram(config, c),
      /verification: counts\.sh on the target StatefulSet kubeprod\/prometheus: counts: windows\[0\]\.count must be a number >= 0, got "2k"/,
    );
  });
  it("snapshot output that doesn't validate names the step", async () => {
    const c = migrating();
    c.exec!["ptm-rsyncd:snapshot-blocks"] = snapshotOf(
      SOURCE_BLOCKS.map((b, i) => (i === 1 ? { ...b, minTime: String(b.minTime) } : b)) as never,
      { createdMs: T0 + 7.5 * H, reused: false },
    ).listing;
    await assert.rejects(
      runProgram(config, c),
      /source-snapshot: .*"minTime" must be a finite number/,
    );
  });
  it("a snapshot other than the one asked for is refused", async () => {
    const c = migrating();
    c.commandStdout!["migration-source-snapshot"] = snapshotOf(SOURCE_BLOCKS, {
      snapshot: "someone-else",
      createdMs: T0,
      reused: true,
    }).stdout;
    await assert.rejects(
      runProgram(config, c),
      /source-snapshot: the script reported snapshot "someone-else", not "ptm-test"/,
    );
  });
  it("the snapshot's blocks are read after the step and must be what it made (issue 14: its output is a summary)", async () => {
    const blocksOf = (n: number) => SOURCE_BLOCKS.slice(0, n);
    // One block fewer than the step reported: the snapshot changed since.
    let c = migrating();
    c.exec!["ptm-rsyncd:snapshot-blocks"] = snapshotOf(blocksOf(2), {
      createdMs: T0,
      reused: false,
    }).listing;
    await assert.rejects(
      runProgram(config, c),
      /source-snapshot: snapshots\/ptm-test holds 2 blocks of \d+ bytes; the snapshot step made 3 blocks of \d+ bytes/,
    );
    // Another migration's snapshot under this name is never used.
    c = migrating();
    c.exec!["ptm-rsyncd:snapshot-blocks"] = snapshotOf(SOURCE_BLOCKS, {
      createdMs: T0,
      reused: false,
      owner: "other",
    }).listing;
    await assert.rejects(
      runProgram(config, c),
      /source-snapshot: snapshots\/ptm-test is no longer this migration's \(owner "other"\)/,
    );
    // The sidecar can't be reached to read them: the step says so, nothing is planned.
    c = migrating();
    delete c.exec!["ptm-rsyncd:snapshot-blocks"];
    await assert.rejects(
      runProgram(config, c),
      /source-snapshot: reading the blocks of snapshots\/ptm-test in Deployment monitoring\/prometheus-server \(container ptm-rsyncd\) failed/,
    );
    // As the scripts print them: the copy is planned from the listing.
    const r = await runProgram(config, migrating());
    const copy = commandNamed(r, "migration-block-copy");
    assert.ok(copy.create.endsWith(`'ptm-copy' ${ULIDS.map((u) => `'${u}'`).join(" ")}`));
  });
  it("snapshot output that is not JSON names the step", async () => {
    const c = migrating();
    c.commandStdout!["migration-source-snapshot"] = "snapshot: ERROR: something\n";
    await assert.rejects(runProgram(config, c), /source-snapshot: last output line is not JSON/);
  });
});

describe("program: the admin API's rollout waits for the probes (issue 14)", () => {
  it("switching the admin API on (it replaces the source pod) is declared only after the source's probe has read it", async () => {
    // In the lab at 2,050 blocks the probe took seconds and the rollout killed it (exit 137).
    const sourceProbe = /-c 'ptm-rsyncd' .*'ptm-probe'/;
    const r = await runProgram({ ...config, includeHead: true }, migrating(), {
      slowRuns: sourceProbe,
    });
    const probed = r.events.findIndex((e) => e.startsWith("done ") && sourceProbe.test(e));
    const switched = r.events.findIndex(
      (e) => e === "ptm:index:AdminApiSwitch migration-source-admin-api",
    );
    assert.ok(probed >= 0 && switched >= 0, `probe at ${probed}, switch at ${switched}`);
    assert.ok(
      probed < switched,
      `the switch (event ${switched}) came before the probe (${probed})`,
    );
  });
  it("every step that runs in the source pod waits for that rollout", async () => {
    // In the lab at 2,050 blocks the compaction wait ran beside it and was killed (exit 137).
    const r = await runProgram({ ...config, includeHead: true }, migrating(), {
      slow: ["migration-source-admin-api"],
    });
    const seq = (name: string) =>
      r.resources.find((x) => x.name === name && !x.type.startsWith("ptm:"))!.seq;
    for (const step of ["migration-compaction-wait", "migration-source-snapshot"])
      assert.ok(
        seq(step) > seq("migration-source-admin-api"),
        `${step} before the admin API's rollout`,
      );
  });
});

describe("program: phase migrate, every step's output validated (issue 9 item 6)", () => {
  it("copy output that doesn't validate names the step", async () => {
    const c = migrating();
    c.commandStdout!["migration-block-copy"] = line({
      copied: ["not-a-count"],
      skipped: 0,
      bytesCopied: 6e6,
      bytesTotal: 6e6,
    });
    await assert.rejects(
      runProgram(config, c),
      /block-copy: copied must be a number >= 0, got \["not-a-count"\]/,
    );
  });
  it("a copy that accounts for fewer blocks than the plan's is refused", async () => {
    const c = migrating();
    c.commandStdout!["migration-block-copy"] = line({
      copied: 2,
      skipped: 0,
      bytesCopied: 4e6,
      bytesTotal: 4e6,
    });
    await assert.rejects(
      runProgram(config, c),
      /block-copy: the script reports 2 blocks copied or skipped, the plan has 3/,
    );
  });
  it("install output that doesn't validate names the step", async () => {
    const c = migrating();
    c.commandStdout!["migration-block-install"] = line({ installed: 2, alreadyPresent: 0 });
    await assert.rejects(
      runProgram(config, c),
      /block-install: the script reports 2 blocks installed or present, asked for 3/,
    );
  });
  it("compaction-wait output that doesn't validate names the step", () => {
    // Nothing downstream reads this step's output, so the parser is tested directly.
    assert.throws(
      () => parseWait(line({ waitedSeconds: "soon", newestMaxTime: T0 })),
      /compaction-wait: waitedSeconds must be a number >= 0, got "soon"/,
    );
    assert.throws(() => parseWait("compaction-wait: ERROR\n"), /compaction-wait: last output line/);
    assert.deepEqual(parseWait(line({ waitedSeconds: 3, newestMaxTime: T0 })), {
      waitedSeconds: 3,
      newestMaxTime: T0,
    });
  });
});

/** MigrationVerification alone, with the inputs the program computes from the plan. */
function verification(args: {
  windowEnds: number[];
  loadedDownToMs: number;
  blocks?: ExpectedBlock[];
  gapMs?: number;
}) {
  const loc = (kind: "Deployment" | "StatefulSet", namespace: string, name: string, c: string) =>
    ({ ref: { kind, namespace, name, container: c } }) as unknown as TsdbLocation;
  return async () => {
    const v = new MigrationVerification("verification", {
      names: namesFor("migration"),
      recordName: "ptm-test-verification",
      source: loc("Deployment", "monitoring", "prometheus-server", "prometheus-server"),
      sourceContainer: "ptm-rsyncd",
      target: loc("StatefulSet", "kubeprod", "prometheus", "prometheus"),
      targetContainer: "ptm-rsync",
      targetEarliestMs: T0 + 5 * H,
      after: [],
      ...args,
      blocks: args.blocks ?? EXPECTED,
      gapMs: args.gapMs ?? 0,
    });
    return { verification: v.result };
  };
}

const EXPECTED: ExpectedBlock[] = SOURCE_BLOCKS.map((b) => ({
  ulid: b.ulid,
  numSamples: b.stats.numSamples,
  numSeries: b.stats.numSeries,
  sources: b.compaction.sources,
}));
const ENDS = windows.map((w) => w.endMs);

function counted(target: Record<string, unknown> = {}): FakeCluster {
  return {
    objects: {},
    exec: {
      "ptm-rsyncd:counts": line({ windows, health }),
      "ptm-rsync:counts": line({ windows, health, blocks: SOURCE_BLOCKS, ...target }),
    },
  };
}

const targetCounts = (r: Awaited<ReturnType<typeof runWith>>) =>
  r.commands.filter((c) => /-c 'ptm-rsync' .*'ptm-counts'/.test(c));

describe("MigrationVerification (issue 9)", () => {
  // Item 1.
  it("a plan with blocks but no compared windows fails", async () => {
    await assert.rejects(
      runWith(
        {},
        counted(),
        verification({ windowEnds: [], loadedDownToMs: T0, blocks: EXPECTED, gapMs: 0 }),
      ),
      /verification failed: the plan copies 3 blocks but no window was compared/,
    );
  });
  it("nothing to copy and no gap: 'nothing to verify', said so, and no load wait", async () => {
    const r = await runWith(
      {},
      counted({ windows: [] }),
      verification({ windowEnds: [], loadedDownToMs: Infinity, blocks: [], gapMs: 0 }),
    );
    const v = r.outputs.verification as Record<string, unknown>;
    assert.equal(v.ok, true);
    assert.equal(v.nothingToVerify, true);
    assert.match(
      String(v.summary),
      /^nothing to verify: the plan copies no blocks and leaves no gap/,
    );
    assert.equal(targetCounts(r).length, 1);
    assert.doesNotMatch(targetCounts(r)[0]!, /PTM_WAIT_LOADED_MS|PTM_LIST_BLOCKS/);
  });

  // Item 2.
  for (const bad of [Infinity, NaN]) {
    it(`refuses loadedDownToMs ${bad} when there are blocks to wait for`, async () => {
      await assert.rejects(
        runWith(
          {},
          counted(),
          verification({ windowEnds: ENDS, loadedDownToMs: bad, blocks: EXPECTED }),
        ),
        /verification: loadedDownToMs must be a ms timestamp .*, got (Infinity|NaN)/,
      );
    });
  }

  // Item 4.
  it("compares the plan's blocks with the target's listing, and names what it compared", async () => {
    const r = await runWith(
      {},
      counted(),
      verification({ windowEnds: ENDS, loadedDownToMs: T0, blocks: EXPECTED, gapMs: 0 }),
    );
    const [cmd] = targetCounts(r);
    assert.match(cmd!, new RegExp(`'PTM_WAIT_LOADED_MS=${T0}' 'PTM_LIST_BLOCKS=true'`));
    const v = r.outputs.verification as Record<string, unknown>;
    assert.equal(v.ok, true);
    assert.match(
      String(v.summary),
      /^3 windows equal \(6,000 samples\), 1 window at least the source's \(2,000 source samples; the target also scraped them itself\); 3 blocks: IDs and sample\/series counts equal, all loaded; against the record taken at the install \(20\d\d-/,
    );
  });
  it("a planned block missing on the target fails the up, naming it", async () => {
    await assert.rejects(
      runWith(
        {},
        counted({ blocks: SOURCE_BLOCKS.slice(0, 2), health: { ...health, blocksLoaded: 2 } }),
        verification({ windowEnds: ENDS, loadedDownToMs: T0, blocks: EXPECTED, gapMs: 0 }),
      ),
      new RegExp(`verification failed: blocks: 1 of 3 blocks not on the target: ${ULIDS[2]}`),
    );
  });
  it("different stats on the target fail the up, with the numbers", async () => {
    const changed = SOURCE_BLOCKS.map((b, i) =>
      i === 0 ? { ...b, stats: { ...b.stats, numSeries: 9 } } : b,
    );
    await assert.rejects(
      runWith(
        {},
        counted({ blocks: changed }),
        verification({ windowEnds: ENDS, loadedDownToMs: T0, blocks: EXPECTED, gapMs: 0 }),
      ),
      new RegExp(`blocks: stats differ: ${ULIDS[0]} numSeries: plan 10, target 9`),
    );
  });
});

describe("MigrationVerification: the record frozen at the install (issue 9 item 8)", () => {
  // Later ups see live servers that moved on: the source's retention dropped its oldest data,
  // so its first window now counts 0 while the target still holds those samples.
  const retained = windows.map((w, i) => (i === 0 ? { ...w, count: 0 } : w));
  const later = (): FakeCluster => ({
    objects: {},
    exec: {
      "ptm-rsyncd:counts": line({ windows: retained, health }),
      "ptm-rsync:counts": line({ windows, health, blocks: SOURCE_BLOCKS }),
      "ptm-rsyncd:snapshot-blocks": snapshotOf(SOURCE_BLOCKS, {
        createdMs: T0 + 7.5 * H,
        reused: false,
      }).listing,
    },
  });
  const live = { windowEnds: ENDS, loadedDownToMs: T0, blocks: EXPECTED, gapMs: 0 };
  const liveArgs = { ...live };

  it("the live state alone would fail the good migration (the record is what saves it)", async () => {
    await assert.rejects(
      runWith({}, later(), verification(liveArgs)),
      /verification failed: 1 of 4 windows differ: .* source 0 target 2000 \(equal\)/,
    );
  });

  it("verifies the target against the record: its windows, its source counts, its plan", async () => {
    const c = later();
    c.priorState = {
      "verification-record": {
        data: {
          "record.json": serializeRecord({
            frozenAtMs: T0 + 8 * H,
            windowEnds: ENDS,
            targetEarliestMs: T0 + 5 * H,
            loadedDownToMs: T0,
            blocks: EXPECTED,
            gapMs: 0,
            source: { windows, health },
          }),
        },
      },
    };
    const r = await runWith({}, c, verification(liveArgs));
    const v = r.outputs.verification as Record<string, unknown>;
    assert.equal(v.ok, true, String(v.summary));
    assert.match(
      String(v.summary),
      /^3 windows equal \(6,000 samples\), 1 window at least the source's \(2,000 source samples; the target also scraped them itself\); /,
    );
    assert.ok(
      String(v.summary).endsWith(
        `; against the record taken at the install (${new Date(T0 + 8 * H).toISOString()})`,
      ),
      String(v.summary),
    );
    const cm = one(r, "kubernetes:core/v1:ConfigMap", "verification-record");
    assert.equal((cm.inputs.metadata as Record<string, unknown>).namespace, "kubeprod");
  });
});

describe("MigrationVerification: the source's retention between the snapshot and the install (issue 20 row 13)", () => {
  it("the windows it deleted are left out of the comparison, not a failure for good", async () => {
    // At the install the source no longer holds [0h, 2h): its oldest sample is at 2h.
    const c: FakeCluster = {
      objects: {},
      exec: {
        "ptm-rsyncd:counts": line({
          windows: windows.map((w, i) => (i === 0 ? { ...w, count: 0 } : w)),
          health: { ...health, lowestTimestampMs: T0 + 2 * H },
        }),
        "ptm-rsync:counts": line({ windows, health, blocks: SOURCE_BLOCKS }),
      },
    };
    const r = await runWith(
      {},
      c,
      verification({
        windowEnds: ENDS,
        loadedDownToMs: T0,
        blocks: expectedBlocks(SOURCE_BLOCKS),
        gapMs: 0,
      }),
    );
    const v = r.outputs.verification as Record<string, unknown>;
    assert.equal(v.ok, true, String(v.summary));
    assert.match(
      String(v.summary),
      /^2 windows equal \(4,000 samples\), 1 window at least the source's \(2,000 source samples; the target also scraped them itself\); 1 window not compared with the source: its retention deleted the data after the snapshot \(its oldest sample at the install: [^)]+\): 1 proven against the snapshot's block stats instead \(2,000 samples in 1 block\); 3 blocks: /,
    );
  });
});

describe("program: a snapshot left by another attempt is never reused (issue 9 item 9)", () => {
  // The target started scraping at 7h, after the source's newest block (6h): a 1h gap, which
  // the gate refuses without acceptGap.
  const withSnapshot = (owner: "ours" | "earlier" | "other") =>
    migrating({
      exec: {
        ...migrating().exec,
        "ptm-rsyncd:probe": line(sourceProbe({ snapshot: true, owner })),
        "ptm-rsync:probe": line(targetProbe({ startedAtH: 7 })),
      },
    });

  it("this migration's own snapshot resumes: its plan passed the gate when it was made", async () => {
    const r = await runProgram(config, withSnapshot("ours"));
    assert.ok(one(r, "command:local:Command", "migration-source-snapshot"));
  });

  it("an earlier attempt's snapshot is planned afresh, through the gap gate", async () => {
    await assert.rejects(runProgram(config, withSnapshot("earlier")), /gap/i);
    const r = await runProgram({ ...config, acceptGap: true }, withSnapshot("earlier"));
    assert.ok(
      one(r, "command:local:Command", "migration-source-snapshot"),
      "and the snapshot step replaces it",
    );
  });

  it("somebody else's snapshot is refused at preview, naming the dir and what to do", async () => {
    await assert.rejects(
      runProgram(config, withSnapshot("other"), { preview: true }),
      /source snapshot: \/data\/snapshots\/ptm-test on the source was not made by this migration .* rm -rf \/data\/snapshots\/ptm-test/,
    );
  });
});

describe("program: each migrate step records its Event on the workload (issue 22)", () => {
  const cases = [
    {
      step: "source-snapshot",
      reason: "MigrationSnapshotTaken",
      workload: "'event' 'monitoring' 'deployment' 'prometheus-server'",
      says: /^Snapshot ptm-test taken for the migration: \d+ blocks/,
    },
    {
      step: "block-copy",
      reason: "MigrationCopyDone",
      workload: "'event' 'kubeprod' 'statefulset' 'prometheus'",
      says: /^Copy done: \d+ blocks copied/,
    },
    {
      step: "block-install",
      reason: "MigrationInstallDone",
      workload: "'event' 'kubeprod' 'statefulset' 'prometheus'",
      says: /^Install done: \d+ migrated blocks moved into the TSDB/,
    },
    {
      step: "verification",
      reason: "MigrationVerified",
      workload: "'event' 'kubeprod' 'statefulset' 'prometheus'",
      says: /^Migration verified: /,
    },
  ];
  for (const tc of cases) {
    it(`${tc.step}: ${tc.reason}, after the step`, async () => {
      const r = await runProgram(config, migrating());
      // The step and its Event are named after the component ("migration", index.ts).
      const ev = one(r, "command:local:Command", `migration-${tc.step}-event`);
      const inputs = ev.inputs as { create: string; environment: Record<string, string> };
      assert.ok(inputs.create.includes(tc.workload), inputs.create);
      const event = JSON.parse(inputs.environment.PTM_EVENT);
      assert.equal(event.reason, tc.reason);
      assert.match(event.message, tc.says);
      // A step that is a command: the Event comes after it.
      const step = r.resources.find(
        (x) => x.name === `migration-${tc.step}` && x.type === "command:local:Command",
      );
      if (step) assert.ok(ev.seq > step.seq);
    });
  }
});
