// Issue 22, Kubernetes conventions: the pure rules (labels, field manager, imagePullSecrets,
// Events) as table tests, and the scripts' kubectl writes run against a stub kubectl.

import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../../components/decisions/config";
import {
  checkPullSecretsListed,
  containerApplyManager,
  ManagedFieldsEntry,
  patchedRoleOf,
  patchFieldManager,
  patchPullSecrets,
} from "../../components/decisions/conventions";
import { EVENT_NOW, EVENT_UID, migrationEvent } from "../../components/decisions/events";
import { localScript } from "../../components/cluster/kubectl";
import { FIELD_MANAGER, LABEL_DOMAINS, LEGACY_LABEL_DOMAIN } from "../../components/cluster/naming";

const CLUSTER_DIR = path.join(__dirname, "..", "..", "components", "cluster");

describe("conventions: a patched workload is recognised by its labels, old or new (issue 22)", () => {
  const NEW = "prometheus-tsdb-migration.github.io";
  const OLD = "prometheus-tsdb-migration.io";
  const cases: { name: string; labels?: Record<string, string>; want: string | undefined }[] = [
    {
      name: "this version's labels",
      labels: { [`${NEW}/patched-by`]: "dev", [`${NEW}/role`]: "target" },
      want: "target",
    },
    {
      name: "an earlier version's labels (a revert must still find them)",
      labels: { [`${OLD}/patched-by`]: "dev", [`${OLD}/role`]: "source" },
      want: "source",
    },
    {
      name: "both, as after an upgrade mid-migration",
      labels: {
        [`${NEW}/patched-by`]: "dev",
        [`${NEW}/role`]: "target",
        [`${OLD}/patched-by`]: "dev",
        [`${OLD}/role`]: "target",
      },
      want: "target",
    },
    {
      name: "another stack's",
      labels: { [`${OLD}/patched-by`]: "prod", [`${OLD}/role`]: "target" },
      want: undefined,
    },
    {
      name: "keys mixed across domains don't count",
      labels: { [`${NEW}/patched-by`]: "dev", [`${OLD}/role`]: "target" },
      want: undefined,
    },
    {
      name: "an unknown role",
      labels: { [`${NEW}/patched-by`]: "dev", [`${NEW}/role`]: "both" },
      want: undefined,
    },
    {
      name: "the app's own labels only",
      labels: { "app.kubernetes.io/name": "x" },
      want: undefined,
    },
    { name: "no labels", labels: undefined, want: undefined },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.equal(patchedRoleOf(tc.labels, "dev", LABEL_DOMAINS), tc.want));
  }

  it("writes under a domain other than the unclaimable one, and still reads that one", () => {
    assert.notEqual(LABEL_DOMAINS[0], LEGACY_LABEL_DOMAIN);
    assert.deepEqual(LABEL_DOMAINS, [NEW, OLD]);
  });
});

describe("conventions: the field manager of a sidecar patch (issue 22)", () => {
  const applied = (manager: string, container: string, extra = true): ManagedFieldsEntry => ({
    manager,
    operation: "Apply",
    fieldsV1: {
      "f:spec": {
        "f:template": {
          "f:spec": {
            "f:containers": {
              [`k:{"name":"${container}"}`]: extra
                ? { ".": {}, "f:name": {}, "f:image": {}, "f:command": {} }
                : { ".": {}, "f:name": {} },
            },
          },
        },
      },
    },
  });
  const managers: { name: string; fields?: ManagedFieldsEntry[]; owner?: string }[] = [
    { name: "no managedFields (a new patch)", fields: undefined, owner: undefined },
    {
      name: "the patch of an earlier version",
      fields: [applied("helm", "prometheus"), applied("pulumi-kubernetes-1a2b3c4d", "ptm-rsync")],
      owner: "pulumi-kubernetes-1a2b3c4d",
    },
    {
      name: "a name alone is how a patch refers to others' containers: not an owner",
      fields: [applied("pulumi-kubernetes-1a2b3c4d", "ptm-rsync", false)],
      owner: undefined,
    },
    {
      name: "an Update (kubectl edit) owns no patch",
      fields: [{ ...applied("kubectl-edit", "ptm-rsync"), operation: "Update" }],
      owner: undefined,
    },
    {
      name: "another container's owner",
      fields: [applied("pulumi-kubernetes-1a2b3c4d", "ptm-rsyncd")],
      owner: undefined,
    },
  ];
  for (const tc of managers) {
    it(`owner: ${tc.name}`, () =>
      assert.equal(containerApplyManager(tc.fields, "ptm-rsync"), tc.owner));
  }

  const choices: { name: string; owner?: string; manager: string; adopted: boolean }[] = [
    {
      name: "a new patch: the fixed name",
      owner: undefined,
      manager: FIELD_MANAGER,
      adopted: false,
    },
    {
      name: "already the fixed name",
      owner: FIELD_MANAGER,
      manager: FIELD_MANAGER,
      adopted: false,
    },
    {
      name: "an earlier version's provider-named patch keeps its name until the revert",
      owner: "pulumi-kubernetes-0f3e9a1c",
      manager: "pulumi-kubernetes-0f3e9a1c",
      adopted: true,
    },
    {
      name: "someone else's apply is not adopted",
      owner: "argocd",
      manager: FIELD_MANAGER,
      adopted: false,
    },
  ];
  for (const tc of choices) {
    it(tc.name, () =>
      assert.deepEqual(patchFieldManager(tc.owner, FIELD_MANAGER), {
        manager: tc.manager,
        adopted: tc.adopted,
      }),
    );
  }

  it("is one fixed name: changing it would orphan the fields of stacks mid-migration", () => {
    assert.equal(FIELD_MANAGER, "prometheus-tsdb-migration");
  });

  it("every script the program runs on this machine is told the name", () => {
    for (const s of ["admin-api", "prometheus-resource", "ephemeral-sidecar", "event"]) {
      assert.equal(localScript(s, [], undefined).environment.PTM_FIELD_MANAGER, FIELD_MANAGER);
    }
  });

  it("no cluster script writes with kubectl but through kc_patch or kc_create", () => {
    for (const f of fs.readdirSync(CLUSTER_DIR).filter((x) => x.endsWith(".sh"))) {
      const text = fs.readFileSync(path.join(CLUSTER_DIR, f), "utf8");
      const code = text
        .split("\n")
        .filter((l) => !/^\s*#/.test(l))
        .join("\n");
      // lib.sh's own wrappers are the only plain `kc patch`/`kc create`.
      const bare = code
        .split("\n")
        .filter((l) => /\b(kc|kubectl) (patch|apply|create|replace|edit)\b/.test(l))
        .filter((l) => !/--field-manager/.test(l))
        // messages that name the command are not commands
        .filter((l) => !/^\s*(die|log|echo|warn|skip) /.test(l));
      assert.deepEqual(bare, [], `${f} writes without the field manager`);
    }
  });

  it("kc_patch and kc_create pass --field-manager to kubectl", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ptm-kc-"));
    fs.writeFileSync(path.join(dir, "kubectl"), '#!/bin/sh\necho "$@"\n', { mode: 0o755 });
    const lib = fs.readFileSync(path.join(CLUSTER_DIR, "lib.sh"), "utf8");
    const run = (cmd: string) =>
      execFileSync("sh", ["-c", `${lib}\n${cmd}`], {
        env: { PATH: `${dir}:${process.env.PATH}`, PTM_FIELD_MANAGER: FIELD_MANAGER },
        encoding: "utf8",
      }).trim();
    assert.equal(
      run("kc_patch deployment p -n ns --type=json -p '[]'"),
      `patch --field-manager ${FIELD_MANAGER} deployment p -n ns --type=json -p []`,
    );
    assert.equal(run("kc_create -f -"), `create --field-manager ${FIELD_MANAGER} -f -`);
  });
});

describe("conventions: imagePullSecrets (issue 22)", () => {
  const cases: { name: string; live: string[]; wanted: string[]; want: string[] }[] = [
    { name: "none wanted: the patch leaves the field alone", live: ["a"], wanted: [], want: [] },
    { name: "added after the pod's own", live: ["a"], wanted: ["regcred"], want: ["a", "regcred"] },
    {
      name: "one the pod lists already is not added twice",
      live: ["regcred"],
      wanted: ["regcred"],
      want: ["regcred"],
    },
    {
      name: "a rerun keeps the live order",
      live: ["a", "regcred", "b"],
      wanted: ["regcred"],
      want: ["a", "regcred", "b"],
    },
    { name: "no pod secrets", live: [], wanted: ["x", "y"], want: ["x", "y"] },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.deepEqual(patchPullSecrets(tc.live, tc.wanted), tc.want));
  }

  it("where they can't be added, the pods must list them already, else the key is named", () => {
    assert.doesNotThrow(() => checkPullSecretsListed(["regcred"], ["regcred"], "resource", "x"));
    assert.throws(
      () => checkPullSecretsListed([], ["regcred"], "resource", "Prometheus monitoring/k8s"),
      (e: Error) =>
        e instanceof ConfigError &&
        /^prometheus-tsdb-migration:imagePullSecrets: regcred not in the imagePullSecrets of Prometheus monitoring\/k8s.*spec\.imagePullSecrets/.test(
          e.message,
        ),
    );
    assert.throws(
      () => checkPullSecretsListed(["a"], ["regcred"], "pods", "the target's pods"),
      /:imagePullSecrets: .*sidecarMode ephemeral/,
    );
  });
});

describe("conventions: the Events of the migration (issue 22)", () => {
  it("a core/v1 Event about the workload, matched by kubectl describe on its uid", () => {
    const e = migrationEvent(
      { kind: "Deployment", namespace: "monitoring", name: "prom" },
      "MigrationCopyDone",
      "Copy done",
      "dev",
    );
    assert.deepEqual(e.involvedObject, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      namespace: "monitoring",
      name: "prom",
      uid: EVENT_UID,
    });
    assert.equal((e.metadata as { namespace: string }).namespace, "monitoring");
    // Whose migration: the instance (cluster/naming.ts), as label and reportingInstance.
    assert.equal(
      (e.metadata as { labels: Record<string, string> }).labels["app.kubernetes.io/instance"],
      "dev",
    );
    assert.equal(e.reportingInstance, "dev");
    assert.equal(e.reason, "MigrationCopyDone");
    assert.equal(e.reportingComponent, "prometheus-tsdb-migration");
    assert.equal(e.firstTimestamp, EVENT_NOW);
    const p = migrationEvent(
      { kind: "Prometheus", namespace: "m", name: "k8s" },
      "MigrationVerified",
      "x".repeat(2000),
      "dev",
    );
    assert.equal(
      (p.involvedObject as { apiVersion: string }).apiVersion,
      "monitoring.coreos.com/v1",
    );
    assert.equal((p.message as string).length, 1000);
  });

  describe("event.sh, against a stub kubectl", () => {
    const runEvent = (createExit: number) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ptm-event-"));
      fs.writeFileSync(
        path.join(dir, "kubectl"),
        `#!/bin/sh\ncase "$1" in\nget) echo uid-123 ;;\ncreate) cat > "${dir}/created.json"; echo "$@" > "${dir}/args"; exit ${createExit} ;;\nesac\n`,
        { mode: 0o755 },
      );
      const s = localScript("event", ["monitoring", "deployment", "prom"], undefined);
      const event = migrationEvent(
        { kind: "Deployment", namespace: "monitoring", name: "prom" },
        "MigrationPrepared",
        "Migration prepared",
        "dev",
      );
      const out = execFileSync("sh", ["-c", `${s.command} 2>/dev/null`], {
        env: {
          ...s.environment,
          PTM_EVENT: JSON.stringify(event),
          PATH: `${dir}:${process.env.PATH}`,
        },
        encoding: "utf8",
      });
      return { out: out.trim(), dir };
    };

    it("creates the Event with the workload's uid and the time, as the field manager", () => {
      const { out, dir } = runEvent(0);
      assert.equal(out, '{"recorded":true}');
      const created = JSON.parse(fs.readFileSync(path.join(dir, "created.json"), "utf8"));
      assert.equal(created.involvedObject.uid, "uid-123");
      assert.match(created.firstTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.match(
        fs.readFileSync(path.join(dir, "args"), "utf8"),
        /--field-manager prometheus-tsdb-migration/,
      );
    });

    it("a refused create (RBAC) warns and exits 0: the migration goes on", () => {
      assert.equal(runEvent(1).out, '{"recorded":false}');
    });
  });
});
