// Admission before the rollout (issue 21 item 4). A patched template that the cluster rejects
// never makes a pod, and the source's Deployment is Recreate: its old pod is gone by then. So
// before any patch, the pod each patch would make is built here from the live template (the
// sidecar, scratch volume and pull secrets the patch adds) and sent through the API server's
// admission by `kubectl create --dry-run=server` (cluster/admission.ts), which persists nothing.
// What the dry-run said is read here: admitted, refused (naming the config key, the object that
// rejected it and what to set), or "not checked" with the reason (never taken for admitted).
// Pure functions, each with table tests (test/unit/admission.test.ts).

import { quantityValue, WorkloadKind } from "./config";
import { patchPullSecrets } from "./conventions";
import { Container, PodTemplate, Volume, WorkloadObject } from "./workload";

type PodSpec = NonNullable<PodTemplate["spec"]>;

/** The pod sent to the dry-run. */
export interface PodObject {
  apiVersion: "v1";
  kind: "Pod";
  metadata: {
    generateName: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: PodSpec;
}

/** The label the StatefulSet controller puts on each of its pods. */
const STS_POD_NAME = "statefulset.kubernetes.io/pod-name";

/** Replaces the list item of the same name in place, or appends it (a list keyed by name). */
function mergeByName<T extends { name?: string }>(list: readonly T[], item: T): T[] {
  const i = list.findIndex((x) => x.name === item.name);
  return i < 0 ? [...list, item] : list.map((x, j) => (j === i ? item : x));
}

/**
 * The pod the patched template makes, as its controller would create it: the live template
 * with the sidecar (replacing one of its name), the scratch volume and the pull secrets merged
 * in by name, as the Server-Side Apply patch merges them. A StatefulSet's claim templates
 * become the claims of its first pod (the pod's mounts name them). `workloadName` is the
 * workload whose pods these are (a `Prometheus` resource's generated StatefulSet).
 */
export function admissionPod(
  w: WorkloadObject,
  kind: Exclude<WorkloadKind, "Prometheus">,
  namespace: string,
  workloadName: string,
  sidecar: Container,
  scratch: Volume,
  pullSecrets: readonly string[],
): PodObject {
  const template = w.spec?.template ?? {};
  const live = template.spec ?? {};
  const livePull = (live.imagePullSecrets ?? []).map((s) => s.name ?? "");
  const pull = patchPullSecrets(livePull, pullSecrets);
  const claims: Volume[] =
    kind === "StatefulSet"
      ? (w.spec?.volumeClaimTemplates ?? [])
          .map((t) => t.metadata?.name ?? "")
          .filter((n) => n && !(live.volumes ?? []).some((v) => v.name === n))
          .map((n) => ({ name: n, persistentVolumeClaim: { claimName: `${n}-${workloadName}-0` } }))
      : [];
  const labels = {
    ...(template.metadata?.labels ?? {}),
    ...(kind === "StatefulSet" ? { [STS_POD_NAME]: `${workloadName}-0` } : {}),
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: `${workloadName}-ptm-admission-`,
      namespace,
      ...(Object.keys(labels).length ? { labels } : {}),
      ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
    },
    spec: {
      ...live,
      containers: mergeByName(live.containers ?? [], sidecar),
      volumes: mergeByName([...(live.volumes ?? []), ...claims], scratch),
      ...(pull.length > 0 ? { imagePullSecrets: pull.map((name) => ({ name })) } : {}),
    },
  };
}

/**
 * Whether the patch rolls a new pod out, so that admission must be asked: not when the live
 * template runs the sidecar already and no config key changes it (`restarting`, from
 * decisions/sidecarChange.ts) nor adds a pull secret.
 */
export function admissionNeeded(
  liveSidecar: Container | undefined,
  restarting: readonly unknown[],
  livePullSecrets: readonly string[],
  wantedPullSecrets: readonly string[],
): boolean {
  if (!liveSidecar) return true;
  return restarting.length > 0 || wantedPullSecrets.some((s) => !livePullSecrets.includes(s));
}

/**
 * Whether the rollout removes the old pod before it creates the new one (a Recreate
 * Deployment, a StatefulSet): then a quota's usage still counts the old pod at the dry-run,
 * and not when the new pod is created.
 */
export function replacesInPlace(
  kind: Exclude<WorkloadKind, "Prometheus">,
  w: WorkloadObject,
): boolean {
  return kind === "StatefulSet" || w.spec?.strategy?.type === "Recreate";
}

/** A quantity's value (config.ts, the one parser of Kubernetes quantities). */
export function parseQuantity(q: string): number | undefined {
  return quantityValue(q.trim());
}

interface Resources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** One container's requests (defaulting to its limits, as the API server does) and limits. */
function containerUsage(c: Container): Record<string, number> {
  const r = (c.resources ?? {}) as Resources;
  const out: Record<string, number> = {};
  const requests = { ...(r.limits ?? {}), ...(r.requests ?? {}) };
  for (const [name, q] of Object.entries(requests)) {
    const v = parseQuantity(q) ?? 0;
    out[`requests.${name}`] = v;
    // The bare name is the request too (`cpu`, `memory`, `ephemeral-storage`).
    if (!name.includes("/")) out[name] = v;
  }
  for (const [name, q] of Object.entries(r.limits ?? {}))
    out[`limits.${name}`] = parseQuantity(q) ?? 0;
  return out;
}

/**
 * What one pod of this spec counts against a ResourceQuota: `pods`, and per resource the sum
 * of its containers, or an init container's when that is larger (init containers run one at a
 * time, before the others).
 */
export function quotaUsage(spec: PodSpec): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of spec.containers ?? []) {
    for (const [k, v] of Object.entries(containerUsage(c))) sum[k] = (sum[k] ?? 0) + v;
  }
  for (const c of spec.initContainers ?? []) {
    for (const [k, v] of Object.entries(containerUsage(c))) sum[k] = Math.max(sum[k] ?? 0, v);
  }
  return { ...sum, pods: 1, "count/pods": 1 };
}

/** The workload the check is about, and what its old pod counts. */
export interface AdmissionSubject {
  key: "source" | "target";
  /** `<kind> <namespace>/<name>`: the configured workload. */
  workload: string;
  /** The namespace the pod is created in. */
  namespace: string;
  /** The sidecar's container name. */
  sidecar: string;
  /** The rollout removes the old pod before it creates the new one ({@link replacesInPlace}). */
  inPlace: boolean;
  /** What the old pod counts against a quota ({@link quotaUsage} of the live template). */
  oldPod: Record<string, number>;
}

/** What `kubectl create --dry-run=server` answered. */
export interface DryRunAnswer {
  code: number;
  stdout: string;
  stderr: string;
}

export type AdmissionKey = "sidecarResources" | "sidecarImage" | "source" | "target";

export type AdmissionVerdict =
  /** The API server admitted the pod. */
  | { action: "admitted"; message: string }
  /** Admitted, or very likely admitted at the rollout, with something the user must read. */
  | { action: "warn"; message: string }
  /** Rejected: the patch would leave the workload without a pod. */
  | { action: "refuse"; key: AdmissionKey; message: string }
  /** The dry-run could not be made: not checked (never taken for admitted). */
  | { action: "unchecked"; message: string };

/** kubectl's own prefixes, which say nothing to the user. */
function cleanError(stderr: string): string {
  return stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^Warning: /.test(l))
    .join(" ")
    .replace(/^Error from server(?: \([A-Za-z]+\))?: /, "")
    .replace(/^error when creating "STDIN": /, "")
    .replace(/^pods? (?:"[^"]*" )?is forbidden: /, "")
    .trim();
}

/** `a=1,b=2` (the quota message's lists) as a map. */
function pairs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of s.split(",")) {
    const i = p.indexOf("=");
    if (i > 0) out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

const round = (n: number) => String(Number(n.toPrecision(6)));

/**
 * The verdict on what the dry-run said. ResourceQuota's "exceeded quota" counts the old pod
 * as used; where the rollout removes it first ({@link AdmissionSubject.inPlace}), the new pod
 * may well fit then. That case is warned, not refused, with the numbers: the API server stops
 * at the first quota it finds exceeded, so any later one was not checked, and saying "ok"
 * would claim more than was seen. Everything else the server refused is refused here.
 */
export function admissionVerdict(s: AdmissionSubject, a: DryRunAnswer): AdmissionVerdict {
  const what = `${s.workload} with the sidecar ${s.sidecar}`;
  const warnings = a.stderr
    .split("\n")
    .map((l) => /^Warning: (.*)$/.exec(l.trim())?.[1])
    .filter((l): l is string => !!l);
  if (a.code === 0) {
    return warnings.length > 0
      ? {
          action: "warn",
          message: `${what}: admitted, with warnings: ${warnings.join("; ")}`,
        }
      : {
          action: "admitted",
          message: `${what}: admitted by a server-side dry-run (quotas, LimitRanges, PodSecurity, webhooks)`,
        };
  }
  const said = cleanError(a.stderr);
  const unchecked = (why: string): AdmissionVerdict => ({
    action: "unchecked",
    message:
      `admission NOT checked for ${s.workload}: ${why}. Its rollout may still be refused; ` +
      `rollout-watch then stops at the first FailedCreate with the cause`,
  });
  const refuse = (key: AdmissionKey, message: string): AdmissionVerdict => ({
    action: "refuse",
    key,
    message: `${what} would not be admitted: ${message}; nothing was changed`,
  });
  if (said === "")
    return unchecked(`kubectl create --dry-run=server failed (exit ${a.code}, nothing on stderr)`);
  if (/cannot create resource "pods"/.test(said)) {
    return unchecked(
      `${said} (a dry-run needs the right to create pods in ${s.namespace}, as a create does)`,
    );
  }

  // ResourceQuota: limits or requests that every container must set.
  let m = /failed quota: ([^:]+): must specify (.*)$/.exec(said);
  if (m) {
    const quota = `ResourceQuota ${s.namespace}/${m[1]}`;
    // "limits.cpu for: a,b; limits.memory for: a"
    const byResource = m[2].split(";").map((p) => {
      const [res, who] = p.split(" for: ");
      return { res: res.trim(), who: (who ?? "").split(",").map((x) => x.trim()) };
    });
    const resources = byResource.map((r) => r.res).join(", ");
    const containers = [...new Set(byResource.flatMap((r) => r.who))].filter((x) => x);
    if (containers.includes(s.sidecar)) {
      return refuse(
        "sidecarResources",
        `${quota} requires ${resources} of every container, and the sidecar ${s.sidecar} sets ` +
          `none; set them in sidecarResources.limits, e.g. ` +
          `{limits: {cpu: "1", memory: 256Mi}}, or change the quota`,
      );
    }
    return refuse(
      s.key,
      `${quota} requires ${resources} of every container, and ${containers.join(", ")} sets none ` +
        `(its pod would not be created again either); set them in the workload first`,
    );
  }
  // ResourceQuota: the new pod does not fit.
  m = /exceeded quota: ([^,]+), requested: (.*), used: (.*), limited: (.*)$/.exec(said);
  if (m) {
    const quota = `ResourceQuota ${s.namespace}/${m[1]}`;
    const [requested, used, limited] = [pairs(m[2]), pairs(m[3]), pairs(m[4])];
    const names = Object.keys(requested);
    const onlyPods = names.every((n) => n === "pods" || n === "count/pods");
    const key: AdmissionKey = onlyPods ? s.key : "sidecarResources";
    const fits = names.map((n) => {
      const [r, u, l] = [requested[n], used[n], limited[n]].map((q) =>
        q === undefined ? undefined : parseQuantity(q),
      );
      const old = s.oldPod[n] ?? 0;
      const ok = r !== undefined && u !== undefined && l !== undefined && r + u - old <= l + 1e-9;
      return { n, r, u, l, old, ok };
    });
    if (s.inPlace && fits.length > 0 && fits.every((f) => f.ok)) {
      const sums = fits
        .map(
          (f) =>
            `${f.n} ${round(f.r!)} + ${round(f.u!)} used - ${round(f.old)} of the old pod <= ${round(f.l!)}`,
        )
        .join(", ");
      return {
        action: "warn",
        message:
          `${what}: ${quota} refused the dry-run, but it counts the pod that the rollout replaces ` +
          `(${s.workload} removes its old pod first), and without it the new pod fits (${sums}). ` +
          `The API server stops at the first quota it finds exceeded, so quotas after ${m[1]} were ` +
          `not checked; rollout-watch stops at once if the rollout is refused`,
      };
    }
    const detail = names
      .map((n) => {
        const old = s.oldPod[n];
        return (
          `${n}: the new pod asks ${requested[n]}, ${used[n] ?? "?"} are used` +
          (s.inPlace && old ? ` (${round(old)} of it by the pod being replaced)` : "") +
          `, the quota allows ${limited[n] ?? "?"}`
        );
      })
      .join("; ");
    return refuse(
      key,
      `${quota} would be exceeded (${detail})` +
        (s.inPlace
          ? ""
          : `; ${s.workload}'s new pod starts next to the old one, which still counts`) +
        (onlyPods ? `; raise the quota's pods` : `; lower sidecarResources or raise the quota`),
    );
  }
  // LimitRange: "maximum cpu usage per Container is 800m, but limit is 1", "minimum ...".
  if (
    /(maximum|minimum) \S+ usage per (Container|Pod)|limit to request ratio|LimitRange/i.test(said)
  ) {
    return refuse(
      "sidecarResources",
      `a LimitRange of namespace ${s.namespace}: ${said}; see its bounds with ` +
        `\`kubectl -n ${s.namespace} get limitrange -o yaml\` and set sidecarResources within its bounds`,
    );
  }
  // PodSecurity admission, from the namespace's enforce label.
  if (/violates PodSecurity/.test(said)) {
    return refuse(
      s.key,
      `PodSecurity admission (label pod-security.kubernetes.io/enforce of namespace ` +
        `${s.namespace}): ${said}; the sidecar copies the securityContext of the Prometheus ` +
        `container; set what the policy asks there (or on the pod), then run again`,
    );
  }
  // Admission webhooks: a denial, or one that could not be called (failurePolicy Fail).
  m = /admission webhook "([^"]+)" denied the request:?\s*(.*)$/.exec(said);
  if (m) {
    const image = /image|registr|repo/i.test(m[2]);
    return refuse(
      image ? "sidecarImage" : s.key,
      `admission webhook "${m[1]}" denied it: ${m[2]}` +
        (image
          ? `; set sidecarImage to an image the policy allows (e.g. a copy in your registry)`
          : `; change the workload or the policy (kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations)`),
    );
  }
  m = /failed calling webhook "([^"]+)":?\s*(.*)$/.exec(said);
  if (m) {
    return refuse(
      s.key,
      `admission webhook "${m[1]}" could not be called (${m[2]}), and the API server refuses ` +
        `pods while it can't be: the rollout's pod would not be created either; fix the webhook first`,
    );
  }
  if (/image policy webhook/i.test(said)) {
    return refuse("sidecarImage", `${said}; set sidecarImage to an image the policy allows`);
  }
  // The API server's validation: the template itself can't make a valid pod.
  if (/ is invalid: /.test(said)) return refuse(s.key, said);
  // Another admission plugin's refusal (a 403 that is not RBAC's).
  if (/Error from server \(Forbidden\)/.test(a.stderr)) return refuse(s.key, said);
  return unchecked(`kubectl create --dry-run=server failed (exit ${a.code}): ${said}`);
}
