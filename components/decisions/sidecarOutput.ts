// Parsing of what the sidecar scripts print: progress on stderr, and the result as one JSON
// object on the last stdout line, holding Prometheus meta.json objects and API answers.
// Every value is checked here, because a wrong number (a block's time range, a version)
// silently turns into a wrong plan later. Rules about what the values mean live in tsdb.ts.

import { StepError } from "./errors";

/** A block's meta.json as Prometheus writes it, plus the size our probe adds. */
export interface BlockMeta {
  ulid: string;
  /** First sample, ms (inclusive). */
  minTime: number;
  /** End of the range, ms (exclusive: a block covers [minTime, maxTime)). */
  maxTime: number;
  stats?: {
    numSamples?: number;
    numSeries?: number;
    numChunks?: number;
    /** Written by 3.x (and late 2.x) only: the float / native histogram split. */
    numFloatSamples?: number;
    numHistogramSamples?: number;
  };
  compaction: {
    level: number;
    /** Level-1 blocks this block was made from (a level-1 block lists itself). */
    sources?: string[];
    /** Blocks directly merged into this one. */
    parents?: { ulid: string; minTime: number; maxTime: number }[];
  };
  /** Apparent size of all files of the block, added by probe.sh/snapshot.sh. */
  sizeBytes?: number;
  /** meta.json "version" (1 in every 2.x/3.x). */
  version?: number;
  /**
   * The index file's format version (lib.sh index_format: the byte after the magic), added
   * by probe.sh/snapshot.sh; null when it could not be read.
   */
  indexFormat?: number | null;
}

/** /api/v1/status/tsdb data.headStats (the in-memory head). */
export interface HeadStats {
  numSeries?: number;
  chunkCount?: number;
  minTime: number;
  maxTime: number;
}

export type SnapshotOwner = "none" | "ours" | "earlier" | "other";
const SNAPSHOT_OWNERS: readonly string[] = ["none", "ours", "earlier", "other"];

/** What components/sidecar/probe.sh prints. */
export interface ProbeResult {
  blocks: BlockMeta[];
  snapshotBlocks: BlockMeta[];
  /**
   * Who made the snapshot dir (sidecar/lib.sh snapshot_owner_state): none (there is none),
   * ours (this migration), earlier (an earlier attempt of this stack) or other.
   */
  snapshotOwner?: SnapshotOwner;
  /** /api/v1/status/buildinfo data, null when Prometheus was unreachable. */
  buildinfo: { version: string } | null;
  /** /api/v1/status/flags data (flag name without dashes -> value). */
  flags: Record<string, string> | null;
  tsdb: HeadStats | null;
  dfAvailableBytes: number;
  nowMs: number;
  /** The TSDB directory the probe listed (PTM_DATA); absent from an older probe.sh. */
  dataDir?: string;
  /** The API base URL the probe asked (PTM_PROM_URL); absent from an older probe.sh. */
  apiUrl?: string;
  /**
   * Why each API read failed (buildinfo, flags, tsdb, metrics -> what the HTTP client said:
   * its error, the HTTP status, the start of the body); empty when every read answered.
   */
  apiErrors?: Record<string, string>;
  /**
   * What the server itself has loaded, from its own /metrics (prometheus_tsdb_blocks_loaded,
   * prometheus_tsdb_head_series); null when /metrics did not answer, absent from an older probe.
   */
  server?: { blocksLoaded: number; headSeries: number } | null;
}

/** A ULID as Prometheus names block dirs (Crockford base32, 26 chars). */
export const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function num(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`${where}: "${key}" must be a finite number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optNum(o: Json, key: string, where: string): number | undefined {
  return o[key] === undefined ? undefined : num(o, key, where);
}

/**
 * The last non-empty stdout line parsed as JSON. Scripts keep stdout clean,
 * but kubectl or a shell profile may print something first; only the last
 * line is the result.
 */
export function parseLastJsonLine(stdout: string): unknown {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  const last = lines[lines.length - 1];
  if (last === undefined) throw new Error("no output (expected one JSON line)");
  try {
    return JSON.parse(last) as unknown;
  } catch (e) {
    throw new Error(`last output line is not JSON: ${last.slice(0, 200)} (${String(e)})`);
  }
}

/** Validate one meta.json object. */
export function parseBlockMeta(x: unknown, where = "block"): BlockMeta {
  if (!isObject(x)) throw new Error(`${where}: not an object`);
  const ulid = x["ulid"];
  if (typeof ulid !== "string" || !ULID_RE.test(ulid)) {
    throw new Error(`${where}: bad ulid ${JSON.stringify(ulid)}`);
  }
  const at = `${where} ${ulid}`;
  const minTime = num(x, "minTime", at);
  const maxTime = num(x, "maxTime", at);
  if (maxTime <= minTime) throw new Error(`${at}: maxTime ${maxTime} <= minTime ${minTime}`);
  const c = x["compaction"];
  if (!isObject(c)) throw new Error(`${at}: missing "compaction"`);
  const level = num(c, "level", at);
  const meta: BlockMeta = { ulid, minTime, maxTime, compaction: { level } };
  const sources = c["sources"];
  if (sources !== undefined) {
    if (!Array.isArray(sources) || !sources.every((s): s is string => typeof s === "string")) {
      throw new Error(`${at}: compaction.sources must be a list of strings`);
    }
    meta.compaction.sources = sources;
  }
  const parents = c["parents"];
  if (parents !== undefined) {
    if (!Array.isArray(parents)) throw new Error(`${at}: compaction.parents must be a list`);
    meta.compaction.parents = parents.map((p: unknown, i) => {
      if (!isObject(p) || typeof p["ulid"] !== "string") throw new Error(`${at}: bad parent #${i}`);
      return { ulid: p["ulid"], minTime: num(p, "minTime", at), maxTime: num(p, "maxTime", at) };
    });
  }
  const stats = x["stats"];
  if (isObject(stats)) {
    meta.stats = {};
    const s = meta.stats;
    const numSamples = optNum(stats, "numSamples", at);
    const numSeries = optNum(stats, "numSeries", at);
    const numChunks = optNum(stats, "numChunks", at);
    if (numSamples !== undefined) s.numSamples = numSamples;
    if (numSeries !== undefined) s.numSeries = numSeries;
    if (numChunks !== undefined) s.numChunks = numChunks;
    const numFloat = optNum(stats, "numFloatSamples", at);
    const numHistogram = optNum(stats, "numHistogramSamples", at);
    if (numFloat !== undefined) s.numFloatSamples = numFloat;
    if (numHistogram !== undefined) s.numHistogramSamples = numHistogram;
  }
  const size = optNum(x, "sizeBytes", at);
  if (size !== undefined) meta.sizeBytes = size;
  const version = optNum(x, "version", at);
  if (version !== undefined) meta.version = version;
  if (x["indexFormat"] === null) meta.indexFormat = null;
  else {
    const indexFormat = optNum(x, "indexFormat", at);
    if (indexFormat !== undefined) meta.indexFormat = indexFormat;
  }
  return meta;
}

/** Validate a list of meta.json objects. */
export function parseBlockList(x: unknown, where: string): BlockMeta[] {
  if (!Array.isArray(x)) throw new Error(`${where}: not a list`);
  return x.map((b: unknown, i) => parseBlockMeta(b, `${where}[${i}]`));
}

function parseHead(x: unknown): HeadStats | null {
  if (x === null || x === undefined) return null;
  if (!isObject(x)) throw new Error("tsdb: not an object");
  const head: HeadStats = {
    minTime: num(x, "minTime", "tsdb"),
    maxTime: num(x, "maxTime", "tsdb"),
  };
  const numSeries = optNum(x, "numSeries", "tsdb");
  const chunkCount = optNum(x, "chunkCount", "tsdb");
  if (numSeries !== undefined) head.numSeries = numSeries;
  if (chunkCount !== undefined) head.chunkCount = chunkCount;
  return head;
}

/** Parse and validate components/sidecar/probe.sh output. */
export function parseProbe(stdout: string): ProbeResult {
  const x = parseLastJsonLine(stdout);
  if (!isObject(x)) throw new Error("probe: not a JSON object");
  let buildinfo: ProbeResult["buildinfo"] = null;
  const bi = x["buildinfo"];
  if (isObject(bi)) {
    if (typeof bi["version"] !== "string") throw new Error("probe: buildinfo.version missing");
    buildinfo = { version: bi["version"] };
  }
  const snapshotBlocks = parseBlockList(x["snapshotBlocks"] ?? [], "snapshotBlocks");
  // A snapshot whose maker the probe did not say (an older probe.sh) is nobody's we know.
  const so = x["snapshotOwner"] ?? (snapshotBlocks.length > 0 ? "other" : "none");
  if (typeof so !== "string" || !SNAPSHOT_OWNERS.includes(so))
    throw new Error(
      `probe: snapshotOwner must be one of ${SNAPSHOT_OWNERS.join("|")}, got ${JSON.stringify(so)}`,
    );
  const snapshotOwner = so as SnapshotOwner;
  let flags: ProbeResult["flags"] = null;
  const fl = x["flags"];
  if (isObject(fl)) {
    flags = {};
    for (const [k, v] of Object.entries(fl)) flags[k] = String(v);
  }
  const result: ProbeResult = {
    blocks: parseBlockList(x["blocks"], "blocks"),
    snapshotBlocks,
    snapshotOwner,
    buildinfo,
    flags,
    tsdb: parseHead(x["tsdb"]),
    dfAvailableBytes: num(x, "dfAvailableBytes", "probe"),
    nowMs: num(x, "nowMs", "probe"),
  };
  if (typeof x["dataDir"] === "string") result.dataDir = x["dataDir"];
  if (typeof x["apiUrl"] === "string") result.apiUrl = x["apiUrl"];
  const errors = x["apiErrors"];
  if (errors !== undefined) {
    if (!isObject(errors)) throw new Error("probe: apiErrors must be an object");
    result.apiErrors = {};
    for (const [k, v] of Object.entries(errors)) result.apiErrors[k] = String(v);
  }
  const server = x["server"];
  if (server === null) result.server = null;
  else if (server !== undefined) {
    if (!isObject(server)) throw new Error("probe: server must be an object or null");
    result.server = {
      blocksLoaded: num(server, "blocksLoaded", "probe server"),
      headSeries: num(server, "headSeries", "probe server"),
    };
  }
  return result;
}

// ---- The steps' results ----
// Each step's script prints one JSON object. A step reads it with `stepObject`, and every
// check that fails throws a StepError that names the step: "<step>: <what><advice>".

/** Throws a StepError naming the step; `advice` (e.g. " (run `pulumi up` again…)") ends it. */
export type Fail = (what: string) => never;

/** A `Fail` for one step. */
export function failNaming(step: string, advice = ""): Fail {
  return (what) => {
    throw new StepError(step, `${what}${advice}`);
  };
}

/** A finite number >= 0, else `fail("<what> must be a number >= 0, got <v>")`. */
export function numberAtLeast0(v: unknown, what: string, fail: Fail): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    fail(`${what} must be a number >= 0, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Typed reads of one step's JSON object; each fails naming the key. */
export interface StepObject {
  /** The raw value. */
  get(key: string): unknown;
  /** A finite number >= 0. */
  atLeast0(key: string): number;
  /** A ms timestamp: a safe integer > 0. */
  msTimestamp(key: string): number;
  /** true or false. */
  boolean(key: string): boolean;
  /** A list of meta.json objects (parseBlockList). */
  blocks(key: string): BlockMeta[];
}

/**
 * The step's last stdout line as a JSON object with the `keys` it must have (named when it
 * is something else), and reads that check each value. Every failure goes to `fail`.
 */
export function stepObject(stdout: string, keys: string[], fail: Fail): StepObject {
  let x: unknown;
  try {
    x = parseLastJsonLine(stdout);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (!isObject(x)) return fail(`expected {${keys.join(", ")}}`);
  const o = x;
  return {
    get: (key) => o[key],
    atLeast0: (key) => numberAtLeast0(o[key], key, fail),
    msTimestamp: (key) => {
      const v = o[key];
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0)
        fail(`${key} must be a ms timestamp, got ${JSON.stringify(v)}`);
      return v as number;
    },
    boolean: (key) => {
      const v = o[key];
      if (typeof v !== "boolean") fail(`${key} must be true or false, got ${JSON.stringify(v)}`);
      return v as boolean;
    },
    blocks: (key) => {
      try {
        return parseBlockList(o[key], key);
      } catch (e) {
        return fail((e as Error).message);
      }
    },
  };
}

/**
 * The script must account for every block asked for, each in one of its two counts:
 * "the script reports <n> blocks <done>, <askedBy> <m>" otherwise.
 */
function addsUp(
  asked: number,
  a: number,
  b: number,
  done: string,
  askedBy: string,
  fail: Fail,
): void {
  if (a + b !== asked) fail(`the script reports ${a + b} blocks ${done}, ${askedBy} ${asked}`);
}

/** What components/sidecar/wait-compaction.sh prints. */
export interface WaitResult {
  waitedSeconds: number;
  newestMaxTime: number;
}

/** Parse and validate wait-compaction.sh output; an error names the step. */
export function parseWait(stdout: string): WaitResult {
  const o = stepObject(stdout, ["waitedSeconds", "newestMaxTime"], failNaming("compaction-wait"));
  return { waitedSeconds: o.atLeast0("waitedSeconds"), newestMaxTime: o.atLeast0("newestMaxTime") };
}

/**
 * What components/sidecar/snapshot.sh prints: a summary. Kept in the Pulumi state (a
 * Command's stdout), so it does not list the blocks; those are read with snapshot-blocks.sh.
 */
export interface SnapshotResult {
  snapshot: string;
  /** How many blocks the snapshot holds. */
  blockCount: number;
  /** Their apparent size, every file of every block. */
  bytes: number;
  createdMs: number;
  reused: boolean;
}

/**
 * Parse and validate snapshot.sh output: output that does not parse, or a snapshot other than
 * the one asked for, is an error naming the step.
 */
export function parseSnapshot(stdout: string, expected: string): SnapshotResult {
  const fail = failNaming(
    "source-snapshot",
    " (run `pulumi up` again; if it persists, the source sidecar's snapshot.sh and this " +
      "program differ)",
  );
  const o = stepObject(stdout, ["snapshot", "blockCount", "bytes", "createdMs", "reused"], fail);
  if (o.get("snapshot") !== expected)
    fail(`the script reported snapshot ${JSON.stringify(o.get("snapshot"))}, not "${expected}"`);
  return {
    snapshot: expected,
    blockCount: o.atLeast0("blockCount"),
    bytes: o.atLeast0("bytes"),
    createdMs: o.msTimestamp("createdMs"),
    reused: o.boolean("reused"),
  };
}

/**
 * Parse snapshot-blocks.sh output and check it against the snapshot step's summary: the
 * snapshot must be this migration's (owner "ours") and hold exactly the blocks and bytes the
 * step reported. Anything else is an error naming the step and what differs.
 */
export function parseSnapshotBlocks(stdout: string, made: SnapshotResult): BlockMeta[] {
  const fail = failNaming(
    "source-snapshot",
    " (the snapshot changed after it was made: nothing but this program should write to it. " +
      "Run the revert (remove the phase, pulumi up) and migrate again)",
  );
  const o = stepObject(stdout, ["blocks", "owner"], fail);
  const dir = `snapshots/${made.snapshot}`;
  if (o.get("owner") !== "ours")
    fail(`${dir} is no longer this migration's (owner ${JSON.stringify(o.get("owner"))})`);
  const blocks = o.blocks("blocks");
  const bytes = blocks.reduce((s, b) => s + (b.sizeBytes ?? 0), 0);
  if (blocks.length !== made.blockCount || bytes !== made.bytes)
    fail(
      `${dir} holds ${blocks.length} blocks of ${bytes} bytes; the snapshot step made ` +
        `${made.blockCount} blocks of ${made.bytes} bytes`,
    );
  return blocks;
}

/**
 * What components/sidecar/copy.sh prints: counts, not lists (a Command's stdout is kept in the
 * Pulumi state; the blocks are the ones its command line names).
 */
export interface CopyResult {
  /** Blocks fetched in this run. */
  copied: number;
  /** Blocks already staged or installed by an earlier run. */
  skipped: number;
  bytesCopied: number;
  bytesReceived?: number;
  /** The rsync streams the copy ended with (copyStreams auto chooses); 0: nothing to copy. */
  streams?: number;
  bytesTotal: number;
}

/**
 * Parse and validate copy.sh output: byte counts, and every block asked for either copied or
 * skipped (the script fails otherwise, so a count that does not add up is a script that
 * differs from this program). Anything else is an error naming the step.
 */
export function parseCopy(stdout: string, asked: string[]): CopyResult {
  const fail = failNaming(
    "block-copy",
    " (run `pulumi up` again: finished blocks are not copied twice)",
  );
  const o = stepObject(stdout, ["copied", "skipped", "bytesCopied", "bytesTotal"], fail);
  const r: CopyResult = {
    copied: o.atLeast0("copied"),
    skipped: o.atLeast0("skipped"),
    bytesCopied: o.atLeast0("bytesCopied"),
    bytesTotal: o.atLeast0("bytesTotal"),
  };
  addsUp(asked.length, r.copied, r.skipped, "copied or skipped", "the plan has", fail);
  if (o.get("bytesReceived") !== undefined) r.bytesReceived = o.atLeast0("bytesReceived");
  if (o.get("streams") !== undefined) r.streams = o.atLeast0("streams");
  return r;
}

/** What components/sidecar/install.sh prints: counts, as copy.sh. */
export interface InstallResult {
  installed: number;
  /** Already in the target: under their own name, or by lineage (`presentByLineage`). */
  alreadyPresent: number;
  /**
   * Of `alreadyPresent`, the blocks whose data the target already holds in a block it
   * compacted (their ULID or all their sources in its compaction.sources): not installed, as
   * they would overlap it. Absent from an older install.sh.
   */
  presentByLineage?: number;
  /** At most a few of those, each with the target block that holds its data. */
  lineage?: { block: string; heldBy: string }[];
}

/**
 * Parse and validate install.sh output: every block asked for installed now or already
 * present. Anything else is an error naming the step.
 */
export function parseInstall(stdout: string, asked: string[]): InstallResult {
  const fail = failNaming("block-install", " (run `pulumi up` again: installed blocks stay)");
  const o = stepObject(stdout, ["installed", "alreadyPresent"], fail);
  const r: InstallResult = {
    installed: o.atLeast0("installed"),
    alreadyPresent: o.atLeast0("alreadyPresent"),
  };
  addsUp(asked.length, r.installed, r.alreadyPresent, "installed or present", "asked for", fail);
  if (o.get("presentByLineage") === undefined) return r;
  const byLineage = o.atLeast0("presentByLineage");
  if (byLineage > r.alreadyPresent)
    fail(`presentByLineage ${byLineage} is more than alreadyPresent ${r.alreadyPresent}`);
  const list = o.get("lineage") ?? [];
  if (!Array.isArray(list)) return fail(`lineage must be a list, got ${JSON.stringify(list)}`);
  r.presentByLineage = byLineage;
  r.lineage = list.map((e: unknown) => {
    const ok =
      isObject(e) &&
      typeof e["block"] === "string" &&
      ULID_RE.test(e["block"]) &&
      asked.includes(e["block"]) &&
      typeof e["heldBy"] === "string" &&
      ULID_RE.test(e["heldBy"]);
    if (!ok)
      return fail(`lineage: expected {block, heldBy} of asked block IDs, got ${JSON.stringify(e)}`);
    return { block: e["block"] as string, heldBy: e["heldBy"] as string };
  });
  if (r.lineage.length > byLineage)
    fail(`lineage names ${r.lineage.length} blocks, presentByLineage is ${byLineage}`);
  return r;
}
