// Mocha root hook of the e2e level (test/e2e/.mocharc.json): before any test file's hooks,
// choose the cluster (clusterChoice.ts: the local lab only) or refuse, so that no e2e test
// reads or changes a cluster the user's KUBECONFIG happens to point at.

import { useCluster } from "./cluster";
import { clusterForThisRun } from "./clusterChoice";

export const mochaHooks = {
  beforeAll(): void {
    useCluster(clusterForThisRun("e2e"));
  },
};
