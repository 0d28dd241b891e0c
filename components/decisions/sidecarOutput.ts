// Parsing of what the sidecar scripts print: progress on stderr, and the result as one JSON
// object on the last stdout line, holding Prometheus meta.json objects and API answers.
// Every value is checked here, because a wrong number (a block's time range, a version)
// silently turns into a wrong plan later. Rules about what the values mean live in tsdb.ts.

/** A block's meta.json as Prometheus writes it, plus the size our probe adds. */
export interface BlockMeta {
  ulid: string;
  /** First sample, ms (inclusive). */
  minTime: number;
  /** End of the range, ms (exclusive: a block covers [minTime, maxTime)). */
  maxTime: number;
  stats?: { numSamples?: number; numSeries?: number; numChunks?: number };
  compaction: {
    level: number;
    /** Level-1 blocks this block was made from (a level-1 block lists itself). */
    sources?: string[];
    /** Blocks directly merged into this one. */
    parents?: { ulid: string; minTime: number; maxTime: number }[];
  };
  /** Apparent size of all files of the block, added by probe.sh/snapshot.sh. */
  sizeBytes?: number;
}

/** /api/v1/status/tsdb data.headStats (the in-memory head). */
export interface HeadStats {
  numSeries?: number;
  chunkCount?: number;
  minTime: number;
  maxTime: number;
}

/** What components/sidecar/probe.sh prints. */
export interface ProbeResult {
  blocks: BlockMeta[];
  snapshotBlocks: BlockMeta[];
  /** /api/v1/status/buildinfo data, null when Prometheus was unreachable. */
  buildinfo: { version: string } | null;
  /** /api/v1/status/flags data (flag name without dashes -> value). */
  flags: Record<string, string> | null;
  tsdb: HeadStats | null;
  dfAvailableBytes: number;
  nowMs: number;
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

/** The last JSON line of a step's stdout, with the step named when it isn't there. */
export function lastJsonLine<T>(stdout: string, step: string): T {
  try {
    return parseLastJsonLine(stdout) as T;
  } catch (e) {
    throw new Error(`${step}: ${(e as Error).message}`);
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
  }
  const size = optNum(x, "sizeBytes", at);
  if (size !== undefined) meta.sizeBytes = size;
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
  let flags: ProbeResult["flags"] = null;
  const fl = x["flags"];
  if (isObject(fl)) {
    flags = {};
    for (const [k, v] of Object.entries(fl)) flags[k] = String(v);
  }
  return {
    blocks: parseBlockList(x["blocks"], "blocks"),
    snapshotBlocks: parseBlockList(x["snapshotBlocks"] ?? [], "snapshotBlocks"),
    buildinfo,
    flags,
    tsdb: parseHead(x["tsdb"]),
    dfAvailableBytes: num(x, "dfAvailableBytes", "probe"),
    nowMs: num(x, "nowMs", "probe"),
  };
}
