// End to end, issue 21: know before anything moves. `pulumi preview` with phase prepare reads
// both TSDBs through their own Prometheus containers (no sidecar exists yet) and shows the
// plan with every gate; a gate that fails refuses there, before any pod restarts.
// The target is BKPR's StatefulSet with a user's `retention_days` of 1: shorter than the
// source's 62 h of history. Prometheus deletes only whole blocks whose end is beyond the
// retention, and the source compacts into 18 h ranges aligned to the epoch: 62 h make sure
// that at least one whole block ends more than a day before the target's newest sample.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   npx mocha --no-config -r ts-node/register/transpile-only -r test/e2e/guard.ts \
//     --timeout 2400000 test/e2e/preview.test.ts

import * as assert from "node:assert/strict";
import { Stack } from "@pulumi/pulumi/automation";
import {
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  leftovers,
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
// 62 h of history, a few series (quick to seed), a target that keeps 1 day.
const SCENARIO: ScenarioOptions = {
  ...DEFAULTS,
  historyHours: 62,
  log,
  fixture: { historySeries: 4, historyStepSeconds: 60, targetRetentionDays: 1 },
};

describe("end to end: the plan and every preflight at preview, before prepare (issue 21)", function () {
  this.timeout(30 * 60_000);
  let stack: Stack;
  let before0: { source: string; target: string; templates: unknown[] };

  before(async () => {
    await resetCluster(log);
    await deployFixtures(SCENARIO);
    before0 = {
      source: podOf(SOURCE).uid,
      target: podOf(TARGET).uid,
      templates: [podTemplate(SOURCE), podTemplate(TARGET)],
    };
    stack = await openStack(`e2e-preview-${Date.now()}`, pulumiEnv());
    await configurePrepare(stack, SCENARIO);
  });

  after(async () => {
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  });

  it("a target retention shorter than the history is refused at preview, naming the flag; no pod restarts", async () => {
    const out: string[] = [];
    const t0 = Date.now();
    await assert.rejects(
      stack.preview({ onOutput: (o) => out.push(o) }),
      /target: the target would delete \d+ of the \d+ planned blocks .*beyond its retention \(--storage\.tsdb\.retention\.time=1d\)\. Raise it \(--storage\.tsdb\.retention\.time of at least \dd/,
    );
    const text = out.join("");
    log(`refused in ${Math.round((Date.now() - t0) / 1000)} s`);
    // The whole report is in the preview, before the refusal: the plan and each gate.
    const lines = text.split("\n").filter((l) => /preflight|restarts:/.test(l));
    for (const l of lines) log(l.trim());
    assert.match(text, /preflight: refused \(target\)/);
    assert.match(text, /preflight plan: \d+ blocks/);
    assert.match(text, /preflight FAILED: target retention: /);
    assert.match(text, /preflight ok: version gate: /);
    assert.match(
      text,
      /restarts: prepare: Deployment .* restarts its pod to add the rsync daemon sidecar/,
    );
    assert.equal(podOf(SOURCE).uid, before0.source, "the source's pod is the same");
    assert.equal(podOf(TARGET).uid, before0.target, "the target's pod is the same");
    assert.deepEqual([podTemplate(SOURCE), podTemplate(TARGET)], before0.templates);
  });

  it("trimToTargetRetention: the preview plans only what the target keeps, and says what it leaves", async () => {
    await configure(stack, { trimToTargetRetention: "true", acceptGap: "true" });
    const out: string[] = [];
    await stack.preview({ onOutput: (o) => out.push(o) });
    const text = out.join("");
    assert.match(text, /preflight: ready/);
    assert.match(
      text,
      /preflight ok: target retention: the \d+ planned blocks are within the retention of data \(--storage\.tsdb\.retention\.time=1d\)/,
    );
    assert.match(
      text,
      /preflight ok: target free space: the copy needs [\d.]+ MiB \(plus a margin\) on data, which has [\d.]+ MiB free/,
    );
    assert.equal(podOf(SOURCE).uid, before0.source);
    assert.equal(podOf(TARGET).uid, before0.target);
    assert.deepEqual(leftovers(), [], "a preview creates nothing");
  });
});
