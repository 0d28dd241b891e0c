// prometheus-tsdb-migration: the seed's manual procedure, one component per step.
// `phase` in the stack config says how far to go; removing it reverts every change.

import * as pulumi from "@pulumi/pulumi";
import { rsyncIngressRules, isolatedForIngress } from "./components/access";
import { ConfigError, MigrationConfig, parseConfig, RawConfig } from "./components/config";
import { readNetworkPolicies, readWorkload } from "./components/live";
import { RsyncAccessPolicy } from "./components/rsyncAccessPolicy";
import { RsyncCredentials } from "./components/rsyncCredentials";
import { RsyncService } from "./components/rsyncService";
import { SourceRsyncDaemon } from "./components/sourceRsyncDaemon";
import { TargetRsyncClient } from "./components/targetRsyncClient";
import { checkDistinctPods, locateTsdb, preflight, TsdbLocation } from "./components/workload";

function readConfig(): MigrationConfig {
  const c = new pulumi.Config();
  const raw: RawConfig = {
    phase: c.get("phase"),
    source: c.getObject<unknown>("source"),
    target: c.getObject<unknown>("target"),
    sidecarImage: c.get("sidecarImage"),
    bandwidthLimit: c.get("bandwidthLimit"),
    includeHead: c.getBoolean("includeHead"),
    maxWaitMinutes: c.getNumber("maxWaitMinutes"),
    acceptGap: c.getBoolean("acceptGap"),
    rolloutTimeoutSeconds: c.getNumber("rolloutTimeoutSeconds"),
  };
  return parseConfig(raw);
}

async function program(): Promise<Record<string, unknown>> {
  // Configuration, validated before anything changes.
  const cfg = readConfig();
  if (cfg.phase === "revert") {
    // Nothing declared: every Secret, Service, policy, patch and step of earlier phases is
    // deleted, and deleting the patches hands the pod templates back exactly as they were.
    return { phase: "reverted" };
  }

  // The live workloads, and where their TSDBs are.
  const [sourceObj, targetObj] = await Promise.all([
    readWorkload(cfg.source),
    readWorkload(cfg.target),
  ]);
  const source: TsdbLocation = locateTsdb("source", cfg.source, sourceObj);
  const target: TsdbLocation = locateTsdb("target", cfg.target, targetObj);
  preflight("source", source, sourceObj!);
  preflight("target", target, targetObj!);
  checkDistinctPods(source, target);
  if (cfg.includeHead && !source.adminApi) {
    throw new ConfigError(
      "includeHead",
      `the source runs without --web.enable-admin-api, which a head snapshot needs; add the flag ` +
        `to the source yourself or leave includeHead false (the plan then reports the gap)`,
    );
  }
  const policies = await readNetworkPolicies(source.ref.namespace);

  // Step 1 (seed): the source's rsync daemon, reachable only by the target, with a fresh password.
  const credentials = new RsyncCredentials("rsync-credentials", {
    sourceNamespace: source.ref.namespace,
    targetNamespace: target.ref.namespace,
  });
  const service = new RsyncService("rsync-service", {
    namespace: source.ref.namespace,
    sourceName: source.ref.name,
    selector: source.podLabels,
  });
  const accessPolicy = new RsyncAccessPolicy("rsync-access", {
    namespace: source.ref.namespace,
    sourceName: source.ref.name,
    sourcePodLabels: source.podLabels,
    ingress: rsyncIngressRules(
      isolatedForIngress(policies, source.podLabels),
      target.ref.namespace,
      target.podLabels,
    ),
  });
  const daemon = new SourceRsyncDaemon(
    "source-rsync-daemon",
    {
      source,
      image: cfg.sidecarImage,
      secretName: credentials.sourceSecretName,
      rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
    },
    { dependsOn: [accessPolicy] },
  );

  // Step 2 (seed): the target's rsync client.
  const client = new TargetRsyncClient("target-rsync-client", {
    target,
    image: cfg.sidecarImage,
    secretName: credentials.targetSecretName,
    rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
  });

  return {
    phase: cfg.phase,
    source: {
      workload: `${source.ref.kind} ${source.ref.namespace}/${source.ref.name}`,
      dataPath: source.dataPath,
      volume: source.volume,
    },
    target: {
      workload: `${target.ref.kind} ${target.ref.namespace}/${target.ref.name}`,
      dataPath: target.dataPath,
      volume: target.volume,
    },
    rsyncService: service.name,
    rsyncUrl: service.moduleUrl,
    sidecars: { source: daemon.container, target: client.container },
  };
}

// Configuration mistakes are reported as one clear line, not a stack trace.
export = async () => {
  try {
    return await program();
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
};
