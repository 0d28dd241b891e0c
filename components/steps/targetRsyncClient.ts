import * as pulumi from "@pulumi/pulumi";
import { patchWithSidecar, sidecarContainer } from "../cluster/sidecarPatch";
import { TARGET_SIDECAR, TsdbLocation } from "../decisions/workload";

export interface TargetRsyncClientArgs {
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

    this.container = TARGET_SIDECAR;
    // Runs idle: the copy and install steps exec their scripts in it.
    const rollout = patchWithSidecar(
      name,
      "target",
      tgt,
      sidecarContainer(tgt, {
        name: TARGET_SIDECAR,
        image: args.image,
        imagePullPolicy: args.imagePullPolicy,
        script: "idle",
        passwordEnv: "RSYNC_PASSWORD",
        secretName: args.secretName,
      }),
      args.rolloutTimeoutSeconds,
      { parent: this },
    );
    this.patch = rollout.patch;
    this.ready = rollout.rolledOut;

    this.registerOutputs({ container: this.container });
  }
}
