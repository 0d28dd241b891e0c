// The part of js-yaml 4 (a devDependency, for the check of docs/rbac.yaml) the tests use;
// the package ships no types of its own.
declare module "js-yaml" {
  /** Parses one YAML document. */
  export function load(text: string): unknown;
  /** Parses every document of a multi-document YAML stream. */
  export function loadAll(text: string): unknown[];
}
