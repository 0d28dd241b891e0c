import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { recordEvent } from "../cluster/events";
import { exitOnStdout, ranFromStdout, said } from "../cluster/clusterReads";
import { execScript } from "../cluster/kubectl";
import { migrationLabels, MigrationNames } from "../cluster/naming";
import { iso } from "../decisions/time";
import { parseRecord, serializeRecord, VerificationRecord } from "../decisions/verificationRecord";
import {
  CountsResult,
  ExpectedBlock,
  loadWaitEnv,
  parseCounts,
  Verification,
  verifyMigration,
} from "../decisions/verify";
import { TsdbLocation } from "../decisions/workload";
import { failingAs } from "./failure";

export interface MigrationVerificationArgs {
  /** The migration's names in the cluster (cluster/naming.ts). */
  names: MigrationNames;
  /** The verification record's ConfigMap (one per verified replica). */
  recordName: string;
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
   * these IDs with these numSamples and numSeries (or blocks compacted from them).
   */
  blocks: pulumi.Input<ExpectedBlock[]>;
  /** The plan's gap: with no blocks and no gap there is nothing to verify. */
  gapMs: pulumi.Input<number>;
  /** The install step; verification runs after it. */
  after: pulumi.Resource[];
}

/** Key of the record in its ConfigMap. */
const RECORD_KEY = "record.json";

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
  /** The plan and the source's counts as taken at the install: what later runs verify against. */
  public readonly record: pulumi.Output<VerificationRecord>;

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
      windows: pulumi.Input<number[]> = args.windowEnds,
      after: pulumi.Resource[] = args.after,
    ): pulumi.Output<CountsResult> =>
      pulumi.output(windows).apply((ends) => {
        const script = execScript(
          loc.ref,
          container,
          "counts",
          ends.map(String),
          env,
          "PTM_SCRIPT",
          {
            exec: false,
          },
        );
        return command.local
          .runOutput(
            {
              command: exitOnStdout(script.command),
              environment: script.environment,
              logging: "stderr",
            },
            { parent: this, dependsOn: after },
          )
          .apply((res) => {
            const r = ranFromStdout(res.stdout, res.stderr);
            const { kind, namespace, name: n } = loc.ref;
            if (r.code !== 0) {
              // The pod restarted or went away (kubectl exec failed), or counts.sh failed: said.
              throw new pulumi.ResourceError(
                `verification: counts.sh on the ${side} ${kind} ${namespace}/${n} did not finish ` +
                  `(${said(r)}). If its pod is restarting or was replaced, run \`pulumi up\` ` +
                  `again once it runs: what was installed is kept, and the verification runs again`,
                this,
                true,
              );
            }
            try {
              return parseCounts(r.stdout);
            } catch (e) {
              throw new pulumi.ResourceError(
                `verification: counts.sh on the ${side} ${kind} ${namespace}/${n}: ` +
                  `${(e as Error).message} (run \`pulumi up\` again; if it persists, the ` +
                  `sidecar's scripts and this program differ)`,
                this,
                true,
              );
            }
          });
      });
    // The record, taken once at the install and kept in the state (ignoreChanges): later
    // runs verify against it, not against live servers whose data has moved on since.
    const source = counts("source", args.source, args.sourceContainer, {});
    const taken = pulumi
      .all([
        args.windowEnds,
        args.targetEarliestMs,
        args.loadedDownToMs,
        args.blocks,
        args.gapMs,
        source,
      ])
      .apply(([windowEnds, targetEarliestMs, loadedDownToMs, blocks, gapMs, s]) => {
        // A load-wait time that would pass at once is refused before it is frozen.
        loadWaitEnv(loadedDownToMs, blocks);
        return serializeRecord({
          frozenAtMs: Date.now(),
          windowEnds,
          targetEarliestMs,
          loadedDownToMs: blocks.length === 0 ? 0 : loadedDownToMs,
          blocks,
          gapMs,
          source: s,
        });
      });
    const record = new k8s.core.v1.ConfigMap(
      `${name}-record`,
      {
        metadata: {
          name: args.recordName,
          namespace: args.target.ref.namespace,
          labels: migrationLabels(args.names, "verification-record"),
        },
        data: { [RECORD_KEY]: taken },
      },
      { parent: this, dependsOn: args.after, ignoreChanges: ["data"] },
    );
    this.record = record.data.apply((d) =>
      failingAs(this, () => parseRecord(d?.[RECORD_KEY] ?? "")),
    );
    const target = this.record.apply((r) =>
      counts(
        "target",
        args.target,
        args.targetContainer,
        loadWaitEnv(r.loadedDownToMs, r.blocks),
        r.windowEnds,
        [record],
      ),
    );

    // `taken` too, so that a refusal while taking the record fails this step's result.
    this.result = pulumi.all([taken, this.record, target]).apply(([, r, t]) => {
      const v = verifyMigration({
        windowEnds: r.windowEnds,
        source: r.source,
        target: t,
        targetEarliestMs: r.targetEarliestMs,
        blocks: r.blocks,
        gapMs: r.gapMs,
        loadedDownToMs: r.blocks.length > 0 ? r.loadedDownToMs : undefined,
      });
      if (!v.ok) throw new pulumi.ResourceError(`verification failed: ${v.summary}`, this, true);
      return {
        ...v,
        summary: `${v.summary}; against the record taken at the install (${iso(r.frozenAtMs)})`,
      };
    });
    // Only once the verification passed: its message waits for the result.
    recordEvent(
      `${name}-event`,
      args.names,
      args.target.ref,
      "MigrationVerified",
      this.result.apply((v) => `Migration verified: ${v.summary}`),
      { parent: this, dependsOn: [record] },
    );
    this.registerOutputs({ result: this.result });
  }
}
