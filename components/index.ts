// The package's public surface: the migration component and its documented args, for a
// Pulumi program that declares a migration next to its own resources.

export {
  MigrationOutputs,
  PrometheusTsdbMigration,
  PrometheusTsdbMigrationArgs,
  PrometheusWorkloadArgs,
} from "./prometheusTsdbMigration";
