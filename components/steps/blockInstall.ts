import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { execScript } from "../cluster/kubectl";
import { parseLastJsonLine, ULID_RE } from "../decisions/sidecarOutput";
import { TsdbLocation } from "../decisions/workload";

export interface BlockInstallArgs {
  /** Where the target keeps its TSDB. */
  target: TsdbLocation;
  /** The target sidecar to run in. */
  container: string;
  /** ULIDs of the copied blocks. */
  blocks: pulumi.Input<string[]>;
}

export interface InstallResult {
  installed: string[];
  alreadyPresent: string[];
}

/**
 * Parse and validate install.sh output: exactly the blocks asked for, each installed now or
 * already present. Anything else is an error naming the step.
 */
export function parseInstall(stdout: string, asked: string[]): InstallResult {
  const fail = (what: string): never => {
    throw new Error(`block-install: ${what} (run \`pulumi up\` again: installed blocks stay)`);
  };
  let x: unknown;
  try {
    x = parseLastJsonLine(stdout);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (typeof x !== "object" || x === null || Array.isArray(x))
    return fail("expected {installed, alreadyPresent}");
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
  const installed = ulids("installed");
  const alreadyPresent = ulids("alreadyPresent");
  const reported = new Set([...installed, ...alreadyPresent]);
  const lacking = asked.filter((u) => !reported.has(u));
  if (lacking.length > 0 || reported.size !== asked.length)
    fail(
      `the script reports ${reported.size} blocks installed or present, asked for ` +
        `${asked.length} (not reported: ${lacking.join(", ") || "none"})`,
    );
  return { installed, alreadyPresent };
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
      .apply(([out, blocks]) => parseInstall(out, blocks));
    this.registerOutputs({ result: this.result });
  }
}
