// Which cluster each side is in, and the transport (components/decisions/sides.ts, issue 24's
// groundwork): a table of the configs a user can write, against kubeconfigs that name one
// cluster twice, two clusters, or nothing readable.

import * as assert from "node:assert/strict";
import { ClusterAccess, ConfigError } from "../../components/decisions/config";
import { decideSides, refuseSameWorkload, sideAccess } from "../../components/decisions/sides";

// kubeconfig file -> context -> API server; "" = the current context.
const SERVERS: Record<string, Record<string, string>> = {
  "/home/u/.kube/config": {
    "": "https://blue.example:6443",
    blue: "https://blue.example:6443",
    "blue-admin": "https://blue.example:6443/",
    green: "https://green.example:6443",
  },
  "/home/u/green.yaml": { "": "https://green.example:6443" },
};
const DEFAULT_FILE = "/home/u/.kube/config";
const serverOf = (a: ClusterAccess | undefined): string | undefined =>
  SERVERS[a?.kubeconfig ?? DEFAULT_FILE]?.[a?.context ?? ""];

const refusal = (key: string, text: RegExp) => (e: unknown) =>
  e instanceof ConfigError && e.key === key && text.test(e.message);

describe("decisions/sides: the cluster of each side, and the transport", () => {
  describe("sideAccess", () => {
    const rows: [string, ClusterAccess | undefined, ClusterAccess | undefined, unknown][] = [
      ["neither set: kubectl's defaults", undefined, undefined, undefined],
      [
        "the stack's for both fields",
        { kubeconfig: "/k", context: "c" },
        undefined,
        { kubeconfig: "/k", context: "c" },
      ],
      [
        "the side's context, the stack's file",
        { kubeconfig: "/k", context: "c" },
        { context: "d" },
        { kubeconfig: "/k", context: "d" },
      ],
      [
        "the side's file, the stack's context",
        { context: "c" },
        { kubeconfig: "/g" },
        { kubeconfig: "/g", context: "c" },
      ],
      ["blank fields are unset", { kubeconfig: " " }, { context: "" }, undefined],
    ];
    for (const [what, stack, side, want] of rows)
      it(what, () => assert.deepEqual(sideAccess(stack, side), want));
  });

  describe("decideSides", () => {
    it("nothing set: one cluster, direct (today's way)", () => {
      const s = decideSides({ serverOf });
      assert.equal(s.sameCluster, true);
      assert.equal(s.transport, "direct");
      assert.match(
        s.summary,
        /both sides in one cluster \(https:\/\/blue\.example:6443\); transport direct/,
      );
    });
    it("two contexts naming one server (a trailing slash aside): one cluster, direct", () => {
      const s = decideSides({
        source: { context: "blue" },
        target: { context: "blue-admin" },
        serverOf,
      });
      assert.equal(s.sameCluster, true);
      assert.equal(s.transport, "direct");
    });
    it("two clusters: relay by default, and the summary names both", () => {
      const s = decideSides({ target: { context: "green" }, serverOf });
      assert.equal(s.sameCluster, false);
      assert.equal(s.transport, "relay");
      assert.deepEqual(s.target, { context: "green" });
      assert.equal(s.source, undefined);
      assert.match(
        s.summary,
        /source in https:\/\/blue\.example:6443 .* target in https:\/\/green\.example:6443 \(context green/,
      );
      assert.match(s.summary, /transport relay \(the default across clusters\)/);
    });
    it("two kubeconfig files: the target's own file", () => {
      const s = decideSides({ target: { kubeconfig: "/home/u/green.yaml" }, serverOf });
      assert.equal(s.sameCluster, false);
      assert.equal(s.targetServer, "https://green.example:6443");
    });
    it("relay asked for in one cluster: relay (the lab proves it that way)", () => {
      const s = decideSides({ transport: "relay", serverOf });
      assert.equal(s.sameCluster, true);
      assert.equal(s.transport, "relay");
      assert.doesNotMatch(s.summary, /the default/);
    });
    it("direct across two clusters: refused, naming transport", () =>
      assert.throws(
        () => decideSides({ target: { context: "green" }, transport: "direct", serverOf }),
        refusal("transport", /different clusters .*blue.*green.* set it to relay/),
      ));
    it("an unknown transport: refused, naming transport", () =>
      assert.throws(
        () => decideSides({ transport: "loadbalancer", serverOf }),
        refusal("transport", /direct or relay, got "loadbalancer"/),
      ));
    it("a context that isn't in the file: refused, naming target.cluster (fail closed)", () =>
      assert.throws(
        () => decideSides({ target: { context: "purple" }, serverOf }),
        refusal("target.cluster", /no API server found for context purple .*--context purple/),
      ));
    it("a kubeconfig that can't be read: refused, naming source.cluster", () =>
      assert.throws(
        () => decideSides({ source: { kubeconfig: "/nope" }, serverOf }),
        refusal("source.cluster", /--kubeconfig \/nope/),
      ));
  });

  describe("refuseSameWorkload", () => {
    const prom = {
      namespace: "monitoring",
      kind: "Deployment" as const,
      name: "prometheus-server",
    };
    it("the same workload in one cluster: refused, naming target", () =>
      assert.throws(
        () => refuseSameWorkload({ sameCluster: true }, prom, { ...prom }),
        refusal("target", /is the source itself \(Deployment monitoring\/prometheus-server/),
      ));
    it("the same names in two clusters: a blue/green move, allowed", () =>
      assert.doesNotThrow(() => refuseSameWorkload({ sameCluster: false }, prom, { ...prom })));
    for (const [what, other] of [
      ["another namespace", { ...prom, namespace: "kubeprod" }],
      ["another kind", { ...prom, kind: "StatefulSet" as const }],
      ["another name", { ...prom, name: "prometheus" }],
    ] as const)
      it(`${what} in one cluster: allowed`, () =>
        assert.doesNotThrow(() => refuseSameWorkload({ sameCluster: true }, prom, other)));
  });
});
