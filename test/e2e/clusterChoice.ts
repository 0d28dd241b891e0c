// Which cluster the demo and the end-to-end tests may act on. A user's KUBECONFIG may point at
// production: without an explicit opt-in they act only on the local lab, and they refuse
// before anything is read or changed anywhere else.
//
//   no KUBECONFIG, or the lab's own kubeconfig        -> the lab (context ptm-lab)
//   PTM_DEMO_CONTEXT=<context> (the demo only)         -> that context of KUBECONFIG (or
//                                                         ~/.kube/config), public images,
//                                                         in the demo's own namespaces
//   any other KUBECONFIG                               -> refused, naming PTM_DEMO_CONTEXT
//
// Run as a script (`ts-node test/e2e/clusterChoice.ts demo|e2e`) it prints the choice as
// `lab` or `context <name>`, or the refusal on stderr with exit status 2: test/e2e/run.sh asks
// it before it builds or starts anything.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** The lab's kubeconfig (test/lab/lib.sh: ${PTM_LAB}/admin.kubeconfig) and its one context. */
export const LAB_CONTEXT = "ptm-lab";
export function labKubeconfig(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.PTM_LAB || "/var/lib/ptm-lab", "admin.kubeconfig");
}

export type RunMode = "demo" | "e2e";

/** Where to act: a kubeconfig file and a context, always both, always explicit. */
export interface ClusterChoice {
  kubeconfig: string;
  context: string;
  /** True for the local lab: its images, volumes and node may be used. */
  lab: boolean;
}

export interface ChoiceInput {
  mode: RunMode;
  /** KUBECONFIG as the user has it ("" or undefined when unset). */
  kubeconfigEnv?: string;
  /** PTM_DEMO_CONTEXT. */
  demoContext?: string;
  /** The lab's kubeconfig path. */
  labKubeconfig: string;
  /** ~/.kube/config, kubectl's default. */
  defaultKubeconfig: string;
  /** Same file? (realpath comparison; injected for the table tests). */
  sameFile: (a: string, b: string) => boolean;
  /** The contexts a kubeconfig defines, and its current one; undefined when unreadable. */
  contextsOf: (kubeconfig: string) => { contexts: string[]; current: string } | undefined;
}

export class ClusterRefused extends Error {}

/** The decision, pure: the cluster to act on, or a refusal that says what to set. */
export function chooseCluster(i: ChoiceInput): ClusterChoice {
  const kc = i.kubeconfigEnv ?? "";
  const optIn = i.demoContext ?? "";
  const isLab = kc === "" || (!kc.includes(path.delimiter) && i.sameFile(kc, i.labKubeconfig));
  if (optIn) {
    if (i.mode === "e2e")
      throw new ClusterRefused(
        "PTM_DEMO_CONTEXT is for `npm run demo` only: the end-to-end tests run only on the local " +
          "lab (they cordon its node, install an operator and use its images and volumes). " +
          "Unset PTM_DEMO_CONTEXT and KUBECONFIG to run them on the lab.",
      );
    const file = kc || i.defaultKubeconfig;
    const read = i.contextsOf(file);
    if (!read)
      throw new ClusterRefused(
        `PTM_DEMO_CONTEXT=${optIn}: could not read the contexts of ${file}; nothing was changed. ` +
          "Check KUBECONFIG.",
      );
    if (!read.contexts.includes(optIn))
      throw new ClusterRefused(
        `PTM_DEMO_CONTEXT=${optIn}: ${file} has no such context (it has: ${read.contexts.join(", ") || "none"}); ` +
          "nothing was changed.",
      );
    return { kubeconfig: file, context: optIn, lab: isLab && optIn === LAB_CONTEXT };
  }
  if (isLab) return { kubeconfig: i.labKubeconfig, context: LAB_CONTEXT, lab: true };
  const current = kc.includes(path.delimiter) ? undefined : i.contextsOf(kc)?.current;
  throw new ClusterRefused(
    `KUBECONFIG=${kc}${current ? ` (current context "${current}")` : ""} is not the local lab's ` +
      `kubeconfig (${i.labKubeconfig}), and ${i.mode === "demo" ? "the demo acts" : "the end-to-end tests act"} ` +
      "only on the lab unless told otherwise: nothing was read or changed in that cluster. " +
      (i.mode === "demo"
        ? "Unset KUBECONFIG to run it on the local lab, or set PTM_DEMO_CONTEXT=<context> to run " +
          "it in that cluster, in its own ptm-demo-* namespaces with public images."
        : "Unset KUBECONFIG to run them on the local lab."),
  );
}

function realSameFile(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    // The lab's kubeconfig does not exist before the lab's first start: compare the paths.
    return path.resolve(a) === path.resolve(b);
  }
}

/** The contexts of a kubeconfig, read by kubectl itself (no cluster is contacted). */
function kubectlContexts(kubeconfig: string): { contexts: string[]; current: string } | undefined {
  try {
    const view = JSON.parse(
      // Through the environment, as kubectl reads it: a list of files (a:b) works too.
      execFileSync("kubectl", ["config", "view", "-o", "json"], {
        encoding: "utf8",
        env: { ...process.env, KUBECONFIG: kubeconfig },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    ) as { contexts?: { name: string }[] | null; "current-context"?: string };
    return {
      contexts: (view.contexts ?? []).map((c) => c.name),
      current: view["current-context"] ?? "",
    };
  } catch {
    return undefined;
  }
}

/** The choice for this process's environment. */
export function clusterForThisRun(mode: RunMode, env = process.env): ClusterChoice {
  return chooseCluster({
    mode,
    kubeconfigEnv: env.KUBECONFIG,
    demoContext: env.PTM_DEMO_CONTEXT,
    labKubeconfig: labKubeconfig(env),
    defaultKubeconfig: path.join(os.homedir(), ".kube", "config"),
    sameFile: realSameFile,
    contextsOf: kubectlContexts,
  });
}

if (require.main === module) {
  const mode = process.argv[2];
  if (mode !== "demo" && mode !== "e2e") {
    process.stderr.write("usage: clusterChoice.ts demo|e2e\n");
    process.exit(2);
  }
  try {
    const c = clusterForThisRun(mode);
    process.stdout.write(c.lab ? "lab\n" : `context ${c.context}\n`);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
}
