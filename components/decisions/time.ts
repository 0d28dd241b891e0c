// Time units and how a time is shown to the user: one home for both.

export const HOUR_MS = 3_600_000;

/** A time in ms since the epoch, as the user reads it (UTC, ISO 8601). */
export const iso = (ms: number): string => new Date(ms).toISOString();
