// Fail closed on what a server could not tell. probe.sh reads each Prometheus's API from where
// it runs (a sidecar, or the Prometheus container itself); a read that failed is null in its
// output, and a null must never turn into a default further on: "now" for the head (the gap
// then reads 0), "no features" for the version gate, "no samples" for a source that only
// looks empty. Each refusal names what could not be read, why (what the HTTP client said),
// and what to set. Pure.

import { ConfigError } from "./config";
import type { BlockMeta, HeadStats, ProbeResult } from "./sidecarOutput";
import { headRange } from "./tsdb";

/** Why an API read failed, from what wget, curl or kubectl said. */
export type ApiFailureCause =
  "tls" | "basic-auth" | "refused" | "not-found" | "timeout" | "no-client" | "other";

export function apiFailureCause(why: string): ApiFailureCause {
  // Go's net/http answers plain HTTP on a TLS port with exactly this, as HTTP/1.0 (busybox
  // wget shows only the status line; curl and kubectl show the body).
  if (/Client sent an HTTP request to an HTTPS server|HTTP\/1\.0 400/i.test(why)) return "tls";
  if (/\b401\b|Unauthorized/i.test(why)) return "basic-auth";
  if (/Connection refused|Couldn't connect|Failed to connect/i.test(why)) return "refused";
  if (/\b404\b|Not Found/i.test(why)) return "not-found";
  if (/timed out|timeout/i.test(why)) return "timeout";
  if (/neither wget nor curl/i.test(why)) return "no-client";
  return "other";
}

/** The port of a URL, for advice ("9090" when it says none: Prometheus's default). */
function portOf(url: string | undefined): string {
  const m = /^[a-z]+:\/\/(?:\[[^\]]*\]|[^/:]*)(?::(\d+))?/i.exec(url ?? "");
  return m?.[1] ?? (url?.startsWith("https:") ? "443" : url ? "80" : "9090");
}

/** What to set, for each cause; `key` is `<side>.url`. */
export function apiAdvice(cause: ApiFailureCause, key: string, url: string | undefined): string {
  const port = portOf(url);
  switch (cause) {
    case "tls":
      return (
        `it serves HTTPS only (tls_server_config in its --web.config.file answers plain HTTP with ` +
        `400 "Client sent an HTTP request to an HTTPS server"), and the migration's scripts read ` +
        `the API in plain HTTP from inside the pod: serve it without tls_server_config while ` +
        `migrating (take it out of the web config file until the revert), or set ${key} to an ` +
        `https:// URL that the container's wget or curl accepts`
      );
    case "basic-auth":
      return (
        `it asks for credentials (HTTP 401: basic_auth_users in its --web.config.file), and the ` +
        `migration sends none: take basic_auth_users out of the web config file while migrating ` +
        `(until the revert)`
      );
    case "refused":
      return (
        `nothing answers there from inside the pod (connection refused): a --web.listen-address ` +
        `bound to the pod IP (e.g. $(POD_IP):${port}) is not reachable at localhost. Set ` +
        `--web.listen-address=0.0.0.0:${port} (or :${port}), or set ${key} to an address that ` +
        `reaches the server from inside its pod; if the port is wrong, set ${key}`
      );
    case "not-found":
      return (
        `that path is not there: with --web.route-prefix or a --web.external-url path, set ` +
        `${key} with the prefix (e.g. http://localhost:${port}/prometheus)`
      );
    case "timeout":
      return `it did not answer in time: check that it is ready (kubectl get pods), then run again`;
    case "no-client":
      return `the container has neither wget nor curl to ask it with: use an image that has one`;
    case "other":
      return `check that ${key} is where the server answers from inside its pod`;
  }
}

export const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** The API path of each read probe.sh makes, by its name in `apiErrors`. */
const PATHS: Record<string, string> = {
  buildinfo: "/api/v1/status/buildinfo",
  flags: "/api/v1/status/flags",
  tsdb: "/api/v1/status/tsdb",
  metrics: "/metrics",
};

/** The error that says which reads failed, why, and what to set. */
export function unreadable(
  side: "source" | "target",
  probe: Pick<ProbeResult, "apiUrl" | "apiErrors">,
  reads: string[],
  why: string,
): ConfigError {
  const key = `${side}.url`;
  const said = (r: string) => probe.apiErrors?.[r];
  // One line per reason: the reads usually fail alike.
  const byWhy = new Map<string, string[]>();
  for (const r of reads) {
    const why = said(r) ?? "did not answer; the probe said no more";
    byWhy.set(why, [...(byWhy.get(why) ?? []), PATHS[r] ?? r]);
  }
  const gets = [...byWhy].map(([why, paths]) => `GET ${paths.join(", ")}: ${why}`).join("; ");
  const first = reads.map(said).find((s) => s !== undefined);
  const advice =
    first === undefined ? "" : ` ${capital(apiAdvice(apiFailureCause(first), key, probe.apiUrl))}.`;
  return new ConfigError(
    key,
    `the ${side}'s Prometheus API at ${probe.apiUrl ?? "its URL"} could not be read from where ` +
      `the probe runs: ${gets}.${advice} ${why}`,
  );
}

/**
 * The answers every plan needs from a server: its version (the version gate, the overlap
 * rules) and its head (the gap, the next compaction). A probe without them is refused.
 */
export function requireServerAnswers(
  side: "source" | "target",
  probe: ProbeResult,
): { version: string; head: HeadStats } {
  const missing = [
    probe.buildinfo === null ? "buildinfo" : undefined,
    probe.tsdb === null ? "tsdb" : undefined,
  ].filter((r): r is string => r !== undefined);
  if (probe.buildinfo !== null && probe.tsdb !== null) {
    return { version: probe.buildinfo.version, head: probe.tsdb };
  }
  throw unreadable(
    side,
    probe,
    missing,
    `Without its version and head nothing can be planned: a missing head would read as "no ` +
      `samples until now" (a gap of 0), a missing version as "no format limits"`,
  );
}

/**
 * A source that looks empty (no block on its volume or in the plan, an empty head) is taken
 * for empty only when the server agrees: nothing loaded (prometheus_tsdb_blocks_loaded 0) and
 * no head series (prometheus_tsdb_head_series 0), from its own /metrics. Otherwise the error
 * (a wrong data path, answers that disagree, or /metrics unread); undefined when confirmed or
 * when the source does not look empty.
 */
export function confirmSourceEmpty(
  sourceBlocks: BlockMeta[],
  probe: ProbeResult,
): ConfigError | undefined {
  if (sourceBlocks.length > 0 || probe.blocks.length > 0 || headRange(probe.tsdb) !== undefined) {
    return undefined;
  }
  const dir = probe.dataDir ?? "the data directory";
  const s = probe.server;
  if (!s) {
    return unreadable(
      "source",
      probe,
      ["metrics"],
      `The probe found no block in ${dir} and an empty head, and could not confirm with the ` +
        `server that it holds no samples (prometheus_tsdb_blocks_loaded, ` +
        `prometheus_tsdb_head_series): an empty migration is planned only when it agrees`,
    );
  }
  if (s.blocksLoaded > 0) {
    const flag = probe.flags?.["storage.tsdb.path"];
    return new ConfigError(
      "source.dataPath",
      `the probe found no block in ${dir}, but the server has ${s.blocksLoaded} blocks loaded ` +
        `(prometheus_tsdb_blocks_loaded): ${dir} is not the directory it serves` +
        (flag ? ` (its --storage.tsdb.path is "${flag}")` : "") +
        `. Set source.dataPath to the TSDB path in the Prometheus container`,
    );
  }
  if (s.headSeries > 0) {
    return new ConfigError(
      "source",
      `the source's head stats (/api/v1/status/tsdb) show no samples, but its /metrics has ` +
        `prometheus_tsdb_head_series ${s.headSeries}: the answers disagree, so the plan can't ` +
        `tell what the head holds. Run again; if it persists, check that source.url is this ` +
        `workload's server`,
    );
  }
  return undefined;
}
