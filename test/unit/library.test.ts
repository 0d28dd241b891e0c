// The component as another Pulumi program uses it: imported by the package's name and
// declared next to the program's own resources.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type * as ptm from "../../components";
import { cluster, SOURCE_CONFIG } from "../fixtures/workloads";
import { byType, runWith } from "./harness";

const REPO = path.resolve(__dirname, "..", "..");

// From source, loaded when the program runs, as a dependent project's import is. The built
// package, imported by name, is package.test.ts's.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = () => require("../../components") as typeof ptm;

/** Stands for a resource of the importing program's own. */
class OwnThing extends pulumi.CustomResource {
  constructor(name: string) {
    super("example:index:Thing", name, {});
  }
}

describe("PrometheusTsdbMigration imported by another program", () => {
  // Without Pulumi.yaml's main, Pulumi would run package.json's exports["."]: the built
  // library, which is no program. index.ts, run from source, must stay the stack program.
  it("Pulumi runs index.ts from source; the package's entry points are the built library", () => {
    const project = fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8");
    assert.match(project, /^main: index\.ts$/m);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as {
      main: string;
      exports: Record<string, { default: string } | string>;
    };
    assert.equal(pkg.main, "dist/components/index.js");
    assert.deepEqual(pkg.exports["."], pkg.exports["./components"]);
    assert.equal((pkg.exports["."] as { default: string }).default, "./dist/components/index.js");
  });

  it("declares the prepare phase next to the program's own resources", async () => {
    const r = await runWith({}, cluster(), async () => {
      const { outputsOf, PrometheusTsdbMigration } = load();
      const own = new OwnThing("own-thing");
      const m = new PrometheusTsdbMigration(
        "move-history",
        { phase: "prepare", source: SOURCE_CONFIG as ptm.PrometheusWorkloadArgs },
        { dependsOn: [own] },
      );
      return outputsOf(m);
    });
    assert.equal(byType(r, "example:index:Thing").length, 1);
    assert.equal(byType(r, "kubernetes:core/v1:Service").length, 1);
    assert.equal(byType(r, "kubernetes:apps/v1:DeploymentPatch").length, 1);
    assert.equal(byType(r, "kubernetes:apps/v1:StatefulSetPatch").length, 1);
    assert.equal(r.outputs.phase, "prepare");
    assert.equal(
      (r.outputs.target as Record<string, unknown>).workload,
      "StatefulSet kubeprod/prometheus",
    );
  });

  it("refuses bad args with a one-line error that names the key", async () => {
    await assert.rejects(
      runWith({}, cluster(), async () => {
        const { outputsOf, PrometheusTsdbMigration } = load();
        return outputsOf(new PrometheusTsdbMigration("m", { phase: "prepare", source: {} }));
      }),
      (e: Error) =>
        e instanceof pulumi.ResourceError &&
        e.hideStack === true &&
        /:source\.name: is required/.test(e.message),
    );
  });
});
