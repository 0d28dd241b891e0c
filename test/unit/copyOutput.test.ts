// parseCopy: copy.sh's summary, with the streams the copy ended with (issue 25: copyStreams
// auto chooses them; the stack's outputs say what it chose).

import * as assert from "node:assert/strict";
import { parseCopy } from "../../components/decisions/sidecarOutput";

describe("parseCopy: counts, bytes and the streams the copy ended with", () => {
  const X = "01AAAAAAAAAAAAAAAAAAAAAAA1";
  const Y = "01AAAAAAAAAAAAAAAAAAAAAAA2";
  const line = (o: Record<string, unknown>): string => `copy: progress\n${JSON.stringify(o)}\n`;
  const counts = { copied: 1, skipped: 1, bytesCopied: 10, bytesReceived: 12, bytesTotal: 20 };

  it("the streams auto ended with are kept", () => {
    assert.deepEqual(parseCopy(line({ ...counts, streams: 3 }), [X, Y]), { ...counts, streams: 3 });
  });

  it("an older copy.sh (no streams key) still parses, without streams", () => {
    assert.deepEqual(parseCopy(line(counts), [X, Y]), counts);
  });

  it("streams 0 (nothing left to copy: no rsync ran) is kept as 0", () => {
    const none = { copied: 0, skipped: 2, bytesCopied: 0, bytesReceived: 0, bytesTotal: 20 };
    assert.deepEqual(parseCopy(line({ ...none, streams: 0 }), [X, Y]), { ...none, streams: 0 });
  });

  it("a streams value that is not a count is an error naming the step", () => {
    assert.throws(() => parseCopy(line({ ...counts, streams: -1 }), [X, Y]), /block-copy/);
    assert.throws(() => parseCopy(line({ ...counts, streams: "2" }), [X, Y]), /block-copy/);
  });
});
