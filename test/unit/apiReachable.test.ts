// Issue 21 item 6: the source's (and the target's) API must be reachable from where the probe
// runs. A TLS or basic-auth web config, or a listen address bound to the pod IP, is detected
// and refused with what to set; a null answer never becomes "now" (gap 0) or "no features".

import * as assert from "node:assert/strict";
import { ConfigError, WorkloadRef } from "../../components/decisions/config";
import { resolveUrl, ServerReport } from "../../components/decisions/discovery";
import { planMigration } from "../../components/decisions/plan";
import { planInput } from "../../components/decisions/planInput";
import { apiFailureCause, requireServerAnswers } from "../../components/decisions/serverAnswers";
import { parseProbe, ProbeResult } from "../../components/decisions/sidecarOutput";

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 0, 0, 0);

function probe(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    blocks: [],
    snapshotBlocks: [],
    buildinfo: { version: "3.13.5" },
    flags: { "storage.tsdb.path": "/prometheus" },
    tsdb: { minTime: T0, maxTime: T0 + H, numSeries: 10 },
    dfAvailableBytes: 1e9,
    nowMs: T0 + H,
    apiUrl: "http://localhost:9090",
    apiErrors: {},
    server: { blocksLoaded: 0, headSeries: 10 },
    ...over,
  };
}

/** What probe.sh prints when none of the API reads answered, each failing with `why`. */
const unreachable = (why: string): ProbeResult =>
  probe({
    buildinfo: null,
    flags: null,
    tsdb: null,
    server: null,
    apiErrors: { buildinfo: why, flags: why, tsdb: why, metrics: why },
  });

const TLS_WGET = "wget: server returned error: HTTP/1.0 400 Bad Request";
const TLS_CURL = "HTTP 400: Client sent an HTTP request to an HTTPS server.";
const AUTH_WGET = "wget: server returned error: HTTP/1.1 401 Unauthorized";
const REFUSED_WGET = "wget: can't connect to remote host (127.0.0.1): Connection refused";
const REFUSED_CURL =
  "curl: (7) Failed to connect to 127.0.0.1 port 9090 after 0 ms: Couldn't connect to server";

describe("apiFailureCause: what the probe's HTTP client said, as a cause", () => {
  const cases: [string, ReturnType<typeof apiFailureCause>][] = [
    [TLS_WGET, "tls"],
    [TLS_CURL, "tls"],
    // Through the API server's pod proxy (kubectl get --raw).
    [
      "GET /api/v1/namespaces/m/pods/p:9090/proxy/api/v1/status/flags failed (exit 1: Error from server (BadRequest): Client sent an HTTP request to an HTTPS server.)",
      "tls",
    ],
    [AUTH_WGET, "basic-auth"],
    ["HTTP 401: Unauthorized", "basic-auth"],
    [REFUSED_WGET, "refused"],
    [REFUSED_CURL, "refused"],
    ["wget: server returned error: HTTP/1.1 404 Not Found", "not-found"],
    ["wget: download timed out", "timeout"],
    ["curl: (28) Operation timed out after 30001 milliseconds", "timeout"],
    ["neither wget nor curl in this container", "no-client"],
    ["wget: bad address 'prometheus:9090'", "other"],
  ];
  for (const [why, want] of cases)
    it(`${want}: ${why}`, () => assert.equal(apiFailureCause(why), want));
});

describe("requireServerAnswers: a null answer is refused, naming the key and what to set", () => {
  const cases: { name: string; why: string; want: RegExp }[] = [
    {
      name: "TLS web config",
      why: TLS_WGET,
      want: /source\.url: .*http:\/\/localhost:9090.*HTTPS.*tls_server_config.*--web\.config\.file/,
    },
    {
      name: "basic auth",
      why: AUTH_WGET,
      want: /source\.url: .*401.*basic_auth_users.*--web\.config\.file/,
    },
    {
      name: "listen address bound to the pod IP",
      why: REFUSED_WGET,
      want: /source\.url: .*Connection refused.*--web\.listen-address.*0\.0\.0\.0:9090/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => requireServerAnswers("source", unreachable(c.why)),
        (e: Error) => e instanceof ConfigError && e.key === "source.url" && c.want.test(e.message),
      );
    });
  }
  it("names each answer that is missing, and the target's key on the target", () => {
    assert.throws(
      () =>
        requireServerAnswers(
          "target",
          probe({ tsdb: null, apiErrors: { tsdb: "wget: server returned error: HTTP/1.1 503" } }),
        ),
      /target\.url: .*\/api\/v1\/status\/tsdb.*503/,
    );
  });
  it("an older probe that did not say why still fails closed", () => {
    assert.throws(
      () => requireServerAnswers("source", probe({ buildinfo: null, apiErrors: undefined })),
      /source\.url: .*\/api\/v1\/status\/buildinfo.*did not answer/,
    );
  });
  it("answers present: no refusal", () => {
    assert.doesNotThrow(() => requireServerAnswers("source", probe()));
  });
});

describe("planInput fails closed on a source that did not answer (the gap never reads 0)", () => {
  const target = probe({
    buildinfo: { version: "3.16.0" },
    tsdb: { minTime: T0 + 0.5 * H, maxTime: T0 + H, numSeries: 5 },
  });
  it("today's failure: null head and no blocks planned as 'no samples', gap 0", () => {
    // What planMigration makes of it when nothing stops it: the reason for the refusal.
    const p = planMigration({
      sourceBlocks: [],
      sourceHead: undefined,
      targetVersion: "3.16.0",
      targetFlags: {},
      targetBlocks: [],
      targetEarliestMs: undefined,
      includeHead: false,
      nowMs: T0 + H,
    });
    assert.equal(p.gapMs, 0);
  });
  for (const why of [TLS_WGET, AUTH_WGET, REFUSED_WGET]) {
    it(`refused: ${why}`, () => {
      assert.throws(() => planInput([], unreachable(why), target, false), /source\.url: /);
    });
  }
  it("refused: the target did not answer", () => {
    assert.throws(() => planInput([], probe(), unreachable(TLS_WGET), false), /target\.url: /);
  });
});

describe("parseProbe reads what probe.sh says about the API", () => {
  it("apiUrl, apiErrors and the server's own /metrics", () => {
    const p = parseProbe(JSON.stringify(unreachable(TLS_WGET)));
    assert.equal(p.apiUrl, "http://localhost:9090");
    assert.equal(p.apiErrors?.["tsdb"], TLS_WGET);
    assert.equal(p.server, null);
    const ok = parseProbe(JSON.stringify(probe()));
    assert.deepEqual(ok.server, { blocksLoaded: 0, headSeries: 10 });
  });
  it("rejects a server count that is not a number", () => {
    assert.throws(
      () =>
        parseProbe(JSON.stringify({ ...probe(), server: { blocksLoaded: "x", headSeries: 0 } })),
      /blocksLoaded/,
    );
  });
});

describe("discovery: the listen address and the web config, read through the pod proxy", () => {
  const ref: WorkloadRef = { namespace: "m", kind: "Deployment", name: "p", container: "p" };
  const c = { name: "p", args: ["--config.file=/etc/p.yml"] };
  const asked = (flags: Record<string, string>): ServerReport => ({
    reached: true,
    pod: "p-0",
    flags: { "storage.tsdb.path": "/prometheus", ...flags },
  });
  it("a listen address bound to the pod IP is refused: localhost would be refused", () => {
    assert.throws(
      () => resolveUrl("source", ref, c, asked({ "web.listen-address": "10.244.0.7:9090" })),
      /source\.url: .*10\.244\.0\.7:9090.*--web\.listen-address=0\.0\.0\.0:9090/,
    );
  });
  it("the spec's $(POD_IP) listen address too", () => {
    const spec = { name: "p", args: ["--web.listen-address=$(POD_IP):9090"] };
    assert.throws(
      () => resolveUrl("source", ref, spec, { reached: false, why: "no pod" }),
      /source\.url: .*\$\(POD_IP\):9090/,
    );
  });
  it("3.x's repeated listen address: the one reachable at localhost is used", () => {
    const got = resolveUrl(
      "source",
      ref,
      c,
      asked({ "web.listen-address": "10.244.0.7:9091,127.0.0.1:9090" }),
    );
    assert.equal(got.value, "http://localhost:9090");
  });
  it("wildcard and loopback addresses are fine", () => {
    for (const a of ["0.0.0.0:9090", ":9090", "[::]:9090", "localhost:9090", "127.0.0.1:9090"]) {
      assert.equal(
        resolveUrl("source", ref, c, asked({ "web.listen-address": a })).value,
        "http://localhost:9090",
      );
    }
  });
  it("a pod proxy answer of a TLS or basic-auth server is refused at preview", () => {
    const tls: ServerReport = {
      reached: false,
      why: "GET /api/v1/namespaces/m/pods/p-0:9090/proxy/api/v1/status/flags failed (exit 1: Error from server (BadRequest): Client sent an HTTP request to an HTTPS server.)",
    };
    assert.throws(() => resolveUrl("source", ref, c, tls), /source\.url: .*tls_server_config/);
    const auth: ServerReport = {
      reached: false,
      why: "GET /api/v1/namespaces/m/pods/p-0:9090/proxy/api/v1/status/flags failed (exit 1: Error from server (Unauthorized): 401 Unauthorized)",
    };
    assert.throws(() => resolveUrl("source", ref, c, auth), /source\.url: .*basic_auth_users/);
  });
  it("an explicit url wins (the user says where it answers)", () => {
    const got = resolveUrl(
      "source",
      { ...ref, url: "http://p.m.svc:9090" },
      c,
      asked({ "web.listen-address": "10.244.0.7:9090" }),
    );
    assert.equal(got.value, "http://p.m.svc:9090");
  });
});
