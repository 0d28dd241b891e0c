// Issue 23 (a NetworkPolicy denying the target's egress): whether the target pod may reach the
// source's rsync daemon, from the policies of the target's namespace. Table tests.

import * as assert from "node:assert/strict";
import {
  egressToRsync,
  EgressVerdict,
  NetworkPolicyObject,
  RsyncDestination,
} from "../../components/decisions/access";

const TARGET_NS = "kubeprod";
const TARGET_LABELS = { "app.kubernetes.io/name": "prometheus" };
const DEST: RsyncDestination = {
  namespace: "monitoring",
  podLabels: { app: "prometheus", component: "server" },
  port: 8873,
  portName: "ptm-rsync",
};

const policy = (name: string, spec: NetworkPolicyObject["spec"]): NetworkPolicyObject => ({
  metadata: { name },
  spec,
});
const denyAll = policy("deny-egress", { podSelector: {}, policyTypes: ["Egress"] });
const toSource = (extra: Record<string, unknown> = {}) => ({
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
  podSelector: { matchLabels: { app: "prometheus" } },
  ...extra,
});

const rows: { name: string; policies: NetworkPolicyObject[]; want: EgressVerdict["verdict"] }[] = [
  { name: "no policies", policies: [], want: "open" },
  {
    name: "an ingress-only policy",
    policies: [policy("in", { podSelector: {}, policyTypes: ["Ingress"] })],
    want: "open",
  },
  {
    name: "an egress policy for other pods",
    policies: [
      policy("other", { podSelector: { matchLabels: { app: "x" } }, policyTypes: ["Egress"] }),
    ],
    want: "open",
  },
  { name: "deny all egress", policies: [denyAll], want: "denied" },
  {
    name: "deny all, plus DNS only",
    policies: [
      denyAll,
      policy("dns", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [
          {
            ports: [
              { protocol: "UDP", port: 53 },
              { protocol: "TCP", port: 53 },
            ],
          },
        ],
      }),
    ],
    want: "denied",
  },
  {
    name: "deny all, plus a rule to the source pod's daemon port",
    policies: [
      denyAll,
      policy("rsync", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [toSource()], ports: [{ protocol: "TCP", port: 8873 }] }],
      }),
    ],
    want: "allowed",
  },
  {
    name: "a rule naming the daemon's port by name",
    policies: [
      policy("named", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [toSource()], ports: [{ port: "ptm-rsync" }] }],
      }),
    ],
    want: "allowed",
  },
  {
    name: "a port range that holds 8873",
    policies: [
      policy("range", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ ports: [{ protocol: "TCP", port: 8000, endPort: 9000 }] }],
      }),
    ],
    want: "allowed",
  },
  {
    name: "a rule to the source's pods on another port",
    policies: [
      policy("web", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [toSource()], ports: [{ protocol: "TCP", port: 9090 }] }],
      }),
    ],
    want: "denied",
  },
  {
    name: "a rule to pods of the target's own namespace only",
    policies: [
      policy("same-ns", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: {} }] }],
      }),
    ],
    want: "denied",
  },
  {
    name: "a rule to every namespace and pod",
    policies: [
      policy("all", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: {} }] }],
      }),
    ],
    want: "allowed",
  },
  {
    name: "a namespace chosen by a team label: can't tell without reading the namespace",
    policies: [
      policy("team", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: "obs" } } }] }],
      }),
    ],
    want: "unknown",
  },
  {
    name: "an ipBlock of the pod network: not compared",
    policies: [
      policy("cidr", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "10.244.0.0/16" } }] }],
      }),
    ],
    want: "unknown",
  },
  {
    name: "an ipBlock of everything",
    policies: [
      policy("any", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }] }],
      }),
    ],
    want: "allowed",
  },
];

describe("egressToRsync: may the target pod reach the source's rsync daemon (issue 23)", () => {
  for (const r of rows) {
    it(`${r.name}: ${r.want}`, () => {
      const v = egressToRsync(r.policies, TARGET_NS, TARGET_LABELS, DEST);
      assert.equal(v.verdict, r.want, JSON.stringify(v));
    });
  }

  it("a denial names every policy that isolates the pod", () => {
    const v = egressToRsync([denyAll], TARGET_NS, TARGET_LABELS, DEST);
    assert.deepEqual(v, { verdict: "denied", isolatedBy: ["kubeprod/deny-egress"] });
  });
});
