// Issue 21 item 6: an explicit dataPath (source.dataPath / target.dataPath) is compared with
// the server's own --storage.tsdb.path (its flags API through the pod proxy, else the
// container's args); a mismatch is refused naming the key.

import * as assert from "node:assert/strict";
import { ConfigError, WorkloadRef } from "../../components/decisions/config";
import { resolveDataPath, ServerReport } from "../../components/decisions/discovery";

const ref = (dataPath?: string): WorkloadRef => ({
  namespace: "m",
  kind: "Deployment",
  name: "p",
  container: "p",
  ...(dataPath ? { dataPath } : {}),
});
const asked = (path: string, cwd?: string): ServerReport => ({
  reached: true,
  pod: "p-0",
  flags: { "storage.tsdb.path": path },
  ...(cwd ? { cwd } : {}),
});
const down: ServerReport = { reached: false, why: "no pod of it exists" };
const plain = { name: "p", args: ["--config.file=/etc/p.yml"] };
const specAt = (p: string) => ({ name: "p", args: [`--storage.tsdb.path=${p}`] });

describe("resolveDataPath: an explicit dataPath is checked against the server's own flag", () => {
  const refused: {
    name: string;
    key: "source" | "target";
    path: string;
    server: ServerReport;
    c: typeof plain;
    want: RegExp;
  }[] = [
    {
      name: "the server's absolute flag differs",
      key: "source",
      path: "/prometheus",
      server: asked("/data"),
      c: plain,
      want: /source\.dataPath: .*\/prometheus.*storage\.tsdb\.path.*\/data.*server p-0/,
    },
    {
      name: "a relative flag resolved in the server's CWD differs",
      key: "target",
      path: "/data",
      server: asked("data/", "/opt/bitnami/prometheus"),
      c: plain,
      want: /target\.dataPath: .*\/opt\/bitnami\/prometheus\/data/,
    },
    {
      name: "server not reached: the container spec's flag differs",
      key: "source",
      path: "/prometheus",
      server: down,
      c: specAt("/data"),
      want: /source\.dataPath: .*\/data.*container spec/,
    },
  ];
  for (const c of refused) {
    it(`refused: ${c.name}`, () => {
      assert.throws(
        () => resolveDataPath(c.key, ref(c.path), c.c, c.server),
        (e: Error) =>
          e instanceof ConfigError && e.key === `${c.key}.dataPath` && c.want.test(e.message),
      );
    });
  }
  const accepted: {
    name: string;
    path: string;
    server: ServerReport;
    c: typeof plain;
    from: RegExp;
  }[] = [
    {
      name: "same path, other spelling",
      path: "/data/",
      server: asked("/data"),
      c: plain,
      from: /^config source\.dataPath$/,
    },
    {
      name: "relative flag in the CWD, same path",
      path: "/opt/bitnami/prometheus/data",
      server: asked("data/", "/opt/bitnami/prometheus"),
      c: plain,
      from: /^config source\.dataPath$/,
    },
    {
      // BKPR: no flag, no workingDir, server down: the key is there for exactly this case.
      name: "nothing to compare with: taken, and the output says it was not checked",
      path: "/opt/bitnami/prometheus/data",
      server: down,
      c: plain,
      from: /^config source\.dataPath \(not checked: .*\)$/,
    },
  ];
  for (const c of accepted) {
    it(`accepted: ${c.name}`, () => {
      const got = resolveDataPath("source", ref(c.path), c.c, c.server);
      assert.equal(got.value, c.path.replace(/\/$/, ""));
      assert.match(got.from, c.from);
    });
  }
});
