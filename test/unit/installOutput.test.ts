// parseInstall: install.sh's summary, including blocks already present by lineage (issue 20
// row 1b: their data is in a block the target compacted; they are counted as present).

import * as assert from "node:assert/strict";
import { parseInstall } from "../../components/decisions/sidecarOutput";

describe("parseInstall: installed, present by name, present by lineage", () => {
  const X = "01AAAAAAAAAAAAAAAAAAAAAAA1";
  const Y = "01AAAAAAAAAAAAAAAAAAAAAAA2";
  const T = "01BBBBBBBBBBBBBBBBBBBBBBB1";
  const line = (o: Record<string, unknown>): string => `install: progress\n${JSON.stringify(o)}\n`;

  it("an older install.sh (no lineage keys) still parses", () => {
    assert.deepEqual(parseInstall(line({ installed: 1, alreadyPresent: 1 }), [X, Y]), {
      installed: 1,
      alreadyPresent: 1,
    });
  });

  it("a block present by lineage counts as present, with the block that holds it", () => {
    const r = parseInstall(
      line({
        installed: 1,
        alreadyPresent: 1,
        presentByLineage: 1,
        lineage: [{ block: X, heldBy: T }],
      }),
      [X, Y],
    );
    assert.deepEqual(r, {
      installed: 1,
      alreadyPresent: 1,
      presentByLineage: 1,
      lineage: [{ block: X, heldBy: T }],
    });
  });

  it("none by lineage: an empty list", () => {
    const r = parseInstall(
      line({ installed: 2, alreadyPresent: 0, presentByLineage: 0, lineage: [] }),
      [X, Y],
    );
    assert.equal(r.presentByLineage, 0);
    assert.deepEqual(r.lineage, []);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    [
      "more by lineage than present",
      { installed: 1, alreadyPresent: 1, presentByLineage: 2, lineage: [] },
      /presentByLineage 2 is more than alreadyPresent 1/,
    ],
    [
      "a lineage entry of a block not asked for",
      {
        installed: 1,
        alreadyPresent: 1,
        presentByLineage: 1,
        lineage: [{ block: "01CCCCCCCCCCCCCCCCCCCCCCC1", heldBy: T }],
      },
      /lineage: expected \{block, heldBy\}/,
    ],
    [
      "a holder that is no ULID",
      {
        installed: 1,
        alreadyPresent: 1,
        presentByLineage: 1,
        lineage: [{ block: X, heldBy: "nope" }],
      },
      /lineage: expected/,
    ],
    [
      "more entries than blocks by lineage",
      {
        installed: 0,
        alreadyPresent: 2,
        presentByLineage: 1,
        lineage: [
          { block: X, heldBy: T },
          { block: Y, heldBy: T },
        ],
      },
      /lineage names 2 blocks, presentByLineage is 1/,
    ],
    [
      "lineage not a list",
      { installed: 1, alreadyPresent: 1, presentByLineage: 1, lineage: {} },
      /lineage must be a list/,
    ],
    [
      "counts that don't add up",
      { installed: 0, alreadyPresent: 1, presentByLineage: 1, lineage: [] },
      /reports 1 blocks installed or present, asked for 2/,
    ],
  ];
  for (const [what, o, re] of bad) {
    it(`refused, naming the step: ${what}`, () => {
      assert.throws(
        () => parseInstall(line(o), [X, Y]),
        (e: Error) => /block-install/.test(e.message) && re.test(e.message),
      );
    });
  }
});
