// What `pulumi preview` knows before `prepare` restarts a pod (issue 21 item 1): the plan that
// `migrate` will act on, every gate it passes or fails, the free space on both sides, the pod
// restarts the chosen mode causes, and what could not be checked and why. Read from both
// TSDBs without a sidecar (probe.sh through each Prometheus container). Pure.

import { ConfigError, PROJECT, SidecarMode } from "./config";
import { DiscoveredFlags, PlanSummary, summarizePlan, headAsBlock } from "./planInput";
import { GateCheck, planEveryReplica, PlanSettings } from "./replicaPlans";
import { BlockMeta, ProbeResult } from "./sidecarOutput";

/** A probe's answer, or why it could not look. */
export type Looked = { probe: ProbeResult } | { why: string };

export interface PreviewInput {
  settings: PlanSettings;
  /** What discovery read of each server's flags: used where a probe has none. */
  discovered?: DiscoveredFlags;
  sidecarMode: SidecarMode;
  source: {
    /** "Deployment ns/name", as messages name it. */
    workload: string;
    looked: Looked;
    /** Whether `--web.enable-admin-api` is on already. */
    adminApi: boolean;
    /** Whether its pod template carries our sidecar already (an earlier prepare). */
    prepared: boolean;
  };
  target: {
    workload: string;
    prepared: boolean;
    /** Every replica (each has its own TSDB); `volume` names it in messages. */
    replicas: { pod: string | null; volume: string; looked: Looked }[];
  };
}

/** One check the preview made: what it compared, and whether it passed. */
export interface PreviewCheck {
  check: string;
  ok: boolean;
  detail: string;
}

export interface PreviewReport {
  /**
   * "ready": every check looked and passed. "refused": a check failed; `refusal` names the
   * key. "incomplete": some checks could not look (`notChecked`); those are made at migrate.
   */
  verdict: "ready" | "refused" | "incomplete";
  refusal: { key: string; message: string } | null;
  /** The plan migrate will act on now (the replica with the largest gap); null unread. */
  plan: PlanSummary | null;
  /** The gap gate's answer: go, wait for the next compaction, or why not. */
  gate: string | null;
  /** Free bytes on the source's volume and on each target replica's, as probed. */
  freeBytes: { source: number | null; target: (number | null)[] };
  checked: PreviewCheck[];
  notChecked: string[];
  /**
   * What migrate would refuse with the config as it is now, but which depends on keys usually
   * set then (the gap gate: includeHead, acceptGap, maxWaitMinutes): not a refusal at prepare.
   */
  attention: string[];
  /** The pod restarts this mode causes, phase by phase. */
  restarts: string[];
}

/** Before the snapshot exists: the blocks it will hold (with the head when includeHead). */
export function blocksToSnapshot(source: ProbeResult, includeHead: boolean): BlockMeta[] {
  return [...source.blocks, ...(includeHead ? headAsBlock(source) : [])];
}

/** The pod restarts each phase causes in this mode, from what is in place already. */
export function restartsOf(input: PreviewInput): string[] {
  const { source, target } = input;
  if (input.sidecarMode === "ephemeral") {
    return [
      "none: the sidecars are added to the running pods as ephemeral containers, and no pod " +
        "template changes (the head is snapshotted only if the admin API is on already)",
    ];
  }
  const pods = target.replicas.length;
  const out: string[] = [];
  out.push(
    source.prepared
      ? `prepare: none for ${source.workload} (its sidecar is in place already)`
      : `prepare: ${source.workload} restarts its pod to add the rsync daemon sidecar`,
  );
  if (input.settings.includeHead && !source.adminApi) {
    out.push(
      `prepare: ${source.workload} restarts its pod once more to switch the admin API on ` +
        `(includeHead; the revert switches it off, one more restart)`,
    );
  }
  out.push(
    target.prepared
      ? `prepare: none for ${target.workload} (its sidecar is in place already)`
      : `prepare: ${target.workload} restarts ${pods === 1 ? "its pod" : `its ${pods} pods`} to add the rsync client sidecar`,
  );
  out.push("migrate: none (the copied blocks are loaded without a restart)");
  out.push(
    `revert: ${source.workload} and ${target.workload} restart once more when their sidecars are ` +
      `removed (the target's only after a check that it loses no sample)`,
  );
  return out;
}

const probeOf = (l: Looked) => ("probe" in l ? l.probe : undefined);

/** A probe without the server's flags, where discovery read none either. */
function unreadFlags(what: string, p: ProbeResult, discovered: unknown): string | undefined {
  return p.flags === null && discovered === undefined
    ? `${what}: its flags were read neither by the probe nor by discovery`
    : undefined;
}

/** The preview's report: every check that could look, and why the others could not. */
export function previewReport(input: PreviewInput): PreviewReport {
  const { source, target } = input;
  const notChecked: string[] = [];
  const sourceProbe = probeOf(source.looked);
  if (!sourceProbe) {
    notChecked.push(
      `source ${source.workload}: its TSDB could not be read (${whyOf(source.looked)})`,
    );
  } else {
    const api = unreadFlags(`source ${source.workload}`, sourceProbe, input.discovered?.source);
    if (api) notChecked.push(api);
  }
  for (const r of target.replicas) {
    const p = probeOf(r.looked);
    if (!p) notChecked.push(`target ${r.volume}: its TSDB could not be read (${whyOf(r.looked)})`);
    else {
      const api = unreadFlags(`target ${r.volume}`, p, input.discovered?.target);
      if (api) notChecked.push(api);
    }
  }
  const freeBytes = {
    source: sourceProbe?.dfAvailableBytes ?? null,
    target: target.replicas.map((r) => probeOf(r.looked)?.dfAvailableBytes ?? null),
  };
  const restarts = restartsOf(input);
  const targetProbes = target.replicas.map((r) => probeOf(r.looked));
  // The version gate and the overlap rules need each server's version, the gap its head:
  // no plan without them (a Prometheus container without wget or curl can't ask its API;
  // migrate asks through the sidecar, which has one).
  const unanswered = (p: ProbeResult) => !p.buildinfo?.version || p.tsdb === null;
  if (sourceProbe && unanswered(sourceProbe)) {
    notChecked.push(`source ${source.workload}: its version or head is unknown (API not read)`);
  }
  target.replicas.forEach((r, i) => {
    if (targetProbes[i] && unanswered(targetProbes[i]!)) {
      notChecked.push(`target ${r.volume}: its version or head is unknown (API not read)`);
    }
  });
  const unplannable =
    (sourceProbe !== undefined && unanswered(sourceProbe)) ||
    targetProbes.some((p) => !p || unanswered(p));
  // A report without a plan: what was looked at, and nothing planned.
  const unplanned = {
    plan: null,
    gate: null,
    freeBytes,
    checked: [],
    notChecked,
    attention: [],
    restarts,
  };
  if (!sourceProbe || unplannable || target.replicas.length === 0) {
    notChecked.push(
      "the plan, target retention, free space, version gate and gap: they need both TSDBs; " +
        "migrate checks them before the snapshot",
    );
    return { ...unplanned, verdict: "incomplete", refusal: null };
  }
  let planned: ReturnType<typeof planEveryReplica>;
  try {
    planned = planEveryReplica(
      input.settings,
      sourceProbe,
      blocksToSnapshot(sourceProbe, input.settings.includeHead),
      target.replicas.map((r, i) => ({ probe: targetProbes[i]!, volume: r.volume })),
      false,
      input.discovered,
    );
  } catch (e) {
    // The planner fails closed on what it can't trust (planInput.ts): a refusal, unplanned.
    if (!(e instanceof ConfigError)) throw e;
    const message = e.message.slice(`${PROJECT}:${e.key}: `.length);
    return { ...unplanned, verdict: "refused", refusal: { key: e.key, message } };
  }
  // The gap gate depends on keys usually set at migrate (includeHead, acceptGap,
  // maxWaitMinutes) and on the source's next compaction: at prepare, its "no" is for the
  // user's attention, not a refusal. Every other gate is structural and refuses here.
  const gapNow = planned.checks.find((c) => c.check === "gap");
  const structural = planned.checks.filter((c) => c.check !== "gap" || c.ok);
  const attention =
    gapNow && !gapNow.ok
      ? [
          `gap: ${gapNow.detail} (checked again at migrate, with includeHead, acceptGap and ` +
            `maxWaitMinutes as they are then)`,
        ]
      : [];
  const checked = structural.map((c: GateCheck) => ({
    check: c.check,
    ok: c.ok,
    detail: c.detail,
  }));
  const plan = summarizePlan(planned.plans[planned.worst]);
  // A structural gate said no: refused, with the first refusal in migrate's order.
  const refused = !planned.ok && structural.some((c) => !c.ok);
  return {
    verdict: refused ? "refused" : notChecked.length > 0 ? "incomplete" : "ready",
    refusal: refused && !planned.ok ? { key: planned.key, message: planned.message } : null,
    plan,
    gate: gapNow?.detail ?? null,
    freeBytes,
    checked,
    notChecked,
    attention,
    restarts,
  };
}

function whyOf(l: Looked): string {
  return "why" in l ? l.why : "";
}

/** The report in a few lines, for the preview's log. */
export function describePreview(r: PreviewReport): string[] {
  const lines = [`preflight: ${r.verdict}${r.refusal ? ` (${r.refusal.key})` : ""}`];
  if (r.plan) {
    lines.push(
      `preflight plan: ${r.plan.blocks} blocks, ${(r.plan.bytes / 2 ** 20).toFixed(1)} MiB, ` +
        `${r.plan.samples} samples, from ${r.plan.from ?? "-"} up to ${r.plan.cutoff ?? "-"}, ` +
        `gap ${r.plan.gapSeconds}s` +
        // A gate that said no has its own line below.
        (r.gate && r.refusal === null && r.attention.length === 0 ? `; ${r.gate}` : ""),
    );
  }
  for (const c of r.checked)
    lines.push(`preflight ${c.ok ? "ok" : "FAILED"}: ${c.check}: ${c.detail}`);
  for (const a of r.attention) lines.push(`preflight attention: ${a}`);
  for (const n of r.notChecked) lines.push(`preflight not checked: ${n}`);
  for (const x of r.restarts) lines.push(`restarts: ${x}`);
  return lines;
}

/**
 * The report with each side's admission answer (decisions/admission.ts): an admitted pod is a
 * check that passed; a warning or a dry-run that could not be made is not a pass, and makes
 * a ready report incomplete. (A refusal never gets here: it stops the run first.)
 */
export function withAdmission(
  r: PreviewReport,
  verdicts: { action: "admitted" | "warn" | "refuse" | "unchecked"; message: string }[],
): PreviewReport {
  const checked = [...r.checked];
  const notChecked = [...r.notChecked];
  for (const v of verdicts) {
    if (v.action === "admitted") checked.push({ check: "admission", ok: true, detail: v.message });
    else notChecked.push(`admission: ${v.message}`);
  }
  const verdict = r.verdict === "ready" && notChecked.length > 0 ? "incomplete" : r.verdict;
  return { ...r, verdict, checked, notChecked };
}
