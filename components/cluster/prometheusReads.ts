// Read-only probes for a source or target that may be a prometheus-operator `Prometheus`
// resource: the resource, the StatefulSet the operator generated for it, and (for a source
// with several replicas) its pods. prometheusResource.ts decides from them.

import { WorkloadRef } from "../decisions/config";
import {
  generatedStatefulSet,
  generatedWorkload,
  PrometheusObject,
  ReplicaPod,
  tieToResource,
} from "../decisions/prometheusResource";
import { TsdbLocation, WorkloadObject } from "../decisions/workload";
import { readPods, readWorkload } from "./clusterReads";

/** The workload whose pods run Prometheus, read, and how to tie its location back to the config. */
export interface PodsWorkload {
  /** The workload to locate the TSDB in: the config's, or a resource's generated StatefulSet. */
  ref: WorkloadRef;
  object: WorkloadObject | undefined;
  /** Ties the location found in `object` back to the configured ref (identity for workloads). */
  tie(loc: TsdbLocation): TsdbLocation;
}

/**
 * Reads the configured source or target. For a `Prometheus` resource that is its generated
 * StatefulSet (after the resource's own checks: shards, paused, ownership, which throw a
 * ConfigError naming the key), plus the pods of a source with several replicas.
 */
export async function readPodsWorkload(
  key: "source" | "target",
  ref: WorkloadRef,
): Promise<PodsWorkload> {
  if (ref.kind !== "Prometheus") {
    return { ref, object: await readWorkload(ref), tie: (loc) => loc };
  }
  const resource = (await readWorkload(ref)) as PrometheusObject | undefined;
  const sts = resource?.spec
    ? await readWorkload({ ...ref, kind: "StatefulSet", name: generatedStatefulSet(ref.name) })
    : undefined;
  const workload = generatedWorkload(key, ref, resource, sts);
  // Only a source with several replicas (or a chosen one) needs to know which are Ready.
  const selector = sts!.spec?.selector?.matchLabels;
  const pods =
    key === "source" && selector && ((sts!.spec?.replicas ?? 1) > 1 || ref.pod !== undefined)
      ? await readPods<ReplicaPod>(ref.namespace, selector, ref.access)
      : [];
  return {
    ref: workload,
    object: sts,
    tie: (loc) => tieToResource(key, ref, loc, sts!, pods),
  };
}
