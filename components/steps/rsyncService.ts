import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  migrationLabels,
  MigrationNames,
  RSYNC_CONTAINER_PORT,
  RSYNC_SERVICE_PORT,
} from "../cluster/naming";

export interface RsyncServiceArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** Namespace of the source workload. */
  namespace: string;
  /** Name of the source workload; the Service is named after it. */
  sourceName: string;
  /** Labels of the source pods. */
  selector: Record<string, string>;
}

/** The seed's `<name>-rsync` Service: a ClusterIP on port 873 in front of the source's daemon. */
export class RsyncService extends pulumi.ComponentResource {
  public readonly name: pulumi.Output<string>;
  public readonly clusterIP: pulumi.Output<string>;
  /** The rsync URL of the daemon's module, reachable from any pod the policy admits. */
  public readonly moduleUrl: pulumi.Output<string>;

  constructor(name: string, args: RsyncServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:RsyncService", name, {}, opts);

    const svc = new k8s.core.v1.Service(
      name,
      {
        metadata: {
          name: args.names.rsyncObject(args.sourceName),
          namespace: args.namespace,
          labels: migrationLabels(args.names, "rsync"),
          // The provider would wait up to 10 min for a ready endpoint, i.e. for the source
          // sidecar; SourceRsyncDaemon's rollout watch says within a minute why it isn't.
          annotations: { "pulumi.com/skipAwait": "true" },
        },
        spec: {
          type: "ClusterIP",
          selector: args.selector,
          ports: [
            {
              name: "rsync",
              port: RSYNC_SERVICE_PORT,
              targetPort: RSYNC_CONTAINER_PORT,
              protocol: "TCP",
              // rsync's daemon speaks first: a mesh that sniffs the protocol (Istio) would wait
              // for the client; declared as TCP it is passed through, mTLS and all.
              appProtocol: "tcp",
            },
          ],
        },
      },
      { parent: this },
    );

    this.name = svc.metadata.name;
    this.clusterIP = svc.spec.clusterIP;
    // The ClusterIP rather than the DNS name: it works in clusters without cluster DNS too.
    this.moduleUrl = pulumi.interpolate`rsync://${svc.spec.clusterIP}:${RSYNC_SERVICE_PORT}`;
    this.registerOutputs({ name: this.name, clusterIP: this.clusterIP, moduleUrl: this.moduleUrl });
  }
}
