import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createAndDelete, localScript } from "../cluster/kubectl";
import { MigrationNames } from "../cluster/naming";
import { TsdbLocation } from "../decisions/workload";

export interface AdminApiSwitchArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** The source Prometheus. */
  source: TsdbLocation;
  /** How long its rollout may take. */
  rolloutTimeoutSeconds: number;
}

/**
 * Turns the source's admin API on for a head snapshot (`includeHead`) and, when deleted,
 * off again. It appends one flag to the container's args with a JSON patch and removes
 * exactly that element later, so the original args come back as they were; a
 * Server-Side Apply patch can't do that, because args is an atomic list. The same patch
 * records the change on the workload (an annotation naming the container), so a create that
 * fails or is killed after the patch is still undone: by itself when the rollout fails, or
 * by the revert (rollout-settle.sh), since a failed create leaves nothing in the state.
 */
export class AdminApiSwitch extends pulumi.ComponentResource {
  /** Whether the flag was added (false: it was on already, and stays). */
  public readonly changed: pulumi.Output<boolean>;

  constructor(name: string, args: AdminApiSwitchArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:AdminApiSwitch", name, {}, opts);
    const { ref } = args.source;
    const target = [ref.namespace, ref.kind.toLowerCase(), ref.name, ref.container];
    const timeout = String(args.rolloutTimeoutSeconds);
    // Whose record of the appended flag this is, on the workload (lib.sh admin_record_key).
    const stack = args.names.instance;
    const step = new command.local.Command(
      name,
      {
        ...createAndDelete(
          localScript(
            "admin-api",
            ["enable", ...target, timeout, stack],
            ref.access,
            "PTM_CREATE_SCRIPT",
          ),
          localScript(
            "admin-api",
            ["restore", ...target, timeout, stack],
            ref.access,
            "PTM_DELETE_SCRIPT",
          ),
        ),
      },
      {
        parent: this,
        customTimeouts: {
          create: `${args.rolloutTimeoutSeconds + 60}s`,
          delete: `${args.rolloutTimeoutSeconds + 60}s`,
        },
      },
    );
    this.changed = step.stdout.apply((out) => /"changed":true/.test(out));
    this.registerOutputs({ changed: this.changed });
  }
}
