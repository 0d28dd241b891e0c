// Admission before the rollout (issue 21 item 4): the pod a sidecar patch would make, and what
// a server-side dry-run of it says. Table tests of decisions/admission.ts; the messages are
// those a v1.34 API server gave in the lab.

import * as assert from "node:assert/strict";
import {
  admissionNeeded,
  admissionPod,
  AdmissionSubject,
  admissionVerdict,
  AdmissionVerdict,
  DryRunAnswer,
  parseQuantity,
  quotaUsage,
  replacesInPlace,
} from "../../components/decisions/admission";
import { Container, WorkloadObject } from "../../components/decisions/workload";
import { bkprStatefulSet, sourceDeployment } from "../fixtures/workloads";

const sidecar: Container = {
  name: "ptm-rsync",
  image: "docker.io/instrumentisto/rsync-ssh:alpine3.22",
  resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { cpu: "1", memory: "256Mi" } },
};
const scratch = { name: "ptm-scratch", emptyDir: { sizeLimit: "256Mi" } };

describe("admission: the pod a sidecar patch would make", () => {
  it("a Deployment's template plus the sidecar, the scratch volume and the pull secrets", () => {
    const w = sourceDeployment() as WorkloadObject;
    const pod = admissionPod(w, "Deployment", "monitoring", "prometheus-server", sidecar, scratch, [
      "regcred",
    ]);
    assert.equal(pod.apiVersion, "v1");
    assert.equal(pod.kind, "Pod");
    assert.equal(pod.metadata.namespace, "monitoring");
    assert.equal(pod.metadata.generateName, "prometheus-server-ptm-admission-");
    assert.deepEqual(pod.metadata.labels, w.spec!.template!.metadata!.labels);
    assert.deepEqual(
      pod.spec.containers!.map((c) => c.name),
      ["prometheus-server-configmap-reload", "prometheus-server", "ptm-rsync"],
    );
    assert.deepEqual(pod.spec.containers![2], sidecar);
    assert.deepEqual(pod.spec.volumes!.at(-1), scratch);
    assert.deepEqual(pod.spec.imagePullSecrets, [{ name: "regcred" }]);
    // The rest of the pod spec is the template's, untouched.
    assert.equal(
      (pod.spec as Record<string, unknown>).serviceAccountName,
      (w.spec!.template!.spec as Record<string, unknown>).serviceAccountName,
    );
    // The live object is not changed.
    assert.equal(w.spec!.template!.spec!.containers!.length, 2);
  });

  it("a sidecar already in the template is replaced in place, not added twice", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.containers!.splice(1, 0, { name: "ptm-rsync", image: "old" });
    w.spec!.template!.spec!.volumes!.push({ name: "ptm-scratch", emptyDir: {} });
    const pod = admissionPod(w, "Deployment", "monitoring", "p", sidecar, scratch, []);
    assert.deepEqual(
      pod.spec.containers!.map((c) => `${c.name} ${c.image}`),
      [
        "prometheus-server-configmap-reload quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        `ptm-rsync ${sidecar.image}`,
        "prometheus-server quay.io/prometheus/prometheus:v3.14.0",
      ],
    );
    assert.equal(pod.spec.volumes!.filter((v) => v.name === "ptm-scratch").length, 1);
    assert.equal(pod.spec.imagePullSecrets, undefined);
  });

  it("pull secrets the pod lists already are kept once, in their order", () => {
    const w = sourceDeployment() as WorkloadObject;
    w.spec!.template!.spec!.imagePullSecrets = [{ name: "a" }, { name: "b" }];
    const pod = admissionPod(w, "Deployment", "monitoring", "p", sidecar, scratch, ["b", "c"]);
    assert.deepEqual(pod.spec.imagePullSecrets, [{ name: "a" }, { name: "b" }, { name: "c" }]);
  });

  it("a StatefulSet's claim templates become the claims of its first pod (else the mounts are invalid)", () => {
    const w = bkprStatefulSet() as WorkloadObject;
    const pod = admissionPod(w, "StatefulSet", "kubeprod", "prometheus", sidecar, scratch, []);
    assert.deepEqual(
      pod.spec.volumes!.map((v) => v.name),
      ["config", "data", "ptm-scratch"],
    );
    assert.deepEqual(pod.spec.volumes!.find((v) => v.name === "data")!.persistentVolumeClaim, {
      claimName: "data-prometheus-0",
    });
    assert.equal(pod.metadata.labels!["statefulset.kubernetes.io/pod-name"], "prometheus-0");
    assert.deepEqual(pod.metadata.annotations, w.spec!.template!.metadata!.annotations);
  });
});

describe("admission: quantities and what a pod counts against a quota", () => {
  const table: [string, number | undefined][] = [
    ["1", 1],
    ["100m", 0.1],
    ["2500m", 2.5],
    ["256Mi", 256 * 2 ** 20],
    ["1Gi", 2 ** 30],
    ["1k", 1000],
    ["1M", 1e6],
    ["1e3", 1000],
    ["0.5", 0.5],
    ["", undefined],
    ["ten", undefined],
    ["1Qi", undefined],
  ];
  for (const [q, want] of table) {
    it(`"${q}" is ${want}`, () => assert.equal(parseQuantity(q), want));
  }

  it("sums the containers; requests default to limits; an init container counts when larger", () => {
    const usage = quotaUsage({
      containers: [
        { name: "a", resources: { limits: { cpu: "500m", memory: "100Mi" } } },
        { name: "b", resources: { requests: { cpu: "100m" }, limits: { cpu: "1" } } },
        { name: "c" },
      ],
      initContainers: [{ name: "i", resources: { requests: { memory: "1Gi" } } }],
    });
    assert.equal(usage["pods"], 1);
    assert.equal(usage["count/pods"], 1);
    assert.equal(usage["limits.cpu"], 1.5);
    assert.equal(usage["requests.cpu"], 0.6);
    assert.equal(usage["cpu"], 0.6);
    assert.equal(usage["limits.memory"], 100 * 2 ** 20);
    // The init container's 1Gi is more than the containers' 100Mi, and runs alone.
    assert.equal(usage["requests.memory"], 2 ** 30);
    assert.equal(usage["memory"], 2 ** 30);
  });
});

describe("admission: whether the check is needed", () => {
  const table: [string, Container | undefined, number, string[], string[], boolean][] = [
    ["no sidecar yet: the patch rolls the pod", undefined, 0, [], [], true],
    ["the sidecar runs, unchanged: nothing rolls", sidecar, 0, [], [], false],
    ["a config key changes it: the pod rolls", sidecar, 1, [], [], true],
    ["a pull secret is added: the pod rolls", sidecar, 0, [], ["regcred"], true],
    ["the pull secret is there already", sidecar, 0, ["regcred"], ["regcred"], false],
  ];
  for (const [what, live, restarting, have, want, needed] of table) {
    it(what, () =>
      assert.equal(admissionNeeded(live, new Array(restarting).fill({}), have, want), needed),
    );
  }
});

describe("admission: in-place replacement", () => {
  it("Recreate Deployments and StatefulSets replace the old pod first", () => {
    assert.equal(replacesInPlace("Deployment", { spec: { strategy: { type: "Recreate" } } }), true);
    assert.equal(replacesInPlace("StatefulSet", { spec: {} }), true);
    assert.equal(replacesInPlace("Deployment", { spec: { strategy: {} } }), false);
    assert.equal(
      replacesInPlace("Deployment", { spec: { strategy: { type: "RollingUpdate" } } }),
      false,
    );
  });
});

describe("admission: what the dry-run said", () => {
  const subject = (o: Partial<AdmissionSubject> = {}): AdmissionSubject => ({
    key: "target",
    workload: "StatefulSet adm/dst",
    namespace: "adm",
    sidecar: "ptm-rsync",
    inPlace: true,
    // The old pod: a Prometheus with limits 500m and 512Mi.
    oldPod: {
      pods: 1,
      "limits.cpu": 0.5,
      "limits.memory": 512 * 2 ** 20,
      "requests.cpu": 0.5,
      "requests.memory": 512 * 2 ** 20,
    },
    ...o,
  });
  const refused = (stderr: string): DryRunAnswer => ({ code: 1, stdout: "", stderr });
  const forbidden = (m: string) =>
    refused(
      `Error from server (Forbidden): error when creating "STDIN": pods "dst-ptm-admission-8hfdj" is forbidden: ${m}`,
    );

  interface Case {
    what: string;
    subject?: Partial<AdmissionSubject>;
    answer: DryRunAnswer;
    action: AdmissionVerdict["action"];
    key?: string;
    message: RegExp[];
  }
  const cases: Case[] = [
    {
      what: "admitted",
      answer: { code: 0, stdout: '{"kind":"Pod"}', stderr: "" },
      action: "admitted",
      message: [
        /StatefulSet adm\/dst with the sidecar ptm-rsync: admitted by a server-side dry-run/,
      ],
    },
    {
      what: "admitted with a warning (PodSecurity warn mode): warned, with it",
      answer: {
        code: 0,
        stdout: "{}",
        stderr:
          'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (containers "prometheus", "ptm-rsync" must set securityContext.allowPrivilegeEscalation=false)',
      },
      action: "warn",
      message: [/admitted, with warnings: would violate PodSecurity "restricted:latest"/],
    },
    {
      what: "a quota that requires limits the sidecar lacks: sidecarResources, naming the quota",
      answer: forbidden(
        "failed quota: compute: must specify limits.cpu for: ptm-rsync; limits.memory for: ptm-rsync",
      ),
      action: "refuse",
      key: "sidecarResources",
      message: [
        /StatefulSet adm\/dst with the sidecar ptm-rsync would not be admitted/,
        /ResourceQuota adm\/compute requires limits\.cpu, limits\.memory of every container, and the sidecar ptm-rsync sets none/,
        /set them in sidecarResources\.limits/,
        /nothing was changed/,
      ],
    },
    {
      what: "a quota that requires limits the workload's own container lacks: the workload's key",
      answer: forbidden("failed quota: compute: must specify limits.memory for: prometheus"),
      action: "refuse",
      key: "target",
      message: [
        /ResourceQuota adm\/compute requires limits\.memory of every container, and prometheus sets none/,
        /its pod would not be created again either/,
      ],
    },
    {
      what: "exceeded quota that the old pod's usage explains (in place): warned, never 'ok'",
      answer: forbidden(
        "exceeded quota: compute, requested: limits.cpu=1500m, used: limits.cpu=500m, limited: limits.cpu=2",
      ),
      action: "warn",
      message: [
        /ResourceQuota adm\/compute/,
        /counts the pod that the rollout replaces/,
        /limits\.cpu 1\.5 \+ 0\.5 used - 0\.5 of the old pod <= 2/,
        /quotas after compute were not checked/,
      ],
    },
    {
      what: "exceeded quota even without the old pod: sidecarResources, with the numbers",
      answer: forbidden(
        "exceeded quota: compute, requested: limits.cpu=2500m, used: limits.cpu=500m, limited: limits.cpu=1",
      ),
      action: "refuse",
      key: "sidecarResources",
      message: [
        /ResourceQuota adm\/compute would be exceeded/,
        /limits\.cpu: the new pod asks 2500m, 500m are used \(0\.5 of it by the pod being replaced\), the quota allows 1/,
        /lower sidecarResources or raise the quota/,
      ],
    },
    {
      what: "exceeded quota next to the old pod (a RollingUpdate Deployment): no subtraction",
      subject: { inPlace: false, workload: "Deployment adm/src", key: "source" },
      answer: forbidden(
        "exceeded quota: compute, requested: limits.cpu=1500m, used: limits.cpu=500m, limited: limits.cpu=2",
      ),
      action: "refuse",
      key: "sidecarResources",
      message: [/ResourceQuota adm\/compute would be exceeded/, /starts next to the old one/],
    },
    {
      what: "exceeded pod count, in place: the old pod goes first",
      answer: forbidden("exceeded quota: few, requested: pods=1, used: pods=1, limited: pods=1"),
      action: "warn",
      message: [/pods 1 \+ 1 used - 1 of the old pod <= 1/],
    },
    {
      what: "exceeded pod count, not in place: the workload's key",
      subject: { inPlace: false, workload: "Deployment adm/src", key: "source" },
      answer: forbidden("exceeded quota: few, requested: pods=1, used: pods=1, limited: pods=1"),
      action: "refuse",
      key: "source",
      message: [/ResourceQuota adm\/few would be exceeded/],
    },
    {
      what: "a quota message whose numbers don't parse: refused (can't prove a false alarm)",
      answer: forbidden("exceeded quota: compute, requested: limits.cpu=lots, used: x, limited: y"),
      action: "refuse",
      key: "sidecarResources",
      message: [/ResourceQuota adm\/compute would be exceeded/],
    },
    {
      what: "a LimitRange maximum: sidecarResources, naming where to look",
      answer: forbidden("maximum cpu usage per Container is 800m, but limit is 1"),
      action: "refuse",
      key: "sidecarResources",
      message: [
        /a LimitRange of namespace adm: maximum cpu usage per Container is 800m, but limit is 1/,
        /kubectl -n adm get limitrange/,
        /sidecarResources within its bounds/,
      ],
    },
    {
      what: "PodSecurity enforce: the workload's key, naming the namespace label",
      answer: forbidden(
        'violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or containers "prometheus", "ptm-rsync" must set securityContext.runAsNonRoot=true)',
      ),
      action: "refuse",
      key: "target",
      message: [
        /PodSecurity admission \(label pod-security\.kubernetes\.io\/enforce of namespace adm\)/,
        /runAsNonRoot != true/,
        /the sidecar copies the securityContext of the Prometheus container/,
      ],
    },
    {
      what: "a webhook's registry allowlist: sidecarImage, naming the webhook",
      answer: refused(
        'Error from server (Forbidden): error when creating "STDIN": admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] container <ptm-rsync> has an invalid image repo <docker.io/instrumentisto/rsync-ssh:alpine3.22>, allowed repos are ["registry.example.com/"]',
      ),
      action: "refuse",
      key: "sidecarImage",
      message: [
        /admission webhook "validation\.gatekeeper\.sh"/,
        /invalid image repo/,
        /set sidecarImage to an image the policy allows/,
      ],
    },
    {
      what: "a webhook's other policy: the workload's key",
      answer: refused(
        'Error from server: error when creating "STDIN": admission webhook "validate.kyverno.svc-fail" denied the request: policy require-team-label: label team is required',
      ),
      action: "refuse",
      key: "target",
      message: [/admission webhook "validate\.kyverno\.svc-fail"/, /label team is required/],
    },
    {
      what: "a webhook that can't be called (failurePolicy Fail): the pod would not be created either",
      answer: refused(
        'Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling webhook "policy.example.com": failed to call webhook: Post "https://policy.kube-system.svc:443/validate?timeout=10s": dial tcp 10.0.0.9:443: connect: connection refused',
      ),
      action: "refuse",
      key: "target",
      message: [/admission webhook "policy\.example\.com" could not be called/],
    },
    {
      what: "the image policy webhook plugin: sidecarImage",
      answer: forbidden("image policy webhook backend denied one or more images: not allowed"),
      action: "refuse",
      key: "sidecarImage",
      message: [/image policy webhook backend denied/],
    },
    {
      what: "an invalid pod: the workload's key, with the API server's words",
      answer: refused(
        'The Pod "dst-ptm-admission-x" is invalid: spec.containers[2].ports[0].name: Duplicate value: "ptm-rsync"',
      ),
      action: "refuse",
      key: "target",
      message: [/is invalid: spec\.containers\[2\]\.ports\[0\]\.name: Duplicate value/],
    },
    {
      what: "no right to create pods: not checked, and why (never ok)",
      answer: forbidden(
        'User "system:serviceaccount:ci:deployer" cannot create resource "pods" in API group "" in the namespace "adm"',
      ),
      action: "unchecked",
      message: [
        /admission NOT checked for StatefulSet adm\/dst/,
        /cannot create resource "pods"/,
        /a dry-run needs the right to create pods in adm/,
      ],
    },
    {
      what: "the cluster can't be reached: not checked",
      answer: refused("The connection to the server 10.0.0.1:6443 was refused"),
      action: "unchecked",
      message: [/admission NOT checked/, /connection to the server/],
    },
    {
      what: "kubectl says nothing: not checked",
      answer: { code: 137, stdout: "", stderr: "" },
      action: "unchecked",
      message: [/admission NOT checked/, /exit 137/],
    },
  ];

  for (const c of cases) {
    it(c.what, () => {
      const v = admissionVerdict(subject(c.subject), c.answer);
      assert.equal(v.action, c.action, v.message);
      if (c.key) assert.equal(v.action === "refuse" ? v.key : undefined, c.key);
      for (const m of c.message) assert.match(v.message, m);
      // One line, no stack, no raw "Error from server" prefix.
      assert.ok(!v.message.includes("\n"), v.message);
      assert.ok(!/Error from server|error when creating/.test(v.message), v.message);
    });
  }
});
