// The whole migration as one component: the seed's manual procedure (Bitnami BKPR's
// Prometheus migration guide), one child component per step, in the order the guide gives.
// `phase` says how far to go; leaving it unset reverts every change.

import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  findPatched,
  lookIntoTsdb,
  probe,
  readDecision,
  readNetworkPolicies,
  readServer,
  readWorkload,
} from "./cluster/clusterReads";
import { readPodsWorkload } from "./cluster/prometheusReads";
import { checkPermissions } from "./cluster/permissions";
import { EphemeralSide, ephemeralSide, preflightEphemeral } from "./cluster/ephemeralSidecar";
import { checkEphemeralImage, headInEphemeral } from "./decisions/ephemeralSidecar";
import { podLocations, rsyncSelector } from "./decisions/prometheusResource";
import {
  migrationLabels,
  MigrationNames,
  namesFor,
  RSYNC_CONTAINER_PORT,
  RSYNC_MODULE,
  RSYNC_PORT_NAME,
  RSYNC_SERVICE_PORT,
  RSYNC_USER,
} from "./cluster/naming";
import {
  egressToRsync,
  isolatedForIngress,
  rsyncEgressRuleText,
  rsyncIngressRules,
} from "./decisions/access";
import {
  autoStreamsMax,
  ConfigError,
  MigrationArgs,
  MigrationConfig,
  parseConfig,
  SidecarMode,
  WorkloadArgs,
  WorkloadRef,
} from "./decisions/config";
import { StepError } from "./decisions/errors";
import {
  DECISION_RECORD_COMPONENT,
  DECISION_RECORD_KEY,
  generationSuffix,
  NextRun,
  nextRun,
  recordedBlocks,
  ReplicaDecision,
  serializeDecision,
} from "./decisions/decisionRecord";
import { snapshotUse } from "./decisions/snapshotUse";
import { Plan } from "./decisions/plan";
import { describePlan, PlanSummary, summarizePlan } from "./decisions/planInput";
import { planEveryReplica, planForReplica, PlanSettings } from "./decisions/replicaPlans";
import {
  blocksToSnapshot,
  describePreview,
  PreviewReport,
  previewReport,
  withAdmission,
} from "./decisions/preview";
import { ReplicaProbe, replicaRefs, revertVerdict, revertWorkload } from "./decisions/revertCheck";
import { keepRunningSidecar } from "./decisions/sidecarChange";
import { checkSidecarChangeIsSafe } from "./cluster/sidecarChangeGuard";
import { BlockMeta, CopyResult, InstallResult, ProbeResult } from "./decisions/sidecarOutput";
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
import { MigrationVerification, VerificationResult } from "./steps/migrationVerification";
import { resourceError } from "./steps/failure";
import { RsyncAccessPolicy } from "./steps/rsyncAccessPolicy";
import { RsyncCredentials } from "./steps/rsyncCredentials";
import { RsyncService } from "./steps/rsyncService";
import { SourceRsyncDaemon } from "./steps/sourceRsyncDaemon";
import { SourceSnapshot } from "./steps/sourceSnapshot";
import { TargetRestartGuard } from "./steps/targetRestartGuard";
import { workloadArg } from "./cluster/kubectl";
import { checkAdmission } from "./cluster/admission";
import { TargetRsyncClient } from "./steps/targetRsyncClient";

/** Arguments of {@link PrometheusTsdbMigration}: the stack config's keys, typed and documented. */
export type PrometheusTsdbMigrationArgs = MigrationArgs;
/** The source or target of a {@link PrometheusTsdbMigration}. */
export type PrometheusWorkloadArgs = WorkloadArgs;

/** How far a run got: what the phase's steps really did. */
export type MigrationStatus =
  /** No phase: nothing is declared, so everything earlier phases added is deleted. */
  | "reverted"
  /** phase prepare: the sidecars, their Secrets, Service and NetworkPolicy; nothing copied. */
  | "prepared"
  /** phase migrate while the sidecars don't run yet: nothing planned or copied. */
  | "waiting-for-sidecars"
  /** phase migrate: snapshotted, copied, installed and verified in every target replica. */
  | "verified";

/** A source or target as the program found it. */
export interface WorkloadSummary {
  /** `<kind> <namespace>/<name>`. */
  workload: string;
  dataPath: string;
  volume: string;
  subPath?: string;
  url: string;
  adminApi: boolean;
  /** The server's version, or "unknown". */
  version: string;
  storage: Record<string, string>;
  /** "asked pod <name>", or "not reached: <why>". */
  server: string;
  /** Where each value came from: a config key, the running server, or the container spec. */
  sources: TsdbLocation["sources"];
}

/** sidecarMode ephemeral: the pods each sidecar went into. */
export interface EphemeralSideSummary {
  pods: { name: string; uid: string }[];
  container: string;
  dataPath: string;
}

export interface EphemeralSummary {
  source: EphemeralSideSummary;
  target: EphemeralSideSummary;
  note: string;
}

/** One target replica's copy, install and verification, against its own plan. */
export interface ReplicaResult {
  /** The replica's pod (a `Prometheus` target's); null when kubectl picks the pod. */
  pod: string | null;
  plan: PlanSummary;
  copy: CopyResult;
  install: InstallResult;
  verification: VerificationResult;
}

/** What phase migrate did. */
export interface MigrationResult {
  /** The snapshot's directory under <data>/snapshots on the source. */
  snapshot: string;
  /** The first target replica's (the only one, unless the target has several). */
  copy: CopyResult;
  install: InstallResult;
  verification: VerificationResult;
  /** Every replica's own, when the target has several; empty when it has one. */
  replicas: ReplicaResult[];
}

/** The migration's outputs: every key in every phase, null where the phase has no value. */
export interface MigrationOutputs {
  status: MigrationStatus;
  /** The phase run: "prepare", "migrate", or "reverted" when the phase is unset. */
  phase: "prepare" | "migrate" | "reverted";
  /** One line: what happened, and what to do next. */
  message: string;
  source: WorkloadSummary | null;
  target: WorkloadSummary | null;
  /** The rsync Service in front of the source's daemon, and the daemon's URL. */
  rsyncService: string | null;
  rsyncUrl: string | null;
  /** The sidecars' container names. */
  sidecars: { source: string; target: string } | null;
  sidecarMode: SidecarMode | null;
  ephemeral: EphemeralSummary | null;
  /**
   * The plan, decided from what both servers hold (at preview too; once the snapshot exists,
   * from its blocks), for the target replica with the largest gap. Null until both sidecars
   * run.
   */
  plan: PlanSummary | null;
  /**
   * Phase prepare (and a fresh stack's run without a phase): the preview's report, read
   * through each Prometheus container before any pod restarts: the plan, every gate with what
   * it compared, free space, the pod restarts of this mode, and what could not be checked.
   */
  preflight: PreviewReport | null;
  /** Snapshot, copy, install and verification; null before phase migrate has copied. */
  migration: MigrationResult | null;
}

/** Each output as the Output that the component exposes and the stack exports. */
export type MigrationOutputProperties = {
  readonly [K in keyof MigrationOutputs]: pulumi.Output<MigrationOutputs[K]>;
};

/** What {@link PrometheusTsdbMigration.declare} resolves to: each output, maybe not known yet. */
type Declared = { [K in keyof MigrationOutputs]: pulumi.Input<MigrationOutputs[K]> };

/** The outputs that a phase leaves without a value. */
const NONE = {
  source: null,
  target: null,
  rsyncService: null,
  rsyncUrl: null,
  sidecars: null,
  sidecarMode: null,
  ephemeral: null,
  plan: null,
  preflight: null,
  migration: null,
} as const;

/**
 * Moves the TSDB of a running Prometheus into a new Prometheus, with no downtime for the old
 * one: an rsync daemon sidecar on the source, an rsync client sidecar on the target, a
 * snapshot timed to the compaction cycle, a resumable copy, a restart-free install and a
 * verification of the counts. The live workloads are read first (at preview too), so the
 * children are declared asynchronously; the outputs resolve once they are, and reject, with
 * one line that names the key or the step, on bad input or a failed step.
 *
 * Children and the objects in the cluster are named after the component (`name`), so that
 * several migrations fit in one program; the name "migration" (index.ts) keeps the names
 * that stacks made before have.
 */
export class PrometheusTsdbMigration
  extends pulumi.ComponentResource
  implements MigrationOutputProperties
{
  public readonly status: pulumi.Output<MigrationStatus>;
  public readonly phase: pulumi.Output<MigrationOutputs["phase"]>;
  public readonly message: pulumi.Output<string>;
  public readonly source: pulumi.Output<WorkloadSummary | null>;
  public readonly target: pulumi.Output<WorkloadSummary | null>;
  public readonly rsyncService: pulumi.Output<string | null>;
  public readonly rsyncUrl: pulumi.Output<string | null>;
  public readonly sidecars: pulumi.Output<MigrationOutputs["sidecars"]>;
  public readonly sidecarMode: pulumi.Output<SidecarMode | null>;
  public readonly ephemeral: pulumi.Output<EphemeralSummary | null>;
  public readonly plan: pulumi.Output<PlanSummary | null>;
  public readonly preflight: pulumi.Output<PreviewReport | null>;
  public readonly migration: pulumi.Output<MigrationResult | null>;
  /**
   * Resolves once every child is declared; rejects with the one line that names the key or
   * the step. Await it before exporting the outputs: the error is then reported once, as it
   * was thrown (each output would otherwise report it where it met it).
   */
  public readonly ready: Promise<void>;

  constructor(
    name: string,
    args: PrometheusTsdbMigrationArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("ptm:index:PrometheusTsdbMigration", name, {}, opts);
    const declared = this.declare(name, args).catch((e: unknown) => {
      // A configuration mistake names the key, a failed step says what it saw and what to
      // do: one clear line each, naming this migration, not a stack trace.
      throw resourceError(this, e);
    });
    // One Output per key, so that each is known as soon as its own value is (at preview too).
    const out = <K extends keyof MigrationOutputs>(key: K) =>
      pulumi.output(declared.then((d): unknown => d[key])) as pulumi.Output<MigrationOutputs[K]>;
    this.status = out("status");
    this.phase = out("phase");
    this.message = out("message");
    this.source = out("source");
    this.target = out("target");
    this.rsyncService = out("rsyncService");
    this.rsyncUrl = out("rsyncUrl");
    this.sidecars = out("sidecars");
    this.sidecarMode = out("sidecarMode");
    this.ephemeral = out("ephemeral");
    this.plan = out("plan");
    this.preflight = out("preflight");
    this.migration = out("migration");
    this.ready = declared.then(() => undefined);
    // Nothing to register when the declaration failed: `ready` carries the error.
    this.registerOutputs(
      declared.then(
        () => outputsOf(this),
        () => ({}),
      ),
    );
  }

  private async declare(name: string, args: PrometheusTsdbMigrationArgs): Promise<Declared> {
    const names = namesFor(name);
    // Children are named after this migration. The default name keeps the URNs of stacks made
    // before: their children were named after the step alone (most at the top level).
    const childName = (step: string) => `${name}-${step}`;
    const aliasesOf = (step: string, wasTopLevel: boolean): pulumi.Alias[] =>
      names.legacy
        ? [
            { name: step },
            ...(wasTopLevel ? [{ name: step, parent: pulumi.rootStackResource }] : []),
          ]
        : [];
    const guardOpts = { parent: this, aliases: aliasesOf("target-restart-guard", false) };

    // Configuration, validated before anything changes.
    let cfg = parseConfig({ ...args, phase: args.phase ?? "" });
    // RBAC (issue 21 item 5): every permission this run needs, asked before anything is read
    // or declared, so that a refusal lists them all instead of the first read that fails.
    await checkPermissions(cfg, this);
    if (cfg.phase === "revert") {
      // Nothing declared: every Secret, Service, policy, patch and step of earlier phases is
      // deleted, and deleting the patches hands the pod templates back exactly as they were.
      await warnRevertOfGoneSource(cfg, names, childName("source-rsync-daemon"), this);
      // Removing the target's sidecar restarts it, so first make sure that loses nothing.
      const guarded = await checkTargetRestartIsSafe(cfg, names);
      // The destroy guard stays, told that this check was made: its delete won't repeat it.
      new TargetRestartGuard(
        childName("target-restart-guard"),
        {
          target: guarded,
          pods: [workloadArg(guarded)],
          dataPath: "",
          url: "",
          sidecar: TARGET_SIDECAR,
          force: true,
          guards: [],
        },
        guardOpts,
      );
      // `pulumi preview` of a stack that has patched nothing yet, with a source set: the
      // preview's report, so that a change review sees the plan before phase prepare. It
      // never refuses a revert, and an `up` (a revert) does not read the TSDBs.
      const fresh =
        args.source === undefined || !pulumi.runtime.isDryRun()
          ? null
          : await previewIfNothingPatched(cfg, names, this);
      return {
        ...NONE,
        status: "reverted",
        phase: "reverted",
        message: fresh
          ? "nothing to revert (no workload carries this stack's patches); the preflight output " +
            "says what phase prepare would do"
          : "reverted: the migration's Secrets, Service, NetworkPolicy and sidecars are removed, " +
            "and the pod templates are as they were",
        plan: fresh?.plan ?? null,
        preflight: fresh,
      };
    }
    // One cluster for the patches and for every kubectl: the provider gets the same
    // kubeconfig and context as the command lines (kubectl.ts). Not renamed for the default
    // name: every patch refers to its provider, and a renamed one would replace them.
    const provider = cfg.cluster
      ? new k8s.Provider(
          names.legacy ? "cluster" : childName("cluster"),
          { kubeconfig: cfg.cluster.kubeconfig, context: cfg.cluster.context },
          { parent: this },
        )
      : undefined;
    const child = (
      step: string,
      more: pulumi.ComponentResourceOptions = {},
    ): pulumi.ComponentResourceOptions => ({
      parent: this,
      ...(provider ? { providers: { kubernetes: provider } } : {}),
      ...more,
      aliases: aliasesOf(step, true),
    });

    // The live workloads, and where their TSDBs are.
    const located = await locateWorkloads(cfg, this);
    // sidecarMode ephemeral: the sidecars go into the running pods, and every step runs in
    // exactly those pods, seeing the TSDB below the volume root the sidecar mounts.
    const sides =
      cfg.sidecarMode === "ephemeral" ? await ephemeralSides(cfg, located, this) : undefined;
    const { source, target } = sides
      ? { source: sides.source.loc, target: sides.target.loc }
      : located;
    if (sides) {
      const head = headInEphemeral(cfg.includeHead, source.adminApi);
      // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
      if (head.message) void pulumi.log.info(head.message, this);
      cfg = { ...cfg, includeHead: head.includeHead };
    }
    // Phase migrate: the recorded decision, read and checked against the config before
    // anything is declared (a refusal must come before any patch is applied).
    const next =
      cfg.phase === "migrate"
        ? nextRun(await readDecision(names, target.ref.namespace, cfg.cluster), {
            includeHead: cfg.includeHead,
            acceptGap: cfg.acceptGap,
            sidecarMode: cfg.sidecarMode,
            targetPods: podLocations(target).map((t) => t.ref.pod ?? null),
          })
        : undefined;
    if (next?.action === "refuse") throw new ConfigError(next.key, next.message);
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    if (next?.action === "redecide") void pulumi.log.warn(next.reason, this);
    if (next?.action === "resume") for (const n of next.notes) void pulumi.log.info(n, this);
    const policies = await readNetworkPolicies(source.ref.namespace, cfg.cluster);
    await checkTargetEgress(cfg, source, target, this);
    // A config key that changes the running target sidecar rolls the target's pods: checked
    // first, as the revert is. What the program sets by itself is kept (no roll on upgrade).
    const resourcesConfigured = args.sidecarResources !== undefined;
    if (!sides) {
      const { restarting } = keepRunningSidecar(
        {
          name: TARGET_SIDECAR,
          image: cfg.sidecarImage,
          imagePullPolicy: cfg.sidecarImagePullPolicy,
          resources: cfg.sidecarResources,
        },
        target.liveSidecar,
        resourcesConfigured,
      );
      if (restarting.length > 0) {
        const checked = await checkSidecarChangeIsSafe(target, restarting, names.snapshot);
        void pulumi.log.warn(checked, this); // void: as above
      }
    }

    // Phase prepare: the plan and every preflight, read through each Prometheus container
    // before anything is declared, so that a refusal comes before any pod restarts.
    const planned =
      cfg.phase === "migrate" ? null : await previewBeforePrepare(cfg, located, names, this);
    if (planned?.refusal) throw new ConfigError(planned.refusal.key, planned.refusal.message);
    // Admission before the rollout (issue 21 item 4): the pod each patch would make is
    // dry-run through the API server's admission, before any patch is declared.
    const admission = sides
      ? []
      : await checkAdmission(cfg, names, { source, target }, resourcesConfigured, this);
    const preflight = planned && withAdmission(planned, admission);

    // Step 1 (seed): the source's rsync daemon, reachable only by the target, with a fresh password.
    const credentials = new RsyncCredentials(
      childName("rsync-credentials"),
      { names, sourceNamespace: source.ref.namespace, targetNamespace: target.ref.namespace },
      child("rsync-credentials"),
    );
    const service = new RsyncService(
      childName("rsync-service"),
      {
        names,
        namespace: source.ref.namespace,
        sourceName: source.ref.name,
        // The source replica read, when there are several (all run the daemon).
        selector: rsyncSelector(source),
      },
      child("rsync-service"),
    );
    const accessPolicy = new RsyncAccessPolicy(
      childName("rsync-access"),
      {
        names,
        namespace: source.ref.namespace,
        sourceName: source.ref.name,
        sourcePodLabels: source.podLabels,
        ingress: rsyncIngressRules(
          isolatedForIngress(policies, source.podLabels),
          target.ref.namespace,
          target.podLabels,
        ),
      },
      child("rsync-access"),
    );
    const daemon = new SourceRsyncDaemon(
      childName("source-rsync-daemon"),
      {
        names,
        source,
        image: cfg.sidecarImage,
        imagePullPolicy: cfg.sidecarImagePullPolicy,
        resources: cfg.sidecarResources,
        resourcesConfigured,
        imagePullSecrets: cfg.imagePullSecrets,
        secretName: credentials.sourceSecretName,
        migrationId: credentials.migrationId,
        rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
        ephemeral: sides?.source,
      },
      child("source-rsync-daemon", { dependsOn: [accessPolicy] }),
    );

    // A head snapshot needs the admin API: switched on here, and off exactly at the revert.
    // A `Prometheus` resource through its spec.enableAdminAPI (the operator owns the args).
    const adminApiArgs = { names, source, rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds };
    const adminApiOpts = child("source-admin-api", { dependsOn: [daemon.ready] });
    // sidecarMode ephemeral: never (a restart); the head is only snapshotted when it is on already.
    const switchAdminApi = () =>
      !cfg.includeHead || sides
        ? undefined
        : source.ref.kind === "Prometheus"
          ? new PrometheusAdminApiSwitch(childName("source-admin-api"), adminApiArgs, adminApiOpts)
          : new AdminApiSwitch(childName("source-admin-api"), adminApiArgs, adminApiOpts);

    // Step 2 (seed): the target's rsync client.
    const client = new TargetRsyncClient(
      childName("target-rsync-client"),
      {
        names,
        target,
        image: cfg.sidecarImage,
        imagePullPolicy: cfg.sidecarImagePullPolicy,
        resources: cfg.sidecarResources,
        resourcesConfigured,
        imagePullSecrets: cfg.imagePullSecrets,
        secretName: credentials.targetSecretName,
        rolloutTimeoutSeconds: cfg.rolloutTimeoutSeconds,
        ephemeral: sides?.target,
      },
      child("target-rsync-client"),
    );

    const prepared = {
      ...NONE,
      status: "prepared",
      phase: cfg.phase === "migrate" ? "migrate" : "prepare",
      message:
        "prepared: the sidecars run next to both servers; set phase to migrate and run " +
        "`pulumi up` to plan, copy, install and verify",
      source: describeLocation(located.source),
      target: describeLocation(located.target),
      rsyncService: service.name,
      rsyncUrl: service.moduleUrl,
      sidecars: { source: daemon.container, target: client.container },
      sidecarMode: cfg.sidecarMode,
      ephemeral: sides ? describeEphemeral(sides) : null,
      plan: preflight?.plan ?? null,
      preflight,
    } as const;
    // Step 6 (seed), at `pulumi destroy`: before any sidecar goes, check the target's restart.
    const guardTargetRestart = (guards: pulumi.Resource[]) =>
      new TargetRestartGuard(
        childName("target-restart-guard"),
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
        guardOpts,
      );
    const prepareSteps: pulumi.Resource[] = [credentials, service, accessPolicy, daemon, client];
    if (cfg.phase !== "migrate") {
      const adminApi = switchAdminApi();
      if (adminApi) prepareSteps.push(adminApi);
      guardTargetRestart(prepareSteps);
      return prepared;
    }

    // Step 3 (seed): the decision, in sync with the compaction cycle. It is made once, right
    // after the snapshot, and recorded (decisions/decisionRecord.ts): every later run resumes
    // it, re-decides explicitly, or refuses naming the key, instead of planning again from
    // live servers that have moved on (the target compacts what it imported).
    // The exec steps run in pods: the source replica read, and every replica of the target
    // (one each for workloads other than a `Prometheus` resource, in a pod kubectl picks).
    const sourceAt = podLocations(source)[0];
    const targetsAt = podLocations(target);
    // The decision, read before anything was declared (below locateWorkloads).
    if (!next) throw new Error("bug: phase migrate without the recorded decision read");
    const generation = next.action === "resume" ? next.record.generation : next.generation;
    // A re-decision's steps, snapshot and records are new ones: the old generation's are
    // deleted once the new one is done (its snapshot dir has another name).
    const gen = generationSuffix(generation);
    const snapshot = `${names.snapshot}${gen}`;
    const decision =
      next.action === "resume"
        ? resumeDecision(next, this)
        : await this.decide(
            cfg,
            { names, source, target, sourceAt, targetsAt, snapshot, sides },
            {
              daemon,
              client,
            },
          );
    if (decision === "waiting-for-sidecars") {
      const adminApi = switchAdminApi();
      if (adminApi) prepareSteps.push(adminApi);
      return {
        ...prepared,
        status: "waiting-for-sidecars",
        message:
          "the sidecars are not running yet: run `pulumi up` again once they are to plan and copy",
      };
    }
    // Declared once the probes are done: switching the admin API on replaces the source pod,
    // and a probe still reading it dies with it (at 2,050 blocks, exit 137 in the lab).
    const adminApi = switchAdminApi();
    if (adminApi) prepareSteps.push(adminApi);

    const wait = new CompactionWait(
      childName(`compaction-wait${gen}`),
      {
        source: sourceAt,
        container: daemon.container,
        untilMs: decision.waitUntilMs,
        maxWaitMinutes: cfg.maxWaitMinutes,
      },
      // After the admin API's rollout too: it replaces the pod this runs in (exit 137).
      child(`compaction-wait${gen}`, {
        dependsOn: [daemon.ready, ...(adminApi ? [adminApi] : [])],
      }),
    );

    // Step 4 (seed): snapshot, copy, and install without a restart.
    const snap = new SourceSnapshot(
      childName(`source-snapshot${gen}`),
      {
        names,
        source: sourceAt,
        container: daemon.container,
        snapshot,
        includeHead: decision.includeHead,
      },
      child(`source-snapshot${gen}`, {
        dependsOn: [daemon.ready, wait, ...(adminApi ? [adminApi] : [])],
      }),
    );
    // Each replica's part of the decision, and the metas of its blocks, read from the snapshot.
    const parts = targetsAt.map((targetAt, i) => decision.replica(snap.blocks, targetAt, i));
    const recordData = pulumi
      .all(parts.map((p) => p.decided))
      .apply((replicas) => pulumi.output(decision.record(replicas, generation, snapshot)));
    const decisionRecord = new k8s.core.v1.ConfigMap(
      childName(`decision${gen}`),
      {
        metadata: {
          name: names.verificationRecord(`decision${gen}`),
          namespace: target.ref.namespace,
          labels: migrationLabels(names, DECISION_RECORD_COMPONENT),
        },
        data: { [DECISION_RECORD_KEY]: recordData },
      },
      // Taken once: later runs read it (readDecision) and never change it.
      {
        parent: this,
        ...(provider ? { provider } : {}),
        dependsOn: [snap],
        ignoreChanges: ["data"],
      },
    );
    const snapshotUrl = pulumi.interpolate`rsync://${RSYNC_USER}@${service.clusterIP}:${RSYNC_SERVICE_PORT}/${RSYNC_MODULE}/snapshots/${snapshot}`;
    // Copy, install and verify in every target replica, each against its own plan.
    const replicas = parts.map(({ targetAt, decided, metas }) => {
      // By ordinal: names derived from these (a verification record's ConfigMap) are cut to
      // 63 characters, and two long pod names would collide there.
      const suffix =
        targetsAt.length > 1
          ? `-replica-${targetAt.ref.pod!.slice(target.workload!.name.length + 1)}`
          : "";
      const planned = decided.apply((d) => d.blocks);
      const copy = new BlockCopy(
        childName(`block-copy${suffix}${gen}`),
        {
          names,
          target: targetAt,
          container: client.container,
          snapshotUrl,
          blocks: planned,
          bandwidthLimit: cfg.bandwidthLimit,
          streams: cfg.copyStreams,
          streamsMax: autoStreamsMax(cfg.sidecarResources, cfg.sidecarMode),
        },
        child(`block-copy${suffix}${gen}`, {
          dependsOn: [client.ready, service, accessPolicy, decisionRecord],
        }),
      );
      const install = new BlockInstall(
        childName(`block-install${suffix}${gen}`),
        {
          names,
          target: targetAt,
          container: client.container,
          // The copy stages every planned block or fails: once it has, install them all.
          blocks: pulumi.all([copy.result, planned]).apply(([, ulids]) => ulids),
        },
        child(`block-install${suffix}${gen}`, { dependsOn: [copy] }),
      );

      // Step 5 (seed): prove it, instead of reading logs.
      const windowPlan = pulumi.all([decided, metas]).apply(([d, blocks]) => ({
        blocks,
        cutoffMs: d.cutoffMs,
      }));
      const verification = new MigrationVerification(
        childName(`verification${suffix}${gen}`),
        {
          names,
          recordName: names.verificationRecord(`verification${suffix}${gen}`),
          source: sourceAt,
          sourceContainer: daemon.container,
          target: targetAt,
          targetContainer: client.container,
          windowEnds: pulumi.all([windowPlan, decided]).apply(([p, d]) =>
            windowsToCompare(p, {
              targetEarliestMs: d.targetEarliestMs,
              maxWindows: cfg.verifyWindows,
            }),
          ),
          targetEarliestMs: decided.apply((d) => d.targetEarliestMs),
          loadedDownToMs: metas.apply((blocks) => Math.min(...blocks.map((b) => b.minTime))),
          blocks: metas.apply(expectedBlocks),
          gapMs: decided.apply((d) => d.gapMs),
          after: [install.step],
        },
        child(`verification${suffix}${gen}`),
      );
      return { pod: targetAt.ref.pod ?? null, copy, install, verification, decided };
    });
    guardTargetRestart([
      ...prepareSteps,
      wait,
      snap,
      decisionRecord,
      ...replicas.flatMap((r) => [r.copy, r.install, r.verification]),
    ]);

    const [first] = replicas;
    // Every replica's copy and install too: any of them failing fails the status at once.
    const verified = pulumi.all(
      replicas.map((r) =>
        pulumi.all([r.copy.result, r.install.result, r.verification.result]).apply(([, , v]) => v),
      ),
    );
    return {
      ...prepared,
      // Known once every replica is verified: a failed verification fails the `up` instead.
      status: verified.apply(() => "verified" as const),
      message: verified.apply(
        (vs) =>
          `verified: ${vs[0].summary}` +
          (vs.length > 1 ? ` (and ${vs.length - 1} more replicas: see migration.replicas)` : ""),
      ),
      plan: decision.plan,
      migration: pulumi.output({
        snapshot,
        copy: first.copy.result,
        install: first.install.result,
        verification: first.verification.result,
        replicas:
          replicas.length > 1
            ? replicas.map((r, i) => ({
                pod: r.pod,
                plan: decision.replicaPlan(i),
                copy: r.copy.result,
                install: r.install.result,
                verification: r.verification.result,
              }))
            : [],
      }),
    };
  }

  /**
   * A new decision (the first, or an explicit re-decision): plan from what both servers hold
   * now, through the version gate and the gap gate. "waiting-for-sidecars" before they run.
   */
  private async decide(
    cfg: MigrationConfig,
    at: {
      names: MigrationNames;
      source: TsdbLocation;
      target: TsdbLocation;
      sourceAt: TsdbLocation;
      targetsAt: TsdbLocation[];
      snapshot: string;
      sides: { source: EphemeralSide; target: EphemeralSide } | undefined;
    },
    sidecars: { daemon: SourceRsyncDaemon; client: TargetRsyncClient },
  ): Promise<Decision | "waiting-for-sidecars"> {
    const { source, target, sourceAt, targetsAt, snapshot, sides } = at;
    const { daemon, client } = sidecars;
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
    if (!sourceProbe || targetProbes.some((p) => !p)) return "waiting-for-sidecars";
    // Only this migration's own snapshot is used as it is: sidecar/snapshot.sh records who
    // made one, so a leftover never skips the gap gate.
    const use = snapshotUse(
      sourceProbe.snapshotOwner ?? (sourceProbe.snapshotBlocks.length > 0 ? "other" : "none"),
      `${source.dataPath}/snapshots/${snapshot}`,
    );
    if (use.action === "refuse") throw new StepError("source snapshot", use.message);
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    if (use.action === "replace") void pulumi.log.warn(use.message, this);
    // A snapshot of ours without a record: made by a version before the record existed. Its
    // plan passed the gate then; it is recorded now, from the snapshot and the target as is.
    const snapshotTaken = use.action === "resume";
    const settings = planSettings(cfg);
    // What discovery read of each server's flags: what the plan uses when a probe has none.
    const discovered = { source: source.flags, target: target.flags };
    const planFor = (sourceBlocks: BlockMeta[], targetProbe: ProbeResult) =>
      planForReplica(settings, sourceProbe, sourceBlocks, targetProbe, discovered);
    const basis = snapshotTaken
      ? sourceProbe.snapshotBlocks
      : blocksToSnapshot(sourceProbe, cfg.includeHead);
    // One plan per target replica (each has its own TSDB), through every gate; the decision
    // follows the one with the largest gap (decisions/replicaPlans.ts, as the preview does).
    const planned = planEveryReplica(
      settings,
      sourceProbe,
      basis,
      targetProbes.map((t, i) => ({ probe: t!, volume: replicaVolume(target, targetsAt[i]) })),
      snapshotTaken,
      discovered,
    );
    if (!planned.ok) throw new ConfigError(planned.key, planned.message);
    const { inputs, gate } = planned;
    const plan = planned.plans[planned.worst];
    void pulumi.log.info(`plan: ${describePlan(plan)}; ${gate.message}`, this); // void: as above
    const finalPlans: pulumi.Output<Plan>[] = [];
    return {
      includeHead: cfg.includeHead,
      waitUntilMs: gate.action === "wait" ? gate.blockEndMs : 0,
      plan: summarizePlan(plan),
      replicaPlan: (i) => finalPlans[i].apply(summarizePlan),
      replica: (snapBlocks, targetAt, i) => {
        // The snapshot's own blocks (and its head block) pass the same gate before any copy.
        const finalPlan = snapBlocks.apply((blocks) => {
          const { plan: p, refusal } = planFor(blocks, targetProbes[i]!);
          if (refusal) {
            throw new pulumi.ResourceError(`plan: ${refusal}; nothing was copied`, this, true);
          }
          if (!p.formats.ok) {
            throw new pulumi.ResourceError(
              `plan: ${p.formats.message}; nothing was copied`,
              this,
              true,
            );
          }
          return p;
        });
        finalPlans[i] = finalPlan;
        return {
          targetAt,
          metas: finalPlan.apply((p) => p.blocks),
          decided: finalPlan.apply((p): ReplicaDecision => ({
            pod: targetAt.ref.pod ?? null,
            blocks: p.blocks.map((b) => b.ulid),
            cutoffMs: p.cutoffMs,
            targetEarliestMs: inputs[i].targetEarliestMs,
            gapMs: p.gapMs,
          })),
        };
      },
      record: (replicas, generation, snapshotName) => {
        const worstAt = replicas.reduce((w, r, i) => (r.gapMs > replicas[w].gapMs ? i : w), 0);
        return pulumi.all(finalPlans).apply((ps) =>
          serializeDecision({
            generation,
            decidedAtMs: Date.now(),
            snapshot: snapshotName,
            includeHead: cfg.includeHead,
            acceptGap: cfg.acceptGap,
            sidecarMode: cfg.sidecarMode,
            waitUntilMs: gate.action === "wait" ? gate.blockEndMs : 0,
            replicas,
            plan: summarizePlan(ps[worstAt]),
          }),
        );
      },
    };
  }
}

/** What the migrate steps are declared from: a new decision, or the recorded one. */
interface Decision {
  /** The snapshot holds the head. */
  includeHead: boolean;
  /** The compaction wait before the snapshot (block end, ms); 0: none. */
  waitUntilMs: number;
  /** The `plan` output. */
  plan: pulumi.Input<PlanSummary>;
  /** Replica i's plan, for migration.replicas. */
  replicaPlan(i: number): pulumi.Input<PlanSummary>;
  /** Replica i's part, once the snapshot's blocks are read. */
  replica(
    snapBlocks: pulumi.Output<BlockMeta[]>,
    targetAt: TsdbLocation,
    i: number,
  ): {
    targetAt: TsdbLocation;
    /** The metas of the blocks it gets, oldest first. */
    metas: pulumi.Output<BlockMeta[]>;
    decided: pulumi.Output<ReplicaDecision>;
  };
  /** The record's text, from every replica's part. */
  record(replicas: ReplicaDecision[], generation: number, snapshot: string): pulumi.Input<string>;
}

/** The recorded decision, resumed: nothing is planned again. */
function resumeDecision(
  next: Extract<NextRun, { action: "resume" }>,
  owner: pulumi.Resource,
): Decision {
  const { record, replicas } = next;
  return {
    includeHead: record.includeHead,
    waitUntilMs: record.waitUntilMs,
    plan: record.plan,
    replicaPlan: () => record.plan,
    replica: (snapBlocks, targetAt) => {
      // Matched by pod: a replica gone since is left out (nextRun), and added ones refused.
      const decided = replicas.find((r) => r.pod === (targetAt.ref.pod ?? null)) ?? replicas[0];
      return {
        targetAt,
        decided: pulumi.output(decided),
        metas: snapBlocks.apply((blocks) => {
          try {
            return recordedBlocks(blocks, decided.blocks, record.snapshot);
          } catch (e) {
            throw resourceError(owner, e);
          }
        }),
      };
    },
    record: () => serializeDecision(record),
  };
}

/** The stack outputs of a migration, one key per output (index.ts exports them). */
export function outputsOf(m: PrometheusTsdbMigration): MigrationOutputProperties {
  return {
    status: m.status,
    phase: m.phase,
    message: m.message,
    source: m.source,
    target: m.target,
    rsyncService: m.rsyncService,
    rsyncUrl: m.rsyncUrl,
    sidecars: m.sidecars,
    sidecarMode: m.sidecarMode,
    ephemeral: m.ephemeral,
    plan: m.plan,
    preflight: m.preflight,
    migration: m.migration,
  };
}

/** Reads both workloads and checks that a migration between them can work. */
async function locateWorkloads(
  cfg: MigrationConfig,
  migration: pulumi.Resource,
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
    void pulumi.log.info(`${key}: ${discoveryLine(loc)}`, migration);
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
  migration: pulumi.Resource,
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
  const version = await preflightEphemeral(cfg.cluster);
  const [source, target] = await Promise.all([
    ephemeralSide("source", located.source, SOURCE_SIDECAR),
    ephemeralSide("target", located.target, TARGET_SIDECAR),
  ]);
  // A changed sidecarImage can't reach a sidecar that runs: refused rather than ignored.
  checkEphemeralImage("source", source.container, source.pods, cfg.sidecarImage);
  checkEphemeralImage("target", target.container, target.pods, cfg.sidecarImage);
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
    migration,
  );
  return { source, target };
}

function describeEphemeral(sides: {
  source: EphemeralSide;
  target: EphemeralSide;
}): EphemeralSummary {
  const one = (s: EphemeralSide): EphemeralSideSummary => ({
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

/**
 * The preview's report before `prepare` (decisions/preview.ts): both TSDBs read through their
 * own Prometheus containers, every gate of the plan, and the restarts this mode causes. Logged
 * line by line, so that `pulumi preview` shows it in a change review.
 */
async function previewBeforePrepare(
  cfg: MigrationConfig,
  located: { source: TsdbLocation; target: TsdbLocation },
  names: MigrationNames,
  migration: pulumi.Resource,
): Promise<PreviewReport> {
  const { source, target } = located;
  const sourceAt = podLocations(source)[0];
  const targetsAt = podLocations(target);
  const [sourceLooked, ...targetsLooked] = await Promise.all([
    lookIntoTsdb(sourceAt, names.snapshot),
    ...targetsAt.map((t) => lookIntoTsdb(t, names.snapshot)),
  ]);
  const report = previewReport({
    settings: planSettings(cfg),
    discovered: { source: source.flags, target: target.flags },
    sidecarMode: cfg.sidecarMode,
    source: {
      workload: describeRef(source.ref),
      looked: sourceLooked,
      adminApi: source.adminApi,
      prepared: source.containers.includes(SOURCE_SIDECAR),
    },
    target: {
      workload: describeRef(target.ref),
      prepared: target.containers.includes(TARGET_SIDECAR),
      replicas: targetsAt.map((t, i) => ({
        pod: t.ref.pod ?? null,
        volume: replicaVolume(target, t),
        looked: targetsLooked[i],
      })),
    },
  });
  // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
  for (const line of describePreview(report)) void pulumi.log.info(line, migration);
  return report;
}

/**
 * Without a phase, on a stack whose patches are on no workload: the preview's report, or null
 * (something is patched, or it could not be made: then a warning says why). Never throws.
 */
async function previewIfNothingPatched(
  cfg: MigrationConfig,
  names: MigrationNames,
  migration: pulumi.Resource,
): Promise<PreviewReport | null> {
  try {
    const patched = await Promise.all([
      findPatched(names, "source", cfg.cluster),
      findPatched(names, "target", cfg.cluster),
    ]);
    if (patched.some((p) => p.length > 0)) return null;
    return await previewBeforePrepare(cfg, await locateWorkloads(cfg, migration), names, migration);
  } catch (e) {
    // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
    void pulumi.log.warn(`preflight not made: ${(e as Error).message}`, migration);
    return null;
  }
}

/** The config keys the plan depends on. */
/**
 * A revert after the source workload was deleted (the old server decommissioned before the
 * revert; issue 23): the Kubernetes provider refuses to delete a Server-Side Apply patch of an
 * object that is gone ("currently managing a required field"), and the revert stops at that
 * patch. Said before anything is deleted, with the command that marks the patch in the
 * stack's state to be dropped without a delete (retainOnDelete); the next `up` finishes the
 * revert. Only when this stack prepared (its label is on the target).
 */
async function warnRevertOfGoneSource(
  cfg: MigrationConfig,
  names: MigrationNames,
  patchName: string,
  parent: pulumi.Resource,
): Promise<void> {
  const source = cfg.source;
  // A revert needs no source name (none configured: nothing to look for).
  if (!source?.name || cfg.sidecarMode === "ephemeral" || source.kind === "Prometheus") return;
  if ((await readWorkload(source)) !== undefined) return;
  if ((await findPatched(names, "target", cfg.cluster)).length === 0) return;
  // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
  void pulumi.log.warn(goneSourceAdvice(source, patchName), parent);
}

/** What to do when the revert meets a source workload that is gone (a pure text). */
export function goneSourceAdvice(source: WorkloadRef, patchName: string): string {
  const type = `kubernetes:apps/v1:${source.kind === "StatefulSet" ? "StatefulSetPatch" : "DeploymentPatch"}`;
  // `pulumi state delete` refuses a resource that others depend on; retainOnDelete in the
  // state makes the engine drop the patch without asking the provider.
  const jq = `(.deployment.resources[] | select(.type == "${type}" and (.urn | endswith("::${patchName}")))).retainOnDelete = true`;
  return (
    `${source.kind} ${source.namespace}/${source.name} does not exist any more. The Kubernetes ` +
    `provider can't delete this stack's sidecar patch of an object that is gone: if this revert ` +
    `stops at that patch ("currently managing a required field"), mark it to be dropped from ` +
    `the state without a delete, then run pulumi up again to finish the revert: ` +
    `pulumi stack export | jq '${jq}' | pulumi stack import`
  );
}

/**
 * The target's NetworkPolicies, before anything moves: a policy that isolates the target
 * pods' egress and admits nothing to the source's rsync daemon would fail the copy (issue 23).
 * Refused with the rule to add; what can't be judged from the policies alone is said.
 */
async function checkTargetEgress(
  cfg: MigrationConfig,
  source: TsdbLocation,
  target: TsdbLocation,
  parent: pulumi.Resource,
): Promise<void> {
  const ns = target.ref.namespace;
  const dest = {
    namespace: source.ref.namespace,
    podLabels: source.podLabels,
    port: RSYNC_CONTAINER_PORT,
    portName: RSYNC_PORT_NAME,
  };
  const v = egressToRsync(await readNetworkPolicies(ns, cfg.cluster), ns, target.podLabels, dest);
  const daemon = `the source's rsync daemon (pods of ${source.ref.kind} ${source.ref.namespace}/${source.ref.name}, TCP ${RSYNC_CONTAINER_PORT})`;
  if (v.verdict === "denied") {
    throw new ConfigError(
      "target",
      `NetworkPolicy ${v.isolatedBy.join(", ")} isolates the egress of the target's pods (${target.ref.kind} ${ns}/${target.ref.name}) and no policy admits them to ${daemon}: the copy could not connect. Add the egress rule ${rsyncEgressRuleText(dest)} to a NetworkPolicy that selects the target's pods, or remove the isolation, then run pulumi up again`,
    );
  }
  // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
  if (v.verdict === "unknown") {
    void pulumi.log.warn(
      `network: NOT checked whether the target's pods may reach ${daemon}: NetworkPolicy ${v.isolatedBy.join(", ")} isolates their egress, and ${v.why}. If the copy can't connect, add the egress rule ${rsyncEgressRuleText(dest)}`,
      parent,
    );
  } else {
    void pulumi.log.info(
      v.verdict === "open"
        ? `network: ok: no NetworkPolicy in ${ns} limits the target pods' egress to ${daemon}`
        : `network: ok: NetworkPolicy ${v.by} admits the target's pods to ${daemon}`,
      parent,
    );
  }
}

function planSettings(cfg: MigrationConfig): PlanSettings {
  return {
    includeHead: cfg.includeHead,
    acceptGap: cfg.acceptGap,
    maxWaitMinutes: cfg.maxWaitMinutes,
    trimToTargetRetention: cfg.trimToTargetRetention,
  };
}

/** A target replica's volume, as messages name it. */
function replicaVolume(target: TsdbLocation, at: TsdbLocation): string {
  return at.ref.pod ? `${target.volume} of pod ${at.ref.pod}` : target.volume;
}

const describeRef = (ref: WorkloadRef) => `${ref.kind} ${ref.namespace}/${ref.name}`;

function describeLocation(loc: TsdbLocation): WorkloadSummary {
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

/** probe.sh run in the target's Prometheus container, told where the TSDB and the API are; undefined when it can't run there. */
async function probeThroughPrometheus(
  target: WorkloadRef,
  live: WorkloadObject,
  cfg: MigrationConfig,
  snapshot: string,
): Promise<ProbeResult | undefined> {
  const same = target.namespace === cfg.target.namespace && target.name === cfg.target.name;
  const own = (live.spec?.template?.spec?.containers ?? []).find(
    (c) => c.name !== TARGET_SIDECAR && c.name !== SOURCE_SIDECAR,
  );
  const container = same ? cfg.target.container : own?.name;
  if (!container) return undefined;
  const ref = { ...cfg.target, ...target, container };
  const loc = locateTsdb("target", ref, live, await readServer(ref, live));
  // The same read as the preview's before prepare (clusterReads.ts lookIntoTsdb).
  const looked = await lookIntoTsdb({ ...loc, ref }, snapshot);
  return "probe" in looked ? looked.probe : undefined;
}

/**
 * Refuses a revert that would restart the target while its head holds samples older than an
 * imported block, and one whose check could not look (forceRevert skips both).
 */
async function checkTargetRestartIsSafe(
  cfg: MigrationConfig,
  names: MigrationNames,
): Promise<WorkloadRef> {
  // The workload the stack really patched, as its label says: the target config may be gone.
  const patched = await findPatched(names, "target", cfg.cluster);
  if (patched.length > 1 && !cfg.forceRevert) {
    throw new ConfigError(
      "phase",
      `several workloads carry this stack's target label (${patched.map(describeRef).join(", ")}); ` +
        `remove the label from those it did not patch, or set forceRevert to true`,
    );
  }
  // A `Prometheus` config names the resource; its sidecar is in the generated StatefulSet.
  const target = revertWorkload(patched[0] ?? cfg.target);
  const live = await readWorkload(target);
  const hasSidecar = live?.spec?.template?.spec?.containers?.some((c) => c.name === TARGET_SIDECAR);
  if (!hasSidecar || cfg.forceRevert) return target;
  // Every replica restarts when the sidecar goes, each with its own head: probe each
  // (decisions/revertCheck.ts), as the destroy guard does.
  const replicas = await Promise.all(
    replicaRefs(target, live!).map(async (ref): Promise<ReplicaProbe> => {
      try {
        return { ref, probe: await probe(ref, TARGET_SIDECAR, names.snapshot, true) };
      } catch (e) {
        if (!(e instanceof StepError)) throw e;
        // The sidecar may never have started (an image that can't be pulled, a crash loop):
        // look through the Prometheus container instead, which sees the same volume.
        const state = await probeThroughPrometheus(ref, live!, cfg, names.snapshot).catch(
          () => undefined,
        );
        return state ? { ref, probe: state } : { ref, why: e.message };
      }
    }),
  );
  const verdict = revertVerdict(target, replicas);
  if (verdict.action === "refuse") throw new ConfigError("phase", verdict.message);
  return target;
}
