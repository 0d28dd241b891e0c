// The whole migration's time with the real engine in the lab, per phase and per step (issue 25,
// "the whole migration's time"). `npm run bench:migration` (needs the lab: KUBECONFIG of the lab
// or unset, and the engine on PATH: `source test/engine/env.sh`).
//
// Two sizes (PTM_MIGBENCH_SIZES, default "demo 2gib"):
// - demo: the e2e's and the demo's fixtures exactly as they are (test/e2e/scenario.ts DEFAULTS:
//   50 h of seeded history, 20 series per metric every 30 s).
// - 2gib: about 2 GiB of source TSDB: 57 consecutive 2h blocks of 10,000 random gauges every
//   15 s, generated once by test/bench/gen-migration.sh (promtool, on this machine, cached under
//   /var/cache/ptm/bench-migration-s10000-i15-b57; PTM_MIGBENCH_SERIES, _STEP and _BLOCKS change
//   it). They are copied into the lab PV that the source's claim is then bound to (spec.volumeName),
//   before the source starts: its seed init container sees blocks and does nothing. The source
//   keeps them as they are (retention 400d, min and max block duration 2h, as `npm run
//   bench:state` does): no compaction of 2 GiB at startup.
//
// Each size runs what `npm run demo` runs (test/e2e/demo.ts): `pulumi preview` at prepare,
// `pulumi up` at prepare, `pulumi preview` at migrate with includeHead (probe and plan), `pulumi
// up` at migrate, a second `up` (re-verifies, changes nothing), the revert (`config rm phase` and
// `up`: refused right after a head import, then again with forceRevert, as the demo does), and
// `pulumi destroy`. Every command is timed from the Automation API call to its return. Its steps
// come from the engine's own events (onEvent): a resource's step runs from its resourcePreEvent
// to its resOutputsEvent, timed when this process receives them (the engine's own timestamps are
// whole seconds: kept beside them, and the largest difference reported); the scripts' stderr
// lines (copy.sh's "copy: N stream(s) ended after S s", "plan: ...") are the engine's diagnostic
// events, timed the same way. The time the target's reload loop takes to load the installed
// blocks is seen independently: this process reads the target's own /metrics (blocks loaded,
// lowest timestamp, reloads) every second during the migrate `up`. The pods' own creation, start
// and Ready times (from the API server, whole seconds) show what a rollout waited for.
//
// Output: migration-engine.json in the bench work dir (PTM_BENCH_WORK, default
// /var/cache/ptm/bench-work), and the section between <!-- migration:begin --> and
// <!-- migration:end --> in BENCHMARKS.md (PTM_MIGBENCH_REPORT=<json> writes the section again
// from a saved result without running anything). Its own namespaces (PTM_E2E_NAMESPACE_PREFIX,
// default ptm-migbench) and everything in them are deleted at the end, the PVs recycled.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";

// Before test/e2e/fixtures.ts is loaded (it reads the prefix once): this bench's own namespaces.
process.env.PTM_E2E_NAMESPACE_PREFIX ||= "ptm-migbench";

type Scenario = typeof import("../e2e/scenario");
type Cluster = typeof import("../e2e/cluster");

const REPO = path.resolve(__dirname, "..", "..");
const ROOT = process.env.PTM_BENCH_ROOT ?? "/var/cache/ptm";
const WORK = process.env.PTM_BENCH_WORK ?? path.join(ROOT, "bench-work");
const OUT = path.join(WORK, "migration-engine.json");
const PROJECT = "prometheus-tsdb-migration";
const TRANSPILE_ONLY = "preview (prepare), PULUMI_NODEJS_TRANSPILE_ONLY=true";
const log = (l: string) => process.stdout.write(`migration: ${l}\n`);

/** One engine event as this process received it. */
interface Ev {
  /** When this process received it (ms). */
  ms: number;
  /** The engine's own timestamp (whole seconds). */
  engineS: number;
  kind: "pre" | "out" | "failed" | "diag" | "prelude" | "summary";
  urn?: string;
  op?: string;
  type?: string;
  message?: string;
}

/** One pulumi command (preview, up, destroy), timed from the call to its return. */
interface Op {
  label: string;
  startMs: number;
  endMs: number;
  ok: boolean;
  error?: string;
  events: Ev[];
}

interface PodTimes {
  pod: string;
  createdS: number;
  startedS?: number;
  readyS?: number;
}

interface ReloadSample {
  ms: number;
  blocksLoaded: number;
  lowestMs: number;
  reloads: number;
}

interface SizeRun {
  size: string;
  description: string;
  sourceBytes: number;
  sourceBlocks: number;
  fixturesSeconds: number;
  ops: Op[];
  /** The pods of each workload after each command: what the last rollout waited for. */
  pods: Record<string, { source?: PodTimes; target?: PodTimes }>;
  /** The target's own /metrics during the migrate `up`. */
  reload: { via: string; samples: ReloadSample[] };
  /** The plan's oldest block (ms): loaded once the target's lowest timestamp reaches it. */
  oldestPlannedMs?: number;
  outputs: { copy?: unknown; install?: unknown; verification?: string; plan?: unknown };
}

export interface MigrationBench {
  when: string;
  finished: string;
  commit: string;
  machine: string;
  command: string;
  /** What else ran on the machine, when known (written by hand into the result). */
  note?: string;
  sizes: SizeRun[];
}

// ------------------------------------------------------------------ running

/** The engine's debug lines (RPCs, invokes): not the program's or the scripts' own. */
function isDebug(severity: string, message: string): boolean {
  return (
    severity === "debug" ||
    /^\s*(Registering resource|RegisterResource|Invoking function|Invoke RPC|, obj=|Found (typescript|ts-node)|Running program)/.test(
      message,
    )
  );
}

function receive(events: Ev[]): (e: EngineEvent) => void {
  return (e) => {
    const ms = Date.now();
    const base = { ms, engineS: e.timestamp };
    const meta =
      e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    if (e.resourcePreEvent && meta)
      events.push({ ...base, kind: "pre", urn: meta.urn, op: meta.op, type: meta.type });
    else if (e.resOutputsEvent && meta)
      events.push({ ...base, kind: "out", urn: meta.urn, op: meta.op, type: meta.type });
    else if (e.resOpFailedEvent && meta)
      events.push({ ...base, kind: "failed", urn: meta.urn, op: meta.op, type: meta.type });
    else if (e.diagnosticEvent && !isDebug(e.diagnosticEvent.severity, e.diagnosticEvent.message))
      events.push({
        ...base,
        kind: "diag",
        urn: e.diagnosticEvent.urn,
        message: e.diagnosticEvent.message.trim(),
      });
    else if (e.preludeEvent) events.push({ ...base, kind: "prelude" });
    else if (e.summaryEvent) events.push({ ...base, kind: "summary" });
  };
}

async function timed<T>(
  ops: Op[],
  label: string,
  run: (onEvent: (e: EngineEvent) => void) => Promise<T>,
  expectFailure = false,
): Promise<T | undefined> {
  const events: Ev[] = [];
  const op: Op = { label, startMs: Date.now(), endMs: 0, ok: false, events };
  ops.push(op);
  try {
    const r = await run(receive(events));
    op.ok = true;
    return r;
  } catch (e) {
    op.error = (e instanceof Error ? e.message : String(e)).slice(-2000);
    if (!expectFailure) throw e;
    return undefined;
  } finally {
    op.endMs = Date.now();
    log(`${label}: ${((op.endMs - op.startMs) / 1000).toFixed(1)} s${op.ok ? "" : " (failed)"}`);
  }
}

/** The newest live pod of a workload: created, its containers all started, Ready (API times). */
function podTimes(c: Cluster, w: { namespace: string; kind: string; name: string }): PodTimes {
  const sel = JSON.parse(
    c.kubectl(["get", w.kind.toLowerCase(), w.name, "-n", w.namespace, "-o", "json"]),
  ).spec.selector.matchLabels as Record<string, string>;
  const selector = Object.entries(sel)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const pods = (
    JSON.parse(c.kubectl(["get", "pods", "-n", w.namespace, "-l", selector, "-o", "json"]))
      .items as {
      metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string };
      status: {
        conditions?: { type: string; status: string; lastTransitionTime: string }[];
        containerStatuses?: { state?: { running?: { startedAt: string } } }[];
      };
    }[]
  )
    .filter((p) => !p.metadata.deletionTimestamp)
    .sort((a, b) => b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp));
  const p = pods[0];
  if (!p) throw new Error(`no pod of ${w.kind} ${w.namespace}/${w.name}`);
  const s = (t?: string) => (t ? Date.parse(t) / 1000 : undefined);
  const started = (p.status.containerStatuses ?? []).map((x) => s(x.state?.running?.startedAt));
  const ready = (p.status.conditions ?? []).find((x) => x.type === "Ready" && x.status === "True");
  return {
    pod: p.metadata.name,
    createdS: s(p.metadata.creationTimestamp)!,
    startedS: started.every((x) => x !== undefined)
      ? Math.max(...(started as number[]))
      : undefined,
    readyS: s(ready?.lastTransitionTime),
  };
}

/**
 * Reads the target's /metrics every second until stopped: straight at the pod's IP when this
 * host reaches it (the lab's node is this host), else through `kubectl exec` every 2 s.
 */
function watchReload(
  c: Cluster,
  target: { namespace: string; kind: string; name: string; container: string },
): { stop(): Promise<{ via: string; samples: ReloadSample[] }> } {
  const samples: ReloadSample[] = [];
  let stopped = false;
  let via = "";
  const pod = `${target.name}-0`;
  const ip = c
    .kubectl(["get", "pod", pod, "-n", target.namespace, "-o", "jsonpath={.status.podIP}"])
    .trim();
  const parse = (text: string): ReloadSample | undefined => {
    const v = (name: string) => {
      const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
      return m ? Number(m[1]) : NaN;
    };
    const s = {
      ms: Date.now(),
      blocksLoaded: v("prometheus_tsdb_blocks_loaded"),
      lowestMs: v("prometheus_tsdb_lowest_timestamp"),
      reloads: v("prometheus_tsdb_reloads_total"),
    };
    return Number.isFinite(s.blocksLoaded) ? s : undefined;
  };
  const loop = (async () => {
    while (!stopped) {
      const t0 = Date.now();
      let s: ReloadSample | undefined;
      if (via !== "kubectl exec") {
        try {
          const r = await fetch(`http://${ip}:9090/metrics`, { signal: AbortSignal.timeout(2000) });
          s = parse(await r.text());
          via = `GET http://<pod IP>:9090/metrics every 1 s`;
        } catch {
          if (!via) via = "kubectl exec";
        }
      }
      if (via === "kubectl exec") {
        try {
          s = parse(
            c.execIn(target, "wget -qO- http://localhost:9090/metrics | grep '^prometheus_tsdb_'"),
          );
        } catch {
          // The pod is busy or gone for a moment: the next look tells.
        }
      }
      if (s) samples.push(s);
      const every = via === "kubectl exec" ? 2000 : 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, every - (Date.now() - t0))));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return {
        via: via === "kubectl exec" ? "kubectl exec ... wget /metrics every 2 s" : via,
        samples,
      };
    },
  };
}

/** The large source: the cached blocks copied into a free lab PV, the claim bound to it. */
function placeLargeSource(
  c: Cluster,
  dir: string,
): { bytes: number; blocks: number; pvName: string } {
  const pvs = JSON.parse(c.kubectl(["get", "pv", "-l", "ptm-lab/pv=true", "-o", "json"])).items as {
    metadata: { name: string };
    spec: { local?: { path: string }; claimRef?: unknown };
    status: { phase: string };
  }[];
  const pv = pvs.find((p) => p.status.phase === "Available" && !p.spec.claimRef && p.spec.local);
  if (!pv) throw new Error("no Available lab PV for the source (test/lab/recycle-pvs.sh?)");
  const data = path.join(pv.spec.local!.path, "prometheus-db");
  fs.rmSync(data, { recursive: true, force: true });
  fs.mkdirSync(data, { recursive: true });
  // Real copies (not hard links into the cache): the source may rewrite a meta.json.
  execFileSync("cp", ["-a", ...fs.readdirSync(dir).map((b) => path.join(dir, b)), data]);
  // The chart's server runs as 65534 (fsGroup 65534 too; this spares the kubelet the chown).
  execFileSync("chown", ["-R", "65534:65534", data]);
  const blocks = fs.readdirSync(dir).length;
  const bytes = Number(execFileSync("du", ["-sb", dir], { encoding: "utf8" }).split("\t")[0]);
  log(
    `source: ${blocks} blocks (${(bytes / 2 ** 30).toFixed(2)} GiB) copied into PV ${pv.metadata.name}`,
  );
  return { bytes, blocks, pvName: pv.metadata.name };
}

async function runSize(size: string, c: Cluster, sc: Scenario): Promise<SizeRun> {
  const { SOURCE, TARGET } = sc;
  const ops: Op[] = [];
  const run: SizeRun = {
    size,
    description: "",
    sourceBytes: 0,
    sourceBlocks: 0,
    fixturesSeconds: 0,
    ops,
    pods: {},
    reload: { via: "", samples: [] },
    outputs: {},
  };
  await sc.resetCluster(log);
  const t0 = Date.now();
  if (size === "demo") {
    await sc.deployFixtures({ ...sc.DEFAULTS, log });
    run.description = `the demo's fixtures as they are: ${sc.DEFAULTS.historyHours} h of seeded history (seed-history.sh: 2 metrics x 20 series every 30 s)`;
  } else if (size === "2gib") {
    const gen = execFileSync("bash", [path.join(__dirname, "gen-migration.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    })
      .trim()
      .split("\n")
      .pop()!;
    const blocksDir = path.join(gen, "blocks");
    const end = Number(fs.readFileSync(path.join(gen, "end"), "utf8"));
    const placed = placeLargeSource(c, blocksDir);
    const hours = Math.floor((Date.now() / 1000 - (end - placed.blocks * 7200)) / 3600);
    const o = {
      ...sc.DEFAULTS,
      historyHours: hours,
      log,
      fixture: {
        sourceRetention: "400d",
        sourceExtraFlags: [
          "web.enable-lifecycle",
          "storage.tsdb.min-block-duration=2h",
          "storage.tsdb.max-block-duration=2h",
        ],
      },
    };
    const isClaim = (x: Record<string, unknown>) =>
      x.kind === "PersistentVolumeClaim" &&
      (x.metadata as { name: string; namespace: string }).namespace === SOURCE.namespace;
    sc.applyFixtures(
      o,
      () => [
        {
          apiVersion: "v1",
          kind: "PersistentVolumeClaim",
          metadata: { name: "prometheus-server", namespace: SOURCE.namespace },
          spec: {
            accessModes: ["ReadWriteOnce"],
            storageClassName: "ptm-local",
            volumeName: placed.pvName,
            resources: { requests: { storage: "8Gi" } },
          },
        },
      ],
      (x) => !isClaim(x),
    );
    c.rolloutStatus(SOURCE, 900);
    c.rolloutStatus(TARGET);
    await c.waitFor("source history loaded", 300_000, () => {
      const n = Number(
        c.execIn(
          SOURCE,
          "wget -qO- http://localhost:9090/metrics | grep '^prometheus_tsdb_blocks_loaded ' | cut -d' ' -f2",
        ),
      );
      return n >= placed.blocks ? n : undefined;
    });
    run.sourceBytes = placed.bytes;
    run.sourceBlocks = placed.blocks;
    run.description = `${placed.blocks} consecutive 2h blocks of ${process.env.PTM_MIGBENCH_SERIES ?? 10000} random gauges every ${process.env.PTM_MIGBENCH_STEP ?? 15} s (test/bench/gen-migration.sh, promtool), copied into the source's PV; source retention 400d, min and max block duration 2h`;
  } else {
    throw new Error(`unknown size ${size} (PTM_MIGBENCH_SIZES: demo, 2gib)`);
  }
  run.fixturesSeconds = Math.round((Date.now() - t0) / 1000);
  // The source's TSDB as the source itself reports it, for both sizes alike.
  const du = c
    .execIn(SOURCE, "du -sk /data | cut -f1; ls -d /data/[0-9A-Z]*/ 2>/dev/null | wc -l")
    .trim()
    .split("\n")
    .map(Number);
  run.sourceBytes = du[0] * 1024;
  run.sourceBlocks = du[1];
  log(
    `${size}: fixtures in ${run.fixturesSeconds} s; source TSDB ${(run.sourceBytes / 2 ** 20).toFixed(0)} MiB in ${run.sourceBlocks} blocks`,
  );

  const pods = (label: string) => {
    try {
      run.pods[label] = { source: podTimes(c, SOURCE), target: podTimes(c, TARGET) };
    } catch (e) {
      log(`pods after ${label}: ${String(e)}`);
    }
  };
  const stack: Stack = await sc.openStack(`bench-migration-${size}-${Date.now()}`, sc.pulumiEnv());
  try {
    await sc.configurePrepare(stack);
    pods("start");
    await timed(ops, "preview (prepare)", (onEvent) => stack.preview({ onEvent }));
    // The same preview without ts-node's type check of the program (Pulumi.yaml runs index.ts
    // through ts-node, which type-checks unless told not to): what every program run pays.
    stack.workspace.envVars["PULUMI_NODEJS_TRANSPILE_ONLY"] = "true";
    try {
      await timed(ops, TRANSPILE_ONLY, (onEvent) => stack.preview({ onEvent }));
    } finally {
      delete stack.workspace.envVars["PULUMI_NODEJS_TRANSPILE_ONLY"];
    }
    await timed(ops, "prepare", (onEvent) => stack.up({ onEvent }));
    pods("prepare");
    await sc.configure(stack, { phase: "migrate", includeHead: "true" });
    await timed(ops, "preview (migrate)", (onEvent) => stack.preview({ onEvent }));
    const watch = watchReload(c, TARGET);
    let migrated;
    try {
      migrated = await timed(ops, "migrate", (onEvent) => stack.up({ onEvent }));
    } finally {
      run.reload = await watch.stop();
    }
    pods("migrate");
    const out = migrated!.outputs["migration"]?.value as Record<string, unknown>;
    run.outputs = {
      copy: out?.["copy"],
      install: out?.["install"],
      verification: String((out?.["verification"] as { summary?: string })?.summary ?? ""),
      plan: migrated!.outputs["plan"]?.value,
    };
    run.oldestPlannedMs = oldestPlanned(run);
    await timed(ops, "second up", (onEvent) => stack.up({ onEvent }));
    await stack.removeConfig(`${PROJECT}:phase`);
    const refused = await timed(ops, "revert (refused)", (onEvent) => stack.up({ onEvent }), true);
    if (refused === undefined) {
      await sc.configure(stack, { forceRevert: "true" });
      await timed(ops, "revert (forceRevert)", (onEvent) => stack.up({ onEvent }));
    }
    pods("revert");
    await timed(ops, "destroy", (onEvent) => stack.destroy({ onEvent }));
  } finally {
    await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    await sc.resetCluster(log);
  }
  return run;
}

/** The plan's oldest copied sample (ms): loaded once the target's lowest timestamp reaches it. */
function oldestPlanned(run: SizeRun): number | undefined {
  const from = (run.outputs.plan as { from?: string | null } | undefined)?.from;
  return from ? Date.parse(from) : undefined;
}

// ------------------------------------------------------------------ analysis

interface Span {
  start: number;
  end: number;
}

const nameOf = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

/** Every resource's step in an op (not the unchanged ones), in seconds from the command's call. */
function steps(op: Op): { name: string; type: string; op: string; start: number; end: number }[] {
  const by = new Map<
    string,
    { name: string; type: string; op: string; start: number; end: number }
  >();
  for (const e of op.events) {
    if (!e.urn || (e.kind !== "pre" && e.kind !== "out" && e.kind !== "failed")) continue;
    if (e.op === "same" || e.op === "read") continue;
    const key = `${e.urn} ${e.op}`;
    const t = (e.ms - op.startMs) / 1000;
    const s = by.get(key) ?? {
      name: nameOf(e.urn),
      type: e.type ?? "",
      op: e.op ?? "",
      start: t,
      end: t,
    };
    if (e.kind === "pre") s.start = Math.min(s.start, t);
    else s.end = Math.max(s.end, t);
    by.set(key, s);
  }
  return [...by.values()].sort((a, b) => a.start - b.start);
}

function span(op: Op, re: RegExp): Span | undefined {
  const m = steps(op).filter((s) => re.test(s.name));
  if (!m.length) return undefined;
  return { start: Math.min(...m.map((s) => s.start)), end: Math.max(...m.map((s) => s.end)) };
}

function diag(op: Op, re: RegExp): { t: number; m: RegExpExecArray } | undefined {
  for (const e of op.events) {
    if (e.kind !== "diag" || !e.message || isDebug("", e.message)) continue;
    const m = re.exec(e.message);
    if (m) return { t: (e.ms - op.startMs) / 1000, m };
  }
  return undefined;
}

/**
 * The first resource event after the stack's own: the engine has started, and ts-node has
 * compiled (and type-checked) and loaded the program, which registers its component first.
 */
function firstResource(op: Op): number | undefined {
  const e = op.events.find((x) => x.kind === "pre" && x.type !== "pulumi:pulumi:Stack");
  return e ? (e.ms - op.startMs) / 1000 : undefined;
}

const total = (op: Op) => (op.endMs - op.startMs) / 1000;

/** The largest difference between when an event came and the engine's own (whole-second) time. */
function skew(ops: Op[]): number {
  let worst = 0;
  for (const op of ops)
    for (const e of op.events) worst = Math.max(worst, Math.abs(e.ms / 1000 - e.engineS) - 1);
  return Math.max(0, worst);
}

/** When the target's reload loop had loaded what was installed, seen in its own /metrics. */
function reloadSeen(
  run: SizeRun,
  op: Op,
  installEnd: number,
): { t: number; reloadsAt: number[] } | undefined {
  const xs = run.reload.samples;
  const reloadsAt: number[] = [];
  for (let i = 1; i < xs.length; i++)
    if (xs[i].reloads > xs[i - 1].reloads) reloadsAt.push((xs[i].ms - op.startMs) / 1000);
  const after = xs.filter((s) => (s.ms - op.startMs) / 1000 >= installEnd);
  if (!after.length) return undefined;
  const before = after[0];
  const hit = after.find((s) =>
    run.oldestPlannedMs !== undefined
      ? s.lowestMs <= run.oldestPlannedMs
      : s.blocksLoaded > before.blocksLoaded || s.lowestMs < before.lowestMs,
  );
  return hit ? { t: (hit.ms - op.startMs) / 1000, reloadsAt } : { t: NaN, reloadsAt };
}

/** The reload ticks up to the load, then how many more (compactions reload too). */
function reloadList(at: number[], loadedAt: number): string {
  const upTo = at.filter((x) => x <= loadedAt + 0.5);
  const more = at.length - upTo.length;
  return (
    (upTo.map((x) => `${x.toFixed(0)} s`).join(", ") || "–") +
    (more ? ` (then ${more} more while it compacted what it loaded)` : "")
  );
}

interface Row {
  step: string;
  start?: number;
  seconds: number;
  note: string;
}

const fmt = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(1);

// Where the waits are (file:line in this commit): the report names them.
const WAITS = {
  rolloutWatch:
    "components/cluster/rollout-watch.sh:115 (`kubectl rollout status --timeout=10s` in a loop: a watch, it returns when the rollout is done)",
  rolloutSettle:
    "components/cluster/rollout-settle.sh:38 (`kubectl rollout status --timeout=15s` in a loop)",
  countsWait:
    "components/sidecar/counts.sh:269-276 (polls prometheus_tsdb_lowest_timestamp every 1 s since f78929b, every 5 s before) for Prometheus' reload loop (once a minute)",
  readiness:
    "the source's readinessProbe: initialDelaySeconds 30, periodSeconds 5 (the chart's default, test/fixtures/workloads.ts:128-132)",
};

function rowsFor(run: SizeRun): { rows: Row[]; facts: Record<string, number> } {
  const rows: Row[] = [];
  const facts: Record<string, number> = {};
  for (const op of run.ops) {
    const t = total(op);
    facts[op.label] = t;
    rows.push({
      step: `**${op.label}**${op.ok || /refused/.test(op.label) ? "" : " (failed)"}`,
      start: 0,
      seconds: t,
      note: opNote(op),
    });
    const first = firstResource(op);
    if (first !== undefined && op.label !== "destroy")
      rows.push({
        step: "  engine and program start (to the first resource event)",
        start: 0,
        seconds: first,
        note: "the CLI and the language host start; ts-node compiles index.ts and components/ (transpile-only: tsconfig.json noCheck; see below), the program's modules load",
      });
    if (op.label === "prepare") {
      const src = span(op, /source-rsync-daemon/);
      const tgt = span(op, /target-rsync-client/);
      if (src)
        rows.push({
          step: "  source sidecar: patch and rollout",
          start: src.start,
          seconds: src.end - src.start,
          note: `${WAITS.rolloutWatch}; ${WAITS.readiness}${podNote(run, "prepare", "source", op, src.end)}`,
        });
      if (tgt)
        rows.push({
          step: "  target sidecar: patch and rollout",
          start: tgt.start,
          seconds: tgt.end - tgt.start,
          note: `${WAITS.rolloutWatch}${podNote(run, "prepare", "target", op, tgt.end)}`,
        });
      if (src) facts["prepare: source rollout"] = src.end - src.start;
      if (tgt) facts["prepare: target rollout"] = tgt.end - tgt.start;
    }
    if (op.label === "preview (migrate)") {
      const plan = diag(op, /plan: /);
      if (plan && first !== undefined)
        rows.push({
          step: "  probes and plan (first resource event to the `plan:` line)",
          start: first,
          seconds: plan.t - first,
          note: "probe.sh in both sidecars (kubectl exec), then the plan",
        });
    }
    if (op.label === "migrate") migrateRows(run, op, first, rows, facts);
    if (/^revert/.test(op.label) && op.ok) {
      const src = span(op, /source-rsync-daemon-settle/);
      const tgt = span(op, /target-rsync-client-settle/);
      const serial = src && tgt && (tgt.start >= src.end || src.start >= tgt.end);
      const order = serial
        ? "; **one after the other**: the engine deleted the two workloads' patches in different layers, so the two rollouts did not overlap (in prepare they run side by side)"
        : "";
      if (src)
        rows.push({
          step: "  source: sidecar (and admin API) out, rollout-settle",
          start: src.start,
          seconds: src.end - src.start,
          note: `${WAITS.rolloutSettle}; ${WAITS.readiness}${podNote(run, "revert", "source", op, src.end)}${order}`,
        });
      if (tgt)
        rows.push({
          step: "  target: sidecar out, rollout-settle",
          start: tgt.start,
          seconds: tgt.end - tgt.start,
          note: `${WAITS.rolloutSettle}${podNote(run, "revert", "target", op, tgt.end)}`,
        });
      if (serial) facts["revert: serial rollouts"] = 1;
      if (src) facts["revert: source rollout"] = src.end - src.start;
      if (tgt) facts["revert: target rollout"] = tgt.end - tgt.start;
    }
  }
  return { rows, facts };
}

function opNote(op: Op): string {
  if (!op.ok) {
    const why =
      diag(op, /reverting now[^\n]*|restart-guard: REFUSED[^\n]*/)?.m[0] ?? op.error ?? "";
    return `refused: ${why.replace(/\s+/g, " ").slice(0, 240)}…`;
  }
  const n = steps(op).length;
  return n
    ? `${n} resource steps`
    : "no resource changed: the program's reads and the verification's counts again";
}

/**
 * The workload's new pod (API times, whole seconds): when its containers started and it became
 * Ready after its creation, and how long after Ready the step that waited for it ended.
 */
function podNote(
  run: SizeRun,
  after: string,
  side: "source" | "target",
  op?: Op,
  stepEnd?: number,
): string {
  const p = run.pods[after]?.[side];
  if (!p || p.readyS === undefined) return "";
  const started =
    p.startedS !== undefined
      ? `containers started +${(p.startedS - p.createdS).toFixed(0)} s, `
      : "";
  const lag =
    op && stepEnd !== undefined
      ? `; the step ended ${(op.startMs / 1000 + stepEnd - p.readyS).toFixed(0)} s after Ready`
      : "";
  return `; its new pod: ${started}Ready +${(p.readyS - p.createdS).toFixed(0)} s after its creation${lag}`;
}

function migrateRows(
  run: SizeRun,
  op: Op,
  first: number | undefined,
  rows: Row[],
  facts: Record<string, number>,
): void {
  const plan = diag(op, /plan: /);
  if (plan && first !== undefined) {
    rows.push({
      step: "  probes and plan (to the `plan:` line)",
      start: first,
      seconds: plan.t - first,
      note: "probe.sh in both sidecars, then the plan",
    });
    facts["migrate: probes and plan"] = plan.t - first;
  }
  const add = (label: string, re: RegExp, note: string | ((s: Span) => string)) => {
    const s = span(op, re);
    if (!s) return undefined;
    rows.push({
      step: `  ${label}`,
      start: s.start,
      seconds: s.end - s.start,
      note: typeof note === "function" ? note(s) : note,
    });
    facts[`migrate: ${label}`] = s.end - s.start;
    return s;
  };
  add(
    "admin API on: source patch and rollout",
    /source-admin-api/,
    (sp) =>
      `${WAITS.rolloutWatch}; ${WAITS.readiness}${podNote(run, "migrate", "source", op, sp.end)}`,
  );
  add(
    "compaction wait",
    /compaction-wait/,
    "components/sidecar/wait-compaction.sh:41 (polls every 30 s; no wait with includeHead)",
  );
  add("snapshot", /source-snapshot/, "snapshot.sh: the admin API's snapshot with the head");
  add(
    "decision record",
    /-decision/,
    "snapshot-blocks.sh reads the snapshot's blocks, then the ConfigMap",
  );
  const copy = add("copy", /block-copy/, "");
  const said = diag(op, /copy: (\d+ streams?) ended after (\d+) s: ([^\n]*)/);
  if (copy) {
    rows[rows.length - 1].note = said
      ? `copy.sh said: "${said.m[0]}"`
      : 'copy.sh\'s own "ended after" line was not in the output';
    if (said) facts["migrate: copy.sh's own seconds"] = Number(said.m[2]);
  }
  const install = add("install", /block-install/, "install.sh: renames from staging into the TSDB");
  const vr = span(op, /verification.*-record$/);
  const ve = span(op, /verification.*-event$/);
  if (install && vr) {
    rows.push({
      step: "  verification: source counts (install done to the record)",
      start: install.end,
      seconds: vr.start - install.end,
      note: "counts.sh on the source (kubectl exec)",
    });
    facts["migrate: verification source counts"] = vr.start - install.end;
  }
  if (install) {
    const seen = reloadSeen(run, op, install.end);
    if (seen) {
      rows.push({
        step: "  reload wait: install done to the target's reload loop loading the blocks (its /metrics)",
        start: install.end,
        seconds: seen.t - install.end,
        note: `${WAITS.countsWait}; the target's reloads seen at ${reloadList(seen.reloadsAt, seen.t)} into the up (${run.reload.via})`,
      });
      facts["migrate: reload wait"] = seen.t - install.end;
    }
  }
  const loaded = diag(op, /counts: loaded: /);
  const listed = diag(op, /counts: listed \d+ block dirs/);
  // The target compacts what it imported (a new block, then its parents go): counts.sh lists
  // the blocks only between two equal loaded counts (counts.sh:285-298), so it waits that out.
  const changes: string[] = [];
  const xs = run.reload.samples;
  for (let i = 1; i < xs.length; i++)
    if (
      install &&
      xs[i].blocksLoaded !== xs[i - 1].blocksLoaded &&
      (xs[i].ms - op.startMs) / 1000 >= install.end
    )
      changes.push(`${xs[i].blocksLoaded} at ${((xs[i].ms - op.startMs) / 1000).toFixed(0)} s`);
  if (changes.length) facts["migrate: target block count changes"] = changes.length;
  if (vr && ve) {
    rows.push({
      step: "  verification: target counts, after counts.sh's wait for the reload",
      start: vr.end,
      seconds: ve.start - vr.end,
      note:
        (loaded
          ? `counts.sh said "loaded" at ${loaded.t.toFixed(1)} s into the up`
          : "counts.sh's own lines were not in the output (an invoke's stderr)") +
        (listed ? `, "listed ... all loaded" at ${listed.t.toFixed(1)} s` : "") +
        (changes.length
          ? `; the target's loaded blocks after the install: ${changes.slice(0, 10).join(", ")}${changes.length > 10 ? ", ..." : ""} (its own compaction of the imported blocks; counts.sh:285-298 lists them only between two equal counts, polling every 1 s)`
          : ""),
    });
    facts["migrate: verification target counts incl. wait"] = ve.start - vr.end;
  }
  if (install && ve) {
    rows.push({
      step: "  verification in all (install done to its event)",
      start: install.end,
      seconds: ve.end - install.end,
      note: "",
    });
    facts["migrate: verification in all"] = ve.end - install.end;
  }
  // Each step's Event (kubectl create event, cluster/events.ts) is a child of the step's
  // component, and the next step depends on the component: they run in series, in the way.
  const events = steps(op).filter((x) => /-event$/.test(x.name));
  if (events.length) {
    const sum = events.reduce((n, x) => n + (x.end - x.start), 0);
    rows.push({
      step: `  of which the ${events.length} steps' Events (kubectl create event), in series`,
      seconds: sum,
      note: `${events.map((x) => `${x.name.replace(/^migration-/, "")} ${(x.end - x.start).toFixed(1)} s`).join(", ")}; each is a child of its step's component (components/cluster/events.ts:54), and the next step depends on the component (e.g. components/prometheusTsdbMigration.ts:687 \`dependsOn: [copy]\`)`,
    });
    facts["migrate: events"] = sum;
  }
  const last = steps(op).reduce((m, s) => Math.max(m, s.end), 0);
  rows.push({
    step: "  the last step's end to the up's return",
    start: last,
    seconds: total(op) - last,
    note: "outputs, the state's last write, the engine's exit",
  });
}

/** What dominates, in a sentence with its numbers. */
function dominates(run: SizeRun, facts: Record<string, number>): string {
  const f = (k: string) => facts[k] ?? 0;
  const whole = ["prepare", "migrate", "revert (refused)", "revert (forceRevert)"].reduce(
    (s, k) => s + f(k),
    0,
  );
  // Side by side in prepare and in the revert: the longer of the two counts.
  const rollouts =
    Math.max(f("prepare: source rollout"), f("prepare: target rollout")) +
    f("migrate: admin API on: source patch and rollout") +
    (f("revert: serial rollouts")
      ? f("revert: source rollout") + f("revert: target rollout")
      : Math.max(f("revert: source rollout"), f("revert: target rollout")));
  const starts = run.ops
    .filter((o) =>
      ["prepare", "migrate", "revert (refused)", "revert (forceRevert)"].includes(o.label),
    )
    .reduce((s, o) => s + (firstResource(o) ?? 0), 0);
  const parts: [string, number][] = [
    [
      "the rollouts (prepare's sidecars side by side, migrate's admin API switch of the source, the revert's; a source pod waits out the chart's 30 s readiness delay)",
      rollouts,
    ],
    ["the wait for the target's reload loop (once a minute)", f("migrate: reload wait")],
    ["engine and program start-up of each `pulumi up`", starts],
    ["the copy", f("migrate: copy")],
    ["the probes and the plan", f("migrate: probes and plan")],
  ];
  parts.sort((a, b) => b[1] - a[1]);
  const pct = (x: number) => `${Math.round((100 * x) / whole)}%`;
  return (
    `Of the ${whole.toFixed(0)} s of prepare, migrate and revert, ${parts[0][0]} take ${parts[0][1].toFixed(0)} s (${pct(parts[0][1])}), ` +
    parts
      .slice(1)
      .map(([k, v]) => `${k} ${v.toFixed(0)} s (${pct(v)})`)
      .join(", ") +
    "."
  );
}

/** The type check's share of a program run: the same preview with and without it. */
function typeCheck(run: SizeRun): string[] {
  const a = run.ops.find((o) => o.label === "preview (prepare)");
  const b = run.ops.find((o) => o.label === TRANSPILE_ONLY);
  if (!a?.ok || !b?.ok) return [];
  const fa = firstResource(a) ?? NaN;
  const fb = firstResource(b) ?? NaN;
  return [
    "",
    `The program's type check: \`preview (prepare)\` took ${total(a).toFixed(1)} s (first resource event at ${fa.toFixed(1)} s), the same preview right after with \`PULUMI_NODEJS_TRANSPILE_ONLY=true\` ${total(b).toFixed(1)} s (at ${fb.toFixed(1)} s). Since tsconfig.json's \`noCheck\` (issue 25) ts-node runs the program transpile-only either way, and the two should agree; before it, ts-node type-checked index.ts and components/ on every preview and up (11 s each at the demo's size, 40 s at 2 GiB, in the 17:03 run), and \`npm run lint\` checks the types now.`,
  ];
}

function markdown(b: MigrationBench): string {
  const out: string[] = [
    "<!-- migration:begin (written by test/bench/migration.ts) -->",
    "## The whole migration, per phase, real engine, lab",
    "",
    `Command: \`${b.command}\` (test/bench/migration.ts; the 2 GiB source is generated once by test/bench/gen-migration.sh and cached under /var/cache/ptm/bench-migration-*). Commit ${b.commit || "(uncommitted)"}. Run: ${b.when} to ${b.finished}, one run per size.`,
    "",
    `Machine: ${b.machine}. The lab (test/lab/) on the same machine: a single node, local PVs on the same disk. Shared with other work: single runs, compare within a run.${b.note ? ` ${b.note}` : ""}`,
    "",
    "How it is timed: each pulumi command from the Automation API call to its return; a step from its resource's `resourcePreEvent` to its `resOutputsEvent` (`onEvent`, timed when received; the engine's own timestamps are whole seconds and agree within " +
      `${skew(b.sizes.flatMap((s) => s.ops)).toFixed(1)} s beyond that rounding); lines like \`plan:\` and copy.sh's \`copy: N stream(s) ended after S s\` are the engine's diagnostic events, timed the same way; the reload wait from the target's own \`/metrics\` read by the bench every second (blocks loaded, lowest timestamp, reloads). Steps that run side by side overlap: "start" is seconds into the command.`,
  ];
  for (const run of b.sizes) {
    const { rows, facts } = rowsFor(run);
    out.push(
      "",
      `### ${run.size === "demo" ? "The demo's size" : "About 2 GiB"}: ${(run.sourceBytes / 2 ** 20).toFixed(0)} MiB in ${run.sourceBlocks} blocks`,
      "",
      `Source: ${run.description}. Fixtures ready in ${run.fixturesSeconds} s (not in the table). Copy: ${JSON.stringify(run.outputs.copy ?? {})}. Verification: ${run.outputs.verification ?? ""}`,
      "",
      "| phase / step | start s | wall s | what it waits on |",
      "| --- | --- | --- | --- |",
      ...rows.map(
        (r) =>
          `| ${r.step.replace(/^ {2}/, "&nbsp;&nbsp;")} | ${fmt(r.start)} | ${fmt(r.seconds)} | ${r.note.replace(/\|/g, "\\|")} |`,
      ),
      "",
      `What dominates: ${dominates(run, facts)}`,
      ...typeCheck(run),
    );
  }
  out.push("<!-- migration:end -->");
  return out.join("\n");
}

function writeReport(b: MigrationBench): void {
  const file = path.join(REPO, "BENCHMARKS.md");
  const prev = fs.readFileSync(file, "utf8");
  const begin = prev.indexOf("<!-- migration:begin");
  const endMark = "<!-- migration:end -->";
  const end = prev.indexOf(endMark);
  if (begin < 0 || end < begin) throw new Error(`BENCHMARKS.md has no ${endMark} section`);
  fs.writeFileSync(file, prev.slice(0, begin) + markdown(b) + prev.slice(end + endMark.length));
  log(`BENCHMARKS.md: the migration section written`);
}

function machine(): string {
  const cpus = os.cpus();
  const rsync = (() => {
    try {
      return execFileSync("rsync", ["--version"], { encoding: "utf8" })
        .split("\n")[0]
        .replace(/ +protocol.*/, "");
    } catch {
      return "rsync ?";
    }
  })();
  return `${cpus.length} x ${cpus[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}; ${rsync} on the host; node ${process.version}`;
}

async function main(): Promise<void> {
  const saved = process.env.PTM_MIGBENCH_REPORT;
  if (saved) {
    writeReport(JSON.parse(fs.readFileSync(saved, "utf8")) as MigrationBench);
    return;
  }
  const c: Cluster = await import("../e2e/cluster");
  const { clusterForThisRun } = await import("../e2e/clusterChoice");
  const sc: Scenario = await import("../e2e/scenario");
  // The bench deletes its namespaces and recycles the lab's volumes: the lab only.
  const choice = clusterForThisRun("e2e");
  if (!choice.lab) throw new Error("the migration bench runs in the lab only");
  c.useCluster(choice);
  const sizes = (process.env.PTM_MIGBENCH_SIZES ?? "demo 2gib").split(/[\s,]+/).filter(Boolean);
  let commit = process.env.PTM_COMMIT ?? "";
  try {
    commit ||= execFileSync("git", ["-C", REPO, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
  } catch {
    // not a checkout
  }
  const result: MigrationBench = {
    when: new Date().toISOString(),
    finished: "",
    commit,
    machine: machine(),
    command:
      (process.env.PTM_MIGBENCH_SIZES ? `PTM_MIGBENCH_SIZES="${sizes.join(" ")}" ` : "") +
      "npm run bench:migration",
    sizes: [],
  };
  fs.mkdirSync(WORK, { recursive: true });
  for (const size of sizes) {
    log(`=== ${size}`);
    result.sizes.push(await runSize(size, c, sc));
    fs.writeFileSync(OUT, JSON.stringify(result, null, 2));
  }
  result.finished = new Date().toISOString();
  fs.writeFileSync(OUT, JSON.stringify(result, null, 2));
  log(`written to ${OUT}`);
  const md = markdown(result);
  process.stdout.write(md + "\n");
  writeReport(result);
}

main().catch((e: unknown) => {
  process.stderr.write(`migration: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
