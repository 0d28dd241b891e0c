// Issue 22, part 3: the component's name. Two migrations in one program must not collide (in
// URNs, in the cluster's objects, in the source's snapshots), and the name index.ts gives
// ("migration") must keep every URN and every object name an existing stack has.

import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { outputsOf, PrometheusTsdbMigration, PrometheusWorkloadArgs } from "../../components";
import {
  LABEL_DOMAIN,
  LEGACY_LABEL_DOMAIN,
  migrationNames,
  PATCHED_BY_LABEL,
} from "../../components/cluster/naming";
import { bkprStatefulSet, cluster, SOURCE_CONFIG, sourceDeployment } from "../fixtures/workloads";
import {
  COUNTED_WINDOWS,
  HEALTHY,
  line,
  migrateSteps,
  migratingCluster,
  SOURCE_BLOCKS,
  targetProbe,
} from "../fixtures/probes";
import { LEGACY } from "../fixtures/legacyNames";
import { clusterNames, FakeCluster, Recorded, runProgram, runWith, RunResult } from "./harness";

type Obj = Record<string, unknown>;

/** A copy of a workload under another name, with its own pod labels. */
function renamed(w: Obj, name: string, labels: Record<string, string>): Obj {
  const copy = JSON.parse(JSON.stringify(w)) as {
    metadata: Obj;
    spec: { selector?: { matchLabels?: Obj }; template: { metadata?: { labels?: Obj } } };
  };
  copy.metadata.name = name;
  copy.spec.selector = { matchLabels: labels };
  copy.spec.template.metadata = { ...copy.spec.template.metadata, labels };
  return copy as unknown as Obj;
}

const SOURCE = SOURCE_CONFIG as PrometheusWorkloadArgs;
const OTHER_SOURCE: PrometheusWorkloadArgs = { ...SOURCE, name: "prometheus-other" };
const OTHER_TARGET: PrometheusWorkloadArgs = {
  namespace: "kubeprod",
  kind: "StatefulSet",
  name: "prometheus-other",
  container: "prometheus",
};

/** The fixtures' source and target, and a second pair in the same namespaces. */
function twoPairs(): FakeCluster {
  const c = migratingCluster([
    { component: "migration", snapshot: "ptm-test" },
    { component: "other", snapshot: "ptm-test-other" },
  ]);
  c.objects["deployment/monitoring/prometheus-other"] = renamed(
    sourceDeployment(),
    "prometheus-other",
    { app: "prometheus-other" },
  );
  c.objects["statefulset/kubeprod/prometheus-other"] = renamed(
    bkprStatefulSet(),
    "prometheus-other",
    { name: "prometheus-other" },
  );
  c.servers!["deployment/monitoring/prometheus-other"] =
    c.servers!["deployment/monitoring/prometheus-server"];
  c.servers!["statefulset/kubeprod/prometheus-other"] =
    c.servers!["statefulset/kubeprod/prometheus"];
  return c;
}

/** `kind namespace/name` of every Kubernetes object the program declares. */
function objectKeys(r: RunResult): string[] {
  return r.resources
    .filter((x) => x.type.startsWith("kubernetes:") && x.inputs.metadata)
    .map((x) => {
      const m = x.inputs.metadata as { name: string; namespace: string };
      // A patch's object is the workload it patches: two patches of one workload collide.
      const kind = x.type.replace(/Patch$/, "");
      return `${kind} ${m.namespace}/${m.name}`;
    });
}

const duplicates = (xs: string[]) => xs.filter((x, i) => xs.indexOf(x) !== i);

describe("two migrations in one program (issue 22)", () => {
  it("have no URN, Kubernetes object, label value or snapshot in common", async () => {
    const r = await runWith({}, twoPairs(), async () => {
      const mine = new PrometheusTsdbMigration("migration", {
        phase: "migrate",
        source: SOURCE,
      });
      const other = new PrometheusTsdbMigration("other", {
        phase: "migrate",
        source: OTHER_SOURCE,
        target: OTHER_TARGET,
      });
      const [a, b] = [outputsOf(mine), outputsOf(other)];
      return { a: a.migration, aStatus: a.status, b: b.migration, bStatus: b.status };
    });
    assert.deepEqual(duplicates(r.registrations.map((x) => x.urn)), [], "URNs");
    // No URN is another's alias either: the engine would refuse the program.
    const urns = new Set(r.registrations.map((x) => x.urn));
    assert.deepEqual(
      r.registrations.flatMap((x) => x.aliases.filter((a) => urns.has(a))),
      [],
      "aliases",
    );
    const objects = objectKeys(r);
    assert.ok(objects.length >= 14, objects.join("\n"));
    assert.deepEqual(duplicates(objects), [], "Kubernetes objects");
    const labels = (x: Recorded) =>
      ((x.inputs.metadata as { labels?: Record<string, string> }).labels ?? {})[PATCHED_BY_LABEL] ??
      ((x.inputs.metadata as { labels?: Record<string, string> }).labels ?? {})[
        "app.kubernetes.io/instance"
      ];
    const instances = new Set(
      r.resources.filter((x) => x.type.startsWith("kubernetes:") && x.inputs.metadata).map(labels),
    );
    assert.deepEqual([...instances].sort(), ["test", "test.other"]);
    // The Events (issue 22): one command per step of each migration, each saying whose it is;
    // the API server names the Events themselves (generateName), so they never collide.
    const events = r.resources.filter(
      (x) => x.type === "command:local:Command" && /-event$/.test(x.name),
    );
    const whose = (prefix: string) =>
      events
        .filter((x) => x.name.startsWith(`${prefix}-`))
        .map((x) => {
          const e = JSON.parse((x.inputs.environment as Record<string, string>).PTM_EVENT) as {
            reportingInstance: string;
            metadata: { generateName?: string; name?: string; labels: Record<string, string> };
          };
          assert.equal(e.metadata.name, undefined, x.name);
          assert.ok(e.metadata.generateName, x.name);
          return `${e.reportingInstance} ${e.metadata.labels["app.kubernetes.io/instance"]}`;
        });
    const mineEvents = whose("migration");
    const otherEvents = whose("other");
    assert.equal(mineEvents.length, otherEvents.length);
    assert.ok(mineEvents.length >= 8, String(mineEvents.length));
    assert.deepEqual([...new Set(mineEvents)], ["test test"]);
    assert.deepEqual([...new Set(otherEvents)], ["test.other test.other"]);
    const a = r.outputs.a as { snapshot: string };
    const b = r.outputs.b as { snapshot: string };
    assert.deepEqual([a.snapshot, b.snapshot], ["ptm-test", "ptm-test-other"]);
    assert.deepEqual([r.outputs.aStatus, r.outputs.bStatus], ["verified", "verified"]);
    // Each snapshot step makes, and its delete removes, its own snapshot.
    const snapshotSteps = r.resources.filter(
      (x) => x.type === "command:local:Command" && /-source-snapshot$/.test(x.name),
    );
    assert.deepEqual(
      snapshotSteps
        .map((x) => `${x.name}: ${/'PTM_SNAPSHOT=([^']+)'/.exec(String(x.inputs.create))?.[1]}`)
        .sort(),
      ["migration-source-snapshot: ptm-test", "other-source-snapshot: ptm-test-other"],
    );
  });
});

describe("another name covers issue 22's conventions", () => {
  const patches = ["kubernetes:apps/v1:DeploymentPatch", "kubernetes:apps/v1:StatefulSetPatch"];
  type Spec = {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    spec: { template: { spec: { containers: Obj[]; imagePullSecrets?: Obj[] } } };
  };

  it("prepare: its labels, Events, sidecarResources and imagePullSecrets", async () => {
    const sidecarResources = { requests: { cpu: "50m" }, limits: { cpu: "2", memory: "512Mi" } };
    const r = await runWith({}, cluster(), async () => {
      const m = new PrometheusTsdbMigration("history", {
        phase: "prepare",
        source: SOURCE,
        sidecarResources,
        imagePullSecrets: ["regcred"],
      });
      await m.ready;
      return { status: m.status };
    });
    assert.equal(r.outputs.status, "prepared");
    for (const [type, role] of [
      [patches[0], "source"],
      [patches[1], "target"],
    ]) {
      const p = r.resources.filter((x) => x.type === type);
      assert.equal(p.length, 1, type);
      const { metadata, spec } = p[0].inputs as unknown as Spec;
      assert.equal(
        p[0].name,
        role === "source" ? "history-source-rsync-daemon" : "history-target-rsync-client",
      );
      assert.deepEqual(metadata.labels, {
        [`${LABEL_DOMAIN}/patched-by`]: "test.history",
        [`${LABEL_DOMAIN}/role`]: role,
      });
      assert.equal(
        metadata.annotations["pulumi.com/patchFieldManager"],
        "prometheus-tsdb-migration",
      );
      const sidecar = spec.template.spec.containers.find((c) => String(c.name).startsWith("ptm-"));
      assert.deepEqual(sidecar?.resources, sidecarResources, type);
      assert.deepEqual(spec.template.spec.imagePullSecrets, [{ name: "regcred" }], type);
    }
    const events = r.resources.filter(
      (x) => x.type === "command:local:Command" && /-event$/.test(x.name),
    );
    assert.deepEqual(events.map((x) => x.name).sort(), [
      "history-source-rsync-daemon-event",
      "history-source-rsync-daemon-reverted-event",
      "history-target-rsync-client-event",
      "history-target-rsync-client-reverted-event",
    ]);
    for (const x of events) {
      const e = JSON.parse((x.inputs.environment as Record<string, string>).PTM_EVENT) as {
        reportingInstance: string;
        message: string;
      };
      assert.equal(e.reportingInstance, "test.history", x.name);
      assert.match(e.message, /\(migration test\.history\)$/, x.name);
    }
    // Each Event command is the child of its step, named after it: the URN says so.
    const reg = r.registrations.find((x) => x.name === "history-source-rsync-daemon-event");
    assert.match(reg?.urn ?? "", /\$ptm:index:SourceRsyncDaemon\$command:local:Command::history-/);
    assert.deepEqual(reg?.aliases, []);
  });

  it("revert: looks for its patched target under both label domains, with its own value", async () => {
    const r = await runWith({}, cluster(), async () => {
      const m = new PrometheusTsdbMigration("history", { source: SOURCE });
      await m.ready;
      return { status: m.status };
    });
    assert.equal(r.outputs.status, "reverted");
    const finds = r.commands.filter((c) => c.startsWith("kubectl get deployments,statefulsets"));
    assert.deepEqual(
      finds,
      [LABEL_DOMAIN, LEGACY_LABEL_DOMAIN].map(
        (d) =>
          `kubectl get deployments,statefulsets -A -l '${d}/patched-by=test.history,${d}/role=target' -o json`,
      ),
    );
  });
});

/** The Event commands of the steps (issue 22), which 7c2c43f did not have. */
function isNewSince7c2c43f(reg: { type: string; name: string }): boolean {
  return reg.type === "command:local:Command" && /^migration-.*-event$/.test(reg.name);
}

/** The decision record's ConfigMap, added by issue 20. */
function isDecisionRecord(reg: { type: string; name: string }): boolean {
  return (
    reg.type === "kubernetes:core/v1:ConfigMap" && /^migration-decision(-g\d+)?$/.test(reg.name)
  );
}

/**
 * A name of 7c2c43f as this version writes it: the patched workloads' labels moved from the
 * old domain to the project's own (issue 22, cluster/naming.ts LABEL_DOMAIN), same value.
 */
/**
 * The copy's create line of 7c2c43f named copyStreams' default then, 'PTM_STREAMS=2'; since
 * issue 25 the default is auto with its limit, which makes the line longer than the names
 * clusterNames collects (migrate.test.ts checks it). An existing stack keeps its own line: the
 * copy ignores changes of its create line (the plan is fixed once its blocks are copied).
 */
function isCopyCreateOf7c2c43f(urn: string, name: string): boolean {
  return urn.endsWith("::migration-block-copy") && name.startsWith("create=");
}

function inLabelDomainOfNow(name: string): string {
  return name.replace(
    `metadata.labels.${LEGACY_LABEL_DOMAIN}/`,
    `metadata.labels.${LABEL_DOMAIN}/`,
  );
}

/**
 * The snapshot's delete of 7c2c43f ran cleanup-source.sh in the sidecar directly. Since issue
 * 20 row 8 it runs through snapshot-cleanup.sh, which first looks whether the source has a pod
 * left and otherwise says what stays on the volume: that command line, with its words, is
 * longer than the names clusterNames collects. The snapshot it removes is still ptm-test (the
 * create's line here; migrate.test.ts checks the delete's).
 */
function isSnapshotDeleteOf7c2c43f(name: string): boolean {
  return (
    name.startsWith("delete=") && name.endsWith(` sh -c "$PTM_DELETE_SCRIPT" 'ptm-cleanup-source'`)
  );
}

describe("the default name keeps an existing stack's URNs and names (issue 22)", () => {
  // test/fixtures/legacyNames.ts: what 7c2c43f declared for these runs.
  for (const [scenario, run] of [
    [
      "migrate",
      () =>
        runProgram(
          {
            phase: "migrate",
            source: SOURCE_CONFIG,
            includeHead: true,
            "kubernetes:kubeconfig": "/etc/ptm/kubeconfig",
            "kubernetes:context": "prod-eu",
          },
          migratingCluster([{ component: "migration", snapshot: "ptm-test" }]),
        ),
    ],
    ["revert", () => runProgram({ source: SOURCE_CONFIG }, cluster())],
  ] as const) {
    it(`${scenario}: every URN of 7c2c43f is kept (as the URN or an alias), with the same names in the cluster`, async () => {
      const r = await run();
      const before = LEGACY[scenario];
      const named = clusterNames(r);
      const matched = new Set<string>();
      for (const reg of r.registrations) {
        const old = before.find((b) => b.urn === reg.urn || reg.aliases.includes(b.urn));
        // The decision record (issue 20) never existed under any other name: nothing to keep.
        if (!old && isDecisionRecord(reg)) continue;
        if (!old && isNewSince7c2c43f(reg)) {
          // Added after 7c2c43f (issue 22's Events): no URN of 7c2c43f to keep, but the one a
          // stack made with the unprefixed names of then has (the step's name alone).
          const unprefixed = reg.urn.replace(/::migration-([^:]+)$/, "::$1");
          assert.ok(reg.aliases.includes(unprefixed), `${reg.urn}: alias ${unprefixed}`);
          continue;
        }
        assert.ok(old, `${reg.urn} is new (aliases: ${reg.aliases.join(", ")})`);
        matched.add(old.urn);
        // The aliases of 7c2c43f (its steps were top-level resources once) still hold.
        for (const a of old.aliases) assert.ok(reg.aliases.includes(a), `${reg.urn}: alias ${a}`);
        assert.deepEqual(
          named[`${reg.type}::${reg.name}`] ?? [],
          old.names
            .filter((n) => !isSnapshotDeleteOf7c2c43f(n) && !isCopyCreateOf7c2c43f(reg.urn, n))
            .map(inLabelDomainOfNow),
          reg.urn,
        );
      }
      assert.deepEqual(
        before.map((b) => b.urn).filter((u) => !matched.has(u)),
        [],
        "URNs of 7c2c43f that nothing keeps",
      );
    });
  }
});

describe("a step that fails inside an apply names its resource, without a stack (issue 22)", () => {
  const config = { phase: "migrate", source: SOURCE_CONFIG };
  // The SDK prefixes the message with where it met the rejection ("error serializing property
  // ..."), on the same error object.
  const failsWith = (re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof pulumi.ResourceError, String(e));
    assert.equal(e.hideStack, true);
    assert.match(e.message, re);
    return true;
  };

  it("the verification's verdict", async () => {
    const c = migratingCluster([{ component: "migration", snapshot: "ptm-test" }]);
    c.exec!["ptm-rsync:counts"] = line({
      windows: COUNTED_WINDOWS.map((w) => ({ ...w, count: w.count - 1 })),
      health: HEALTHY,
      blocks: SOURCE_BLOCKS,
    });
    await assert.rejects(
      runProgram(config, c),
      failsWith(/verification failed: 4 of 4 windows differ/),
    );
  });

  it("counts that don't parse", async () => {
    const c = migratingCluster([{ component: "migration", snapshot: "ptm-test" }]);
    c.exec!["ptm-rsync:counts"] = "counts: half a line\n";
    await assert.rejects(
      runProgram(config, c),
      failsWith(/ verification: counts\.sh on the target StatefulSet kubeprod\/prometheus: /),
    );
  });

  it("counts.sh that can't run: the target's pod went away after the install (issue 23)", async () => {
    const c = migratingCluster([{ component: "migration", snapshot: "ptm-test" }]);
    // kubectl exec fails: the sidecar's container is not there (the pod was replaced).
    delete c.exec!["ptm-rsync:counts"];
    await assert.rejects(
      runProgram(config, c),
      failsWith(
        / verification: counts\.sh on the target StatefulSet kubeprod\/prometheus did not finish \(exit 1: error: container ptm-rsync not found\)\. If its pod is restarting or was replaced, run `pulumi up` again once it runs/,
      ),
    );
  });

  it("the version gate on the snapshot's own blocks", async () => {
    // The probe saw blocks in index format 2; the snapshot holds one in format 3 (a
    // compaction in between), which the 2.54 target can't read.
    const c = migratingCluster([{ component: "migration", snapshot: "ptm-test" }]);
    const format3 = SOURCE_BLOCKS.map((b, i) => (i === 1 ? { ...b, indexFormat: 3 } : b));
    c.exec!["ptm-rsync:probe"] = line(targetProbe({ version: "2.54.1" }));
    c.exec!["ptm-rsyncd:snapshot-blocks"] = migrateSteps(format3).listing;
    c.commandStdout = migrateSteps(format3).stdout;
    await assert.rejects(
      runProgram(config, c),
      failsWith(/ plan: the target \(Prometheus 2\.54\.1\) can't read .*; nothing was copied$/),
    );
  });

  it("a step's output that does not parse", async () => {
    const c = migratingCluster([{ component: "migration", snapshot: "ptm-test" }]);
    c.commandStdout!["migration-block-install"] = line({ installed: "three" });
    await assert.rejects(
      runProgram(config, c),
      failsWith(/ block-install: installed must be a number/),
    );
  });
});

describe("names of a migration (cluster/naming.ts)", () => {
  const scope = { organization: "org", project: "ptm", stack: "dev", component: "migration" };
  const cases: {
    name: string;
    component: string;
    stack?: string;
    want: Partial<Record<"instance" | "snapshot" | "rsyncSecret" | "stackId" | "service", string>>;
  }[] = [
    {
      name: "the default name: today's names, from the stack alone",
      component: "migration",
      want: {
        instance: "dev",
        snapshot: "ptm-dev",
        rsyncSecret: "ptm-rsync-dev",
        stackId: "org/ptm/dev",
        service: "prometheus-server-ptm-rsync",
      },
    },
    {
      name: "another name is part of every name",
      component: "history",
      want: {
        instance: "dev.history",
        snapshot: "ptm-dev-history",
        rsyncSecret: "ptm-rsync-dev-history",
        stackId: "org/ptm/dev/history",
        service: "prometheus-server-ptm-rsync-history",
      },
    },
    {
      name: "a name Kubernetes can't take as it is: normalized, with a hash of the original",
      component: "Move History",
      want: {
        snapshot: "ptm-dev-move-history-77977ade",
        stackId: "org/ptm/dev/Move%20History",
      },
    },
    {
      name: "stack a-b with the default name and stack a with name b differ in their labels",
      component: "b",
      stack: "a",
      want: { instance: "a.b" },
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const n = migrationNames({ ...scope, component: tc.component, stack: tc.stack ?? "dev" });
      const got = {
        instance: n.instance,
        snapshot: n.snapshot,
        rsyncSecret: n.rsyncSecret,
        stackId: n.stackId,
        service: n.rsyncObject("prometheus-server"),
      };
      for (const [k, v] of Object.entries(tc.want)) assert.equal(got[k as keyof typeof got], v, k);
    });
  }

  it("every name fits 63 characters, and long names that share a prefix stay apart", () => {
    const long = "a".repeat(70);
    const [x, y] = [`${long}-x`, `${long}-y`].map((component) =>
      migrationNames({ ...scope, component }),
    );
    for (const n of [x, y]) {
      for (const v of [
        n.instance,
        n.snapshot,
        n.rsyncSecret,
        n.rsyncObject("prometheus-server"),
        n.verificationRecord("verification-replica-1"),
      ]) {
        assert.ok(v.length <= 63, v);
        assert.match(v, /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, v);
      }
    }
    assert.notEqual(x.instance, y.instance);
    assert.notEqual(x.snapshot, y.snapshot);
    assert.notEqual(x.rsyncSecret, y.rsyncSecret);
    assert.notEqual(x.verificationRecord("verification"), y.verificationRecord("verification"));
  });
});
