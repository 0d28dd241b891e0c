// `npm run bench`: how each phase's cost grows with the TSDB's size, against the machine's
// limit, in one run on loopback. For every size (blocks; default 128, 512, 2048):
//
// - byte-level phases (snapshot, copy, install, rerun) on bench-bytes-N: cloned blocks,
//   page cache dropped before every timed copy (ours and the baselines alike);
// - the copies of the same bytes, in interleaved rounds (PTM_BENCH_ROUNDS, default 3; round k
//   starts at method k): the limit (faster of `cp -a` and a tar pipe between the same
//   filesystems), plain `rsync -a` from the daemon, copy.sh in 1, 2 and 4 rsync streams over
//   disjoint blocks and with PTM_STREAMS=auto (the program's copyStreams). Each figure is the
//   median of the rounds with its spread; the statistics are in stats.ts;
// - planning and verification on bench-history-N: real, loadable, non-overlapping history
//   served by a real source Prometheus (2.42) and migrated into a real empty target; preview
//   (probe.sh on both + planMigration), snapshot/copy/install again (for the source
//   Prometheus's CPU during them), the bounded verification (verifyWindows default) and, for
//   comparison, every window (verifyWindows 0);
// - the Pulumi state the program would store after `migrate`, estimated from what it stores.
//
// Per phase: wall time, source CPU seconds (/proc), peak RSS. Writes BENCHMARKS.md (the scale
// section) and docs/benchmarks-scale.svg; a smoke run (PTM_BENCH_ROUNDS < 3) writes its report
// and chart under PTM_BENCH_WORK instead.
//
// Env: PTM_BENCH_SIZES ("128 512 2048"), PTM_BENCH_ROOT (/var/cache/ptm),
//      PTM_BENCH_WORK (/var/cache/ptm/bench-work: scratch on the cache's filesystem),
//      PTM_BENCH_ROUNDS (3), PTM_BENCH_EVERY_WINDOW (true), PTM_BENCH_REPORT (a result file),
//      PTM_STREAMS_MAX (passed on to copy.sh's auto streams when set).

import { execFileSync, spawn, spawnSync, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CopyResult, parseProbe } from "../../components/decisions/sidecarOutput";
import type { EngineState } from "./state";
import { readCopyRun } from "./copyRun";
import {
  autoVerdict,
  flippedPairs,
  fmtS,
  median,
  MIN_REPORT_ROUNDS,
  ordering,
  orderingSentence,
  parseRounds,
  ratio,
  roundOrder,
  spread,
} from "./stats";
import { planMigration, Plan } from "../../components/decisions/plan";
import { headRange } from "../../components/decisions/tsdb";
import { serializeRecord } from "../../components/decisions/verificationRecord";
import {
  DEFAULT_VERIFY_WINDOWS,
  expectedBlocks,
  loadWaitEnv,
  parseCounts,
  verifyMigration,
  windowsToCompare,
} from "../../components/decisions/verify";
import {
  REPO,
  killAll,
  runJson,
  RunOpts,
  runScript,
  selfMetric,
  sleep,
  startPrometheus,
  startRsyncd,
  takeSnapshot,
  track,
  waitFor,
} from "../support/real";

const ROOT = process.env["PTM_BENCH_ROOT"] ?? "/var/cache/ptm";
const SIZES = (process.env["PTM_BENCH_SIZES"] ?? "128 512 2048").split(/\s+/).map(Number);
const WORK = process.env["PTM_BENCH_WORK"] ?? path.join(ROOT, "bench-work");
const { rounds: ROUNDS, smoke: SMOKE } = parseRounds(process.env["PTM_BENCH_ROUNDS"]);
const PASSWORD = "bench-" + Math.random().toString(36).slice(2);
const SNAP = "ptm-bench";
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TICK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
const PAGE = Number(execFileSync("getconf", ["PAGESIZE"]).toString().trim()) || 4096;

const log = (m: string): void =>
  console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${m}`);
const fmtB = (b: number): string =>
  b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : `${b} B`;
const s1 = fmtS;

// ---- /proc: process trees, CPU and RSS -------------------------------------------------

interface ProcStat {
  ppid: number;
  cpuTicks: number; // utime + stime + cutime + cstime
  childTicks: number; // cutime + cstime: reaped children
  rss: number; // bytes
}
function readProcs(): Map<number, ProcStat> {
  const m = new Map<number, ProcStat>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      // f[0] = state (field 3): ppid = field 4, utime..cstime = 14..17, rss = 24.
      m.set(Number(d), {
        ppid: Number(f[1]),
        cpuTicks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
        childTicks: Number(f[13]) + Number(f[14]),
        rss: Number(f[21]) * PAGE,
      });
    } catch {
      // gone
    }
  }
  return m;
}
function tree(procs: Map<number, ProcStat>, roots: number[]): number[] {
  const kids = new Map<number, number[]>();
  for (const [pid, p] of procs) kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), pid]);
  const out: number[] = [];
  const todo = roots.filter((r) => procs.has(r));
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return out;
}
const cpuOf = (procs: Map<number, ProcStat>, roots: number[]): number =>
  tree(procs, roots).reduce((n, p) => n + procs.get(p)!.cpuTicks, 0) / TICK;
const rssOf = (procs: Map<number, ProcStat>, roots: number[]): number =>
  tree(procs, roots).reduce((n, p) => n + procs.get(p)!.rss, 0);

/** Samples RSS of the phase's own processes and of the source every 100 ms. */
class Meter {
  private timer: NodeJS.Timeout;
  private own: number[] = [];
  peakOwn = 0;
  peakSource = 0;
  constructor(private readonly source: number[]) {
    this.timer = setInterval(() => this.sample(), 100);
  }
  add(pid: number | undefined): void {
    if (pid !== undefined) this.own.push(pid);
  }
  sample(): void {
    const procs = readProcs();
    this.peakOwn = Math.max(this.peakOwn, rssOf(procs, this.own));
    this.peakSource = Math.max(this.peakSource, rssOf(procs, this.source));
  }
  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

interface Measure {
  wallMs: number;
  /**
   * CPU of the tools, both sides: the scripts, rsync, cp/tar (this process's reaped
   * children) and the rsync daemon's process tree.
   */
  toolsCpuS: number;
  /** CPU of the source Prometheus (history runs); undefined when none runs. */
  promCpuS?: number;
  /** Peak RSS of the tools (the phase's processes and the rsync daemon's tree). */
  peakRss: number;
  /** Peak RSS of the source Prometheus (history runs). */
  promRss?: number;
}

/** Time `fn`, which reports the pids it spawns through `meter.add`. */
async function measure<T>(
  o: { daemon?: number[]; prom?: number },
  fn: (meter: Meter) => Promise<T>,
): Promise<[T, Measure]> {
  const daemon = o.daemon ?? [];
  const prom = o.prom;
  const before = readProcs();
  const tools0 = cpuOf(before, daemon) + before.get(process.pid)!.childTicks / TICK;
  const prom0 = prom !== undefined ? cpuOf(before, [prom]) : 0;
  const meter = new Meter(prom !== undefined ? [prom] : []);
  for (const d of daemon) meter.add(d);
  const t = Date.now();
  const r = await fn(meter);
  const wallMs = Date.now() - t;
  meter.stop();
  const after = readProcs();
  const tools1 = cpuOf(after, daemon) + after.get(process.pid)!.childTicks / TICK;
  return [
    r,
    {
      wallMs,
      toolsCpuS: tools1 - tools0,
      ...(prom !== undefined
        ? { promCpuS: cpuOf(after, [prom]) - prom0, promRss: meter.peakSource }
        : {}),
      peakRss: meter.peakOwn,
    },
  ];
}

function dropCaches(): void {
  execFileSync("sync");
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

function run(meter: Meter, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<void>((resolve, reject) => {
    const c = track(spawn(cmd, args, { stdio: ["ignore", "ignore", "inherit"], ...opts }));
    meter.add(c.pid);
    c.on("error", reject);
    c.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}`)),
    );
  });
}

const script = <T>(meter: Meter, name: string, args: string[], opts: RunOpts) =>
  runJson<T>(name, args, { ...opts, onSpawn: (c: ChildProcess) => meter.add(c.pid) });

// ---- byte-level phases on cloned blocks ---------------------------------------------------

/** What copy.sh prints (counts), as the program parses it. */
type CopyOut = Required<CopyResult>;

/** The copy comparison's methods, in round 1's order (stats.ts roundOrder gives round k's). */
type MethodId = "cp" | "tar" | "rsync" | "s1" | "s2" | "s4" | "auto";
interface Method {
  id: MethodId;
  label: string;
  /** copy.sh's PTM_STREAMS; none for the baselines. */
  streams?: string;
}
const METHODS: readonly Method[] = [
  { id: "cp", label: "cp -a" },
  { id: "tar", label: "tar pipe" },
  { id: "rsync", label: "plain rsync -a from the daemon" },
  { id: "s1", label: "copy.sh, 1 stream", streams: "1" },
  { id: "s2", label: "copy.sh, 2 streams", streams: "2" },
  { id: "s4", label: "copy.sh, 4 streams", streams: "4" },
  { id: "auto", label: "copy.sh, PTM_STREAMS=auto", streams: "auto" },
];
const RSYNC_SHORT = "plain rsync -a";

/** One timed copy: its measure, and for copy.sh what it said about its streams. */
interface CopyRun extends Measure {
  /** copy.sh's `"streams":N`: the streams it ended with. */
  streams?: number;
  /** copy.sh's `copy: streams:` line (auto). */
  streamsLine?: string;
}

interface RoundInfo {
  /** 1-based. */
  round: number;
  startedAt: string;
  /** /proc/loadavg's 1-min load at the round's start. */
  load1?: number;
  order: MethodId[];
}

interface BytesResult {
  blocks: number;
  bytes: number;
  snapshot: Measure;
  /** install.sh and the rerun, once, on the last round's 1-stream copy.sh target. */
  install: Measure;
  rerun: Measure;
  rerunOut: string;
  rounds: RoundInfo[];
  /** Each method's runs, one per round in round order; none when unavailable. */
  runs: Partial<Record<MethodId, CopyRun[]>>;
  /** Why a method has no runs, e.g. "not available (copy.sh rejected PTM_STREAMS=auto)". */
  unavailable: Partial<Record<MethodId, string>>;
}

/** The results of runs from before the rounds: each copy once. */
interface LegacyBytesResult {
  blocks: number;
  bytes: number;
  snapshot: Measure;
  copy: Measure;
  install: Measure;
  rerun: Measure;
  rerunOut: string;
  cp: Measure;
  tar: Measure;
  plainRsync: Measure;
  streams?: Record<string, Measure>;
}

/** A run from before the rounds, as one round (so it is reported as a smoke run's). */
function fromLegacy(b: BytesResult | LegacyBytesResult): BytesResult {
  if ("rounds" in b) return b;
  const runs: BytesResult["runs"] = {
    cp: [b.cp],
    tar: [b.tar],
    rsync: [b.plainRsync],
    s1: [b.copy],
    ...(b.streams?.["2"] ? { s2: [b.streams["2"]] } : {}),
    ...(b.streams?.["4"] ? { s4: [b.streams["4"]] } : {}),
  };
  const unavailable: BytesResult["unavailable"] = {};
  for (const m of METHODS)
    if (!runs[m.id]) unavailable[m.id] = "not measured (a run from before the rounds)";
  return {
    blocks: b.blocks,
    bytes: b.bytes,
    snapshot: b.snapshot,
    install: b.install,
    rerun: b.rerun,
    rerunOut: b.rerunOut,
    rounds: [{ round: 1, startedAt: "", order: ["cp", "tar", "rsync", "s1", "s2", "s4"] }],
    runs,
    unavailable,
  };
}

const load1 = (): number | undefined => {
  const v = Number(fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
  return Number.isFinite(v) ? v : undefined;
};

async function bytesPhases(n: number): Promise<BytesResult> {
  const src = path.join(ROOT, `bench-bytes-${n}`, "blocks");
  const work = path.join(WORK, `bytes-${n}`);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const snapDir = path.join(src, "snapshots", SNAP);
  const rsyncd = await startRsyncd(src, PASSWORD, path.join(work, "rsyncd"));
  const url = `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${SNAP}`;
  const daemon = [rsyncd.child.pid!];
  const copyEnv = { PTM_RSYNC_URL: url, RSYNC_PASSWORD: PASSWORD };
  // PTM_STREAMS_MAX caps auto's streams; passed on when set (copy.sh's env is only what the
  // bench gives it).
  const streamsMax = process.env["PTM_STREAMS_MAX"];
  const rm = (d: string) => fs.rmSync(d, { recursive: true, force: true });
  try {
    await runJson("cleanup-source", [], { env: { PTM_DATA: src, PTM_SNAPSHOT: SNAP } });
    dropCaches();
    log(`${n}: snapshot`);
    // snapshot.sh, then the listing the program reads after it (snapshot-blocks.sh).
    const [snap, snapshot] = await measure({}, (m) =>
      takeSnapshot({
        env: { PTM_DATA: src, PTM_SNAPSHOT: SNAP },
        onSpawn: (c: ChildProcess) => m.add(c.pid),
      }),
    );
    const blocks = snap.json.blocks;
    const bytes = blocks.reduce((a, b) => a + (b.sizeBytes ?? 0), 0);
    const ulids = blocks.map((b) => b.ulid);
    log(`${n}: ${blocks.length} blocks, ${fmtB(bytes)}; snapshot ${s1(snapshot.wallMs)} s`);

    // One timed copy of the snapshot dir by method `m` into `dest`, from a cold cache (sync and
    // drop_caches before the clock starts) into an empty target. undefined: copy.sh refused
    // the method's PTM_STREAMS (recorded in `unavailable`).
    const unavailable: BytesResult["unavailable"] = {};
    const timedCopy = async (m: Method, dest: string): Promise<CopyRun | undefined> => {
      if (m.id !== "cp") fs.mkdirSync(dest);
      dropCaches();
      if (m.streams === undefined) {
        const [, r] = await measure(m.id === "rsync" ? { daemon } : {}, (mt) =>
          m.id === "cp"
            ? run(mt, "cp", ["-a", snapDir, dest])
            : m.id === "tar"
              ? run(mt, "sh", [
                  "-c",
                  'tar -C "$1" -cf - . | tar -C "$2" -xf -',
                  "tar",
                  snapDir,
                  dest,
                ])
              : run(mt, "rsync", ["-a", `${url}/`, `${dest}/`], {
                  env: { ...process.env, RSYNC_PASSWORD: PASSWORD },
                }),
        );
        return r;
      }
      const env = {
        ...copyEnv,
        PTM_DATA: dest,
        PTM_STREAMS: m.streams,
        ...(streamsMax !== undefined ? { PTM_STREAMS_MAX: streamsMax } : {}),
      };
      const [res, r] = await measure({ daemon }, (mt) =>
        runScript("copy", ulids, { env, onSpawn: (c: ChildProcess) => mt.add(c.pid) }),
      );
      const out = readCopyRun(res, m.streams);
      if (out.kind === "rejected") {
        unavailable[m.id] = out.note;
        log(`${n}: ${m.label}: ${out.note}: ${out.message}`);
        return undefined;
      }
      if (out.kind === "failed") throw new Error(`${n} blocks, ${m.label}: ${out.message}`);
      if (out.counts.copied !== ulids.length)
        throw new Error(`${m.label}: ${out.counts.copied} of ${ulids.length} blocks copied`);
      return {
        ...r,
        ...(out.streams !== undefined ? { streams: out.streams } : {}),
        ...(out.streamsLine !== undefined ? { streamsLine: out.streamsLine } : {}),
      };
    };

    // Rounds: every method once per round, round k stepping k at a time (a method follows a
    // different one in each round; stats.ts roundOrder), so that drift (other
    // jobs on the machine) hits every method alike and none always runs first.
    const rounds: RoundInfo[] = [];
    const runs: BytesResult["runs"] = {};
    let installed: { install: Measure; rerun: Measure; rerunOut: string } | undefined;
    for (let k = 1; k <= ROUNDS; k++) {
      const order = roundOrder(METHODS, k).filter((m) => unavailable[m.id] === undefined);
      const load = load1();
      rounds.push({
        round: k,
        startedAt: new Date().toISOString(),
        ...(load !== undefined ? { load1: load } : {}),
        order: order.map((m) => m.id),
      });
      log(`${n}: round ${k} of ${ROUNDS}, load ${load ?? "?"}`);
      for (const m of order) {
        const dest = path.join(work, `${m.id}-r${k}`);
        const r = await timedCopy(m, dest);
        if (r !== undefined) {
          (runs[m.id] ??= []).push(r);
          log(
            `${n}: round ${k}: ${m.label} ${s1(r.wallMs)} s${r.streams !== undefined ? `, ended with ${r.streams} streams` : ""}`,
          );
        }
        // install.sh and a rerun after completion (copy.sh + install.sh, markers and installed
        // blocks skipped), once: on the last round's 1-stream copy, right after it and before
        // the next copy's sync and cache drop (outside every copy's timing).
        if (k === ROUNDS && m.id === "s1") {
          const [, install] = await measure({}, (mt) =>
            script(mt, "install", ulids, { env: { PTM_DATA: dest } }),
          );
          log(`${n}: install.sh ${s1(install.wallMs)} s`);
          const [rerunRes, rerun] = await measure({ daemon }, async (mt) => {
            const c = await script<CopyOut>(mt, "copy", ulids, {
              env: { ...copyEnv, PTM_DATA: dest },
            });
            await script(mt, "install", ulids, { env: { PTM_DATA: dest } });
            return c;
          });
          const rerunOut = `${rerunRes.json.copied} copied, ${rerunRes.json.skipped} skipped, ${fmtB(rerunRes.json.bytesReceived)} received`;
          log(`${n}: rerun ${s1(rerun.wallMs)} s (${rerunOut})`);
          installed = { install, rerun, rerunOut };
        }
        rm(dest);
      }
    }
    if (installed === undefined) throw new Error("no 1-stream copy to install from");
    return {
      blocks: blocks.length,
      bytes,
      snapshot,
      ...installed,
      rounds,
      runs,
      unavailable,
    };
  } finally {
    rsyncd.child.kill("SIGTERM");
    await runJson("cleanup-source", [], { env: { PTM_DATA: src, PTM_SNAPSHOT: SNAP } }).catch(
      () => undefined,
    );
    rm(work);
  }
}

// ---- planning and verification on real history -----------------------------------------

interface HistoryResult {
  blocks: number;
  bytes: number;
  samples: number;
  preview: Measure;
  snapshot: Measure;
  copy: Measure;
  install: Measure;
  loadWaitMs: number;
  verify: Measure;
  verifyWindows: number;
  verifySummary: string;
  verifyAll?: Measure;
  verifyAllWindows?: number;
  rerun: Measure;
  recordBytes: number;
  /** The Commands' state (real outputs of this size's history migration). */
  state?: StateBytes;
}

interface StateBytes {
  /** The copy and install Commands' create lines name every block: inputs and outputs. */
  blockIds: number;
  /** The snapshot, copy and install scripts' real stdout and stderr (kept as outputs). */
  scriptOutput: number;
  /** Their results, twice: the components' registered outputs and the stack's. */
  results: number;
  /**
   * The verification record's blocks as serializeRecord writes them (the ConfigMap's data;
   * the engine keeps it three times: inputs, outputs and the provider's __inputs).
   */
  record?: number;
}

/**
 * The real engine's state after `migrate` in the lab (test/e2e/migration.test.ts logs it:
 * "state after migrate: N bytes, M blocks"): everything that does not grow with the blocks
 * (every resource, the scripts in the Commands' environments, the outputs) plus its few
 * blocks' share. Measured on 2026-12-02 at commit 46ae3bf, Helm chart source -> BKPR target.
 */
const ENGINE_STATE = { bytes: 432_832, blocks: 9 };

/**
 * What grows with the blocks in the state after `migrate`, besides the verification record:
 * from a real run of the scripts on bench-history-N (no Prometheus needed).
 */
async function stateOf(n: number): Promise<StateBytes> {
  const work = path.join(WORK, `state-${n}`);
  fs.rmSync(work, { recursive: true, force: true });
  const srcDir = path.join(work, "source");
  const tgt = path.join(work, "target");
  fs.mkdirSync(srcDir, { recursive: true });
  fs.mkdirSync(tgt, { recursive: true });
  execFileSync("sh", [
    "-c",
    'cp -al "$1"/. "$2"/',
    "cp",
    path.join(ROOT, `bench-history-${n}`, "blocks"),
    srcDir,
  ]);
  const rsyncd = await startRsyncd(srcDir, PASSWORD, path.join(work, "rsyncd"));
  try {
    const url = `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${SNAP}`;
    const snap = await takeSnapshot({ env: { PTM_DATA: srcDir, PTM_SNAPSHOT: SNAP } });
    const ulids = snap.json.blocks.map((b) => b.ulid);
    const copy = await runJson("copy", ulids, {
      env: { PTM_DATA: tgt, PTM_RSYNC_URL: url, RSYNC_PASSWORD: PASSWORD },
    });
    const inst = await runJson("install", ulids, { env: { PTM_DATA: tgt } });
    const ids = ulids.map((u) => ` '${u}'`).join("").length; // as kubectl.ts quotes them
    const out = (r: { res: { stdout: string; stderr: string } }) =>
      r.res.stdout.length + r.res.stderr.length;
    const lastLine = (r: { res: { stdout: string } }) =>
      r.res.stdout.trim().split("\n").pop()!.length;
    const record = serializeRecord({
      frozenAtMs: Date.now(),
      windowEnds: [],
      targetEarliestMs: undefined,
      loadedDownToMs: 0,
      blocks: expectedBlocks(snap.json.blocks),
      gapMs: 0,
      source: {
        windows: [],
        health: { blocksLoaded: 0, reloadFailures: 0, compactionsFailed: 0, lowestTimestampMs: 0 },
      },
    }).length;
    return {
      record,
      blockIds: 2 * 2 * ids,
      scriptOutput: out(snap) + out(copy) + out(inst),
      results: 2 * (lastLine(snap) + lastLine(copy) + lastLine(inst)),
    };
  } finally {
    rsyncd.child.kill("SIGTERM");
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The real engine's state at about 2,000 blocks, from `npm run bench:state` (test/bench/
 * state.ts) when it has run on this machine: report lines, or none.
 */
function engineState(): string[] {
  const file = path.join(WORK, "state-engine.json");
  if (!fs.existsSync(file)) return [];
  const e = JSON.parse(fs.readFileSync(file, "utf8")) as EngineState;
  const largest = e.largest
    .slice(0, 5)
    .map((l) => `${l.name} (${l.type}) ${fmtB(l.bytes)}`)
    .join(", ");
  return [
    `Measured with the real engine at this scale (\`npm run bench:state\`, ${e.when}${e.commit ? `, commit ${e.commit}` : ""}): the lab's migration of a source holding ${e.blocks} blocks (Helm chart source, BKPR target, includeHead) left **${fmtB(e.bytesTotal)}** of state after \`migrate\` (${e.bytesTotal <= MiB ? "under" : "over"} 1 MiB); prepare took ${e.upSeconds.prepare} s and migrate ${e.upSeconds.migrate} s. The largest resources: ${largest}. Verification: ${e.verification}`,
    "",
  ];
}

const NO_COMPACTION = [
  "--storage.tsdb.retention.time=10y",
  "--storage.tsdb.min-block-duration=2h",
  "--storage.tsdb.max-block-duration=2h",
];

async function historyPhases(n: number, everyWindow: boolean): Promise<HistoryResult> {
  const work = path.join(WORK, `history-${n}`);
  fs.rmSync(work, { recursive: true, force: true });
  const srcDir = path.join(work, "source", "data");
  fs.mkdirSync(srcDir, { recursive: true });
  // Hard links: the source only reads its blocks, and nothing compacts them (flags above).
  execFileSync("sh", [
    "-c",
    'cp -al "$1"/. "$2"/',
    "cp",
    path.join(ROOT, `bench-history-${n}`, "blocks"),
    srcDir,
  ]);
  const src = await startPrometheus({
    dataDir: srcDir,
    scrape: (port) => [`127.0.0.1:${port}`],
    extraArgs: NO_COMPACTION,
    intervalS: 15,
  });
  const tgt = await startPrometheus({
    dataDir: path.join(work, "target", "data"),
    scrape: () => [`127.0.0.1:${src.port}`],
    extraArgs: NO_COMPACTION,
    intervalS: 15,
  });
  const rsyncd = await startRsyncd(srcDir, PASSWORD, path.join(work, "rsyncd"));
  const url = `rsync://ptm@127.0.0.1:${rsyncd.port}/tsdb/snapshots/${SNAP}`;
  const srcSide = { daemon: [rsyncd.child.pid!], prom: src.pid };
  try {
    await waitFor("the target's first own sample", 60_000, async () =>
      (await selfMetric(tgt.url, "prometheus_tsdb_head_series")) > 0 ? true : undefined,
    );
    log(`${n}: history servers up; preview`);
    const [plan, preview] = await measure(srcSide, async (m) => {
      const [sp, tp] = await Promise.all([
        script(m, "probe", [], { env: { PTM_DATA: srcDir, PTM_PROM_URL: src.url } }),
        script(m, "probe", [], { env: { PTM_DATA: tgt.dataDir, PTM_PROM_URL: tgt.url } }),
      ]);
      const s = parseProbe(sp.res.stdout);
      const t = parseProbe(tp.res.stdout);
      return {
        s,
        t,
        plan: planMigration({
          sourceBlocks: s.blocks,
          sourceHead: headRange(s.tsdb),
          targetVersion: t.buildinfo?.version ?? "2.42.0",
          targetFlags: t.flags ?? {},
          targetBlocks: t.blocks,
          targetEarliestMs: headRange(t.tsdb)?.minTime,
          includeHead: false,
          nowMs: Date.now(),
        }),
      };
    });
    const te = headRange(plan.t.tsdb)?.minTime;
    log(`${n}: preview ${s1(preview.wallMs)} s; ${plan.s.blocks.length} source blocks`);
    // The plan of the snapshot's blocks (the same blocks, listed from the snapshot).
    const [snap, snapshot] = await measure(srcSide, (m) =>
      takeSnapshot({
        env: { PTM_DATA: srcDir, PTM_SNAPSHOT: SNAP },
        onSpawn: (c: ChildProcess) => m.add(c.pid),
      }),
    );
    const p: Plan = planMigration({
      sourceBlocks: snap.json.blocks,
      sourceHead: headRange(plan.s.tsdb),
      targetVersion: plan.t.buildinfo?.version ?? "2.42.0",
      targetFlags: plan.t.flags ?? {},
      targetBlocks: plan.t.blocks,
      targetEarliestMs: te,
      includeHead: false,
      nowMs: Date.now(),
    });
    const ulids = p.blocks.map((b) => b.ulid);
    const copyEnv = { PTM_DATA: tgt.dataDir, PTM_RSYNC_URL: url, RSYNC_PASSWORD: PASSWORD };
    const [, copy] = await measure(srcSide, (m) =>
      script<CopyOut>(m, "copy", ulids, { env: copyEnv }),
    );
    const [, install] = await measure(srcSide, (m) =>
      script(m, "install", ulids, { env: { PTM_DATA: tgt.dataDir } }),
    );
    log(`${n}: ${ulids.length} blocks copied ${s1(copy.wallMs)} s, installed`);
    // The reload loop picks them up within a minute: wait, so that verify measures counting.
    const t0 = Date.now();
    await waitFor("the target to load the installed blocks", 300_000, async () =>
      (await selfMetric(tgt.url, "prometheus_tsdb_blocks_loaded")) >= ulids.length
        ? true
        : undefined,
    );
    const loadWaitMs = Date.now() - t0;

    const blocks = expectedBlocks(p.blocks);
    const loadedDownTo = Math.min(...p.blocks.map((b) => b.minTime));
    const verifyWith = async (maxWindows: number) => {
      const ends = windowsToCompare(p, { targetEarliestMs: te, maxWindows });
      const [v, m] = await measure(srcSide, async (mm) => {
        const s = await script(mm, "counts", ends.map(String), {
          env: { PTM_PROM_URL: src.url },
        });
        const t = await script(mm, "counts", ends.map(String), {
          env: {
            PTM_PROM_URL: tgt.url,
            PTM_DATA: tgt.dataDir,
            ...loadWaitEnv(loadedDownTo, blocks),
          },
        });
        const source = parseCounts(s.res.stdout);
        return {
          source,
          v: verifyMigration({
            windowEnds: ends,
            source,
            target: parseCounts(t.res.stdout),
            targetEarliestMs: te,
            blocks,
            gapMs: p.gapMs,
          }),
        };
      });
      if (!v.v.ok) throw new Error(`verification failed at ${n} blocks: ${v.v.summary}`);
      return { ends, v, m };
    };
    const bounded = await verifyWith(DEFAULT_VERIFY_WINDOWS);
    log(`${n}: verify (${bounded.ends.length} windows) ${s1(bounded.m.wallMs)} s`);
    const recordBytes = serializeRecord({
      frozenAtMs: Date.now(),
      windowEnds: bounded.ends,
      targetEarliestMs: te,
      loadedDownToMs: loadedDownTo,
      blocks,
      gapMs: p.gapMs,
      source: bounded.v.source,
    }).length;
    let all: Awaited<ReturnType<typeof verifyWith>> | undefined;
    if (everyWindow) {
      all = await verifyWith(0);
      log(`${n}: verify every window (${all.ends.length}) ${s1(all.m.wallMs)} s`);
    }
    // A rerun after completion: what a later `pulumi up` runs (preview's probes, copy and
    // install finding everything in place, the verification's target counts).
    const [, rerun] = await measure(srcSide, async (m) => {
      await Promise.all([
        script(m, "probe", [], { env: { PTM_DATA: srcDir, PTM_PROM_URL: src.url } }),
        script(m, "probe", [], { env: { PTM_DATA: tgt.dataDir, PTM_PROM_URL: tgt.url } }),
      ]);
      await script<CopyOut>(m, "copy", ulids, { env: copyEnv });
      await script(m, "install", ulids, { env: { PTM_DATA: tgt.dataDir } });
      await script(m, "counts", bounded.ends.map(String), {
        env: { PTM_PROM_URL: tgt.url, PTM_DATA: tgt.dataDir, ...loadWaitEnv(loadedDownTo, blocks) },
      });
    });
    log(`${n}: rerun ${s1(rerun.wallMs)} s`);
    return {
      blocks: p.blocks.length,
      bytes: p.bytes,
      samples: p.samples,
      preview,
      snapshot,
      copy,
      install,
      loadWaitMs,
      verify: bounded.m,
      verifyWindows: bounded.ends.length,
      verifySummary: bounded.v.v.summary,
      ...(all ? { verifyAll: all.m, verifyAllWindows: all.ends.length } : {}),
      rerun,
      recordBytes,
    };
  } finally {
    rsyncd.child.kill("SIGTERM");
    await src.stop().catch(() => undefined);
    await tgt.stop().catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---- report ----------------------------------------------------------------------------

const NOTES = [
  "How it is measured:",
  "",
  "- **Sizes.** Byte-level phases (snapshot, copy, install, rerun, the baselines) run on `bench-bytes-N`: one day of real promtool blocks (2,000 random gauges every 15 s, ~7.2 MiB a block) cloned under new ULIDs; the smaller sizes are hard links to the first N blocks of the largest. Preview and verification run on `bench-history-N`: N consecutive, non-overlapping 2h blocks of real history (100 series every 30 s) served by a real source Prometheus 2.42 and migrated into a real, empty target 2.42 (both with `--storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h` and a 10y retention, so that neither compacts nor deletes the history during the run); its wall times and the source Prometheus's CPU come from those servers.",
  "- **Rounds.** The copies (`cp -a`, the tar pipe, plain `rsync -a`, copy.sh with `PTM_STREAMS` 1, 2, 4 and `auto`) run in rounds (`PTM_BENCH_ROUNDS`, default 3; a report in this file needs at least 3): every method once per round, round k stepping through them k at a time from the method 2(k-1) places on (7 methods: A B C D E F G, then C E G B D F A, then E A D G C F B), so that drift on this shared machine hits every method alike, none always runs first after the cache drop or last, and none always follows the same one (what the method before it leaves behind, such as the discards of its deleted copy, falls on a different one each round). Each figure is the median of the rounds, with the spread beside it (min–max, and each round's value); the 1-min load from /proc/loadavg is read at the start of each round. Ratios to the limit and to plain rsync are ratios of medians. An order that flips between rounds is named; an order that holds in every round is named for each copy.sh variant against plain rsync.",
  "- **The verdict** per size: copy.sh with `PTM_STREAMS=auto` is no slower than plain `rsync -a` beyond the spread when its median wall time <= plain rsync's median + the larger of the two half-ranges ((max - min) / 2), both over the same rounds. Fewer than 3 rounds give the numbers but no verdict. A copy.sh that refuses `auto` is reported as not available, with no verdict.",
  "- **Cold cache.** `sync` and `echo 3 > /proc/sys/vm/drop_caches` before each timed copy, every method and every round alike, each into an empty target. Writes end in the page cache (no `sync` inside the timing, for any of them). Snapshot, install, verify and the reruns run once: the snapshot before the rounds; install.sh and the rerun on the last round's 1-stream copy.sh target, right after that copy and before the next copy's `sync` and cache drop (outside every copy's timing); the history phases after all the rounds of a size.",
  "- **The limit** is the faster of the medians of `cp -a` and `tar -cf - | tar -xf -` of the snapshot dir to the same filesystem. Plain `rsync -a` pulls the same dir from components/sidecar/rsyncd.sh on loopback (the peer's way). copy.sh runs with `PTM_STREAMS` (the program's `copyStreams`): that many rsync connections at once, each over its share of the blocks (balanced by bytes); with `auto` it starts with one stream and adds streams while the throughput grows (`PTM_STREAMS_MAX`, passed on when set, caps them), and its row says how many it ended with. The copy row of the first table is copy.sh's 1-stream median.",
  "- **CPU** comes from /proc: the tools' CPU is this process's reaped children (scripts, rsync, cp, tar) plus the rsync daemon's process tree; the source Prometheus's is its own utime + stime. **Peak RSS** is the sum over the phase's processes, sampled every 100 ms.",
  "- **Preview** = probe.sh on the source and the target (both read every block's meta.json and the servers' status API) + planMigration. **Verify** = counts.sh on the source (the windows) and on the target (the windows, plus its block listing once every block dir is loaded) + verifyMigration, timed after the target's reload loop has loaded the installed blocks (that wait, up to a minute, is the reload interval, not the verification's cost). **Rerun after completion** on the bytes: copy.sh and install.sh again (markers and installed blocks skipped); on the history: what a later `pulumi up` runs (both probes, copy, install, the target's counts).",
  "",
  "Why the bounded verification proves as much as counting every window:",
  "",
  "- **The bytes** are proven per file, independently of any window: rsync checks every file it transfers against a whole-file checksum and transfers it again on a mismatch, copy.sh then checks every block against the daemon's listing (meta.json names the ULID; the same files with the same sizes) before it marks it, and install is one rename per block. Identical bytes give identical counts in every window, so a window count can't find a difference in the bytes that these checks let through.",
  "- **Completeness** is proven per block: the target's listing, taken when the number of block dirs equals `prometheus_tsdb_blocks_loaded` (so every one is loaded), must hold every planned block under its ID with the plan's meta.json numSamples and numSeries (which come from the source's snapshot), or a block the target compacted from them (by `compaction.sources`/`parents`) with at least their samples. A missing, unloaded or different block fails. This costs one meta.json read per block and no sample reads.",
  "- **Readability through the query path** is what the windows add: the target serves the imported samples, the same number as the source, through PromQL. The windows where a migration can go wrong are always counted: the first copied window (the oldest block's start), the last aligned window before the cutoff, the cutoff's unaligned tail (the newest block's end) and the window ending at the target's first own sample (exact match required before it); evenly spaced spot checks cover the rest, up to `verifyWindows` (default 24; `0` counts every window as before).",
  "- **No raised `--query.max-samples`.** counts.sh queries one 2h window at a time and one metric name per term (`sum(count_over_time({__name__=\"m\"}[2h]))`, 100 names per request): the engine holds one series' points of one window at a time plus one sample per series of one metric, never the window's samples. test/real/maxSamples.test.ts counts 2h windows of 24,000 samples each on a Prometheus started with `--query.max-samples=1000`, which refuses the same count over the whole 12 h.",
  "",
];

const PHASES = ["preview", "snapshot", "copy", "install", "verify", "rerun"] as const;

function svgChart(
  title: string,
  series: { name: string; color: string; dash?: string; points: [number, number][] }[],
): string {
  const W = 760;
  const Hh = 440;
  const m = { l: 70, r: 190, t: 30, b: 50 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0);
  const lx0 = Math.log10(Math.min(...xs));
  const lx1 = Math.log10(Math.max(...xs));
  const ly0 = Math.floor(Math.log10(Math.min(...ys)));
  const ly1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (x: number) => m.l + ((Math.log10(x) - lx0) / (lx1 - lx0 || 1)) * (W - m.l - m.r);
  const Y = (y: number) =>
    Hh - m.b - ((Math.log10(Math.max(y, 10 ** ly0)) - ly0) / (ly1 - ly0 || 1)) * (Hh - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${m.l}" y="18" font-size="14">${title}</text>`,
  ];
  for (let e = ly0; e <= ly1; e++) {
    const y = Y(10 ** e);
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)} s</text>`,
    );
  }
  for (const x of [...new Set(xs)]) {
    out.push(
      `<line x1="${X(x)}" x2="${X(x)}" y1="${m.t}" y2="${Hh - m.b}" stroke="#eee"/>`,
      `<text x="${X(x)}" y="${Hh - m.b + 16}" text-anchor="middle">${x.toFixed(2)} GiB</text>`,
    );
  }
  out.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${Hh - 10}" text-anchor="middle">TSDB size (cloned blocks: 128, 512, 2048 blocks)</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      ...s.points.map(
        ([x, y]) =>
          `<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${s.color}"/>`,
      ),
      `<line x1="${W - m.r + 12}" x2="${W - m.r + 36}" y1="${m.t + 10 + i * 20}" y2="${m.t + 10 + i * 20}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
      `<text x="${W - m.r + 42}" y="${m.t + 14 + i * 20}">${s.name}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const fsType = execFileSync("sh", ["-c", `df -PT ${ROOT} | awk 'NR==2 {print $2}'`])
    .toString()
    .trim();
  const rsyncV = execFileSync("rsync", ["--version"])
    .toString()
    .split("\n")[0]
    ?.replace(/^rsync\s+version\s+/, "")
    .split(" ")[0];
  return `${os.cpus().length} x ${cpu}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${os.release()}, ${fsType}; rsync ${rsyncV}; Prometheus 2.42 (Debian); node ${process.version}`;
}

async function main(): Promise<void> {
  // PTM_BENCH_REPORT=<result-*.json of an earlier run>: write the report again from it.
  const again = process.env["PTM_BENCH_REPORT"];
  if (again) {
    const r = JSON.parse(fs.readFileSync(again, "utf8")) as {
      bytes: (BytesResult | LegacyBytesResult)[];
      hist: HistoryResult[];
    };
    // Results of a run from before the state was measured this way: measure it now, keep it.
    if (r.hist.some((h) => h.state?.record === undefined)) {
      for (const [i, n] of SIZES.entries())
        if (r.hist[i]!.state?.record === undefined) r.hist[i]!.state = await stateOf(n);
      const mtime = fs.statSync(again).mtime;
      fs.writeFileSync(again, JSON.stringify(r, null, 2));
      fs.utimesSync(again, mtime, mtime);
    }
    const started = new Date(path.basename(again).replace(/^result-|\.json$/g, ""));
    report(r.bytes.map(fromLegacy), r.hist, started, fs.statSync(again).mtime);
    return;
  }
  const started = new Date();
  const env = { ...process.env, PTM_BENCH_ROOT: ROOT, PTM_BENCH_SIZES: SIZES.join(" ") };
  execFileSync(path.join(REPO, "test", "bench", "gen-scale.sh"), { stdio: "inherit", env });
  fs.mkdirSync(WORK, { recursive: true });
  const bytes: BytesResult[] = [];
  const hist: HistoryResult[] = [];
  const everyWindow = process.env["PTM_BENCH_EVERY_WINDOW"] !== "false";
  if (SMOKE)
    log(`smoke run: ${ROUNDS} round(s), fewer than ${MIN_REPORT_ROUNDS}: not for BENCHMARKS.md`);
  for (const n of SIZES) {
    bytes.push(await bytesPhases(n));
    hist.push({ ...(await historyPhases(n, everyWindow)), state: await stateOf(n) });
    await killAll();
  }
  const finished = new Date();
  fs.writeFileSync(
    path.join(WORK, `result-${started.toISOString()}.json`),
    JSON.stringify({ bytes, hist }, null, 2),
  );
  report(bytes, hist, started, finished);
}

/** The medians of a method's runs (wall time, tools CPU, peak RSS); undefined: no runs. */
function medianMeasure(runs: readonly Measure[] | undefined): Measure | undefined {
  if (runs === undefined || runs.length === 0) return undefined;
  return {
    wallMs: median(runs.map((r) => r.wallMs)),
    toolsCpuS: median(runs.map((r) => r.toolsCpuS)),
    peakRss: median(runs.map((r) => r.peakRss)),
  };
}

const SHORT: Record<MethodId, string> = {
  cp: "cp -a",
  tar: "the tar pipe",
  rsync: RSYNC_SHORT,
  s1: "copy.sh 1 stream",
  s2: "copy.sh 2 streams",
  s4: "copy.sh 4 streams",
  auto: "copy.sh auto",
};
const COPY_SH: MethodId[] = ["s1", "s2", "s4", "auto"];

/** A method's wall times, one per round; undefined unless it ran in every round. */
const wallsOf = (b: BytesResult, id: MethodId): number[] | undefined => {
  const r = b.runs[id];
  return r !== undefined && r.length === b.rounds.length ? r.map((x) => x.wallMs) : undefined;
};

/** The limit: the faster of the cp -a and tar pipe medians. */
const limitOf = (b: BytesResult): number =>
  Math.min(...(["cp", "tar"] as const).map((id) => medianMeasure(b.runs[id])?.wallMs ?? Infinity));

/** The copy comparison of one size: the rounds, each method's median and spread, the verdict. */
function comparison(b: BytesResult): string[] {
  const size = `${fmtB(b.bytes)}, ${b.blocks} blocks`;
  const n = b.rounds.length;
  const limitMs = limitOf(b);
  const rsyncMs = medianMeasure(b.runs["rsync"])?.wallMs;
  const mb = (x: number) => `${(x / MiB).toFixed(0)} MiB`;
  const clock = (iso: string) => (iso === "" ? "–" : iso.slice(11, 19));
  const out: string[] = [
    `### Copies of ${size}: ${n === 1 ? "1 round" : `${n} rounds`}`,
    "",
    "| round | started (UTC) | load, 1 min | order |",
    "| --- | --- | --- | --- |",
    ...b.rounds.map(
      (r) =>
        `| ${r.round} | ${clock(r.startedAt)} | ${r.load1 !== undefined ? r.load1.toFixed(2) : "–"} | ${r.order.map((id) => SHORT[id]).join(", ")} |`,
    ),
    "",
    "| method | wall s, median | spread: min–max | each round | MiB/s | x the limit | x plain rsync | tools CPU s, median | peak RSS, median |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const m of METHODS) {
    const runs = b.runs[m.id];
    const med = medianMeasure(runs);
    if (runs === undefined || med === undefined) {
      out.push(
        `| ${m.label} | ${b.unavailable[m.id] ?? "not measured"} | – | – | – | – | – | – | – |`,
      );
      continue;
    }
    const sp = spread(runs.map((r) => r.wallMs));
    const each = runs
      .map(
        (r, i) =>
          `${i + 1}: ${s1(r.wallMs)}${r.streams !== undefined && m.id === "auto" ? ` (${r.streams} streams)` : ""}`,
      )
      .join(", ");
    const isLimit = (m.id === "cp" || m.id === "tar") && med.wallMs === limitMs;
    out.push(
      `| ${m.label}${isLimit ? " (the limit)" : ""} | ${s1(med.wallMs)} | ${s1(sp.min)}–${s1(sp.max)} | ${each} | ${((b.bytes / MiB / med.wallMs) * 1000).toFixed(0)} | ${ratio(limitMs, med.wallMs).toFixed(2)}x | ${rsyncMs !== undefined ? `${ratio(rsyncMs, med.wallMs).toFixed(2)}x` : "–"} | ${med.toolsCpuS.toFixed(2)} | ${mb(med.peakRss)} |`,
    );
  }
  out.push("");

  // Orders: each copy.sh variant against plain rsync, said whether it flips or not; then every
  // other pair whose order flips.
  const rsync = wallsOf(b, "rsync");
  const said: string[] = [];
  if (rsync !== undefined)
    for (const id of COPY_SH) {
      const v = wallsOf(b, id);
      if (v === undefined) continue;
      const o = ordering(v, rsync);
      said.push(`- ${o.flips ? "**Flips:** " : ""}${orderingSentence(SHORT[id], RSYNC_SHORT, o)}.`);
    }
  const isCopyShVsRsync = (a: string, c: string) =>
    (a === RSYNC_SHORT || c === RSYNC_SHORT) &&
    COPY_SH.some((id) => SHORT[id] === a || SHORT[id] === c);
  const others = flippedPairs(
    METHODS.flatMap((m) => {
      const v = wallsOf(b, m.id);
      return v !== undefined ? [{ name: SHORT[m.id], values: v }] : [];
    }),
  ).filter((p) => !isCopyShVsRsync(p.a, p.b));
  out.push(
    `Order between the rounds (wall time, lower is faster${n === 1 ? "; one round, so no order can flip" : ""}):`,
    "",
    ...said,
    ...(n > 1
      ? others.length > 0
        ? others.map((p) => `- **Flips:** ${orderingSentence(p.a, p.b, p.ordering)}.`)
        : ["- No other pair of methods changed order between the rounds."]
      : []),
    "",
  );

  const auto = b.runs["auto"];
  if (auto !== undefined && auto.length > 0) {
    const chose = auto.map(
      (r, i) =>
        `round ${i + 1}: ${r.streams !== undefined ? `${r.streams} streams` : "no streams field"}${r.streamsLine !== undefined ? ` (\`${r.streamsLine.replace(/[`|]/g, "'").slice(0, 200)}\`)` : ""}`,
    );
    out.push(`copy.sh with \`PTM_STREAMS=auto\` ended with: ${chose.join("; ")}.`, "");
  }
  const v = autoVerdict({
    auto: wallsOf(b, "auto"),
    rsync: rsync ?? [],
    ...(b.unavailable["auto"] !== undefined ? { unavailable: b.unavailable["auto"] } : {}),
  });
  out.push(
    `**Verdict, ${size}:** is copy.sh with \`PTM_STREAMS=auto\` no slower than plain \`rsync -a\` beyond the spread (wall time of the same snapshot dir, cold cache, empty target, the same rounds)? ${v.text}.`,
    "",
  );
  return out;
}

function report(bytes: BytesResult[], hist: HistoryResult[], started: Date, finished: Date): void {
  const rounds = Math.min(...bytes.map((b) => b.rounds.length));
  const smoke = rounds < MIN_REPORT_ROUNDS;
  const rows: string[] = [];
  const head =
    "| size | phase | wall s | tools CPU s (both sides) | source Prometheus CPU s | peak RSS of the tools | notes |";
  rows.push(head, "| --- | --- | --- | --- | --- | --- | --- |");
  const mb = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
  const copyOf = (b: BytesResult): Measure => medianMeasure(b.runs["s1"])!;
  const roundsOf = (b: BytesResult) =>
    b.rounds.length === 1 ? "1 round" : `median of ${b.rounds.length} rounds`;
  bytes.forEach((b, i) => {
    const h = hist[i]!;
    const size = `${fmtB(b.bytes)}, ${b.blocks} blocks`;
    const copy = copyOf(b);
    const limitMs = limitOf(b);
    const row = (phase: string, m: Measure, prom: Measure | undefined, note: string) =>
      rows.push(
        `| ${size} | ${phase} | ${s1(m.wallMs)} | ${m.toolsCpuS.toFixed(2)} | ${prom?.promCpuS !== undefined ? prom.promCpuS.toFixed(2) : "–"} | ${mb(m.peakRss)} | ${note} |`,
      );
    row(
      "preview (probe both + plan)",
      h.preview,
      h.preview,
      `history: ${h.blocks} real blocks; source Prometheus RSS peak ${mb(h.preview.promRss ?? 0)}`,
    );
    row("snapshot", b.snapshot, h.snapshot, "hard links");
    row(
      `copy (copy.sh, 1 rsync stream; ${roundsOf(b)})`,
      copy,
      h.copy,
      `${((b.bytes / MiB / copy.wallMs) * 1000).toFixed(0)} MiB/s = ${ratio(limitMs, copy.wallMs).toFixed(2)}x the limit; every method: the copies below`,
    );
    row("install", b.install, h.install, "renames");
    row(
      `verify (${h.verifyWindows} windows + ${h.blocks} blocks)`,
      h.verify,
      h.verify,
      `${((h.verify.wallMs / copy.wallMs) * 100).toFixed(0)}% of the copy's wall time; ${h.verifySummary.slice(0, 160)}`,
    );
    if (h.verifyAll)
      row(
        `verify, every window (${h.verifyAllWindows}; verifyWindows 0, as before)`,
        h.verifyAll,
        h.verifyAll,
        `${((h.verifyAll.wallMs / copy.wallMs) * 100).toFixed(0)}% of the copy's wall time`,
      );
    row(
      "rerun after completion (copy.sh + install.sh)",
      b.rerun,
      undefined,
      `${((b.rerun.wallMs / copy.wallMs) * 100).toFixed(1)}% of the copy; ${b.rerunOut}`,
    );
    row(
      "rerun after completion, history (probes, copy, install, target counts)",
      h.rerun,
      h.rerun,
      "",
    );
  });
  const state = hist.map((h) => {
    const st = h.state ?? { blockIds: NaN, scriptOutput: NaN, results: NaN };
    const record = 3 * (st.record ?? h.recordBytes);
    const total = ENGINE_STATE.bytes + st.blockIds + st.scriptOutput + st.results + record;
    return `| ${h.blocks} | ${fmtB(ENGINE_STATE.bytes)} | ${fmtB(st.blockIds)} | ${fmtB(st.scriptOutput)} | ${fmtB(st.results)} | ${fmtB(record)} | ${fmtB(total)} (${total <= MiB ? "under" : "over"} 1 MiB) |`;
  });

  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  const gib = bytes.map((b) => b.bytes / GiB);
  const pick = (i: number, p: (typeof PHASES)[number]): number => {
    const b = bytes[i]!;
    const h = hist[i]!;
    const m = {
      preview: h.preview,
      snapshot: b.snapshot,
      copy: copyOf(b),
      install: b.install,
      verify: h.verify,
      rerun: b.rerun,
    }[p];
    return m.wallMs / 1000;
  };
  const svg = svgChart(
    `Wall time per phase against TSDB size (log-log; copies: ${rounds === 1 ? "one round" : `medians of ${rounds} rounds`}; the rest: one run)`,
    [
      ...PHASES.map((p, k) => ({
        name: p,
        color: colors[k]!,
        points: gib.map((x, i) => [x, pick(i, p)] as [number, number]),
      })),
      ...(hist.every((h) => h.verifyAll)
        ? [
            {
              name: "verify, every window",
              color: "#9467bd",
              dash: "2 3",
              points: gib.map((x, i) => [x, hist[i]!.verifyAll!.wallMs / 1000] as [number, number]),
            },
          ]
        : []),
      {
        name: "limit (cp -a / tar)",
        color: "#000",
        dash: "6 4",
        points: gib.map((x, i) => [x, limitOf(bytes[i]!) / 1000] as [number, number]),
      },
      {
        name: "plain rsync -a",
        color: "#7f7f7f",
        dash: "6 4",
        points: gib.map(
          (x, i) =>
            [x, (medianMeasure(bytes[i]!.runs["rsync"])?.wallMs ?? NaN) / 1000] as [number, number],
        ),
      },
    ],
  );
  // A smoke run (fewer rounds than a report needs) writes next to its results, not into the
  // repository.
  const stamp = started.toISOString();
  const svgFile = smoke
    ? path.join(WORK, `benchmarks-scale-smoke-${stamp}.svg`)
    : path.join(REPO, "docs", "benchmarks-scale.svg");
  fs.writeFileSync(svgFile, svg);

  const md = [
    "<!-- scale:begin (written by test/bench/scale.ts) -->",
    "## Scale: 128 to 2,048 blocks",
    "",
    ...(smoke
      ? [
          `**${rounds === 1 ? "1 round" : `${rounds} rounds`}, fewer than the ${MIN_REPORT_ROUNDS} a report in BENCHMARKS.md needs** (a smoke run, or the results of a run from before the rounds). Its "medians" are ${rounds === 1 ? "single runs" : `of ${rounds} runs`}, and it gives no verdict. Written to ${WORK}, not to BENCHMARKS.md.`,
          "",
        ]
      : []),
    `Command: \`npm run bench\` (test/bench/scale.ts; data cached by test/bench/gen-scale.sh under ${ROOT}/bench-bytes-N and ${ROOT}/bench-history-N), copies in ${rounds === 1 ? "1 round" : `${rounds} rounds`}. Run: ${started.toISOString()} to ${finished.toISOString()}.`,
    "",
    `Machine: ${machine()}. 2 cores shared with other engineers' tests: compare timings as ratios within this run only.`,
    "",
    `![wall time per phase against size](${smoke ? svgFile : "docs/benchmarks-scale.svg"})`,
    "",
    ...rows,
    "",
    ...bytes.flatMap(comparison),
    `Pulumi state after \`migrate\`: the real engine's, measured in the lab (test/e2e/migration.test.ts, "state after migrate": ${ENGINE_STATE.bytes} bytes with ${ENGINE_STATE.blocks} blocks; every resource, the scripts in the Commands' environments, the outputs), plus everything that grows with the blocks at this size, from this run's real scripts and record: the block IDs on the copy and install Commands' create lines (kept as inputs and as outputs), the snapshot, copy and install scripts' stdout and stderr, their results (the components' outputs and the stack's) and the verification record (the ConfigMap's data, which the engine keeps three times: the inputs, the outputs and the provider's \`__inputs\`). The e2e's own ${ENGINE_STATE.blocks} blocks are counted twice, so this over-estimates a little. The snapshot's listing is not in the state: snapshot.sh prints a count and bytes, and the program reads the blocks with snapshot-blocks.sh.`,
    "",
    "| blocks | the engine's state with 9 blocks (measured) | block IDs on the create lines | scripts' stdout and stderr | results as outputs | verification record (3 copies) | total |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...state,
    "",
    ...engineState(),
    ...NOTES,
    "<!-- scale:end -->",
  ].join("\n");
  const prettier = (f: string) =>
    spawnSync(path.join(REPO, "node_modules", ".bin", "prettier"), ["--write", f], {
      stdio: "ignore",
    });
  if (smoke) {
    const file = path.join(WORK, `report-smoke-${stamp}.md`);
    fs.writeFileSync(file, md + "\n");
    prettier(file);
    log(`smoke report: ${file} (BENCHMARKS.md untouched)`);
  } else {
    const file = path.join(REPO, "BENCHMARKS.md");
    const prev = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmarks\n";
    const begin = prev.indexOf("<!-- scale:begin");
    const end = prev.indexOf("<!-- scale:end -->");
    let next: string;
    if (begin >= 0 && end > begin)
      next = prev.slice(0, begin) + md + prev.slice(end + "<!-- scale:end -->".length);
    else {
      const at = prev.indexOf("\n", prev.indexOf("# Benchmarks")) + 1;
      next = prev.slice(0, at) + "\n" + md + "\n" + prev.slice(at);
    }
    fs.writeFileSync(file, next);
    prettier(file);
  }
  console.log(md);
}

main().catch(async (e) => {
  console.error(e);
  await killAll();
  await sleep(100);
  process.exit(1);
});
