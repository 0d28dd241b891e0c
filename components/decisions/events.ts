// The Kubernetes Events the migration records on the workloads, one per phase, so that
// `kubectl describe deployment/...` tells its story next to the rollouts. Pure: the Event is
// built here; cluster/event.sh fills in the workload's uid and the time, and creates it.

import { PROJECT, WorkloadKind } from "./config";

/** The phases that leave an Event, by the Event's reason. */
export type MigrationEventReason =
  | "MigrationPrepared"
  | "MigrationSnapshotTaken"
  | "MigrationCopyDone"
  | "MigrationInstallDone"
  | "MigrationVerified"
  | "MigrationReverted";

/** Placeholders event.sh replaces: the workload's uid (read then) and the time. */
export const EVENT_UID = "__PTM_UID__";
export const EVENT_NOW = "__PTM_NOW__";

/** The API group of each kind the migration patches: the Event's involvedObject. */
export function apiVersionOf(kind: WorkloadKind): string {
  return kind === "Prometheus" ? "monitoring.coreos.com/v1" : "apps/v1";
}

/**
 * A core/v1 Event about a workload. core/v1 rather than events.k8s.io/v1: `kubectl describe`
 * lists both, and core/v1 takes `firstTimestamp` from a client that has no microsecond clock.
 * The uid is what `kubectl describe` matches on. `instance` is the migration's
 * (cluster/naming.ts: the stack for the default name, `<stack>.<component>` otherwise): two
 * migrations' Events on one workload say whose they are.
 */
export function migrationEvent(
  target: { kind: WorkloadKind; namespace: string; name: string },
  reason: MigrationEventReason,
  message: string,
  instance: string,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: {
      // The API server appends a random suffix; the workload's name first, as kubelet's do.
      generateName: `${target.name.slice(0, 200)}.ptm-`,
      namespace: target.namespace,
      labels: { "app.kubernetes.io/name": PROJECT, "app.kubernetes.io/instance": instance },
    },
    involvedObject: {
      apiVersion: apiVersionOf(target.kind),
      kind: target.kind,
      namespace: target.namespace,
      name: target.name,
      uid: EVENT_UID,
    },
    reason,
    // The API server refuses a message over 1 kB.
    message: message.length > 1000 ? `${message.slice(0, 997)}...` : message,
    type: "Normal",
    action: reason.replace(/^Migration/, ""),
    source: { component: PROJECT },
    reportingComponent: PROJECT,
    reportingInstance: instance.slice(0, 128),
    firstTimestamp: EVENT_NOW,
    lastTimestamp: EVENT_NOW,
    count: 1,
  };
}
