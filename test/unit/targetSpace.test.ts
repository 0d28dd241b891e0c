// Issue 21 item 3: the copy must fit on the target's volume, checked at the decision.

import * as assert from "node:assert/strict";
import { copyMarginBytes, decideTargetSpace } from "../../components/decisions/targetSpace";
import { block, line, migratingCluster, targetProbe } from "../fixtures/probes";
import { SOURCE_CONFIG } from "../fixtures/workloads";
import { runProgram } from "./harness";

const MiB = 2 ** 20;
// Blocks of 2 MB each (1 MB per hour in the fixtures).
const planned = [block("01A", 0, 2), block("01B", 2, 4), block("01C", 4, 6)];

describe("target space: the copy fits on the target's volume", () => {
  const cases: [string, Parameters<typeof decideTargetSpace>[1], number, boolean, number][] = [
    ["plenty of space", [], 10e9, true, 6e6],
    ["exactly the blocks and copy.sh's margin", [], 6e6 + copyMarginBytes(6e6), true, 6e6],
    ["a byte short", [], 6e6 + copyMarginBytes(6e6) - 1, false, 6e6],
    [
      "blocks the target holds already are not counted",
      [planned[0], planned[1]],
      2e6 + copyMarginBytes(2e6),
      true,
      2e6,
    ],
    [
      "nor blocks it holds by lineage (imported, then compacted)",
      [block("01M", 0, 4, 2, ["01A", "01B"])],
      2e6 + copyMarginBytes(2e6),
      true,
      2e6,
    ],
    ["nothing to copy: no space needed", planned, 0, true, 0],
  ];
  for (const [what, held, free, ok, need] of cases) {
    it(what, () => {
      const d = decideTargetSpace(planned, held, free, "data");
      assert.equal(d.ok, ok);
      assert.equal(d.needBytes, need);
    });
  }
  it("the refusal says what is needed, what is free, on which volume, and what to do", () => {
    const d = decideTargetSpace(planned, [], 50 * MiB, "data");
    assert.ok(!d.ok);
    assert.equal(
      d.message,
      "the copy needs 5.7 MiB plus a margin of 64.6 MiB on the target's volume data, which has 50.0 MiB free (the blocks are staged next to the TSDB, and a full volume stops the target). Free space or grow the volume, then run again",
    );
  });
});

describe("program: a target volume too small for the copy (issue 21 item 3)", () => {
  it("refused at the decision, before anything of migrate is created, naming the target", async () => {
    const c = migratingCluster();
    c.exec = {
      ...c.exec,
      "ptm-rsync:probe": line({ ...targetProbe(), dfAvailableBytes: 50 * MiB }),
    };
    await assert.rejects(
      runProgram({ phase: "migrate", source: SOURCE_CONFIG }, c),
      /:target: the copy needs 5\.7 MiB plus a margin of 64\.6 MiB on the target's volume data, which has 50\.0 MiB free/,
    );
  });
});
