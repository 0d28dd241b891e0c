import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createAndDelete, execScript } from "../cluster/kubectl";
import { parseWait } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";
import { failingAs } from "./failure";

export interface CompactionWaitArgs {
  /** Where the source keeps its TSDB. */
  source: TsdbLocation;
  /** The source sidecar to run in. */
  container: string;
  /** Wait until the source has a block that reaches this time (ms); 0 = don't wait. */
  untilMs: number;
  /** The most this step may wait. */
  maxWaitMinutes: number;
}

/**
 * Seed step 3, "sync with the compaction times": when the plan's gap shrinks after the
 * source's next head compaction, wait for it before taking the snapshot.
 */
export class CompactionWait extends pulumi.ComponentResource {
  public readonly waitedSeconds: pulumi.Output<number>;
  public readonly step: command.local.Command;

  constructor(name: string, args: CompactionWaitArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:CompactionWait", name, {}, opts);
    const limitSeconds = Math.max(60, args.maxWaitMinutes * 60 + 300);
    this.step = new command.local.Command(
      name,
      {
        ...createAndDelete(
          execScript(args.source.ref, args.container, "wait-compaction", [], {
            PTM_AFTER_MS: String(args.untilMs),
            PTM_WAIT_SECONDS: String(limitSeconds),
          }),
        ),
        // A new decision to wait (a rerun before the snapshot exists) must wait, not be ignored
        // as a changed create line: a changed wait replaces this step. A resumed decision
        // brings the recorded wait back, so it shows no change.
        triggers: [args.untilMs],
      },
      // Once waited, the moment has passed: later runs must not wait again or show a change.
      {
        parent: this,
        ignoreChanges: ["create"],
        customTimeouts: { create: `${limitSeconds + 60}s` },
      },
    );
    this.waitedSeconds = this.step.stdout.apply((out) =>
      out ? failingAs(this, () => parseWait(out)).waitedSeconds : 0,
    );
    this.registerOutputs({ waitedSeconds: this.waitedSeconds });
  }
}
