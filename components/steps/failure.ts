// How a failed step reaches the user: one line that names the step and its resource. An
// error thrown inside an `apply` would otherwise be printed as an "unhandled exception"
// with a JavaScript stack.

import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../decisions/config";
import { StepError } from "../decisions/errors";

/**
 * A {@link StepError} or {@link ConfigError} (messages written for the user) as a
 * ResourceError of `resource` that hides the stack; anything else (a bug) as it is.
 */
export function resourceError(resource: pulumi.Resource, e: unknown): unknown {
  if (e instanceof ConfigError || e instanceof StepError) {
    return new pulumi.ResourceError(e.message, resource, true);
  }
  return e;
}

/** Runs `fn` (the body of an apply), reporting what it throws as {@link resourceError}. */
export function failingAs<T>(resource: pulumi.Resource, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw resourceError(resource, e);
  }
}
