import * as pulumi from "@pulumi/pulumi";
import {
  addEphemeralSidecars,
  EphemeralSide,
  ephemeralContainer,
} from "../cluster/ephemeralSidecar";
import { eventOwner, recordEvent, recordRevertEvent } from "../cluster/events";
import { MigrationNames } from "../cluster/naming";
import { patchWithSidecar, runningSidecarContainer, SidecarSpec } from "../cluster/sidecarPatch";
import { DEFAULT_SIDECAR_RESOURCES, SidecarResources } from "../decisions/config";
import { checkPullSecretsListed } from "../decisions/conventions";
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
  /**
   * Whether the requests and limits are the config's (sidecarResources): a change of them is
   * applied. Otherwise a running sidecar keeps its own. Default: false.
   */
  resourcesConfigured?: boolean;
  /** Requests and limits of the sidecar. Default: DEFAULT_SIDECAR_RESOURCES. */
  resources?: SidecarResources;
  /** Secrets to pull the image with (added to the pod template). Default: none. */
  imagePullSecrets?: string[];
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

/** The client sidecar's spec: what the patch applies, and what the admission dry-run tries. */
export function rsyncClientSpec(
  args: Pick<TargetRsyncClientArgs, "image" | "imagePullPolicy" | "resources"> & {
    secretName: pulumi.Input<string>;
  },
): SidecarSpec {
  // Runs idle: the copy and install steps exec their scripts in it.
  return {
    name: TARGET_SIDECAR,
    image: args.image,
    imagePullPolicy: args.imagePullPolicy,
    script: "idle",
    resources: args.resources ?? DEFAULT_SIDECAR_RESOURCES,
    passwordEnv: "RSYNC_PASSWORD",
    secretName: args.secretName,
  };
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

    const spec = rsyncClientSpec(args);
    const pullSecrets = args.imagePullSecrets ?? [];
    // Declared before the sidecar, so deleted after it: the revert is recorded once done.
    const reverted = recordRevertEvent(
      `${name}-reverted-event`,
      args.names,
      tgt.ref,
      `Migration reverted: the rsync client sidecar was removed again (${eventOwner(args.names)})`,
      { parent: this },
    );
    const sidecarOpts = { parent: this, dependsOn: [reverted] };
    let readyDeps: pulumi.Resource[];
    if (args.ephemeral) {
      checkPullSecretsListed(
        args.ephemeral.loc.imagePullSecrets ?? [],
        pullSecrets,
        "pods",
        `the target's pods`,
      );
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
      // Several replicas: depending on this component waits for every pod's sidecar.
      this.ready = added.length === 1 ? added[0] : this;
    } else {
      this.container = TARGET_SIDECAR;
      const rollout = patchWithSidecar(
        name,
        "target",
        tgt,
        args.names,
        runningSidecarContainer(tgt, spec, args.resourcesConfigured ?? false),
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
      tgt.ref,
      "MigrationPrepared",
      `Migration prepared: the rsync client sidecar ${this.container} runs (${eventOwner(args.names)})`,
      { parent: this, dependsOn: readyDeps },
    );

    this.registerOutputs({ container: this.container });
  }
}
