import * as pulumi from "@pulumi/pulumi";
import {
  MigrationNames,
  RSYNC_CONTAINER_PORT,
  RSYNC_PORT_NAME,
  RSYNC_USER,
} from "../cluster/naming";
import {
  addEphemeralSidecars,
  EphemeralSide,
  ephemeralContainer,
} from "../cluster/ephemeralSidecar";
import { eventOwner, recordEvent, recordRevertEvent } from "../cluster/events";
import { patchWithSidecar, runningSidecarContainer, SidecarSpec } from "../cluster/sidecarPatch";
import { DEFAULT_SIDECAR_RESOURCES, SidecarResources } from "../decisions/config";
import { checkPullSecretsListed } from "../decisions/conventions";
import { SOURCE_SIDECAR, TsdbLocation } from "../decisions/workload";

export interface SourceRsyncDaemonArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** Where the source keeps its TSDB. */
  source: TsdbLocation;
  /** Image with sh and rsync. */
  image: string;
  /** Its pull policy. */
  imagePullPolicy: string;
  /**
   * Whether the requests and limits are the config's (sidecarResources): a change of them is
   * applied. Otherwise a running sidecar keeps its own. Default: false.
   */
  resourcesConfigured?: boolean;
  /** Requests and limits of the sidecar. Default: DEFAULT_SIDECAR_RESOURCES. */
  resources?: SidecarResources;
  /** Secrets to pull the image with (added to the pod template). Default: none. */
  imagePullSecrets?: string[];
  /** Secret (in the source namespace) that holds the rsync password. */
  secretName: pulumi.Input<string>;
  /** How long the rollout of the patched source may take. */
  rolloutTimeoutSeconds: number;
  /** This migration's ID (RsyncCredentials): recorded in the snapshots the sidecar makes. */
  migrationId: pulumi.Input<string>;
  /**
   * sidecarMode ephemeral: the pods and the container name (cluster/ephemeralSidecar.ts); the
   * daemon goes into the running pod, not into the pod template.
   */
  ephemeral?: EphemeralSide;
}

/** The daemon sidecar's spec: what the patch applies, and what the admission dry-run tries. */
export function rsyncDaemonSpec(
  args: Pick<SourceRsyncDaemonArgs, "names" | "image" | "imagePullPolicy" | "resources"> & {
    secretName: pulumi.Input<string>;
    migrationId: pulumi.Input<string>;
  },
): SidecarSpec {
  return {
    name: SOURCE_SIDECAR,
    image: args.image,
    imagePullPolicy: args.imagePullPolicy,
    script: "rsyncd",
    env: [
      { name: "PTM_RSYNC_PORT", value: String(RSYNC_CONTAINER_PORT) },
      { name: "PTM_RSYNC_USER", value: RSYNC_USER },
      // Who makes the snapshots (sidecar/snapshot.sh, lib.sh snapshot_owner_state).
      { name: "PTM_STACK_ID", value: args.names.stackId },
      { name: "PTM_MIGRATION_ID", value: args.migrationId },
    ],
    resources: args.resources ?? DEFAULT_SIDECAR_RESOURCES,
    passwordEnv: "PTM_RSYNC_PASSWORD",
    secretName: args.secretName,
    ports: [{ name: RSYNC_PORT_NAME, containerPort: RSYNC_CONTAINER_PORT, protocol: "TCP" }],
  };
}

/**
 * Seed step 1: an rsync daemon next to the old Prometheus, serving its TSDB volume as a
 * read-only module. It mounts the volume read-write only so that the snapshot step can
 * hard-link blocks into <data>/snapshots, as Prometheus's own snapshot API does.
 */
export class SourceRsyncDaemon extends pulumi.ComponentResource {
  /** The name of the sidecar container. */
  public readonly container: string;
  /** The patched workload. */
  public readonly patch: pulumi.Resource;
  /** Done once the pods run the sidecar: later steps depend on it. */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: SourceRsyncDaemonArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:SourceRsyncDaemon", name, {}, opts);
    const src = args.source;

    const spec = rsyncDaemonSpec(args);
    const pullSecrets = args.imagePullSecrets ?? [];
    // Declared before the sidecar, so deleted after it: the revert is recorded once done.
    const reverted = recordRevertEvent(
      `${name}-reverted-event`,
      args.names,
      src.ref,
      `Migration reverted: the rsync daemon sidecar was removed again (${eventOwner(args.names)})`,
      { parent: this },
    );
    const sidecarOpts = { parent: this, dependsOn: [reverted] };
    let readyDeps: pulumi.Resource[];
    if (args.ephemeral) {
      checkPullSecretsListed(
        args.ephemeral.loc.imagePullSecrets ?? [],
        pullSecrets,
        "pods",
        `the source's pods`,
      );
      // No port is declared (an ephemeral container can't): the Service's targetPort is the
      // number, which reaches the daemon in the pod's network namespace all the same.
      const side = args.ephemeral;
      this.container = side.container;
      const added = addEphemeralSidecars(
        name,
        side,
        ephemeralContainer(side, spec),
        args.rolloutTimeoutSeconds,
        sidecarOpts,
      );
      this.patch = added[0];
      readyDeps = added;
      this.ready = added.length === 1 ? added[0] : this;
    } else {
      this.container = SOURCE_SIDECAR;
      const rollout = patchWithSidecar(
        name,
        "source",
        src,
        args.names,
        runningSidecarContainer(src, spec, args.resourcesConfigured ?? false),
        args.rolloutTimeoutSeconds,
        sidecarOpts,
        pullSecrets,
      );
      this.patch = rollout.patch;
      this.ready = rollout.rolledOut;
      readyDeps = [rollout.rolledOut];
    }
    recordEvent(
      `${name}-event`,
      args.names,
      src.ref,
      "MigrationPrepared",
      `Migration prepared: the rsync daemon sidecar ${this.container} runs (${eventOwner(args.names)})`,
      { parent: this, dependsOn: readyDeps },
    );

    this.registerOutputs({ container: this.container });
  }
}
