// The whole migration as one component: the seed's manual procedure (Bitnami BKPR's
// Prometheus migration guide), one child component per step, in the order the guide gives.
// `phase` says how far to go; leaving it unset reverts every change.

import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  findPatched,
  probe,
  readNetworkPolicies,
  readServer,
  readWorkload,
} from "./cluster/clusterReads";
import { readPodsWorkload } from "./cluster/prometheusReads";
import { EphemeralSide, ephemeralSide, preflightEphemeral } from "./cluster/ephemeralSidecar";
import { headInEphemeral } from "./decisions/ephemeralSidecar";
import { podLocations, rsyncSelector } from "./decisions/prometheusResource";
import { RSYNC_MODULE, RSYNC_SERVICE_PORT, RSYNC_USER, snapshotName } from "./cluster/naming";
import { isolatedForIngress, rsyncIngressRules } from "./decisions/access";
import {
  ConfigError,
  MigrationArgs,
  MigrationConfig,
  parseConfig,
  WorkloadArgs,
  WorkloadRef,
} from "./decisions/config";
import { StepError } from "./decisions/errors";
import { decideGap } from "./decisions/gap";
import { snapshotUse } from "./decisions/snapshotUse";
import { decideHeadSnapshotSpace } from "./decisions/headSnapshotSpace";
import { planMigration } from "./decisions/plan";
import { describePlan, headAsBlock, planInput, summarizePlan } from "./decisions/planInput";
import { restartRisk } from "./decisions/restartRisk";
import { BlockMeta, ProbeResult } from "./decisions/sidecarOutput";
import { iso } from "./decisions/time";
import { headRange } from "./decisions/tsdb";
import { expectedBlocks, windowsToCompare } from "./decisions/verify";
import {
  checkDistinctPods,
  locateTsdb,
  preflight,
  SOURCE_SIDECAR,
  TARGET_SIDECAR,
  TsdbLocation,
  WorkloadObject,
} from "./decisions/workload";
import { AdminApiSwitch } from "./steps/adminApiSwitch";
import { PrometheusAdminApiSwitch } from "./steps/prometheusAdminApiSwitch";
import { BlockCopy } from "./steps/blockCopy";
import { BlockInstall } from "./steps/blockInstall";
import { CompactionWait } from "./steps/compactionWait";
import { MigrationVerification } from "./steps/migrationVerification";
import { RsyncAccessPolicy } from "./steps/rsyncAccessPolicy";
import { RsyncCredentials } from "./steps/rsyncCredentials";
import { RsyncService } from "./steps/rsyncService";
import { SourceRsyncDaemon } from "./steps/sourceRsyncDaemon";
import { SourceSnapshot } from "./steps/sourceSnapshot";
import { TargetRestartGuard } from "./steps/targetRestartGuard";
import { workloadArg } from "./cluster/kubectl";
import { TargetRsyncClient } from "./steps/targetRsyncClient";

/** Arguments of {@link PrometheusTsdbMigration}: the stack config's keys, typed and documented. */
export type PrometheusTsdbMigrationArgs = MigrationArgs;
/** The source or target of a {@link PrometheusTsdbMigration}. */
export type PrometheusWorkloadArgs = WorkloadArgs;

/** What the migration did, as stack outputs: plain values and Outputs of the steps. */
export type MigrationOutputs = Record<string, unknown>;

// The steps were top-level resources before this component existed: keep their URNs.
const WERE_TOP_LEVEL: pulumi.Alias[] = [{ parent: pulumi.rootStackResource }];

/**
 * Moves the TSDB of a running Prometheus into a new Prometheus, with no downtime for the old
 * one: an rsync daemon sidecar on the source, an rsync client sidecar on the target, a
 * snapshot timed to the compaction cycle, a resumable copy, a restart-free install and a
 * verification of the counts. The live workloads are read first (at preview too), so the
 * children are declared asynchronously; `outputs` resolves once they are.
 */
export class PrometheusTsdbMigration extends pulumi.ComponentResource {
  /** What happened: phase, workloads, plan, copy, install, verification. Rejects on bad input. */
  public readonly outputs: Promise<MigrationOutputs>;

  constructor(
    name: string,
    args: PrometheusTsdbMigrationArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("ptm:index:PrometheusTsdbMigration", name, {}, opts);
    this.outputs = this.declare(args).catch((e: unknown) => {
      // A configuration mistake names the key, a failed step says what it saw and what to
      // do: one clear line each, not a stack trace.
      if (e instanceof ConfigError || e instanceof StepError) throw new pulumi.RunError(e.message);
      throw e;
    });
    this.registerOutputs();
  }

  private async declare(args: PrometheusTsdbMigrationArgs): Promise<MigrationOutputs> {
    // Configuration, validated before anything changes.
    let cfg = parseConfig({ ...args, phase: args.phase ?? "" });
    if (cfg.phase === "revert") {
      // Nothing declared: every Secret, Service, policy, patch and step of earlier phases is
      // deleted, and deleting the patches hands the pod templates back exactly as they were.
      // Removing the target's sidecar restarts it, so first make sure that loses nothing.
      const guarded = await checkTargetRestartIsSafe(cfg);
      // The destroy guard stays, told that this check was made: its delete won't repeat it.
      new TargetRestartGuard(
        "target-restart-guard",
        {
          target: guarded,
          pods: [workloadArg(guarded)],
          dataPath: "",
          url: "",
          sidecar: TARGET_SIDECAR,
          force: true,
          guards: [],
        },
        { parent: this },
      );
      return { phase: "reverted" };
    }
    // One cluster for the patches and for every kubectl: the provider gets the same
    // kubeconfig and context as the command lines (kubectl.ts).
    const provider = cfg.cluster
      ? new k8s.Provider(
          "cluster",
          { kubeconfig: cfg.cluster.kubeconfig, context: cfg.cluster.context },
          { parent: this },
        )
      : undefined;
    const child: pulumi.ComponentResourceOptions = {
      parent: this,
      aliases: WERE_TOP_LEVEL,
      ...(provider ? { providers: { kubernetes: provider } } : {}),
    };

    // The live workloads, and where their TSDBs are.
    const located = await locateWorkloads(cfg);
    // sidecarMode ephemeral: the sidecars go into the running pods, and every step runs in
    // exactly those pods, seeing the TSDB below the volume root the sidecar mounts.
    const sides = cfg.sidecarMode === "ephemeral" ? await ephemeralSides(cfg, located) : undefined;
    const { source, target } = sides
      ? { source: sides.source.loc, target: sides.target.loc }
      : located;
    if (sides) {
      const head = headInEphemeral(cfg.includeHead, source.adminApi);
      // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
      if (head.message) void pulumi.log.info(head.message, this);
      cfg = { ...cfg, includeHead: head.includeHead };
    }
    const policies = await readNetworkPolicies(source.ref.namespace, cfg.cluster);

    // Step 1 (seed): the source's rsync daemon, reachable only by the target, with a fresh password.
    const credentials = new RsyncCredentials(
      "rsync-credentials",
      { sourceNamespace: source.ref.namespace, targetNamespace: target.ref.namespace },
      child,
    );
    const service = new RsyncService(
      "rsync-service",
      {
        namespace: source.ref.namespace,
        sourceName: source.ref.name,
        // The source replica read, when there are several (all run the daemon).
        selector: rsyncSelector(source),
      },
      child,
    );
    const accessPolicy = new RsyncAccessPolicy(
      "rsync-access",
      {
        namespace: source.ref.namespace,
        sourceName: source.ref.name,
        sourcePodLabels: source.podLabels,
        ingress: rsyncIngressRules(
          isolatedForIngress(policies, source.podLabels),
          target.ref.namespace,
          target.podLabels,
        ),
      },
      child,
    );
    const daemon = new SourceRsyncDaemon(
      "source-rsync-daemon",
      {
        source,
        image: cfg.sidecarImage,
        imagePullPolicy: cfg.sidecarImagePullPolicy,
        resources: cfg.sidecarResources,
        imagePullSecrets: cfg.imagePullSecrets,
        secretName: credentials.sourceSecretName,
        migrationId: credentials.migrationId,
        rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
        ephemeral: sides?.source,
      },
      { ...child, dependsOn: [accessPolicy] },
    );

    // A head snapshot needs the admin API: switched on here, and off exactly at the revert.
    // A `Prometheus` resource through its spec.enableAdminAPI (the operator owns the args).
    const adminApiArgs = { source, rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds };
    const adminApiOpts = { ...child, dependsOn: [daemon.ready] };
    // sidecarMode ephemeral: never (a restart); the head is only snapshotted when it is on already.
    const switchAdminApi = () =>
      !cfg.includeHead || sides
        ? undefined
        : source.ref.kind === "Prometheus"
          ? new PrometheusAdminApiSwitch("source-admin-api", adminApiArgs, adminApiOpts)
          : new AdminApiSwitch("source-admin-api", adminApiArgs, adminApiOpts);

    // Step 2 (seed): the target's rsync client.
    const client = new TargetRsyncClient(
      "target-rsync-client",
      {
        target,
        image: cfg.sidecarImage,
        imagePullPolicy: cfg.sidecarImagePullPolicy,
        resources: cfg.sidecarResources,
        imagePullSecrets: cfg.imagePullSecrets,
        secretName: credentials.targetSecretName,
        rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
        ephemeral: sides?.target,
      },
      child,
    );

    const prepared = {
      phase: cfg.phase,
      source: describeLocation(located.source),
      target: describeLocation(located.target),
      rsyncService: service.name,
      rsyncUrl: service.moduleUrl,
      sidecars: { source: daemon.container, target: client.container },
      sidecarMode: cfg.sidecarMode,
      ...(sides ? { ephemeral: describeEphemeral(sides) } : {}),
    };
    // Step 6 (seed), at `pulumi destroy`: before any sidecar goes, check the target's restart.
    const guardTargetRestart = (guards: pulumi.Resource[]) =>
      new TargetRestartGuard(
        "target-restart-guard",
        {
          // The template that carries the sidecar, and every pod that restarts with it.
          target: { ...(target.workload ?? target.ref), access: target.ref.access },
          pods: podLocations(target).map((t) => workloadArg(t.ref)),
          dataPath: target.dataPath,
          url: target.url,
          sidecar: client.container,
          force: cfg.forceRevert,
          guards,
        },
        { parent: this },
      );
    const prepareSteps: pulumi.Resource[] = [credentials, service, accessPolicy, daemon, client];
    if (cfg.phase !== "migrate") {
      const adminApi = switchAdminApi();
      if (adminApi) prepareSteps.push(adminApi);
      guardTargetRestart(prepareSteps);
      return prepared;
    }

    // Step 3 (seed): plan from what both servers hold now, in sync with the compaction cycle.
    const snapshot = snapshotName();
    // The exec steps run in pods: the source replica read, and every replica of the target
    // (one each for workloads other than a `Prometheus` resource, in a pod kubectl picks).
    const sourceAt = podLocations(source)[0];
    const targetsAt = podLocations(target);
    // Whether the sidecars run: in the pod templates, or (ephemeral) in the pods themselves.
    const [sourceRuns, targetRuns] = sides
      ? [sides.source.running, sides.target.running]
      : [
          source.containers.includes(daemon.container),
          target.containers.includes(client.container),
        ];
    const [sourceProbe, ...targetProbes] = await Promise.all([
      probe(sourceAt.ref, daemon.container, snapshot, sourceRuns),
      ...targetsAt.map((t) => probe(t.ref, client.container, snapshot, targetRuns)),
    ]);
    // Declared once the probes are done: switching the admin API on replaces the source pod,
    // and a probe still reading it dies with it (at 2,050 blocks, exit 137 in the lab).
    const adminApi = switchAdminApi();
    if (adminApi) prepareSteps.push(adminApi);
    if (!sourceProbe || targetProbes.some((p) => !p)) {
      return {
        ...prepared,
        plan: "the sidecars are not running yet: run `pulumi up` again once they are to plan and copy",
      };
    }
    // Only this migration's own snapshot is used as it is: sidecar/snapshot.sh records who
    // made one, so a leftover never skips the gap gate.
    const use = snapshotUse(
      sourceProbe.snapshotOwner ?? (sourceProbe.snapshotBlocks.length > 0 ? "other" : "none"),
      `${source.dataPath}/snapshots/${snapshot}`,
    );
    if (use.action === "refuse") throw new StepError("source snapshot", use.message);
    // void: as pulumi.log.info above.
    if (use.action === "replace") void pulumi.log.warn(use.message, this);
    const snapshotTaken = use.action === "resume";
    if (cfg.includeHead && !snapshotTaken) {
      // The head block is written onto the source's own volume: a full volume stops Prometheus.
      const space = decideHeadSnapshotSpace(
        sourceProbe.tsdb,
        sourceProbe.blocks,
        sourceProbe.dfAvailableBytes,
      );
      if (!space.ok) {
        throw new ConfigError(
          "includeHead",
          `${space.message}. Free space on the source volume, or set includeHead to false`,
        );
      }
    }
    const inputFor = (sourceBlocks: BlockMeta[], targetProbe: ProbeResult) =>
      planInput(sourceBlocks, sourceProbe, targetProbe, cfg.includeHead);
    const basis = snapshotTaken ? sourceProbe.snapshotBlocks : blocksToSnapshot(sourceProbe, cfg);
    // One plan per target replica (each has its own TSDB); the decision follows the one with
    // the largest gap.
    const inputs = targetProbes.map((t) => inputFor(basis, t!));
    const plans = inputs.map(planMigration);
    const worst = plans.reduce((w, p, i) => (p.gapMs > plans[w].gapMs ? i : w), 0);
    const [plan, targetProbe] = [plans[worst], targetProbes[worst]!];
    // The version gate: blocks the target can't read would fail its whole reload.
    if (!plan.formats.ok) throw new ConfigError("target", plan.formats.message);
    // Once the snapshot exists the decision was made; later runs only report and verify.
    const decision = snapshotTaken
      ? ({ action: "go", message: "snapshot already taken" } as const)
      : decideGap(plan, cfg, targetProbe.nowMs);
    if (decision.action === "fail") throw new ConfigError(decision.key, decision.message);
    void pulumi.log.info(`plan: ${describePlan(plan)}; ${decision.message}`); // void: as above

    const wait = new CompactionWait(
      "compaction-wait",
      {
        source: sourceAt,
        container: daemon.container,
        untilMs: decision.action === "wait" ? decision.blockEndMs : 0,
        maxWaitMinutes: cfg.maxWaitMinutes,
      },
      // After the admin API's rollout too: it replaces the pod this runs in (exit 137).
      { ...child, dependsOn: [daemon.ready, ...(adminApi ? [adminApi] : [])] },
    );

    // Step 4 (seed): snapshot, copy, and install without a restart.
    const snap = new SourceSnapshot(
      "source-snapshot",
      { source: sourceAt, container: daemon.container, snapshot, includeHead: cfg.includeHead },
      { ...child, dependsOn: [daemon.ready, wait, ...(adminApi ? [adminApi] : [])] },
    );
    const snapshotUrl = pulumi.interpolate`rsync://${RSYNC_USER}@${service.clusterIP}:${RSYNC_SERVICE_PORT}/${RSYNC_MODULE}/snapshots/${snapshot}`;
    // Copy, install and verify in every target replica, each against its own plan.
    const replicas = targetsAt.map((targetAt, i) => {
      // By ordinal: names derived from these (a verification record's ConfigMap) are cut to
      // 63 characters, and two long pod names would collide there.
      const suffix =
        targetsAt.length > 1
          ? `-replica-${targetAt.ref.pod!.slice(target.workload!.name.length + 1)}`
          : "";
      const finalPlan = snap.blocks.apply((blocks) => {
        const p = planMigration(inputFor(blocks, targetProbes[i]!));
        // The snapshot's own blocks (and its head block) pass the same gate before any copy.
        if (!p.formats.ok) throw new StepError("plan", `${p.formats.message}; nothing was copied`);
        return p;
      });
      const planned = finalPlan.apply((p) => p.blocks.map((b) => b.ulid));
      const copy = new BlockCopy(
        `block-copy${suffix}`,
        {
          target: targetAt,
          container: client.container,
          snapshotUrl,
          blocks: planned,
          bandwidthLimit: cfg.bandwidthLimit,
          streams: cfg.copyStreams,
        },
        { ...child, dependsOn: [client.ready, service, accessPolicy] },
      );
      const install = new BlockInstall(
        `block-install${suffix}`,
        {
          target: targetAt,
          container: client.container,
          // The copy stages every planned block or fails: once it has, install them all.
          blocks: pulumi.all([copy.result, planned]).apply(([, ulids]) => ulids),
        },
        { ...child, dependsOn: [copy] },
      );

      // Step 5 (seed): prove it, instead of reading logs.
      const earliest = inputs[i].targetEarliestMs;
      const verification = new MigrationVerification(
        `verification${suffix}`,
        {
          source: sourceAt,
          sourceContainer: daemon.container,
          target: targetAt,
          targetContainer: client.container,
          windowEnds: finalPlan.apply((p) =>
            windowsToCompare(p, { targetEarliestMs: earliest, maxWindows: cfg.verifyWindows }),
          ),
          targetEarliestMs: earliest,
          loadedDownToMs: finalPlan.apply((p) => Math.min(...p.blocks.map((b) => b.minTime))),
          blocks: finalPlan.apply((p) => expectedBlocks(p.blocks)),
          gapMs: finalPlan.apply((p) => p.gapMs),
          after: [install.step],
        },
        child,
      );
      return { pod: targetAt.ref.pod, finalPlan, copy, install, verification };
    });
    const { finalPlan, copy, install, verification } = replicas[0];
    guardTargetRestart([
      ...prepareSteps,
      wait,
      snap,
      ...replicas.flatMap((r) => [r.copy, r.install, r.verification]),
    ]);

    return {
      ...prepared,
      plan: summarizePlan(plan),
      migration: {
        snapshot,
        plan: finalPlan.apply(summarizePlan),
        copy: copy.result,
        install: install.result,
        verification: verification.result,
        // A `Prometheus` target with several replicas: each replica's own.
        ...(replicas.length > 1
          ? {
              replicas: replicas.map((r) => ({
                pod: r.pod,
                plan: r.finalPlan.apply(summarizePlan),
                copy: r.copy.result,
                install: r.install.result,
                verification: r.verification.result,
              })),
            }
          : {}),
      },
    };
  }
}

/** Reads both workloads and checks that a migration between them can work. */
async function locateWorkloads(
  cfg: MigrationConfig,
): Promise<{ source: TsdbLocation; target: TsdbLocation }> {
  // A `Prometheus` resource is located in the StatefulSet its operator generated.
  const [sourceRead, targetRead] = await Promise.all([
    readPodsWorkload("source", cfg.source),
    readPodsWorkload("target", cfg.target),
  ]);
  const [sourceObj, targetObj] = [sourceRead.object, targetRead.object];
  // What the running servers say about themselves (at preview too); the spec when they can't.
  const [sourceServer, targetServer] = await Promise.all([
    readServer(sourceRead.ref, sourceObj),
    readServer(targetRead.ref, targetObj),
  ]);
  const source = sourceRead.tie(locateTsdb("source", sourceRead.ref, sourceObj, sourceServer));
  const target = targetRead.tie(locateTsdb("target", targetRead.ref, targetObj, targetServer));
  for (const [key, loc] of [
    ["source", source],
    ["target", target],
  ] as const) {
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    void pulumi.log.info(`${key}: ${discoveryLine(loc)}`);
  }
  // The rollout checks: sidecarMode ephemeral rolls nothing out.
  if (cfg.sidecarMode === "patch") {
    preflight("source", source, sourceObj!);
    preflight("target", target, targetObj!);
  }
  checkDistinctPods(source, target);
  if (cfg.sidecarMode === "patch" && cfg.includeHead && !source.adminApi && !source.hasArgs) {
    throw new ConfigError(
      "includeHead",
      `the source container has no args (its image's default command line is in use), so the ` +
        `admin API can't be switched on without replacing it; add --web.enable-admin-api yourself`,
    );
  }
  return { source, target };
}

/**
 * sidecarMode ephemeral, checked at preview: the cluster can add ephemeral containers and we
 * may; then the pods each sidecar goes into, and its name there.
 */
async function ephemeralSides(
  cfg: MigrationConfig,
  located: { source: TsdbLocation; target: TsdbLocation },
): Promise<{ source: EphemeralSide; target: EphemeralSide }> {
  for (const [key, loc, sidecar] of [
    ["source", located.source, SOURCE_SIDECAR],
    ["target", located.target, TARGET_SIDECAR],
  ] as const) {
    // Switching modes mid-migration would remove the patch, and so restart the pod.
    if (loc.containers.includes(sidecar)) {
      throw new ConfigError(
        "sidecarMode",
        `the ${key}'s pod template still has the sidecar ${sidecar} of sidecarMode patch; finish ` +
          `the migration in patch mode, or revert it first (remove the phase key and run pulumi up)`,
      );
    }
  }
  const version = await preflightEphemeral(cfg.cluster, [
    located.source.ref.namespace,
    located.target.ref.namespace,
  ]);
  const [source, target] = await Promise.all([
    ephemeralSide("source", located.source, SOURCE_SIDECAR),
    ephemeralSide("target", located.target, TARGET_SIDECAR),
  ]);
  const where = (s: EphemeralSide) =>
    s.pods.map((p) => `${p.name}`).join(", ") +
    ` (container ${s.container}, TSDB ${s.loc.dataPath})`;
  // void: as in locateWorkloads.
  void pulumi.log.info(
    `sidecarMode ephemeral (Kubernetes ${version}): the sidecars are added to the running pods as ` +
      `ephemeral containers, no pod restarts and neither pod template changes: source pod ` +
      `${where(source)}, target pod ${where(target)}. The revert stops their processes; an ` +
      `ephemeral container can't be removed, so its stopped entry stays in the pod's status until ` +
      `the pod is replaced`,
  );
  return { source, target };
}

function describeEphemeral(sides: { source: EphemeralSide; target: EphemeralSide }) {
  const one = (s: EphemeralSide) => ({
    pods: s.pods.map((p) => ({ name: p.name, uid: p.uid })),
    container: s.container,
    dataPath: s.loc.dataPath,
  });
  return {
    source: one(sides.source),
    target: one(sides.target),
    note:
      "no pod restarts; the revert stops the sidecars' processes, and their stopped entries stay " +
      "in the pods' status until the pods are replaced",
  };
}

/** Before the snapshot exists: the blocks it will hold (with the head when includeHead). */
function blocksToSnapshot(source: ProbeResult, cfg: MigrationConfig): BlockMeta[] {
  return [...source.blocks, ...(cfg.includeHead ? headAsBlock(source) : [])];
}

const describeRef = (ref: WorkloadRef) => `${ref.kind} ${ref.namespace}/${ref.name}`;

function describeLocation(loc: TsdbLocation) {
  return {
    workload: describeRef(loc.ref),
    dataPath: loc.dataPath,
    volume: loc.volume,
    ...(loc.subPath ? { subPath: loc.subPath } : {}),
    url: loc.url,
    adminApi: loc.adminApi,
    version: loc.version ?? "unknown",
    storage: loc.storage,
    server: loc.server.reached ? `asked pod ${loc.server.pod}` : `not reached: ${loc.server.why}`,
    // Where each value came from: a config key, the running server, or the container spec.
    sources: loc.sources,
  };
}

/** One line for the preview: what was found, and where each value came from. */
function discoveryLine(loc: TsdbLocation): string {
  const s = loc.sources;
  const sub = loc.subPath ? ` subPath ${loc.subPath}` : "";
  return (
    `${describeRef(loc.ref)}: TSDB ${loc.dataPath} [${s.dataPath}] on volume ${loc.volume}${sub} ` +
    `[${s.volume}]; API ${loc.url} [${s.url}]; admin API ${loc.adminApi ? "on" : "off"} ` +
    `[${s.adminApi}]; version ${loc.version ?? "unknown"} [${s.version}]` +
    (loc.server.reached ? "" : `; server not reached: ${loc.server.why}`)
  );
}

/** probe.sh run in the target's Prometheus container, told where the TSDB and the API are. */
async function probeThroughPrometheus(
  target: WorkloadRef,
  live: WorkloadObject,
  cfg: MigrationConfig,
): Promise<ProbeResult | undefined> {
  const same = target.namespace === cfg.target.namespace && target.name === cfg.target.name;
  const own = (live.spec?.template?.spec?.containers ?? []).find(
    (c) => c.name !== TARGET_SIDECAR && c.name !== SOURCE_SIDECAR,
  );
  const container = same ? cfg.target.container : own?.name;
  if (!container) return undefined;
  const ref = { ...cfg.target, ...target, container };
  const loc = locateTsdb("target", ref, live, await readServer(ref, live));
  return probe(target, container, snapshotName(), true, {
    PTM_DATA: loc.dataPath,
    PTM_PROM_URL: loc.url,
  });
}

/**
 * Refuses a revert that would restart the target while its head holds samples older than an
 * imported block, and one whose check could not look (forceRevert skips both).
 */
async function checkTargetRestartIsSafe(cfg: MigrationConfig): Promise<WorkloadRef> {
  // The workload the stack really patched, as its label says: the target config may be gone.
  const patched = await findPatched("target", cfg.cluster);
  if (patched.length > 1 && !cfg.forceRevert) {
    throw new ConfigError(
      "phase",
      `several workloads carry this stack's target label (${patched.map(describeRef).join(", ")}); ` +
        `remove the label from those it did not patch, or set forceRevert to true`,
    );
  }
  const target = patched[0] ?? cfg.target;
  const live = await readWorkload(target);
  const hasSidecar = live?.spec?.template?.spec?.containers?.some((c) => c.name === TARGET_SIDECAR);
  if (!hasSidecar || cfg.forceRevert) return target;
  const cantCheck = (why: string) =>
    new ConfigError(
      "phase",
      `reverting removes the target's sidecar and so restarts it, and whether that drops any of its ` +
        `own samples can't be checked now: ${why}. Fix that and run again, or set forceRevert ` +
        `to true to revert without the check`,
    );
  let state: ProbeResult | undefined;
  try {
    state = await probe(target, TARGET_SIDECAR, snapshotName(), true);
  } catch (e) {
    if (!(e instanceof StepError)) throw e;
    // The sidecar may never have started (an image that can't be pulled, a crash loop): look
    // through the Prometheus container instead, which sees the same volume.
    state = await probeThroughPrometheus(target, live!, cfg).catch(() => undefined);
    if (!state) throw cantCheck(e.message);
  }
  // Without the head's range the risk can't be computed: that is not a "no".
  if (state!.tsdb === null) {
    throw cantCheck(
      `the target's Prometheus did not answer /api/v1/status/tsdb (${describeRef(target)})`,
    );
  }
  const risk = restartRisk(state!.blocks, headRange(state!.tsdb));
  if (!risk) return target;
  throw new ConfigError(
    "phase",
    `reverting now removes the target's sidecar and so restarts it, which would drop its own samples ` +
      `from ${iso(risk.lossFromMs)} to ${iso(risk.lossToMs)} (older than the newest imported block, not yet ` +
      `compacted). Revert after ${iso(risk.safeAfterMs)}, when its next compaction has persisted them, ` +
      `or set forceRevert to true to accept the loss (the target is ${describeRef(target)})`,
  );
}
