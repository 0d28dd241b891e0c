import * as assert from "node:assert/strict";
import {
  DiscoveryContainer,
  flagValue,
  parseCwd,
  parseFlags,
  parseVersion,
  pickPod,
  PodObject,
  proxyPath,
  proxyTarget,
  resolveAdminApi,
  resolveStorageFlags,
  resolveUrl,
  resolveVersion,
  ServerReport,
  specDataPath,
} from "../../components/decisions/discovery";
import { WorkloadRef } from "../../components/decisions/config";
import { BITNAMI_IMAGE, OFFICIAL_IMAGE, serverFlags } from "../fixtures/workloads";

const ref: WorkloadRef = { namespace: "ns", kind: "Deployment", name: "p", container: "p" };
const asked = (flags: Record<string, string>): ServerReport => ({
  reached: true,
  pod: "p-0",
  flags: { "storage.tsdb.path": "data/", ...flags },
});

describe("specDataPath: what the container spec alone can tell", () => {
  const cases: { name: string; c: DiscoveryContainer; want: string | undefined }[] = [
    { name: "no args: the image's CMD decides", c: { name: "p" }, want: undefined },
    { name: "absolute flag", c: { name: "p", args: ["--storage.tsdb.path=/data"] }, want: "/data" },
    {
      name: "flag with space, trailing slash",
      c: { name: "p", args: ["--storage.tsdb.path", "/data/"] },
      want: "/data",
    },
    {
      name: "relative flag without workingDir: the image's WORKDIR decides",
      c: { name: "p", args: ["--storage.tsdb.path=data"] },
      want: undefined,
    },
    {
      name: "relative flag under workingDir",
      c: { name: "p", workingDir: "/opt/p", args: ["--storage.tsdb.path=data"] },
      want: "/opt/p/data",
    },
    {
      name: "args without the flag and no workingDir (BKPR)",
      c: { name: "p", args: ["--config.file=/etc/p.yml"] },
      want: undefined,
    },
    {
      name: "args without the flag under workingDir: data/",
      c: { name: "p", workingDir: "/w", args: ["--config.file=/etc/p.yml"] },
      want: "/w/data",
    },
    {
      name: "flag in command",
      c: { name: "p", command: ["/bin/prometheus", "--storage.tsdb.path=/tsdb"] },
      want: "/tsdb",
    },
    {
      name: "shell wrapper hides it",
      c: { name: "p", command: ["sh", "-c", "prometheus --storage.tsdb.path=/x"] },
      want: undefined,
    },
    {
      name: "env expansion hides it",
      c: { name: "p", args: ["--storage.tsdb.path=$(DATA)"] },
      want: undefined,
    },
  ];
  for (const tc of cases) it(tc.name, () => assert.equal(specDataPath(tc.c)?.value, tc.want));
  it("flagValue reads single-dash flags too", () =>
    assert.equal(flagValue(["-storage.tsdb.path=/a"], "storage.tsdb.path"), "/a"));
});

describe("proxyTarget and proxyPath: where to ask before the flags are known", () => {
  const cases: { name: string; args: string[]; url?: string; want: string }[] = [
    { name: "defaults", args: [], want: "/api/v1/namespaces/ns/pods/p-0:9090/proxy/api/v1/x" },
    {
      name: "listen address",
      args: ["--web.listen-address=0.0.0.0:9091"],
      want: "/api/v1/namespaces/ns/pods/p-0:9091/proxy/api/v1/x",
    },
    {
      name: "route prefix",
      args: ["--web.route-prefix=/prom/"],
      want: "/api/v1/namespaces/ns/pods/p-0:9090/proxy/prom/api/v1/x",
    },
    {
      name: "external URL's path",
      args: ["--web.external-url=https://x.example.com/prometheus"],
      want: "/api/v1/namespaces/ns/pods/p-0:9090/proxy/prometheus/api/v1/x",
    },
    {
      name: "BKPR: external URL with path / and no prefix",
      args: ["--web.external-url=http://prometheus.example.com/"],
      want: "/api/v1/namespaces/ns/pods/p-0:9090/proxy/api/v1/x",
    },
    {
      name: "route prefix / wins over the external URL's path",
      args: ["--web.external-url=https://x.example.com/p", "--web.route-prefix=/"],
      want: "/api/v1/namespaces/ns/pods/p-0:9090/proxy/api/v1/x",
    },
    {
      name: "the url key wins",
      args: ["--web.route-prefix=/a"],
      url: "http://localhost:9999/b/",
      want: "/api/v1/namespaces/ns/pods/p-0:9999/proxy/b/api/v1/x",
    },
  ];
  for (const tc of cases)
    it(tc.name, () =>
      assert.equal(
        proxyPath(
          "ns",
          "p-0",
          proxyTarget({ url: tc.url }, { name: "p", args: tc.args }),
          "/api/v1/x",
        ),
        tc.want,
      ),
    );
});

describe("pickPod", () => {
  const pod = (
    name: string,
    o: { phase?: string; ready?: boolean; deleting?: boolean; waiting?: boolean } = {},
  ) =>
    ({
      metadata: { name, ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}) },
      spec: { containers: [{ name: "prometheus" }] },
      status: {
        phase: o.phase ?? "Running",
        containerStatuses: [
          {
            name: "prometheus",
            ready: o.waiting ? false : (o.ready ?? true),
            state: o.waiting ? { waiting: { reason: "ContainerCreating" } } : { running: {} },
          },
        ],
      },
    }) as PodObject;
  const cases: { name: string; pods: PodObject[]; want: string }[] = [
    { name: "no pods", pods: [], want: "why:no pod of it exists" },
    { name: "one ready", pods: [pod("a")], want: "a" },
    { name: "ready first", pods: [pod("a", { ready: false }), pod("b")], want: "b" },
    { name: "running but not ready", pods: [pod("a", { ready: false })], want: "a" },
    {
      name: "a pending pod whose Prometheus waits, or a deleting pod, is not asked",
      pods: [pod("a", { phase: "Pending", waiting: true }), pod("b", { deleting: true })],
      want: 'why:none of its 2 pod(s) runs container "prometheus"',
    },
    {
      // Issue 23: a sidecar image no node can pull keeps the pod Pending, its Prometheus runs.
      name: "a pending pod whose Prometheus runs (another container can't start) is asked",
      pods: [pod("a", { phase: "Pending", ready: false })],
      want: "a",
    },
  ];
  for (const tc of cases)
    it(tc.name, () => {
      const r = pickPod(tc.pods, "prometheus");
      assert.equal(r.pod ?? `why:${(r as { why: string }).why}`, tc.want);
    });
});

describe("parsing the server's status answers", () => {
  it("flags: every string flag; a server without storage.tsdb.path is not a Prometheus", () => {
    const flags = serverFlags(["--storage.tsdb.path=/data"], OFFICIAL_IMAGE);
    assert.equal(parseFlags({ status: "success", data: flags })["storage.tsdb.path"], "/data");
    assert.throws(() => parseFlags({ status: "success", data: {} }), /no storage\.tsdb\.path/);
    assert.throws(() => parseFlags({ status: "error", error: "x" }), /did not answer/);
    assert.throws(() => parseFlags("<html>"), /did not answer/);
  });
  it("runtimeinfo CWD and buildinfo version", () => {
    assert.equal(parseCwd({ status: "success", data: { CWD: "/prometheus" } }), "/prometheus");
    assert.equal(parseCwd({ status: "success", data: { CWD: "" } }), undefined);
    assert.equal(parseVersion({ status: "success", data: { version: "2.26.0" } }), "2.26.0");
    assert.equal(parseVersion({ status: "success", data: {} }), undefined);
  });
  it("the fake server reports BKPR's command line the way Prometheus does", () => {
    const f = serverFlags(
      ["--config.file=/c.yml", "--web.external-url=http://prometheus.example.com/"],
      BITNAMI_IMAGE,
    );
    assert.equal(f["storage.tsdb.path"], "data/");
    assert.equal(f["web.route-prefix"], "/");
    // The container sets no args: the image's CMD is the command line.
    assert.equal(
      serverFlags(undefined, BITNAMI_IMAGE)["storage.tsdb.path"],
      "/opt/bitnami/prometheus/data",
    );
  });
});

describe("resolve*: each value names its source", () => {
  const c: DiscoveryContainer = {
    name: "p",
    args: ["--web.listen-address=:9091", "--storage.tsdb.retention.time=30d"],
  };
  const cases: {
    name: string;
    got: () => { value: unknown; from: string };
    want: unknown;
    from: RegExp;
  }[] = [
    {
      name: "url from config",
      got: () => resolveUrl("source", { ...ref, url: "http://localhost:1/a/" }, c, undefined),
      want: "http://localhost:1/a",
      from: /^config source\.url$/,
    },
    {
      name: "url from the server: / prefix is none",
      got: () =>
        resolveUrl(
          "source",
          ref,
          c,
          asked({ "web.listen-address": "0.0.0.0:9092", "web.route-prefix": "/" }),
        ),
      want: "http://localhost:9092",
      from: /^server p-0: flags web\.listen-address, web\.route-prefix$/,
    },
    {
      name: "url from the spec",
      got: () => resolveUrl("source", ref, c, { reached: false, why: "x" }),
      want: "http://localhost:9091",
      from: /^container spec: /,
    },
    {
      name: "admin API from the server",
      got: () => resolveAdminApi(c, asked({ "web.enable-admin-api": "true" })),
      want: true,
      from: /^server p-0: flag web\.enable-admin-api$/,
    },
    {
      name: "admin API from the spec",
      got: () =>
        resolveAdminApi(
          { name: "p", args: ["--web.enable-admin-api"] },
          { reached: false, why: "x" },
        ),
      want: true,
      from: /^container spec: /,
    },
    {
      name: "version from buildinfo",
      got: () => resolveVersion({ ...(asked({}) as object), version: "3.13.5" } as ServerReport),
      want: "3.13.5",
      from: /^server p-0: buildinfo$/,
    },
    {
      name: "version unknown without buildinfo",
      got: () => resolveVersion(asked({})),
      want: undefined,
      from: /^unknown: the server has no buildinfo$/,
    },
    {
      name: "retention from the server",
      got: () =>
        resolveStorageFlags(
          c,
          asked({ "storage.tsdb.retention.time": "15d", "storage.tsdb.min-block-duration": "2h" }),
        ),
      want: { "storage.tsdb.retention.time": "15d", "storage.tsdb.min-block-duration": "2h" },
      from: /^server p-0: flags$/,
    },
    {
      name: "retention from the spec",
      got: () => resolveStorageFlags(c, undefined),
      want: { "storage.tsdb.retention.time": "30d" },
      from: /^container spec/,
    },
  ];
  for (const tc of cases)
    it(tc.name, () => {
      const r = tc.got();
      assert.deepEqual(r.value, tc.want);
      assert.match(r.from, tc.from);
    });
});
