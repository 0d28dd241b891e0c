// Faults at the other steps (issue 23), in one patch-mode migration into a target whose
// volume is small (a 384 MiB tmpfs): a sidecar image no node can pull at prepare; the
// kube-apiserver stopped during the rollout of the prepare that follows; the target volume
// filled by another writer mid-copy; `pulumi` killed (SIGKILL) mid-install; the target pod
// deleted between the install and the verification; the source workload deleted after the
// install, then the revert and destroy. Each fault strikes its own `up`, the next one is the
// recovery.
//
//   source test/engine/env.sh; export KUBECONFIG=/var/lib/ptm-lab/admin.kubeconfig
//   PTM_E2E_NAMESPACE_PREFIX=ptm-fault npx mocha --no-config -r ts-node/register/transpile-only \
//     -r test/e2e/guard.ts --timeout 2400000 test/faults/phases.test.ts

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { Stack } from "@pulumi/pulumi/automation";
import { apply, deleteOwnNamespaces, execIn, kubectl, rolloutStatus } from "../e2e/cluster";
import {
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  historyCounts,
  openStack,
  podOf,
  podTemplate,
  pulumiEnv,
  REPO,
  resetCluster,
  ScenarioOptions,
  SOURCE,
  TARGET,
} from "../e2e/scenario";
import {
  assertNamesNextStep,
  assertNoStackTrace,
  deletePod,
  errorLine,
  OwnSamples,
  pulumiProcess,
  recordRow,
  secondsSince,
  stopApiServer,
  upStruck,
} from "./faults";

const log = (l: string) => process.stdout.write(`      ${l}\n`);
const quiet = () => undefined;
const PROJECT = "prometheus-tsdb-migration";
const FILE = "test/faults/phases.test.ts";
const SCENARIO: ScenarioOptions = { ...DEFAULTS, historyHours: 12, log };
const MiB = 1024 * 1024;

// The target's small volume: a tmpfs on the node (the lab's node is this machine), offered as
// a local PV bound in advance to the claim BKPR's StatefulSet makes. 384 MiB: the target's
// 128 MiB of head chunks, its WAL, and room for the copy and its 64 MiB reserve.
const SMALL = {
  pv: "ptm-fault-small-volume",
  dir: "/var/lib/ptm-lab/pv-fault-small",
  size: "384m",
};

function smallVolume(): void {
  fs.mkdirSync(SMALL.dir, { recursive: true });
  if (!fs.readFileSync("/proc/mounts", "utf8").includes(` ${SMALL.dir} `))
    execFileSync("mount", [
      "-t",
      "tmpfs",
      "-o",
      `size=${SMALL.size},mode=0777`,
      "tmpfs",
      SMALL.dir,
    ]);
  const node = kubectl(["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim();
  apply([
    {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: SMALL.pv },
      spec: {
        capacity: { storage: "8Gi" },
        accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain",
        storageClassName: "ptm-local",
        volumeMode: "Filesystem",
        local: { path: SMALL.dir },
        claimRef: { namespace: TARGET.namespace, name: `data-${TARGET.name}-0` },
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: "kubernetes.io/hostname", operator: "In", values: [node] },
                ],
              },
            ],
          },
        },
      },
    },
  ]);
}

function removeSmallVolume(): void {
  deleteOwnNamespaces([TARGET.namespace], { wait: true });
  kubectl(["delete", "pv", SMALL.pv, "--ignore-not-found", "--wait=true"]);
  if (fs.readFileSync("/proc/mounts", "utf8").includes(` ${SMALL.dir} `))
    execFileSync("umount", [SMALL.dir]);
}

/** Runs a shell command in the target's rsync client sidecar (it mounts the target's volume). */
function inTargetSidecar(cmd: string): string {
  return kubectl([
    "exec",
    "-n",
    TARGET.namespace,
    `statefulset/${TARGET.name}`,
    "-c",
    "ptm-rsync",
    "--",
    "sh",
    "-c",
    cmd,
  ]);
}

describe("faults at prepare, install and revert: one migration, each fault strikes its own up", function () {
  this.timeout(40 * 60_000);
  let stack: Stack;
  let sourceHistory: { ends: number[]; counts: number[] };
  let templates: { source: unknown; target: unknown };
  // The servers' own samples, counted before each fault and again at the end.
  let own: OwnSamples;

  before(async function () {
    await resetCluster(log);
    removeSmallVolume();
    smallVolume();
    await deployFixtures(SCENARIO);
    assert.match(
      execIn(TARGET, "df -Pk /opt/bitnami/prometheus/data | tail -n 1"),
      /^tmpfs\s/,
      "the target's data is on the small volume",
    );
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 20_000));
    sourceHistory = historyCounts(SOURCE, SCENARIO.historyHours);
    templates = { source: podTemplate(SOURCE), target: podTemplate(TARGET) };
    own = new OwnSamples(startedAt - 30_000);
    stack = await openStack(`faults-phases-${Date.now()}`, pulumiEnv());
    await configurePrepare(stack, SCENARIO);
    await configure(stack, { acceptGap: "true", rolloutTimeoutSeconds: 240 });
  });

  after(async function () {
    if (stack)
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    removeSmallVolume();
  });

  it("an admission rejection (a ResourceQuota that requires limits), at prepare: refused at preview", async function () {
    apply([
      {
        apiVersion: "v1",
        kind: "ResourceQuota",
        metadata: { name: "requires-limits", namespace: TARGET.namespace },
        spec: { hard: { "limits.cpu": "4", "limits.memory": "4Gi" } },
      },
    ]);
    const before = podOf(TARGET).uid;
    const t0 = Date.now();
    let out = "";
    const err = await stack.preview({ onOutput: (o) => (out += o) }).then(
      () => "",
      (e: unknown) => String(e),
    );
    const detect = secondsSince(t0, Date.now());
    const line = (
      (out + "\n" + err)
        .split("\n")
        .find((l) => /error: .*ResourceQuota .*requires-limits/.test(l)) ?? ""
    )
      .replace(/^.*?error: /, "")
      .trim();
    log(`quota: ${line || err.slice(0, 400)}`);
    assert.match(line, new RegExp(`ResourceQuota ${TARGET.namespace}/requires-limits`));
    assertNamesNextStep(line);
    assert.equal(podOf(TARGET).uid, before, "nothing moved");
    kubectl(["delete", "resourcequota", "requires-limits", "-n", TARGET.namespace]);
    recordRow({
      fault: "an admission rejection of the patched pod (a ResourceQuota that requires limits)",
      when: "prepare",
      test: `${FILE}: ${this.test!.title}`,
      outcome: `refused at preview: ${line}`,
      samplesLost: "see the last row",
      recovered: "yes: the quota removed, the next up prepared (struck by the next rows)",
      detectSeconds: detect,
    });
  });

  it("a sidecar image no node can pull, at prepare: stops fast, naming the image key", async function () {
    await configure(stack, { sidecarImage: "docker.io/ptm/no-such-image:1" });
    const t0 = Date.now();
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      () => true,
      () => undefined,
    );
    assert.equal(s.ok, false);
    const line = errorLine(s);
    log(`unpullable: ${line}`);
    assert.match(line, /can't run \((ErrImagePull|ImagePullBackOff)[,)].*sidecarImage/);
    assertNoStackTrace(s);
    assertNamesNextStep(line);
    recordRow({
      fault: "the sidecar image unpullable",
      when: "prepare",
      test: `${FILE}: ${this.test!.title}`,
      outcome: `stopped: ${line}`,
      samplesLost: "see the last row",
      recovered:
        "yes: sidecarImage set right, the next up (struck by the next row) completed prepare",
      detectSeconds: secondsSince(t0, s.endedAt),
    });
  });

  it("the kube-apiserver stopped for 35 s during the rollout of prepare: the up completes", async function () {
    await configure(stack, { sidecarImage: SCENARIO.sidecarImage });
    let back: Promise<void> | undefined;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => /-rollout (creating|updating)/.test(o),
      () => {
        back = stopApiServer(35);
      },
    );
    await back;
    const line = errorLine(s);
    log(`apiserver stopped during the rollout: ${s.ok ? "completed" : line}`);
    assertNoStackTrace(s);
    let recovered = "yes: the up itself completed prepare";
    if (!s.ok) {
      assertNamesNextStep(line);
      await stack.up({ onOutput: quiet });
      recovered = "yes: the next up completed prepare";
    }
    rolloutStatus(SOURCE);
    rolloutStatus(TARGET);
    recordRow({
      fault: "the kube-apiserver stopped (SIGSTOP) for 35 s",
      when: "during the rollout of prepare",
      test: `${FILE}: ${this.test!.title}`,
      outcome: s.ok ? "completed" : `stopped: ${line}`,
      samplesLost: "see the last row",
      recovered,
      detectSeconds: secondsSince(s.faultAt, s.endedAt),
    });
  });

  it("a NetworkPolicy in the target namespace denying egress, before migrate: refused at preview", async function () {
    // The lab's CNI (the bridge plugin) does not enforce NetworkPolicy: what is proven here
    // is the refusal before anything moves, read from the policy itself.
    apply([
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "deny-all-egress", namespace: TARGET.namespace },
        spec: { podSelector: {}, policyTypes: ["Egress"] },
      },
    ]);
    await configure(stack, { phase: "migrate" });
    const before = podOf(TARGET).uid;
    const t0 = Date.now();
    let out = "";
    const err = await stack.preview({ onOutput: (o) => (out += o) }).then(
      () => "",
      (e: unknown) => String(e),
    );
    const detect = secondsSince(t0, Date.now());
    const line = (
      (out + "\n" + err).split("\n").find((l) => /NetworkPolicy .*isolates the egress/.test(l)) ??
      ""
    ).trim();
    log(`egress denied: ${line || err.slice(0, 400)}`);
    assert.match(
      line,
      new RegExp(
        `prometheus-tsdb-migration:target: NetworkPolicy ${TARGET.namespace}/deny-all-egress isolates the egress of the target's pods .* no policy admits them to the source's rsync daemon .*TCP 8873\\).*Add the egress rule .*run pulumi up again`,
      ),
    );
    assert.equal(podOf(TARGET).uid, before, "nothing moved");
    kubectl(["delete", "networkpolicy", "deny-all-egress", "-n", TARGET.namespace]);
    recordRow({
      fault: "a NetworkPolicy in the target namespace denying all egress",
      when: "before migrate",
      test: `${FILE}: ${this.test!.title}`,
      outcome: `refused at preview: ${line.replace(/^.*?(prometheus-tsdb-migration:target:)/, "$1")}`,
      samplesLost: "see the last row",
      recovered: "yes: the policy removed, the next up migrated (next rows)",
      detectSeconds: detect,
    });
  });

  it("the target volume filled by another writer mid-copy: the copy stops above its reserve", async function () {
    await configure(stack, { bandwidthLimit: "2" });
    let filled = "";
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => /copy: \d+\/\d+ blocks done/.test(o),
      () => {
        // Leaves 40 MiB free: below the copy's 64 MiB reserve, enough for the target's own
        // writes meanwhile. Written on the node, into the volume's directory: from inside a
        // container, tmpfs pages count against that container's memory limit.
        const free = Number(
          execFileSync("df", ["-Pk", SMALL.dir], { encoding: "utf8" })
            .split("\n")[1]
            .split(/\s+/)[3],
        );
        execFileSync(
          "dd",
          [
            "if=/dev/zero",
            `of=${SMALL.dir}/ptm-fault-filler`,
            "bs=1024",
            `count=${Math.max(0, free - 40 * 1024)}`,
          ],
          { stdio: "ignore" },
        );
        filled = String(
          Number(
            execFileSync("df", ["-Pk", SMALL.dir], { encoding: "utf8" })
              .split("\n")[1]
              .split(/\s+/)[3],
          ) * 1024,
        );
      },
    );
    log(`filled: ${Math.round(Number(filled) / MiB)} MiB free`);
    assert.equal(s.ok, false, "the copy stopped");
    const line = errorLine(s);
    log(`volume full: ${line}`);
    assert.match(
      line,
      /copy: ERROR: stopped: the free space on the target volume was falling below/,
    );
    assertNoStackTrace(s);
    assertNamesNextStep(line);
    const free = Number(
      inTargetSidecar("df -Pk \"$PTM_DATA\" | awk 'NR == 2 { print $4 * 1024 }'"),
    );
    assert.ok(free > 30 * MiB, `the target kept room for its own writes: ${free} bytes free`);
    // The user frees the space; the copy resumes at full speed.
    fs.rmSync(`${SMALL.dir}/ptm-fault-filler`);
    await stack.removeConfig(`${PROJECT}:bandwidthLimit`);
    recordRow({
      fault: "the target volume filled by another writer (to 40 MiB free of 384 MiB)",
      when: "mid-copy",
      test: `${FILE}: ${this.test!.title}`,
      outcome: `stopped: ${line}`,
      samplesLost: "see the last row",
      recovered: "yes: the filler removed, the next up (struck by the next row) copied the rest",
      detectSeconds: secondsSince(s.faultAt, s.endedAt),
    });
  });

  it("pulumi killed (SIGKILL) mid-install: pulumi cancel, then the next up", async function () {
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => /copy: \d+ blocks copied and verified/.test(o),
      () => {
        process.kill(pulumiProcess(stack.name), "SIGKILL");
      },
    );
    assert.equal(s.ok, false, "the killed up failed");
    assert.ok(s.faultAt);
    const t0 = Date.now();
    const next = await stack.up({ onOutput: quiet }).then(
      () => "",
      (e: unknown) => String(e),
    );
    const locked = /the stack is currently locked/.test(next);
    const steps = ["pulumi up"];
    if (locked) {
      // The file backend keeps the killed run's lock; pulumi's own error names the command.
      assert.match(next, /pulumi cancel/);
      await stack.cancel();
      steps.unshift("pulumi cancel");
    }
    recordRow({
      fault: "the pulumi process killed (SIGKILL)",
      when: "mid-install",
      test: `${FILE}: ${this.test!.title}`,
      outcome: locked
        ? "killed; the next command: `error: the stack is currently locked by 1 lock(s)`, naming `pulumi cancel`"
        : "killed; the next command ran",
      samplesLost: "see the last row",
      recovered: `yes: ${steps.join(", then ")} (the up is the next row's)`,
      detectSeconds: secondsSince(t0, Date.now()),
    });
  });

  it("the target pod deleted between the install and the verification", async function () {
    const pod = podOf(TARGET).name;
    own.take(SOURCE, "source");
    own.take(TARGET, "target");
    const s = await upStruck(
      stack,
      (o) => /install: installed \d+ blocks/.test(o),
      () => deletePod(TARGET, pod),
    );
    const line = errorLine(s);
    log(`the up whose target pod went after the install: ${s.ok ? "completed" : line}`);
    assert.ok(s.faultAt, "the pod was deleted after an install");
    assertNoStackTrace(s);
    if (!s.ok) assertNamesNextStep(line);
    rolloutStatus(TARGET);
    let recovered = "yes: the up itself verified";
    if (!s.ok) {
      const r = await stack.up({ onOutput: quiet });
      assert.equal(r.outputs.status.value, "verified");
      recovered = "yes: the next up verified";
    }
    recordRow({
      fault: "the target pod deleted",
      when: "between the install and the verification",
      test: `${FILE}: ${this.test!.title}`,
      outcome: s.ok ? "completed" : `stopped: ${line}`,
      samplesLost: "see the last row",
      recovered,
      detectSeconds: secondsSince(s.faultAt, s.endedAt),
    });
  });

  it("the source workload deleted after the install: revert and destroy finish; the target's template is back", async function () {
    const target = historyCounts(TARGET, SCENARIO.historyHours, sourceHistory.ends);
    const lost = sourceHistory.counts.reduce((n, c, i) => n + Math.max(0, c - target.counts[i]), 0);
    // Counted again before the source goes: the target's witnesses once more after the revert.
    own.take(TARGET, "target");
    const sourceOwn = own.lost("source");
    kubectl(["delete", "deployment", SOURCE.name, "-n", SOURCE.namespace, "--wait=true"]);
    const t0 = Date.now();
    // No forceRevert: nothing was imported from the source's head (includeHead is off), so
    // the guard lets the target restart; its own samples are counted again after it.
    await stack.removeConfig(`${PROJECT}:phase`);
    const refused = await upStruck(
      stack,
      () => false,
      () => undefined,
    );
    // The provider can't delete a patch of an object that is gone: the revert stops at it,
    // after a warning that names the command that drops the patch from the state.
    assert.equal(refused.ok, false, "the first revert stops at the source's patch");
    const refusal = (refused.output + "\n" + refused.error)
      .split("\n")
      .find((l) => /warning: .* does not exist any more/.test(l))
      ?.replace(/^.*?warning: /, "")
      .trim();
    assert.ok(refusal, errorLine(refused));
    log(`revert refused: ${refusal}`);
    assertNoStackTrace(refused);
    const cmd = /pulumi stack export \| jq '.*' \| pulumi stack import/.exec(refusal)?.[0];
    assert.ok(cmd, `the refusal names the command: ${refusal}`);
    // The user's next step, as written, in the project directory with this stack selected.
    execFileSync("sh", ["-c", cmd], {
      cwd: REPO,
      env: { ...process.env, ...stack.workspace.envVars },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const s = await upStruck(
      stack,
      () => false,
      () => undefined,
    );
    const left = s.output
      .split("\n")
      .filter((l) => /snapshot-cleanup: |does not exist any more/.test(l))
      .map((l) => l.replace(/^.*?(snapshot-cleanup|admin-api|rollout-settle): /, "$1: ").trim());
    log(`revert without the source, after the state delete: ${s.ok ? "completed" : errorLine(s)}`);
    for (const l of left) log(`  ${l}`);
    assertNoStackTrace(s);
    await stack.destroy({ onOutput: quiet });
    assert.deepEqual(podTemplate(TARGET), templates.target);
    rolloutStatus(TARGET);
    // Nothing of ours left, but what the revert said it could not remove (no source pod).
    const ours: string[] = [];
    for (const ns of [SOURCE.namespace, TARGET.namespace]) {
      const objs = kubectl([
        "get",
        "services,networkpolicies,secrets,configmaps",
        "-n",
        ns,
        "-l",
        `app.kubernetes.io/name=${PROJECT}`,
        "-o",
        "name",
      ]).trim();
      if (objs) ours.push(...objs.split("\n"));
    }
    const staging = execIn(
      TARGET,
      "ls -d /opt/bitnami/prometheus/data/ptm-staging 2>/dev/null || true",
    ).trim();
    if (staging) ours.push(`target staging: ${staging}`);
    assert.deepEqual(ours, []);
    // The target restarts at the revert (its sidecar goes): its own samples, counted again.
    const ownLost = [...sourceOwn, ...own.lost("target")];
    const ownText = ownLost
      .map(
        (o) =>
          `${o.server}'s own ${o.lost} (up to ${o.of} counted, ${o.counts} counts, one before each fault)`,
      )
      .join(", ");
    recordRow({
      fault: "the source workload deleted",
      when: "after the install; then revert and destroy",
      test: `${FILE}: ${this.test!.title}`,
      outcome: `the revert stopped at the source's patch, after the warning: ${refusal}; after that command, the next revert completed${s.ok ? `, saying: ${left.find((l) => /LEFT BEHIND/.test(l)) ?? left[0] ?? "nothing"}` : ` NOT: ${errorLine(s)}`}`,
      samplesLost: `imported ${lost} (${sourceHistory.counts.length} windows); ${ownText}`,
      recovered: s.ok
        ? "yes: the command the error names (retainOnDelete on that patch in the state), then the revert and destroy completed"
        : "no",
      detectSeconds: secondsSince(t0, refused.endedAt),
    });
    assert.equal(s.ok, true);
    assert.equal(lost, 0);
    assert.ok(ownLost.length === 2 && ownLost.every((o) => o.lost === 0), JSON.stringify(ownLost));
    void templates.source;
  });
});
