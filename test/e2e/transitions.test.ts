// End to end, issue 20: the second `up` is as safe as the first. Transitions of
// docs/transitions.md run for real, with the real engine in the lab, each checked with our own
// kubectl and PromQL:
// - includeHead turned on after a head-less migrate: a new decision, and the head arrives;
// - sidecarImage changed after the install while the target's head is at risk: refused, and
//   the target's pod keeps its UID;
// - sidecarMode ephemeral, the target's pod deleted during migrate, then `up`: nothing is
//   deleted, the sidecar comes back, and the migration completes;
// - a BKPR-version (2.26) target that has run for hours compacts the imported blocks together
//   with its own, then `up` twice: no error, no overlapping block, and the verification holds.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   npx mocha --no-config -r ts-node/register/transpile-only -r test/e2e/guard.ts \
//     --timeout 2400000 test/e2e/transitions.test.ts

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { execIn, kubectl, rolloutStatus, waitFor, Workload } from "./cluster";
import {
  changes,
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  leftovers,
  measuredGapMs,
  openStack,
  podOf,
  podTemplate,
  pulumiEnv,
  resetCluster,
  ScenarioOptions,
  SOURCE,
  TARGET,
} from "./scenario";

const log = (l: string) => process.stdout.write(`      ${l}\n`);
const quiet = () => undefined;
const PROJECT = "prometheus-tsdb-migration";
// Enough history for several blocks on both sides of a compaction, and quick to seed.
const SCENARIO: ScenarioOptions = { ...DEFAULTS, historyHours: 12, log };

/** The decision records in the target's namespace: generation -> includeHead. */
function decisionRecords(): Record<number, boolean> {
  const list = JSON.parse(
    kubectl([
      "get",
      "configmaps",
      "-n",
      TARGET.namespace,
      "-l",
      "app.kubernetes.io/component=decision-record",
      "-o",
      "json",
    ]),
  ) as { items: { data: Record<string, string> }[] };
  return Object.fromEntries(
    list.items.map((c) => {
      const r = JSON.parse(c.data["decision.json"]) as { generation: number; includeHead: boolean };
      return [r.generation, r.includeHead];
    }),
  );
}

function snapshotsOnSource(): string[] {
  const out = kubectl([
    "exec",
    "-n",
    SOURCE.namespace,
    `deployment/${SOURCE.name}`,
    "-c",
    SOURCE.container,
    "--",
    "sh",
    "-c",
    "ls /data/snapshots 2>/dev/null || true",
  ]).trim();
  return out ? out.split("\n") : [];
}

async function revertAndDestroy(stack: Stack): Promise<void> {
  await configure(stack, { forceRevert: "true" });
  await stack.removeConfig(`${PROJECT}:phase`);
  await stack.up({ onOutput: quiet });
  await stack.destroy({ onOutput: quiet });
}

describe("end to end: transitions of a later up (issue 20)", function () {
  this.timeout(40 * 60_000);

  describe("patch mode: includeHead turned on after a head-less migrate, then a sidecarImage change at risk", () => {
    let stack: Stack;
    let templates: { source: unknown; target: unknown };
    let headless: { gapMs: number; newestImported: number };

    before(async () => {
      await resetCluster(log);
      await deployFixtures(SCENARIO);
      templates = { source: podTemplate(SOURCE), target: podTemplate(TARGET) };
      stack = await openStack(`e2e-transitions-${Date.now()}`, pulumiEnv());
      await configurePrepare(stack, SCENARIO);
      await configure(stack, { acceptGap: "true" });
      await stack.up({ onOutput: quiet });
    });

    after(async () => {
      if (stack)
        await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    });

    it("a head-less migrate decides once and records it", async () => {
      await configure(stack, { phase: "migrate" });
      const r = await stack.up({ onOutput: quiet });
      assert.equal(r.outputs.status.value, "verified");
      assert.deepEqual(decisionRecords(), { 1: false });
      headless = measuredGapMs(SCENARIO.historyHours);
      log(
        headless.newestImported === 0
          ? "head-less: the target holds no sample of the source's own scrape (it is all in the source's head)"
          : `head-less: gap ${Math.round(headless.gapMs / 1000)} s measured on the target`,
      );
      assert.ok(headless.gapMs > 5 * 60_000, "without the head, the gap is the source's head");
      const again = await stack.up({ onOutput: quiet });
      assert.deepEqual(changes(again), {}, "a second up changes nothing");
    });

    it("includeHead turned on: re-decided with a new snapshot, and the head arrives", async () => {
      await configure(stack, { includeHead: "true" });
      const out: string[] = [];
      const r = await stack.up({ onOutput: (o) => out.push(o) });
      assert.match(out.join(""), /includeHead was turned on after the decision recorded at/);
      assert.equal(r.outputs.status.value, "verified");
      const m = r.outputs.migration.value as { snapshot: string };
      assert.match(m.snapshot, /-g2$/);
      assert.deepEqual(decisionRecords(), { 2: true }, "the first generation's record is gone");
      assert.deepEqual(snapshotsOnSource(), [m.snapshot], "the first snapshot is removed");
      const now = measuredGapMs(SCENARIO.historyHours);
      log(`with the head: gap ${Math.round(now.gapMs / 1000)} s on the target`);
      assert.ok(now.gapMs <= 30_000, JSON.stringify(now));
      const again = await stack.up({ onOutput: quiet });
      assert.deepEqual(changes(again), {}, "a second up changes nothing");
    });

    it("sidecarImage changed while the target's head is at risk: refused, and the target keeps its pod", async () => {
      const pod = podOf(TARGET);
      const template = podTemplate(TARGET);
      await configure(stack, { sidecarImage: "docker.io/ptm/rsync:another" });
      await assert.rejects(
        stack.up({ onOutput: quiet }),
        /sidecarImage: changing sidecarImage "docker\.io\/ptm\/rsync:latest" -> "docker\.io\/ptm\/rsync:another" rolls the target's pods, which would drop/,
      );
      assert.equal(podOf(TARGET).uid, pod.uid);
      assert.deepEqual(podTemplate(TARGET), template);
      await configure(stack, { sidecarImage: SCENARIO.sidecarImage });
    });

    it("revert and destroy leave the templates as they were and nothing behind", async () => {
      await revertAndDestroy(stack);
      assert.deepEqual(podTemplate(SOURCE), templates.source);
      assert.deepEqual(podTemplate(TARGET), templates.target);
      assert.deepEqual(leftovers(), []);
    });
  });

  describe("sidecarMode ephemeral: the target's pod deleted during migrate, then up", () => {
    let stack: Stack;

    before(async () => {
      await resetCluster(log);
      await deployFixtures(SCENARIO);
      stack = await openStack(`e2e-transitions-eph-${Date.now()}`, pulumiEnv());
      await configurePrepare(stack, SCENARIO);
      await configure(stack, { acceptGap: "true", sidecarMode: "ephemeral" });
      await stack.up({ onOutput: quiet });
    });

    after(async () => {
      if (stack)
        await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    });

    it("nothing is deleted, the sidecar comes back, and the migration completes", async () => {
      await configure(stack, { phase: "migrate", bandwidthLimit: "2" });
      const old = podOf(TARGET);
      let deleted = false;
      const first = stack.up({
        onOutput: (o) => {
          if (!deleted && /copy: /.test(o)) {
            deleted = true;
            kubectl(["delete", "pod", old.name, "-n", TARGET.namespace, "--wait=false"]);
          }
        },
      });
      const failed = await first.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(deleted, "the target's pod was deleted mid-copy");
      assert.ok(failed, "the up that lost its pod failed");
      rolloutStatus(TARGET);
      assert.notEqual(podOf(TARGET).uid, old.uid, "a new pod");
      assert.deepEqual(decisionRecords(), { 1: false }, "the decision is still recorded");
      const snapshots = snapshotsOnSource();
      assert.equal(snapshots.length, 1, "the snapshot is still there");

      await stack.removeConfig(`${PROJECT}:bandwidthLimit`);
      const r = await stack.up({ onOutput: quiet });
      const c = changes(r);
      log(`the up after the pod was replaced: ${JSON.stringify(c)}`);
      assert.ok(!c.delete, `nothing deleted: ${JSON.stringify(c)}`);
      assert.equal(r.outputs.status.value, "verified");
      assert.deepEqual(snapshotsOnSource(), snapshots, "the same snapshot was used");
      const eph = JSON.parse(
        kubectl(["get", "pod", podOf(TARGET).name, "-n", TARGET.namespace, "-o", "json"]),
      ) as { status: { ephemeralContainerStatuses?: { name: string }[] } };
      assert.ok(
        (eph.status.ephemeralContainerStatuses ?? []).some((s) => s.name.startsWith("ptm-rsync")),
        "the sidecar came back in the new pod",
      );
    });

    it("revert and destroy leave nothing behind", async () => {
      await revertAndDestroy(stack);
      assert.deepEqual(leftovers(), []);
    });
  });

  describe("a BKPR-version (2.26) target compacts an imported block with its own, then up twice", () => {
    // BKPR pins Prometheus 2.26 (before 2.39: overlapping blocks are rejected, so the plan
    // copies only the source's blocks that end before the target's own data begins). The
    // shape that makes the target merge imported blocks with its own: a 6h compaction range R,
    // at least 8h old, in which the source's backfilled history ends half-way (3h in, so the
    // source keeps R's blocks as they are: its newest block is in R), and in which the
    // target's own history begins, 30 min into the source's last block (so that block is
    // skipped). The target's own history runs on to now: R is then not its newest range, and
    // its compactor merges R's blocks, the imported one and its own.
    const H = 3_600_000;
    const startedMs = Date.now();
    const rangeStart = Math.floor((startedMs - 8 * H - 10 * 60_000) / (6 * H)) * 6 * H;
    const PRE239: ScenarioOptions = {
      ...SCENARIO,
      targetImage: "docker.io/ptm/bitnami-prometheus:2.26.0",
      historyHours: Math.ceil((startedMs - rangeStart) / H) + 2,
      fixture: { historyEndHours: (startedMs - (rangeStart + 3 * H)) / H },
    };
    const DATA = "/opt/bitnami/prometheus/data";
    let stack: Stack;
    let ownIds: string[] = [];
    let recorded: string[] = [];

    before(async () => {
      await resetCluster(log);
      await deployFixtures(PRE239);
      // The source compacts its backfilled blocks within a minute or two: plan after that.
      await waitForStableBlocks(SOURCE, "/data");
      stack = await openStack(`e2e-transitions-226-${Date.now()}`, pulumiEnv());
      await configurePrepare(stack, PRE239);
      await configure(stack, { acceptGap: "true" });
      await stack.up({ onOutput: quiet });
      rolloutStatus(TARGET);
      ownIds = seedTargetHistory(DATA);
    });

    after(async () => {
      if (stack)
        await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    });

    it("migrates the blocks that end before the target's own data, and skips the one that overlaps it", async () => {
      await configure(stack, { phase: "migrate" });
      const r = await stack.up({ onOutput: quiet });
      assert.equal(r.outputs.status.value, "verified");
      const plan = r.outputs.plan.value as { blocks: number; skippedCount: number };
      assert.ok(plan.blocks >= 1 && plan.skippedCount >= 1, JSON.stringify(plan));
      recorded = recordedBlocks();
      log(
        `plan: ${plan.blocks} blocks copied, ${plan.skippedCount} skipped (they overlap the target's own data)`,
      );
    });

    it("the target compacts an imported block together with its own", async () => {
      const merged = await waitFor("the target merged imported and own blocks", 6 * 60_000, () => {
        const m = blocksOf(TARGET, DATA).find((b) => {
          const sources = b.compaction.sources ?? [];
          return (
            sources.some((x) => recorded.includes(x)) && sources.some((x) => ownIds.includes(x))
          );
        });
        return m;
      });
      log(
        `target block ${merged.ulid} (level ${merged.compaction.level}) holds ${merged.compaction.sources?.length} sources, imported and its own`,
      );
    });

    it("up twice: no error, no overlapping block, the verification holds", async () => {
      for (const n of [1, 2]) {
        const r = await stack.up({ onOutput: quiet });
        assert.equal(r.outputs.status.value, "verified", `up ${n}`);
        assert.deepEqual(changes(r), {}, `up ${n} changes nothing`);
        log(`up ${n}: ${String(r.outputs.message.value).slice(0, 300)}`);
      }
      const blocks = blocksOf(TARGET, DATA).sort((a, b) => a.minTime - b.minTime);
      for (let i = 1; i < blocks.length; i++) {
        assert.ok(
          blocks[i].minTime >= blocks[i - 1].maxTime,
          `blocks ${blocks[i - 1].ulid} and ${blocks[i].ulid} overlap`,
        );
      }
      const failures = execIn(
        TARGET,
        "wget -qO- http://localhost:9090/metrics | grep '^prometheus_tsdb_reloads_failures_total ' | cut -d' ' -f2",
      ).trim();
      assert.equal(Number(failures), 0, "the target's reloads never failed");
    });

    it("revert and destroy leave nothing behind", async () => {
      await revertAndDestroy(stack);
      assert.deepEqual(leftovers(), []);
    });
  });
});

type Meta = {
  ulid: string;
  minTime: number;
  maxTime: number;
  compaction: { level: number; sources?: string[] };
};

/** Every block's meta.json in a workload's TSDB, read in its Prometheus container. */
function blocksOf(w: Workload, data: string): Meta[] {
  const out = execIn(
    w,
    `for f in ${data}/*/meta.json; do [ -f "$f" ] && cat "$f" && echo; done; true`,
  );
  const metas: Meta[] = [];
  let depth = 0;
  let start = -1;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === "{" && depth++ === 0) start = i;
    else if (out[i] === "}" && --depth === 0)
      metas.push(JSON.parse(out.slice(start, i + 1)) as Meta);
  }
  return metas;
}

/** Waits until a TSDB's block list has not changed for 70 s (its compactions run every minute). */
async function waitForStableBlocks(w: Workload, data: string): Promise<void> {
  let last = "";
  let since = Date.now();
  await waitFor(`${w.name}'s blocks stable`, 10 * 60_000, () => {
    const now = blocksOf(w, data)
      .map((b) => b.ulid)
      .sort()
      .join(",");
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since >= 70_000 ? true : undefined;
  });
}

/** The blocks the recorded decision copies (every replica's; the target has one). */
function recordedBlocks(): string[] {
  const list = JSON.parse(
    kubectl([
      "get",
      "configmaps",
      "-n",
      TARGET.namespace,
      "-l",
      "app.kubernetes.io/component=decision-record",
      "-o",
      "json",
    ]),
  ) as { items: { data: Record<string, string> }[] };
  return list.items.flatMap((c) =>
    (JSON.parse(c.data["decision.json"]) as { replicas: { blocks: string[] }[] }).replicas.flatMap(
      (r) => r.blocks,
    ),
  );
}

/**
 * The target as if it had run for hours before the migration: its own history, from 30 min
 * into the source's newest block (so that block overlaps it and is skipped) up to a minute
 * before its head, written as blocks by promtool on this machine and streamed into its data
 * dir, where it loads them at its next reload. Returns the ULIDs of the target's own blocks.
 */
function seedTargetHistory(data: string): string[] {
  const [newest, ...older] = blocksOf(SOURCE, "/data").sort((a, b) => b.minTime - a.minTime);
  assert.ok(newest && older.length > 0, "the source has blocks");
  const skipped = { ...newest, minTime: Math.max(newest.minTime, newest.maxTime - 30 * 60_000) };
  assert.ok(
    older.every((b) => b.maxTime < skipped.minTime),
    `the source's newest block ${newest.ulid} starts after its others end`,
  );
  const head = JSON.parse(execIn(TARGET, "wget -qO- http://localhost:9090/api/v1/status/tsdb")) as {
    data: { headStats: { minTime: number } };
  };
  const fromS = Math.floor(skipped.minTime / 1000);
  const toS = Math.floor((head.data.headStats.minTime - 60_000) / 1000);
  assert.ok(
    toS > fromS + 3600,
    `the target's head starts too early: ${head.data.headStats.minTime}`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ptm-own-history-"));
  const lines = ["# TYPE demo_target_own gauge"];
  for (let s = 0; s < 5; s++)
    for (let t = fromS; t < toS; t += 30)
      lines.push(`demo_target_own{series="${s}"} ${(t / 30 + s) % 7} ${t}`);
  lines.push("# EOF");
  fs.writeFileSync(path.join(dir, "own.om"), lines.join("\n") + "\n");
  const out = path.join(dir, "blocks");
  execFileSync(
    "promtool",
    ["tsdb", "create-blocks-from", "openmetrics", path.join(dir, "own.om"), out],
    {
      stdio: "pipe",
    },
  );
  const ids = fs.readdirSync(out).filter((d) => /^[0-9A-Z]{26}$/.test(d));
  const tar = execFileSync("tar", ["-C", out, "-cf", "-", ...ids]);
  kubectl(
    [
      "exec",
      "-i",
      "-n",
      TARGET.namespace,
      `statefulset/${TARGET.name}`,
      "-c",
      TARGET.container,
      "--",
      "tar",
      "-xf",
      "-",
      "-C",
      data,
    ],
    tar,
  );
  fs.rmSync(dir, { recursive: true, force: true });
  log(
    `the target's own history: ${ids.length} blocks from ${new Date(fromS * 1000).toISOString()} to ${new Date(toS * 1000).toISOString()}`,
  );
  return ids;
}
