// Adds one container to a Deployment or StatefulSet through a Server-Side Apply patch.
// The patch owns only that container (containers are a list keyed by name), so deleting the
// patch removes exactly the container and leaves every other field as its owners left it.

import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "./config";
import { Container, TsdbLocation } from "./workload";

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
  const patch = {
    metadata: { name: loc.ref.name, namespace: loc.ref.namespace },
    spec: { template: { spec: { containers: [container] } } },
  };
  // The patch waits for the rollout; Prometheus may need a while to replay its WAL.
  const timeout = `${rolloutTimeoutSeconds}s`;
  const options = {
    ...opts,
    customTimeouts: { create: timeout, update: timeout, delete: timeout },
  };
  return loc.ref.kind === "Deployment"
    ? new k8s.apps.v1.DeploymentPatch(name, patch, options)
    : new k8s.apps.v1.StatefulSetPatch(name, patch, options);
}

/**
 * Refuses a sidecar setting that differs from the sidecar already running: it would not be
 * applied (see ignoreChanges above). Reverting and preparing again applies it.
 */
export function checkSidecarUnchanged(
  key: "source" | "target",
  live: Container | undefined,
  desired: { image: string; imagePullPolicy: string },
): void {
  if (!live) return;
  for (const field of ["image", "imagePullPolicy"] as const) {
    const was = live[field];
    if (was !== undefined && was !== desired[field]) {
      throw new ConfigError(
        field === "image" ? "sidecarImage" : "sidecarImagePullPolicy",
        `the ${key} sidecar already runs with ${field} "${was}", not "${desired[field]}". Sidecars are ` +
          `fixed while they run: revert first (pulumi config rm phase && pulumi up), then prepare again`,
      );
    }
  }
}
