// Issue 20: a later `pulumi up` is a function of the recorded decision, the live state and the
// config as it is now. Each test is one row of docs/transitions.md: an earlier run's record is
// in the cluster (the ConfigMap the first `up` wrote), something changed, and the program runs
// again under the mock engine.

import * as assert from "node:assert/strict";
import {
  DECISION_RECORD_COMPONENT,
  DECISION_RECORD_KEY,
  DecisionRecord,
  nextRun,
  RunFacts,
  serializeDecision,
} from "../../components/decisions/decisionRecord";
import { PlanSummary } from "../../components/decisions/planInput";
import {
  block,
  line,
  migrateSteps,
  migratingCluster,
  SOURCE_BLOCKS,
  sourceProbe,
  T0,
  targetProbe,
} from "../fixtures/probes";
import { kpsObjects, kpsRef } from "../fixtures/prometheusOperator";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { byType, FakeCluster, one, runProgram } from "./harness";

const H = 3_600_000;
const [S1, S2, S3] = SOURCE_BLOCKS.map((b) => b.ulid);
type Obj = Record<string, unknown>;

const PLAN: PlanSummary = {
  blocks: 2,
  bytes: 4e6,
  samples: 4000,
  from: null,
  cutoff: null,
  gapSeconds: 3600,
  overlapAllowed: false,
  overlapRule: "rejected",
  formatsReadable: true,
  skipped: [],
  skippedCount: 1,
  nextSourceCompaction: null,
  gapSecondsAfterNextCompaction: null,
  advice: "",
};

function record(o: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    generation: 1,
    decidedAtMs: T0 + 7.5 * H,
    snapshot: "ptm-test",
    includeHead: false,
    acceptGap: true,
    sidecarMode: "patch",
    waitUntilMs: 0,
    replicas: [
      { pod: null, blocks: [S1, S2], cutoffMs: T0 + 4 * H, targetEarliestMs: T0 + 5 * H, gapMs: H },
    ],
    plan: PLAN,
    ...o,
  };
}

/** A replica's part that copies all three source blocks, with no gap. */
const EVERY_BLOCK = {
  pod: null,
  blocks: [S1, S2, S3],
  cutoffMs: T0 + 6 * H,
  targetEarliestMs: T0 + 5 * H,
  gapMs: 0,
};

/** The record's ConfigMap as the first `up` left it in the target's namespace. */
function withRecord(c: FakeCluster, r: DecisionRecord, namespace = "kubeprod"): FakeCluster {
  const labels = {
    "app.kubernetes.io/instance": "test",
    "app.kubernetes.io/component": DECISION_RECORD_COMPONENT,
  };
  return {
    ...c,
    configMaps: {
      ...(c.configMaps ?? {}),
      [namespace]: [
        { metadata: { labels }, data: { [DECISION_RECORD_KEY]: serializeDecision(r) } },
      ],
    },
  };
}

const config = { phase: "migrate", source: SOURCE_CONFIG, acceptGap: true };
const commandNamed = (r: Awaited<ReturnType<typeof runProgram>>, name: string) =>
  one(r, "command:local:Command", name).inputs as Record<string, string>;
const quoted = (ulids: string[]) => ulids.map((u) => `'${u}'`).join(" ");

describe("transitions (issue 20): a later up resumes, re-decides or refuses", () => {
  it("row 1: the 2.26 target compacted the imported blocks with its own: the next up keeps the recorded plan", async () => {
    // First run: a 2.26 target (no overlaps) that scrapes from 5h: S1 and S2 copied, S3 skipped.
    // Since then it compacted S1, S2 and its own first block into one: re-planned from that,
    // its own data would seem to start at 6h, and S3 would be selected.
    const merged = block("01TARGETMERGED000000000000", 0, 6, 2, [
      S1,
      S2,
      "01TARGETOWN000000000000001",
    ]);
    const c = withRecord(migratingCluster(), record());
    c.exec = {
      ...c.exec,
      "ptm-rsync:probe": line({
        ...targetProbe({ version: "2.26.0", startedAtH: 6 }),
        blocks: [merged],
      }),
      "ptm-rsync:counts": line({
        windows: [2, 4].map((h) => ({ endMs: T0 + h * H, count: 2000 })),
        health: { blocksLoaded: 1, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 },
        blocks: [merged],
      }),
      "ptm-rsyncd:counts": line({
        windows: [2, 4].map((h) => ({ endMs: T0 + h * H, count: 2000 })),
        health: { blocksLoaded: 3, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: T0 },
      }),
    };
    // What the first run's steps printed (kept in the state): two blocks.
    c.commandStdout = {
      ...c.commandStdout,
      "migration-block-copy": line({ copied: 2, skipped: 0, bytesCopied: 4e6, bytesTotal: 4e6 }),
      "migration-block-install": line({ installed: 2, alreadyPresent: 0 }),
    };
    const r = await runProgram(config, c);
    assert.ok(
      commandNamed(r, "migration-block-copy").create.endsWith(`'ptm-copy' ${quoted([S1, S2])}`),
    );
    assert.ok(
      commandNamed(r, "migration-block-install").create.endsWith(
        `'ptm-install' ${quoted([S1, S2])}`,
      ),
    );
    assert.equal(r.outputs.status, "verified");
    assert.equal(
      (r.outputs.plan as { blocks: number }).blocks,
      2,
      "the plan output is the recorded one",
    );
  });

  it("row 2: includeHead turned on after a head-less snapshot: a new snapshot with the head, through the gate", async () => {
    const c = withRecord(
      migratingCluster(),
      record({
        acceptGap: false,
        replicas: [EVERY_BLOCK],
      }),
    );
    // The target holds what the first snapshot brought.
    c.exec = { ...c.exec, "ptm-rsync:probe": line({ ...targetProbe(), blocks: SOURCE_BLOCKS }) };
    // What the new generation's steps print.
    const steps = migrateSteps(SOURCE_BLOCKS, { snapshot: "ptm-test-g2" });
    c.exec["ptm-rsyncd:snapshot-blocks"] = steps.listing;
    for (const [k, v] of Object.entries(steps.stdout)) c.commandStdout![`${k}-g2`] = v;
    const r = await runProgram({ ...config, includeHead: true }, c);
    const snap = commandNamed(r, "migration-source-snapshot-g2");
    assert.match(snap.create, /'PTM_SNAPSHOT=ptm-test-g2' 'PTM_INCLUDE_HEAD=true'/);
    // The admin API is switched on for it; the old generation's steps are not declared (deleted).
    assert.ok(byType(r, "command:local:Command").some((x) => /source-admin-api/.test(x.name)));
    assert.ok(
      !byType(r, "command:local:Command").some((x) => x.name === "migration-source-snapshot"),
    );
    const rec = byType(r, "kubernetes:core/v1:ConfigMap").find(
      (x) => x.name === "migration-decision-g2",
    );
    assert.ok(rec, "the new decision is recorded under the next generation");
  });

  it("row 2: includeHead turned off after a head snapshot: refused, naming includeHead", async () => {
    const c = withRecord(migratingCluster(), record({ includeHead: true }));
    await assert.rejects(
      runProgram({ ...config, includeHead: false }, c),
      /:includeHead: .* holds the head/,
    );
  });

  it("row 6: a rerun that decides to wait waits: the wait step is replaced when the decided wait changes", async () => {
    // The target started at 7h: a 1h gap now, none after the source's compaction at ~9h.
    const c = migratingCluster();
    c.exec = { ...c.exec, "ptm-rsync:probe": line(targetProbe({ startedAtH: 7 })) };
    const r = await runProgram({ ...config, acceptGap: false, maxWaitMinutes: 180 }, c);
    const wait = one(r, "command:local:Command", "migration-compaction-wait").inputs;
    assert.deepEqual(wait.triggers, [T0 + 8 * H]);
  });

  it("row 6: a resumed decision brings its recorded wait back: no change, no second wait", async () => {
    const c = withRecord(
      migratingCluster(),
      record({
        waitUntilMs: T0 + 8 * H,
        replicas: [{ ...record().replicas[0], blocks: [S1, S2, S3] }],
      }),
    );
    const r = await runProgram(config, c);
    const wait = one(r, "command:local:Command", "migration-compaction-wait").inputs;
    assert.deepEqual(wait.triggers, [T0 + 8 * H]);
  });

  it("row 3: sidecarMode switched from ephemeral to patch after the decision: refused before any patch, naming sidecarMode", async () => {
    const r = runProgram(
      config,
      withRecord(migratingCluster(), record({ sidecarMode: "ephemeral" })),
    );
    await assert.rejects(
      r,
      /:sidecarMode: the decision recorded at .* was made with sidecarMode ephemeral; switching to patch/,
    );
  });

  it("row 4: sidecarMode ephemeral, a pod replaced during migrate: nothing is dropped, the steps resume", async () => {
    const c = withRecord(
      migratingCluster(),
      record({
        acceptGap: false,
        sidecarMode: "ephemeral",
        replicas: [EVERY_BLOCK],
      }),
    );
    // The replaced pods run no sidecar yet: the probes can't answer (the up adds it again).
    delete (c as { ephemeral?: unknown }).ephemeral;
    delete c.exec!["ptm-rsyncd:probe"];
    delete c.exec!["ptm-rsync:probe"];
    const r = await runProgram({ ...config, sidecarMode: "ephemeral" }, c);
    assert.notEqual(r.outputs.status, "waiting-for-sidecars");
    const names = byType(r, "command:local:Command").map((x) => x.name);
    for (const step of [
      "migration-source-snapshot",
      "migration-block-copy",
      "migration-block-install",
    ]) {
      assert.ok(names.includes(step), `${step} is still declared: ${names.join(", ")}`);
    }
    assert.ok(
      byType(r, "kubernetes:core/v1:ConfigMap").some(
        (x) => x.name === "migration-verification-record",
      ),
    );
  });

  describe("row 7: target replicas (a `Prometheus` target)", () => {
    const STS = "prometheus-kube-prometheus-stack-prometheus";
    const replicated = (replicas: number, recorded: number): FakeCluster => {
      const c: FakeCluster = cluster();
      Object.assign(c.objects, kpsObjects({ replicas }));
      const sts = c.objects[`statefulset/monitoring/${STS}`] as Obj;
      ((((sts.spec as Obj).template as Obj).spec as Obj).containers as Obj[]).push({
        name: "ptm-rsync",
        image: "rsync",
      });
      const dep = c.objects["deployment/monitoring/prometheus-server"] as Obj;
      (((dep.spec as Obj).template as Obj).spec as { containers: Obj[] }).containers.push({
        name: "ptm-rsyncd",
        image: "rsync",
      });
      const m = migratingCluster();
      c.exec = {
        ...m.exec,
        "ptm-rsync:probe": line(targetProbe()),
        "ptm-rsyncd:probe": line(sourceProbe()),
      };
      c.commandStdout = { ...m.commandStdout };
      for (let i = 0; i < Math.max(replicas, recorded); i++) {
        c.commandStdout[`migration-block-copy-replica-${i}`] = line({
          copied: 3,
          skipped: 0,
          bytesCopied: 6e6,
          bytesTotal: 6e6,
        });
        c.commandStdout[`migration-block-install-replica-${i}`] = line({
          installed: 3,
          alreadyPresent: 0,
        });
      }
      const pods = Array.from({ length: recorded }, (_, i) => `${STS}-${i}`);
      return withRecord(
        c,
        record({
          acceptGap: false,
          replicas: pods.map((pod) => ({
            pod,
            blocks: [S1, S2, S3],
            cutoffMs: T0 + 6 * H,
            targetEarliestMs: T0 + 5 * H,
            gapMs: 0,
          })),
        }),
        "monitoring",
      );
    };
    const cfg = { phase: "migrate", source: SOURCE_CONFIG, target: kpsRef() };

    it("a replica added after the snapshot: refused, naming target (its gap never passed the gate)", async () => {
      await assert.rejects(
        runProgram(cfg, replicated(2, 1)),
        /:target: the target has a replica \(prometheus-kube-prometheus-stack-prometheus-1\) that the decision recorded/,
      );
    });

    it("a replica removed: the others resume; the removed one's part is dropped and said", async () => {
      const r = await runProgram(cfg, replicated(1, 2));
      const names = byType(r, "command:local:Command").map((x) => x.name);
      assert.ok(names.includes("migration-block-copy"), names.join(", "));
      assert.ok(!names.some((n) => /replica-1/.test(n)), names.join(", "));
    });
  });
});

describe("nextRun: the transitions as a table", () => {
  const facts: RunFacts = {
    includeHead: false,
    acceptGap: true,
    sidecarMode: "patch",
    targetPods: [null],
  };

  const cases: [
    string,
    DecisionRecord | undefined,
    Partial<typeof facts> & { targetPods?: (string | null)[] },
    string,
  ][] = [
    ["no record yet", undefined, {}, "decide"],
    [
      "sidecarMode switched to ephemeral",
      record(),
      { sidecarMode: "ephemeral" },
      "refuse:sidecarMode",
    ],
    [
      "sidecarMode switched to patch",
      record({ sidecarMode: "ephemeral" }),
      {},
      "refuse:sidecarMode",
    ],
    ["the same config", record(), {}, "resume"],
    [
      "includeHead turned on after a head-less snapshot",
      record(),
      { includeHead: true },
      "redecide",
    ],
    [
      "includeHead turned off after a head snapshot",
      record({ includeHead: true }),
      {},
      "refuse:includeHead",
    ],
    [
      "acceptGap turned off after an accepted gap",
      record(),
      { acceptGap: false },
      "refuse:acceptGap",
    ],
    [
      "acceptGap turned off, no gap recorded",
      record({ replicas: [{ ...record().replicas[0], gapMs: 0 }] }),
      { acceptGap: false },
      "resume",
    ],
    [
      "a replica added",
      record({ replicas: [{ ...record().replicas[0], pod: "p-0" }] }),
      { targetPods: ["p-0", "p-1"] },
      "refuse:target",
    ],
    [
      "a replica removed",
      record({ replicas: ["p-0", "p-1"].map((pod) => ({ ...record().replicas[0], pod })) }),
      { targetPods: ["p-0"] },
      "resume",
    ],
    [
      "every recorded replica gone",
      record({ replicas: [{ ...record().replicas[0], pod: "p-0" }] }),
      { targetPods: [] },
      "refuse:target",
    ],
  ];
  for (const [what, rec, over, want] of cases) {
    it(`${what}: ${want}`, () => {
      const n = nextRun(rec, { ...facts, ...over });
      assert.equal(n.action === "refuse" ? `refuse:${n.key}` : n.action, want);
      if (n.action === "redecide") assert.equal(n.generation, 2);
    });
  }
});

describe("transitions (issue 20): changes that roll the target after the install", () => {
  const RUNNING_IMAGE = "registry.example/rsync:1.0";
  const OLD_SCRIPT = "echo the scripts of an earlier version of the program";
  /** The target's template as prepare left it: our sidecar in it, as an earlier version applied it. */
  function prepared(head: { minH: number }, image = RUNNING_IMAGE): FakeCluster {
    const all = { ...record().replicas[0], blocks: [S1, S2, S3], gapMs: 0 };
    const c = withRecord(migratingCluster(), record({ replicas: [all] }));
    const sts = c.objects["statefulset/kubeprod/prometheus"] as Obj;
    const containers = (((sts.spec as Obj).template as Obj).spec as { containers: Obj[] })
      .containers;
    containers.push({ name: "ptm-rsync", image, command: ["sh", "-c", OLD_SCRIPT, "ptm-rsync"] });
    // The target holds the imported blocks (up to 6h); its head starts at `head.minH`.
    c.exec = {
      ...c.exec,
      "ptm-rsync:probe": line({
        ...targetProbe(),
        blocks: SOURCE_BLOCKS,
        tsdb: { minTime: T0 + head.minH * H, maxTime: T0 + 7.5 * H, numSeries: 10 },
      }),
    };
    return c;
  }
  const patchedSidecar = (r: Awaited<ReturnType<typeof runProgram>>) => {
    const patch = one(r, "kubernetes:apps/v1:StatefulSetPatch");
    const spec = ((patch.inputs.spec as Obj).template as Obj).spec as { containers: Obj[] };
    return spec.containers.find((x) => x.name === "ptm-rsync")!;
  };

  it("row 3: sidecarImage changed while the target's head holds samples older than an imported block: refused, naming sidecarImage", async () => {
    await assert.rejects(
      runProgram({ ...config, sidecarImage: "registry.example/rsync:2.0" }, prepared({ minH: 5 })),
      /:sidecarImage: changing sidecarImage "registry\.example\/rsync:1\.0" -> "registry\.example\/rsync:2\.0" rolls the target's pods, which would drop StatefulSet kubeprod\/prometheus's own samples from .* Set sidecarImage back to "registry\.example\/rsync:1\.0"/,
    );
  });

  it("row 3: sidecarImagePullPolicy changed at risk: refused, naming sidecarImagePullPolicy", async () => {
    const c = prepared({ minH: 5 });
    const sts = c.objects["statefulset/kubeprod/prometheus"] as Obj;
    const containers = (((sts.spec as Obj).template as Obj).spec as { containers: Obj[] })
      .containers;
    containers[containers.length - 1].imagePullPolicy = "IfNotPresent";
    await assert.rejects(
      runProgram({ ...config, sidecarImage: RUNNING_IMAGE, sidecarImagePullPolicy: "Always" }, c),
      /:sidecarImagePullPolicy: changing sidecarImagePullPolicy "IfNotPresent" -> "Always" rolls/,
    );
  });

  it("row 3: the same change once the head is past the imported blocks: applied, and said", async () => {
    const r = await runProgram(
      { ...config, sidecarImage: "registry.example/rsync:2.0" },
      prepared({ minH: 6 }),
    );
    assert.equal(patchedSidecar(r).image, "registry.example/rsync:2.0");
  });

  it("row 3 (issue 23): the sidecar can't run (a prepare whose image no node pulls), sidecarImage fixed: checked through the target's Prometheus container", async () => {
    const c = prepared({ minH: 6 }, "docker.io/ptm/no-such-image:1");
    // The sidecar never started: kubectl exec into it fails. Its Prometheus container runs.
    c.exec = { ...c.exec, "prometheus:probe": c.exec!["ptm-rsync:probe"] };
    delete c.exec["ptm-rsync:probe"];
    const r = await runProgram({ ...config, sidecarImage: "registry.example/rsync:2.0" }, c);
    assert.equal(patchedSidecar(r).image, "registry.example/rsync:2.0");
  });

  it("row 3 (issue 23): through the Prometheus container too, a target at risk refuses the change", async () => {
    const c = prepared({ minH: 5 }, "docker.io/ptm/no-such-image:1");
    c.exec = { ...c.exec, "prometheus:probe": c.exec!["ptm-rsync:probe"] };
    delete c.exec["ptm-rsync:probe"];
    await assert.rejects(
      runProgram({ ...config, sidecarImage: "registry.example/rsync:2.0" }, c),
      /:sidecarImage: changing sidecarImage "docker\.io\/ptm\/no-such-image:1" -> "registry\.example\/rsync:2\.0" rolls the target's pods, which would drop/,
    );
  });

  it("row 3: the program upgraded (its scripts changed): the running sidecar's command is kept, nothing rolls", async () => {
    const r = await runProgram({ ...config, sidecarImage: RUNNING_IMAGE }, prepared({ minH: 5 }));
    const c = patchedSidecar(r);
    assert.deepEqual(c.command, ["sh", "-c", OLD_SCRIPT, "ptm-rsync"]);
    assert.equal(c.image, RUNNING_IMAGE);
    assert.equal(c.resources, undefined, "the running sidecar had no resources: none added");
  });

  it("row 11: sidecarMode ephemeral, sidecarImage changed while the sidecar runs: refused, naming sidecarImage", async () => {
    const c = migratingCluster();
    const running = (name: string) => [
      { name, image: RUNNING_IMAGE, state: { running: { startedAt: "2026-01-01T00:00:00Z" } } },
    ];
    c.ephemeral = {
      "prometheus-server-7c9d8b5f4-x2x7q": running("ptm-rsyncd"),
      "prometheus-0": running("ptm-rsync"),
    };
    await assert.rejects(
      runProgram(
        { ...config, sidecarMode: "ephemeral", sidecarImage: "registry.example/rsync:2.0" },
        c,
      ),
      /:sidecarImage: the source's ephemeral sidecar ptm-rsyncd in pod prometheus-server-7c9d8b5f4-x2x7q runs registry\.example\/rsync:1\.0/,
    );
  });
});
