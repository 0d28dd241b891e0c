import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { execScript } from "../cluster/kubectl";
import { lastJsonLine } from "../decisions/sidecarOutput";
import { CountsResult, compareCounts, Comparison } from "../decisions/verify";
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
  /** Oldest imported block's minTime: wait until the target has hot-loaded down to it. */
  loadedDownToMs: pulumi.Input<number>;
  /** The install step; verification runs after it. */
  after: pulumi.Resource[];
}

export interface VerificationResult extends Comparison {
  targetHealth: CountsResult["health"];
  sourceHealth: CountsResult["health"];
}

/**
 * Seed step 5, as proof instead of a look at the logs: sample counts of the source and the
 * target in aligned windows, and the target's TSDB health. Read-only probes, run again on
 * every later `up`, so checking the next compactions is a glance at the stack outputs.
 * A mismatch or a failed reload fails the `up` with the numbers.
 */
export class MigrationVerification extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<VerificationResult>;

  constructor(
    name: string,
    args: MigrationVerificationArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("ptm:index:MigrationVerification", name, {}, opts);
    const counts = (loc: TsdbLocation, container: string, env: Record<string, string>) =>
      pulumi.output(args.windowEnds).apply((ends) =>
        command.local
          .runOutput(
            {
              ...execScript(loc.ref, container, "counts", ends.map(String), env),
              logging: "stderr",
            },
            { parent: this, dependsOn: args.after },
          )
          .apply((r) => lastJsonLine<CountsResult>(r.stdout, `counts on ${loc.ref.name}`)),
      );
    const target = pulumi
      .output(args.loadedDownToMs)
      .apply((ms) => counts(args.target, args.targetContainer, { PTM_WAIT_LOADED_MS: String(ms) }));
    const source = counts(args.source, args.sourceContainer, {});

    this.result = pulumi.all([source, target, args.targetEarliestMs]).apply(([s, t, earliest]) => {
      const cmp = compareCounts(s.windows, t.windows, earliest);
      const failures = (t.health.reloadFailures ?? 0) + (t.health.compactionsFailed ?? 0);
      if (!cmp.ok) {
        throw new Error(`verification failed: ${cmp.summary}`);
      }
      if (failures > 0) {
        throw new Error(
          `verification failed: the target reports ${t.health.reloadFailures} reload and ` +
            `${t.health.compactionsFailed} compaction failures; see its log`,
        );
      }
      return { ...cmp, targetHealth: t.health, sourceHealth: s.health };
    });
    this.registerOutputs({ result: this.result });
  }
}
