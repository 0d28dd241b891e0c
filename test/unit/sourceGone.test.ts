// Issue 20 row 8: the revert and `pulumi destroy` once the old Prometheus is gone (deleted)
// or scaled to 0. The deletes the program stores are run here as they are, against a stub
// kubectl that answers like the real one for each case: NotFound, zero replicas, Forbidden, a
// running pod.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { localScript } from "../../components/cluster/kubectl";
import { TsdbLocation } from "../../components/decisions/workload";
import { migratingCluster } from "../fixtures/probes";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { one, runProgram } from "./harness";

type Obj = Record<string, unknown>;

/** What the source looks like to the stub kubectl. */
type Source = "gone" | "zero" | "forbidden" | "running";

/**
 * A kubectl that answers as the real one does for the source in that state: NotFound (silent
 * with --ignore-not-found), a workload with 0 replicas (an exec then waits for a pod and times
 * out), Forbidden for everything, or one running replica. A read with `-o jsonpath` prints
 * `<name> <replicas>`, the fields the scripts ask for; every call is logged.
 */
function stubKubectl(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ptm-gone-"));
  fs.writeFileSync(
    path.join(dir, "kubectl"),
    `#!/bin/sh
while [ $# -gt 0 ]; do case $1 in --kubeconfig|--context) shift 2 ;; *) break ;; esac; done
printf '%s\\n' "$*" >> "$STUB_LOG"
case $STUB_SOURCE in
forbidden)
  echo 'Error from server (Forbidden): deployments.apps "prometheus-server" is forbidden: User "ci" cannot get resource "deployments" in API group "apps" in the namespace "monitoring"' >&2
  exit 1 ;;
gone)
  case "$*" in *--ignore-not-found*) exit 0 ;; esac
  case $1 in
  exec) echo 'Error from server (NotFound): deployments.apps "prometheus-server" not found' >&2 ;;
  *) echo "Error from server (NotFound): $2 \\"$3\\" not found" >&2 ;;
  esac
  exit 1 ;;
zero|running)
  case $1 in
  get) if [ "$STUB_SOURCE" = zero ]; then echo "$3 0"; else echo "$3 1"; fi ;;
  exec)
    [ "$STUB_SOURCE" = running ] || { echo 'error: timed out waiting for the condition' >&2; exit 1; }
    echo '{"removed":["/data/snapshots/ptm-test"]}' ;;
  esac ;;
esac
`,
    { mode: 0o755 },
  );
  return dir;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The kubectl command lines the script ran. */
  calls: string[];
}

/** Runs a stored command line with its stored environment, as the command provider would. */
function runStored(cmd: string, env: Record<string, string>, source: Source): Ran {
  const dir = stubKubectl();
  const log = path.join(dir, "calls");
  fs.writeFileSync(log, "");
  const r = spawnSync("sh", ["-c", cmd], {
    env: { ...env, PATH: `${dir}:${process.env.PATH}`, STUB_SOURCE: source, STUB_LOG: log },
    encoding: "utf8",
  });
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    calls: fs.readFileSync(log, "utf8").split("\n").filter(Boolean),
  };
}

/** The delete a command resource of phase migrate (with includeHead) stores. */
async function storedDelete(name: string): Promise<{ cmd: string; env: Record<string, string> }> {
  const r = await runProgram(
    { phase: "migrate", source: SOURCE_CONFIG, includeHead: true },
    migratingCluster(),
  );
  const c = one(r, "command:local:Command", name).inputs;
  return { cmd: String(c.delete), env: c.environment as Record<string, string> };
}

const LEFT =
  "the snapshot directory /data/snapshots/ptm-test (snapshots/ptm-test on the volume) stays on " +
  "volume storage-volume (PersistentVolumeClaim monitoring/prometheus-server), which no pod " +
  "mounts now; delete it when you delete the volume, or with `rm -rf /data/snapshots/ptm-test` " +
  "in a pod that mounts it";

describe("issue 20 row 8: the source gone or scaled to 0, then revert or destroy", () => {
  describe("the snapshot's delete (SourceSnapshot)", () => {
    it("source deleted (NotFound): says what it could not do and what stays where, exits 0", async () => {
      const { cmd, env } = await storedDelete("migration-source-snapshot");
      const r = runStored(cmd, env, "gone");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /deployment monitoring\/prometheus-server does not exist any more: the snapshot ptm-test can't be removed, there is no pod to run in/,
      );
      assert.ok(r.stderr.includes(`LEFT BEHIND: ${LEFT}`), r.stderr);
      assert.ok(!r.calls.some((c) => c.startsWith("exec ")), r.calls.join("\n"));
    });

    it("source scaled to 0: the same, without waiting for a pod that won't come", async () => {
      const { cmd, env } = await storedDelete("migration-source-snapshot");
      const r = runStored(cmd, env, "zero");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /deployment monitoring\/prometheus-server is scaled to 0 replicas/);
      assert.ok(r.stderr.includes(`LEFT BEHIND: ${LEFT}`), r.stderr);
      assert.ok(!r.calls.some((c) => c.startsWith("exec ")), r.calls.join("\n"));
    });

    it("a read that is refused (Forbidden) fails the delete with kubectl's error (fail closed)", async () => {
      const { cmd, env } = await storedDelete("migration-source-snapshot");
      const r = runStored(cmd, env, "forbidden");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Forbidden/);
      assert.doesNotMatch(r.stderr, /LEFT BEHIND/);
    });

    it("a running source: the snapshot is removed in its sidecar, as before", async () => {
      const { cmd, env } = await storedDelete("migration-source-snapshot");
      const r = runStored(cmd, env, "running");
      assert.equal(r.code, 0, r.stderr);
      const exec = r.calls.find((c) => c.startsWith("exec "));
      assert.match(
        exec ?? "",
        /^exec -n monitoring deployment\/prometheus-server -c ptm-rsyncd -- env PTM_SNAPSHOT=ptm-test sh -c /,
      );
      assert.match(r.stdout, /"removed":\["\/data\/snapshots\/ptm-test"\]/);
    });
  });

  describe("the admin API's restore (AdminApiSwitch)", () => {
    it("source deleted: nothing to restore, says so, exits 0", async () => {
      const { cmd, env } = await storedDelete("migration-source-admin-api");
      const r = runStored(cmd, env, "gone");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /admin-api: deployment monitoring\/prometheus-server does not exist any more: its args went with it, nothing to restore/,
      );
    });

    it("Forbidden fails the restore", async () => {
      const { cmd, env } = await storedDelete("migration-source-admin-api");
      const r = runStored(cmd, env, "forbidden");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Forbidden/);
    });
  });

  describe("the wait for the restored template (rollout-settle)", () => {
    it("source deleted: nothing to wait for, exits 0", async () => {
      const { cmd, env } = await storedDelete("migration-source-rsync-daemon-settle");
      const r = runStored(cmd, env, "gone");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /deployment monitoring\/prometheus-server does not exist any more/);
    });

    it("Forbidden is not taken for gone: the delete fails", async () => {
      const { cmd, env } = await storedDelete("migration-source-rsync-daemon-settle");
      const r = runStored(cmd, env, "forbidden");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Forbidden/);
    });
  });

  describe("a `Prometheus` source (prometheus-resource.sh)", () => {
    const run = (args: string[], extra: Record<string, string>, source: Source) => {
      const s = localScript("prometheus-resource", args, undefined);
      return runStored(s.command, { ...s.environment, ...extra }, source);
    };
    const restore = ["restore-admin-api", "monitoring", "k8s", "prometheus-k8s", "5"];
    const remove = ["remove-sidecar", "monitoring", "k8s", "prometheus-k8s", "5"];
    const changed = { PULUMI_COMMAND_STDOUT: '{"changed":true,"was":"unset"}' };
    const names = { PTM_CONTAINER_NAME: "ptm-rsyncd", PTM_VOLUME_NAME: "ptm-scratch" };

    it("restore-admin-api, resource deleted: nothing to restore, exits 0", () => {
      const r = run(restore, changed, "gone");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Prometheus monitoring\/k8s does not exist any more/);
    });

    it("restore-admin-api, Forbidden: fails", () => {
      const r = run(restore, changed, "forbidden");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Forbidden/);
    });

    it("remove-sidecar, resource deleted: nothing to remove, exits 0", () => {
      const r = run(remove, names, "gone");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Prometheus monitoring\/k8s does not exist any more/);
    });

    it("remove-sidecar, Forbidden is not taken for gone: fails", () => {
      const r = run(remove, names, "forbidden");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Forbidden/);
    });
  });

  describe("the revert's program-time checks", () => {
    it("the source deleted: the revert completes", async () => {
      const c = cluster();
      delete c.objects["deployment/monitoring/prometheus-server"];
      const r = await runProgram({ source: SOURCE_CONFIG }, c);
      assert.equal(r.outputs.phase, "reverted");
    });

    it("the source scaled to 0: the revert completes", async () => {
      const c = cluster();
      const dep = c.objects["deployment/monitoring/prometheus-server"] as Obj;
      (dep.spec as Obj).replicas = 0;
      const r = await runProgram({ source: SOURCE_CONFIG }, c);
      assert.equal(r.outputs.phase, "reverted");
    });
  });

  describe("what stays behind, in words (decisions/leftBehind.ts)", () => {
    const base = {
      ref: {
        namespace: "monitoring",
        kind: "Deployment",
        name: "prometheus-server",
        container: "p",
      },
      volume: "storage-volume",
      volumeKind: "persistentVolumeClaim",
      claimName: "prometheus-server",
      mountPath: "/data",
      dataPath: "/data",
    } as unknown as TsdbLocation;
    const cases: { name: string; loc: Partial<TsdbLocation>; want: string }[] = [
      { name: "a PersistentVolumeClaim, no subPath", loc: {}, want: LEFT },
      {
        name: "a subPath and a data dir below the mount",
        loc: { subPath: "prometheus-db", dataPath: "/data/tsdb" },
        want: "the snapshot directory /data/tsdb/snapshots/ptm-test (prometheus-db/tsdb/snapshots/ptm-test on the volume) stays on volume storage-volume (PersistentVolumeClaim monitoring/prometheus-server), which no pod mounts now; delete it when you delete the volume, or with `rm -rf /data/tsdb/snapshots/ptm-test` in a pod that mounts it",
      },
      {
        name: "a StatefulSet's claim template, the replica named",
        loc: {
          ref: {
            namespace: "monitoring",
            kind: "Prometheus",
            name: "k8s",
            container: "prometheus",
            pod: "prometheus-k8s-1",
          },
          volume: "prometheus-k8s-db",
          volumeKind: "volumeClaimTemplate",
          claimName: undefined,
          mountPath: "/prometheus",
          dataPath: "/prometheus",
          subPath: "prometheus-db",
        },
        want: "the snapshot directory /prometheus/snapshots/ptm-test (prometheus-db/snapshots/ptm-test on the volume) stays on volume prometheus-k8s-db (PersistentVolumeClaim monitoring/prometheus-k8s-db-prometheus-k8s-1), which no pod mounts now; delete it when you delete the volume, or with `rm -rf /prometheus/snapshots/ptm-test` in a pod that mounts it",
      },
      {
        name: "a StatefulSet's claim template, kubectl's pick (its one replica)",
        loc: {
          ref: { namespace: "kubeprod", kind: "StatefulSet", name: "prometheus", container: "p" },
          volume: "data",
          volumeKind: "volumeClaimTemplate",
          claimName: undefined,
          mountPath: "/opt/bitnami/prometheus/data",
          dataPath: "/opt/bitnami/prometheus/data",
        },
        want: "the snapshot directory /opt/bitnami/prometheus/data/snapshots/ptm-test (snapshots/ptm-test on the volume) stays on volume data (PersistentVolumeClaim kubeprod/data-prometheus-0), which no pod mounts now; delete it when you delete the volume, or with `rm -rf /opt/bitnami/prometheus/data/snapshots/ptm-test` in a pod that mounts it",
      },
      {
        name: "sidecarMode ephemeral: the path below the volume root the sidecar mounts",
        loc: { dataPath: "/ptm-volume/prometheus-db", subPath: "prometheus-db" },
        want: "the snapshot directory /ptm-volume/prometheus-db/snapshots/ptm-test (prometheus-db/snapshots/ptm-test on the volume) stays on volume storage-volume (PersistentVolumeClaim monitoring/prometheus-server), which no pod mounts now; delete it when you delete the volume, or with `rm -rf /ptm-volume/prometheus-db/snapshots/ptm-test` in a pod that mounts it",
      },
      {
        name: "another kind of volume (hostPath): named with its kind",
        loc: { volume: "tsdb", volumeKind: "hostPath", claimName: undefined },
        want: "the snapshot directory /data/snapshots/ptm-test (snapshots/ptm-test on the volume) stays on volume tsdb (hostPath), which no pod mounts now; delete it when you delete the volume, or with `rm -rf /data/snapshots/ptm-test` in a pod that mounts it",
      },
    ];
    for (const tc of cases) {
      it(tc.name, async () => {
        // Imported here: the module is new with this row (the test was written first).
        const { snapshotLeftBehind } = await import("../../components/decisions/leftBehind");
        assert.equal(
          snapshotLeftBehind({ ...base, ...tc.loc } as TsdbLocation, "ptm-test"),
          tc.want,
        );
      });
    }
  });
});

describe("issue 20 row 7: a target replica removed since the decision, then its copy step is deleted", () => {
  it("no pod to run in (scaled down): says what stays where, exits 0", async () => {
    const { cmd, env } = await storedDelete("migration-block-copy");
    const r = runStored(cmd, env, "zero");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /statefulset kubeprod\/prometheus is scaled to 0 replicas: the staging dir can't be removed, there is no pod to run in/,
    );
    assert.match(
      r.stderr,
      /LEFT BEHIND: the staging directory \/opt\/bitnami\/prometheus\/data\/ptm-staging .* stays on volume data \(PersistentVolumeClaim kubeprod\/data-prometheus-0\)/,
    );
    assert.ok(!r.calls.some((c) => c.startsWith("exec ")), r.calls.join("\n"));
  });

  it("a pod to run in: the staging dir is removed in the target's sidecar, as before", async () => {
    const { cmd, env } = await storedDelete("migration-block-copy");
    const r = runStored(cmd, env, "running");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.calls.some((c) => c.startsWith("exec -n kubeprod statefulset/prometheus -c ptm-rsync -- ")),
      r.calls.join("\n"),
    );
    assert.ok(
      r.calls.some((c) => c.endsWith(" ptm-cleanup-target")),
      "cleanup-target.sh ran",
    );
  });

  it("a read that is refused (Forbidden) fails the delete (fail closed)", async () => {
    const { cmd, env } = await storedDelete("migration-block-copy");
    const r = runStored(cmd, env, "forbidden");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /whether a pod of it still holds the staging dir can't be told/);
  });
});
