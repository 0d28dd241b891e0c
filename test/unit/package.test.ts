// The package as another project gets it: `npm pack` of this repository (which builds dist/),
// the tarball installed into a fresh project with its own Pulumi.yaml and package.json, and a
// program there that imports the package by name, compiled against its .d.ts and run with
// plain node (no ts-node), under Pulumi mocks. The mocks are this harness's: the program sends
// each registration and invoke to this process, which answers from the fake cluster.

import * as assert from "node:assert/strict";
import { ChildProcess, execFile, fork } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { readScript, sidecarScript } from "../../components/cluster/kubectl";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { byType, fakeMocks, newSeen, one, RunResult, Seen } from "./harness";

const REPO = path.resolve(__dirname, "..", "..");
const NAME = "prometheus-tsdb-migration";

/** Runs a command; its output is kept for the error when it fails. */
async function sh(cmd: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(cmd, args, {
      cwd,
      maxBuffer: 64 << 20,
      // A plain node for whatever the command starts: no ts-node from this process.
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    return stdout;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${x.message}\n${x.stdout}\n${x.stderr}`);
  }
}

// The other project's program: by name, typed from the package's .d.ts, through the root and
// the documented subpath. Its mocks ask the parent (the IPC channel of fork) for every answer.
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import type { MigrationOutputProperties } from "${NAME}";
import { outputsOf, PrometheusTsdbMigration, PrometheusWorkloadArgs } from "${NAME}/components";

interface Reply { id: number; result?: unknown; error?: string }
const waiting = new Map<number, (r: Reply) => void>();
let next = 0;
process.on("message", (r: Reply) => waiting.get(r.id)?.(r));
function ask<T>(kind: "newResource" | "call", args: unknown): Promise<T> {
  const id = next++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, (r) => {
      waiting.delete(id);
      if (r.error !== undefined) reject(new Error(r.error));
      else resolve(r.result as T);
    });
    process.send!({ id, kind, args });
  });
}

async function main(): Promise<void> {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => ask<{ id: string; state: Record<string, unknown> }>("newResource", args),
      call: (args) => ask<Record<string, unknown>>("call", args),
    },
    "ptm-consumer",
    "test",
    true,
    "organization",
  );
  const source = JSON.parse(process.env.PTM_SOURCE ?? "{}") as PrometheusWorkloadArgs;
  const m = new PrometheusTsdbMigration("move-history", { phase: "prepare", source });
  await m.ready;
  const raw: MigrationOutputProperties = outputsOf(m);
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw) as [string, pulumi.Output<unknown>][]) {
    outputs[k] = await (v as unknown as { promise(): Promise<unknown> }).promise();
  }
  process.send!({ kind: "done", outputs });
}
main().catch((e: unknown) => {
  process.send!({ kind: "failed", error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
`;

/**
 * Runs the compiled program in `dir` with plain node; answers its mocks from the fake
 * cluster. Resolves once it has declared everything and the mocks have been idle for 300 ms.
 */
type FromProgram =
  | { kind: "newResource"; id: number; args: pulumi.runtime.MockResourceArgs }
  | { kind: "call"; id: number; args: pulumi.runtime.MockCallArgs }
  | { kind: "done"; outputs: Record<string, unknown> }
  | { kind: "failed"; error: string };

// The running program, killed by the suite's after() if a failed test left it running.
let running: ChildProcess | undefined;

function runConsumer(dir: string, seen: Seen): Promise<Record<string, unknown>> {
  const mocks = fakeMocks(cluster(), {}, seen);
  let stderr = "";
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(path.join(dir, "index.js"), [], {
      cwd: dir,
      execArgv: [],
      env: { ...process.env, NODE_OPTIONS: "", PTM_SOURCE: JSON.stringify(SOURCE_CONFIG) },
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    running = child;
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const fail = (why: string) => {
      child.kill();
      reject(new Error(`${why}\n${stderr}`));
    };
    child.on("message", (m: FromProgram) => {
      if (m.kind === "failed") return fail(`the program failed: ${m.error}`);
      if (m.kind === "done") {
        const idle = setInterval(() => {
          if (Date.now() - seen.lastActivity < 300) return;
          clearInterval(idle);
          child.disconnect();
          resolve(m.outputs);
        }, 50);
        return;
      }
      const answer = async () =>
        m.kind === "newResource" ? mocks.newResource(m.args) : mocks.call(m.args);
      answer().then(
        (result) => child.connected && child.send({ id: m.id, result }),
        (e: Error) => child.connected && child.send({ id: m.id, error: e.message }),
      );
    });
    // Once resolved (the program disconnected, then exits), a rejection changes nothing.
    child.on("exit", (code, signal) => fail(`the program exited (${code ?? signal}) early`));
    child.on("error", (e) => fail(`the program could not run: ${e.message}`));
  });
}

describe("the npm package, installed into another Pulumi project", function () {
  let tmp = "";
  let consumer = "";

  before(async function () {
    // npm pack builds dist/ (prepack); the install reads the npm cache before the registry.
    this.timeout(300_000);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ptm-package-"));
    await sh("npm", ["pack", "--pack-destination", tmp], REPO);
    const tarball = fs.readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote no tarball");
    consumer = path.join(tmp, "consumer");
    fs.mkdirSync(consumer);
    fs.writeFileSync(path.join(consumer, "Pulumi.yaml"), "name: ptm-consumer\nruntime: nodejs\n");
    fs.writeFileSync(
      path.join(consumer, "package.json"),
      JSON.stringify({ name: "ptm-consumer", version: "1.0.0", private: true, main: "index.js" }),
    );
    await sh(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        path.join(tmp, tarball),
      ],
      consumer,
    );
  });

  after(() => {
    running?.kill();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("ships the built library, its .d.ts, the sidecar and cluster scripts and the license", () => {
    const root = path.join(consumer, "node_modules", NAME);
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
        const p = path.posix.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk("");
    for (const f of [
      "LICENSE",
      "dist/components/index.js",
      "dist/components/index.d.ts",
      "components/sidecar/lib.sh",
      "components/sidecar/rsyncd.sh",
      "components/cluster/lib.sh",
      "components/cluster/rollout-watch.sh",
    ]) {
      assert.ok(files.includes(f), `${f} is missing from the package: ${files.join(" ")}`);
    }
    // Node refuses TypeScript under node_modules: only .d.ts may come along.
    assert.deepEqual(
      files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")),
      [],
    );
    assert.deepEqual(
      files.filter((f) => f.startsWith("test/")),
      [],
    );
  });

  it("type-checks and compiles a program that imports it by name", async function () {
    this.timeout(120_000);
    fs.writeFileSync(path.join(consumer, "index.ts"), PROGRAM);
    // "node" resolution as Pulumi's templates use it: the subpath's types come from
    // typesVersions. TypeScript and @types/node are the consumer's own tools: ours here.
    const tsconfig = {
      compilerOptions: {
        strict: true,
        target: "es2022",
        module: "commonjs",
        moduleResolution: "node",
        skipLibCheck: true,
        typeRoots: [path.join(REPO, "node_modules", "@types")],
        types: ["node"],
      },
      files: ["index.ts"],
    };
    fs.writeFileSync(path.join(consumer, "tsconfig.json"), JSON.stringify(tsconfig));
    const tsc = path.join(REPO, "node_modules", "typescript", "bin", "tsc");
    await sh(process.execPath, [tsc, "-p", consumer], consumer);
    assert.ok(fs.existsSync(path.join(consumer, "index.js")));
  });

  it("declares a migration under mocks, with plain node: resources registered, scripts found", async function () {
    this.timeout(120_000);
    assert.ok(fs.existsSync(path.join(consumer, "index.js")), "the program did not compile");
    const seen = newSeen();
    const outputs = await runConsumer(consumer, seen);
    const r: RunResult = { ...seen, outputs };
    assert.equal(outputs.phase, "prepare");
    assert.equal(byType(r, "kubernetes:core/v1:Service").length, 1);
    // The sidecars run the scripts read from the installed package, byte for byte as here.
    type Obj = Record<string, unknown>;
    const commands = (type: string) =>
      ((((one(r, type).inputs.spec as Obj).template as Obj).spec as Obj).containers as Obj[]).map(
        (c) => (c.command as string[] | undefined)?.[2],
      );
    assert.ok(commands("kubernetes:apps/v1:DeploymentPatch").includes(sidecarScript("rsyncd")));
    assert.ok(commands("kubernetes:apps/v1:StatefulSetPatch").includes(sidecarScript("idle")));
    // And the commands that run on this machine, the cluster scripts.
    const watch = byType(r, "command:local:Command").find((c) => c.name.endsWith("-rollout"));
    assert.ok(watch, "no rollout watch command");
    assert.equal(
      (watch.inputs.environment as Obj).PTM_SCRIPT,
      `${readScript("cluster", "lib.sh")}\n${readScript("cluster", "rollout-watch.sh")}`,
    );
  });
});
