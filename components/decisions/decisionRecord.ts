// The migration's decision, made once and recorded (issue 20): which blocks each target
// replica gets, the cutoff, the gap, whether the snapshot holds the head, and the wait before
// it. It is taken right after the snapshot, kept in a ConfigMap in the target's namespace
// (which a later run reads before it does anything), and every later `pulumi up` is a pure
// function of that record, the live state and the config as it is now: resume, re-decide
// explicitly, or refuse naming the key. Re-planning from the live servers on every run made
// the plan drift from what the steps had done (the target compacts, the source compacts).
// Pure.

import type { SidecarMode } from "./config";
import { StepError } from "./errors";
import type { PlanSummary } from "./planInput";
import type { BlockMeta } from "./sidecarOutput";
import { failNaming, numberAtLeast0, parseLastJsonLine } from "./sidecarOutput";
import { iso } from "./time";

/** Key of the record in its ConfigMap. */
export const DECISION_RECORD_KEY = "decision.json";
/** app.kubernetes.io/component of the record's ConfigMap: how a later run finds it. */
export const DECISION_RECORD_COMPONENT = "decision-record";

/** One target replica's part of the decision. */
export interface ReplicaDecision {
  /** The replica's pod (a `Prometheus` target's); null when kubectl picks the pod. */
  pod: string | null;
  /** The blocks to copy and install, oldest first (the snapshot's IDs). */
  blocks: string[];
  /** The newest copied sample's end (ms): every source sample before it is copied. */
  cutoffMs: number;
  /** The target's own earliest sample when the decision was made; undefined: none. */
  targetEarliestMs: number | undefined;
  /** The gap this replica's plan leaves (ms). */
  gapMs: number;
}

export interface DecisionRecord {
  /** 1 for the first decision; each explicit re-decision takes the next one. */
  generation: number;
  /** When it was made (ms). */
  decidedAtMs: number;
  /** The snapshot's directory under <data>/snapshots on the source. */
  snapshot: string;
  /** Whether the snapshot holds the head (includeHead when it was taken). */
  includeHead: boolean;
  /** Whether a gap was accepted with acceptGap. */
  acceptGap: boolean;
  /** Where the sidecars ran when it was made: switching modes restarts pods. */
  sidecarMode: SidecarMode;
  /** The compaction wait decided before the snapshot (block end, ms); 0: no wait. */
  waitUntilMs: number;
  replicas: ReplicaDecision[];
  /** The plan as it was shown (the replica with the largest gap): the `plan` output. */
  plan: PlanSummary;
}

/** What a run does, given the record, the live state and the config now. */
export type NextRun =
  /** No decision yet: plan from the live servers, through the gap gate, and record it. */
  | { action: "decide"; generation: number }
  /** Carry on with the recorded decision (copy, install and verification resume or re-check). */
  | { action: "resume"; record: DecisionRecord; replicas: ReplicaDecision[]; notes: string[] }
  /** A new decision, as the config asks: a new snapshot through the gap gate, replacing ours. */
  | { action: "redecide"; generation: number; record: DecisionRecord; reason: string }
  /** The config asks for what the recorded decision can't give: the key to change. */
  | { action: "refuse"; key: string; message: string };

/** The config and live state a later run brings. */
export interface RunFacts {
  includeHead: boolean;
  sidecarMode: SidecarMode;
  acceptGap: boolean;
  /** The target replicas' pods now (null: kubectl picks the pod of a one-pod workload). */
  targetPods: (string | null)[];
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

export function nextRun(record: DecisionRecord | undefined, now: RunFacts): NextRun {
  if (!record) return { action: "decide", generation: 1 };
  const made = `the decision recorded at ${iso(record.decidedAtMs)} (snapshot ${record.snapshot})`;
  // Switching modes after the decision rolls pods: ephemeral to patch adds the sidecars to
  // the templates, which restarts the target after its install (and patch to ephemeral is
  // refused at preview, as the template still has the sidecar).
  if (now.sidecarMode !== record.sidecarMode) {
    return {
      action: "refuse",
      key: "sidecarMode",
      message:
        `${made} was made with sidecarMode ${record.sidecarMode}; switching to ${now.sidecarMode} ` +
        `now changes the pod templates and restarts both servers, which drops the target's own ` +
        `samples older than the imported blocks. Set sidecarMode back to ${record.sidecarMode} ` +
        `and finish the migration, or revert it first (remove the phase key and run pulumi up)`,
    };
  }
  // The head can still be added: a new snapshot with it, planned against what the target
  // holds now (the blocks already imported are recognised by lineage and not copied again).
  if (now.includeHead && !record.includeHead) {
    return {
      action: "redecide",
      generation: record.generation + 1,
      record,
      reason:
        `includeHead was turned on after ${made} was taken without the head: a new snapshot with ` +
        `the head is taken, planned through the gap gate against what the target holds now, and ` +
        `replaces this migration's own`,
    };
  }
  if (!now.includeHead && record.includeHead) {
    return {
      action: "refuse",
      key: "includeHead",
      message:
        `${made} holds the head, which is copied already or being copied; turning includeHead ` +
        `off now would switch the source's admin API off again (a restart) and change nothing ` +
        `else. Set includeHead back to true; the revert (remove the phase key) switches it off`,
    };
  }
  const worstGap = Math.max(0, ...record.replicas.map((r) => r.gapMs));
  if (worstGap > 0 && record.acceptGap && !now.acceptGap) {
    return {
      action: "refuse",
      key: "acceptGap",
      message:
        `${made} leaves a gap of ${minutes(worstGap)}, accepted with acceptGap; that snapshot is ` +
        `taken and can't be un-accepted. Set acceptGap back to true, or set includeHead to true ` +
        `to re-decide with the head (which closes the gap on Prometheus 2.39+)`,
    };
  }
  const recorded = new Set(record.replicas.map((r) => r.pod));
  const added = now.targetPods.filter((p) => !recorded.has(p));
  if (added.length > 0) {
    return {
      action: "refuse",
      key: "target",
      message:
        `the target has ${added.length === 1 ? "a replica" : "replicas"} (${added.join(", ")}) ` +
        `that ${made} did not plan for: ${added.length === 1 ? "its" : "their"} gap never passed ` +
        `the gap gate. Scale the target back to the ${record.replicas.length} replica(s) planned ` +
        `(${record.replicas.map((r) => r.pod ?? "its pod").join(", ")}) until the migration is ` +
        `verified, then scale it up (a new replica starts empty or from its own volume), or set ` +
        `includeHead to true to re-decide for every replica`,
    };
  }
  const live = new Set(now.targetPods);
  const replicas = record.replicas.filter((r) => live.has(r.pod));
  const gone = record.replicas.filter((r) => !live.has(r.pod)).map((r) => r.pod ?? "its pod");
  const notes: string[] = [];
  if (gone.length > 0) {
    notes.push(
      `target replica(s) ${gone.join(", ")} no longer exist: their part of ${made} is dropped, and ` +
        `their copy's staging directory stays on their volume`,
    );
  }
  if (replicas.length === 0) {
    return {
      action: "refuse",
      key: "target",
      message: `none of the target replicas ${made} planned for exists any more (${gone.join(", ")})`,
    };
  }
  if (!record.acceptGap && now.acceptGap && worstGap === 0) {
    notes.push(`acceptGap changes nothing now: ${made} leaves no gap`);
  }
  return { action: "resume", record, replicas, notes };
}

/** The suffix of a generation's step and object names: none for the first (stacks made before). */
export function generationSuffix(generation: number): string {
  return generation <= 1 ? "" : `-g${generation}`;
}

/**
 * The record as one JSON text (the ConfigMap's value). The blocks are IDs only: their metas
 * are read from the snapshot, which does not change, and the state must not grow with them.
 */
export function serializeDecision(r: DecisionRecord): string {
  return JSON.stringify(r);
}

const fail = failNaming(
  "decision record",
  " (the record is damaged: revert the migration (remove the phase key and run pulumi up), " +
    "then migrate again)",
);
const num = (v: unknown, what: string) => numberAtLeast0(v, what, fail);

/** Parses and validates a record; anything missing or of the wrong type names the field. */
export function parseDecision(text: string): DecisionRecord {
  let x: Record<string, unknown>;
  try {
    x = parseLastJsonLine(text) as Record<string, unknown>;
  } catch (e) {
    return fail((e as Error).message);
  }
  if (x === null || typeof x !== "object" || Array.isArray(x)) return fail("not an object");
  const bool = (k: string) => {
    if (typeof x[k] !== "boolean") fail(`${k} is not true or false`);
    return x[k] as boolean;
  };
  if (typeof x["snapshot"] !== "string" || x["snapshot"] === "") fail("snapshot is missing");
  if (!Array.isArray(x["replicas"]) || x["replicas"].length === 0) fail("replicas is empty");
  if (x["plan"] === null || typeof x["plan"] !== "object") fail("plan is missing");
  const generation = num(x["generation"], "generation");
  if (!Number.isInteger(generation) || generation < 1) fail("generation must be 1 or more");
  return {
    generation,
    decidedAtMs: num(x["decidedAtMs"], "decidedAtMs"),
    snapshot: x["snapshot"] as string,
    includeHead: bool("includeHead"),
    acceptGap: bool("acceptGap"),
    sidecarMode:
      x["sidecarMode"] === "ephemeral"
        ? "ephemeral"
        : x["sidecarMode"] === "patch"
          ? "patch"
          : fail("sidecarMode is not patch or ephemeral"),
    waitUntilMs: num(x["waitUntilMs"], "waitUntilMs"),
    replicas: (x["replicas"] as unknown[]).map((r, i) => parseReplica(r, `replicas[${i}]`)),
    plan: x["plan"] as PlanSummary,
  };
}

function parseReplica(v: unknown, where: string): ReplicaDecision {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    return fail(`${where} is not an object`);
  const o = v as Record<string, unknown>;
  const pod = o["pod"];
  if (pod !== null && typeof pod !== "string") fail(`${where}.pod is not a name or null`);
  const blocks = o["blocks"];
  if (!Array.isArray(blocks) || !blocks.every((b) => typeof b === "string" && b !== ""))
    fail(`${where}.blocks is not a list of IDs`);
  const te = o["targetEarliestMs"];
  return {
    pod: pod as string | null,
    blocks: blocks as string[],
    cutoffMs: num(o["cutoffMs"], `${where}.cutoffMs`),
    targetEarliestMs:
      te === undefined || te === null ? undefined : num(te, `${where}.targetEarliestMs`),
    gapMs: num(o["gapMs"], `${where}.gapMs`),
  };
}

/** The newest generation's record among those found (a re-decision's old one may linger). */
export function newestDecision(texts: string[]): DecisionRecord | undefined {
  return texts
    .map(parseDecision)
    .reduce<DecisionRecord | undefined>(
      (best, r) => (best === undefined || r.generation > best.generation ? r : best),
      undefined,
    );
}

/**
 * The metas of a recorded replica's blocks, from the snapshot, in the record's order. A block
 * the record names that the snapshot lacks means the snapshot changed under us: refused.
 */
export function recordedBlocks(
  snapshotBlocks: BlockMeta[],
  ulids: string[],
  snapshot: string,
): BlockMeta[] {
  const byId = new Map(snapshotBlocks.map((b) => [b.ulid, b]));
  const missing = ulids.filter((u) => !byId.has(u));
  if (missing.length > 0) {
    throw new StepError(
      "decision record",
      `the recorded plan copies ${missing.length} block(s) that the snapshot ${snapshot} does not ` +
        `hold (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", …" : ""}): it was ` +
        `changed or removed outside this program. Revert the migration (remove the phase key and ` +
        `run pulumi up), then migrate again`,
    );
  }
  return ulids.map((u) => byId.get(u)!);
}
