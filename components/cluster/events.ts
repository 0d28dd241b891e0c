// Records the migration's phases as Kubernetes Events on the workloads (cluster/event.sh):
// one command per phase, after the step it reports, so `kubectl describe` shows each one.
// Best effort: a missing right to create events warns and never fails the step.

import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { WorkloadRef } from "../decisions/config";
import { migrationEvent, MigrationEventReason } from "../decisions/events";
import { localScript, resourceName, ScriptCommand } from "./kubectl";
import { stackLabel } from "./naming";

/** The command that records one Event on the workload `ref` names (its pod, if any, aside). */
export function eventCommand(
  ref: WorkloadRef,
  reason: MigrationEventReason,
  message: string,
): ScriptCommand {
  const run = localScript("event", [ref.namespace, resourceName(ref.kind), ref.name], ref.access);
  const event = migrationEvent(ref, reason, message, stackLabel());
  return {
    command: run.command,
    environment: { ...run.environment, PTM_EVENT: JSON.stringify(event) },
  };
}

/**
 * Records the Event once, when the step it follows (`opts.dependsOn`) is done; a message that
 * is an Output waits for it too. Says so, as a warning, when the Event could not be written.
 */
export function recordEvent(
  name: string,
  ref: WorkloadRef,
  reason: MigrationEventReason,
  message: pulumi.Input<string>,
  opts: pulumi.CustomResourceOptions,
): command.local.Command {
  const run = pulumi.output(message).apply((m) => eventCommand(ref, reason, m));
  const cmd = new command.local.Command(
    name,
    { create: run.command, environment: run.environment },
    // Later runs don't record the phase again, whatever its message says now.
    { ...opts, ignoreChanges: ["create", "environment"] },
  );
  cmd.stdout.apply((out) => {
    if (out && out.includes('"recorded":false')) {
      // void: pulumi.log never rejects, and the SDK delivers it before the program exits.
      void pulumi.log.warn(
        `no ${reason} Event on ${ref.kind} ${ref.namespace}/${ref.name} (see the step's output); ` +
          `the migration goes on without it`,
        cmd,
      );
    }
  });
  return cmd;
}

/**
 * Records the revert on the workload when this command is deleted: declare it before the
 * patch and make the patch depend on it, so that its delete runs after the patch's (and
 * after the rollout of the restored template).
 */
export function recordRevertEvent(
  name: string,
  ref: WorkloadRef,
  message: string,
  opts: pulumi.CustomResourceOptions,
): command.local.Command {
  const run = eventCommand(ref, "MigrationReverted", message);
  return new command.local.Command(
    name,
    { delete: run.command, environment: run.environment },
    opts,
  );
}
