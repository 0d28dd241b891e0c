// Admission before the rollout (issue 21 item 4), in the program: at preview and before any
// patch is applied at `up`, each patched pod template is dry-run through the API server's
// admission; a rejection is refused naming the key and the object, and a dry-run that could
// not be made is said to be "not checked", never passed as ok.

import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_SIDECAR_IMAGE } from "../../components/decisions/config";
import { bkprStatefulSet, cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { KPS_NAME, kpsObjects, kpsRef } from "../fixtures/prometheusOperator";
import { byType, FakeCluster, one, runProgram } from "./harness";

type Obj = Record<string, unknown>;
const PATCH_TYPES = ["kubernetes:apps/v1:DeploymentPatch", "kubernetes:apps/v1:StatefulSetPatch"];
const prepare = { phase: "prepare", source: SOURCE_CONFIG };
const specOf = (pod: Obj) => pod.spec as { containers: Obj[]; volumes: Obj[] };
const containerOf = (patch: Obj, name: string) =>
  ((((patch.spec as Obj).template as Obj).spec as Obj).containers as Obj[]).find(
    (c) => c.name === name,
  )!;

const MUST_SPECIFY =
  'Error from server (Forbidden): error when creating "STDIN": pods "prometheus-ptm-admission-8hfdj" is forbidden: failed quota: compute: must specify limits.cpu for: ptm-rsync; limits.memory for: ptm-rsync';

/** Runs the program with console.warn captured: pulumi.log.warn under mocks writes there. */
async function withWarnings<T>(f: () => Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const original = console.warn;
  console.warn = (...a: unknown[]) => void warnings.push(a.map(String).join(" "));
  try {
    return { result: await f(), warnings };
  } finally {
    console.warn = original;
  }
}

describe("program: admission before the rollout (issue 21 item 4)", () => {
  for (const preview of [true, false]) {
    it(`${preview ? "preview" : "up"}: dry-runs the source's and the target's patched pods`, async () => {
      const r = await runProgram(prepare, cluster(), { preview });
      assert.deepEqual(
        r.dryRuns.map((d) => d.namespace),
        ["monitoring", "kubeprod"],
      );
      const [src, dst] = r.dryRuns.map((d) => d.pod);
      assert.deepEqual(
        specOf(src).containers.map((c) => c.name),
        ["prometheus-server-configmap-reload", "prometheus-server", "ptm-rsyncd"],
      );
      assert.deepEqual(
        specOf(dst).containers.map((c) => c.name),
        ["prometheus", "configmap-reload", "ptm-rsync"],
      );
      for (const pod of [src, dst]) {
        assert.ok(specOf(pod).volumes.some((v) => v.name === "ptm-scratch"));
      }
      // The dry-runs come before any patch is declared.
      const firstPatch = r.events.findIndex((e) => PATCH_TYPES.some((t) => e.startsWith(t)));
      const lastDryRun = r.events
        .map((e, i) => (e.includes("create --dry-run=server") ? i : -1))
        .reduce((a, b) => Math.max(a, b), -1);
      assert.ok(lastDryRun >= 0 && lastDryRun < firstPatch, r.events.join("\n"));
    });
  }

  it("the dry-run's sidecar is the one the patch applies (the same builders)", async () => {
    const r = await runProgram(
      { ...prepare, imagePullSecrets: ["regcred"], sidecarResources: { limits: { cpu: "2" } } },
      cluster(),
    );
    const patches: [string, string, number][] = [
      ["kubernetes:apps/v1:DeploymentPatch", "ptm-rsyncd", 0],
      ["kubernetes:apps/v1:StatefulSetPatch", "ptm-rsync", 1],
    ];
    for (const [type, name, i] of patches) {
      const applied = containerOf(one(r, type).inputs, name);
      const tried = specOf(r.dryRuns[i].pod).containers.find((c) => c.name === name)!;
      for (const field of [
        "image",
        "imagePullPolicy",
        "command",
        "resources",
        "volumeMounts",
        "securityContext",
        "ports",
      ]) {
        assert.deepEqual(tried[field], applied[field], `${name}: ${field}`);
      }
      assert.deepEqual((r.dryRuns[i].pod.spec as Obj).imagePullSecrets, [{ name: "regcred" }]);
    }
  });

  for (const preview of [true, false]) {
    it(`${preview ? "preview" : "up"}: a quota that requires limits is refused, naming the quota and the key`, async () => {
      const c: FakeCluster = { ...cluster(), dryRun: { kubeprod: MUST_SPECIFY } };
      await assert.rejects(
        runProgram({ ...prepare, sidecarResources: { limits: {} } }, c, { preview }),
        (e: Error) =>
          e instanceof pulumi.ResourceError &&
          /:sidecarResources: StatefulSet kubeprod\/prometheus with the sidecar ptm-rsync would not be admitted: ResourceQuota kubeprod\/compute requires limits\.cpu, limits\.memory/.test(
            e.message,
          ) &&
          !e.message.includes("\n    at "),
      );
    });
  }

  it("a dry-run that can't be made (RBAC) is said to be not checked, and the run goes on", async () => {
    const denied =
      'Error from server (Forbidden): error when creating "STDIN": pods is forbidden: User "ci" cannot create resource "pods" in API group "" in the namespace "monitoring"';
    const c: FakeCluster = { ...cluster(), dryRun: { monitoring: denied } };
    const { result, warnings } = await withWarnings(() => runProgram(prepare, c));
    assert.equal(result.outputs.status, "prepared");
    assert.ok(
      warnings.some((w) =>
        /admission NOT checked for Deployment monitoring\/prometheus-server: .*cannot create resource "pods"/.test(
          w,
        ),
      ),
      warnings.join("\n"),
    );
  });

  it("skipped where the live template already runs the sidecar unchanged (prepared)", async () => {
    const c = cluster();
    const sts = bkprStatefulSet() as Obj;
    const spec = ((sts.spec as Obj).template as Obj).spec as Obj;
    (spec.containers as Obj[]).push({
      name: "ptm-rsync",
      image: DEFAULT_SIDECAR_IMAGE,
      imagePullPolicy: "IfNotPresent",
    });
    c.objects["statefulset/kubeprod/prometheus"] = sts;
    const r = await runProgram(prepare, c, { preview: true });
    assert.deepEqual(
      r.dryRuns.map((d) => d.namespace),
      ["monitoring"],
    );
  });

  it("a Prometheus resource: its generated StatefulSet's pod, with the sidecar of spec.containers", async () => {
    const c: FakeCluster = cluster();
    Object.assign(c.objects, kpsObjects());
    const r = await runProgram({ ...prepare, target: kpsRef() }, c, { preview: true });
    const dst = r.dryRuns.find((d) => d.namespace === "monitoring" && d.pod !== r.dryRuns[0].pod);
    assert.ok(dst, JSON.stringify(r.dryRuns.map((d) => d.namespace)));
    const meta = dst.pod.metadata as Obj;
    assert.equal(meta.generateName, `prometheus-${KPS_NAME}-ptm-admission-`);
    const names = specOf(dst.pod).containers.map((x) => x.name);
    assert.ok(names.includes("prometheus") && names.at(-1) === "ptm-rsync", names.join(", "));
    // The resource's own command adds the sidecar: the same container as tried.
    const [add] = byType(r, "command:local:Command").filter(
      (x) => x.name === "migration-target-rsync-client-resource",
    );
    const applied = JSON.parse(
      (add.inputs.environment as Record<string, string>).PTM_CONTAINER,
    ) as Obj;
    const tried = specOf(dst.pod).containers.at(-1)!;
    assert.deepEqual(tried.volumeMounts, applied.volumeMounts);
    assert.deepEqual(tried.securityContext, applied.securityContext);
    assert.deepEqual(tried.command, applied.command);
  });

  it("sidecarMode ephemeral changes no template: no dry-run", async () => {
    const r = await runProgram({ ...prepare, sidecarMode: "ephemeral" }, cluster(), {
      preview: true,
    });
    assert.equal(r.dryRuns.length, 0);
    assert.equal(byType(r, "kubernetes:apps/v1:DeploymentPatch").length, 0);
  });

  it("the revert rolls no new sidecar in: no dry-run", async () => {
    const r = await runProgram({ source: SOURCE_CONFIG }, cluster());
    assert.equal(r.dryRuns.length, 0);
  });
});
