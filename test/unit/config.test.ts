import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  autoStreamsMax,
  DEFAULT_SIDECAR_RESOURCES,
  BKPR_TARGET,
  ConfigError,
  parseConfig,
  RawConfig,
  SidecarResources,
} from "../../components/decisions/config";

describe("parseConfig", () => {
  const src = { name: "prom" };
  const ok: { name: string; raw: RawConfig; check: (c: ReturnType<typeof parseConfig>) => void }[] =
    [
      { name: "unset phase reverts", raw: {}, check: (c) => assert.equal(c.phase, "revert") },
      {
        name: "blank phase reverts",
        raw: { phase: "  " },
        check: (c) => assert.equal(c.phase, "revert"),
      },
      {
        name: "prepare",
        raw: { phase: "prepare", source: src },
        check: (c) => assert.equal(c.phase, "prepare"),
      },
      {
        name: "source defaults",
        raw: { phase: "migrate", source: src },
        check: (c) =>
          assert.deepEqual(c.source, {
            namespace: "default",
            kind: "Deployment",
            name: "prom",
            container: "prometheus",
            volume: undefined,
            dataPath: undefined,
            url: undefined,
          }),
      },
      {
        name: "target defaults to BKPR",
        raw: { phase: "prepare", source: src },
        check: (c) =>
          assert.deepEqual(
            { ...c.target, volume: undefined },
            { ...BKPR_TARGET, volume: undefined, dataPath: undefined, url: undefined },
          ),
      },
      {
        name: "target overrides merge with BKPR defaults",
        raw: { phase: "prepare", source: src, target: { namespace: "mon2" } },
        check: (c) =>
          assert.equal(c.target.name, "prometheus") === undefined &&
          assert.equal(c.target.namespace, "mon2"),
      },
      {
        name: "same name in another namespace is fine",
        raw: {
          phase: "prepare",
          source: { name: "prometheus", namespace: "a", kind: "StatefulSet" },
        },
        check: (c) => assert.equal(c.source.namespace, "a"),
      },
      {
        name: "bandwidth",
        raw: { phase: "prepare", source: src, bandwidthLimit: "20m" },
        check: (c) => assert.equal(c.bandwidthLimit, "20m"),
      },
      {
        name: "other defaults",
        raw: { phase: "prepare", source: src },
        check: (c) => {
          assert.equal(c.includeHead, false);
          assert.equal(c.maxWaitMinutes, 0);
          assert.equal(c.acceptGap, false);
          assert.equal(c.rolloutTimeoutSeconds, 600);
          assert.equal(c.bandwidthLimit, "");
          assert.equal(c.verifyWindows, 24);
          assert.equal(c.copyStreams, "auto");
        },
      },
      {
        name: "verifyWindows 0 (every window)",
        raw: { phase: "prepare", source: src, verifyWindows: 0 },
        check: (c) => assert.equal(c.verifyWindows, 0),
      },
      {
        // Pulumi config hands a number over as a string when the schema's type is string.
        name: "copyStreams auto, and a number as a string (issue 25)",
        raw: { phase: "prepare", source: src, copyStreams: "auto" },
        check: (c) => {
          assert.equal(c.copyStreams, "auto");
          const four = { phase: "prepare", source: src, copyStreams: "4" } as const;
          assert.equal(parseConfig(four).copyStreams, 4);
          assert.equal(parseConfig({ ...four, copyStreams: " Auto " }).copyStreams, "auto");
        },
      },
      {
        name: "copyStreams 1 and 16",
        raw: { phase: "prepare", source: src, copyStreams: 1 },
        check: (c) => {
          assert.equal(c.copyStreams, 1);
          assert.equal(
            parseConfig({ phase: "prepare", source: src, copyStreams: 16 }).copyStreams,
            16,
          );
        },
      },
      {
        name: "sidecarResources: requests and limits by default, so a limits quota admits the pods",
        raw: { phase: "prepare", source: src },
        check: (c) =>
          assert.deepEqual(c.sidecarResources, {
            requests: { cpu: "10m", memory: "32Mi" },
            limits: { cpu: "1", memory: "256Mi" },
          }),
      },
      {
        name: "sidecarResources: a section given replaces the default's, the other stays",
        raw: {
          phase: "prepare",
          source: src,
          sidecarResources: { limits: { cpu: "500m", memory: "1Gi", "ephemeral-storage": "1Gi" } },
        },
        check: (c) =>
          assert.deepEqual(c.sidecarResources, {
            requests: { cpu: "10m", memory: "32Mi" },
            limits: { cpu: "500m", memory: "1Gi", "ephemeral-storage": "1Gi" },
          }),
      },
      {
        name: "sidecarResources: limits {} drops the limits; a number is a quantity",
        raw: {
          phase: "prepare",
          source: src,
          sidecarResources: { requests: { cpu: 0.1, memory: "1e8" }, limits: {} },
        },
        check: (c) =>
          assert.deepEqual(c.sidecarResources, {
            requests: { cpu: "0.1", memory: "1e8" },
            limits: {},
          }),
      },
      {
        name: "imagePullSecrets: none by default",
        raw: { phase: "prepare", source: src },
        check: (c) => assert.deepEqual(c.imagePullSecrets, []),
      },
      {
        name: "imagePullSecrets: names, trimmed, each once",
        raw: {
          phase: "prepare",
          source: src,
          imagePullSecrets: ["regcred", " ghcr.io-pull ", "regcred"],
        },
        check: (c) => assert.deepEqual(c.imagePullSecrets, ["regcred", "ghcr.io-pull"]),
      },
    ];
  for (const tc of ok) it(`accepts: ${tc.name}`, () => tc.check(parseConfig(tc.raw)));

  const bad: { raw: RawConfig; key: string }[] = [
    { raw: { phase: "Prepare" }, key: "phase" },
    { raw: { phase: "prepare" }, key: "source.name" },
    { raw: { phase: "prepare", source: "prom" }, key: "source" },
    { raw: { phase: "prepare", source: ["prom"] }, key: "source" },
    { raw: { phase: "prepare", source: { name: "prom", kind: "Pod" } }, key: "source.kind" },
    {
      raw: { phase: "prepare", source: { name: "prom", namespace: "Bad_NS" } },
      key: "source.namespace",
    },
    { raw: { phase: "prepare", source: { name: "prom", container: 3 } }, key: "source.container" },
    {
      raw: { phase: "prepare", source: { name: "prom", dataPath: "data" } },
      key: "source.dataPath",
    },
    {
      raw: { phase: "prepare", source: { name: "prom", url: "localhost:9090" } },
      key: "source.url",
    },
    {
      raw: { phase: "prepare", source: { name: "prom" }, target: { kind: "CronJob" } },
      key: "target.kind",
    },
    {
      raw: {
        phase: "prepare",
        source: { name: "prometheus", namespace: "kubeprod", kind: "StatefulSet" },
      },
      key: "target",
    },
    { raw: { phase: "prepare", source: src, bandwidthLimit: "1 GB" }, key: "bandwidthLimit" },
    { raw: { phase: "prepare", source: src, sidecarImage: "" }, key: "sidecarImage" },
    { raw: { phase: "prepare", source: src, maxWaitMinutes: -1 }, key: "maxWaitMinutes" },
    { raw: { phase: "prepare", source: src, verifyWindows: 2.5 }, key: "verifyWindows" },
    { raw: { phase: "prepare", source: src, copyStreams: 0 }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: 17 }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: 2.5 }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: Number.NaN }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: "fast" }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: "0" }, key: "copyStreams" },
    { raw: { phase: "prepare", source: src, copyStreams: "" }, key: "copyStreams" },
    {
      raw: { phase: "prepare", source: src, rolloutTimeoutSeconds: 0 },
      key: "rolloutTimeoutSeconds",
    },
    { raw: { phase: "prepare", source: src, sidecarResources: "small" }, key: "sidecarResources" },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { limit: {} } },
      key: "sidecarResources.limit",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { requests: { cpu: "100 m" } } },
      key: "sidecarResources.requests.cpu",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { limits: { memory: "256MB" } } },
      key: "sidecarResources.limits.memory",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { limits: { memory: "-1Gi" } } },
      key: "sidecarResources.limits.memory",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { limits: { cpu: "0" } } },
      key: "sidecarResources.limits.cpu",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { limits: { gpu: "1" } } },
      key: "sidecarResources.limits.gpu",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { requests: ["cpu"] } },
      key: "sidecarResources.requests",
    },
    {
      raw: { phase: "prepare", source: src, sidecarResources: { requests: { memory: "512Mi" } } },
      key: "sidecarResources.requests.memory",
    },
    {
      raw: { phase: "prepare", source: src, imagePullSecrets: "regcred" },
      key: "imagePullSecrets",
    },
    {
      raw: { phase: "prepare", source: src, imagePullSecrets: ["ok", "Not_A_Name"] },
      key: "imagePullSecrets[1]",
    },
    { raw: { phase: "prepare", source: src, imagePullSecrets: [""] }, key: "imagePullSecrets[0]" },
  ];
  for (const tc of bad) {
    it(`refuses ${JSON.stringify(tc.raw)} naming ${tc.key}`, () => {
      assert.throws(
        () => parseConfig(tc.raw),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.key === tc.key &&
          e.message.startsWith(`prometheus-tsdb-migration:${tc.key}: `),
      );
    });
  }
});

// A stack named dev (`pulumi stack init dev`) takes its config from Pulumi.dev.yaml: an example
// that set a phase would patch workloads at its first `pulumi up`.
describe("autoStreamsMax: how far copyStreams auto may go on the source's side (issue 25)", () => {
  const withCpu = (cpu?: string): SidecarResources => ({
    requests: {},
    limits: cpu === undefined ? { memory: "256Mi" } : { cpu, memory: "256Mi" },
  });
  const rows: { name: string; cpu?: string; mode?: "patch" | "ephemeral"; want?: number }[] = [
    { name: "the default sidecar limit, 1 CPU", cpu: "1", want: 1 },
    { name: "2500m, rounded up", cpu: "2500m", want: 3 },
    { name: "100m: still one stream", cpu: "100m", want: 1 },
    { name: "2", cpu: "2", want: 2 },
    { name: "64: at most 16", cpu: "64", want: 16 },
    { name: "no CPU limit: nothing known", cpu: undefined, want: undefined },
    { name: "ephemeral: no resources of its own", cpu: "2", mode: "ephemeral", want: undefined },
  ];
  for (const r of rows)
    it(r.name, () =>
      assert.equal(autoStreamsMax(withCpu(r.cpu), r.mode ?? "patch")?.streams, r.want),
    );
  it("the default resources give 1, and say so with the key", () =>
    assert.deepEqual(autoStreamsMax(DEFAULT_SIDECAR_RESOURCES, "patch"), {
      streams: 1,
      why: "the CPU limit of the source sidecar, sidecarResources.limits.cpu 1",
    }));
});

describe("the example stack Pulumi.dev.yaml", () => {
  it("sets no phase; the phase line is there, commented out", () => {
    const text = fs.readFileSync(path.resolve(__dirname, "..", "..", "Pulumi.dev.yaml"), "utf8");
    assert.doesNotMatch(text, /^\s*prometheus-tsdb-migration:phase:/m);
    assert.match(text, /^\s*# prometheus-tsdb-migration:phase: prepare$/m);
  });
});
