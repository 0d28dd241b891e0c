import * as pulumi from "@pulumi/pulumi";
import {
  addEphemeralSidecars,
  EphemeralSide,
  ephemeralContainer,
} from "../cluster/ephemeralSidecar";
import { MigrationNames } from "../cluster/naming";
import { patchWithSidecar, sidecarContainer, SidecarSpec } from "../cluster/sidecarPatch";
import { TARGET_SIDECAR, TsdbLocation } from "../decisions/workload";

export interface TargetRsyncClientArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** Where the target keeps its TSDB. */
  target: TsdbLocation;
  /** Image with sh and rsync. */
  image: string;
  /** Its pull policy. */
  imagePullPolicy: string;
  /** Secret (in the target namespace) that holds the rsync password. */
  secretName: pulumi.Input<string>;
  /** How long the rollout of the patched target may take. */
  rolloutTimeoutSeconds: number;
  /**
   * sidecarMode ephemeral: the pods and the container name (cluster/ephemeralSidecar.ts); the
   * client goes into each running pod, not into the pod template.
   */
  ephemeral?: EphemeralSide;
}

/**
 * Seed step 2: an idle rsync client next to the new Prometheus, mounting its TSDB volume.
 * The copy, install and verify steps run inside it with `kubectl exec`.
 */
export class TargetRsyncClient extends pulumi.ComponentResource {
  /** The name of the sidecar container. */
  public readonly container: string;
  /** The patched workload. */
  public readonly patch: pulumi.Resource;
  /** Done once the pods run the sidecar: later steps depend on it. */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: TargetRsyncClientArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:TargetRsyncClient", name, {}, opts);
    const tgt = args.target;

    // Runs idle: the copy and install steps exec their scripts in it.
    const spec: SidecarSpec = {
      name: TARGET_SIDECAR,
      image: args.image,
      imagePullPolicy: args.imagePullPolicy,
      script: "idle",
      passwordEnv: "RSYNC_PASSWORD",
      secretName: args.secretName,
    };
    if (args.ephemeral) {
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
      // Several replicas: depending on this component waits for every pod's sidecar.
      this.ready = added.length === 1 ? added[0] : this;
    } else {
      this.container = TARGET_SIDECAR;
      const rollout = patchWithSidecar(
        name,
        "target",
        tgt,
        args.names,
        sidecarContainer(tgt, spec),
        args.rolloutTimeoutSeconds,
        { parent: this },
      );
      this.patch = rollout.patch;
      this.ready = rollout.rolledOut;
    }

    this.registerOutputs({ container: this.container });
  }
}
