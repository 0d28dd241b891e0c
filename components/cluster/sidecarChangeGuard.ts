// The check before a config change rolls the target's pods (issue 20): a new sidecarImage,
// sidecarImagePullPolicy or sidecarResources changes the pod template, and restarting the
// target after the install drops its own samples older than the newest imported block.
// Every replica is probed through its sidecar, or, when the sidecar can't be reached (it
// never started: an image no node can pull), through its Prometheus container, as the
// revert's check does; one at risk, or one that can't be checked, refuses the change, naming
// the key and what to do.

import { ConfigError } from "../decisions/config";
import { restartRisk } from "../decisions/restartRisk";
import { RestartingChange } from "../decisions/sidecarChange";
import { iso } from "../decisions/time";
import { headRange } from "../decisions/tsdb";
import { TARGET_SIDECAR, TsdbLocation } from "../decisions/workload";
import { lookIntoTsdb, probe } from "./clusterReads";
import { podLocations } from "../decisions/prometheusResource";

export async function checkSidecarChangeIsSafe(
  target: TsdbLocation,
  changes: RestartingChange[],
  snapshot: string,
): Promise<string> {
  const [first] = changes;
  const what = changes.map((c) => `${c.key} ${c.running} -> ${c.wanted}`).join(", ");
  const pods = podLocations(target);
  for (const at of pods) {
    const ref = at.ref;
    const pod = ref.pod ?? `${ref.kind} ${ref.namespace}/${ref.name}`;
    const state = await probe(ref, TARGET_SIDECAR, snapshot, true).catch(async (e: unknown) => {
      const looked = await lookIntoTsdb(at, snapshot);
      if ("probe" in looked) return looked.probe;
      throw new ConfigError(
        first.key,
        `changing ${what} rolls the target's pods, and whether that drops any of their own ` +
          `samples can't be checked in ${pod}: ${(e as Error).message}; nor through its ` +
          `Prometheus container: ${looked.why}. Set ${first.key} back to ${first.running}, or ` +
          `fix that and run again`,
      );
    });
    const head = state?.tsdb ? headRange(state.tsdb) : undefined;
    if (!state || state.tsdb === null) {
      throw new ConfigError(
        first.key,
        `changing ${what} rolls the target's pods, and whether that drops any of their own ` +
          `samples can't be checked: ${pod}'s Prometheus did not answer /api/v1/status/tsdb. Set ` +
          `${first.key} back to ${first.running}, or run again once it answers`,
      );
    }
    const risk = restartRisk(state.blocks, head);
    if (risk) {
      throw new ConfigError(
        first.key,
        `changing ${what} rolls the target's pods, which would drop ${pod}'s own samples from ` +
          `${iso(risk.lossFromMs)} to ${iso(risk.lossToMs)} (older than the newest imported block, ` +
          `not yet compacted). Set ${first.key} back to ${first.running}, or change it after ` +
          `${iso(risk.safeAfterMs)}, when the target's next compaction has persisted them`,
      );
    }
  }
  return (
    `changing ${what} rolls the target's pods; checked in ${pods.length} pod(s): ` +
    `no own sample of the target is older than an imported block`
  );
}
