// Which cluster the demo and the e2e tests may act on (test/e2e/clusterChoice.ts): the lab,
// a context the user named, or a refusal. A table of the environments a user can have.

import * as assert from "node:assert/strict";
import {
  ChoiceInput,
  chooseCluster,
  ClusterRefused,
  LAB_CONTEXT,
  RunMode,
} from "../e2e/clusterChoice";

const LAB = "/var/lib/ptm-lab/admin.kubeconfig";
const HOME_KC = "/home/u/.kube/config";
const files: Record<string, { contexts: string[]; current: string }> = {
  [LAB]: { contexts: [LAB_CONTEXT], current: LAB_CONTEXT },
  [HOME_KC]: { contexts: ["prod-eu", "staging"], current: "prod-eu" },
  "/tmp/lab-renamed": { contexts: ["looks-like-prod"], current: "looks-like-prod" },
};

function input(mode: RunMode, kubeconfigEnv?: string, demoContext?: string): ChoiceInput {
  return {
    mode,
    kubeconfigEnv,
    demoContext,
    labKubeconfig: LAB,
    defaultKubeconfig: HOME_KC,
    sameFile: (a, b) => a.replace(/\/\.\//g, "/") === b,
    contextsOf: (f) => files[f],
  };
}

describe("the cluster the demo and the e2e tests act on", () => {
  const chosen: [string, ChoiceInput, { kubeconfig: string; context: string; lab: boolean }][] = [
    ["no KUBECONFIG: the lab", input("demo"), { kubeconfig: LAB, context: LAB_CONTEXT, lab: true }],
    [
      "empty KUBECONFIG: the lab",
      input("e2e", ""),
      { kubeconfig: LAB, context: LAB_CONTEXT, lab: true },
    ],
    [
      "the lab's own kubeconfig, by another spelling of its path",
      input("e2e", "/var/lib/ptm-lab/./admin.kubeconfig"),
      { kubeconfig: LAB, context: LAB_CONTEXT, lab: true },
    ],
    [
      "PTM_DEMO_CONTEXT names a context of KUBECONFIG",
      input("demo", HOME_KC, "staging"),
      { kubeconfig: HOME_KC, context: "staging", lab: false },
    ],
    [
      "PTM_DEMO_CONTEXT without KUBECONFIG: ~/.kube/config",
      input("demo", undefined, "prod-eu"),
      { kubeconfig: HOME_KC, context: "prod-eu", lab: false },
    ],
  ];
  for (const [name, i, want] of chosen) {
    it(name, () => assert.deepEqual(chooseCluster(i), want));
  }

  const refused: [string, ChoiceInput, RegExp][] = [
    [
      "a user's KUBECONFIG without the opt-in: the demo refuses and names PTM_DEMO_CONTEXT",
      input("demo", HOME_KC),
      /KUBECONFIG=\/home\/u\/\.kube\/config \(current context "prod-eu"\) is not the local lab's.*nothing was read or changed.*PTM_DEMO_CONTEXT=<context>/,
    ],
    [
      "the lab's cluster under another context name is not the lab",
      input("demo", "/tmp/lab-renamed"),
      /current context "looks-like-prod"\) is not the local lab's/,
    ],
    [
      "the e2e tests refuse a user's KUBECONFIG",
      input("e2e", HOME_KC),
      /the end-to-end tests act only on the lab.*Unset KUBECONFIG/,
    ],
    [
      "a list of kubeconfig files is not the lab",
      input("demo", `${LAB}:${HOME_KC}`),
      /is not the local lab's/,
    ],
    [
      "the e2e tests take no opt-in",
      input("e2e", HOME_KC, "staging"),
      /PTM_DEMO_CONTEXT is for `npm run demo` only/,
    ],
    [
      "a context the kubeconfig lacks",
      input("demo", HOME_KC, "prod-us"),
      /PTM_DEMO_CONTEXT=prod-us: .* has no such context \(it has: prod-eu, staging\)/,
    ],
    [
      "a kubeconfig that can't be read",
      input("demo", "/nowhere", "prod-eu"),
      /could not read the contexts of \/nowhere; nothing was changed/,
    ],
  ];
  for (const [name, i, msg] of refused) {
    it(name, () => {
      assert.throws(
        () => chooseCluster(i),
        (e: unknown) => e instanceof ClusterRefused && msg.test(e.message),
      );
    });
  }
});
