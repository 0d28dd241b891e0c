// The package's public surface: the migration component and its documented args, for a
// Pulumi program that declares a migration next to its own resources.

export {
  EphemeralSideSummary,
  EphemeralSummary,
  MigrationOutputProperties,
  MigrationOutputs,
  MigrationResult,
  MigrationStatus,
  outputsOf,
  PrometheusTsdbMigration,
  PrometheusTsdbMigrationArgs,
  PrometheusWorkloadArgs,
  ReplicaResult,
  WorkloadSummary,
} from "./prometheusTsdbMigration";
export { PlanSummary } from "./decisions/planInput";
