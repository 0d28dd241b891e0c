// The version gate: can the target's Prometheus read the blocks we would copy? A block it
// can't open fails the target's whole reload (every block, not just the new one), and at
// start-up Prometheus refuses to open the TSDB. So this is checked at preview, from the
// formats written in the blocks themselves, not from version numbers alone. Pure.
//
// What each Prometheus reads (prometheus/prometheus, read in the module sources of v0.42.0,
// v0.55.1, v0.313.5 and the 2.26.0 pseudo-version):
// - meta.json "version": every 2.x and 3.x release knows only 1 (tsdb/block.go metaVersion1;
//   anything else fails readMetaFile).
// - index format (first bytes of the index file: magic 0xBAAAD700, then the format version;
//   tsdb/index/index.go): 1 and 2 are read by every 2.x; 3 only by 2.55 and later ("a
//   Prometheus v3 TSDB can only be read by a Prometheus v2.55 or newer": docs/migration.md).
//   2.26 to 3.16 all write 2.
// - chunk encodings: XOR (floats) everywhere; native histogram chunks (EncHistogram,
//   EncFloatHistogram) from 2.40.0 on (2.26's chunkenc knows only XOR); histograms with
//   custom buckets (NHCB, written by 3.x) are decoded by 2.55 (its chunkenc reads the custom
//   values; 2.42's does not), so histograms written by 3.x go to 2.55 or later only.
//   The experimental encodings that store start timestamps, XOR2 (`xor2-encoding`, 3.11.0)
//   and EncHistogramST/EncFloatHistogramST (`histograms-st-encoding`, 3.14.0; both switched
//   on by `st-storage`, 3.15.0), are written only under those feature flags, read only by
//   releases that have them, and "can change in any Prometheus version"
//   (docs/feature_flags.md): such blocks go only to the source's own release.
// Which chunk encodings a block holds is not in meta.json except as counts: 3.x (and late
// 2.x) write stats.numFloatSamples/numHistogramSamples; older writers only numSamples. What
// the counts don't say is taken from the source: a release before 2.40 never wrote histograms,
// a 2.40-2.x without --enable-feature=native-histograms does not ingest them.

import { parseVersion } from "./plan";
import type { BlockMeta } from "./sidecarOutput";

type Version = { major: number; minor: number; patch: number };

const atLeast = (v: Version, major: number, minor: number, patch = 0): boolean =>
  v.major !== major ? v.major > major : v.minor !== minor ? v.minor > minor : v.patch >= patch;

/** The first release that reads index format 3 (docs/migration.md "TSDB format and downgrade"). */
export const INDEX_V3_READERS_FROM = "2.55.0";
/** The first release with native histogram chunk encodings (CHANGELOG 2.40.0). */
export const HISTOGRAM_READERS_FROM = "2.40.0";
/** The first release seen to decode custom-bucket histogram chunks (v0.55.1 chunkenc). */
export const NHCB_READERS_FROM = "2.55.0";
/**
 * Feature flags under which the source writes experimental chunk encodings (XOR2, histogram
 * chunks with start timestamps): CHANGELOG 3.11.0, 3.14.0, 3.15.0.
 */
export const EXPERIMENTAL_CHUNK_FEATURES = [
  "xor2-encoding",
  "histograms-st-encoding",
  "st-storage",
];

/** Where the blocks come from: the source server's version and flags (its probe). */
export interface BlockWriter {
  version?: string | undefined;
  flags?: Record<string, string> | null | undefined;
}

export type Presence = "yes" | "no" | "unknown";

/** Whether a block holds native histogram samples, and how we know. */
export function histogramsIn(b: BlockMeta, writer: BlockWriter): { has: Presence; why: string } {
  const s = b.stats ?? {};
  if ((s.numHistogramSamples ?? 0) > 0) {
    return { has: "yes", why: `meta.json: ${s.numHistogramSamples} histogram samples` };
  }
  if (s.numFloatSamples !== undefined && s.numSamples !== undefined) {
    return s.numFloatSamples < s.numSamples
      ? { has: "yes", why: `meta.json: ${s.numSamples - s.numFloatSamples} non-float samples` }
      : { has: "no", why: "meta.json: float samples only" };
  }
  if (s.numSamples === 0) return { has: "no", why: "meta.json: no samples" };
  // Older writers omit the split: what could the source have written?
  const v = writer.version === undefined ? undefined : safeVersion(writer.version);
  if (v === undefined)
    return {
      has: "unknown",
      why: "meta.json has no float/histogram split and the source's version is unknown",
    };
  if (!atLeast(v, 2, 40))
    return { has: "no", why: `written by ${writer.version} (no native histograms before 2.40)` };
  const features = featuresOf(writer);
  if (v.major === 2 && features === undefined) {
    return {
      has: "unknown",
      why: `source ${writer.version}'s flags could not be read: whether it runs with --enable-feature=native-histograms is unknown`,
    };
  }
  if (v.major === 2 && !features!.includes("native-histograms")) {
    return {
      has: "no",
      why: `source ${writer.version} runs without --enable-feature=native-histograms`,
    };
  }
  return { has: "unknown", why: "meta.json has no float/histogram split" };
}

function safeVersion(s: string): Version | undefined {
  try {
    return parseVersion(s);
  } catch {
    return undefined;
  }
}

/**
 * The source's --enable-feature list; undefined when its flags could not be read (null: the
 * probe and discovery both failed; undefined: nobody said), which is never "none".
 */
function featuresOf(writer: BlockWriter): string[] | undefined {
  if (!writer.flags) return undefined;
  return (writer.flags["enable-feature"] ?? "").split(",").map((f) => f.trim());
}

/** The first release with an experimental chunk encoding (xor2-encoding, CHANGELOG 3.11.0). */
const EXPERIMENTAL_CHUNKS_FROM = "3.11.0";

/**
 * The experimental chunk-encoding features the source runs with (EXPERIMENTAL_CHUNK_FEATURES),
 * or undefined when its flags are unknown and its release could write them.
 */
function experimentalChunks(writer: BlockWriter): string[] | undefined {
  const features = featuresOf(writer);
  if (features !== undefined)
    return EXPERIMENTAL_CHUNK_FEATURES.filter((f) => features.includes(f));
  // A writer of unknown version is judged by the other rules (planInput always knows it).
  const w = writer.version === undefined ? undefined : safeVersion(writer.version);
  return w !== undefined && atLeast(w, 3, 11) ? undefined : [];
}

/** Why the target can't read this block, or undefined when it can. */
export function unreadableBecause(
  b: BlockMeta,
  target: string,
  writer: BlockWriter,
): string | undefined {
  const t = safeVersion(target);
  if (t === undefined) {
    return `the target's version is unknown (${JSON.stringify(target)}): can't tell whether it reads the block`;
  }
  if (b.version === undefined) return "meta.json has no version";
  if (b.version !== 1)
    return `meta.json version ${b.version}: Prometheus ${target} reads only version 1`;
  if (b.indexFormat === undefined || b.indexFormat === null) {
    return "its index format could not be read (index file missing, or not a Prometheus index)";
  }
  if (b.indexFormat === 3 && !atLeast(t, 2, 55)) {
    return `index format 3 is read only by ${INDEX_V3_READERS_FROM} and later`;
  }
  if (b.indexFormat !== 1 && b.indexFormat !== 2 && b.indexFormat !== 3) {
    return `unknown index format ${b.indexFormat}`;
  }
  const h = histogramsIn(b, writer);
  if (h.has !== "no" && !atLeast(t, 2, 40)) {
    return h.has === "yes"
      ? `it holds native histograms (${h.why}), read only by ${HISTOGRAM_READERS_FROM} and later`
      : `it may hold native histograms (${h.why}), which ${target} can't read`;
  }
  const w = writer.version === undefined ? undefined : safeVersion(writer.version);
  if (h.has !== "no" && !atLeast(t, 2, 55) && (w === undefined || w.major >= 3)) {
    return (
      `it ${h.has === "yes" ? "holds" : "may hold"} native histograms written by ` +
      `${writer.version ?? "an unknown version"}, possibly with custom buckets (NHCB), decoded only by ${NHCB_READERS_FROM} and later`
    );
  }
  const experimental = experimentalChunks(writer);
  const sameRelease = atLeast(t, 3, 11) && writer.version === target;
  if (experimental === undefined && !sameRelease) {
    return (
      `the source's flags could not be read (its flags API, and its container spec): a ` +
      `${writer.version} from ${EXPERIMENTAL_CHUNKS_FROM} on may write experimental chunk ` +
      `encodings (--enable-feature=${EXPERIMENTAL_CHUNK_FEATURES.join("|")}) that only the same ` +
      `release reads. Make /api/v1/status/flags answer from inside the source pod, or give the ` +
      `flags in the container's args`
    );
  }
  if (experimental !== undefined && experimental.length > 0 && !sameRelease) {
    return (
      `the source writes experimental chunk encodings (--enable-feature=${experimental.join(",")}; ` +
      `they may change in any version), read only by the same release (${writer.version ?? "unknown"})`
    );
  }
  return undefined;
}

export interface FormatCheck {
  ok: boolean;
  refused: { ulid: string; reason: string }[];
  /** One line for the user: empty when ok. */
  message: string;
}

/**
 * The gate: every block must be readable by the target. Refused blocks are not skipped
 * silently (the history would have a hole): the whole copy is refused with the reasons.
 * Downgrades are fine where the formats allow them (e.g. 3.x float-only blocks, index
 * format 2, into 2.55 or even 2.42).
 */
export function checkBlockFormats(
  blocks: BlockMeta[],
  targetVersion: string,
  writer: BlockWriter,
): FormatCheck {
  const refused: { ulid: string; reason: string }[] = [];
  for (const b of blocks) {
    const reason = unreadableBecause(b, targetVersion, writer);
    if (reason !== undefined) refused.push({ ulid: b.ulid, reason });
  }
  if (refused.length === 0) return { ok: true, refused, message: "" };
  const first = refused[0]!;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more block(s))` : "";
  return {
    ok: false,
    refused,
    message:
      `the target (Prometheus ${targetVersion || "of unknown version"}) can't read ` +
      `${refused.length} of the ${blocks.length} block(s) to copy: block ${first.ulid}: ` +
      `${first.reason}${more}. A block it can't open fails its whole reload. Upgrade the ` +
      `target (a 3.x TSDB needs 2.55 or later) or migrate into a release that reads these formats`,
  };
}
