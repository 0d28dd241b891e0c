// A prometheus-operator `Prometheus` resource (monitoring.coreos.com/v1) as a source or target:
// which StatefulSet the operator generated for it, where that StatefulSet keeps the TSDB, which
// pods the steps run in, and what can't work (shards, a paused resource, no persistent storage).
// Pure functions over what `kubectl get -o json` prints, so that each rule has a table test.
//
// Facts from prometheus-operator v0.93.1 (pkg/prometheus/common.go, server/statefulset.go):
// shard 0's StatefulSet is `prometheus-<name>` (shard N: `prometheus-<name>-shard-N`), owned by
// the resource (a controller ownerReference); its container `prometheus` mounts the volume
// `prometheus-<name>-db` (or the name of `spec.storage.volumeClaimTemplate`) at /prometheus with
// subPath `prometheus-db` (none with `disableMountSubPath`); `spec.containers` is merged into
// the generated containers by name, and `spec.enableAdminAPI` becomes `--web.enable-admin-api`.
// The CRD types `spec.containers` and `spec.volumes` as plain arrays, without
// x-kubernetes-list-type: atomic lists for Server-Side Apply, so a patch that owned them would
// delete the user's containers when it let go. They are changed by JSON patches instead
// (components/cluster/prometheus-resource.sh).

import { ConfigError, WorkloadRef } from "./config";
import { locateTsdb, TsdbLocation, WorkloadObject } from "./workload";

export interface PrometheusObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
  };
  spec?: {
    replicas?: number;
    shards?: number;
    paused?: boolean;
    enableAdminAPI?: boolean;
    containers?: { name: string }[];
    volumes?: { name: string }[];
    storage?: Record<string, unknown>;
  };
}

/** The subset of a pod the source replica is chosen by. */
export interface ReplicaPod {
  metadata?: { name?: string; deletionTimestamp?: string };
  status?: { phase?: string; conditions?: { type?: string; status?: string }[] };
}

/** Name of the StatefulSet the operator generates for shard 0 of a `Prometheus`. */
export function generatedStatefulSet(name: string): string {
  return `prometheus-${name}`;
}

/** The label StatefulSet pods carry with their own name (set by the StatefulSet controller). */
export const POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name";

const describe = (ref: WorkloadRef) => `Prometheus ${ref.namespace}/${ref.name}`;

/**
 * Checks the resource itself: it exists, has one shard, and is reconciled. Copying all history
 * into every shard would duplicate each series in every shard; a paused resource would never
 * get the sidecar into its pods.
 */
export function checkPrometheus(
  key: "source" | "target",
  ref: WorkloadRef,
  p: PrometheusObject | undefined,
): asserts p is PrometheusObject {
  if (!p || !p.spec) {
    throw new ConfigError(
      `${key}.name`,
      `${describe(ref)} does not exist (check ${key}.namespace and ${key}.kind; the kind needs ` +
        `prometheus-operator's CRD prometheuses.monitoring.coreos.com)`,
    );
  }
  const shards = p.spec.shards ?? 1;
  if (shards > 1) {
    throw new ConfigError(
      `${key}.name`,
      `${describe(ref)} has spec.shards ${shards}: each shard scrapes a part of the targets, and ` +
        (key === "target"
          ? `copying all history into every shard would duplicate every series. `
          : `one shard's history is only part of the data. `) +
        `Migrate a Prometheus with one shard (spec.shards unset or 1)`,
    );
  }
  if (p.spec.paused) {
    throw new ConfigError(
      `${key}.name`,
      `${describe(ref)} is paused (spec.paused: true): the operator would not roll the rsync ` +
        `sidecar out. Unpause it for the migration`,
    );
  }
}

/** The generated StatefulSet must exist and be the resource's own, not a namesake. */
export function checkGenerated(
  key: "source" | "target",
  ref: WorkloadRef,
  p: PrometheusObject,
  sts: WorkloadObject | undefined,
): asserts sts is WorkloadObject {
  const stsName = generatedStatefulSet(ref.name);
  if (!sts || !sts.spec) {
    throw new ConfigError(
      `${key}.name`,
      `${describe(ref)} has no StatefulSet ${ref.namespace}/${stsName} yet: is prometheus-operator ` +
        `running and reconciling it? (kubectl -n ${ref.namespace} describe prometheus ${ref.name})`,
    );
  }
  const owner = (sts.metadata?.ownerReferences ?? []).find((o) => o.controller);
  if (!owner || owner.kind !== "Prometheus" || owner.uid !== p.metadata?.uid) {
    throw new ConfigError(
      `${key}.name`,
      `StatefulSet ${ref.namespace}/${stsName} is not controlled by ${describe(ref)} ` +
        `(its controller is ${owner ? `${owner.kind} ${owner.name}` : "none"})`,
    );
  }
}

/** The pods of the generated StatefulSet, by ordinal: `<sts>-<start>` .. `<sts>-<start+replicas-1>`. */
export function replicaPodNames(stsName: string, sts: WorkloadObject): string[] {
  const replicas = sts.spec?.replicas ?? 1;
  const start = (sts.spec as { ordinals?: { start?: number } } | undefined)?.ordinals?.start ?? 0;
  return Array.from({ length: replicas }, (_, i) => `${stsName}-${start + i}`);
}

function isReady(p: ReplicaPod | undefined): boolean {
  return (
    !!p &&
    !p.metadata?.deletionTimestamp &&
    p.status?.phase === "Running" &&
    (p.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")
  );
}

/**
 * The source replica to read: `source.pod` when set, else the first one (ordinal 0). Either
 * must be Ready. The choice is stable from one `pulumi up` to the next, so the snapshot, the
 * copy and the verification all read the same replica's TSDB.
 */
export function chooseSourcePod(ref: WorkloadRef, names: string[], pods: ReplicaPod[]): string {
  const byName = new Map(pods.map((p) => [p.metadata?.name ?? "", p]));
  const ready = names.filter((n) => isReady(byName.get(n)));
  const readyList = ready.length ? ready.join(", ") : "none";
  if (ref.pod !== undefined) {
    if (!names.includes(ref.pod)) {
      throw new ConfigError(
        "source.pod",
        `"${ref.pod}" is not a replica of ${describe(ref)}; its replicas are ${names.join(", ")}`,
      );
    }
    if (!ready.includes(ref.pod)) {
      throw new ConfigError(
        "source.pod",
        `replica ${ref.pod} of ${describe(ref)} is not Ready; Ready replicas: ${readyList}`,
      );
    }
    return ref.pod;
  }
  if (!ready.includes(names[0])) {
    throw new ConfigError(
      "source.pod",
      `${describe(ref)} has ${names.length} replicas and the first, ${names[0]}, is not Ready: ` +
        `set source.pod to the replica to read (Ready replicas: ${readyList})`,
    );
  }
  return names[0];
}

/**
 * The generated StatefulSet to locate the TSDB in, after the checks above: the TSDB is found
 * in it exactly as in any StatefulSet (the volume, subPath and mount path are read from the
 * container, not assumed).
 */
export function generatedWorkload(
  key: "source" | "target",
  ref: WorkloadRef,
  p: PrometheusObject | undefined,
  sts: WorkloadObject | undefined,
): WorkloadRef {
  checkPrometheus(key, ref, p);
  checkGenerated(key, ref, p, sts);
  const workload: WorkloadRef = {
    ...ref,
    kind: "StatefulSet",
    name: generatedStatefulSet(ref.name),
  };
  delete workload.pod;
  return workload;
}

/**
 * Ties a location found in the generated StatefulSet back to the resource: `ref` is the
 * resource (what is patched), `workload` the StatefulSet, `pods` the replicas the steps run
 * in (the target: every replica; the source: the chosen one).
 */
export function tieToResource(
  key: "source" | "target",
  ref: WorkloadRef,
  loc: TsdbLocation,
  sts: WorkloadObject,
  sourcePods: ReplicaPod[] = [],
): TsdbLocation {
  const workload = loc.ref;
  const names = replicaPodNames(workload.name, sts);
  const pods =
    key === "source"
      ? names.length === 1 && ref.pod === undefined
        ? names
        : [chooseSourcePod(ref, names, sourcePods)]
      : names;
  return {
    ...loc,
    ref,
    workload,
    replicas: names.length,
    pods: pods.map((pod) => ({ ...workload, pod })),
  };
}

/** Where a `Prometheus` resource keeps its TSDB (generatedWorkload, locateTsdb, tieToResource). */
export function locatePrometheus(
  key: "source" | "target",
  ref: WorkloadRef,
  p: PrometheusObject | undefined,
  sts: WorkloadObject | undefined,
  sourcePods?: ReplicaPod[],
  server?: Parameters<typeof locateTsdb>[3],
): TsdbLocation {
  const workload = generatedWorkload(key, ref, p, sts);
  return tieToResource(key, ref, locateTsdb(key, workload, sts, server), sts!, sourcePods);
}

/**
 * The locations the exec steps run in, one per pod: each replica of a `Prometheus` target,
 * the chosen replica of a source; for other workloads the location itself (kubectl picks the
 * pod).
 */
export function podLocations(loc: TsdbLocation): TsdbLocation[] {
  if (!loc.pods || loc.pods.length === 0) return [loc];
  return loc.pods.map((pod) => ({ ...loc, ref: pod }));
}

/** The workload whose pods run Prometheus: the generated StatefulSet, or the ref itself. */
export function podsWorkload(loc: TsdbLocation): WorkloadRef {
  return loc.workload ?? loc.ref;
}

/**
 * The rsync Service's selector: the source's pod labels, and the chosen pod's own name when
 * the source has several replicas (every replica runs the daemon; only one has the snapshot).
 */
export function rsyncSelector(source: TsdbLocation): Record<string, string> {
  if (source.ref.kind !== "Prometheus" || (source.replicas ?? 1) <= 1) return source.podLabels;
  return { ...source.podLabels, [POD_NAME_LABEL]: source.pods![0].pod! };
}
