import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createAndDelete, execScript } from "../cluster/kubectl";
import { parseLastJsonLine, ULID_RE } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";

export interface BlockCopyArgs {
  /** Where the target keeps its TSDB. */
  target: TsdbLocation;
  /** The target sidecar to run in. */
  container: string;
  /** rsync URL of the snapshot directory on the source's daemon. */
  snapshotUrl: pulumi.Input<string>;
  /** ULIDs of the blocks to copy, from the plan. */
  blocks: pulumi.Input<string[]>;
  /** rsync --bwlimit value; empty = unlimited. */
  bandwidthLimit: string;
}

export interface CopyResult {
  copied: string[];
  skipped: string[];
  bytesCopied: number;
  bytesReceived?: number;
  bytesTotal: number;
}

/**
 * Parse and validate copy.sh output: ULID lists and byte counts, and exactly the blocks asked
 * for, each either copied or skipped (already staged). Anything else is an error naming the
 * step.
 */
export function parseCopy(stdout: string, asked: string[]): CopyResult {
  const fail = (what: string): never => {
    throw new Error(
      `block-copy: ${what} (run \`pulumi up\` again: finished blocks are not copied twice)`,
    );
  };
  let x: unknown;
  try {
    x = parseLastJsonLine(stdout);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (typeof x !== "object" || x === null || Array.isArray(x))
    return fail("expected {copied, skipped, bytesCopied, bytesTotal}");
  const o = x as Record<string, unknown>;
  const ulids = (key: string): string[] => {
    const v = o[key];
    if (!Array.isArray(v)) return fail(`${key} must be a list of block ULIDs`);
    v.forEach((u: unknown, i) => {
      if (typeof u !== "string" || !ULID_RE.test(u))
        fail(`${key}[${i}] is not a block ULID: ${JSON.stringify(u)}`);
    });
    return v as string[];
  };
  const bytes = (key: string): number => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      fail(`${key} must be a number >= 0, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const copied = ulids("copied");
  const skipped = ulids("skipped");
  const reported = new Set([...copied, ...skipped]);
  const lacking = asked.filter((u) => !reported.has(u));
  if (lacking.length > 0 || reported.size !== asked.length)
    fail(
      `the script reports ${reported.size} blocks copied or skipped, the plan has ` +
        `${asked.length} (not reported: ${lacking.join(", ") || "none"})`,
    );
  const r: CopyResult = {
    copied,
    skipped,
    bytesCopied: bytes("bytesCopied"),
    bytesTotal: bytes("bytesTotal"),
  };
  if (o["bytesReceived"] !== undefined) r.bytesReceived = bytes("bytesReceived");
  return r;
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
          execScript(ref, args.container, "cleanup-target", [], {}, "PTM_DELETE_SCRIPT"),
        ),
        create: pulumi
          .all([args.snapshotUrl, args.blocks])
          .apply(
            ([url, blocks]) =>
              execScript(
                ref,
                args.container,
                "copy",
                blocks,
                { PTM_RSYNC_URL: url, PTM_BWLIMIT: args.bandwidthLimit },
                "PTM_CREATE_SCRIPT",
              ).command,
          ),
        // Progress lines (block i/n, bytes, rate) are on stderr and show in `pulumi up`.
        logging: "stderr",
      },
      // The plan is fixed once its blocks are copied; later runs only verify again.
      { parent: this, ignoreChanges: ["create"], customTimeouts: { create: "24h" } },
    );
    this.result = pulumi
      .all([this.step.stdout, args.blocks])
      .apply(([out, blocks]) => parseCopy(out, blocks));
    this.registerOutputs({ result: this.result });
  }
}
