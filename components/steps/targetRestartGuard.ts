import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { localScript, sidecarScript } from "../cluster/kubectl";
import { WorkloadRef } from "../decisions/config";

export interface TargetRestartGuardArgs {
  /**
   * The workload whose pod template carries the target's sidecar (for a `Prometheus`
   * resource: the StatefulSet its operator generates).
   */
  target: WorkloadRef;
  /** Every pod that restarts when the sidecar goes, as kubectl names them (`pod/x`, `statefulset/x`). */
  pods: string[];
  /** Its TSDB path and API URL, as its sidecar sees them. */
  dataPath: string;
  url: string;
  /** The target's sidecar container. */
  sidecar: string;
  /**
   * Don't check when deleted: the forceRevert config, or a revert whose check the program has
   * just made.
   */
  force: boolean;
  /** Every other resource of the migration: they are deleted only after the guard. */
  guards: pulumi.Input<pulumi.Resource>[];
}

/**
 * Seed step 6, "remove the sidecars", guarded at `pulumi destroy` as at the revert: removing
 * the target's sidecar restarts it, which drops its own samples older than the newest
 * imported block until its next compaction. `pulumi destroy` does not run the program, so
 * the check is this resource's delete (components/cluster/restart-guard.sh). Every other
 * resource is a dependency of the guard, so the guard is deleted first: a refused check stops
 * the destroy before anything is changed, with the reason, the time when it is safe, and how
 * to force it.
 */
export class TargetRestartGuard extends pulumi.ComponentResource {
  constructor(name: string, args: TargetRestartGuardArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:TargetRestartGuard", name, {}, opts);
    const ref = args.target;
    const guard = localScript(
      "restart-guard",
      [
        ref.namespace,
        ref.kind.toLowerCase(),
        ref.name,
        args.pods.join(","),
        args.sidecar,
        ref.container,
        args.dataPath,
        args.url,
      ],
      ref.access,
    );
    new command.local.Command(
      name,
      {
        create: "echo 'restart-guard: armed: pulumi destroy checks the target restart first' >&2",
        // An update only stores the new inputs (forceRevert, the target): no replacement, whose
        // delete would run the check with the old ones.
        update: "echo 'restart-guard: updated' >&2",
        delete: guard.command,
        environment: {
          ...guard.environment,
          PTM_PROBE_SCRIPT: sidecarScript("probe"),
          ...(args.force ? { PTM_FORCE_REVERT: "true" } : {}),
        },
      },
      { parent: this, dependsOn: args.guards },
    );
    this.registerOutputs({});
  }
}
