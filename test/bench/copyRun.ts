// What one copy.sh run of the scale benchmark's copy comparison said (test/bench/scale.ts):
// its counts, the streams it ended with (PTM_STREAMS=auto), or that it does not take the
// PTM_STREAMS value at all (a copy.sh from before `auto`). Pure: it reads the run's output.

import { CopyResult, parseLastJsonLine } from "../../components/decisions/sidecarOutput";

export type CopyRunOutcome =
  | {
      kind: "ok";
      counts: Required<Omit<CopyResult, "streams">>;
      /** The `"streams":N` field of the JSON line: the streams the copy ended with. */
      streams?: number;
      /** The last stderr line starting `copy: streams:` (how auto chose), if any. */
      streamsLine?: string;
    }
  /** copy.sh refused the PTM_STREAMS value before copying anything. */
  | { kind: "rejected"; note: string; message: string }
  | { kind: "failed"; message: string };

/** The stderr lines of copy.sh's `die`. */
const errors = (stderr: string): string[] =>
  stderr.split("\n").filter((l) => l.startsWith("copy: ERROR:"));

export function readCopyRun(
  res: { code: number | null; stdout: string; stderr: string },
  streamsValue: string,
): CopyRunOutcome {
  if (res.code !== 0) {
    const refused = errors(res.stderr).find(
      (l) => l.includes("PTM_STREAMS") && l.includes(`"${streamsValue}"`),
    );
    if (refused !== undefined)
      return {
        kind: "rejected",
        note: `not available (copy.sh rejected PTM_STREAMS=${streamsValue})`,
        message: refused,
      };
    return {
      kind: "failed",
      message: `copy.sh with PTM_STREAMS=${streamsValue} exited ${res.code}: ${res.stderr.trim().split("\n").slice(-5).join(" / ")}`,
    };
  }
  let json: Record<string, unknown>;
  try {
    json = parseLastJsonLine(res.stdout) as Record<string, unknown>;
  } catch (e) {
    return { kind: "failed", message: `copy.sh with PTM_STREAMS=${streamsValue}: ${String(e)}` };
  }
  const n = (k: string): number => (typeof json[k] === "number" ? (json[k] as number) : NaN);
  const counts = {
    copied: n("copied"),
    skipped: n("skipped"),
    bytesCopied: n("bytesCopied"),
    bytesReceived: n("bytesReceived"),
    bytesTotal: n("bytesTotal"),
  };
  const bad = Object.entries(counts).find(([, v]) => !Number.isFinite(v));
  if (bad)
    return {
      kind: "failed",
      message: `copy.sh with PTM_STREAMS=${streamsValue}: no "${bad[0]}" count in ${JSON.stringify(json).slice(0, 200)}`,
    };
  const streams = json["streams"];
  const line = res.stderr
    .split("\n")
    .filter((l) => l.startsWith("copy: streams:"))
    .pop();
  return {
    kind: "ok",
    counts,
    ...(typeof streams === "number" && Number.isInteger(streams) && streams >= 1
      ? { streams }
      : {}),
    ...(line !== undefined ? { streamsLine: line.trim() } : {}),
  };
}
