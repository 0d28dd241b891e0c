import * as assert from "node:assert/strict";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { line, SOURCE_BLOCKS, sourceProbe, T0, targetProbe } from "../fixtures/probes";
import { sidecarScript } from "../../components/cluster/kubectl";
import { byType, FakeCluster, one, runProgram } from "./harness";

const H = 3_600_000;
const ULIDS = SOURCE_BLOCKS.map((b) => b.ulid);

function migrating(over: Partial<FakeCluster> = {}): FakeCluster {
  const windows = [2, 4, 6].map((h) => ({ endMs: T0 + h * H, count: 2000 }));
  const health = {
    blocksLoaded: 3,
    reloadFailures: 0,
    compactionsFailed: 0,
    lowestTimestampMs: T0,
  };
  return {
    ...cluster(),
    exec: {
      "ptm-rsyncd:probe": line(sourceProbe()),
      "ptm-rsync:probe": line(targetProbe()),
      "ptm-rsyncd:counts": line({ windows, health }),
      "ptm-rsync:counts": line({ windows, health }),
    },
    commandStdout: {
      "source-snapshot": line({
        snapshot: "ptm-test",
        blocks: SOURCE_BLOCKS,
        createdMs: T0 + 7.5 * H,
        reused: false,
      }),
      "block-copy": line({ copied: ULIDS, skipped: [], bytesCopied: 6e6, bytesTotal: 6e6 }),
      "block-install": line({ installed: ULIDS, alreadyPresent: [] }),
      "compaction-wait": line({ waitedSeconds: 0, newestMaxTime: T0 + 6 * H }),
    },
    ...over,
  };
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
      "block-copy",
      "block-install",
      "compaction-wait",
      "rsync-credentials-password",
      "source-snapshot",
    ]);
    assert.equal(byType(r, "kubernetes:apps/v1:DeploymentPatch").length, 1);
    assert.equal(byType(r, "kubernetes:apps/v1:StatefulSetPatch").length, 1);
  });

  it("snapshots in the source sidecar, and removes only the snapshot when deleted", async () => {
    const r = await runProgram(config, migrating());
    const snap = commandNamed(r, "source-snapshot");
    assert.match(
      snap.create,
      /^exec kubectl exec -n 'monitoring' 'deployment\/prometheus-server' -c 'ptm-rsyncd' -- env 'PTM_SNAPSHOT=ptm-test' 'PTM_INCLUDE_HEAD=false' sh -c /,
    );
    assert.match(snap.create, /'ptm-snapshot'$/);
    // The command runs exactly the repository's scripts, carried in its environment.
    const env = snap.environment as unknown as Record<string, string>;
    assert.equal(env.PTM_CREATE_SCRIPT, sidecarScript("snapshot"));
    assert.equal(env.PTM_DELETE_SCRIPT, sidecarScript("cleanup-source"));
    assert.match(snap.delete, /-c 'ptm-rsyncd' [\s\S]* 'ptm-cleanup-source'$/);
  });

  it("copies exactly the planned blocks from the daemon into the target, within the bandwidth limit", async () => {
    const r = await runProgram({ ...config, bandwidthLimit: "20m" }, migrating());
    const copy = commandNamed(r, "block-copy");
    assert.match(
      copy.create,
      /^exec kubectl exec -n 'kubeprod' 'statefulset\/prometheus' -c 'ptm-rsync' -- env /,
    );
    assert.match(
      copy.create,
      /'PTM_RSYNC_URL=rsync:\/\/ptm@10\.0\.0\.42:873\/tsdb\/snapshots\/ptm-test'/,
    );
    assert.match(copy.create, /'PTM_BWLIMIT=20m'/);
    assert.ok(copy.create.endsWith(`'ptm-copy' ${ULIDS.map((u) => `'${u}'`).join(" ")}`));
    assert.match(copy.delete, /-c 'ptm-rsync' [\s\S]* 'ptm-cleanup-target'$/);
    const install = commandNamed(r, "block-install");
    assert.ok(install.create.endsWith(`'ptm-install' ${ULIDS.map((u) => `'${u}'`).join(" ")}`));
    assert.equal(install.delete, undefined, "installed blocks stay on the target");
  });

  it("runs the steps in order: rollout, snapshot, copy, install", async () => {
    const r = await runProgram(config, migrating(), {
      slow: ["source-rsync-daemon", "target-rsync-client", "source-snapshot", "block-copy"],
    });
    const seq = (name: string) =>
      r.resources.find((x) => x.name === name && !x.type.startsWith("ptm:"))!.seq;
    assert.ok(seq("source-snapshot") > seq("source-rsync-daemon"));
    assert.ok(seq("source-snapshot") > seq("compaction-wait"));
    assert.ok(seq("block-copy") > seq("source-snapshot"));
    assert.ok(seq("block-copy") > seq("target-rsync-client"));
    assert.ok(seq("block-install") > seq("block-copy"));
  });

  it("reports the plan, the copy and the verification as stack outputs", async () => {
    const r = await runProgram(config, migrating());
    const plan = r.outputs.plan as Record<string, unknown>;
    assert.equal(plan.blocks, 3);
    assert.equal(plan.bytes, 6e6);
    assert.equal(plan.gapSeconds, 0);
    const m = r.outputs.migration as Record<string, Record<string, unknown>>;
    assert.equal((m.verification as Record<string, unknown>).ok, true);
    assert.equal((m.verification as Record<string, unknown>).windowsCompared, 3);
    assert.equal((m.copy as Record<string, unknown>).bytesCopied, 6e6);
  });

  it("fails the up with the numbers when the counts differ", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:counts"] = line({
      windows: [2, 4, 6].map((h) => ({ endMs: T0 + h * H, count: h === 4 ? 1999 : 2000 })),
      health: { blocksLoaded: 3, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 },
    });
    await assert.rejects(
      runProgram(config, c),
      /verification failed: 1 of 3 windows differ: .* source 2000 target 1999/,
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
    assert.match(commandNamed(r, "source-snapshot").create, /'PTM_INCLUDE_HEAD=true'/);
  });

  it("waits for the next compaction when that is allowed", async () => {
    const c = migrating();
    c.exec!["ptm-rsync:probe"] = line(targetProbe({ startedAtH: 7 }));
    const r = await runProgram({ ...config, maxWaitMinutes: 120 }, c);
    const wait = commandNamed(r, "compaction-wait");
    assert.match(wait.create, new RegExp(`'PTM_AFTER_MS=${T0 + 8 * H}'`));
  });

  it("does not wait when there is no gap", async () => {
    const r = await runProgram(config, migrating());
    assert.match(commandNamed(r, "compaction-wait").create, /'PTM_AFTER_MS=0'/);
  });

  it("only prepares when the sidecars are not running yet", async () => {
    const c = migrating();
    delete c.exec!["ptm-rsyncd:probe"];
    const r = await runProgram(config, c);
    assert.deepEqual(
      byType(r, "command:local:Command").map((x) => x.name),
      ["rsync-credentials-password"],
    );
    assert.match(String(r.outputs.plan), /run `pulumi up` again/);
  });
});
