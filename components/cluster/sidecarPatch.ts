// Adds one container to a Deployment or StatefulSet through a Server-Side Apply patch.
// The patch owns only that container (containers are a list keyed by name), so deleting the
// patch removes exactly the container and leaves every other field as its owners left it.

import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { TsdbLocation } from "../decisions/workload";

/** Builds the volume mount that gives a sidecar the same view of the TSDB as Prometheus. */
export function tsdbMount(loc: TsdbLocation): k8s.types.input.core.v1.VolumeMount {
  return {
    name: loc.volume,
    mountPath: loc.mountPath,
    ...(loc.subPath ? { subPath: loc.subPath } : {}),
    ...(loc.subPathExpr ? { subPathExpr: loc.subPathExpr } : {}),
  };
}

export function patchWithSidecar(
  name: string,
  loc: TsdbLocation,
  container: k8s.types.input.core.v1.Container,
  rolloutTimeoutSeconds: number,
  opts: pulumi.CustomResourceOptions,
): k8s.apps.v1.DeploymentPatch | k8s.apps.v1.StatefulSetPatch {
  // The provider (4.25) compares a patch with the live object list item by list item, by
  // index. Naming the workload's own containers first, in their live order, keeps our
  // container at its live index, so an unchanged patch shows no diff. A name alone claims
  // no field of those containers: deleting the patch leaves them exactly as they are.
  const others = loc.containers.filter((c) => c !== container.name).map((c) => ({ name: c }));
  const patch = {
    metadata: { name: loc.ref.name, namespace: loc.ref.namespace },
    spec: { template: { spec: { containers: [...others, container] } } },
  };
  // The patch waits for the rollout; Prometheus may need a while to replay its WAL.
  const timeout = `${rolloutTimeoutSeconds}s`;
  const options: pulumi.CustomResourceOptions = {
    ...opts,
    customTimeouts: { create: timeout, update: timeout, delete: timeout },
  };
  return loc.ref.kind === "Deployment"
    ? new k8s.apps.v1.DeploymentPatch(name, patch, options)
    : new k8s.apps.v1.StatefulSetPatch(name, patch, options);
}
