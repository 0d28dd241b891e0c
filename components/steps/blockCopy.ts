import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { recordEvent } from "../cluster/events";
import { createAndDelete, execScript, localScript, sidecarScript } from "../cluster/kubectl";
import { stagingLeftBehind } from "../decisions/leftBehind";
import { MigrationNames } from "../cluster/naming";
import { CopyResult, parseCopy } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";
import { AutoStreamsMax } from "../decisions/config";
import { failingAs } from "./failure";

export interface BlockCopyArgs {
  /** The migration's names in the cluster (cluster/naming.ts): whose Event this step records. */
  names: MigrationNames;
  /** Where the target keeps its TSDB. */
  target: TsdbLocation;
  /** The target sidecar to run in. */
  container: string;
  /** rsync URL of the snapshot directory on the source's daemon. */
  snapshotUrl: pulumi.Input<string>;
  /** ULIDs of the blocks to copy, from the plan. */
  blocks: pulumi.Input<string[]>;
  /** rsync --bwlimit value for the whole copy (shared by the streams); empty = unlimited. */
  bandwidthLimit: string;
  /** Parallel rsync streams over disjoint blocks (1..16), or auto (copy.sh). */
  streams: number | "auto";
  /** auto's most streams as far as the source's side goes, and why; undefined: none known. */
  streamsMax?: AutoStreamsMax;
}

/**
 * Seed step 4b: rsync the planned blocks into a staging directory on the target's volume.
 * Resumable: a rerun after an interruption copies only what is missing. It refuses, before
 * copying anything, when the blocks don't fit. Leaving `migrate` removes the staging dir.
 */
export class BlockCopy extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<CopyResult>;
  public readonly step: command.local.Command;

  constructor(name: string, args: BlockCopyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:BlockCopy", name, {}, opts);
    const { ref } = args.target;
    this.step = new command.local.Command(
      name,
      {
        // Scripts in the environment (kept in the state for the delete); the create line
        // names the planned blocks.
        ...createAndDelete(
          execScript(ref, args.container, "copy", [], {}, "PTM_CREATE_SCRIPT"),
          stagingCleanup(args.target, args.container),
        ),
        create: pulumi.all([args.snapshotUrl, args.blocks]).apply(
          ([url, blocks]) =>
            execScript(
              ref,
              args.container,
              "copy",
              blocks,
              {
                PTM_RSYNC_URL: url,
                PTM_BWLIMIT: args.bandwidthLimit,
                PTM_STREAMS: String(args.streams),
                ...(args.streams === "auto" && args.streamsMax !== undefined
                  ? {
                      PTM_STREAMS_MAX: String(args.streamsMax.streams),
                      PTM_STREAMS_MAX_WHY: args.streamsMax.why,
                    }
                  : {}),
              },
              "PTM_CREATE_SCRIPT",
            ).command,
        ),
        // Progress lines (blocks i/n, bytes, rate, summed over the streams; as many for 10
        // blocks as for 10,000, since the state keeps them) are on stderr and show in `pulumi up`.
        logging: "stderr",
      },
      // The plan is fixed once its blocks are copied; later runs only verify again.
      { parent: this, ignoreChanges: ["create"], customTimeouts: { create: "24h" } },
    );
    this.result = pulumi
      .all([this.step.stdout, args.blocks])
      .apply(([out, blocks]) => failingAs(this, () => parseCopy(out, blocks)));
    recordEvent(
      `${name}-event`,
      args.names,
      args.target.ref,
      "MigrationCopyDone",
      this.result.apply(
        (r) =>
          `Copy done: ${r.copied} blocks copied (${r.skipped} already there), ${r.bytesTotal} bytes staged for the migration`,
      ),
      { parent: this, dependsOn: [this.step] },
    );
    this.registerOutputs({ result: this.result });
  }
}

/**
 * The copy's delete: removes the staging dir in the target's sidecar, through
 * snapshot-cleanup.sh, which first looks whether the replica still has a pod: one removed
 * since the decision (issue 20 row 7) has none, and then the delete says what stays where.
 */
function stagingCleanup(
  target: TsdbLocation,
  container: string,
): { command: string; environment: Record<string, string> } {
  const { ref } = target;
  const local = localScript(
    "snapshot-cleanup",
    [
      ref.namespace,
      ref.kind.toLowerCase(),
      ref.name,
      ref.pod ?? "",
      container,
      "",
      stagingLeftBehind(target),
      "cleanup-target",
      "the staging dir",
    ],
    ref.access,
    "PTM_DELETE_SCRIPT",
  );
  return {
    command: local.command,
    environment: { ...local.environment, PTM_CLEANUP_SCRIPT: sidecarScript("cleanup-target") },
  };
}
