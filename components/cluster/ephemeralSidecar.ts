// sidecarMode: ephemeral. The rsync sidecars are added to the running pods as ephemeral
// containers (the pods/ephemeralcontainers subresource), so neither pod template changes and
// no pod restarts. One command per pod adds its sidecar (cluster/ephemeral-sidecar.sh add)
// and, when deleted, stops the sidecar's processes (… stop): an ephemeral container can't be
// removed, so its stopped entry stays in the pod's status until the pod is replaced. The
// rules (version, RBAC, pods, names, paths) are in decisions/ephemeralSidecar.ts.

import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ClusterAccess } from "../decisions/config";
import {
  checkServerVersion,
  EPHEMERAL_RUN,
  EPHEMERAL_TMP,
  ephemeralDataPath,
  ephemeralSecurityContext,
  EphemeralPodObject,
  PodView,
  sidecarName,
  sidecarPods,
  VOLUME_ROOT,
} from "../decisions/ephemeralSidecar";
import { podsWorkload } from "../decisions/prometheusResource";
import { TsdbLocation } from "../decisions/workload";
import { readPods, run } from "./clusterReads";
import { createAndDelete, kubectl, localScript, readScript, sidecarScript } from "./kubectl";
import { PASSWORD_KEY } from "./naming";
import { SidecarSpec } from "./sidecarPatch";

/** One side's sidecar in this mode: where it runs, under which name, and how it sees the TSDB. */
export interface EphemeralSide {
  /** The location as the sidecar sees it: `dataPath` below the volume root it mounts. */
  loc: TsdbLocation;
  /** The sidecar's container name in those pods (decisions/ephemeralSidecar.ts sidecarName). */
  container: string;
  /** Whether every pod runs it already (a later `pulumi up`). */
  running: boolean;
  /** The pods, as read now: their UIDs go into the commands' triggers. */
  pods: PodView[];
}

/**
 * Preflight at preview: Kubernetes 1.25 or newer, else a ConfigError naming sidecarMode.
 * Returns the server's version. The right to patch pods/ephemeralcontainers is checked with
 * every other permission, before anything is read (cluster/permissions.ts).
 */
export async function preflightEphemeral(access: ClusterAccess | undefined): Promise<string> {
  const version = await run(`${kubectl(access)} version -o json`);
  return checkServerVersion(version.stdout);
}

/**
 * Reads the pods one side's sidecar goes into: the pods its steps run in (`loc.pods`), or the
 * workload's one pod; and picks the sidecar's name in them.
 */
export async function ephemeralSide(
  key: "source" | "target",
  loc: TsdbLocation,
  base: string,
): Promise<EphemeralSide> {
  const dataPath = ephemeralDataPath(key, loc);
  const workload = podsWorkload(loc);
  const pods = await readPods<EphemeralPodObject>(
    workload.namespace,
    loc.podLabels,
    workload.access,
  );
  const what = `${workload.kind} ${workload.namespace}/${workload.name}`;
  const views = sidecarPods(
    key,
    what,
    pods,
    loc.pods?.map((p) => p.pod!),
  );
  const { name, running } = sidecarName(base, views);
  // The later steps keep reaching the pods as before: by the workload (kubectl picks its one
  // pod) or, for a `Prometheus` resource, by its replicas' stable names. So a pod replaced
  // during the migration changes no step's command: only this side's sidecar is added again.
  return {
    loc: { ...loc, dataPath },
    container: name,
    running,
    pods: views,
  };
}

/** The text an ephemeral sidecar runs: ephemeral-main.sh (records its PID), then the script. */
function ephemeralScript(script: string): string {
  const main = readScript("sidecar", "ephemeral-main.sh");
  return `${main}\n${sidecarScript(script)}`;
}

/**
 * The sidecar as an ephemeral container: the TSDB's volume mounted at its root (an ephemeral
 * container may not use a subPath), the Prometheus container's user, its own root filesystem
 * as scratch space, and none of the fields an ephemeral container may not have (ports,
 * probes, resources).
 */
export function ephemeralContainer(
  side: EphemeralSide,
  spec: SidecarSpec,
): pulumi.Output<k8s.types.input.core.v1.EphemeralContainer> {
  const { loc } = side;
  const sc = ephemeralSecurityContext(loc.securityContext);
  return pulumi.output({
    name: side.container,
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy,
    command: ["sh", "-c", ephemeralScript(spec.script), side.container],
    env: [
      { name: "PTM_DATA", value: loc.dataPath },
      { name: "PTM_PROM_URL", value: loc.url },
      { name: "TMPDIR", value: EPHEMERAL_TMP },
      { name: "PTM_RUN", value: EPHEMERAL_RUN },
      ...(spec.env ?? []),
      {
        name: spec.passwordEnv,
        valueFrom: { secretKeyRef: { name: spec.secretName, key: PASSWORD_KEY } },
      },
    ],
    volumeMounts: [{ name: loc.volume, mountPath: VOLUME_ROOT }],
    ...(sc ? { securityContext: sc } : {}),
    // A sidecar that exits at once says why in its status.
    terminationMessagePolicy: "FallbackToLogsOnError",
  }) as pulumi.Output<k8s.types.input.core.v1.EphemeralContainer>;
}

/**
 * One command per pod: its create adds the sidecar and waits until it runs, its delete stops
 * it. The pod's UID and the container's name are its triggers: a pod replaced while the
 * migration runs gets the sidecar again at the next `pulumi up` (the new pod, read then, has
 * another UID), and the old pod's sidecar has nothing left to stop.
 */
export function addEphemeralSidecars(
  name: string,
  side: EphemeralSide,
  container: pulumi.Output<k8s.types.input.core.v1.EphemeralContainer>,
  timeoutSeconds: number,
  opts: pulumi.CustomResourceOptions,
): command.local.Command[] {
  const { access, namespace } = podsWorkload(side.loc);
  const json = container.apply((c) => JSON.stringify(c));
  return side.pods.map((pod) => {
    const args = [namespace, pod.name, pod.uid, side.container, String(timeoutSeconds)];
    const add = localScript("ephemeral-sidecar", ["add", ...args], access, "PTM_CREATE_SCRIPT");
    const stop = localScript("ephemeral-sidecar", ["stop", ...args], access, "PTM_DELETE_SCRIPT");
    const both = createAndDelete(add, stop);
    return new command.local.Command(
      side.pods.length > 1 ? `${name}-ephemeral-${pod.name}` : `${name}-ephemeral`,
      {
        ...both,
        // A changed input (a new image) can't change a running ephemeral container: the
        // update checks that it runs.
        update: add.command,
        environment: { ...both.environment, PTM_EPHEMERAL_CONTAINER: json },
        triggers: [pod.name, pod.uid, side.container],
      },
      {
        ...opts,
        customTimeouts: {
          create: `${timeoutSeconds + 120}s`,
          update: `${timeoutSeconds + 120}s`,
          delete: `${timeoutSeconds + 120}s`,
        },
      },
    );
  });
}
