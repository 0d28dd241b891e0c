// prometheus-tsdb-migration: the seed's manual procedure, one component per step.
// `phase` in the stack config says how far to go; removing it reverts every change.

import * as pulumi from "@pulumi/pulumi";
import { isolatedForIngress, rsyncIngressRules } from "./components/decisions/access";
import { AdminApiSwitch } from "./components/steps/adminApiSwitch";
import { BlockCopy } from "./components/steps/blockCopy";
import { BlockInstall } from "./components/steps/blockInstall";
import { headRange } from "./components/decisions/sidecarOutput";
import { CompactionWait } from "./components/steps/compactionWait";
import {
  ConfigError,
  MigrationConfig,
  parseConfig,
  RawConfig,
} from "./components/decisions/config";
import { decideGap, restartRisk } from "./components/decisions/gap";
import { probe, readNetworkPolicies, readWorkload } from "./components/cluster/clusterReads";
import { MigrationVerification } from "./components/steps/migrationVerification";
import {
  RSYNC_MODULE,
  RSYNC_SERVICE_PORT,
  RSYNC_USER,
  snapshotName,
} from "./components/cluster/naming";
import { BlockMeta, planMigration } from "./components/decisions/plan";
import {
  describePlan,
  headAsBlock,
  planInput,
  summarizePlan,
} from "./components/decisions/planInput";
import { RsyncAccessPolicy } from "./components/steps/rsyncAccessPolicy";
import { RsyncCredentials } from "./components/steps/rsyncCredentials";
import { RsyncService } from "./components/steps/rsyncService";
import { SourceRsyncDaemon } from "./components/steps/sourceRsyncDaemon";
import { SourceSnapshot } from "./components/steps/sourceSnapshot";
import { TargetRsyncClient } from "./components/steps/targetRsyncClient";
import { windowsToCompare } from "./components/decisions/verify";
import {
  checkDistinctPods,
  locateTsdb,
  preflight,
  TARGET_SIDECAR,
  TsdbLocation,
} from "./components/decisions/workload";

function readConfig(): MigrationConfig {
  const c = new pulumi.Config();
  const raw: RawConfig = {
    phase: c.get("phase"),
    source: c.getObject<unknown>("source"),
    target: c.getObject<unknown>("target"),
    sidecarImage: c.get("sidecarImage"),
    sidecarImagePullPolicy: c.get("sidecarImagePullPolicy"),
    bandwidthLimit: c.get("bandwidthLimit"),
    includeHead: c.getBoolean("includeHead"),
    maxWaitMinutes: c.getNumber("maxWaitMinutes"),
    acceptGap: c.getBoolean("acceptGap"),
    rolloutTimeoutSeconds: c.getNumber("rolloutTimeoutSeconds"),
    forceRevert: c.getBoolean("forceRevert"),
  };
  return parseConfig(raw);
}

async function program(): Promise<Record<string, unknown>> {
  // Configuration, validated before anything changes.
  const cfg = readConfig();
  if (cfg.phase === "revert") {
    // Nothing declared: every Secret, Service, policy, patch and step of earlier phases is
    // deleted, and deleting the patches hands the pod templates back exactly as they were.
    // Removing the target's sidecar restarts it, so first make sure that loses nothing.
    await checkTargetRestartIsSafe(cfg);
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
  if (cfg.includeHead && !source.adminApi && !source.hasArgs) {
    throw new ConfigError(
      "includeHead",
      `the source container has no args (its image's default command line is in use), so the ` +
        `admin API can't be switched on without replacing it; add --web.enable-admin-api yourself`,
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
      imagePullPolicy: cfg.sidecarImagePullPolicy,
      secretName: credentials.sourceSecretName,
      rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
    },
    { dependsOn: [accessPolicy] },
  );

  // A head snapshot needs the admin API: switched on here, and off exactly at the revert.
  const adminApi = cfg.includeHead
    ? new AdminApiSwitch(
        "source-admin-api",
        { source, rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds },
        { dependsOn: [daemon.patch] },
      )
    : undefined;

  // Step 2 (seed): the target's rsync client.
  const client = new TargetRsyncClient("target-rsync-client", {
    target,
    image: cfg.sidecarImage,
    imagePullPolicy: cfg.sidecarImagePullPolicy,
    secretName: credentials.targetSecretName,
    rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
  });

  const prepared = {
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
  if (cfg.phase !== "migrate") return prepared;

  // Step 3 (seed): plan from what both servers hold now, in sync with the compaction cycle.
  const snapshot = snapshotName();
  const [sourceProbe, targetProbe] = await Promise.all([
    probe(source.ref, daemon.container, snapshot),
    probe(target.ref, client.container, snapshot),
  ]);
  if (!sourceProbe || !targetProbe) {
    return {
      ...prepared,
      plan: "the sidecars are not running yet: run `pulumi up` again once they are to plan and copy",
    };
  }
  const snapshotTaken = sourceProbe.snapshotBlocks.length > 0;
  const planFor = (sourceBlocks: BlockMeta[]) =>
    planMigration(planInput(sourceBlocks, sourceProbe, targetProbe, cfg.includeHead));
  const basis = snapshotTaken
    ? sourceProbe.snapshotBlocks
    : [...sourceProbe.blocks, ...(cfg.includeHead ? headAsBlock(sourceProbe) : [])];
  const plan = planFor(basis);
  const targetProbeEarliest = planInput(
    basis,
    sourceProbe,
    targetProbe,
    cfg.includeHead,
  ).targetEarliestMs;
  // Once the snapshot exists the decision was made; later runs only report and verify.
  const decision = snapshotTaken
    ? ({ action: "go", message: "snapshot already taken" } as const)
    : decideGap(plan, cfg, targetProbe.nowMs);
  if (decision.action === "fail") throw new ConfigError(decision.key, decision.message);
  pulumi.log.info(`plan: ${describePlan(plan)}; ${decision.message}`);

  const wait = new CompactionWait(
    "compaction-wait",
    {
      source,
      container: daemon.container,
      untilMs: decision.action === "wait" ? (plan.nextBlockEndMs ?? 0) : 0,
      maxWaitMinutes: cfg.maxWaitMinutes,
    },
    { dependsOn: [daemon.patch] },
  );

  // Step 4 (seed): snapshot, copy, and install without a restart.
  const snap = new SourceSnapshot(
    "source-snapshot",
    { source, container: daemon.container, snapshot, includeHead: cfg.includeHead },
    { dependsOn: [daemon.patch, wait, ...(adminApi ? [adminApi] : [])] },
  );
  const finalPlan = snap.result.apply((s) => planFor(s.blocks));
  const copy = new BlockCopy(
    "block-copy",
    {
      target,
      container: client.container,
      snapshotUrl: pulumi.interpolate`rsync://${RSYNC_USER}@${service.clusterIP}:${RSYNC_SERVICE_PORT}/${RSYNC_MODULE}/snapshots/${snapshot}`,
      blocks: finalPlan.apply((p) => p.blocks.map((b) => b.ulid)),
      bandwidthLimit: cfg.bandwidthLimit,
    },
    { dependsOn: [client.patch, service, accessPolicy] },
  );
  const install = new BlockInstall(
    "block-install",
    {
      target,
      container: client.container,
      blocks: copy.result.apply((r) => [...r.copied, ...r.skipped]),
    },
    { dependsOn: [copy] },
  );

  // Step 5 (seed): prove it, instead of reading logs.
  const verification = new MigrationVerification("verification", {
    source,
    sourceContainer: daemon.container,
    target,
    targetContainer: client.container,
    windowEnds: finalPlan.apply((p) =>
      windowsToCompare(p, { targetEarliestMs: targetProbeEarliest }),
    ),
    targetEarliestMs: targetProbeEarliest,
    loadedDownToMs: finalPlan.apply((p) => Math.min(...p.blocks.map((b) => b.minTime))),
    after: [install.step],
  });

  return {
    ...prepared,
    plan: summarizePlan(plan),
    migration: {
      snapshot,
      plan: finalPlan.apply(summarizePlan),
      copy: copy.result,
      install: install.result,
      verification: verification.result,
    },
  };
}

/** Refuses a revert that would restart the target while its head holds samples older than an imported block. */
async function checkTargetRestartIsSafe(cfg: MigrationConfig): Promise<void> {
  const live = await readWorkload(cfg.target);
  const hasSidecar = live?.spec?.template?.spec?.containers?.some((c) => c.name === TARGET_SIDECAR);
  if (!hasSidecar || cfg.forceRevert) return;
  const state = await probe(cfg.target, TARGET_SIDECAR, snapshotName());
  if (!state) return; // the sidecar isn't running: its pod is restarting anyway
  const risk = restartRisk(state.blocks, headRange(state.tsdb));
  if (!risk) return;
  const iso = (ms: number) => new Date(ms).toISOString();
  throw new ConfigError(
    "phase",
    `reverting now removes the target's sidecar and so restarts it, which would drop its own samples ` +
      `from ${iso(risk.lossFromMs)} to ${iso(risk.lossToMs)} (older than the newest imported block, not yet ` +
      `compacted). Revert after ${iso(risk.safeAfterMs)}, when its next compaction has persisted them, ` +
      `or set forceRevert to true to accept the loss`,
  );
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
