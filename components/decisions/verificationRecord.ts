// The verification's frozen record: what the plan said and what the source counted, taken
// once, at the install, and kept in the state. Later `pulumi up`s verify the target against
// it instead of against the live servers, whose truth moves on: the target compacts the
// imported blocks together with its own (so "its own earliest sample" moves back), and the
// source's retention drops its oldest blocks (so its counts shrink). Pure.

import { failNaming, numberAtLeast0, parseLastJsonLine } from "./sidecarOutput";
import { CountsResult, ExpectedBlock, parseCounts } from "./verify";

export interface VerificationRecord {
  /** When the record was taken (ms): right after the install. */
  frozenAtMs: number;
  /** The window ends to compare, oldest first. */
  windowEnds: number[];
  /** The target's own earliest sample before the install; undefined: it had none. */
  targetEarliestMs: number | undefined;
  /** The oldest imported block's minTime: the target must have loaded down to it. */
  loadedDownToMs: number;
  /** The plan's blocks, as the target must hold them (by ID, or by lineage once compacted). */
  blocks: ExpectedBlock[];
  /** The plan's gap (ms). */
  gapMs: number;
  /** The source's counts in those windows, taken at the install. */
  source: CountsResult;
}

/**
 * The record as one JSON text (the ConfigMap's value). Each block is a row
 * `[ulid, numSamples, numSeries, fromPrevious, duration]` (plus its sources when it has others
 * than itself): the record is kept in the state twice (the ConfigMap's inputs and outputs),
 * and at 2,000 blocks objects with key names would take most of the 1 MiB the state may grow
 * to (issue 14). The range is written as two short numbers: `fromPrevious` = minTime minus
 * the previous ranged row's maxTime (0 for contiguous blocks; the first row's is its minTime),
 * `duration` = maxTime - minTime. A block without a range is a row of earlier versions:
 * `[ulid, numSamples, numSeries]` (plus its sources).
 */
export function serializeRecord(r: VerificationRecord): string {
  let previousMax = 0;
  const row = (b: ExpectedBlock) => {
    const ranged = b.minTime !== undefined && b.maxTime !== undefined;
    const range = ranged ? [b.minTime! - previousMax, b.maxTime! - b.minTime!] : [];
    if (ranged) previousMax = b.maxTime!;
    return [
      b.ulid,
      b.numSamples ?? null,
      b.numSeries ?? null,
      ...range,
      ...(b.sources !== undefined && b.sources.length > 0 ? [b.sources] : []),
    ];
  };
  return JSON.stringify({ ...r, blocks: r.blocks.map(row) });
}

const fail = failNaming(
  "verification record",
  " (the record in the state is damaged: run `pulumi up` with phase migrate after deleting " +
    "the verification ConfigMap from the state, so that it is taken again)",
);
const num = (v: unknown, what: string) => numberAtLeast0(v, what, fail);

/** Parses and validates a record; anything missing or of the wrong type names the field. */
export function parseRecord(text: string): VerificationRecord {
  let x: Record<string, unknown>;
  try {
    x = parseLastJsonLine(text) as Record<string, unknown>;
  } catch (e) {
    return fail((e as Error).message);
  }
  if (x === null || typeof x !== "object" || Array.isArray(x)) return fail("not an object");
  if (!Array.isArray(x["windowEnds"])) return fail("windowEnds is not a list");
  if (!Array.isArray(x["blocks"])) return fail("blocks is not a list");
  const te = x["targetEarliestMs"];
  let source: CountsResult;
  try {
    source = parseCounts(JSON.stringify(x["source"] ?? null));
  } catch (e) {
    return fail(`source: ${(e as Error).message}`);
  }
  return {
    frozenAtMs: num(x["frozenAtMs"], "frozenAtMs"),
    windowEnds: (x["windowEnds"] as unknown[]).map((w, i) => num(w, `windowEnds[${i}]`)),
    targetEarliestMs: te === undefined || te === null ? undefined : num(te, "targetEarliestMs"),
    loadedDownToMs: num(x["loadedDownToMs"], "loadedDownToMs"),
    blocks: parseBlocks(x["blocks"] as unknown[]),
    gapMs: num(x["gapMs"], "gapMs"),
    source,
  };
}

/** The rows back into blocks, each range from the previous ranged row's maxTime. */
function parseBlocks(rows: unknown[]): ExpectedBlock[] {
  let previousMax = 0;
  return rows.map((b, i) => {
    const where = `blocks[${i}]`;
    if (!Array.isArray(b) || typeof b[3] !== "number") return parseExpected(b, where);
    // [ulid, numSamples, numSeries, fromPrevious, duration, sources?]
    const [ulid, numSamples, numSeries, from, duration, sources] = b as unknown[];
    if (!Number.isSafeInteger(from))
      return fail(
        `${where}: the range's start must be a whole number, got ${JSON.stringify(from)}`,
      );
    const minTime = previousMax + (from as number);
    const maxTime = minTime + num(duration, `${where}: the range's duration`);
    previousMax = maxTime;
    return {
      ...parseExpected(
        { ulid, numSamples: numSamples ?? undefined, numSeries: numSeries ?? undefined, sources },
        where,
      ),
      minTime: num(minTime, `${where}.minTime`),
      maxTime,
    };
  });
}

function parseExpected(b: unknown, where: string): ExpectedBlock {
  // A row of earlier versions (no range), or an object as the first records held them.
  if (Array.isArray(b)) {
    const [ulid, numSamples, numSeries, sources] = b as unknown[];
    return parseExpected(
      { ulid, numSamples: numSamples ?? undefined, numSeries: numSeries ?? undefined, sources },
      where,
    );
  }
  if (b === null || typeof b !== "object") return fail(`${where} is not a row or an object`);
  const o = b as Record<string, unknown>;
  if (typeof o["ulid"] !== "string" || o["ulid"] === "") return fail(`${where}.ulid is missing`);
  const opt = (k: string) => (o[k] === undefined ? undefined : num(o[k], `${where}.${k}`));
  const sources = o["sources"];
  if (
    sources !== undefined &&
    !(Array.isArray(sources) && sources.every((s) => typeof s === "string"))
  )
    return fail(`${where}.sources is not a list of IDs`);
  return {
    ulid: o["ulid"],
    numSamples: opt("numSamples"),
    numSeries: opt("numSeries"),
    sources: sources as string[] | undefined,
  };
}
