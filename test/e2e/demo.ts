// `npm run demo`: a whole migration in the local cluster, phase by phase, with the plan, the
// copy's progress and the result printed as they happen. On another cluster only when the user
// names its context (PTM_DEMO_CONTEXT; clusterChoice.ts), in the demo's own namespaces.

import { OutputMap } from "@pulumi/pulumi/automation";
import { useCluster } from "./cluster";
import { clusterForThisRun } from "./clusterChoice";
import {
  configure,
  configurePrepare,
  deployFixtures,
  leftovers,
  openStack,
  pulumiEnv,
  resetCluster,
  scenarioFor,
  SOURCE,
  TARGET,
} from "./scenario";

const say = (l: string) => process.stdout.write(`${l}\n`);
const step = (l: string) => say(`\n=== ${l}`);

// Lines of the program's own steps (plan, snapshot, copy, install, waits) from the engine's output,
// each once: the engine repeats every diagnostic in its summary at the end of the update.
const printed = new Set<string>();
function progress(o: string): void {
  for (const line of o.split("\n")) {
    const m = /(plan: .*|(snapshot|copy|install|wait-compaction|admin-api|counts): .*)$/.exec(line);
    // Per-window counts are many lines; the verification's summary says it all.
    if (!m || /^counts: window ending/.test(m[1]) || printed.has(m[1].trim())) continue;
    printed.add(m[1].trim());
    say(`    ${m[1].trim()}`);
  }
}

function show(outputs: OutputMap, key: string): void {
  if (outputs[key]) say(`${key}: ${JSON.stringify(outputs[key].value, null, 2)}`);
}

async function main(): Promise<void> {
  const cluster = clusterForThisRun("demo");
  useCluster(cluster);
  const options = { ...scenarioFor(cluster), log: say };
  say(
    cluster.lab
      ? "cluster: the local lab"
      : `cluster: context ${cluster.context} of ${cluster.kubeconfig} (PTM_DEMO_CONTEXT), images ${options.prometheusImage}, ${options.targetImage}, ${options.sidecarImage}`,
  );

  step(
    `starting point: ${SOURCE.kind} ${SOURCE.namespace}/${SOURCE.name} (old) and ${TARGET.kind} ${TARGET.namespace}/${TARGET.name} (new, BKPR-shaped)`,
  );
  await resetCluster(say);
  await deployFixtures(options);

  const stack = await openStack(`demo-${Date.now()}`, pulumiEnv());
  await configurePrepare(stack, options);

  step("pulumi preview (phase prepare): the plan and every check, before any pod restarts");
  const previewed: string[] = [];
  const p = await stack.preview({ onOutput: (o) => previewed.push(o) });
  // The preview's report (issue 21): read through both Prometheus containers, no sidecar yet.
  // Each line once: pulumi repeats the log lines in its closing diagnostics.
  const shown = new Set<string>();
  for (const l of previewed.join("").split("\n")) {
    const m = /(preflight(?: plan| ok| FAILED| attention| not checked)?: .*|restarts: .*)$/.exec(
      l.trim(),
    );
    if (m && !shown.has(m[1])) {
      shown.add(m[1]);
      say(`    ${m[1]}`);
    }
  }
  say(
    `would create ${p.changeSummary.create ?? 0} resources: sidecars, Service, NetworkPolicy, Secrets`,
  );

  step("pulumi up (phase prepare): rsync daemon on the source, rsync client on the target");
  await stack.up({ onOutput: progress });
  say("both pods rolled out with their sidecar");

  step("pulumi up (phase migrate, includeHead): plan, snapshot, copy, install, verify");
  await configure(stack, { phase: "migrate", includeHead: "true" });
  const m = await stack.up({ onOutput: progress });
  show(m.outputs, "plan");
  const mig = m.outputs.migration?.value as Record<string, Record<string, unknown>>;
  say(`copy: ${JSON.stringify(mig.copy)}`);
  say(`install: ${JSON.stringify(mig.install)}`);
  const v = mig.verification as { summary: string; ok: boolean; targetHealth: unknown };
  say(
    `verification: ${v.ok ? "OK" : "FAILED"} - ${v.summary}; target health ${JSON.stringify(v.targetHealth)}`,
  );

  step("pulumi up again (nothing changed): re-verifies, changes nothing");
  const again = await stack.up({ onOutput: () => undefined });
  say(`changes: ${JSON.stringify(again.summary.resourceChanges)}`);

  step("pulumi config rm phase && pulumi up: revert");
  await stack.removeConfig("prometheus-tsdb-migration:phase");
  try {
    await stack.up({ onOutput: () => undefined });
  } catch (e) {
    const msg = String(e).match(/reverting now[^\n]*/)?.[0] ?? String(e).slice(0, 300);
    say(`refused, as it should be right after a head import: ${msg}`);
    say("the demo goes ahead with forceRevert=true (the source's samples cover that time)");
    await configure(stack, { forceRevert: "true" });
    await stack.up({ onOutput: () => undefined });
  }
  say("sidecars, Service, NetworkPolicy, Secrets, snapshot and staging dir removed");

  step("pulumi destroy");
  await stack.destroy({ onOutput: () => undefined });
  await stack.workspace.removeStack(stack.name);
  const left = leftovers();
  say(
    left.length
      ? `left behind: ${left.join(", ")}`
      : "nothing left behind; the target keeps the migrated history",
  );
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
