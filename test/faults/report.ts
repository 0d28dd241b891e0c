// Renders one run's fault rows (faults.ts recordRow, a JSON list) as the table of
// docs/reliability.md, headed by the run's date and commit.
//
//   npx ts-node --transpile-only test/faults/report.ts RESULTS.json

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { FaultRow } from "./faults";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function reliabilityTable(rows: FaultRow[], commit: string, date: string): string {
  const head = [
    `From one run of \`npm run test:faults\` on ${date}, commit ${commit}.`,
    "",
    "| fault | when | outcome | samples lost | recovered | time to detect | test |",
    "|---|---|---|---|---|---|---|",
  ];
  const body = rows.map(
    (r) =>
      `| ${cell(r.fault)} | ${cell(r.when)} | ${cell(r.outcome)} | ${cell(r.samplesLost)} | ${cell(r.recovered)} | ${r.detectSeconds === undefined ? "-" : `${r.detectSeconds} s`} | ${cell(r.test)} |`,
  );
  return [...head, ...body, ""].join("\n");
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file || !fs.existsSync(file)) {
    process.stderr.write("usage: report.ts RESULTS.json (written by npm run test:faults)\n");
    process.exit(2);
  }
  const rows = JSON.parse(fs.readFileSync(file, "utf8")) as FaultRow[];
  const commit =
    process.env.PTM_FAULTS_COMMIT ||
    execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  process.stdout.write(reliabilityTable(rows, commit, new Date().toISOString().slice(0, 10)));
}
