import * as pulumi from "@pulumi/pulumi";
import { sidecarScript } from "../cluster/kubectl";
import { PASSWORD_KEY } from "../cluster/naming";
import { patchWithSidecar, tsdbMount } from "../cluster/sidecarPatch";
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
  /** The patched workload, for dependencies. */
  public readonly patch: pulumi.Resource;

  constructor(name: string, args: TargetRsyncClientArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:TargetRsyncClient", name, {}, opts);
    const tgt = args.target;

    this.container = TARGET_SIDECAR;
    this.patch = patchWithSidecar(
      name,
      tgt,
      {
        name: TARGET_SIDECAR,
        image: args.image,
        imagePullPolicy: args.imagePullPolicy,
        command: ["sh", "-c", sidecarScript("idle"), TARGET_SIDECAR],
        env: [
          { name: "PTM_DATA", value: tgt.dataPath },
          { name: "PTM_PROM_URL", value: tgt.url },
          {
            name: "RSYNC_PASSWORD",
            valueFrom: { secretKeyRef: { name: args.secretName, key: PASSWORD_KEY } },
          },
        ],
        volumeMounts: [tsdbMount(tgt)],
        // Same user as Prometheus, so the blocks it installs are Prometheus's to read and compact.
        ...(tgt.securityContext ? { securityContext: tgt.securityContext } : {}),
        resources: { requests: { cpu: "10m", memory: "32Mi" } },
      },
      args.rolloutTimeoutSeconds,
      { parent: this },
    );

    this.registerOutputs({ container: this.container });
  }
}
