// prometheus-tsdb-migration as a stack: the stack config, validated by the component,
// becomes one PrometheusTsdbMigration; its outputs are the stack's outputs (outputsOf).
// `phase` says how far to go; removing it reverts every change.

import * as pulumi from "@pulumi/pulumi";
import { PrometheusTsdbMigrationArgs, PrometheusWorkloadArgs } from "./components";
import { outputsOf, PrometheusTsdbMigration } from "./components";

function readConfig(): PrometheusTsdbMigrationArgs {
  const c = new pulumi.Config();
  // The Kubernetes provider's own keys: the component hands them to kubectl too.
  const k8s = new pulumi.Config("kubernetes");
  return {
    cluster: { kubeconfig: k8s.get("kubeconfig"), context: k8s.get("context") },
    // Checked by the component: an unknown phase is refused with the key's name.
    phase: c.get("phase") as PrometheusTsdbMigrationArgs["phase"],
    source: c.getObject<PrometheusWorkloadArgs>("source"),
    target: c.getObject<PrometheusWorkloadArgs>("target"),
    sidecarImage: c.get("sidecarImage"),
    sidecarImagePullPolicy: c.get("sidecarImagePullPolicy"),
    // Checked by the component: a bad quantity or Secret name is refused with the key's name.
    sidecarResources:
      c.getObject<PrometheusTsdbMigrationArgs["sidecarResources"]>("sidecarResources"),
    imagePullSecrets: c.getObject<string[]>("imagePullSecrets"),
    bandwidthLimit: c.get("bandwidthLimit"),
    // "auto" or a number; checked by the component.
    copyStreams: c.get("copyStreams"),
    includeHead: c.getBoolean("includeHead"),
    maxWaitMinutes: c.getNumber("maxWaitMinutes"),
    acceptGap: c.getBoolean("acceptGap"),
    trimToTargetRetention: c.getBoolean("trimToTargetRetention"),
    verifyWindows: c.getNumber("verifyWindows"),
    rolloutTimeoutSeconds: c.getNumber("rolloutTimeoutSeconds"),
    forceRevert: c.getBoolean("forceRevert"),
    // Checked by the component, as the phase is.
    sidecarMode: c.get("sidecarMode") as PrometheusTsdbMigrationArgs["sidecarMode"],
  };
}

// "migration": the name every stack so far was made with (its objects keep their names).
export = async () => {
  const m = new PrometheusTsdbMigration("migration", readConfig());
  // A bad config or a failed check fails here, with its one line.
  await m.ready;
  return outputsOf(m);
};
