// Sidecar scripts print progress on stderr and their result as one JSON object on the last
// line of stdout. This reads that line.

export function lastJsonLine<T>(stdout: string, step: string): T {
  const lines = stdout.trim().split("\n");
  const last = lines[lines.length - 1] ?? "";
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(
      `${step}: expected a JSON result on the last line of its output, got: ${last.slice(0, 300)}`,
    );
  }
}
