// Runs the Pulumi program under mocks: resources are recorded instead of created, and
// `command.local.run` probes answer from a fake cluster given by the test.

import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../components/decisions/config";
import { containersOf, FakeServer, serverFlags } from "../fixtures/workloads";

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** The provider reference (`urn::id`) the resource is managed by, if explicit. */
  provider?: string;
  /** Order in which the mock engine saw the resource: after everything it depends on. */
  seq: number;
}

export interface FakeCluster {
  /** `kind/namespace/name` -> live object as `kubectl get -o json` prints it. */
  objects: Record<string, unknown>;
  /** namespace -> NetworkPolicy items. */
  networkPolicies?: Record<string, unknown[]>;
  /** Output of sidecar probes, keyed by `<container>:<script>`; absent = kubectl exec fails. */
  exec?: Record<string, string>;
  /** `kind/namespace/name` that kubectl may not read (RBAC: Forbidden). */
  denied?: string[];
  /** stdout of command resources, keyed by resource name. */
  commandStdout?: Record<string, string>;
  /**
   * The running Prometheus of a workload (`kind/namespace/name`), answering through the pod
   * proxy; absent: its pods run but the proxy can't reach it (as with a server not listening).
   */
  servers?: Record<string, FakeServer>;
  /**
   * State a resource already has, keyed by resource name: what an earlier `up` left there
   * (e.g. a value kept by ignoreChanges). It overrides the inputs in the mock's state.
   */
  priorState?: Record<string, Record<string, unknown>>;
  /** Pods (by name) that are listed as Running but not Ready. */
  notReady?: string[];
  /** `kubectl version -o json`'s serverVersion; default 1.34. `null`: kubectl can't reach it. */
  serverVersion?: { major: string; minor: string; gitVersion: string } | null;
  /**
   * `kubectl auth can-i` per permission, keyed `VERB RESOURCE[/SUB] -n NS` (cluster-wide:
   * `VERB RESOURCE -A`), e.g. `patch deployments.apps -n monitoring`,
   * `create pods/exec -n kubeprod`, `list statefulsets.apps -A`; default "yes". "error": kubectl
   * fails as it does without a usable login (exit 1, nothing on stdout).
   */
  canI?: Record<string, "yes" | "no" | "error">;
  /** `kubectl auth whoami`'s user; default "ci". */
  user?: string;
  /** Ephemeral container statuses per pod name (sidecarMode ephemeral). */
  ephemeral?: Record<string, { name: string; state: Record<string, unknown>; image?: string }[]>;
  /**
   * ConfigMaps per namespace, as `kubectl get configmaps -l` lists them (only their labels and
   * data are read): e.g. the decision record an earlier `up` took.
   */
  configMaps?: Record<string, { metadata: { labels: Record<string, string> }; data: Obj }[]>;
  /** A pod's UID (default `uid-<name>`): another UID is the pod replaced under the same name. */
  podUids?: Record<string, string>;
  /**
   * What `kubectl create --dry-run=server -f -` of a pod says, per namespace: kubectl's stderr
   * when the API server refuses it (exit 1), or a function of the pod that returns it
   * (undefined: admitted). Absent: admitted, and the pod printed back as JSON.
   */
  dryRun?: Record<string, string | ((pod: Obj) => string | undefined)>;
}

/** A registration as the engine would see it: its URN and the aliases (URNs) it brings. */
export interface Registration {
  type: string;
  name: string;
  urn: string;
  aliases: string[];
}

export interface RunResult {
  resources: Recorded[];
  /** Every resource registered, the program's own components too. */
  registrations: Registration[];
  outputs: Record<string, unknown>;
  commands: string[];
  /** The pods given to `kubectl create --dry-run=server` (on its stdin), in order. */
  dryRuns: { namespace: string; pod: Obj }[];
  /** The permissions asked in the RBAC check's access reviews, keyed as `canI` is. */
  accessReviews: string[];
  /** Resource registrations (`<type> <name>`) and commands (`run <cmd>`), in the order seen. */
  events: string[];
}

// Read-only commands report kubectl's exit code on stderr's last line (clusterReads.ts).
const EXIT_SUFFIX = '; echo "ptm-exit=$?" >&2';
/** clusterReads.ts exitOnStdout: the exit code on stdout's last line. */
const EXIT_ON_STDOUT = '; echo; echo "ptm-exit=$?"';

// The cluster flags every kubectl carries when the stack names a cluster (kubectl.ts).
const CLUSTER_FLAGS = / --kubeconfig '[^']*'| --context '[^']*'/g;

function answer(
  cluster: FakeCluster,
  full: string,
  stdin = "",
  seen?: Seen,
): { stdout: string; stderr: string } {
  const cmd = full.replace(CLUSTER_FLAGS, "");
  const ok = (stdout: string) => ({ stdout, stderr: "ptm-exit=0\n" });
  const dry = /^kubectl create --dry-run=server -o json -n '([^']+)' -f -$/.exec(cmd);
  if (dry) {
    const pod = JSON.parse(stdin) as Obj;
    seen?.dryRuns.push({ namespace: dry[1], pod });
    const fake = cluster.dryRun?.[dry[1]];
    const err = typeof fake === "function" ? fake(pod) : fake;
    if (err !== undefined) return { stdout: "", stderr: `${err}\nptm-exit=1\n` };
    const meta = pod.metadata as Obj;
    return ok(JSON.stringify({ ...pod, metadata: { ...meta, name: `${meta.generateName}x2x7q` } }));
  }
  // A `Prometheus` resource is keyed `prometheus/<namespace>/<name>`.
  let m =
    /^kubectl get (deployment|statefulset|prometheus)(?:es\.monitoring\.coreos\.com)? '([^']+)' -n '([^']+)' -o json/.exec(
      cmd,
    );
  if (m && cluster.denied?.includes(`${m[1]}/${m[3]}/${m[2]}`)) {
    const err = `Error from server (Forbidden): ${m[1]}s.apps "${m[2]}" is forbidden: User "ci" cannot get resource "${m[1]}s"`;
    return { stdout: "", stderr: `${err}\nptm-exit=1\n` };
  }
  if (m) {
    const obj = cluster.objects[`${m[1]}/${m[3]}/${m[2]}`];
    return ok(obj ? JSON.stringify(obj) : "");
  }
  m = /^kubectl get deployments,statefulsets -A -l '([^']+)' -o json$/.exec(cmd);
  if (m) {
    const want = m[1].split(",").map((kv) => kv.split("="));
    const items = Object.values(cluster.objects).filter((o) => {
      const labels = (o as { metadata?: { labels?: Record<string, string> } }).metadata?.labels;
      return want.every(([k, v]) => labels?.[k] === v);
    });
    return ok(JSON.stringify({ items }));
  }
  m = /^kubectl get pods -n '([^']+)' -l '([^']*)' -o json$/.exec(cmd);
  if (m) {
    const want = m[2].split(",").map((kv) => kv.split("="));
    const items = Object.entries(cluster.objects)
      .filter(([key]) => key.split("/")[1] === m![1])
      .filter(([, o]) => {
        const labels = (o as { spec?: { template?: { metadata?: { labels?: Obj } } } }).spec
          ?.template?.metadata?.labels;
        return want.every(([k, v]) => labels?.[k] === v);
      })
      .flatMap(([key, o]) => fakePods(key, o as Obj, cluster.notReady ?? []))
      .map((p) => withEphemeral(p, cluster));
    return ok(JSON.stringify({ items }));
  }
  m =
    /^kubectl get --raw '\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/:]+):(\d+)\/proxy(\/.*)?\/api\/v1\/status\/(flags|runtimeinfo|buildinfo)'$/.exec(
      cmd,
    );
  if (m) {
    const key = Object.keys(cluster.objects).find(
      (k) => k.split("/")[1] === m![1] && fakePodName(k) === m![2],
    );
    const server = key ? cluster.servers?.[key] : undefined;
    const unavailable = {
      stdout: "",
      stderr: `Error from server (ServiceUnavailable): the server is currently unable to handle the request\nptm-exit=1\n`,
    };
    if (!key || !server) return unavailable;
    const c = containersOf(cluster.objects[key] as Obj).find((x) => x.name === server.container);
    if (!c) return unavailable;
    const flags = server.flags ?? serverFlags(c.args, server.image);
    const listen = flags["web.listen-address"];
    const prefix = flags["web.route-prefix"] === "/" ? "" : flags["web.route-prefix"];
    if (listen.slice(listen.lastIndexOf(":") + 1) !== m[3]) return unavailable;
    if ((m[4] ?? "") !== prefix) {
      return {
        stdout: "",
        stderr: `Error from server (NotFound): the server could not find the requested resource\nptm-exit=1\n`,
      };
    }
    const data =
      m[5] === "flags"
        ? flags
        : m[5] === "runtimeinfo"
          ? { startTime: "2026-01-01T00:00:00Z", CWD: server.image.workingDir }
          : { version: server.version, revision: "fake", branch: "HEAD" };
    return ok(JSON.stringify({ status: "success", data }));
  }
  if (cmd === "kubectl version -o json") {
    const v =
      cluster.serverVersion === undefined
        ? { major: "1", minor: "34", gitVersion: "v1.34.1" }
        : cluster.serverVersion;
    const client = { clientVersion: { major: "1", minor: "34", gitVersion: "v1.34.1" } };
    if (v === null) {
      return {
        stdout: JSON.stringify(client),
        stderr: "The connection to the server localhost:8080 was refused\nptm-exit=1\n",
      };
    }
    return ok(JSON.stringify({ ...client, serverVersion: v }));
  }
  m =
    /^kubectl auth can-i ([a-z]+) ([a-z0-9.]+)(?: --subresource=([a-z]+))? (?:-n '([^']+)'|--all-namespaces)$/.exec(
      cmd,
    );
  if (m) {
    const key = `${m[1]} ${m[2]}${m[3] ? `/${m[3]}` : ""} ${m[4] ? `-n ${m[4]}` : "-A"}`;
    const a = cluster.canI?.[key] ?? "yes";
    if (a === "yes") return ok("yes");
    if (a === "no") return { stdout: "no", stderr: "ptm-exit=1\n" };
    return { stdout: "", stderr: "error: You must be logged in to the server\nptm-exit=1\n" };
  }
  if (cmd.startsWith("kubectl create -f - -o 'jsonpath={.spec.resourceAttributes.verb}")) {
    // The RBAC check's SelfSubjectAccessReviews (permissions.ts), answered from `canI`.
    const list = JSON.parse(stdin) as {
      items: {
        spec: {
          resourceAttributes: {
            verb: string;
            group: string;
            resource: string;
            subresource?: string;
            namespace?: string;
          };
        };
      }[];
    };
    const answers = list.items.map(({ spec: { resourceAttributes: r } }) => {
      const res = `${r.resource}${r.group ? `.${r.group}` : ""}`;
      const key = `${r.verb} ${res}${r.subresource ? `/${r.subresource}` : ""} ${r.namespace ? `-n ${r.namespace}` : "-A"}`;
      seen?.accessReviews.push(key);
      return { r, a: cluster.canI?.[key] ?? "yes" };
    });
    if (answers.some((x) => x.a === "error")) {
      return { stdout: "", stderr: "error: You must be logged in to the server\nptm-exit=1\n" };
    }
    return ok(answers.map((x) => `${x.r.verb} ${x.r.resource} ${x.a === "yes"}`).join("\n"));
  }
  if (cmd === "kubectl auth whoami -o 'jsonpath={.status.userInfo.username}'") {
    return ok(cluster.user ?? "ci");
  }
  m = /^kubectl get configmaps -n '([^']+)' -l '([^']*)' -o json$/.exec(cmd);
  if (m) {
    const want = m[2].split(",").map((kv) => kv.split("="));
    const items = (cluster.configMaps?.[m[1]] ?? []).filter((c) =>
      want.every(([k, v]) => c.metadata.labels[k] === v),
    );
    return ok(JSON.stringify({ items }));
  }
  m = /^kubectl get networkpolicies -n '([^']+)'/.exec(cmd);
  if (m) return ok(JSON.stringify({ items: cluster.networkPolicies?.[m[1]] ?? [] }));
  m = /^kubectl exec -n '[^']+' '([^']+)' -c '([^']+)' /.exec(cmd);
  const script = /'ptm-([a-z-]+)'( '[^']*')*$/.exec(cmd);
  if (m && script) {
    // One pod's own answer (`pod/<name>:<container>:<script>`) first, then any pod's.
    const out =
      cluster.exec?.[`${m[1]}:${m[2]}:${script[1]}`] ?? cluster.exec?.[`${m[2]}:${script[1]}`];
    if (out === undefined) {
      return { stdout: "", stderr: `error: container ${m[2]} not found\nptm-exit=1\n` };
    }
    return ok(out);
  }
  throw new Error(`unexpected command in test: ${cmd}`);
}

type Obj = Record<string, unknown>;

/** The name of a workload's (one) pod: `<name>-0` for a StatefulSet, hashed for a Deployment. */
function fakePodName(key: string): string {
  const [kind, , name] = key.split("/");
  return kind === "statefulset" ? `${name}-0` : `${name}-7c9d8b5f4-x2x7q`;
}

/** A running, ready pod of a workload, as `kubectl get pods -o json` lists it. */
function fakePod(key: string, w: Obj, name = fakePodName(key), ready = true): Obj {
  const containers = containersOf(w);
  return {
    metadata: { name, namespace: key.split("/")[1], uid: `uid-${name}` },
    spec: { containers },
    status: {
      phase: "Running",
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      containerStatuses: containers.map((c) => ({
        name: c.name,
        ready,
        state: { running: { startedAt: "2026-01-01T00:00:00Z" } },
      })),
    },
  };
}

/** A pod with the ephemeral containers the test gave it. */
function withEphemeral(p: Obj, cluster: FakeCluster): Obj {
  const meta = p.metadata as { name: string };
  const uid = cluster.podUids?.[meta.name];
  if (uid) p = { ...p, metadata: { ...meta, uid } };
  const list = cluster.ephemeral?.[meta.name];
  if (!list) return p;
  return {
    ...p,
    spec: {
      ...(p.spec as Obj),
      ephemeralContainers: list.map((c) => ({
        name: c.name,
        ...(c.image ? { image: c.image } : {}),
      })),
    },
    status: { ...(p.status as Obj), ephemeralContainerStatuses: list },
  };
}

/** The pods of a workload: one per replica of a StatefulSet (`<name>-<ordinal>`). */
function fakePods(key: string, w: Obj, notReady: string[]): Obj[] {
  const [kind, , name] = key.split("/");
  const replicas = ((w.spec as Obj | undefined)?.replicas as number | undefined) ?? 1;
  if (kind !== "statefulset" || replicas <= 1) return [fakePod(key, w)];
  return Array.from({ length: replicas }, (_, i) => `${name}-${i}`).map((pod) =>
    fakePod(key, w, pod, !notReady.includes(pod)),
  );
}

export interface RunOpts {
  preview?: boolean;
  /** Resources (by name) whose mock creation is delayed, to expose missing dependencies. */
  slow?: string[];
  /** Commands (matching) whose answer is delayed 300 ms: a probe that takes its time. */
  slowRuns?: RegExp;
}

/** Delays the mock creation of resources whose names are listed, to expose missing dependencies. */
export async function runProgram(
  config: Record<string, unknown>,
  cluster: FakeCluster,
  opts: RunOpts = {},
): Promise<RunResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = () => require("../../index") as () => Promise<Record<string, unknown>>;
  return runWith(config, cluster, async () => load()(), opts);
}

/** What the mocks saw: the resources and commands, in order, and when they last heard of any. */
export interface Seen {
  resources: Recorded[];
  /** Every registration with its URN and aliases (runWith's recordAliases fills it). */
  registrations: Registration[];
  commands: string[];
  dryRuns: { namespace: string; pod: Obj }[];
  /** The permissions asked in the RBAC check's access reviews, keyed as `canI` is. */
  accessReviews: string[];
  events: string[];
  seq: number;
  lastActivity: number;
}

export function newSeen(): Seen {
  return {
    resources: [],
    registrations: [],
    commands: [],
    dryRuns: [],
    accessReviews: [],
    events: [],
    seq: 0,
    lastActivity: Date.now(),
  };
}

/**
 * The mocks of the Pulumi engine: resources are recorded in `seen`, and `command.local.run`
 * probes answer from the fake cluster.
 */
export function fakeMocks(cluster: FakeCluster, opts: RunOpts, seen: Seen): pulumi.runtime.Mocks {
  return {
    newResource: async (args) => {
      seen.lastActivity = Date.now();
      seen.events.push(`${args.type} ${args.name}`);
      if (opts.slow?.includes(args.name)) await new Promise((r) => setTimeout(r, 150));
      // The migration component itself is the program's one top-level resource: record
      // what it declares.
      if (args.type !== "ptm:index:PrometheusTsdbMigration")
        seen.resources.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          provider: args.provider,
          seq: seen.seq++,
        });
      seen.lastActivity = Date.now();
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "kubernetes:core/v1:Service") {
        state.spec = { ...(args.inputs.spec as object), clusterIP: "10.0.0.42" };
      }
      if (args.type === "command:local:Command")
        state.stdout = cluster.commandStdout?.[args.name] ?? "";
      Object.assign(state, cluster.priorState?.[args.name] ?? {});
      return { id: `${args.name}-id`, state };
    },
    call: (args) => {
      seen.lastActivity = Date.now();
      if (args.token === "command:local:run") {
        const full = String(args.inputs.command);
        seen.events.push(`run ${full}`);
        if (full.endsWith(EXIT_SUFFIX)) {
          const cmd = full.slice(0, -EXIT_SUFFIX.length);
          seen.commands.push(cmd);
          const a = answer(cluster, cmd, String(args.inputs.stdin ?? ""), seen);
          if (!opts.slowRuns?.test(cmd)) return a;
          return new Promise((resolve) =>
            setTimeout(() => {
              seen.events.push(`done ${full}`);
              seen.lastActivity = Date.now();
              resolve(a);
            }, 300),
          );
        }
        if (full.endsWith(EXIT_ON_STDOUT)) {
          const cmd = full.slice(0, -EXIT_ON_STDOUT.length);
          seen.commands.push(cmd);
          const a = answer(cluster, cmd, String(args.inputs.stdin ?? ""), seen);
          const m = /ptm-exit=(\d+)\n$/.exec(a.stderr);
          return {
            stdout: `${a.stdout}\n\nptm-exit=${m ? m[1] : "1"}`,
            stderr: a.stderr.replace(/ptm-exit=\d+\n$/, ""),
          };
        }
        // Without the exit report, a failing command fails the invoke, as local.run does.
        seen.commands.push(full);
        const r = answer(cluster, full.replace(/^exec /, ""));
        if (!r.stderr.endsWith("ptm-exit=0\n")) throw new Error(`command failed: ${full}`);
        return { stdout: r.stdout, stderr: "" };
      }
      throw new Error(`unexpected call ${args.token}`);
    },
  };
}

/**
 * Runs any Pulumi program (a function that declares resources and returns its outputs)
 * against the fake cluster, with the stack config given.
 */
export async function runWith(
  config: Record<string, unknown>,
  cluster: FakeCluster,
  program: () => Promise<Record<string, unknown>>,
  opts: RunOpts = {},
): Promise<RunResult> {
  const seen = newSeen();
  await pulumi.runtime.setMocks(
    fakeMocks(cluster, opts, seen),
    PROJECT,
    "test",
    opts.preview ?? false,
    "organization",
  );
  recordAliases(seen.registrations);
  const cfg: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) {
    // `kubernetes:context` and the like are other namespaces' keys, as written.
    cfg[k.includes(":") ? k : `${PROJECT}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  pulumi.runtime.setAllConfig(cfg);
  const raw = await program();
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    // Output.promise() rejects when an apply threw, as the engine would fail the `up`.
    outputs[k] = await (pulumi.output(v) as unknown as { promise(): Promise<unknown> }).promise();
  }
  // Let the mock engine finish registering everything the program declared.
  while (Date.now() - seen.lastActivity < 300) await new Promise((r) => setTimeout(r, 50));
  return {
    resources: seen.resources,
    registrations: seen.registrations,
    outputs,
    commands: seen.commands,
    dryRuns: seen.dryRuns,
    accessReviews: seen.accessReviews,
    events: seen.events,
  };
}

/** What the harness uses of the SDK's mock monitor and its request. */
interface MockMonitor {
  registerResource(req: RegisterRequest, callback: unknown): unknown;
}
interface RegisterRequest {
  getParent(): string;
  getType(): string;
  getName(): string;
  getAliasurnsList(): string[];
}

/**
 * Records each registration's URN and aliases. The SDK is told that the (mock) engine does
 * not take alias specs, so it computes the alias URNs itself, children's from their parents'
 * aliases too, as the engine does with specs.
 */
function recordAliases(registrations: Registration[]): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const state = require("@pulumi/pulumi/runtime/state") as {
    getStore(): { supportsAliasSpecs: boolean; settings: { monitor: MockMonitor } };
  };
  const store = state.getStore();
  store.supportsAliasSpecs = false;
  const monitor = store.settings.monitor;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    // The URN as the engine makes it (the mock's keeps only the parent's own type).
    const parent = req.getParent();
    const prefix = parent
      ? `${parent.slice(0, parent.lastIndexOf("::"))}$`
      : `urn:pulumi:${pulumi.getStack()}::${pulumi.getProject()}::`;
    registrations.push({
      type: req.getType(),
      name: req.getName(),
      urn: `${prefix}${req.getType()}::${req.getName()}`,
      aliases: req.getAliasurnsList(),
    });
    return register(req, callback);
  };
}

export function byType(r: RunResult, type: string): Recorded[] {
  return r.resources.filter((x) => x.type === type);
}

export function one(r: RunResult, type: string, name?: string): Recorded {
  const all = byType(r, type).filter((x) => name === undefined || x.name === name);
  if (all.length !== 1) throw new Error(`expected one ${type} ${name ?? ""}, got ${all.length}`);
  return all[0];
}

/**
 * What names things in the cluster, per resource (`<type>::<name>`): the object's name and
 * namespace, and every short string of its inputs that holds the stack's name (labels, the
 * Secret's name, the snapshot's, the stack's record on a workload), as `path=value`.
 */
export function clusterNames(r: RunResult): Record<string, string[]> {
  const stack = pulumi.getStack();
  const out: Record<string, string[]> = {};
  for (const x of r.resources) {
    const found: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (typeof v === "string") {
        if (/^metadata\.(name|namespace)$/.test(path) || (v.includes(stack) && v.length < 400))
          found.push(`${path}=${v}`);
      } else if (Array.isArray(v)) {
        v.forEach((e, i) => walk(e, `${path}[${i}]`));
      } else if (v && typeof v === "object") {
        for (const [k, e] of Object.entries(v)) walk(e, path ? `${path}.${k}` : k);
      }
    };
    walk(x.inputs, "");
    out[`${x.type}::${x.name}`] = found.sort();
  }
  return out;
}
