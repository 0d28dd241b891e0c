import * as assert from "node:assert/strict";
import {
  isolatedForIngress,
  rsyncIngressRules,
  selectorMatches,
} from "../../components/decisions/access";

describe("selectorMatches", () => {
  const labels = { app: "prometheus", tier: "server" };
  const cases: { sel: Parameters<typeof selectorMatches>[0]; want: boolean }[] = [
    { sel: undefined, want: true },
    { sel: {}, want: true },
    { sel: { matchLabels: { app: "prometheus" } }, want: true },
    { sel: { matchLabels: { app: "grafana" } }, want: false },
    {
      sel: { matchExpressions: [{ key: "tier", operator: "In", values: ["server", "x"] }] },
      want: true,
    },
    {
      sel: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["server"] }] },
      want: false,
    },
    { sel: { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, want: true },
    { sel: { matchExpressions: [{ key: "app", operator: "Exists" }] }, want: true },
    { sel: { matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, want: false },
  ];
  for (const tc of cases)
    it(String(JSON.stringify(tc.sel)), () =>
      assert.equal(selectorMatches(tc.sel, labels), tc.want),
    );
});

describe("isolatedForIngress", () => {
  const pod = { app: "prometheus" };
  it("no policies: open", () => assert.equal(isolatedForIngress([], pod), false));
  it("an egress-only policy does not isolate ingress", () =>
    assert.equal(
      isolatedForIngress([{ spec: { podSelector: {}, policyTypes: ["Egress"] } }], pod),
      false,
    ));
  it("a default-deny policy isolates", () =>
    assert.equal(isolatedForIngress([{ spec: { podSelector: {} } }], pod), true));
  it("a policy for other pods does not", () =>
    assert.equal(
      isolatedForIngress([{ spec: { podSelector: { matchLabels: { app: "x" } } } }], pod),
      false,
    ));
  it("our own policy does not count", () =>
    assert.equal(
      isolatedForIngress(
        [
          {
            metadata: { labels: { "app.kubernetes.io/name": "prometheus-tsdb-migration" } },
            spec: { podSelector: {} },
          },
        ],
        pod,
      ),
      false,
    ));
});

describe("rsyncIngressRules", () => {
  it("open pods keep every other port open, never the daemon's", () => {
    const rules = rsyncIngressRules(false, "kubeprod", { name: "prometheus" });
    assert.equal(rules.length, 2);
    const open = rules[1].ports!;
    for (const p of open) {
      if (p.protocol === "TCP") assert.ok(!(p.port <= 8873 && (p.endPort ?? p.port) >= 8873));
    }
    assert.ok(open.some((p) => p.protocol === "TCP" && p.port === 1 && p.endPort === 8872));
    assert.ok(open.some((p) => p.protocol === "TCP" && p.port === 8874 && p.endPort === 65535));
  });
  it("isolated pods get only the daemon rule", () =>
    assert.equal(rsyncIngressRules(true, "k", {}).length, 1));
});
