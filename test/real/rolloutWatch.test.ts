// rollout-watch.sh while the API server does not answer (issue 23: the kube-apiserver stopped
// during prepare's rollout). The script runs as the program runs it (cluster/lib.sh, then the
// script, in one `sh -c`), against a stand-in kubectl that fails its first calls the way
// kubectl does when the API server is away, then answers as the API server would.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readScript } from "../../components/cluster/kubectl";
import { mkTemp } from "../support/real";

/** A kubectl that fails its first `failures` calls, then reports a rolled-out Deployment. */
function standInKubectl(dir: string, failures: number): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(
    path.join(bin, "kubectl"),
    [
      "#!/bin/sh",
      `n=$(cat "${dir}/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"${dir}/calls"`,
      `if [ "$n" -le ${failures} ]; then`,
      '  echo "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?" >&2',
      "  exit 1",
      "fi",
      'case "$*" in',
      "  *'get deployment web'*) printf 'app=web,' ;;",
      "esac",
      "exit 0",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return bin;
}

function watch(bin: string, timeout: number) {
  const script = `${readScript("cluster", "lib.sh")}\n${readScript("cluster", "rollout-watch.sh")}`;
  return spawnSync(
    "sh",
    ["-c", script, "rollout-watch", "ns", "deployment", "web", "ptm-rsync", String(timeout)],
    { encoding: "utf8", env: { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` } },
  );
}

describe("rollout-watch.sh while the API server does not answer (issue 23)", function () {
  this.timeout(60_000);

  it("keeps asking, then watches the rollout to its end", () => {
    const dir = mkTemp("ptm-rollout-watch-");
    const r = watch(standInKubectl(dir, 2), 60);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\{"rolledOut":true,"seconds":\d+\}$/m);
    const asked = r.stderr.match(/can't read deployment ns\/web .*asking again in 5 s/g) ?? [];
    assert.equal(asked.length, 2, r.stderr);
  });

  it("gives up at its timeout, naming the next step", () => {
    const dir = mkTemp("ptm-rollout-watch-");
    const r = watch(standInKubectl(dir, 1000), 6);
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /rollout-watch: ERROR: can't read deployment ns\/web for 6s \(see kubectl's error above\); run pulumi up again once the API server answers/,
    );
  });
});
