// Faults during the copy (issue 23), in one patch-mode migration: each fault strikes its own
// `up` of phase migrate while the copy runs (throttled, so that it is mid-way), and the next
// `up` is the recovery. The last `up` completes the migration; then the history is compared per
// window on both servers, the servers' own samples are counted again, and the revert must give
// both templates back byte for byte with nothing left behind.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   PTM_E2E_NAMESPACE_PREFIX=ptm-fault npx mocha --no-config -r ts-node/register/transpile-only \
//     -r test/e2e/guard.ts --timeout 2400000 test/faults/copy.test.ts

import * as assert from "node:assert/strict";
import { Stack } from "@pulumi/pulumi/automation";
import { rolloutStatus } from "../e2e/cluster";
import {
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  historyCounts,
  leftovers,
  openStack,
  podOf,
  podTemplate,
  pulumiEnv,
  resetCluster,
  SOURCE,
  TARGET,
} from "../e2e/scenario";
import {
  assertNamesNextStep,
  assertNoStackTrace,
  deletePod,
  errorLine,
  killInContainer,
  OwnSamples,
  pulumiProcess,
  recordRow,
  resumed,
  secondsSince,
  stopApiServer,
  Struck,
  upStruck,
} from "./faults";

const log = (l: string) => process.stdout.write(`      ${l}\n`);
const quiet = () => undefined;
const PROJECT = "prometheus-tsdb-migration";
const FILE = "test/faults/copy.test.ts";
const SCENARIO = { ...DEFAULTS, log };

/** The copy's progress: "copy: N/M blocks done, ...". */
const PROGRESS = /copy: \d+\/\d+ blocks done/;

describe("faults during the copy: one migration, each fault strikes its own up", function () {
  this.timeout(40 * 60_000);
  let stack: Stack;
  let sourceHistory: { ends: number[]; counts: number[] };
  let templates: { source: unknown; target: unknown };
  let startedAt = 0;
  // The servers' own samples, counted before each fault and again at the end.
  let own: OwnSamples;

  before(async function () {
    await resetCluster(log);
    await deployFixtures(SCENARIO);
    startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 20_000));
    sourceHistory = historyCounts(SOURCE, SCENARIO.historyHours);
    templates = { source: podTemplate(SOURCE), target: podTemplate(TARGET) };
    stack = await openStack(`faults-copy-${Date.now()}`, pulumiEnv());
    await configurePrepare(stack, SCENARIO);
    await configure(stack, { includeHead: "true" });
    await stack.up({ onOutput: quiet });
    // The servers' own samples since the fixtures started, through prepare's restarts.
    own = new OwnSamples(startedAt - 30_000);
    await configure(stack, { phase: "migrate", bandwidthLimit: "2" });
  });

  after(async function () {
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  });

  /** Checks a failed up as the user sees it and records its row. */
  function stopped(s: Struck, fault: string, when: string, title: string, recovered: string) {
    assert.ok(s.faultAt, `the fault was injected (${fault})`);
    const line = errorLine(s);
    log(`${fault}: ${s.ok ? "completed" : `stopped: ${line}`}`);
    assertNoStackTrace(s);
    if (!s.ok) assertNamesNextStep(line);
    const from = resumed(s.output);
    recordRow({
      fault,
      when,
      test: `${FILE}: ${title}`,
      outcome: `${s.ok ? "completed" : `stopped: ${line}`}${from ? ` (this up had resumed: ${from})` : ""}`,
      samplesLost: "see the last row's counts",
      recovered,
      detectSeconds: secondsSince(s.faultAt, s.endedAt),
    });
  }

  it("the rsync daemon killed in its sidecar mid-copy: the up stops, naming the copy", async function () {
    const pod = podOf(SOURCE).name;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => PROGRESS.test(o),
      () => void killInContainer(SOURCE.namespace, pod, "ptm-rsyncd", /rsync/),
    );
    assert.equal(s.ok, false, "the up that lost its daemon failed");
    assert.match(
      errorLine(s),
      /copy: ERROR: rsync failed .*(rerun to resume|rerun \(pulumi up\) to resume)/,
    );
    stopped(
      s,
      "the rsync daemon killed (SIGKILL) in its sidecar",
      "mid-copy",
      this.test!.title,
      "yes: the next up resumed the copy",
    );
    rolloutStatus(SOURCE);
  });

  it("the source pod deleted mid-copy: the up stops; the next up resumes", async function () {
    const pod = podOf(SOURCE).name;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => PROGRESS.test(o),
      () => deletePod(SOURCE, pod),
    );
    assert.equal(s.ok, false, "the up that lost the source's pod failed");
    stopped(
      s,
      "the source pod deleted",
      "mid-copy",
      this.test!.title,
      "yes: the next up resumed the copy from the new pod",
    );
    rolloutStatus(SOURCE);
  });

  it("the target pod deleted mid-copy: the up stops; the next up resumes", async function () {
    const pod = podOf(TARGET).name;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => PROGRESS.test(o),
      () => deletePod(TARGET, pod),
    );
    assert.equal(s.ok, false, "the up that lost the target's pod failed");
    assert.match(errorLine(s), /copy: ERROR: stopped because the target's pod is shutting down/);
    stopped(
      s,
      "the target pod deleted",
      "mid-copy",
      this.test!.title,
      "yes: the next up resumed into the new pod",
    );
    rolloutStatus(TARGET);
  });

  it("pulumi killed (SIGKILL) mid-copy: pulumi cancel, then the next up", async function () {
    await configure(stack, { bandwidthLimit: "8" });
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => PROGRESS.test(o),
      () => {
        process.kill(pulumiProcess(stack.name), "SIGKILL");
      },
    );
    assert.equal(s.ok, false, "the killed up failed");
    assert.ok(s.faultAt);
    // A killed process says nothing: the next up is where the user learns what to do.
    const t0 = Date.now();
    const next = await stack.up({ onOutput: quiet }).then(
      () => "",
      (e: unknown) => String(e),
    );
    const locked = /the stack is currently locked/.test(next);
    log(
      `the up after the kill: ${next ? next.split("\n").find((l) => /^error: /.test(l)) : "completed"}`,
    );
    const steps = ["pulumi up"];
    if (locked) {
      // The file backend keeps the killed run's lock; pulumi's own error names the command.
      assert.match(next, /pulumi cancel/);
      await stack.cancel();
      steps.unshift("pulumi cancel");
    }
    const pending =
      ((await stack.exportStack()).deployment as { pending_operations?: unknown[] })
        .pending_operations ?? [];
    log(`pending operations after the kill: ${JSON.stringify(pending).slice(0, 600)}`);
    recordRow({
      fault: "the pulumi process killed (SIGKILL)",
      when: "mid-copy",
      test: `${FILE}: ${this.test!.title}`,
      outcome: locked
        ? "killed; the next up: `error: the stack is currently locked by 1 lock(s)`, naming `pulumi cancel`"
        : "killed; the next up ran",
      samplesLost: "see the last row",
      recovered: `yes: ${steps.join(", then ")} (the up is the next row's)`,
      detectSeconds: secondsSince(t0, Date.now()),
    });
  });

  it("the kube-apiserver stopped for 35 s mid-copy", async function () {
    // Still throttled (8 KiB/s): the copy is under way when the API server stops.
    let back: Promise<void> | undefined;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => /copy: /.test(o),
      () => {
        back = stopApiServer(35);
      },
    );
    await back;
    const line = errorLine(s);
    log(`the up with the API server stopped: ${s.ok ? "completed" : line}`);
    assertNoStackTrace(s);
    if (!s.ok) assertNamesNextStep(line);
    recordRow({
      fault: "the kube-apiserver stopped (SIGSTOP) for 35 s",
      when: "mid-copy",
      test: `${FILE}: ${this.test!.title}`,
      outcome:
        (s.ok ? "completed: the up went on when the API server came back" : `stopped: ${line}`) +
        (resumed(s.output) ? ` (this up had resumed: ${resumed(s.output)})` : ""),
      samplesLost: "see the last row",
      recovered: s.ok ? "yes: the up itself" : "yes: the next up (next row)",
      detectSeconds: secondsSince(s.faultAt, s.endedAt),
    });
  });

  it("the migration completed: every window equal on the target, and no sample lost", async function () {
    const r = await stack.up({ onOutput: quiet });
    assert.equal(r.outputs.status.value, "verified");
    const target = historyCounts(TARGET, SCENARIO.historyHours, sourceHistory.ends);
    const lost = sourceHistory.counts.reduce((n, c, i) => n + Math.max(0, c - target.counts[i]), 0);
    const sourceNow = historyCounts(SOURCE, SCENARIO.historyHours, sourceHistory.ends);
    const sourceLost = sourceHistory.counts.reduce(
      (n, c, i) => n + Math.max(0, c - sourceNow.counts[i]),
      0,
    );
    const ownLost = own.lost();
    const summary = `imported ${lost} of ${sourceHistory.counts.reduce((a, b) => a + b, 0)} (${sourceHistory.counts.length} windows); source's history ${sourceLost}; own samples: ${ownLost.map((o) => `${o.server} ${o.lost} (up to ${o.of} counted, ${o.counts} counts, one before each fault)`).join(", ")}`;
    log(summary);
    recordRow({
      fault: "(all of the above, at the end)",
      when: "after the last up",
      test: `${FILE}: ${this.test!.title}`,
      outcome: "verified",
      samplesLost: summary,
      recovered: "yes",
      detectSeconds: undefined,
    });
    assert.equal(lost, 0);
    assert.equal(sourceLost, 0);
    assert.deepEqual(
      ownLost.map((o) => [o.server, o.lost]),
      [
        ["source", 0],
        ["target", 0],
      ],
    );
  });

  it("the revert gives both templates back byte for byte and leaves nothing", async function () {
    await configure(stack, { forceRevert: "true" });
    await stack.removeConfig(`${PROJECT}:phase`);
    await stack.up({ onOutput: quiet });
    await stack.destroy({ onOutput: quiet });
    assert.deepEqual(podTemplate(SOURCE), templates.source);
    assert.deepEqual(podTemplate(TARGET), templates.target);
    assert.deepEqual(leftovers(), []);
  });
});
