// The RBAC check (issue 21 item 5): before a run reads or changes anything, every permission
// it needs (decisions/rbac.ts) is asked of `kubectl auth can-i`, with the stack's kubeconfig
// and context, all at once; a refusal lists every one that is missing or could not be checked.

import * as pulumi from "@pulumi/pulumi";
import { MigrationConfig } from "../decisions/config";
import { StepError } from "../decisions/errors";
import {
  canIArgs,
  rbacInputOf,
  rbacVerdict,
  readCanI,
  requiredPermissions,
} from "../decisions/rbac";
import { run, said } from "./clusterReads";
import { kubectl, shQuote } from "./kubectl";

/** `kubectl auth can-i ...` for one permission (the namespace quoted, as every other line). */
export function canICommand(cfg: MigrationConfig, args: string[]): string {
  const quoted = args.map((a, i) => (args[i - 1] === "-n" ? shQuote(a) : a));
  return `${kubectl(cfg.cluster)} auth can-i ${quoted.join(" ")}`;
}

/**
 * Refuses, naming the key `kubernetes:kubeconfig`, the user and each permission, when any
 * needed one is missing or can't be checked; warns for the optional ones (the Events).
 */
export async function checkPermissions(
  cfg: MigrationConfig,
  migration: pulumi.Resource,
): Promise<void> {
  const needed = requiredPermissions(rbacInputOf(cfg));
  const [who, ...answers] = await Promise.all([
    // Only for the message: every authenticated user may ask who they are (1.28+).
    run(`${kubectl(cfg.cluster)} auth whoami -o 'jsonpath={.status.userInfo.username}'`),
    ...needed.map((p) => run(canICommand(cfg, canIArgs(p)))),
  ]);
  const user = who.code === 0 && who.stdout ? `"${who.stdout}"` : "(kubectl auth whoami failed)";
  const verdict = rbacVerdict(
    needed.map((p, i) => ({
      p,
      answer: readCanI(answers[i].code, answers[i].stdout, said(answers[i])),
    })),
    user,
  );
  // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
  for (const w of verdict.warnings) void pulumi.log.warn(w, migration);
  if (verdict.refusal) throw new StepError("kubernetes:kubeconfig", verdict.refusal);
}
