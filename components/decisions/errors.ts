// Errors the user reads: each says what failed and what to do, in one line.

/** A step that could not do its work: which step, what it saw, what to do. */
export class StepError extends Error {
  constructor(
    public readonly step: string,
    message: string,
  ) {
    super(`${step}: ${message}`);
    this.name = "StepError";
  }
}
