import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { IngressRule } from "../decisions/access";
import { migrationLabels, MigrationNames } from "../cluster/naming";

export interface RsyncAccessPolicyArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** Namespace of the source workload. */
  namespace: string;
  /** Name of the source workload; the policy is named after it. */
  sourceName: string;
  /** Labels of the source pods, which the policy selects. */
  sourcePodLabels: Record<string, string>;
  /** Ingress rules, from `rsyncIngressRules`. */
  ingress: IngressRule[];
}

/** A NetworkPolicy that admits only the target's pods to the source's rsync daemon. */
export class RsyncAccessPolicy extends pulumi.ComponentResource {
  public readonly name: pulumi.Output<string>;

  constructor(name: string, args: RsyncAccessPolicyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:RsyncAccessPolicy", name, {}, opts);

    const policy = new k8s.networking.v1.NetworkPolicy(
      name,
      {
        metadata: {
          name: args.names.rsyncObject(args.sourceName),
          namespace: args.namespace,
          labels: migrationLabels(args.names, "rsync-access"),
        },
        spec: {
          podSelector: { matchLabels: args.sourcePodLabels },
          policyTypes: ["Ingress"],
          ingress: args.ingress,
        },
      },
      { parent: this },
    );

    this.name = policy.metadata.name;
    this.registerOutputs({ name: this.name });
  }
}
