// The decision's plan for every target replica, through every gate, from what the probes saw.
// `migrate` acts on it, and the preview shows it before `prepare` (preview.ts): one function,
// so that the preview can't plan differently from the migration. Pure.

import { decideGap, GateDecision } from "./gap";
import { decideHeadSnapshotSpace } from "./headSnapshotSpace";
import { Plan, PlanInput, planMigration } from "./plan";
import { DiscoveredFlags, planInput } from "./planInput";
import { planWithinRetention, targetRetention } from "./retention";
import { BlockMeta, ProbeResult } from "./sidecarOutput";
import { decideTargetSpace } from "./targetSpace";
import { headRange } from "./tsdb";

/** The config keys the plan depends on. */
export interface PlanSettings {
  includeHead: boolean;
  acceptGap: boolean;
  maxWaitMinutes: number;
  trimToTargetRetention: boolean;
}

/** One target replica: what its probe saw, and how to name its volume in a message. */
export interface ReplicaFacts {
  probe: ProbeResult;
  volume: string;
}

/** One gate's outcome: what it compared, and the key that changes it when it refused. */
export interface GateCheck {
  check: "head snapshot space" | "target retention" | "target free space" | "version gate" | "gap";
  ok: boolean;
  /** What was compared, with the numbers; the refusal's message when not ok. */
  detail: string;
  /** The config key (or object) to change, when not ok. */
  key?: string;
}

export type ReplicaPlans =
  | {
      ok: true;
      /** Each replica's plan, within its retention. */
      plans: Plan[];
      inputs: PlanInput[];
      /** The replica with the largest gap: the decision follows it. */
      worst: number;
      gate: Extract<GateDecision, { action: "go" | "wait" }>;
      checks: GateCheck[];
    }
  | {
      ok: false;
      /** The first refusal, in the order migrate has always checked them. */
      key: string;
      message: string;
      checks: GateCheck[];
      /** Each replica's plan as far as it was made (for the preview's report). */
      plans: Plan[];
      worst: number;
    };

/** One replica's plan from the given source blocks: only what the target keeps. */
export function planForReplica(
  s: PlanSettings,
  source: ProbeResult,
  sourceBlocks: BlockMeta[],
  target: ProbeResult,
  discovered: DiscoveredFlags = {},
): { plan: Plan; input: PlanInput; refusal?: string } {
  const input = planInput(sourceBlocks, source, target, s.includeHead, discovered);
  const { plan, refusal } = planWithinRetention(
    planMigration(input),
    {
      flags: input.targetFlags,
      ownBlocks: input.targetBlocks,
      headMaxMs: headRange(target.tsdb)?.maxTime,
    },
    s.trimToTargetRetention,
  );
  return { plan, input, ...(refusal ? { refusal } : {}) };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * Every replica's plan and every gate: the head snapshot's space on the source (includeHead,
 * before the snapshot exists), each target's retention and free space, the version gate and
 * the gap. `basis`: the blocks the snapshot holds, or will hold. `snapshotTaken`: a snapshot
 * of ours exists already, so its head and gap were decided when it was taken.
 */
export function planEveryReplica(
  s: PlanSettings,
  source: ProbeResult,
  basis: BlockMeta[],
  targets: ReplicaFacts[],
  snapshotTaken: boolean,
  discovered: DiscoveredFlags = {},
): ReplicaPlans {
  const checks: GateCheck[] = [];
  if (s.includeHead && !snapshotTaken) {
    // The head block is written onto the source's own volume: a full volume stops Prometheus.
    const space = decideHeadSnapshotSpace(source.tsdb, source.blocks, source.dfAvailableBytes);
    checks.push(
      space.ok
        ? { check: "head snapshot space", ok: true, detail: space.message }
        : {
            check: "head snapshot space",
            ok: false,
            key: "includeHead",
            detail: `${space.message}. Free space on the source volume, or set includeHead to false`,
          },
    );
  }
  const made = targets.map((t) => planForReplica(s, source, basis, t.probe, discovered));
  const plans = made.map((m) => m.plan);
  const worst = plans.reduce((w, p, i) => (p.gapMs > plans[w].gapMs ? i : w), 0);
  made.forEach((m, i) => {
    const r = targetRetention(m.input.targetFlags);
    checks.push(
      m.refusal
        ? { check: "target retention", ok: false, key: "target", detail: m.refusal }
        : {
            check: "target retention",
            ok: true,
            detail: `the ${m.plan.blocks.length} planned blocks are within the retention of ${targets[i].volume} (${r.from})`,
          },
    );
  });
  // The copy is staged on each target replica's own volume: it must fit there.
  made.forEach((m, i) => {
    const space = decideTargetSpace(
      m.plan.blocks,
      targets[i].probe.blocks,
      targets[i].probe.dfAvailableBytes,
      targets[i].volume,
    );
    checks.push(
      space.ok
        ? {
            check: "target free space",
            ok: true,
            detail: `the copy needs ${mib(space.needBytes)} (plus a margin) on ${targets[i].volume}, which has ${mib(space.availableBytes)} free`,
          }
        : { check: "target free space", ok: false, key: "target", detail: space.message },
    );
  });
  // The version gate: blocks the target can't read would fail its whole reload.
  made.forEach((m, i) => {
    checks.push(
      m.plan.formats.ok
        ? {
            check: "version gate",
            ok: true,
            detail: `the ${m.plan.blocks.length} planned blocks' formats are readable by ${targets[i].volume}'s Prometheus ${m.input.targetVersion || "(version unknown)"}`,
          }
        : { check: "version gate", ok: false, key: "target", detail: m.plan.formats.message },
    );
  });
  const refusedEarlier = checks.find((c) => !c.ok);
  const plan = plans[worst];
  const gate: GateDecision = snapshotTaken
    ? { action: "go", message: "snapshot already taken" }
    : decideGap(plan, s, targets[worst].probe.nowMs);
  checks.push(
    gate.action === "fail"
      ? { check: "gap", ok: false, key: gate.key, detail: gate.message }
      : { check: "gap", ok: true, detail: gate.message },
  );
  const refused = refusedEarlier ?? checks.find((c) => !c.ok);
  if (refused) {
    return {
      ok: false,
      key: refused.key ?? "target",
      message: refused.detail,
      checks,
      plans,
      worst,
    };
  }
  return {
    ok: true,
    plans,
    inputs: made.map((m) => m.input),
    worst,
    gate: gate as Extract<GateDecision, { action: "go" | "wait" }>,
    checks,
  };
}
