// End to end, issue 20: the second `up` is as safe as the first. Transitions of
// docs/transitions.md run for real, with the real engine in the lab, each checked with our own
// kubectl and PromQL:
// - includeHead turned on after a head-less migrate: a new decision, and the head arrives;
// - sidecarImage changed after the install while the target's head is at risk: refused, and
//   the target's pod keeps its UID;
// - sidecarMode ephemeral, the target's pod deleted during migrate, then `up`: nothing is
//   deleted, the sidecar comes back, and the migration completes.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   npx mocha --no-config -r ts-node/register/transpile-only -r test/e2e/guard.ts \
//     --timeout 2400000 test/e2e/transitions.test.ts

import * as assert from "node:assert/strict";
import { Stack } from "@pulumi/pulumi/automation";
import { kubectl, rolloutStatus } from "./cluster";
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
      log(
        `with the head: gap ${Math.round(now.gapMs / 1000)} s (was ${Math.round(headless.gapMs / 1000)} s)`,
      );
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
});
