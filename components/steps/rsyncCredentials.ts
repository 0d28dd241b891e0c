import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { migrationLabels, MigrationNames, PASSWORD_KEY } from "../cluster/naming";

export interface RsyncCredentialsArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** Namespace of the source workload: the daemon reads the password there. */
  sourceNamespace: string;
  /** Namespace of the target workload: the client reads the password there. */
  targetNamespace: string;
}

/**
 * A random password for this migration only, kept as a secret in the state and handed to
 * both sidecars through Secrets (one per namespace, since pods can only read their own).
 */
export class RsyncCredentials extends pulumi.ComponentResource {
  /** Name of the Secret in the source namespace. */
  public readonly sourceSecretName: pulumi.Output<string>;
  /** Name of the Secret in the target namespace. */
  public readonly targetSecretName: pulumi.Output<string>;
  /**
   * A random ID of this migration, made once and gone at the revert: the source sidecar
   * records it in the snapshots it makes, so a leftover of another attempt is never reused.
   */
  public readonly migrationId: pulumi.Output<string>;

  constructor(name: string, args: RsyncCredentialsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:RsyncCredentials", name, {}, opts);

    // Generated once at create and stored encrypted; never logged.
    const password = new command.local.Command(
      `${name}-password`,
      {
        create: "od -An -tx1 -N24 /dev/urandom | tr -d ' \\n'",
        logging: "none",
      },
      { parent: this, additionalSecretOutputs: ["stdout"] },
    );

    const id = new command.local.Command(
      `${name}-migration-id`,
      { create: "od -An -tx1 -N8 /dev/urandom | tr -d ' \\n'", logging: "none" },
      { parent: this },
    );
    this.migrationId = id.stdout;

    const secretName = args.names.rsyncSecret;
    const makeSecret = (suffix: string, namespace: string) =>
      new k8s.core.v1.Secret(
        `${name}-${suffix}`,
        {
          metadata: {
            name: secretName,
            namespace,
            labels: migrationLabels(args.names, "rsync-credentials"),
          },
          type: "Opaque",
          stringData: { [PASSWORD_KEY]: pulumi.secret(password.stdout) },
        },
        { parent: this },
      );

    const source = makeSecret("source", args.sourceNamespace);
    const target =
      args.targetNamespace === args.sourceNamespace
        ? source
        : makeSecret("target", args.targetNamespace);

    this.sourceSecretName = source.metadata.name;
    this.targetSecretName = target.metadata.name;
    this.registerOutputs({
      sourceSecretName: this.sourceSecretName,
      targetSecretName: this.targetSecretName,
    });
  }
}
