// Helpers for the real-server tests and the benchmark: temp dirs, free ports,
// Prometheus and rsync daemon processes, backfilled TSDBs, and running the
// sidecar scripts exactly like `kubectl exec -i ... -- sh -s -- ARGS < script`.

import * as assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { sidecarScript } from "../../components/cluster/kubectl";
import {
  BlockMeta,
  parseLastJsonLine,
  parseSnapshot,
  parseSnapshotBlocks,
  SnapshotResult,
} from "../../components/decisions/sidecarOutput";
import { Plan, planMigration } from "../../components/decisions/plan";

export const REPO = path.resolve(__dirname, "..", "..");
export const SIDECAR = path.join(REPO, "components", "sidecar");
export const H = 3_600_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function mkTemp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A port the kernel says is free on loopback (bind 0, read, close). */
function unboundPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Ports handed out by freePort, one file each, shared by every process of this machine: the
 * real level runs its files in parallel mocha workers, and a port is free only until the
 * server it is for binds it. A reservation older than PORT_HOLD_MS is stale (the server has
 * bound the port by then, or never will).
 */
const PORTS_DIR = path.join(os.tmpdir(), "ptm-ports");
const PORT_HOLD_MS = 10 * 60_000;

/** Reserves `port` for this process: false when another one holds it. */
function reservePort(port: number): boolean {
  fs.mkdirSync(PORTS_DIR, { recursive: true });
  const file = path.join(PORTS_DIR, String(port));
  try {
    fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  try {
    if (Date.now() - fs.statSync(file).mtimeMs < PORT_HOLD_MS) return false;
    fs.writeFileSync(file, `${process.pid}\n`); // stale: taken over
    return true;
  } catch {
    return false; // removed or replaced meanwhile: ask for another port
  }
}

/** Drops stale reservations, so that the directory does not grow from run to run. */
function dropStaleReservations(): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(PORTS_DIR);
  } catch {
    return;
  }
  for (const n of names) {
    const file = path.join(PORTS_DIR, n);
    try {
      if (Date.now() - fs.statSync(file).mtimeMs >= PORT_HOLD_MS) fs.rmSync(file);
    } catch {
      /* another process dropped or renewed it */
    }
  }
}

/**
 * A free TCP port on loopback that no other process got from this function in the last
 * PORT_HOLD_MS: the kernel's answer for bind 0, reserved in PORTS_DIR. Without the
 * reservation two test processes could be given the same port between one's check and its
 * server's bind, and a test could then talk to the other's server.
 */
export async function freePort(): Promise<number> {
  dropStaleReservations();
  for (let i = 0; i < 100; i++) {
    const port = await unboundPort();
    if (reservePort(port)) return port;
  }
  throw new Error(`no free port after 100 tries (reservations in ${PORTS_DIR})`);
}

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
  everyMs = 500,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
  );
}

export async function httpText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok)
    throw new Error(`GET ${url}: HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`);
  return res.text();
}

/** Processes started by the tests, killed (by their own pid) in `killAll`. */
const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

/**
 * A target sidecar of its own for copy.sh (issue 23): a PID namespace whose /proc shows only
 * these processes, idle.sh as the container's main process and the copy a `kubectl exec`'d
 * step. Creating `trigger` sends SIGTERM to idle.sh only, as the kubelet does. Its stderr ends
 * with "copy exit N" and "idle exit N".
 */
export function copyInPod(
  args: string[],
  env: NodeJS.ProcessEnv,
  trigger: string,
): { stderr: () => string; closed: Promise<number | null>; stop: () => Promise<PodStop> } {
  const pod = [
    'sh -c "$PTM_IDLE" ptm-rsync &',
    "idle=$!",
    '( while [ ! -e "$TRIGGER" ]; do sleep 0.1; done; kill -TERM "$idle" ) &',
    'sh -c "$PTM_SCRIPT" ptm-copy "$@"',
    'echo "copy exit $?" >&2',
    'wait "$idle"',
    'echo "idle exit $?" >&2',
  ].join("\n");
  const child = track(
    spawn("unshare", ["--fork", "--pid", "--mount-proc", "sh", "-c", pod, "pod", ...args], {
      env: {
        ...env,
        PTM_SCRIPT: sidecarScript("copy"),
        PTM_IDLE: sidecarScript("idle"),
        TRIGGER: trigger,
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const stop = async (): Promise<PodStop> => {
    const stoppedAt = Date.now();
    fs.writeFileSync(trigger, "");
    await closed;
    return { stderr, seconds: (Date.now() - stoppedAt) / 1000 };
  };
  return { stderr: () => stderr, closed, stop };
}

/** What copyInPod's copy said once its pod was stopped, and how long the pod took to end. */
export interface PodStop {
  stderr: string;
  seconds: number;
}

/**
 * The copy stopped by its pod's SIGTERM: its own message (with how many of `blocks` it kept),
 * exit 1, idle.sh's clean exit, and the pod gone within 20 s.
 */
export function assertStoppedByPod(r: PodStop, blocks: number): void {
  const { stderr, seconds } = r;
  assert.match(
    stderr,
    new RegExp(
      `copy: ERROR: stopped because the target's pod is shutting down \\(SIGTERM: deleted, evicted or restarted\\); \\d+ of ${blocks} blocks complete and kept\\. Run pulumi up again once the pod runs: the copy resumes`,
    ),
    stderr,
  );
  assert.match(stderr, /copy exit 1\n/);
  assert.match(stderr, /idle exit 0\n/);
  assert.ok(seconds < 20, `the pod's main process ended ${seconds} s after its SIGTERM`);
}

export async function killAll(): Promise<void> {
  for (const c of [...children]) {
    if (c.exitCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
  }
  await waitFor(
    "children to exit",
    15_000,
    async () => (children.size === 0 ? true : undefined),
    200,
  ).catch(() => {
    for (const c of children) if (c.pid !== undefined) process.kill(c.pid, "SIGKILL");
  });
}

export interface Prom {
  url: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Start Debian's prometheus on loopback. `scrape` are host:port targets
 * scraped every `intervalS` seconds as job "prom" (their /metrics).
 */
export async function startPrometheus(opts: {
  dataDir: string;
  scrape: (port: number) => string[];
  intervalS?: number;
  adminApi?: boolean;
  binary?: string;
  extraArgs?: string[];
  /** Extra `global:` settings, e.g. {scrape_native_histograms: "true"} (3.x only). */
  global?: Record<string, string>;
  /** Extra scrape jobs: [job name, host:port targets]. */
  jobs?: [string, string[]][];
}): Promise<Prom> {
  const port = await freePort();
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const cfg = path.join(path.dirname(opts.dataDir), `prometheus-${port}.yml`);
  const targets = opts
    .scrape(port)
    .map((t) => `'${t}'`)
    .join(", ");
  const global = Object.entries(opts.global ?? {}).map(([k, v]) => `, ${k}: ${v}`);
  fs.writeFileSync(
    cfg,
    [
      `global: {scrape_interval: ${opts.intervalS ?? 2}s, evaluation_interval: 60s${global.join("")}}`,
      "scrape_configs:",
      "  - job_name: prom",
      `    static_configs: [{targets: [${targets}]}]`,
      ...(opts.jobs ?? []).flatMap(([job, ts]) => [
        `  - job_name: ${job}`,
        `    static_configs: [{targets: [${ts.map((t) => `'${t}'`).join(", ")}]}]`,
      ]),
      "",
    ].join("\n"),
  );
  const logFile = path.join(path.dirname(opts.dataDir), `prometheus-${port}.log`);
  const log = fs.openSync(logFile, "a");
  const args = [
    `--config.file=${cfg}`,
    `--storage.tsdb.path=${opts.dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    ...(opts.adminApi ? ["--web.enable-admin-api"] : []),
    ...(opts.extraArgs ?? []),
  ];
  const child = track(spawn(opts.binary ?? "prometheus", args, { stdio: ["ignore", log, log] }));
  fs.closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`prometheus on ${port} ready (log ${logFile})`, 60_000, async () => {
    if (child.exitCode !== null)
      throw new Error(`prometheus exited ${child.exitCode}; see ${logFile}`);
    const r = await fetch(`${url}/-/ready`).catch(() => undefined);
    return r?.ok ? true : undefined;
  });
  return {
    url,
    port,
    dataDir: opts.dataDir,
    child,
    pid: child.pid ?? -1,
    logFile,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await waitFor(
          "prometheus to stop",
          30_000,
          async () => (child.exitCode !== null ? true : undefined),
          200,
        );
      }
    },
  };
}

/** Instant query; returns the first sample value as a number (0 when empty). */
export async function queryValue(url: string, expr: string, timeMs?: number): Promise<number> {
  const q = new URLSearchParams({ query: expr });
  if (timeMs !== undefined) q.set("time", (timeMs / 1000).toFixed(3));
  const body = JSON.parse(await httpText(`${url}/api/v1/query?${q}`)) as {
    status: string;
    data: { result: { value: [number, string] }[] };
  };
  if (body.status !== "success") throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
  const v = body.data.result[0]?.value[1];
  return v === undefined ? 0 : Number(v);
}

/** A value from a server's own /metrics. */
export async function selfMetric(url: string, name: string): Promise<number> {
  const text = await httpText(`${url}/metrics`);
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} not in ${url}/metrics`);
  return Number(line.split(" ")[1]);
}

/**
 * Backfill `dir` with promtool from a generated OpenMetrics file: `series`
 * random gauges every `stepS` seconds over [startMs, endMs).
 */
export function backfill(
  dir: string,
  o: {
    startMs: number;
    endMs: number;
    series: number;
    stepS: number;
    metric?: string;
    maxBlockDuration?: string;
    /** The promtool to write the blocks with (default: promtool on PATH, Debian's 2.42). */
    promtool?: string;
  },
): void {
  const om = `${dir}.om`;
  const awk = `BEGIN { srand(7); print "# HELP ${o.metric ?? "ptm_backfill"} backfilled test data"; print "# TYPE ${o.metric ?? "ptm_backfill"} gauge";
    for (s = 0; s < series; s++) for (t = start; t < end; t += step) printf "${o.metric ?? "ptm_backfill"}{series=\\"%d\\"} %.6f %d\\n", s, rand() * 100, t;
    print "# EOF" }`;
  const text = execFileSync(
    "awk",
    [
      "-v",
      `start=${Math.ceil(o.startMs / 1000)}`,
      "-v",
      `end=${Math.floor(o.endMs / 1000)}`,
      "-v",
      `series=${o.series}`,
      "-v",
      `step=${o.stepS}`,
      awk,
    ],
    { maxBuffer: 1 << 30 },
  );
  fs.writeFileSync(om, text);
  const args = ["tsdb", "create-blocks-from", "openmetrics"];
  if (o.maxBlockDuration) args.push(`--max-block-duration=${o.maxBlockDuration}`);
  execFileSync(o.promtool ?? "promtool", [...args, om, dir], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  fs.rmSync(om);
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOpts {
  env?: Record<string, string>;
  /** Run under `busybox sh` with a PATH holding only busybox applets and rsync. */
  busybox?: boolean;
  /** Called with the child right after spawn (e.g. to kill it later). */
  onSpawn?: (c: ChildProcess) => void;
}

let busyboxBin: string | undefined;
/** A dir of busybox applet links plus rsync: a PATH without GNU tools. */
export function busyboxPath(): string {
  if (busyboxBin !== undefined) return busyboxBin;
  const dir = path.join(os.tmpdir(), "ptm-busybox-bin");
  fs.mkdirSync(dir, { recursive: true });
  const bb = execFileSync("sh", ["-c", "command -v busybox"]).toString().trim();
  // Kept from run to run, and filled by parallel test processes at once: a link that is
  // there already (made earlier, or by another process a moment ago) is kept.
  const link = (to: string, p: string): void => {
    try {
      fs.symlinkSync(to, p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  };
  for (const applet of execFileSync(bb, ["--list"]).toString().split("\n").filter(Boolean)) {
    link(bb, path.join(dir, applet));
  }
  const rsync = execFileSync("sh", ["-c", "command -v rsync"]).toString().trim();
  link(rsync, path.join(dir, "rsync"));
  busyboxBin = dir;
  return dir;
}

/**
 * Run sidecar/<name>.sh the way the Pulumi program does: the script on
 * stdin of `sh -s -- ARGS`, configuration in the environment only.
 */
export function runScript(
  name: string,
  args: string[] = [],
  opts: RunOpts = {},
): Promise<ScriptResult> {
  const script = sidecarScript(name);
  const env: Record<string, string> = {
    PATH: opts.busybox ? busyboxPath() : (process.env["PATH"] ?? "/usr/bin:/bin"),
    HOME: os.tmpdir(),
    // The migration the source sidecar runs for (its environment): snapshot.sh records it.
    PTM_STACK_ID: "organization/prometheus-tsdb-migration/real-tests",
    PTM_MIGRATION_ID: "0123456789abcdef",
    ...opts.env,
  };
  const cmd = opts.busybox ? path.join(busyboxPath(), "sh") : "sh";
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(cmd, ["-s", "--", ...args], { env, stdio: ["pipe", "pipe", "pipe"], detached: true }),
    );
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started }),
    );
    child.stdin?.end(script);
    opts.onSpawn?.(child);
  });
}

/** Run a script that must succeed; returns its JSON result. */
export async function runJson<T>(
  name: string,
  args: string[] = [],
  opts: RunOpts = {},
): Promise<{ json: T; res: ScriptResult }> {
  const res = await runScript(name, args, opts);
  if (res.code !== 0) {
    throw new Error(
      `${name}.sh exited ${res.code ?? res.signal}\n--- stderr ---\n${res.stderr}\n--- stdout ---\n${res.stdout}`,
    );
  }
  return { json: parseLastJsonLine(res.stdout) as T, res };
}

/**
 * snapshot.sh, then snapshot-blocks.sh in the same environment, as the program runs them: the
 * step's summary, and the blocks the program reads after it, checked against that summary by
 * the program's own parsers. `res` is snapshot.sh's run.
 */
export async function takeSnapshot(
  opts: RunOpts & { env: { PTM_SNAPSHOT: string } },
): Promise<{ json: SnapshotResult & { blocks: BlockMeta[] }; res: ScriptResult }> {
  const { res } = await runJson("snapshot", [], opts);
  const made = parseSnapshot(res.stdout, opts.env.PTM_SNAPSHOT);
  const listed = await runScript("snapshot-blocks", [], opts);
  if (listed.code !== 0)
    throw new Error(`snapshot-blocks.sh exited ${listed.code}: ${listed.stderr}`);
  return { json: { ...made, blocks: parseSnapshotBlocks(listed.stdout, made) }, res };
}

/** Start sidecar/rsyncd.sh serving `dataDir`; resolves once it accepts connections. */
export async function startRsyncd(
  dataDir: string,
  password: string,
  runDir: string,
): Promise<{ port: number; child: ChildProcess; log: () => string }> {
  const port = await freePort();
  let log = "";
  const script = sidecarScript("rsyncd");
  const child = track(
    spawn("sh", ["-s"], {
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        PTM_DATA: dataDir,
        PTM_RSYNC_PASSWORD: password,
        PTM_RSYNC_PORT: String(port),
        PTM_RSYNC_ADDRESS: "127.0.0.1",
        PTM_RUN: runDir,
      },
      stdio: ["pipe", "pipe", "pipe"],
    }),
  );
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stdin?.end(script);
  await waitFor(
    `rsyncd on ${port}`,
    15_000,
    () =>
      new Promise<true | undefined>((resolve) => {
        if (child.exitCode !== null) throw new Error(`rsyncd exited: ${log}`);
        const s = net.connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(undefined));
      }),
  );
  return { port, child, log: () => log };
}

/** sha256 of every file under the ULID dirs of a data dir, plus the top-level names. */
export function blockChecksums(dataDir: string): { top: string[]; files: Record<string, string> } {
  const files: Record<string, string> = {};
  const top = fs.readdirSync(dataDir).sort();
  const walk = (rel: string): void => {
    const abs = path.join(dataDir, rel);
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else
        files[r] = createHash("sha256")
          .update(fs.readFileSync(path.join(dataDir, r)))
          .digest("hex");
    }
  };
  for (const t of top) if (/^[0-9A-HJKMNP-TV-Z]{26}$/.test(t)) walk(t);
  return { top, files };
}

/** Apparent bytes of all files under a dir. */
export function dirBytes(dir: string): number {
  let n = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return n;
}

/** Disk usage in bytes as `du -sk` counts it (hard links counted once). */
export function duBytes(...dirs: string[]): number {
  const out = execFileSync("du", ["-skc", ...dirs])
    .toString()
    .trim()
    .split("\n");
  return Number(out[out.length - 1]!.split(/\s+/)[0]) * 1024;
}

/** The plan for moving every block into an empty Prometheus 2.42 target (overlap allowed). */
export function planIntoEmpty242(sourceBlocks: BlockMeta[]): Plan {
  return planMigration({
    sourceBlocks,
    sourceHead: undefined,
    targetVersion: "2.42.0",
    targetFlags: {},
    targetBlocks: [],
    targetEarliestMs: undefined,
    includeHead: false,
    nowMs: Date.now(),
  });
}
