import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { recordEvent } from "../cluster/events";
import { createAndDelete, execScript, localScript, sidecarScript } from "../cluster/kubectl";
import { MigrationNames } from "../cluster/naming";
import { readSnapshotBlocks } from "../cluster/clusterReads";
import { snapshotLeftBehind } from "../decisions/leftBehind";
import { BlockMeta, parseSnapshot, SnapshotResult } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";
import { failingAs, resourceError } from "./failure";

export interface SourceSnapshotArgs {
  /** The migration's names in the cluster (cluster/naming.ts): whose Event this step records. */
  names: MigrationNames;
  /** Where the source keeps its TSDB. */
  source: TsdbLocation;
  /** The source sidecar to run in. */
  container: string;
  /** Directory name under <data>/snapshots. */
  snapshot: string;
  /** Ask Prometheus for a snapshot that includes the head (admin API). */
  includeHead: boolean;
}

/**
 * Seed step 4a: a snapshot of the source's complete blocks, made of hard links, so it costs
 * almost no disk and survives the source's compactions while we copy. Deleting this step
 * (leaving `migrate`) removes the snapshot directory and nothing else.
 */
export class SourceSnapshot extends pulumi.ComponentResource {
  /** The snapshot: its name, how many blocks and bytes it holds, when it was made. */
  public readonly result: pulumi.Output<SnapshotResult>;
  /**
   * Every block's meta.json, read from the snapshot after the step (and on every later run)
   * and checked against `result`; not kept in the state, which must not grow with the blocks.
   */
  public readonly blocks: pulumi.Output<BlockMeta[]>;

  constructor(name: string, args: SourceSnapshotArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:SourceSnapshot", name, {}, opts);
    const env = { PTM_SNAPSHOT: args.snapshot };
    // The removal runs in the source's sidecar, through a script on this machine that first
    // looks whether a pod is left to run it in: the old server may be deleted or scaled to 0
    // by the revert, and then the revert says what stays on the volume instead of failing.
    const { ref } = args.source;
    const cleanupArgs = [
      ref.namespace,
      ref.kind.toLowerCase(),
      ref.name,
      ref.pod ?? "",
      args.container,
      args.snapshot,
      snapshotLeftBehind(args.source, args.snapshot),
    ];
    const local = localScript("snapshot-cleanup", cleanupArgs, ref.access, "PTM_DELETE_SCRIPT");
    const cleanup = {
      command: local.command,
      environment: { ...local.environment, PTM_CLEANUP_SCRIPT: sidecarScript("cleanup-source") },
    };
    const step = new command.local.Command(
      name,
      {
        ...createAndDelete(
          execScript(
            args.source.ref,
            args.container,
            "snapshot",
            [],
            {
              ...env,
              PTM_INCLUDE_HEAD: String(args.includeHead),
            },
            "PTM_CREATE_SCRIPT",
          ),
          cleanup,
        ),
        // Progress is on stderr; the JSON summary stays out of the log.
        logging: "stderr",
      },
      { parent: this },
    );
    this.result = step.stdout.apply((out) =>
      failingAs(this, () => parseSnapshot(out, args.snapshot)),
    );
    recordEvent(
      `${name}-event`,
      args.names,
      args.source.ref,
      "MigrationSnapshotTaken",
      this.result.apply(
        (r) =>
          `Snapshot ${r.snapshot} taken for the migration: ${r.blockCount} blocks, ${r.bytes} bytes`,
      ),
      { parent: this, dependsOn: [step] },
    );
    this.blocks = this.result.apply((made) =>
      readSnapshotBlocks(args.source.ref, args.container, made).catch((e: unknown) => {
        throw resourceError(this, e);
      }),
    );
    this.registerOutputs({ result: this.result });
  }
}
