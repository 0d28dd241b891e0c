// Adds one container to a Deployment or StatefulSet through a Server-Side Apply patch.
// The patch owns only that container (containers are a list keyed by name), so deleting the
// patch removes exactly the container and leaves every other field as its owners left it.

import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { SidecarResources } from "../decisions/config";
import {
  checkPullSecretsListed,
  patchFieldManager,
  patchPullSecrets,
} from "../decisions/conventions";
import { keepRunningSidecar, SidecarContainer } from "../decisions/sidecarChange";
import { TsdbLocation } from "../decisions/workload";
import { localScript, sidecarScript } from "./kubectl";
import { patchPrometheusWithSidecar } from "./prometheusPatch";
import { FIELD_MANAGER, MigrationNames, PASSWORD_KEY, patchedLabels } from "./naming";

/**
 * The sidecars' own writable scratch space (rsyncd's config, the scripts' temp files): the
 * sidecars copy Prometheus's securityContext, and with `readOnlyRootFilesystem` (the default
 * of kube-prometheus-stack) nothing else is writable. The patch owns the volume, so the
 * revert removes it.
 */
export const SCRATCH_VOLUME = "ptm-scratch";
export const SCRATCH_PATH = "/ptm-scratch";

/** The scratch volume as each patch adds it (and the admission dry-run tries it). */
export function scratchVolume(): { name: string; emptyDir: { sizeLimit: string } } {
  return { name: SCRATCH_VOLUME, emptyDir: { sizeLimit: "256Mi" } };
}

/** Builds the volume mount that gives a sidecar the same view of the TSDB as Prometheus. */
export function tsdbMount(loc: TsdbLocation): k8s.types.input.core.v1.VolumeMount {
  return {
    name: loc.volume,
    mountPath: loc.mountPath,
    ...(loc.subPath ? { subPath: loc.subPath } : {}),
    ...(loc.subPathExpr ? { subPathExpr: loc.subPathExpr } : {}),
  };
}

export interface SidecarSpec {
  /** Container name; also the script's $0. */
  name: string;
  image: string;
  imagePullPolicy: string;
  /** components/sidecar/<script>.sh is the container's command. */
  script: string;
  /** Variable that receives the rsync password from the migration's Secret. */
  passwordEnv: string;
  secretName: pulumi.Input<string>;
  /** Settings besides PTM_DATA and PTM_PROM_URL. */
  env?: k8s.types.input.core.v1.EnvVar[];
  ports?: k8s.types.input.core.v1.ContainerPort[];
  /** Requests and limits (config sidecarResources). */
  resources: SidecarResources;
}

/**
 * A sidecar that sees the TSDB exactly as Prometheus does: same volume, same mount, and the
 * Prometheus container's securityContext, so it reads, links and writes blocks as the
 * same user.
 */
export function sidecarContainer(
  loc: TsdbLocation,
  spec: SidecarSpec,
): k8s.types.input.core.v1.Container {
  return {
    name: spec.name,
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy,
    command: ["sh", "-c", sidecarScript(spec.script), spec.name],
    env: [
      { name: "PTM_DATA", value: loc.dataPath },
      { name: "PTM_PROM_URL", value: loc.url },
      { name: "TMPDIR", value: SCRATCH_PATH },
      { name: "PTM_RUN", value: `${SCRATCH_PATH}/run` },
      ...(spec.env ?? []),
      {
        name: spec.passwordEnv,
        valueFrom: { secretKeyRef: { name: spec.secretName, key: PASSWORD_KEY } },
      },
    ],
    ...(spec.ports ? { ports: spec.ports } : {}),
    volumeMounts: [tsdbMount(loc), { name: SCRATCH_VOLUME, mountPath: SCRATCH_PATH }],
    ...(loc.securityContext ? { securityContext: loc.securityContext } : {}),
    resources: spec.resources,
  };
}

/**
 * The sidecar to apply on this side: the one {@link sidecarContainer} builds, with what the
 * program sets by itself kept as the running sidecar has it (decisions/sidecarChange.ts), so
 * that a later run of another version of the program rolls no pod.
 */
export function runningSidecarContainer(
  loc: TsdbLocation,
  spec: SidecarSpec,
  resourcesConfigured: boolean,
): k8s.types.input.core.v1.Container {
  const wanted = sidecarContainer(loc, spec) as SidecarContainer;
  return keepRunningSidecar(wanted, loc.liveSidecar, resourcesConfigured)
    .container as k8s.types.input.core.v1.Container;
}

/** A patched workload, and the step that saw its rollout through. */
export interface SidecarRollout {
  /** The patch; for a `Prometheus` resource, the command that patched the resource. */
  patch: k8s.apps.v1.DeploymentPatch | k8s.apps.v1.StatefulSetPatch | command.local.Command;
  /** Done once the pods run the sidecar; later steps depend on it. */
  rolledOut: command.local.Command;
}

export function patchWithSidecar(
  name: string,
  role: "source" | "target",
  loc: TsdbLocation,
  names: MigrationNames,
  container: k8s.types.input.core.v1.Container,
  rolloutTimeoutSeconds: number,
  opts: pulumi.CustomResourceOptions,
  /** Secrets the sidecar image is pulled with (config imagePullSecrets). */
  imagePullSecrets: string[] = [],
): SidecarRollout {
  // The provider (4.25) compares a patch with the live object list item by list item, by
  // index. Naming the workload's own containers first, in their live order, keeps our
  // container at its live index, so an unchanged patch shows no diff. A name alone claims
  // no field of those containers: deleting the patch leaves them exactly as they are.
  // The same holds for the pod's volumes, where the patch adds the sidecar's scratch space.
  const others = loc.containers.filter((c) => c !== container.name).map((c) => ({ name: c }));
  const otherVolumes = loc.volumes.filter((v) => v !== SCRATCH_VOLUME).map((v) => ({ name: v }));
  const scratch = scratchVolume();
  // The operator's StatefulSet is changed through its `Prometheus` resource (prometheusPatch.ts).
  if (loc.ref.kind === "Prometheus") {
    checkPullSecretsListed(
      loc.imagePullSecrets ?? [],
      imagePullSecrets,
      "resource",
      `Prometheus ${loc.ref.namespace}/${loc.ref.name}`,
    );
    return patchPrometheusWithSidecar(
      name,
      role,
      loc,
      names,
      container,
      scratch,
      rolloutTimeoutSeconds,
      opts,
    );
  }
  // One manager name for every patch, except one an earlier version created: it keeps the
  // provider's name for it, so no field changes owner mid-migration (conventions.ts).
  const manager = patchFieldManager(loc.sidecarOwner, FIELD_MANAGER);
  if (manager.adopted) {
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    void pulumi.log.info(
      `${loc.ref.kind} ${loc.ref.namespace}/${loc.ref.name}: the sidecar patch keeps its field ` +
        `manager ${manager.manager} from an earlier version until the revert; the next migration ` +
        `uses ${FIELD_MANAGER}`,
      opts.parent,
    );
  }
  // imagePullSecrets is a list keyed by name: the patch owns only the entries it adds.
  const pullSecrets = patchPullSecrets(loc.imagePullSecrets ?? [], imagePullSecrets);
  const patch = {
    metadata: {
      name: loc.ref.name,
      namespace: loc.ref.namespace,
      labels: patchedLabels(names, role),
      annotations: {
        // The provider would wait out the whole timeout for a sidecar that can never start;
        // rollout-watch.sh below fails within a minute, with the reason.
        "pulumi.com/skipAwait": "true",
        "pulumi.com/patchFieldManager": manager.manager,
      },
    },
    spec: {
      template: {
        spec: {
          containers: [...others, container],
          volumes: [...otherVolumes, scratch],
          ...(pullSecrets.length > 0
            ? { imagePullSecrets: pullSecrets.map((n) => ({ name: n })) }
            : {}),
        },
      },
    },
  };
  const { ref } = loc;
  const kind = ref.kind.toLowerCase();
  // Created before the patch, so deleted after it: at the revert, it waits until the pods
  // run the restored template, replacing a StatefulSet pod stuck on our broken revision.
  const settle = localScript(
    "rollout-settle",
    [ref.namespace, kind, ref.name, String(rolloutTimeoutSeconds)],
    ref.access,
  );
  const settled = new command.local.Command(
    `${name}-settle`,
    { delete: settle.command, environment: { ...settle.environment, PTM_STACK: names.instance } },
    // After what the caller declared first (the revert's Event), so deleted before it.
    {
      parent: opts.parent,
      dependsOn: opts.dependsOn,
      customTimeouts: { delete: `${rolloutTimeoutSeconds + 120}s` },
    },
  );
  const timeout = `${rolloutTimeoutSeconds}s`;
  const options: pulumi.CustomResourceOptions = {
    ...opts,
    dependsOn: [settled],
    customTimeouts: { create: timeout, update: timeout, delete: timeout },
  };
  const p =
    loc.ref.kind === "Deployment"
      ? new k8s.apps.v1.DeploymentPatch(name, patch, options)
      : new k8s.apps.v1.StatefulSetPatch(name, patch, options);
  // Prometheus may need a while to replay its WAL: wait up to rolloutTimeoutSeconds.
  const watch = localScript(
    "rollout-watch",
    [
      ref.namespace,
      ref.kind.toLowerCase(),
      ref.name,
      String(container.name),
      String(rolloutTimeoutSeconds),
    ],
    ref.access,
  );
  const rolledOut = new command.local.Command(
    `${name}-rollout`,
    { create: watch.command, environment: watch.environment },
    {
      parent: opts.parent,
      dependsOn: [p],
      customTimeouts: { create: `${rolloutTimeoutSeconds + 120}s` },
    },
  );
  return { patch: p, rolledOut };
}
