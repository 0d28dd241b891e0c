// The revert's restart check over every replica of the target (issue 20 row 9): removing the
// sidecar from the pod template restarts every pod of it, and each replica has its own TSDB
// and head, so each must be safe, as the destroy guard (cluster/restart-guard.sh) requires.
// Pure: the probes are run by the caller.

import { WorkloadRef } from "./config";
import { generatedStatefulSet, replicaPodNames } from "./prometheusResource";
import { restartRisk, RestartRisk } from "./restartRisk";
import { ProbeResult } from "./sidecarOutput";
import { iso } from "./time";
import { headRange } from "./tsdb";
import { WorkloadObject } from "./workload";
import { apiAdvice, apiFailureCause } from "./serverAnswers";

/**
 * The workload whose template carries the target's sidecar: a `Prometheus` resource's is the
 * StatefulSet its operator generates (the config names the resource).
 */
export function revertWorkload(ref: WorkloadRef): WorkloadRef {
  if (ref.kind !== "Prometheus") return ref;
  const sts: WorkloadRef = { ...ref, kind: "StatefulSet", name: generatedStatefulSet(ref.name) };
  delete sts.pod;
  return sts;
}

/**
 * The pods the revert restarts, to probe each: every replica of a StatefulSet with several, by
 * name (`<sts>-<ordinal>`); otherwise the workload itself (kubectl picks its one pod); none
 * when it is scaled to 0 (nothing restarts).
 */
export function replicaRefs(target: WorkloadRef, live: WorkloadObject): WorkloadRef[] {
  const replicas = live.spec?.replicas ?? 1;
  if (replicas === 0) return [];
  if (target.kind !== "StatefulSet" || replicas === 1) return [target];
  return replicaPodNames(target.name, live).map((pod) => ({ ...target, pod }));
}

/** One replica's probe, or why it could not be probed. */
export interface ReplicaProbe {
  ref: WorkloadRef;
  probe?: ProbeResult;
  why?: string;
}

export type RevertVerdict = { action: "go" } | { action: "refuse"; message: string };

const describeRef = (ref: WorkloadRef) => `${ref.kind} ${ref.namespace}/${ref.name}`;
const where = (ref: WorkloadRef) =>
  ref.pod ? `${describeRef(ref)}, pod ${ref.pod}` : describeRef(ref);

type Refusal =
  { ref: WorkloadRef; risk: RestartRisk } | { ref: WorkloadRef; risk?: undefined; why: string };

/**
 * Go only when every replica was probed and none would drop samples by restarting; else refuse,
 * naming the pod: one at risk first (its message says from when it is safe), the others listed.
 */
/** What the probe's HTTP client said, and what to set (serverAnswers.ts); "" when it said nothing. */
function unanswered(why: string | undefined): string {
  if (why === undefined) return "";
  return `: ${why}; ${apiAdvice(apiFailureCause(why), "target.url", undefined)}`;
}

export function revertVerdict(target: WorkloadRef, replicas: ReplicaProbe[]): RevertVerdict {
  const refusals: Refusal[] = replicas.flatMap((r): Refusal[] => {
    if (!r.probe) {
      const why = r.why ?? "it did not answer";
      return [
        { ref: r.ref, why: r.ref.pod ? `pod ${r.ref.pod} of ${describeRef(target)}: ${why}` : why },
      ];
    }
    // Without the head's range the risk can't be computed: that is not a "no".
    if (r.probe.tsdb === null) {
      return [
        {
          ref: r.ref,
          why:
            `the target's Prometheus did not answer /api/v1/status/tsdb (${where(r.ref)})` +
            unanswered(r.probe.apiErrors?.["tsdb"]),
        },
      ];
    }
    const risk = restartRisk(r.probe.blocks, headRange(r.probe.tsdb));
    return risk ? [{ ref: r.ref, risk }] : [];
  });
  if (refusals.length === 0) return { action: "go" };
  const ordered = [...refusals.filter((r) => r.risk), ...refusals.filter((r) => !r.risk)];
  const [first, ...rest] = ordered;
  const message = first.risk
    ? `reverting now removes the target's sidecar and so restarts it, which would drop its own ` +
      `samples from ${iso(first.risk.lossFromMs)} to ${iso(first.risk.lossToMs)} (older than the ` +
      `newest imported block, not yet compacted). Revert after ${iso(first.risk.safeAfterMs)}, ` +
      `when its next compaction has persisted them, or set forceRevert to true to accept the ` +
      `loss (the target is ${where(first.ref)})`
    : `reverting removes the target's sidecar and so restarts it, and whether that drops any of ` +
      `its own samples can't be checked now: ${first.why}. Fix that and run again, or set ` +
      `forceRevert to true to revert without the check`;
  const also = rest.map(
    (r) => `pod ${r.ref.pod ?? r.ref.name} (${r.risk ? "at risk" : "can't be checked"})`,
  );
  return {
    action: "refuse",
    message: also.length ? `${message}; also refusing: ${also.join(", ")}` : message,
  };
}
