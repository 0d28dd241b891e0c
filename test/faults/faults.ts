// The fault level (`npm run test:faults`, issue 23): real faults injected in the lab while the
// real engine runs the program, and what each one did, recorded for docs/reliability.md.
//
// Each fault strikes one `pulumi up` (or preview) of a migration. What the test records for it:
// - outcome: the up completed, or stopped with the error the user sees (its first line);
// - samples lost: counted with our own queries on both servers (samples.ts);
// - recovered: the documented next step (`pulumi up` again, mostly) finished what was struck;
// - time to detect: seconds from the fault to the error, or to the end of the struck up.

import * as assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { kubectl, Workload } from "../e2e/cluster";

export interface FaultRow {
  fault: string;
  when: string;
  /** The mocha test that injected it: "<file>: <title>". */
  test: string;
  /** "completed ..." or "stopped: <the error's first line>" or "refused: ...". */
  outcome: string;
  /** Samples lost, each counted by a query: imported (per window), source's own, target's own. */
  samplesLost: string;
  recovered: string;
  /** Seconds from the fault to the error, or to the end of the struck up. */
  detectSeconds: number | undefined;
}

const RESULTS =
  process.env.PTM_FAULTS_RESULTS || path.join(os.tmpdir(), `ptm-faults-${process.pid}.json`);

/** Adds a row to this run's results (a JSON list; report.ts renders the table). */
export function recordRow(row: FaultRow): void {
  const rows: FaultRow[] = fs.existsSync(RESULTS)
    ? (JSON.parse(fs.readFileSync(RESULTS, "utf8")) as FaultRow[])
    : [];
  rows.push(row);
  fs.writeFileSync(RESULTS, JSON.stringify(rows, null, 2) + "\n");
  process.stdout.write(
    `      fault row: ${row.fault} | ${row.when} | ${row.outcome} | lost ${row.samplesLost} | recovered ${row.recovered} | detect ${row.detectSeconds ?? "-"} s\n`,
  );
}

export function resultsFile(): string {
  return RESULTS;
}

/** What a struck up gave: its end, its output, and the error when it failed. */
export interface Struck {
  ok: boolean;
  error: string;
  output: string;
  endedAt: number;
  faultAt: number | undefined;
}

/**
 * Runs `up` (with `signal` for an abort) and calls `strike` once, on the first output that
 * `when` accepts; the strike's time is taken as the fault's. Never throws for a failed up.
 */
export async function upStruck(
  stack: Stack,
  when: (output: string, sinceStart: string) => boolean,
  strike: () => void | Promise<void>,
  opts: { refresh?: boolean } = {},
): Promise<Struck> {
  let faultAt: number | undefined;
  let output = "";
  let striking: Promise<void> | undefined;
  const run = stack.up({
    refresh: opts.refresh,
    onOutput: (o) => {
      output += o;
      if (faultAt === undefined && when(o, output)) {
        faultAt = Date.now();
        striking = Promise.resolve().then(strike);
      }
    },
  });
  const r = await run.then(
    () => ({ ok: true, error: "" }),
    (e: unknown) => ({ ok: false, error: String(e) }),
  );
  const endedAt = Date.now();
  if (striking) await striking;
  return { ...r, output, endedAt, faultAt };
}

/** The first line of the user's error in a failed up's output: the step's own message. */
export function errorLine(s: Struck): string {
  const text = s.output + "\n" + s.error;
  const lines = text.split("\n").map((l) => l.trim());
  // The program's and the scripts' messages: "<step>: ERROR: ..." / "REFUSED" / "error: ...".
  const own = lines.find((l) => /\b[a-z-]+: (ERROR|REFUSED)\b/.test(l));
  const engine = lines.find(
    (l) => /^error: /.test(l) && !/update failed|one or more errors/.test(l),
  );
  const line = own ?? engine ?? lines.find((l) => l) ?? "";
  // Pulumi's progress prefix, "+  command:local:Command <name> creating (18s) <message>", as
  // "<name>: <message>".
  const m = /^[-+~*]*\s*[\w-]+:[\w/-]+:[\w.]+ (\S+) [a-z ]+\(\d+s\) (.*)$/.exec(line);
  return (m ? `${m[1]}: ${m[2]}` : line).slice(0, 400);
}

/** A failed up's text has no JavaScript stack (a bug's trace, not a message for the user). */
export function assertNoStackTrace(s: Struck): void {
  const text = s.output + "\n" + s.error;
  for (const [re, what] of [
    [/\n\s+at .+\((\/|node:).+:\d+:\d+\)/, "a stack trace"],
    [/unhandled exception/i, "an unhandled exception"],
  ] as const) {
    const m = re.exec(text);
    if (m) {
      const from = Math.max(0, m.index - 200);
      assert.fail(`${what} reached the user:\n${text.slice(from, m.index + 1500)}`);
    }
  }
}

/** The error tells the user what to do next. */
export function assertNamesNextStep(line: string): void {
  assert.match(
    line,
    /pulumi up|rerun|run (it )?again|again once|remove the phase|set [a-zA-Z.]+|delete|wait/i,
    `the error names no next step: ${line}`,
  );
}

export const secondsSince = (t: number | undefined, end: number): number | undefined =>
  t === undefined ? undefined : Math.round((end - t) / 100) / 10;

// --- faults ----------------------------------------------------------------------------------

/** The lab's control plane: its processes' pid files (test/lab/lib.sh PIDS). */
const LAB_PIDS = path.join(process.env.PTM_LAB || "/var/lib/ptm-lab", "pids");

/**
 * Stops the lab's kube-apiserver (SIGSTOP: it holds its connections and answers nothing, as a
 * hung or partitioned control plane does) for `seconds`, then lets it go on. Returns when it
 * runs again. Nothing may call kubectl synchronously meanwhile: it would hang this process.
 */
export async function stopApiServer(seconds: number): Promise<void> {
  const pid = Number(fs.readFileSync(path.join(LAB_PIDS, "kube-apiserver.pid"), "utf8").trim());
  assert.ok(pid > 1 && fs.existsSync(`/proc/${pid}`), `the lab's kube-apiserver (pid ${pid})`);
  // A watchdog of its own that lets the API server go on even if this process dies meanwhile:
  // a lab left with a stopped API server would fail every later level.
  spawn("sh", ["-c", `sleep ${seconds + 5}; kill -CONT ${pid}`], {
    detached: true,
    stdio: "ignore",
  }).unref();
  process.kill(pid, "SIGSTOP");
  try {
    await new Promise((r) => setTimeout(r, seconds * 1000));
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

/** The host PIDs of the processes of one container of a pod (containerd, through /proc). */
function containerPids(ns: string, pod: string, container: string): number[] {
  const id = kubectl([
    "get",
    "pod",
    pod,
    "-n",
    ns,
    "-o",
    `jsonpath={.status.containerStatuses[?(@.name=="${container}")].containerID}`,
  ])
    .trim()
    .replace(/^containerd:\/\//, "");
  assert.match(id, /^[0-9a-f]{64}$/, `container ${container} of pod ${ns}/${pod} is running`);
  // Every process whose cgroup names the container's ID.
  const pids: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cgroup`, "utf8").includes(id)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  assert.ok(pids.length > 0, `no process of container ${container} (${id.slice(0, 12)}) found`);
  return pids;
}

/**
 * Kills with SIGKILL, from the node, every process of `container` whose command line matches
 * `pattern` (the rsync daemon and the connections it serves), as the OOM killer would.
 */
export function killInContainer(
  ns: string,
  pod: string,
  container: string,
  pattern: RegExp,
): number[] {
  const killed: number[] = [];
  for (const pid of containerPids(ns, pod, container)) {
    let cmd = "";
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      continue;
    }
    if (!pattern.test(cmd)) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  assert.ok(killed.length > 0, `no process matching ${pattern} in ${ns}/${pod} ${container}`);
  return killed;
}

/** The `pulumi` CLI process running an operation on `stackName` (not its plugins). */
export function pulumiProcess(stackName: string): number {
  const out = execFileSync("pgrep", ["-f", "--", `--stack ${stackName}`], {
    encoding: "utf8",
  }).trim();
  const pids = out
    .split("\n")
    .map(Number)
    .filter((pid) => {
      try {
        const exe = fs.readlinkSync(`/proc/${pid}/exe`);
        return path.basename(exe) === "pulumi";
      } catch {
        return false;
      }
    });
  assert.equal(pids.length, 1, `one pulumi CLI process for stack ${stackName}: ${out}`);
  return pids[0];
}

/** Deletes the pod (not waiting), as a node drain or an eviction would. */
export function deletePod(w: Workload, pod: string): void {
  kubectl(["delete", "pod", pod, "-n", w.namespace, "--wait=false"]);
}

// --- samples ---------------------------------------------------------------------------------

/**
 * Samples of a server's own self-scrape (every series with {server="<name>"}) in
 * (fromMs, toMs], as the server returns them for a range selector, counted here.
 */
export function ownSamples(w: Workload, server: string, fromMs: number, toMs: number): number {
  const range = `${Math.round((toMs - fromMs) / 1000)}s`;
  const q = `{server="${server}"}[${range}]`;
  const url = `http://localhost:9090/api/v1/query?query=${encodeURIComponent(q)}&time=${(toMs / 1000).toFixed(3)}`;
  const out = JSON.parse(
    kubectl([
      "exec",
      "-n",
      w.namespace,
      `${w.kind.toLowerCase()}/${w.name}`,
      "-c",
      w.container,
      "--",
      "wget",
      "-qO-",
      url,
    ]),
  ) as { status: string; data: { result: { values?: unknown[]; histograms?: unknown[] }[] } };
  assert.equal(
    out.status,
    "success",
    `${server}'s own samples: ${JSON.stringify(out).slice(0, 300)}`,
  );
  return out.data.result.reduce(
    (n, r) => n + (r.values?.length ?? 0) + (r.histograms?.length ?? 0),
    0,
  );
}

/**
 * A server's own samples from `fromMs` up to 30 s ago, counted now and again later: `lost()`
 * is how many of them the later count misses (a restart that dropped head samples).
 */
export function ownSamplesWitness(
  w: Workload,
  server: string,
  fromMs: number,
): { count: number; lost(): number } {
  const toMs = Date.now() - 30_000;
  const count = ownSamples(w, server, fromMs, toMs);
  assert.ok(
    count > 0,
    `${server} has own samples to watch (from ${new Date(fromMs).toISOString()})`,
  );
  return { count, lost: () => Math.max(0, count - ownSamples(w, server, fromMs, toMs)) };
}

/**
 * The servers' own samples, counted before each fault (from `fromMs` up to 30 s before the
 * count) and all counted again at the end: a restart a fault caused that dropped head
 * samples shows as lost.
 */
export class OwnSamples {
  private readonly taken: {
    w: Workload;
    server: string;
    witness: ReturnType<typeof ownSamplesWitness>;
  }[] = [];

  constructor(private readonly fromMs: number) {}

  /** Counts now, before a fault. */
  take(w: Workload, server: string): void {
    this.taken.push({ w, server, witness: ownSamplesWitness(w, server, this.fromMs) });
  }

  /**
   * Every count again (of `server` only, when named): what each server lost, and of how many
   * counted (the largest count).
   */
  lost(server?: string): { server: string; lost: number; of: number; counts: number }[] {
    const by = new Map<string, { server: string; lost: number; of: number; counts: number }>();
    for (const t of this.taken.filter((x) => server === undefined || x.server === server)) {
      const b = by.get(t.server) ?? { server: t.server, lost: 0, of: 0, counts: 0 };
      b.lost += t.witness.lost();
      b.of = Math.max(b.of, t.witness.count);
      b.counts += 1;
      by.set(t.server, b);
    }
    return [...by.values()];
  }
}

/** What a copy resumed from the runs before it: copy.sh's "N of M blocks skipped" line. */
export function resumed(output: string): string | undefined {
  const m = /copy: (\d+ of \d+ blocks skipped: [^\n]*)/.exec(output);
  return m ? m[1].trim() : undefined;
}
