// Where the program is type-checked (issue 25: the whole migration's time). Pulumi's Node.js
// runtime type-checks a TypeScript program with ts-node on every preview and up unless
// tsconfig.json's noCheck (or PULUMI_NODEJS_TRANSPILE_ONLY) says not to: about 10 s a run
// here (BENCHMARKS.md, "Whole migration"), 4 to 6 runs a migration. The program is ours, not
// the user's (the user's input is stack config, checked at run time), so the check belongs to
// `npm run lint`, once, with tsconfig.check.json; the package build checks too.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "..", "..");
const options = (file: string): ts.CompilerOptions => {
  const read = ts.readConfigFile(path.join(ROOT, file), ts.sys.readFile);
  assert.equal(read.error, undefined, `${file} reads`);
  return ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT).options;
};

describe("the program runs transpile-only; lint and the package build type-check it", () => {
  it("tsconfig.json sets noCheck: what Pulumi's runtime reads for ts-node's transpileOnly", () => {
    assert.equal(options("tsconfig.json").noCheck, true);
  });

  it("tsconfig.check.json and tsconfig.build.json check the types", () => {
    assert.equal(options("tsconfig.check.json").noCheck, false);
    assert.equal(options("tsconfig.build.json").noCheck, false);
  });

  it("npm run lint runs tsc with tsconfig.check.json", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    assert.match(pkg.scripts["lint"]!, /tsc --noEmit -p tsconfig\.check\.json/);
  });

  it("tsconfig.check.json finds a type error that tsconfig.json lets through", () => {
    const dir = fs.mkdtempSync(path.join(ROOT, "test", ".typecheck-"));
    try {
      const bad = path.join(dir, "bad.ts");
      fs.writeFileSync(bad, "export const n: number = 'not a number';\n");
      const diagnostics = (file: string): number => {
        const program = ts.createProgram([bad], { ...options(file), noEmit: true });
        return ts.getPreEmitDiagnostics(program).length;
      };
      assert.ok(diagnostics("tsconfig.check.json") > 0, "the check config reports it");
      assert.equal(diagnostics("tsconfig.json"), 0, "the program's config does not");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
