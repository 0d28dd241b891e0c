// Issue 21 item 1: the plan and every preflight at preview, before `prepare` restarts a pod.

import * as assert from "node:assert/strict";
import {
  describePreview,
  PreviewInput,
  PreviewReport,
  previewReport,
  restartsOf,
  withAdmission,
} from "../../components/decisions/preview";
import { PlanSummary } from "../../components/decisions/planInput";
import { ProbeResult } from "../../components/decisions/sidecarOutput";
import { block, line, migratingCluster, sourceProbe, T0, targetProbe } from "../fixtures/probes";
import { SOURCE_CONFIG } from "../fixtures/workloads";
import { runProgram } from "./harness";

const H = 3_600_000;
const SETTINGS = {
  includeHead: false,
  acceptGap: false,
  maxWaitMinutes: 0,
  trimToTargetRetention: false,
};
const source = (p: Partial<ProbeResult> = {}): ProbeResult =>
  ({ ...sourceProbe(), ...p }) as ProbeResult;
const target = (p: Partial<ProbeResult> = {}): ProbeResult => ({ ...targetProbe(), ...p });

function input(o: {
  source?: ProbeResult | { why: string };
  targets?: (ProbeResult | { why: string })[];
  settings?: Partial<typeof SETTINGS>;
  mode?: "patch" | "ephemeral";
  adminApi?: boolean;
  prepared?: boolean;
}): PreviewInput {
  const looked = (x: ProbeResult | { why: string }) => ("why" in x ? x : { probe: x });
  const targets = o.targets ?? [target()];
  return {
    settings: { ...SETTINGS, ...o.settings },
    sidecarMode: o.mode ?? "patch",
    source: {
      workload: "Deployment monitoring/prometheus-server",
      looked: looked(o.source ?? source()),
      adminApi: o.adminApi ?? false,
      prepared: o.prepared ?? false,
    },
    target: {
      workload: "StatefulSet kubeprod/prometheus",
      prepared: o.prepared ?? false,
      replicas: targets.map((t, i) => ({
        pod: targets.length > 1 ? `prometheus-${i}` : null,
        volume: targets.length > 1 ? `data of pod prometheus-${i}` : "data",
        looked: looked(t),
      })),
    },
  };
}

describe("preview: the plan and every preflight before prepare (issue 21 item 1)", () => {
  it("both TSDBs read: the plan migrate will act on, each check with what it compared", () => {
    // The target started at 5h, inside the newest block: no gap on 2.42.
    const r = previewReport(input({}));
    assert.equal(r.verdict, "ready");
    assert.equal(r.refusal, null);
    assert.equal(r.plan?.blocks, 3);
    assert.equal(r.plan?.samples, 6000);
    assert.equal(r.plan?.gapSeconds, 0);
    assert.deepEqual(
      r.checked.map((c) => [c.check, c.ok]),
      [
        ["target retention", true],
        ["target free space", true],
        ["version gate", true],
        ["gap", true],
      ],
    );
    assert.match(
      r.checked[0].detail,
      /3 planned blocks are within the retention of data \(the default 15d, assumed: the target reported no retention flag\)/,
    );
    assert.match(
      r.checked[1].detail,
      /needs 5\.7 MiB \(plus a margin\) on data, which has 9536\.7 MiB free/,
    );
    assert.match(r.checked[2].detail, /readable by data's Prometheus 2\.42\.0/);
    assert.equal(r.gate, "no gap: every sample is kept");
    assert.deepEqual(r.freeBytes, { source: 10e9, target: [10e9] });
    assert.deepEqual(r.notChecked, []);
  });

  const refusals: [string, Parameters<typeof input>[0], string, RegExp][] = [
    [
      "a target retention shorter than the history: refused naming the flag",
      { targets: [target({ flags: { "storage.tsdb.retention.time": "2h" } })] },
      "target",
      /beyond its retention \(--storage\.tsdb\.retention\.time=2h\).*at least 1d/,
    ],
    [
      "a target volume too small for the copy",
      { targets: [target({ dfAvailableBytes: 50 * 2 ** 20 })] },
      "target",
      /the copy needs 5\.7 MiB plus a margin of 64\.6 MiB on the target's volume data, which has 50\.0 MiB free/,
    ],
    [
      "blocks the target's version can't read: the version gate",
      {
        source: source({
          blocks: [{ ...block("01AAAAAAAAAAAAAAAAAAAAAAA1", 0, 2), indexFormat: 3 }],
        }),
        targets: [target({ tsdb: { minTime: T0 + 1 * H, maxTime: T0 + 7.5 * H, numSeries: 1 } })],
      },
      "target",
      /index format/,
    ],
    [
      "includeHead with no room for the head block on the source",
      { settings: { includeHead: true }, source: source({ dfAvailableBytes: 1000 }) },
      "includeHead",
      /head snapshot writes about/,
    ],
  ];
  for (const [what, o, key, message] of refusals) {
    it(what, () => {
      const r = previewReport(input(o));
      assert.equal(r.verdict, "refused");
      assert.equal(r.refusal?.key, key);
      assert.match(r.refusal!.message, message);
      // The plan is still shown: a change review sees what was refused and why.
      assert.ok(r.plan);
      assert.ok(r.checked.some((c) => !c.ok && c.detail === r.refusal!.message));
    });
  }

  it("a gap migrate would refuse as configured now: for attention, not refused at prepare", () => {
    // includeHead, acceptGap and maxWaitMinutes are usually set at migrate, and the gap
    // changes with the source's next compaction.
    const r = previewReport(
      input({
        targets: [target({ tsdb: { minTime: T0 + 7 * H, maxTime: T0 + 7.5 * H, numSeries: 1 } })],
      }),
    );
    assert.equal(r.verdict, "ready");
    assert.equal(r.refusal, null);
    assert.equal(r.attention.length, 1);
    assert.match(
      r.attention[0],
      /^gap: the plan leaves a gap of 60 min.*set maxWaitMinutes to at least.*\(checked again at migrate, with includeHead, acceptGap and maxWaitMinutes as they are then\)$/,
    );
    assert.ok(!r.checked.some((c) => c.check === "gap"), "not reported as a check that passed");
    assert.ok(describePreview(r).some((l) => l.startsWith("preflight attention: gap: ")));
  });

  it("a structural refusal with a gap: refused by the structural gate, the gap for attention", () => {
    const r = previewReport(
      input({
        targets: [
          target({
            tsdb: { minTime: T0 + 7 * H, maxTime: T0 + 7.5 * H, numSeries: 1 },
            dfAvailableBytes: 1,
          }),
        ],
      }),
    );
    assert.equal(r.verdict, "refused");
    assert.equal(r.refusal?.key, "target");
    assert.match(r.refusal!.message, /the copy needs/);
    assert.equal(r.attention.length, 1);
  });

  it("every replica is planned; the refusal names the replica's volume", () => {
    const r = previewReport(input({ targets: [target(), target({ dfAvailableBytes: 1 })] }));
    assert.equal(r.verdict, "refused");
    assert.match(r.refusal!.message, /volume data of pod prometheus-1, which has 0\.0 MiB free/);
    assert.deepEqual(r.freeBytes.target, [10e9, 1]);
  });

  it("a TSDB that could not be read: incomplete, saying what and why, never ready", () => {
    const r = previewReport(input({ source: { why: "the container has no shell" } }));
    assert.equal(r.verdict, "incomplete");
    assert.equal(r.plan, null);
    assert.deepEqual(r.checked, []);
    assert.match(
      r.notChecked[0],
      /source Deployment monitoring\/prometheus-server: its TSDB could not be read \(the container has no shell\)/,
    );
    assert.match(r.notChecked[1], /the plan, target retention, free space, version gate and gap/);
    assert.equal(r.freeBytes.source, null);
  });

  it("a target replica that could not be read: no plan for any", () => {
    const r = previewReport(input({ targets: [target(), { why: "exec forbidden" }] }));
    assert.equal(r.verdict, "incomplete");
    assert.equal(r.plan, null);
    assert.match(
      r.notChecked.join("\n"),
      /target data of pod prometheus-1: its TSDB could not be read \(exec forbidden\)/,
    );
  });

  it("flags the probe did not read: discovery's are used", () => {
    const r = previewReport({
      ...input({ targets: [target({ flags: null })] }),
      discovered: {
        target: {
          value: { "storage.tsdb.retention.time": "4h" },
          from: "server prometheus-0: flags",
        },
      },
    });
    assert.equal(r.verdict, "refused");
    assert.match(r.refusal!.message, /retention \(--storage\.tsdb\.retention\.time=4h\)/);
  });

  it("flags read by neither: refused naming target.url, never planned with defaults", () => {
    const r = previewReport(input({ targets: [target({ flags: null })] }));
    assert.equal(r.verdict, "refused");
    assert.equal(r.refusal?.key, "target.url");
    assert.equal(r.plan, null);
    assert.match(
      r.notChecked[0],
      /target data: its flags were read neither by the probe nor by discovery/,
    );
  });

  it("a target whose version is unknown: no plan (the version gate can't look)", () => {
    const r = previewReport(input({ targets: [target({ buildinfo: null })] }));
    assert.equal(r.verdict, "incomplete");
    assert.equal(r.plan, null);
    assert.match(
      r.notChecked.join("\n"),
      /target data: its version or head is unknown \(API not read\)/,
    );
  });

  const restarts: [string, Parameters<typeof input>[0], RegExp[]][] = [
    [
      "patch mode, nothing in place: both restart at prepare, none at migrate, both at revert",
      {},
      [
        /^prepare: Deployment monitoring\/prometheus-server restarts its pod to add the rsync daemon/,
        /^prepare: StatefulSet kubeprod\/prometheus restarts its pod to add the rsync client/,
        /^migrate: none/,
        /^revert: .* restart once more/,
      ],
    ],
    [
      "includeHead with the admin API off: one more source restart",
      { settings: { includeHead: true } },
      [
        /^prepare: .*daemon/,
        /^prepare: .*admin API on/,
        /^prepare: .*client/,
        /^migrate/,
        /^revert/,
      ],
    ],
    [
      "includeHead with the admin API on already: none more",
      { settings: { includeHead: true }, adminApi: true },
      [/^prepare: .*daemon/, /^prepare: .*client/, /^migrate/, /^revert/],
    ],
    [
      "prepared already: no restart at prepare",
      { prepared: true },
      [/^prepare: none for Deployment/, /^prepare: none for StatefulSet/, /^migrate/, /^revert/],
    ],
    [
      "ephemeral: none",
      { mode: "ephemeral" },
      [/^none: the sidecars are added to the running pods/],
    ],
    [
      "two target replicas: both restart",
      { targets: [target(), target()] },
      [/daemon/, /restarts its 2 pods/, /^migrate/, /^revert/],
    ],
  ];
  for (const [what, o, expected] of restarts) {
    it(`restarts: ${what}`, () => {
      const got = restartsOf(input(o));
      assert.equal(got.length, expected.length, got.join("\n"));
      expected.forEach((re, i) => assert.match(got[i], re));
    });
  }

  it("the log lines say the verdict, the plan, each check and each restart", () => {
    const lines = describePreview(previewReport(input({})));
    assert.equal(lines[0], "preflight: ready");
    assert.match(
      lines[1],
      /^preflight plan: 3 blocks, 5\.7 MiB, 6000 samples, from .* up to .*, gap 0s; no gap/,
    );
    assert.ok(lines.some((l) => /^preflight ok: version gate: /.test(l)));
    assert.ok(lines.some((l) => /^restarts: prepare: /.test(l)));
  });
});

describe("program: the preview before prepare (issue 21 item 1)", () => {
  // Both Prometheus containers answer probe.sh (the official and Bitnami images have a shell).
  const readable = (targetOverrides: Partial<ProbeResult> = {}) => {
    const c = migratingCluster();
    c.exec = {
      ...c.exec,
      "prometheus-server:probe": line(sourceProbe()),
      "prometheus:probe": line({ ...targetProbe(), ...targetOverrides }),
    };
    return c;
  };
  const config = { phase: "prepare", source: SOURCE_CONFIG };

  it("the plan and every check are stack outputs before any sidecar exists", async () => {
    const r = await runProgram(config, readable(), { preview: true });
    const preflight = r.outputs.preflight as PreviewReport;
    assert.equal(preflight.verdict, "ready");
    assert.equal((r.outputs.plan as PlanSummary).blocks, 3);
    assert.equal(preflight.plan?.samples, 6000);
    assert.deepEqual(
      preflight.checked.map((c) => c.check),
      ["target retention", "target free space", "version gate", "gap", "admission", "admission"],
    );
    assert.match(preflight.checked[4].detail, /admitted by a server-side dry-run/);
    assert.equal(preflight.restarts.length, 4);
    // Read through the Prometheus containers, never a sidecar (none exists yet).
    assert.ok(r.commands.some((c) => /-c 'prometheus-server' .*ptm-probe/.test(c)));
    assert.ok(r.commands.some((c) => /-c 'prometheus' .*ptm-probe/.test(c)));
  });

  it("a target retention too short: refused at preview, naming the flag", async () => {
    const err = await runProgram(
      config,
      readable({
        flags: {
          "storage.tsdb.path": "/opt/bitnami/prometheus/data",
          "storage.tsdb.retention.time": "4h",
        },
      }),
      { preview: true },
    ).catch((e: Error) => e);
    assert.ok(err instanceof Error);
    assert.match(
      err.message,
      /:target: the target would delete 1 of the 3 planned blocks .*--storage\.tsdb\.retention\.time of at least 1d/,
    );
  });

  it("a container without a shell: prepare goes on, the report says what it could not check", async () => {
    const r = await runProgram(config, migratingCluster());
    const preflight = r.outputs.preflight as PreviewReport;
    assert.equal(preflight.verdict, "incomplete");
    assert.equal(r.outputs.plan, null);
    assert.match(
      preflight.notChecked[0],
      /^source Deployment monitoring\/prometheus-server: its TSDB could not be read \(kubectl exec into container prometheus-server of deployment\/prometheus-server failed \(exit/,
    );
    assert.ok(r.resources.some((x) => x.type === "kubernetes:apps/v1:DeploymentPatch"));
  });

  it("no phase on a fresh stack: the same report, and a refusal is only reported", async () => {
    const r = await runProgram(
      { source: SOURCE_CONFIG },
      readable({
        flags: {
          "storage.tsdb.path": "/opt/bitnami/prometheus/data",
          "storage.tsdb.retention.time": "4h",
        },
      }),
      { preview: true },
    );
    const preflight = r.outputs.preflight as PreviewReport;
    assert.equal(r.outputs.status, "reverted");
    assert.equal(preflight.verdict, "refused");
    assert.equal(preflight.refusal?.key, "target");
    assert.match(String(r.outputs.message), /^nothing to revert/);
    assert.ok(!r.resources.some((x) => /Patch$/.test(x.type)));
  });

  it("no phase on a stack that patched a workload: a revert, no report", async () => {
    const c = readable();
    // What a prepare of this stack leaves on the target (naming.ts): its patched-by label.
    const sts = c.objects["statefulset/kubeprod/prometheus"] as {
      metadata: { labels: Record<string, string> };
    };
    sts.metadata.labels = {
      ...sts.metadata.labels,
      "prometheus-tsdb-migration.github.io/patched-by": "test",
      "prometheus-tsdb-migration.github.io/role": "target",
    };
    const r = await runProgram({ source: SOURCE_CONFIG }, c, { preview: true });
    assert.equal(r.outputs.preflight, null);
    assert.match(String(r.outputs.message), /^reverted/);
  });
});

describe("preview: admission's answers in the report (issue 21 item 4)", () => {
  const ready = previewReport(input({}));
  it("an admitted pod is a check that passed", () => {
    const r = withAdmission(ready, [{ action: "admitted", message: "source: admitted" }]);
    assert.equal(r.verdict, "ready");
    assert.deepEqual(r.checked.at(-1), {
      check: "admission",
      ok: true,
      detail: "source: admitted",
    });
  });
  it("a dry-run that could not be made is not a pass: incomplete", () => {
    const r = withAdmission(ready, [
      { action: "admitted", message: "source: admitted" },
      { action: "unchecked", message: "admission NOT checked for target: forbidden" },
    ]);
    assert.equal(r.verdict, "incomplete");
    assert.deepEqual(r.notChecked, ["admission: admission NOT checked for target: forbidden"]);
  });
  it("a warning (a quota counted with the old pod) is not a pass either", () => {
    assert.equal(
      withAdmission(ready, [{ action: "warn", message: "exceeded" }]).verdict,
      "incomplete",
    );
  });
});
