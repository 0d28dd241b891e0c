// End to end, sidecarMode: ephemeral (issue 15): a whole migration (prepare, migrate, verify,
// revert, destroy) with the rsync sidecars as ephemeral containers, against the lab cluster
// with the real engine. Both pods keep their UIDs and restart counts from before `prepare` to
// after `destroy`, both pod templates stay byte-identical throughout, and the verification is
// the patch mode's (the patch mode's pod restarts, for the README's table, are counted in
// test/e2e/migration.test.ts). Every claim is checked with our own kubectl and PromQL.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   flock /var/cache/ptm/lab.lock npx mocha --no-config -r ts-node/register/transpile-only \
//     --extension ts --timeout 2400000 test/e2e/ephemeral.test.ts

import * as assert from "node:assert/strict";
import { Stack } from "@pulumi/pulumi/automation";
import { kubectl, rolloutStatus, watchPods, Workload } from "./cluster";
import {
  changes,
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  historyCounts,
  leftovers,
  measuredGapMs,
  openStack,
  podOf,
  pulumiEnv,
  resetCluster,
  SOURCE,
  TARGET,
} from "./scenario";

const log = (l: string) => process.stdout.write(`      ${l}\n`);
const quiet = () => undefined;

/** The pod template exactly as the API server prints it: compared byte for byte. */
function templateBytes(w: Workload): string {
  const o = JSON.parse(
    kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]),
  ) as { spec: { template: unknown } };
  return JSON.stringify(o.spec.template);
}

/** The ephemeral containers of a workload's pod: name -> running | terminated(exit) | waiting. */
function ephemeralOf(w: Workload): Record<string, string> {
  const pod = podOf(w).name;
  const p = JSON.parse(kubectl(["get", "pod", pod, "-n", w.namespace, "-o", "json"])) as {
    status: {
      ephemeralContainerStatuses?: {
        name: string;
        state: { running?: object; terminated?: { exitCode: number }; waiting?: object };
      }[];
    };
  };
  return Object.fromEntries(
    (p.status.ephemeralContainerStatuses ?? []).map((s) => [
      s.name,
      s.state.running
        ? "running"
        : s.state.terminated
          ? `terminated(${s.state.terminated.exitCode})`
          : "waiting",
    ]),
  );
}

/** Appends --web.enable-admin-api to the Prometheus container's args, and waits for it. */
function enableAdminApi(w: Workload): void {
  const t = JSON.parse(
    kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]),
  ) as { spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } } };
  const i = t.spec.template.spec.containers.findIndex((c) => c.name === w.container);
  assert.ok(i >= 0 && t.spec.template.spec.containers[i].args, `${w.name} has args`);
  kubectl([
    "patch",
    w.kind.toLowerCase(),
    w.name,
    "-n",
    w.namespace,
    "--type=json",
    "-p",
    JSON.stringify([
      {
        op: "add",
        path: `/spec/template/spec/containers/${i}/args/-`,
        value: "--web.enable-admin-api",
      },
    ]),
  ]);
  rolloutStatus(w);
}

describe("end to end: sidecarMode ephemeral, no pod restarts", function () {
  this.timeout(40 * 60_000);
  let stack: Stack;
  let sourceHistory: { ends: number[]; counts: number[] };
  let templates: { source: string; target: string };
  let pods: { source: ReturnType<typeof podOf>; target: ReturnType<typeof podOf> };
  let watches: { source: { stop(): Set<string> }; target: { stop(): Set<string> } };
  let plan: Record<string, unknown>;
  const times: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      times[name] = Math.round((Date.now() - t0) / 1000);
      log(`${name}: ${times[name]} s`);
    }
  };
  /** Pods and templates exactly as before prepare. */
  const unchanged = (when: string) => {
    assert.equal(templateBytes(SOURCE), templates.source, `source template ${when}`);
    assert.equal(templateBytes(TARGET), templates.target, `target template ${when}`);
    for (const [key, w] of [
      ["source", SOURCE],
      ["target", TARGET],
    ] as const) {
      const now = podOf(w);
      assert.equal(now.uid, pods[key].uid, `${key} pod uid ${when}`);
      assert.equal(now.restarts, pods[key].restarts, `${key} restarts ${when}`);
    }
  };

  before(async function () {
    await timed("fixtures", async () => {
      await resetCluster(log);
      await deployFixtures({ ...DEFAULTS, log });
      // This mode can't switch the admin API on (a restart): the source has it on already,
      // as includeHead then needs, so that the verification is the patch mode's, gap and all.
      enableAdminApi(SOURCE);
    });
    sourceHistory = historyCounts(SOURCE, DEFAULTS.historyHours);
    assert.ok(sourceHistory.counts.length >= 20 && sourceHistory.counts.every((c) => c > 0));
    templates = { source: templateBytes(SOURCE), target: templateBytes(TARGET) };
    pods = { source: podOf(SOURCE), target: podOf(TARGET) };
    watches = { source: watchPods(SOURCE), target: watchPods(TARGET) };
    stack = await openStack(`e2e-ephemeral-${Date.now()}`, pulumiEnv());
  });

  after(async function () {
    log(`phase times (s): ${JSON.stringify(times)}`);
    if (watches) {
      watches.source.stop();
      watches.target.stop();
    }
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  });

  it("previews the ephemeral sidecars, the cluster's preflight and the note on their entries", async () => {
    await configurePrepare(stack);
    await configure(stack, { sidecarMode: "ephemeral" });
    const out: string[] = [];
    await timed("preview", () => stack.preview({ onOutput: (o) => out.push(o) }));
    const text = out.join("");
    assert.match(
      text,
      /sidecarMode ephemeral \(Kubernetes v1\.\d+[^)]*\): the sidecars are added to the running pods as ephemeral containers, no pod restarts/,
    );
    assert.match(text, /its stopped entry stays in the pod's status until\s+the pod is replaced/);
    unchanged("after preview");
  });

  it("prepares: both sidecars run as ephemeral containers; no template changed, no pod restarted", async () => {
    const r = await timed("prepare", () => stack.up({ onOutput: quiet }));
    assert.ok((r.summary.resourceChanges?.create ?? 0) >= 10, JSON.stringify(r.summary));
    assert.deepEqual(ephemeralOf(SOURCE), { "ptm-rsyncd": "running" });
    assert.deepEqual(ephemeralOf(TARGET), { "ptm-rsync": "running" });
    unchanged("after prepare");
  });

  it("migrates and verifies, with the head (the source's admin API is on already)", async () => {
    await configure(stack, { phase: "migrate", includeHead: "true" });
    const lines: string[] = [];
    const r = await timed("migrate", () => stack.up({ onOutput: (o) => lines.push(o) }));
    assert.match(lines.join(""), /includeHead uses the source's admin API, which is on already/);
    const out = r.outputs.migration.value as Record<string, Record<string, unknown>>;
    plan = r.outputs.plan.value as Record<string, unknown>;
    const copy = out.copy as { copied: number; bytesTotal: number };
    log(`copy: ${copy.copied} blocks, ${copy.bytesTotal} bytes; plan gap ${plan.gapSeconds} s`);
    assert.ok(copy.copied >= 1);
    assert.equal((out.verification as { ok: boolean }).ok, true);
    unchanged("after migrate");
  });

  it("a second up changes nothing", async () => {
    const r = await timed("second up", () => stack.up({ onOutput: quiet }));
    assert.deepEqual(changes(r), {});
  });

  it("the target holds the source's history, window for window", () => {
    const target = historyCounts(TARGET, DEFAULTS.historyHours, sourceHistory.ends);
    assert.deepEqual(target.counts, sourceHistory.counts);
  });

  it("the gap is what the plan said", () => {
    const m = measuredGapMs(DEFAULTS.historyHours);
    log(`plan gap ${plan.gapSeconds} s, measured ${Math.round(m.gapMs / 1000)} s`);
    assert.ok(Math.abs(m.gapMs / 1000 - Number(plan.gapSeconds)) <= 30, JSON.stringify(m));
  });

  it("the revert stops both sidecars' processes, restarts nothing, and needs no guard", async () => {
    await stack.removeConfig("prometheus-tsdb-migration:phase");
    const lines: string[] = [];
    await timed("revert", () => stack.up({ onOutput: (o) => lines.push(o) }));
    assert.match(ephemeralOf(SOURCE)["ptm-rsyncd"], /^terminated/);
    assert.match(ephemeralOf(TARGET)["ptm-rsync"], /^terminated/);
    log(
      `after the revert: source ${JSON.stringify(ephemeralOf(SOURCE))}, target ${JSON.stringify(ephemeralOf(TARGET))}`,
    );
    unchanged("after the revert");
  });

  it("destroy leaves nothing but the stopped entries, the source lost nothing, and no pod restarted", async () => {
    await timed("destroy", () => stack.destroy({ onOutput: quiet }));
    assert.deepEqual(leftovers(), []);
    const after = historyCounts(SOURCE, DEFAULTS.historyHours, sourceHistory.ends);
    assert.deepEqual(after.counts, sourceHistory.counts);
    unchanged("after destroy");
    const seen = { source: watches.source.stop(), target: watches.target.stop() };
    log(
      `ephemeral mode: pods seen from before prepare to after destroy: source ${seen.source.size}, ` +
        `target ${seen.target.size}; container restarts source ${podOf(SOURCE).restarts - pods.source.restarts}, ` +
        `target ${podOf(TARGET).restarts - pods.target.restarts}`,
    );
    assert.deepEqual([...seen.source], [pods.source.uid]);
    assert.deepEqual([...seen.target], [pods.target.uid]);
  });
});
