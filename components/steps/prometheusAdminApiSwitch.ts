import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { localScript } from "../cluster/kubectl";
import { podsWorkload } from "../decisions/prometheusResource";
import { TsdbLocation } from "../decisions/workload";

export interface PrometheusAdminApiSwitchArgs {
  /** The source: a prometheus-operator `Prometheus` resource. */
  source: TsdbLocation;
  /** How long its rollout may take. */
  rolloutTimeoutSeconds: number;
}

/**
 * The admin API of a `Prometheus` source for a head snapshot (`includeHead`), through the
 * resource's `spec.enableAdminAPI` (the operator owns the container's args). The change and
 * the wait are two commands: a change whose rollout then fails is in the state, so the revert
 * still undoes it. Deleting the change puts the field back as it was: `false` stays `false`,
 * unset stays unset (prometheus-resource.sh).
 */
export class PrometheusAdminApiSwitch extends pulumi.ComponentResource {
  /** Whether the field was changed (false: it was true already, and stays). */
  public readonly changed: pulumi.Output<boolean>;
  /** Done once every replica runs with the admin API on. */
  public readonly ready: command.local.Command;

  constructor(
    name: string,
    args: PrometheusAdminApiSwitchArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("ptm:index:PrometheusAdminApiSwitch", name, {}, opts);
    const { ref } = args.source;
    const sts = podsWorkload(args.source);
    const timeout = String(args.rolloutTimeoutSeconds);
    const enable = localScript(
      "prometheus-resource",
      ["enable-admin-api", ref.namespace, ref.name],
      ref.access,
    );
    const restore = localScript(
      "prometheus-resource",
      ["restore-admin-api", ref.namespace, ref.name, sts.name, timeout],
      ref.access,
    );
    const change = new command.local.Command(
      name,
      { create: enable.command, delete: restore.command, environment: enable.environment },
      {
        parent: this,
        customTimeouts: { delete: `${2 * args.rolloutTimeoutSeconds + 60}s` },
      },
    );
    const reconciled = localScript(
      "prometheus-resource",
      [
        "wait-generated",
        ref.namespace,
        ref.name,
        sts.name,
        "has-flag",
        "--web.enable-admin-api",
        timeout,
      ],
      ref.access,
      "PTM_WAIT_SCRIPT",
    );
    const watch = localScript(
      "rollout-watch",
      [sts.namespace, "statefulset", sts.name, ref.container, timeout],
      sts.access,
    );
    this.ready = new command.local.Command(
      `${name}-rollout`,
      {
        create: `${reconciled.command} && ${watch.command}`,
        environment: { ...reconciled.environment, ...watch.environment },
      },
      {
        parent: this,
        dependsOn: [change],
        customTimeouts: { create: `${2 * args.rolloutTimeoutSeconds + 120}s` },
      },
    );
    this.changed = change.stdout.apply((out) => /"changed":true/.test(out));
    this.registerOutputs({ changed: this.changed });
  }
}
