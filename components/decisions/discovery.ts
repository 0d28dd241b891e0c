// Where a Prometheus keeps its TSDB and serves its API, as the running server reports it.
// At preview, before any sidecar exists, the program asks the server itself through the API
// server's pod proxy (`kubectl get --raw /api/v1/namespaces/NS/pods/POD:PORT/proxy/...`):
// `/api/v1/status/flags` (storage.tsdb.path, retention, block durations, admin API, listen
// address, route prefix), `/api/v1/status/runtimeinfo` (CWD, which a relative TSDB path is
// relative to) and `/api/v1/status/buildinfo` (the version). Explicit config keys win over
// it; when the server can't be reached the container spec is read instead, and where the spec
// can't tell, the error names the key to set. Every value says where it came from.
// Pure functions over what kubectl printed, so that each rule has a table test.

import { ConfigError, WorkloadRef } from "./config";
import { apiAdvice, apiFailureCause, capital } from "./serverAnswers";

/** The subset of a container that discovery reads (see workload.ts for the whole). */
export interface DiscoveryContainer {
  name: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
}

/** What the running server answered, or why it could not be asked. */
export type ServerReport =
  | {
      reached: true;
      /** The pod that answered. */
      pod: string;
      /** `/api/v1/status/flags`: every flag's effective value, as strings. */
      flags: Record<string, string>;
      /** `/api/v1/status/runtimeinfo` CWD; unset when the server has no runtimeinfo (< 2.14). */
      cwd?: string;
      /** `/api/v1/status/buildinfo` version; unset when the server has no buildinfo (< 2.14). */
      version?: string;
    }
  | { reached: false; why: string };

/** A value and where it came from, in words for the preview output. */
export interface Sourced<T> {
  value: T;
  from: string;
}

/** Pods as `kubectl get pods -o json` prints them: only what picking one needs. */
export interface PodObject {
  metadata?: { name?: string; deletionTimestamp?: string };
  spec?: { containers?: { name: string }[] };
  status?: {
    phase?: string;
    containerStatuses?: { name: string; ready?: boolean; state?: { running?: object } }[];
  };
}

/** Reads `--flag=value` or `--flag value` from a Prometheus command line. */
export function flagValue(argv: string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    for (const prefix of [`--${flag}`, `-${flag}`]) {
      if (a === prefix) return argv[i + 1];
      if (a.startsWith(prefix + "=")) return a.slice(prefix.length + 1);
    }
  }
  return undefined;
}

export function flagOn(argv: string[], flag: string): boolean {
  return argv.some((a) => a === `--${flag}` || a === `--${flag}=true` || a === `-${flag}`);
}

/** An absolute path with `.`, `..` and repeated or trailing slashes resolved. */
export function normalize(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return "/" + parts.join("/");
}

const argvOf = (c: DiscoveryContainer) => [...(c.command ?? []), ...(c.args ?? [])];

/** A shell wrapper or an env expansion hides the real flags: the spec can't tell then. */
function specHidesFlags(argv: string[]): boolean {
  return argv.some((a) => a.includes("$(") || a === "-c");
}

/** `/prom/` -> `/prom`, `prom` -> `/prom`, `/` or "" -> "". */
function cleanPrefix(p: string): string {
  const t = p.replace(/\/+$/, "");
  return t === "" ? "" : t.startsWith("/") ? t : "/" + t;
}

/** The route prefix a command line gives: --web.route-prefix, else --web.external-url's path. */
function prefixOf(flag: (f: string) => string | undefined): string {
  const prefix = flag("web.route-prefix");
  if (prefix !== undefined) return cleanPrefix(prefix);
  const external = flag("web.external-url");
  return external ? cleanPrefix(external.replace(/^[a-z]+:\/\/[^/]*/i, "")) : "";
}

function portOf(listen: string | undefined): number {
  const port = Number((listen ?? ":9090").slice((listen ?? ":9090").lastIndexOf(":") + 1));
  return Number.isInteger(port) && port > 0 ? port : 9090;
}

/**
 * The TSDB path the container spec gives, or undefined when it can't tell: the image's
 * default command line (no args) and a relative path without `workingDir` both depend on
 * the image, which the spec does not show (`data/` is /prometheus/data in the official
 * image and /opt/bitnami/prometheus/data in Bitnami's).
 */
export function specDataPath(c: DiscoveryContainer): Sourced<string> | undefined {
  const argv = argvOf(c);
  if (argv.length === 0 || specHidesFlags(argv)) return undefined;
  const v = flagValue(argv, "storage.tsdb.path");
  if (v !== undefined && v.startsWith("/")) {
    return { value: normalize(v), from: "container spec: --storage.tsdb.path" };
  }
  if (!c.workingDir) return undefined;
  return {
    value: normalize(`${c.workingDir}/${v ?? "data/"}`),
    from:
      v === undefined
        ? "container spec: no --storage.tsdb.path, so data/ under its workingDir"
        : "container spec: --storage.tsdb.path under its workingDir",
  };
}

/** Port and route prefix to reach the server at, before it has told us its flags. */
export function proxyTarget(
  ref: Pick<WorkloadRef, "url">,
  c: DiscoveryContainer,
): { port: number; prefix: string } {
  if (ref.url) {
    const m = /^https?:\/\/[^/:]+(?::(\d+))?(\/.*)?$/.exec(ref.url);
    return { port: m?.[1] ? Number(m[1]) : 80, prefix: cleanPrefix(m?.[2] ?? "") };
  }
  const argv = argvOf(c);
  const flag = (f: string) => flagValue(argv, f);
  return { port: portOf(flag("web.listen-address")), prefix: prefixOf(flag) };
}

/** The API path through the API server's pod proxy. */
export function proxyPath(
  namespace: string,
  pod: string,
  target: { port: number; prefix: string },
  endpoint: string,
): string {
  return `/api/v1/namespaces/${namespace}/pods/${pod}:${target.port}/proxy${target.prefix}${endpoint}`;
}

/**
 * The pod to ask: not being deleted, with the Prometheus container running; a ready one
 * first. Not by the pod's phase: a pod whose sidecar image can't be pulled stays Pending
 * while its Prometheus runs (a failed prepare, then `up` with the image fixed: issue 23).
 * Undefined with the reason when there is none.
 */
export function pickPod(
  pods: PodObject[],
  container: string,
): { pod: string } | { pod?: undefined; why: string } {
  const live = pods.filter(
    (p) =>
      p.metadata?.name &&
      !p.metadata.deletionTimestamp &&
      p.status?.phase !== "Succeeded" &&
      p.status?.phase !== "Failed" &&
      (p.spec?.containers ?? []).some((c) => c.name === container),
  );
  const status = (p: PodObject) =>
    (p.status?.containerStatuses ?? []).find((s) => s.name === container);
  const ready = live.filter((p) => status(p)?.ready);
  const running = live.filter((p) => status(p)?.state?.running);
  const pick = ready[0] ?? running[0];
  if (pick) return { pod: pick.metadata!.name! };
  return {
    why:
      pods.length === 0
        ? "no pod of it exists"
        : `none of its ${pods.length} pod(s) runs container "${container}"`,
  };
}

function statusData(json: unknown, what: string): Record<string, unknown> {
  const o = json as { status?: unknown; data?: unknown } | null;
  if (!o || o.status !== "success" || typeof o.data !== "object" || o.data === null) {
    throw new Error(`${what} did not answer {"status":"success","data":{...}}`);
  }
  return o.data as Record<string, unknown>;
}

/** The flags as `/api/v1/status/flags` gives them; throws when the answer is not that. */
export function parseFlags(json: unknown): Record<string, string> {
  const data = statusData(json, "/api/v1/status/flags");
  const flags: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) if (typeof v === "string") flags[k] = v;
  if (flags["storage.tsdb.path"] === undefined) {
    throw new Error("/api/v1/status/flags has no storage.tsdb.path: is this a Prometheus server?");
  }
  return flags;
}

/** runtimeinfo's CWD, or undefined when the answer has none. */
export function parseCwd(json: unknown): string | undefined {
  const cwd = statusData(json, "/api/v1/status/runtimeinfo")["CWD"];
  return typeof cwd === "string" && cwd.startsWith("/") ? cwd : undefined;
}

/** buildinfo's version, or undefined when the answer has none. */
export function parseVersion(json: unknown): string | undefined {
  const v = statusData(json, "/api/v1/status/buildinfo")["version"];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function notReached(server: ServerReport | undefined): string {
  if (!server) return "the server was not asked";
  return server.reached ? "" : `the server could not be asked (${server.why})`;
}

/**
 * The absolute TSDB directory: the `dataPath` key, else the server's storage.tsdb.path
 * (resolved against its CWD when relative), else the container spec. Throws a ConfigError
 * naming `<key>.dataPath` when none of them can tell.
 */
export function resolveDataPath(
  key: "source" | "target",
  ref: WorkloadRef,
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<string> {
  if (ref.dataPath) return checkedDataPath(key, ref, c, server);
  let why = notReached(server);
  if (server?.reached) {
    const p = server.flags["storage.tsdb.path"];
    if (p.startsWith("/")) {
      return { value: normalize(p), from: `server ${server.pod}: flag storage.tsdb.path` };
    }
    if (server.cwd) {
      return {
        value: normalize(`${server.cwd}/${p}`),
        from: `server ${server.pod}: flag storage.tsdb.path "${p}" in runtimeinfo CWD ${server.cwd}`,
      };
    }
    if (c.workingDir) {
      return {
        value: normalize(`${c.workingDir}/${p}`),
        from: `server ${server.pod}: flag storage.tsdb.path "${p}" under the container's workingDir`,
      };
    }
    why = `the server's storage.tsdb.path "${p}" is relative and it reports no CWD (runtimeinfo needs 2.14+)`;
  } else {
    const fromSpec = specDataPath(c);
    if (fromSpec) return fromSpec;
  }
  throw new ConfigError(
    `${key}.dataPath`,
    `can't tell where ${ref.kind} ${ref.namespace}/${ref.name} keeps its TSDB: ${why}, and its ` +
      `container spec does not say (no absolute --storage.tsdb.path, no workingDir: the image ` +
      `decides). Set ${key}.dataPath to the absolute TSDB path in container "${ref.container}"`,
  );
}

/**
 * Where the server itself says its TSDB is, for checking an explicit dataPath: its flag
 * (absolute, or relative to its CWD or the container's workingDir), else the container spec's.
 * Undefined with the reason when neither can tell.
 */
function serverDataPath(
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<string> | { why: string } {
  if (server?.reached) {
    const p = server.flags["storage.tsdb.path"];
    const at = p.startsWith("/") ? "/" : (server.cwd ?? c.workingDir);
    if (at !== undefined) {
      return {
        value: normalize(`${at}/${p}`),
        from: `server ${server.pod}: flag storage.tsdb.path "${p}"${p.startsWith("/") ? "" : ` in ${at}`}`,
      };
    }
    return { why: `the server's storage.tsdb.path "${p}" is relative and its CWD unknown` };
  }
  return specDataPath(c) ?? { why: `${notReached(server)} and the container spec does not say` };
}

/** An explicit dataPath, refused when the server (or the spec) says its TSDB is elsewhere. */
function checkedDataPath(
  key: "source" | "target",
  ref: WorkloadRef,
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<string> {
  const value = normalize(ref.dataPath!);
  const own = serverDataPath(c, server);
  if ("why" in own) return { value, from: `config ${key}.dataPath (not checked: ${own.why})` };
  if (own.value !== value) {
    throw new ConfigError(
      `${key}.dataPath`,
      `${value} is not where ${ref.kind} ${ref.namespace}/${ref.name} keeps its TSDB: its ` +
        `--storage.tsdb.path is ${own.value} (${own.from}). Set ${key}.dataPath to ${own.value}, or remove it to use ` +
        `the server's`,
    );
  }
  return { value, from: `config ${key}.dataPath` };
}

/** Hosts of a listen address that the pod's own containers reach at localhost. */
const LOCAL_HOSTS = ["", "0.0.0.0", "::", "[::]", "localhost", "127.0.0.1", "[::1]", "::1"];

/**
 * The port to ask at localhost from a --web.listen-address (3.x repeats it, comma-separated
 * in the flags API): the first address bound to every interface or to loopback. Undefined
 * when every one is bound to another address (the pod IP): localhost is refused there.
 */
function localPort(listen: string): number | undefined {
  for (const a of listen.split(",").map((x) => x.trim())) {
    const i = a.lastIndexOf(":");
    if (i >= 0 && LOCAL_HOSTS.includes(a.slice(0, i))) return portOf(a);
  }
  return undefined;
}

function listenRefused(
  key: "source" | "target",
  ref: WorkloadRef,
  listen: string,
  from: string,
): ConfigError {
  const port = portOf(listen.split(",")[0]);
  return new ConfigError(
    `${key}.url`,
    `${ref.kind} ${ref.namespace}/${ref.name} listens only on ${listen} (${from}), which is not ` +
      `reachable at localhost from inside its pod, where the migration reads its API. Set ` +
      `--web.listen-address=0.0.0.0:${port} (or :${port}), or set ${key}.url to an address that ` +
      `reaches the server from inside its pod`,
  );
}

/** The Prometheus API from inside the pod: the `url` key, else the server's flags, else the spec. */
export function resolveUrl(
  key: "source" | "target",
  ref: WorkloadRef,
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<string> {
  if (ref.url) return { value: ref.url.replace(/\/+$/, ""), from: `config ${key}.url` };
  if (server?.reached) {
    const flag = (f: string) => server.flags[f] || undefined;
    const listen = flag("web.listen-address") ?? ":9090";
    const port = localPort(listen);
    if (port === undefined)
      throw listenRefused(key, ref, listen, `server ${server.pod}: flag web.listen-address`);
    return {
      value: `http://localhost:${port}${prefixOf(flag)}`,
      from: `server ${server.pod}: flags web.listen-address, web.route-prefix`,
    };
  }
  // The server answered, but not to a plain request without credentials: the sidecars'
  // scripts would meet the same (TLS or basic auth in its --web.config.file).
  const cause = server ? apiFailureCause(server.why) : "other";
  if (cause === "tls" || cause === "basic-auth") {
    throw new ConfigError(
      `${key}.url`,
      `${ref.kind} ${ref.namespace}/${ref.name}'s API, asked through the pod proxy: ` +
        `${server!.why}. ${capital(apiAdvice(cause, `${key}.url`, undefined))}`,
    );
  }
  const listen = flagValue(argvOf(c), "web.listen-address");
  if (listen !== undefined && localPort(listen) === undefined)
    throw listenRefused(key, ref, listen, "container spec: --web.listen-address");
  const { port, prefix } = proxyTarget({}, c);
  return {
    value: `http://localhost:${port}${prefix}`,
    from: "container spec: --web.listen-address, --web.route-prefix/--web.external-url or their defaults",
  };
}

/** Whether the admin API is on: the server's flag, else the command line. */
export function resolveAdminApi(
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<boolean> {
  if (server?.reached && server.flags["web.enable-admin-api"] !== undefined) {
    return {
      value: server.flags["web.enable-admin-api"] === "true",
      from: `server ${server.pod}: flag web.enable-admin-api`,
    };
  }
  return {
    value: flagOn(argvOf(c), "web.enable-admin-api"),
    from: "container spec: --web.enable-admin-api",
  };
}

/** The server's version, when it said. */
export function resolveVersion(server: ServerReport | undefined): Sourced<string | undefined> {
  if (server?.reached && server.version) {
    return { value: server.version, from: `server ${server.pod}: buildinfo` };
  }
  return {
    value: undefined,
    from: server?.reached
      ? "unknown: the server has no buildinfo"
      : `unknown: the server ${server ? "could not be asked" : "was not asked"}`,
  };
}

/** Retention and block durations, for the preview output: the server's flags, else the spec's. */
export function resolveStorageFlags(
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<Record<string, string>> {
  const names = [
    "storage.tsdb.retention.time",
    "storage.tsdb.retention.size",
    "storage.tsdb.min-block-duration",
    "storage.tsdb.max-block-duration",
  ];
  const out: Record<string, string> = {};
  if (server?.reached) {
    for (const n of names) if (server.flags[n]) out[n] = server.flags[n];
    return { value: out, from: `server ${server.pod}: flags` };
  }
  const argv = argvOf(c);
  for (const n of names) {
    const v = flagValue(argv, n);
    if (v !== undefined) out[n] = v;
  }
  return { value: out, from: "container spec (flags not set there use Prometheus's defaults)" };
}

/**
 * Every flag a container's command line sets (`--name=value`, `--name value`, `--name` for
 * true), repeated ones joined with commas as the flags API joins them (`--enable-feature`).
 * Undefined when the spec can't tell: no command line (the image's default) or one that a
 * shell or an env expansion hides.
 */
export function specFlags(c: DiscoveryContainer): Sourced<Record<string, string>> | undefined {
  const argv = argvOf(c);
  if (argv.length === 0 || specHidesFlags(argv)) return undefined;
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z0-9][a-z0-9.-]*)(?:=(.*))?$/.exec(argv[i]);
    if (!m) continue;
    let v = m[2];
    if (v === undefined)
      v = argv[i + 1] !== undefined && !argv[i + 1].startsWith("-") ? argv[++i] : "true";
    out[m[1]] = out[m[1]] !== undefined && m[1] === "enable-feature" ? `${out[m[1]]},${v}` : v;
  }
  return { value: out, from: "container spec: its args (unset flags take Prometheus's defaults)" };
}

/**
 * The server's flags as discovery read them: the running server's (pod proxy), else the
 * container spec's, else undefined. The plan uses them where its probe read none.
 */
export function resolveFlags(
  c: DiscoveryContainer,
  server: ServerReport | undefined,
): Sourced<Record<string, string>> | undefined {
  if (server?.reached) return { value: server.flags, from: `server ${server.pod}: flags` };
  return specFlags(c);
}
