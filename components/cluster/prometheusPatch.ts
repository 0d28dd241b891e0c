// Adds one container to a prometheus-operator `Prometheus` resource, so that the operator puts
// it into the StatefulSet it generates (it merges `spec.containers` into its own containers by
// name) and keeps it there. A patch of the generated StatefulSet would be undone at the
// operator's next reconcile (prometheus-operator#3624).
//
// The CRD types `spec.containers` and `spec.volumes` as atomic lists, so a Server-Side Apply
// patch would own the whole list, and deleting it would delete the user's own containers too.
// prometheus-resource.sh adds the container, the scratch volume and the stack's labels with
// one JSON patch, and at the revert removes exactly those (and a list it created), so the
// resource's spec is again what it was.

import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { podsWorkload } from "../decisions/prometheusResource";
import { TsdbLocation } from "../decisions/workload";
import { localScript } from "./kubectl";
import { MigrationNames, patchedLabels, recognisedPatchedLabels } from "./naming";

/** What patchWithSidecar returns for a `Prometheus` resource. */
export interface ResourceSidecarRollout {
  /** Adds the container to the resource; its deletion removes it. */
  patch: command.local.Command;
  /** Done once every replica runs the sidecar. */
  rolledOut: command.local.Command;
}

export function patchPrometheusWithSidecar(
  name: string,
  role: "source" | "target",
  loc: TsdbLocation,
  names: MigrationNames,
  container: k8s.types.input.core.v1.Container,
  scratch: { name: string; emptyDir: { sizeLimit: string } },
  rolloutTimeoutSeconds: number,
  opts: pulumi.CustomResourceOptions,
): ResourceSidecarRollout {
  const { ref } = loc;
  const sts = podsWorkload(loc);
  const timeout = String(rolloutTimeoutSeconds);
  const containerName = String(container.name);
  // Created before the patch, so deleted after it: at the revert, it waits until the pods
  // run the restored template, replacing a StatefulSet pod stuck on our broken revision.
  const settle = localScript(
    "rollout-settle",
    [sts.namespace, "statefulset", sts.name, timeout],
    sts.access,
  );
  const settled = new command.local.Command(
    `${name}-settle`,
    { delete: settle.command, environment: settle.environment },
    // After what the caller declared first (the revert's Event), so deleted before it.
    {
      parent: opts.parent,
      dependsOn: opts.dependsOn,
      customTimeouts: { delete: `${rolloutTimeoutSeconds + 120}s` },
    },
  );
  const add = localScript(
    "prometheus-resource",
    ["add-sidecar", ref.namespace, ref.name],
    ref.access,
  );
  const remove = localScript(
    "prometheus-resource",
    ["remove-sidecar", ref.namespace, ref.name, sts.name, timeout],
    ref.access,
  );
  const asPairs = (l: Record<string, string>) =>
    Object.entries(l)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
  const labels = asPairs(patchedLabels(names, role));
  // An earlier version's labels, which its add-sidecar left when this one ran as an update.
  const legacy = asPairs(
    recognisedPatchedLabels(names, role)
      .slice(1)
      .reduce((a, l) => ({ ...a, ...l }), {}),
  );
  const patch = new command.local.Command(
    `${name}-resource`,
    {
      create: add.command,
      delete: remove.command,
      environment: pulumi.output(container).apply((c) => ({
        ...add.environment,
        PTM_CONTAINER: JSON.stringify(c),
        PTM_CONTAINER_NAME: containerName,
        PTM_VOLUME: JSON.stringify(scratch),
        PTM_VOLUME_NAME: scratch.name,
        PTM_LABELS: labels,
        PTM_LEGACY_LABELS: legacy,
      })),
    },
    {
      ...opts,
      dependsOn: [settled],
      customTimeouts: { delete: `${rolloutTimeoutSeconds + 60}s` },
    },
  );
  // The operator first has to put the container into its StatefulSet; then the rollout is
  // watched as for any StatefulSet (rollout-watch.sh fails within a minute when the sidecar
  // can't run). `kubectl rollout status` waits for every replica.
  const reconciled = localScript(
    "prometheus-resource",
    ["wait-generated", ref.namespace, ref.name, sts.name, "has-container", containerName, timeout],
    ref.access,
    "PTM_WAIT_SCRIPT",
  );
  const watch = localScript(
    "rollout-watch",
    [sts.namespace, "statefulset", sts.name, containerName, timeout],
    sts.access,
  );
  const rolledOut = new command.local.Command(
    `${name}-rollout`,
    {
      create: `${reconciled.command} && ${watch.command}`,
      environment: { ...reconciled.environment, ...watch.environment },
    },
    {
      parent: opts.parent,
      dependsOn: [patch],
      customTimeouts: { create: `${2 * rolloutTimeoutSeconds + 120}s` },
    },
  );
  return { patch, rolledOut };
}
