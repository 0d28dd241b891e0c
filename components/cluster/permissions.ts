// The RBAC check (issue 21 item 5): before a run reads or changes anything, every permission
// it needs (decisions/rbac.ts) is asked of the API server as `kubectl auth can-i` would, with
// the stack's kubeconfig and context, all at once; a refusal lists every one that is missing
// or could not be checked.

import * as pulumi from "@pulumi/pulumi";
import { MigrationConfig } from "../decisions/config";
import { StepError } from "../decisions/errors";
import {
  ACCESS_REVIEW_LINE,
  accessReviews,
  rbacInputOf,
  rbacVerdict,
  readAccessReviews,
  requiredPermissions,
} from "../decisions/rbac";
import { run, said } from "./clusterReads";
import { kubectl, shQuote } from "./kubectl";

/**
 * Refuses, naming the key `kubernetes:kubeconfig`, the user and each permission, when any
 * needed one is missing or can't be checked; warns for the optional ones. Every permission is
 * one SelfSubjectAccessReview (what `kubectl auth can-i` asks), all in one `kubectl create`.
 */
export async function checkPermissions(
  cfg: MigrationConfig,
  migration: pulumi.Resource,
): Promise<void> {
  const needed = requiredPermissions(rbacInputOf(cfg));
  const [who, reviewed] = await Promise.all([
    // Only for the message: every authenticated user may ask who they are (1.28+).
    run(`${kubectl(cfg.cluster)} auth whoami -o 'jsonpath={.status.userInfo.username}'`),
    run(
      `${kubectl(cfg.cluster)} create -f - -o ${shQuote(`jsonpath=${ACCESS_REVIEW_LINE}`)}`,
      {},
      JSON.stringify(accessReviews(needed)),
    ),
  ]);
  const user = who.code === 0 && who.stdout ? `"${who.stdout}"` : "(kubectl auth whoami failed)";
  const answers = readAccessReviews(needed, reviewed.code, reviewed.stdout, said(reviewed));
  const verdict = rbacVerdict(
    needed.map((p, i) => ({ p, answer: answers[i] })),
    user,
  );
  // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
  for (const w of verdict.warnings) void pulumi.log.warn(w, migration);
  if (verdict.refusal) throw new StepError("kubernetes:kubeconfig", verdict.refusal);
}
