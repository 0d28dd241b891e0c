import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createAndDelete, execScript } from "../cluster/kubectl";
import { BlockMeta, parseBlockList, parseLastJsonLine } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";

export interface SourceSnapshotArgs {
  /** Where the source keeps its TSDB. */
  source: TsdbLocation;
  /** The source sidecar to run in. */
  container: string;
  /** Directory name under <data>/snapshots. */
  snapshot: string;
  /** Ask Prometheus for a snapshot that includes the head (admin API). */
  includeHead: boolean;
}

export interface SnapshotResult {
  snapshot: string;
  blocks: BlockMeta[];
  createdMs: number;
  reused: boolean;
}

/**
 * Parse and validate snapshot.sh output (every block's meta.json included): output that does
 * not parse, or a snapshot other than the one asked for, is an error naming the step.
 */
export function parseSnapshot(stdout: string, expected: string): SnapshotResult {
  const fail = (what: string): never => {
    throw new Error(
      `source-snapshot: ${what} (run \`pulumi up\` again; if it persists, the source ` +
        `sidecar's snapshot.sh and this program differ)`,
    );
  };
  let x: unknown;
  try {
    x = parseLastJsonLine(stdout);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (typeof x !== "object" || x === null || Array.isArray(x))
    return fail("expected {snapshot, blocks, createdMs, reused}");
  const o = x as Record<string, unknown>;
  if (o["snapshot"] !== expected)
    fail(`the script reported snapshot ${JSON.stringify(o["snapshot"])}, not "${expected}"`);
  const createdMs = o["createdMs"];
  if (typeof createdMs !== "number" || !Number.isSafeInteger(createdMs) || createdMs <= 0)
    fail(`createdMs must be a ms timestamp, got ${JSON.stringify(createdMs)}`);
  if (typeof o["reused"] !== "boolean")
    fail(`reused must be true or false, got ${JSON.stringify(o["reused"])}`);
  let blocks: BlockMeta[] = [];
  try {
    blocks = parseBlockList(o["blocks"], "blocks");
  } catch (e) {
    fail((e as Error).message);
  }
  return {
    snapshot: expected,
    blocks,
    createdMs: createdMs as number,
    reused: o["reused"] as boolean,
  };
}

/**
 * Seed step 4a: a snapshot of the source's complete blocks, made of hard links, so it costs
 * almost no disk and survives the source's compactions while we copy. Deleting this step
 * (leaving `migrate`) removes the snapshot directory and nothing else.
 */
export class SourceSnapshot extends pulumi.ComponentResource {
  /** What the snapshot holds. */
  public readonly result: pulumi.Output<SnapshotResult>;

  constructor(name: string, args: SourceSnapshotArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ptm:index:SourceSnapshot", name, {}, opts);
    const env = { PTM_SNAPSHOT: args.snapshot };
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
          execScript(
            args.source.ref,
            args.container,
            "cleanup-source",
            [],
            env,
            "PTM_DELETE_SCRIPT",
          ),
        ),
        // Progress is on stderr; the JSON result (every block's meta.json) stays out of the log.
        logging: "stderr",
      },
      { parent: this },
    );
    this.result = step.stdout.apply((out) => parseSnapshot(out, args.snapshot));
    this.registerOutputs({ result: this.result });
  }
}
