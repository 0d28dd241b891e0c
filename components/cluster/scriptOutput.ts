// Sidecar scripts print progress on stderr and their result as one JSON object on the last
// line of stdout. This reads that line, naming the step when it isn't there.

import { parseLastJsonLine } from "../decisions/sidecarOutput";

export function lastJsonLine<T>(stdout: string, step: string): T {
  try {
    return parseLastJsonLine(stdout) as T;
  } catch (e) {
    throw new Error(`${step}: ${(e as Error).message}`);
  }
}
