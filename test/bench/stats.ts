// The statistics of the scale benchmark's copy comparison (test/bench/scale.ts): rounds of
// interleaved runs, each method's median with its spread, the orderings that flip between
// rounds and the verdict on copy.sh's auto streams against plain rsync. Pure: no I/O, no clock.
// Times are in milliseconds; lower is faster.

/** A report written into BENCHMARKS.md needs at least this many rounds. */
export const MIN_REPORT_ROUNDS = 3;
export const DEFAULT_ROUNDS = 3;

/**
 * PTM_BENCH_ROUNDS: a whole number >= 1 (default 3). Fewer than MIN_REPORT_ROUNDS is a smoke
 * run: its report is not written into BENCHMARKS.md.
 */
export function parseRounds(raw: string | undefined): { rounds: number; smoke: boolean } {
  const s = (raw ?? "").trim();
  const rounds = s === "" ? DEFAULT_ROUNDS : Number(s);
  if (!/^\d*$/.test(s) || !Number.isInteger(rounds) || rounds < 1)
    throw new Error(`PTM_BENCH_ROUNDS must be a whole number of rounds, 1 or more (got "${raw}")`);
  return { rounds, smoke: rounds < MIN_REPORT_ROUNDS };
}

/**
 * The methods in the order of round `round` (1-based). Round k steps through the methods k
 * at a time (the k-th step that reaches them all: one coprime with their number), so a
 * method follows a different one in each round: with 7 methods, auto follows 4 streams, then
 * 2, then 1. It starts 2(k-1) methods on, so the first and the last places move too (a start
 * of k-1 with a step of k left the last method last in every round). (A rotation kept the
 * cyclic order: auto always right after 4 streams, whose 14 GiB were deleted just before.)
 */
export function roundOrder<T>(methods: readonly T[], round: number): T[] {
  if (!Number.isInteger(round) || round < 1) throw new Error(`round must be 1 or more: ${round}`);
  const n = methods.length;
  if (n === 0) return [];
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const steps = Array.from({ length: Math.max(n - 1, 1) }, (_, i) => i + 1).filter(
    (s) => gcd(s, n) === 1,
  );
  const step = steps[(round - 1) % steps.length]!;
  const start = (2 * (round - 1)) % n;
  return methods.map((_, i) => methods[(start + i * step) % n]!);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of no values");
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** (max - min) / 2: how far the runs lie from the middle of their range. */
  halfRange: number;
  /** Each run's value, in round order. */
  values: number[];
}

export function spread(values: readonly number[]): Spread {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: median(values), min, max, halfRange: (max - min) / 2, values: [...values] };
}

/** Seconds as the report prints them: 2 decimals under 10 s, 1 above. */
export const fmtS = (ms: number): string => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);

/** "round 2", "rounds 1 and 3", "rounds 1, 2 and 4". */
export function roundList(rounds: readonly number[]): string {
  if (rounds.length === 0) return "no round";
  if (rounds.length === 1) return `round ${rounds[0]}`;
  return `rounds ${rounds.slice(0, -1).join(", ")} and ${rounds[rounds.length - 1]}`;
}

/** Where a was faster, slower or as fast as b, by round (1-based). */
export interface Ordering {
  faster: number[];
  slower: number[];
  equal: number[];
  /** The order changed between rounds: a was faster in one and not in another, or slower. */
  flips: boolean;
}

/** a[i] and b[i] are the two methods' times in round i + 1. */
export function ordering(a: readonly number[], b: readonly number[]): Ordering {
  if (a.length !== b.length)
    throw new Error(`rounds differ: ${a.length} against ${b.length} (compare the same rounds)`);
  const o: Ordering = { faster: [], slower: [], equal: [], flips: false };
  a.forEach((x, i) => (x < b[i]! ? o.faster : x > b[i]! ? o.slower : o.equal).push(i + 1));
  const kinds = [o.faster, o.slower, o.equal].filter((r) => r.length > 0).length;
  o.flips = kinds > 1;
  return o;
}

/**
 * What the report says about two methods' order, e.g. "copy.sh, 2 streams was faster than
 * plain rsync in rounds 1 and 3, slower in round 2", or "... slower than ... in all 3 rounds".
 */
export function orderingSentence(a: string, b: string, o: Ordering): string {
  const n = o.faster.length + o.slower.length + o.equal.length;
  const all = n === 1 ? "in the only round" : n === 2 ? "in both rounds" : `in all ${n} rounds`;
  if (!o.flips) {
    const how =
      o.faster.length > 0 ? "faster than" : o.slower.length > 0 ? "slower than" : "as fast as";
    return `${a} was ${how} ${b} ${all}`;
  }
  const parts = [
    { rounds: o.faster, word: "faster", than: "than" },
    { rounds: o.slower, word: "slower", than: "than" },
    { rounds: o.equal, word: "as fast", than: "as" },
  ].filter((p) => p.rounds.length > 0);
  return `${a} was ${parts
    .map((p, i) => `${p.word}${i === 0 ? ` ${p.than} ${b}` : ""} in ${roundList(p.rounds)}`)
    .join(", ")}`;
}

/** Every pair of the methods (in the given order) whose order flips between rounds. */
export function flippedPairs(
  runs: readonly { name: string; values: readonly number[] }[],
): { a: string; b: string; ordering: Ordering }[] {
  const out: { a: string; b: string; ordering: Ordering }[] = [];
  runs.forEach((x, i) =>
    runs.slice(i + 1).forEach((y) => {
      const o = ordering(x.values, y.values);
      if (o.flips) out.push({ a: x.name, b: y.name, ordering: o });
    }),
  );
  return out;
}

export interface Verdict {
  /**
   * true: the auto copy's median is no slower than plain rsync's beyond the spread; false: it
   * is slower; undefined: no verdict (auto not measured, or fewer rounds than a report needs).
   */
  held: boolean | undefined;
  text: string;
  auto?: Spread;
  rsync?: Spread;
  /** The larger half-range of the two. */
  allowanceMs?: number;
  /** rsync's median + the allowance: the auto copy's median must not exceed it. */
  boundMs?: number;
}

/**
 * Is copy.sh with PTM_STREAMS=auto no slower than plain rsync beyond the spread? Holds when
 * median(auto) <= median(rsync) + max(half-range(auto), half-range(rsync)), over the same
 * rounds. `unavailable` says why auto has no runs.
 */
export function autoVerdict(o: {
  auto: readonly number[] | undefined;
  rsync: readonly number[];
  unavailable?: string;
  minRounds?: number;
}): Verdict {
  const minRounds = o.minRounds ?? MIN_REPORT_ROUNDS;
  if (o.auto === undefined || o.auto.length === 0)
    return {
      held: undefined,
      text: `no verdict: copy.sh with PTM_STREAMS=auto was ${o.unavailable ?? "not measured"}, so there is nothing to compare with plain rsync -a`,
    };
  if (o.auto.length !== o.rsync.length)
    throw new Error(`rounds differ: auto ${o.auto.length}, rsync ${o.rsync.length}`);
  const auto = spread(o.auto);
  const rsync = spread(o.rsync);
  const allowanceMs = Math.max(auto.halfRange, rsync.halfRange);
  const boundMs = rsync.median + allowanceMs;
  const ok = auto.median <= boundMs;
  const n = o.auto.length;
  const compared = `median of copy.sh with PTM_STREAMS=auto ${fmtS(auto.median)} s ${ok ? "<=" : ">"} median of plain rsync -a ${fmtS(rsync.median)} s + ${fmtS(allowanceMs)} s (the larger half-range of the two: auto ${fmtS(auto.halfRange)} s, plain rsync ${fmtS(rsync.halfRange)} s) = ${fmtS(boundMs)} s, over the same ${n === 1 ? "round" : `${n} rounds`}`;
  if (n < minRounds)
    return {
      held: undefined,
      text: `no verdict (${n === 1 ? "1 round" : `${n} rounds`}, fewer than ${minRounds}): ${compared}`,
      auto,
      rsync,
      allowanceMs,
      boundMs,
    };
  return {
    held: ok,
    text: `${ok ? "yes, no slower than plain rsync -a beyond the spread" : "no, slower than plain rsync -a beyond the spread"}: ${compared}`,
    auto,
    rsync,
    allowanceMs,
    boundMs,
  };
}

/** `base / x`: how many times base's time x is, as a throughput ratio (> 1: x is faster). */
export const ratio = (baseMs: number, ms: number): number => baseMs / ms;
