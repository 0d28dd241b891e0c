import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { execScript } from "../cluster/kubectl";
import {
  CountsResult,
  ExpectedBlock,
  loadWaitEnv,
  parseCounts,
  Verification,
  verifyMigration,
} from "../decisions/verify";
import { TsdbLocation } from "../decisions/workload";

export interface MigrationVerificationArgs {
  source: TsdbLocation;
  sourceContainer: string;
  target: TsdbLocation;
  targetContainer: string;
  /** Ends (ms) of the aligned windows to compare, all before the cutoff. */
  windowEnds: pulumi.Input<number[]>;
  /** Earliest sample the target scraped itself: windows before it must match exactly. */
  targetEarliestMs: pulumi.Input<number | undefined>;
  /**
   * Oldest imported block's minTime: wait until the target has hot-loaded down to it. Must be
   * a ms timestamp (Infinity, what Math.min() of no blocks gives, is refused) unless `blocks`
   * is given and empty.
   */
  loadedDownToMs: pulumi.Input<number>;
  /**
   * The plan's blocks (`expectedBlocks(plan.blocks)`): the target must have loaded exactly
   * these IDs with these numSamples and numSeries. When not given, the blocks are not checked
   * (and the result says so), and no window compared is a failure.
   */
  blocks?: pulumi.Input<ExpectedBlock[]>;
  /** The plan's gap: with no blocks and no gap there is nothing to verify. */
  gapMs?: pulumi.Input<number>;
  /** The install step; verification runs after it. */
  after: pulumi.Resource[];
}

/** The verdict (ok only when something was proven), with both servers' TSDB health. */
export type VerificationResult = Verification;

/**
 * Seed step 5, as proof instead of a look at the logs: sample counts of the source and the
 * target in aligned windows, the plan's blocks loaded on the target with their stats, and
 * the target's TSDB health. Read-only probes, run again on every later `up`, so checking the
 * next compactions is a glance at the stack outputs. Anything that does not prove the copy
 * (a mismatch, no compared window, a failed reload, a missing block, output that does not
 * parse) fails the `up` with the numbers.
 */
export class MigrationVerification extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<VerificationResult>;

  constructor(
    name: string,
    args: MigrationVerificationArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("ptm:index:MigrationVerification", name, {}, opts);
    const counts = (
      side: "source" | "target",
      loc: TsdbLocation,
      container: string,
      env: Record<string, string>,
    ): pulumi.Output<CountsResult> =>
      pulumi.output(args.windowEnds).apply((ends) =>
        command.local
          .runOutput(
            {
              ...execScript(loc.ref, container, "counts", ends.map(String), env),
              logging: "stderr",
            },
            { parent: this, dependsOn: args.after },
          )
          .apply((r) => {
            try {
              return parseCounts(r.stdout);
            } catch (e) {
              const { kind, namespace, name: n } = loc.ref;
              throw new Error(
                `verification: counts.sh on the ${side} ${kind} ${namespace}/${n}: ` +
                  `${(e as Error).message} (run \`pulumi up\` again; if it persists, the ` +
                  `sidecar's scripts and this program differ)`,
              );
            }
          }),
      );
    const target = pulumi
      .all([args.loadedDownToMs, args.blocks])
      .apply(([ms, blocks]) =>
        counts("target", args.target, args.targetContainer, loadWaitEnv(ms, blocks)),
      );
    const source = counts("source", args.source, args.sourceContainer, {});

    this.result = pulumi
      .all([args.windowEnds, source, target, args.targetEarliestMs, args.blocks, args.gapMs])
      .apply(([windowEnds, s, t, earliest, blocks, gapMs]) => {
        const v = verifyMigration({
          windowEnds,
          source: s,
          target: t,
          targetEarliestMs: earliest,
          blocks,
          gapMs,
        });
        if (!v.ok) throw new Error(`verification failed: ${v.summary}`);
        return v;
      });
    this.registerOutputs({ result: this.result });
  }
}
