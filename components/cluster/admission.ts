// Admission before the rollout (issue 21 item 4): before any patch is applied (at preview, and
// at `up` before the patches), the pod each sidecar patch would make is sent through the API
// server's admission with `kubectl create --dry-run=server`, which persists nothing. The
// sidecar is built by the same functions the patches use (steps/, sidecarPatch.ts); what the
// answer means is decided in decisions/admission.ts.

import * as pulumi from "@pulumi/pulumi";
import {
  admissionNeeded,
  admissionPod,
  admissionVerdict,
  AdmissionVerdict,
  quotaUsage,
  replacesInPlace,
} from "../decisions/admission";
import { ConfigError, MigrationConfig } from "../decisions/config";
import { podsWorkload } from "../decisions/prometheusResource";
import { keepRunningSidecar, SidecarContainer } from "../decisions/sidecarChange";
import { Container, TsdbLocation } from "../decisions/workload";
import { rsyncDaemonSpec } from "../steps/sourceRsyncDaemon";
import { rsyncClientSpec } from "../steps/targetRsyncClient";
import { readWorkload, run } from "./clusterReads";
import { dryRunCreateCommand } from "./kubectl";
import { MigrationNames } from "./naming";
import { scratchVolume, sidecarContainer, SidecarSpec } from "./sidecarPatch";

/** Stands in for the migration's random ID, which exists only once its resource is created. */
const DRY_RUN_ID = "admission-dry-run";

/** One side's verdict; undefined when its pod template does not change (already prepared). */
async function checkSide(
  key: "source" | "target",
  loc: TsdbLocation,
  spec: SidecarSpec,
  cfg: MigrationConfig,
  resourcesConfigured: boolean,
): Promise<AdmissionVerdict | undefined> {
  // The container the patch applies (sidecarPatch.ts runningSidecarContainer), and whether a
  // config key changes a running one.
  const { container, restarting } = keepRunningSidecar(
    sidecarContainer(loc, spec) as SidecarContainer,
    loc.liveSidecar,
    resourcesConfigured,
  );
  // A `Prometheus` resource's pods pull with its own secrets (the patch refuses others).
  const pull = loc.ref.kind === "Prometheus" ? [] : cfg.imagePullSecrets;
  if (!admissionNeeded(loc.liveSidecar, restarting, loc.imagePullSecrets ?? [], pull)) {
    return undefined;
  }
  const workload = `${loc.ref.kind} ${loc.ref.namespace}/${loc.ref.name}`;
  const unchecked = (why: string): AdmissionVerdict => ({
    action: "unchecked",
    message: `admission NOT checked for ${workload}: ${why}`,
  });
  // The workload whose pods run Prometheus: a `Prometheus` resource's generated StatefulSet.
  const pods = podsWorkload(loc);
  if (pods.kind === "Prometheus") return unchecked("no generated StatefulSet was found");
  try {
    const live = await readWorkload({ ...pods, access: loc.ref.access });
    if (!live?.spec?.template)
      return unchecked(`${pods.kind} ${pods.namespace}/${pods.name} is gone`);
    const pod = admissionPod(
      live,
      pods.kind,
      pods.namespace,
      pods.name,
      container as unknown as Container,
      scratchVolume(),
      pull,
    );
    const answer = await run(
      dryRunCreateCommand(pods.namespace, loc.ref.access),
      {},
      JSON.stringify(pod),
    );
    return admissionVerdict(
      {
        key,
        workload,
        namespace: pods.namespace,
        sidecar: spec.name,
        inPlace: replacesInPlace(pods.kind, live),
        oldPod: quotaUsage(live.spec.template.spec ?? {}),
      },
      answer,
    );
  } catch (e) {
    // Fail closed: a dry-run that could not be made is reported as not checked.
    return unchecked((e as Error).message);
  }
}

/**
 * Dry-runs the pod each sidecar patch would make (sidecarMode patch), and refuses, with a
 * ConfigError naming the key, when the cluster would reject one; a dry-run that could not be
 * made is warned as "not checked". Side that already runs its sidecar unchanged: skipped.
 * Resolves to the answers of the sides asked.
 */
export async function checkAdmission(
  cfg: MigrationConfig,
  names: MigrationNames,
  located: { source: TsdbLocation; target: TsdbLocation },
  resourcesConfigured: boolean,
  migration: pulumi.Resource,
): Promise<AdmissionVerdict[]> {
  const common = {
    names,
    image: cfg.sidecarImage,
    imagePullPolicy: cfg.sidecarImagePullPolicy,
    resources: cfg.sidecarResources,
    // The Secret is created by the same `up`, after this check: its name is known already,
    // and a missing Secret does not stop admission (only the container's start).
    secretName: names.rsyncSecret,
  };
  const verdicts = await Promise.all([
    checkSide(
      "source",
      located.source,
      rsyncDaemonSpec({ ...common, migrationId: DRY_RUN_ID }),
      cfg,
      resourcesConfigured,
    ),
    checkSide("target", located.target, rsyncClientSpec(common), cfg, resourcesConfigured),
  ]);
  // What passed is said first, so that a refusal of one side still shows the other's answer.
  for (const v of verdicts) {
    if (!v || v.action === "refuse") continue;
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    if (v.action === "admitted") void pulumi.log.info(`admission: ${v.message}`, migration);
    else if (v.action === "warn") void pulumi.log.warn(`admission: ${v.message}`, migration);
    else void pulumi.log.warn(v.message, migration); // "admission NOT checked for ...: why"
  }
  const refused = verdicts.filter(
    (v): v is Extract<AdmissionVerdict, { action: "refuse" }> => v?.action === "refuse",
  );
  if (refused.length > 0) {
    const [first, ...more] = refused;
    throw new ConfigError(
      first.key,
      first.message + more.map((v) => ` (also ${v.key}: ${v.message})`).join(""),
    );
  }
  // Each side's answer, for the preflight output; a side skipped (sidecar in place) has none.
  return verdicts.filter((v): v is AdmissionVerdict => v !== undefined);
}
