import * as pulumi from "@pulumi/pulumi";
import { MigrationNames, RSYNC_CONTAINER_PORT, RSYNC_USER } from "../cluster/naming";
import {
  addEphemeralSidecars,
  EphemeralSide,
  ephemeralContainer,
} from "../cluster/ephemeralSidecar";
import { patchWithSidecar, sidecarContainer, SidecarSpec } from "../cluster/sidecarPatch";
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

    const spec: SidecarSpec = {
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
      passwordEnv: "PTM_RSYNC_PASSWORD",
      secretName: args.secretName,
      ports: [{ name: "ptm-rsync", containerPort: RSYNC_CONTAINER_PORT, protocol: "TCP" }],
    };
    if (args.ephemeral) {
      // No port is declared (an ephemeral container can't): the Service's targetPort is the
      // number, which reaches the daemon in the pod's network namespace all the same.
      const side = args.ephemeral;
      this.container = side.container;
      const added = addEphemeralSidecars(
        name,
        side,
        ephemeralContainer(side, spec),
        args.rolloutTimeoutSeconds,
        { parent: this },
      );
      this.patch = added[0];
      this.ready = added.length === 1 ? added[0] : this;
    } else {
      this.container = SOURCE_SIDECAR;
      const rollout = patchWithSidecar(
        name,
        "source",
        src,
        args.names,
        sidecarContainer(src, spec),
        args.rolloutTimeoutSeconds,
        { parent: this },
      );
      this.patch = rollout.patch;
      this.ready = rollout.rolledOut;
    }

    this.registerOutputs({ container: this.container });
  }
}
