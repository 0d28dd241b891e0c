import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { recordEvent } from "../cluster/events";
import { execScript } from "../cluster/kubectl";
import { MigrationNames } from "../cluster/naming";
import { InstallResult, parseInstall } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";
import { failingAs } from "./failure";

export interface BlockInstallArgs {
  /** The migration's names in the cluster (cluster/naming.ts): whose Event this step records. */
  names: MigrationNames;
  /** Where the target keeps its TSDB. */
  target: TsdbLocation;
  /** The target sidecar to run in. */
  container: string;
  /** ULIDs of the copied blocks. */
  blocks: pulumi.Input<string[]>;
}

/**
 * Seed step 4c, without the seed's restart: each copied block is renamed into the target's
 * data dir, where the running Prometheus loads it within a minute. A restart would throw
 * away the target's own samples older than the newest imported block, so there is none.
 * Installed blocks are the target's data from then on: leaving `migrate` keeps them.
 */
export class BlockInstall extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<InstallResult>;
  public readonly step: command.local.Command;

  constructor(name: string, args: BlockInstallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:BlockInstall", name, {}, opts);
    this.step = new command.local.Command(
      name,
      {
        create: pulumi
          .output(args.blocks)
          .apply(
            (blocks) => execScript(args.target.ref, args.container, "install", blocks).command,
          ),
        environment: execScript(args.target.ref, args.container, "install").environment,
      },
      { parent: this, ignoreChanges: ["create"] },
    );
    this.result = pulumi
      .all([this.step.stdout, args.blocks])
      .apply(([out, blocks]) => failingAs(this, () => parseInstall(out, blocks)));
    recordEvent(
      `${name}-event`,
      args.names,
      args.target.ref,
      "MigrationInstallDone",
      this.result.apply(
        (r) =>
          `Install done: ${r.installed} migrated blocks moved into the TSDB (${r.alreadyPresent} already there${r.presentByLineage ? `, ${r.presentByLineage} of them inside blocks the target compacted` : ""}), no restart`,
      ),
      { parent: this, dependsOn: [this.step] },
    );
    this.registerOutputs({ result: this.result });
  }
}
