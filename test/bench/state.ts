// The Pulumi state after `migrate` at about 2,000 blocks, with the real engine in the lab
// (issue 14: "State stays under 1 MiB at 2,000 blocks"). `npm run bench:state` (needs the lab:
// KUBECONFIG, and the engine on PATH: test/engine/env.sh; test/e2e/run.sh sets both up).
//
// The demo's fixtures, with a source whose history is PTM_STATE_HOURS (default 4,100) hours of
// 2 series per metric every 10 minutes: seed-history.sh (promtool) writes it as 2h blocks,
// about 2,050 of them. Two of the Helm chart's own values keep them as they are, as a
// Thanos-sidecar deployment of the chart does: `server.retention` 400d (the default 15d would
// delete most of them) and `server.extraFlags` with min and max block duration 2h (no
// compaction of the blocks into longer ones). The target is BKPR's, as in the e2e. The stack
// is the e2e's: prepare, then migrate with includeHead; then the state is exported and
// measured per resource; the stack and the fixtures' namespaces are removed.
//
// It writes state-engine.json into the benchmark's work dir, which `npm run bench` puts in
// BENCHMARKS.md, and prints the largest resources.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { useCluster } from "../e2e/cluster";
import { clusterForThisRun } from "../e2e/clusterChoice";
import {
  configure,
  configurePrepare,
  DEFAULTS,
  deployFixtures,
  openStack,
  pulumiEnv,
  resetCluster,
} from "../e2e/scenario";

// Where `npm run bench` keeps its work (test/bench/scale.ts): it reads this file from there.
const OUT = path.join(
  process.env["PTM_BENCH_WORK"] ??
    path.join(process.env["PTM_BENCH_ROOT"] ?? "/var/cache/ptm", "bench-work"),
  "state-engine.json",
);
const log = (l: string) => process.stdout.write(`state: ${l}\n`);

export interface EngineState {
  when: string;
  commit: string;
  blocks: number;
  bytesTotal: number;
  /** Bytes of the exported deployment per resource (URN's last part), largest first. */
  largest: { name: string; type: string; bytes: number }[];
  /** What the migration's outputs said. */
  copy: unknown;
  verification: string;
  upSeconds: { prepare: number; migrate: number };
}

async function main(): Promise<void> {
  // The bench resets and recycles the lab's volumes: the lab only (clusterChoice.ts).
  useCluster(clusterForThisRun("e2e"));
  const hours = Number(process.env["PTM_STATE_HOURS"] ?? 4100);
  await resetCluster(log);
  // The lab's volumes are Retain: make the released ones available again (wiped).
  execFileSync("bash", [path.join(__dirname, "..", "lab", "recycle-pvs.sh")], { stdio: "ignore" });
  const t0 = Date.now();
  await deployFixtures({
    ...DEFAULTS,
    historyHours: hours,
    log,
    fixture: {
      historySeries: 2,
      historyStepSeconds: 600,
      sourceRetention: "400d",
      sourceExtraFlags: [
        "web.enable-lifecycle",
        "storage.tsdb.min-block-duration=2h",
        "storage.tsdb.max-block-duration=2h",
      ],
    },
  });
  log(`fixtures with ${hours} h of history: ${Math.round((Date.now() - t0) / 1000)} s`);
  const stack: Stack = await openStack(`bench-state-${Date.now()}`, pulumiEnv());
  try {
    await configurePrepare(stack);
    let t = Date.now();
    await stack.up({ onOutput: () => undefined });
    const prepare = Math.round((Date.now() - t) / 1000);
    log(`prepare: ${prepare} s`);
    await configure(stack, { phase: "migrate", includeHead: "true" });
    t = Date.now();
    const r = await stack.up({
      onOutput: (o) => {
        for (const l of o.split("\n")) if (/copy: \d+\/\d+ blocks|plan: /.test(l)) log(l.trim());
      },
    });
    const migrate = Math.round((Date.now() - t) / 1000);
    const out = r.outputs["migration"]!.value as Record<string, Record<string, unknown>>;
    const copy = out["copy"] as { copied: number; skipped: number };
    const deployment = (await stack.exportStack()).deployment as {
      resources?: { urn: string; type: string }[];
    };
    const sizes = (deployment.resources ?? []).map((x) => ({
      name: x.urn.slice(x.urn.lastIndexOf("::") + 2),
      type: x.type,
      bytes: JSON.stringify(x).length,
    }));
    const result: EngineState = {
      when: new Date().toISOString(),
      commit: process.env["PTM_COMMIT"] ?? "",
      blocks: copy.copied + copy.skipped,
      bytesTotal: JSON.stringify(deployment).length,
      largest: sizes.sort((a, b) => b.bytes - a.bytes).slice(0, 8),
      copy,
      verification: String(out["verification"]?.["summary"] ?? ""),
      upSeconds: { prepare, migrate },
    };
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, JSON.stringify(result, null, 2));
    log(`migrate: ${migrate} s; ${result.blocks} blocks; state ${result.bytesTotal} bytes`);
    for (const l of result.largest) log(`  ${l.bytes} ${l.type} ${l.name}`);
    log(`verification: ${result.verification}`);
    log(`written to ${OUT}`);
  } finally {
    // The lab is the bench's own: its namespaces go, and the stack with them.
    await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    await resetCluster(log);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`state: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
