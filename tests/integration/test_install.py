"""Installing modelmon as users do, on the real control plane: Helm and kubectl apply -k.

helm lint; every rendering passes `kubectl apply --dry-run=server` and the restricted Pod
Security Standard; `helm install` creates every object; the operator, run with a token of
the chart's ServiceAccount (TokenRequest API), manages monitors end to end under that RBAC
and nothing more (a ConfigMap source, a notifier's Secret, with rbac.retraining the
retraining Job); manifests/ installs the same objects as the chart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from kube import (
    REPO_ROOT,
    Cluster,
    Kubectl,
    KubectlError,
    apply_crds,
    cluster_sh,
    crd_files,
    manifest,
    unique_name,
    wait_for,
)
from operator_proc import OperatorProcess
from prometheus_client.parser import text_string_to_metric_families

import grafana
from modelmon.api.policy import USE_LABEL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHART = REPO_ROOT / "helm" / "modelmon"
MANIFESTS = REPO_ROOT / "manifests"
EXAMPLE = REPO_ROOT / "examples" / "breast-cancer"
CRD = "modelmonitors.modelmon.io"
KEEP = "helm.sh/resource-policy"
#: Values that turn on every optional object of the chart.
EVERYTHING = ["serviceMonitor.enabled=true", "grafanaDashboard.enabled=true",
              "networkPolicy.enabled=true"]
#: Values of an install whose replicas share the monitors.
REPLICATED = ["replicaCount=3"]
#: Lines of an operator log that mean it lacked a permission or crashed.
TROUBLE = ("Forbidden", "forbidden", " 403", "Request attempt", "Not enough permissions",
           "Traceback")


# --- helpers ---------------------------------------------------------------------------

def run_helm(helm: Path, cluster: Cluster | None, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/modelmon-helm/cache",
           "HELM_CONFIG_HOME": "/tmp/modelmon-helm/config",
           "HELM_DATA_HOME": "/tmp/modelmon-helm/data"}
    if cluster is not None:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def sets(values: Sequence[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def render(helm: Path, namespace: str, values: Sequence[str] = (), release: str = "modelmon",
           chart: Path = CHART) -> list[dict[str, Any]]:
    out = run_helm(helm, None, "template", release, str(chart), "-n", namespace,
                   *sets(values)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = find(docs, kind)
    return doc


def load_sync_crds() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_crds", REPO_ROOT / "hack" / "sync_crds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_crd() -> dict[str, Any]:
    docs = [d for p in crd_files() for d in yaml.safe_load_all(p.read_text()) if d]
    return next(d for d in docs if d["metadata"]["name"] == CRD)


def restricted(kubectl: Kubectl, namespace: str) -> None:
    """Enforce (and warn about) the restricted Pod Security Standard in the namespace."""
    kubectl("label", "namespace", namespace, "--overwrite",
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted")


def pod_from(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The pod the Deployment would create (no kubelet or ReplicaSet controller here)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": unique_name("modelmon-pod"), "namespace": namespace,
                         "labels": deployment["spec"]["template"]["metadata"]["labels"]},
            "spec": deployment["spec"]["template"]["spec"]}


def create_pod_dry_run(kubectl: Kubectl, pod: dict[str, Any]
                       ) -> subprocess.CompletedProcess[str]:
    """Admission of the pod, without creating it. Its ServiceAccount must exist (the
    ServiceAccount admission plugin checks), so it is created for real if missing."""
    ns, sa = pod["metadata"]["namespace"], pod["spec"]["serviceAccountName"]
    if not kubectl.exists("serviceaccount", sa, "-n", ns):
        kubectl("create", "serviceaccount", sa, "-n", ns)
    return kubectl("create", "--dry-run=server", "-f", "-", input=manifest(pod), check=False)


def sample_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.fixture(scope="module")
def monitoring_crds(cluster: Cluster) -> None:
    """The ServiceMonitor CRD, from the prometheus-operator module the PrometheusRule CRD
    comes from (the session fixture already applied that one)."""
    rules = Path(cluster_sh("prometheusrule-crd").strip())
    apply_crds(cluster.kubectl, [rules.with_name("monitoring.coreos.com_servicemonitors.yaml")])


@pytest.fixture
def other_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = unique_name("mm-other")
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "modelmon.io/test=true")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def monitor(name: str, data: Path, current: str = "current.csv", *,
            estimated: bool = False) -> dict[str, Any]:
    """The example monitor on ``data``; ``estimated`` adds a bound on estimated rocAuc, so
    that every series the dashboard queries is exported."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["schedule"] = {"interval": "10s"}
    doc["spec"]["reference"]["source"]["url"] = str(data / "reference.csv")
    doc["spec"]["current"]["source"]["url"] = str(data / current)
    doc["spec"]["alerting"] = {"labels": {"team": "risk"}}
    if estimated:
        doc["spec"]["performance"]["estimated"] = {"metrics": [{"name": "rocAuc", "min": 0.5}]}
    return doc


def phase_of(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    obj = kubectl.json("get", "mm", name, "-n", namespace)
    return (obj.get("status") or {}).get("phase")


def operator_env(deployment: dict[str, Any], admin_kubeconfig: Path) -> dict[str, str]:
    """The chart's environment for the operator (ports are the test's own), and $KUBECONFIG
    naming the admin: --kubeconfig must win, or the test would not test the RBAC."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env = {k: v for k, v in env.items() if not k.endswith("_PORT")}
    return {**env, "KUBECONFIG": str(admin_kubeconfig), "MODELMON_LOG_FORMAT": "json"}


def denied(sa: Kubectl, *args: str) -> bool:
    proc = sa(*args, check=False)
    return proc.returncode != 0 and "forbidden" in proc.stderr.lower()


def can_i(sa: Kubectl, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`kubectl auth can-i`; `resource/sub` asks about a subresource."""
    resource, _, sub = resource.partition("/")
    args = ["-n", namespace] if namespace else ["-A"]
    if sub:
        args.append(f"--subresource={sub}")
    return sa("auth", "can-i", verb, resource, *args, check=False).stdout.strip() == "yes"


def trouble(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(t in line for t in TROUBLE)]


# --- helm lint, schema, rendering ---------------------------------------------------------

@pytest.mark.parametrize("values", [[], EVERYTHING, ["watchNamespaces={a,b}"], REPLICATED,
                                    ["crds.enabled=false", "rbac.create=false",
                                     "serviceAccount.create=false",
                                     "serviceAccount.name=existing"]])
def test_helm_lint_strict(helm: Path, values: list[str]) -> None:
    proc = run_helm(helm, None, "lint", "--strict", str(CHART), *sets(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(("value", "message"), [
    ("replicaCont=2", "additional properties 'replicaCont' not allowed"),
    ("replicaCount=0", "at '/replicaCount'"),
    ("replication.leaseDuration=20", "at '/replication/leaseDuration'"),
    ("image.tga=1", "additional properties 'tga' not allowed"),
    ("image.digest=sha256:abc", "at '/image/digest'"),
    ("image.digest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
     "at '/image/digest'"),
    ("serviceMonitor.label.release=x", "additional properties 'label' not allowed"),
    ("operator.workers=0", "minimum"),
    ("operator.logFormat=xml", "operator/logFormat"),
    ("watchNamespaces={Bad_NS}", "watchNamespaces"),
    # The Kubernetes structures are closed too, at every depth.
    ("securityContext.readOnlyRootFileSystem=true",
     "at '/securityContext': additional properties 'readOnlyRootFileSystem' not allowed"),
    ("securityContext.capabilities.dorp={ALL}",
     "at '/securityContext/capabilities': additional properties 'dorp' not allowed"),
    ("podSecurityContext.runAsUsr=1",
     "at '/podSecurityContext': additional properties 'runAsUsr' not allowed"),
    ("podSecurityContext.seccompProfile.type=Default", "podSecurityContext/seccompProfile/type"),
    ("resources.limits.cpus=1", "at '/resources/limits': additional properties 'cpus'"),
    ("resources.request.cpu=1", "at '/resources': additional properties 'request'"),
    ("resources.limits.memory=1 GiB", "at '/resources/limits/memory'"),
    ("affinity.nodeAfinity.x=1", "at '/affinity': additional properties 'nodeAfinity'"),
    ("affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKy=x",
     "additional properties 'topologyKy' not allowed"),
    ("tolerations[0].efect=NoSchedule", "at '/tolerations/0': additional properties 'efect'"),
    ("nodeSelector.disk=1", "at '/nodeSelector/disk'"),  # label values are strings
    ("operator.extraEnv[0].valueFrom.fieldRef.fieldPth=x",
     "additional properties 'fieldPth' not allowed"),
    ("serviceMonitor.relabelings[0].target_label=x", "additional properties 'target_label'"),
    ("networkPolicy.metricsFrom[0].namespaceSelectr.x=y",
     "additional properties 'namespaceSelectr'"),
    ("rbac.retraining=yes", "at '/rbac/retraining'"),
    ("operator.egress.allow={10.0.0.0/8 x}", "at '/operator/egress/allow/0'"),
    ("operator.egress.alow={10.0.0.0/8}", "additional properties 'alow' not allowed"),
])
def test_schema_rejects_unknown_keys_and_bad_values(helm: Path, value: str, message: str) -> None:
    proc = run_helm(helm, None, "template", "x", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_the_image_is_the_published_one_by_default_and_a_digest_pins_it(helm: Path) -> None:
    """Default: the release workflow's image at appVersion; image.digest gives
    repository@digest and wins over a tag (tests/packaging/test_release.py checks the rest)."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    repository = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]

    def image(values: list[str]) -> str:
        pod = one(render(helm, "ns", values), "Deployment")["spec"]["template"]["spec"]
        return str(pod["containers"][0]["image"])

    digest = "sha256:" + "0123456789abcdef" * 4
    assert image([]) == f"{repository}:{meta['appVersion']}"
    assert image(["image.tag=1.2.3"]) == f"{repository}:1.2.3"
    assert image([f"image.digest={digest}", "image.tag=1.2.3"]) == f"{repository}@{digest}"
    assert image(["image.repository=registry.example/ml/modelmon", f"image.digest={digest}"]) \
        == f"registry.example/ml/modelmon@{digest}"


#: Values that set the Kubernetes structures of the chart the way users do: the closed
#: schema must accept every field here, and the apiserver (strict field validation) too.
KUBERNETES_VALUES: dict[str, Any] = {
    "resources": {"requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                  "limits": {"cpu": 2, "memory": "2Gi", "ephemeral-storage": "2Gi"}},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                           "fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch",
                           "supplementalGroups": [1000],
                           "seccompProfile": {"type": "RuntimeDefault"},
                           "appArmorProfile": {"type": "RuntimeDefault"}},
    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                        "privileged": False, "runAsNonRoot": True, "runAsUser": 65532,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                        "appArmorProfile": {"type": "RuntimeDefault"},
                        "procMount": "Default"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml",
                     "effect": "NoSchedule"},
                    {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In",
                                       "values": ["amd64", "arm64"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [
                    {"key": "pool", "operator": "NotIn", "values": ["spot"]}]}}]},
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app": "trainer"},
                                      "matchExpressions": [{"key": "tier",
                                                            "operator": "Exists"}]},
                    "namespaceSelector": {}}}]},
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "namespaces": ["ml-prod"],
             "labelSelector": {"matchLabels": {"app": "feature-store"}}}]}},
    "operator": {"extraEnv": [
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token",
                                                         "optional": True}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                           "divisor": "1Mi"}}},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
    "tmpSizeLimit": "512Mi",
    "serviceMonitor": {"enabled": True, "relabelings": [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node",
         "action": "replace"}],
        "metricRelabelings": [{"regex": "modelmon_kube_requests_total", "action": "drop",
                               "sourceLabels": ["__name__"]}]},
    "networkPolicy": {"enabled": True,
                      "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}},
                          "podSelector": {"matchLabels": {"app": "prometheus"}}}],
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                      "except": ["10.1.0.0/16"]}}],
                                  "ports": [{"protocol": "TCP", "port": 443},
                                            {"port": 5432, "endPort": 5433}]}]},
}


def test_the_closed_schema_accepts_the_kubernetes_fields(
        helm: Path, kubectl: Kubectl, namespace: str, monitoring_crds: None,
        tmp_path: Path) -> None:
    """The fields the schema lists are real: the apiserver, validating strictly (unknown
    fields are errors), accepts the rendered objects and keeps every value."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(KUBERNETES_VALUES))
    release = unique_name("mm")
    out = run_helm(helm, None, "template", release, str(CHART), "-n", namespace,
                   "--set", "crds.enabled=false", "-f", str(values)).stdout
    proc = kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace,
                   "-o", "json", "-f", "-", input=out)
    served = {i["kind"]: i for i in json.loads(proc.stdout)["items"]}
    pod = served["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    kv = KUBERNETES_VALUES
    assert pod["affinity"] == kv["affinity"]
    assert pod["tolerations"] == kv["tolerations"]
    assert pod["securityContext"] == kv["podSecurityContext"]
    assert container["securityContext"] == kv["securityContext"]
    assert container["resources"] == {**kv["resources"], "limits": {
        **kv["resources"]["limits"], "cpu": "2"}}
    env = {e["name"]: e for e in container["env"]}
    for var in kv["operator"]["extraEnv"]:
        served_var = json.loads(json.dumps(env[var["name"]]))
        served_var.get("valueFrom", {}).get("fieldRef", {}).pop("apiVersion", None)  # defaulted
        assert served_var == var
    endpoint = served["ServiceMonitor"]["spec"]["endpoints"][0]
    assert endpoint["relabelings"] == kv["serviceMonitor"]["relabelings"]
    assert endpoint["metricRelabelings"] == kv["serviceMonitor"]["metricRelabelings"]
    policy = served["NetworkPolicy"]["spec"]
    assert policy["ingress"][0]["from"] == kv["networkPolicy"]["metricsFrom"]
    assert policy["egress"][0]["to"] == kv["networkPolicy"]["egress"][0]["to"]


def container_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_the_reference_cache_budget_reaches_the_operator(helm: Path) -> None:
    """Unset, the operator takes a quarter of its memory limit; a number or a quantity
    becomes the environment twin; anything else is refused."""
    assert "MODELMON_REFERENCE_CACHE_BYTES" not in container_env(render(helm, "mm"))
    for value, env in (("300Mi", "300Mi"), ("314572800", "314572800")):
        rendered = container_env(render(helm, "mm", [f"operator.referenceCacheBytes={value}"]))
        assert rendered["MODELMON_REFERENCE_CACHE_BYTES"] == env
    proc = run_helm(helm, None, "template", "x", str(CHART), "--set",
                    "operator.referenceCacheBytes=lots", check=False)
    assert proc.returncode != 0 and "/operator/" in proc.stderr, proc.stderr


def test_source_bounds_reach_the_operator(helm: Path) -> None:
    """By default no local path is allowed, one source may bring 64Mi and a check's memory
    follows the container's limit; the values become the operator's environment twins; a
    relative path or a bad size is refused."""
    env = container_env(render(helm, "mm"))
    assert "MODELMON_ALLOW_LOCAL_PATH" not in env and env["MODELMON_MAX_SOURCE_BYTES"] == "64Mi"
    env = container_env(render(helm, "mm", ["sources.allowLocalPaths={/data/a,/data/b}",
                                             "sources.maxBytes=268435456"]))
    assert env["MODELMON_ALLOW_LOCAL_PATH"] == "/data/a,/data/b"
    assert env["MODELMON_MAX_SOURCE_BYTES"] == "268435456"
    assert "MODELMON_MAX_CHECK_MEMORY" not in container_env(render(helm, "mm"))
    env = container_env(render(helm, "mm", ["sources.maxCheckMemory=300Mi"]))
    assert env["MODELMON_MAX_CHECK_MEMORY"] == "300Mi"
    env = container_env(render(helm, "mm", ["sources.maxCheckMemory=314572800"]))
    assert env["MODELMON_MAX_CHECK_MEMORY"] == "314572800"
    for value in ("sources.allowLocalPaths={data}", "sources.maxBytes=1.5Gi",
                  "sources.maxCheckMemory=lots"):
        proc = run_helm(helm, None, "template", "x", str(CHART), "--set", value, check=False)
        assert proc.returncode != 0 and "/sources/" in proc.stderr, proc.stderr


def test_source_volumes_are_mounted_read_only_and_allowed(helm: Path) -> None:
    """sources.volumes: each is mounted read-only at its path, which the operator may read
    (beside allowLocalPaths); an item with no volume source, or a second one, is refused."""
    docs = render(helm, "mm", [
        "sources.allowLocalPaths={/data/a}",
        "sources.volumes[0].name=reference", "sources.volumes[0].mountPath=/data/reference",
        "sources.volumes[0].persistentVolumeClaim.claimName=ml-reference",
        "sources.volumes[1].name=lake", "sources.volumes[1].mountPath=/data/lake",
        "sources.volumes[1].nfs.server=nfs.example", "sources.volumes[1].nfs.path=/exports/ml"])
    env = container_env(docs)
    assert env["MODELMON_ALLOW_LOCAL_PATH"] == "/data/a,/data/reference,/data/lake"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["data-reference"] == {"name": "data-reference",
                                        "mountPath": "/data/reference", "readOnly": True}
    assert mounts["data-lake"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data-reference"]["persistentVolumeClaim"] == {
        "claimName": "ml-reference", "readOnly": True}
    assert volumes["data-lake"]["nfs"] == {"server": "nfs.example", "path": "/exports/ml",
                                           "readOnly": True}
    for values in (["sources.volumes[0].name=x", "sources.volumes[0].mountPath=/x"],
                   ["sources.volumes[0].name=x", "sources.volumes[0].mountPath=/x",
                    "sources.volumes[0].persistentVolumeClaim.claimName=a",
                    "sources.volumes[0].nfs.server=s", "sources.volumes[0].nfs.path=/p"],
                   ["sources.volumes[0].name=x", "sources.volumes[0].mountPath=x",
                    "sources.volumes[0].persistentVolumeClaim.claimName=a"]):
        proc = run_helm(helm, None, "template", "x", str(CHART), *sets(values), check=False)
        assert proc.returncode != 0 and "/sources/volumes/0" in proc.stderr, proc.stderr


@pytest.mark.parametrize(("version", "ok"), [("1.28.9", False), ("1.29.0", True),
                                            ("1.30.4-eks-1", True), ("1.34.10", True)])
def test_kube_version_is_checked(helm: Path, version: str, ok: bool) -> None:
    proc = run_helm(helm, None, "template", "x", str(CHART), "--kube-version", version,
                    check=False)
    assert (proc.returncode == 0) is ok, proc.stderr


def test_the_rendered_crd_is_the_one_in_crds(helm: Path) -> None:
    source = source_crd()
    kept = one(render(helm, "modelmon"), "CustomResourceDefinition")
    assert kept["metadata"].pop("annotations") == {KEEP: "keep"}
    assert kept == source
    not_kept = one(render(helm, "modelmon", ["crds.keep=false"]), "CustomResourceDefinition")
    assert "annotations" not in not_kept["metadata"] and not_kept == source
    assert not find(render(helm, "modelmon", ["crds.enabled=false"]), "CustomResourceDefinition")


def test_crd_sync_survives_template_syntax_and_annotations(helm: Path, tmp_path: Path) -> None:
    """A CRD whose text contains `{{` and that has annotations of its own renders as is."""
    sync = load_sync_crds()
    tricky = source_crd()
    tricky["metadata"]["annotations"] = {"example.com/owner": "ml-platform"}
    schema = tricky["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["description"] = "Templated text such as {{ .Values.x }} and {{- end }} stays text."
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "crd.yaml").write_text(yaml.safe_dump(tricky))
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "crds" / "modelmonitors.yaml").write_text(
        sync.render(tmp_path / "crds"))
    for keep, expected in ((True, {"example.com/owner": "ml-platform", KEEP: "keep"}),
                           (False, {"example.com/owner": "ml-platform"})):
        rendered = one(render(helm, "m", [f"crds.keep={str(keep).lower()}"], chart=chart),
                       "CustomResourceDefinition")
        assert rendered["metadata"]["annotations"] == expected
        rendered["metadata"]["annotations"] = tricky["metadata"]["annotations"]
        assert rendered == tricky


@pytest.mark.parametrize("mode", ["defaults", "everything", "namespaced", "replicated"])
def test_helm_template_passes_server_side_dry_run_and_pod_security(
        helm: Path, kubectl: Kubectl, namespace: str, monitoring_crds: None, mode: str) -> None:
    values = {"defaults": [], "everything": EVERYTHING,
              "namespaced": [f"watchNamespaces={{{namespace}}}"], "replicated": REPLICATED}[mode]
    restricted(kubectl, namespace)
    release = unique_name("mm")
    docs = render(helm, namespace, values, release=release)
    kinds = {d["kind"] for d in docs}
    expected = {"ServiceAccount", "Deployment", "Service", "CustomResourceDefinition"}
    expected |= {"defaults": {"ClusterRole", "ClusterRoleBinding"},
                 "everything": {"ClusterRole", "ClusterRoleBinding", "ServiceMonitor",
                                "ConfigMap", "NetworkPolicy"},
                 "namespaced": {"Role", "RoleBinding"},
                 "replicated": {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                "PodDisruptionBudget"}}[mode]
    assert kinds == expected
    out = run_helm(helm, None, "template", release, str(CHART), "-n", namespace,
                   *sets(values)).stdout
    proc = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=out)
    assert "PodSecurity" not in proc.stderr, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout
    # The pod passes the restricted standard at admission (PodSecurity enforces on pods).
    proc = create_pod_dry_run(kubectl, pod_from(one(docs, "Deployment"), namespace))
    assert "created (server dry run)" in proc.stdout, proc.stderr


def rules_of(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of a Role or ClusterRole."""
    return {(g, r, v) for rule in doc["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


JOBS = {("batch", "jobs", v) for v in ("get", "create")}


def test_jobs_are_granted_only_with_rbac_retraining(helm: Path, namespace: str) -> None:
    """Who may create a ModelMonitor may have the operator create Jobs (pods) once the role
    allows it: only with rbac.retraining=true, cluster-wide or in each watched namespace."""
    def jobs(values: list[str], kind: str) -> list[set[tuple[str, str, str]]]:
        return [{r for r in rules_of(d) if r[1].startswith("jobs")}
                for d in find(render(helm, namespace, values), kind)]

    assert jobs([], "ClusterRole") == [set()]
    assert jobs(["rbac.retraining=false"], "ClusterRole") == [set()]
    assert jobs(["rbac.retraining=true"], "ClusterRole") == [JOBS]
    namespaced = ["watchNamespaces={a,b}"]
    assert jobs(namespaced, "Role") == [set(), set()]
    assert jobs([*namespaced, "rbac.retraining=true"], "Role") == [JOBS, JOBS]
    # Nothing else changes with it.
    default = rules_of(one(render(helm, namespace), "ClusterRole"))
    retraining = rules_of(one(render(helm, namespace, ["rbac.retraining=true"]), "ClusterRole"))
    assert retraining - default == JOBS and default <= retraining


def test_pod_security_check_can_fail(kubectl: Kubectl, namespace: str, helm: Path) -> None:
    restricted(kubectl, namespace)
    pod = pod_from(one(render(helm, namespace), "Deployment"), namespace)
    del pod["spec"]["containers"][0]["securityContext"]["capabilities"]
    proc = create_pod_dry_run(kubectl, pod)
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr, proc.stderr


# --- manifests/ --------------------------------------------------------------------------

def kustomize(kubectl: Kubectl, folder: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(folder)).stdout) if d]


HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by")


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The object without the labels only Helm adds."""
    doc = json.loads(json.dumps(doc))

    def strip(meta: dict[str, Any]) -> None:
        for key in HELM_ONLY_LABELS:
            meta.get("labels", {}).pop(key, None)

    strip(doc["metadata"])
    if doc["kind"] == "Deployment":
        strip(doc["spec"]["template"]["metadata"])
    if doc["kind"] == "ClusterRole":
        doc["rules"] = sorted(json.dumps(r, sort_keys=True) for r in doc["rules"])
    return doc


def keyed(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): comparable(d) for d in docs}


def test_manifests_install_the_same_objects_as_the_chart(
        helm: Path, kubectl: Kubectl) -> None:
    base = {(d["kind"], d["metadata"]["name"]): comparable(d)
            for d in kustomize(kubectl, MANIFESTS)}
    chart = {(d["kind"], d["metadata"]["name"]): comparable(d)
             for d in render(helm, "modelmon-system")}
    assert base.pop(("Namespace", "modelmon-system"))
    chart_crd = chart[("CustomResourceDefinition", CRD)]
    chart_crd["metadata"].pop("annotations")  # the chart's keep policy
    assert base.keys() == chart.keys()
    for key, doc in base.items():
        assert doc == chart[key], f"manifests/ and the chart differ in {key}"
    monitoring = {d["kind"]: comparable(d) for d in kustomize(kubectl, MANIFESTS / "monitoring")}
    chart_sm = comparable(one(render(helm, "modelmon-system", ["serviceMonitor.enabled=true"]),
                              "ServiceMonitor"))
    assert monitoring["ServiceMonitor"]["spec"] == chart_sm["spec"]
    assert monitoring["ServiceMonitor"]["metadata"]["labels"] == chart_sm["metadata"]["labels"]
    # The retraining overlay is the chart with rbac.retraining=true, and only differs there.
    retraining = keyed(kustomize(kubectl, MANIFESTS / "retraining"))
    chart_retraining = keyed(render(helm, "modelmon-system", ["rbac.retraining=true"]))
    role = ("ClusterRole", "modelmon")
    assert retraining[role] == chart_retraining[role]
    assert retraining[role] != base[role]
    assert {k: v for k, v in retraining.items() if k != role} == \
        {k: v for k, v in keyed(kustomize(kubectl, MANIFESTS)).items() if k != role}
    # The replicas overlay is the chart with replicaCount=3.
    replicas = keyed(kustomize(kubectl, MANIFESTS / "replicas"))
    assert replicas.pop(("Namespace", "modelmon-system"))
    chart_replicas = keyed(render(helm, "modelmon-system", REPLICATED))
    chart_replicas[("CustomResourceDefinition", CRD)]["metadata"].pop("annotations")
    assert replicas.keys() == chart_replicas.keys()
    for key, doc in replicas.items():
        assert doc == chart_replicas[key], f"manifests/replicas and the chart differ in {key}"


def test_kubectl_apply_k_installs_the_operator_and_the_sample(
        kubectl: Kubectl, namespace: str, monitoring_crds: None) -> None:
    ns = "modelmon-system"
    try:
        kubectl("apply", "-k", str(MANIFESTS / "monitoring"))
        for kind, name in (("deployment", "modelmon"), ("service", "modelmon-metrics"),
                           ("serviceaccount", "modelmon"), ("servicemonitor", "modelmon")):
            assert kubectl.exists(kind, name, "-n", ns), kind
        assert kubectl.exists("clusterrole", "modelmon")
        assert kubectl.exists("clusterrolebinding", "modelmon")
        assert kubectl.exists("crd", CRD)
        labels = kubectl.json("get", "namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        deployment = kubectl.json("get", "deployment", "modelmon", "-n", ns)
        app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        repository = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
            f"{repository}:{app_version}"
        proc = create_pod_dry_run(kubectl, pod_from(deployment, ns))
        assert "created (server dry run)" in proc.stdout, proc.stderr
        # Idempotent, as GitOps tools re-apply it.
        again = kubectl("apply", "-k", str(MANIFESTS)).stdout
        assert all(line.endswith("unchanged") for line in again.splitlines()), again
        kubectl("apply", "-k", str(MANIFESTS / "samples"), "-n", namespace)
        sample = kubectl.json("get", "mm", "credit-risk", "-n", namespace)
        assert sample["spec"]["alerting"]["labels"] == {"team": "risk"}
        # The retraining overlay on top changes the ClusterRole and nothing else.
        operator = f"--as=system:serviceaccount:{ns}:modelmon"
        assert kubectl("auth", "can-i", "create", "jobs", "-n", namespace, operator,
                       check=False).stdout.strip() == "no"
        out = kubectl("apply", "-k", str(MANIFESTS / "retraining")).stdout.splitlines()
        assert [line for line in out if not line.endswith("unchanged")] == \
            ["clusterrole.rbac.authorization.k8s.io/modelmon configured"], out
        assert rules_of(kubectl.json("get", "clusterrole", "modelmon")) >= JOBS
        wait_for(lambda: kubectl("auth", "can-i", "create", "jobs", "-n", namespace, operator,
                                 check=False).stdout.strip() == "yes",
                 timeout=30, what="the Jobs rule in effect")
    finally:
        # Not `kubectl delete -k`: that would delete the CRD the other tests use.
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        kubectl("delete", "clusterrolebinding,clusterrole", "modelmon", "--ignore-not-found")


# --- helm install and the operator under the chart's RBAC --------------------------------

@pytest.fixture
def without_the_crd(kubectl: Kubectl) -> Iterator[None]:
    """Delete the session's ModelMonitor CRD so that `helm install` creates it; restore it
    (server-side apply of crds/) afterwards for the other tests."""
    kubectl("delete", "crd", CRD, "--ignore-not-found", "--wait=true", timeout=120)
    try:
        yield
    finally:
        apply_crds(kubectl, crd_files())


def release_objects(helm: Path, cluster: Cluster, release: str, namespace: str
                    ) -> list[dict[str, Any]]:
    out = run_helm(helm, cluster, "get", "manifest", release, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_helm_install_runs_the_operator_with_least_privilege(
        helm: Path, cluster: Cluster, kubectl: Kubectl, namespace: str, other_namespace: str,
        monitoring_crds: None, without_the_crd: None, data: Path, tmp_path: Path) -> None:
    release = unique_name("mm")
    restricted(kubectl, namespace)
    proc = run_helm(helm, cluster, "install", release, str(CHART), "-n", namespace,
                    *sets(EVERYTHING))
    assert "PodSecurity" not in proc.stderr, proc.stderr
    assert "It watches ModelMonitors in every namespace." in proc.stdout  # NOTES.txt
    objects = release_objects(helm, cluster, release, namespace)
    assert {d["kind"] for d in objects} == {
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "Deployment", "Service", "ServiceMonitor", "ConfigMap", "NetworkPolicy"}
    for d in objects:
        scope = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
        assert kubectl.exists(d["kind"].lower(), d["metadata"]["name"], *scope), d["kind"]
    crd = kubectl.json("get", "crd", CRD)
    assert crd["metadata"]["annotations"][KEEP] == "keep"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
    dashboard = next(d for d in objects if d["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["modelmon.json"]) == grafana.load()

    # The operator as the chart's ServiceAccount: a token from the TokenRequest API.
    deployment = next(d for d in objects if d["kind"] == "Deployment")
    sa_name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=1h").stdout.strip()
    sa = kubectl.with_token(token, tmp_path)
    who = sa.json("auth", "whoami")["status"]["userInfo"]["username"]
    assert who == f"system:serviceaccount:{namespace}:{sa_name}"
    op = OperatorProcess(sa.kubeconfig, [], tmp_path / "operator.log",
                         extra_env=operator_env(deployment, cluster.kubeconfig)).start()
    try:
        kubectl("apply", "-n", other_namespace, "-f", "-",
                input=manifest([monitor("bc", data, estimated=True),
                                monitor("gone", data, "missing.csv")]))
        wait_for(lambda: phase_of(kubectl, other_namespace, "bc") == "Degraded", timeout=60,
                 what="the monitor checked under the chart's RBAC")
        wait_for(lambda: phase_of(kubectl, other_namespace, "gone") == "Failing", timeout=30,
                 what="the monitor with a missing source failing")
        rule = kubectl.json("get", "prometheusrule", "modelmon-bc", "-n", other_namespace)
        assert rule["metadata"]["ownerReferences"][0]["name"] == "bc"
        events = kubectl.json("get", "events", "-n", other_namespace, "--field-selector",
                              "involvedObject.name=bc")["items"]
        assert any(e["reason"] == "Degraded" for e in events)

        # Every metric the dashboard queries is on the running operator's /metrics.
        scraped = sample_names(op.metrics())
        used = {n for q in grafana.queries(grafana.load()) for n in grafana.metric_names(q.expr)}
        assert used <= scraped, f"dashboard metrics not exported: {sorted(used - scraped)}"

        # Requests outside the ClusterRole are denied.
        assert denied(sa, "get", "secrets", "-n", other_namespace)  # list: only get is granted
        assert denied(sa, "delete", "mm", "bc", "-n", other_namespace)
        assert denied(sa, "patch", "mm", "bc", "-n", other_namespace, "--type=merge",
                      "-p", '{"spec": {"schedule": {"interval": "1h"}}}')
        assert denied(sa, "get", "pods", "-n", other_namespace)
        assert denied(sa, "get", "namespaces")
        assert denied(sa, "create", "clusterrolebinding", "x", "--clusterrole=cluster-admin",
                      f"--serviceaccount={namespace}:{sa_name}")
        assert denied(sa, "get", "crd", CRD)  # list and watch, not get
        # No Jobs without rbac.retraining: monitor authors cannot have it run pods.
        assert denied(sa, "get", "jobs", "-n", other_namespace)
        assert not can_i(sa, "create", "jobs.batch", other_namespace)
        # ... and those inside it are allowed.
        assert can_i(sa, "patch", "modelmonitors.modelmon.io/status", other_namespace)
        assert not can_i(sa, "update", "modelmonitors.modelmon.io/status", other_namespace)
        assert can_i(sa, "get", "secrets", other_namespace)
        assert not can_i(sa, "list", "secrets", other_namespace)
        assert not can_i(sa, "update", "modelmonitors.modelmon.io", other_namespace)
        assert can_i(sa, "watch", "customresourcedefinitions.apiextensions.k8s.io")

        kubectl("delete", "mm", "bc", "-n", other_namespace)
        wait_for(lambda: not kubectl.exists("prometheusrule", "modelmon-bc", "-n",
                                            other_namespace), timeout=60,
                 what="the rule garbage-collected with its monitor")
    finally:
        code = op.stop()
    log = op.logs()
    assert code == 0, log[-3000:]
    assert not trouble(log), "\n".join(trouble(log))

    # Uninstall: everything goes but the CRD (crds.keep) and so the monitors.
    run_helm(helm, cluster, "uninstall", release, "-n", namespace)
    assert kubectl.exists("crd", CRD)
    assert kubectl.exists("mm", "gone", "-n", other_namespace)
    for d in objects:
        if d["kind"] != "CustomResourceDefinition":
            scope = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
            assert not kubectl.exists(d["kind"].lower(), d["metadata"]["name"], *scope), d


class Webhook:
    """An HTTP receiver of the webhook notifier: every POST's headers and body."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.posts.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/modelmon"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.posts)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


#: Planted in the notifier's Secret; it must reach the signature and nothing else.
HMAC_KEY = "hmac-key-for-install-test-7q2w"


def test_the_chart_token_reads_configmaps_and_secrets_and_creates_the_retraining_job(
        helm: Path, cluster: Cluster, kubectl: Kubectl, namespace: str, other_namespace: str,
        data: Path, tmp_path: Path, webhook: Webhook) -> None:
    """Under the chart's ServiceAccount with rbac.retraining=true, one check of a monitor
    reads its reference from a ConfigMap, signs its webhook with a key from a Secret and
    starts the retraining Job: each needs a rule of the role, and none is refused."""
    release = unique_name("mm")
    run_helm(helm, cluster, "install", release, str(CHART), "-n", namespace,
             "--set", "crds.enabled=false", "--set", "rbac.retraining=true")
    try:
        objects = release_objects(helm, cluster, release, namespace)
        role = next(d for d in objects if d["kind"] == "ClusterRole")
        assert rules_of(role) >= JOBS
        deployment = next(d for d in objects if d["kind"] == "Deployment")
        sa_name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=1h").stdout.strip()
        sa = kubectl.with_token(token, tmp_path)
        wait_for(lambda: can_i(sa, "create", "jobs.batch", other_namespace), timeout=30,
                 what="the ClusterRoleBinding in effect")
        assert not can_i(sa, "list", "jobs.batch", other_namespace)
        assert can_i(sa, "get", "jobs.batch", other_namespace)
        assert not can_i(sa, "delete", "jobs.batch", other_namespace)
        assert not can_i(sa, "create", "pods", other_namespace)  # the Job controller does that

        kubectl("create", "configmap", "bc-reference", "-n", other_namespace,
                f"--from-file=reference.csv={data / 'reference.csv'}")
        kubectl("create", "secret", "generic", "hooks", "-n", other_namespace,
                f"--from-literal=hmac={HMAC_KEY}")
        for kind, name in (("configmap", "bc-reference"), ("secret", "hooks")):
            kubectl("label", kind, name, "-n", other_namespace, f"{USE_LABEL}=true")
        doc = monitor("bc", data)
        doc["spec"]["schedule"] = {"interval": "1h"}  # one check during the test
        doc["spec"]["reference"]["source"] = {"configMap": {"name": "bc-reference",
                                                            "key": "reference.csv"}}
        doc["spec"]["alerting"]["notifiers"] = [{"name": "audit", "webhook": {
            "url": webhook.url, "hmacSecretRef": {"name": "hooks", "key": "hmac"}}}]
        doc["spec"]["retraining"] = {
            "when": {"drift": True, "performance": True, "consecutiveChecks": 1},
            "cooldown": "1h",
            "jobTemplate": {"metadata": {"labels": {"purpose": "retrain"}}, "spec": {
                "backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "train", "image": "registry.example/train:1"}]}}}}}

        def checked() -> dict[str, Any] | None:
            status = kubectl.json("get", "mm", "bc", "-n", other_namespace).get("status") or {}
            return status if (status.get("retraining") or {}).get("lastJob") else None

        # Only this namespace: monitors that earlier tests left in namespaces still being
        # deleted would draw 403s (no Events in a terminating namespace) that are not ours.
        op = OperatorProcess(sa.kubeconfig, [other_namespace], tmp_path / "operator.log",
                             extra_env=operator_env(deployment, cluster.kubeconfig)).start()
        try:
            kubectl("apply", "-n", other_namespace, "-f", "-", input=manifest(doc))
            status = wait_for(checked, timeout=60, what="the check and its retraining Job")
            wait_for(webhook.received, timeout=30, what="the signed webhook")
        finally:
            code = op.stop()
        log = op.logs()
        assert code == 0, log[-3000:]
        assert not trouble(log), "\n".join(trouble(log))  # no 403, no retries, no traceback
        assert HMAC_KEY not in log

        # Checked, not Failing, with the reference from the ConfigMap: the figures of the
        # example's file (its current window is degraded).
        assert status["phase"] == "Degraded", status
        assert status["lastCheck"]["referenceRows"] == 200
        ready = next(c for c in status["conditions"] if c["type"] == "SourceAvailable")
        assert ready["status"] == "True", ready
        # The webhook was signed with the key from the Secret.
        (headers, body), *_ = webhook.received()
        expected = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Modelmon-Signature"] == f"sha256={expected}"
        assert HMAC_KEY.encode() not in body
        (notification,) = status["notifications"]
        assert not notification.get("lastError"), notification
        # The retraining Job, created with the chart's token and owned by the monitor.
        job_name = status["retraining"]["lastJob"]
        assert status["retraining"]["outcome"] == "Running"
        assert not status["retraining"].get("message"), status["retraining"]
        job = kubectl.json("get", "job", job_name, "-n", other_namespace)
        assert job["metadata"]["ownerReferences"][0]["name"] == "bc"
        assert job["metadata"]["labels"]["purpose"] == "retrain"
        events = kubectl.json("get", "events", "-n", other_namespace, "--field-selector",
                              "involvedObject.name=bc")["items"]
        assert any(e["reason"] == "RetrainingStarted" for e in events)
    finally:
        # The ClusterRole and binding are cluster-wide: never leave them behind.
        run_helm(helm, cluster, "uninstall", release, "-n", namespace)


def test_namespaced_install_needs_no_cluster_role(
        helm: Path, cluster: Cluster, kubectl: Kubectl, namespace: str, other_namespace: str,
        data: Path, tmp_path: Path) -> None:
    """watchNamespaces: a Role in each, the operator sees only those; no 403 retries."""
    release = unique_name("mm")
    run_helm(helm, cluster, "install", release, str(CHART), "-n", namespace,
             "--set", "crds.enabled=false", "--set", f"watchNamespaces={{{other_namespace}}}")
    objects = release_objects(helm, cluster, release, namespace)
    assert {d["kind"] for d in objects} == {"ServiceAccount", "Role", "RoleBinding",
                                             "Deployment", "Service"}
    assert {d["metadata"]["namespace"] for d in objects if d["kind"] == "Role"} == \
        {other_namespace}
    deployment = next(d for d in objects if d["kind"] == "Deployment")
    env = operator_env(deployment, cluster.kubeconfig)
    assert env["MODELMON_NAMESPACE"] == other_namespace
    sa_name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    token = kubectl("create", "token", sa_name, "-n", namespace).stdout.strip()
    sa = kubectl.with_token(token, tmp_path)
    # The RoleBinding may take a moment to reach the authorizer's cache.
    wait_for(lambda: can_i(sa, "watch", "modelmonitors.modelmon.io", other_namespace),
             timeout=30, what="the RoleBinding in effect")
    assert not can_i(sa, "list", "modelmonitors.modelmon.io")  # not cluster-wide
    assert not can_i(sa, "list", "modelmonitors.modelmon.io", namespace)
    assert denied(sa, "get", "mm", "-n", namespace)

    kubectl("apply", "-n", other_namespace, "-f", "-", input=manifest(monitor("watched", data)))
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(monitor("unwatched", data)))
    op = OperatorProcess(sa.kubeconfig, [], tmp_path / "operator.log", extra_env=env).start()
    try:
        # Within seconds: kopf does not spend a minute retrying a namespace list first.
        wait_for(lambda: phase_of(kubectl, other_namespace, "watched") == "Degraded",
                 timeout=20, what="the monitor in the watched namespace checked")
        assert phase_of(kubectl, namespace, "unwatched") is None
    finally:
        code = op.stop()
    log = op.logs()
    assert code == 0, log[-3000:]
    assert not trouble(log), "\n".join(trouble(log))
    run_helm(helm, cluster, "uninstall", release, "-n", namespace)


def test_replicas_get_leases_in_their_own_namespace_only(
        helm: Path, cluster: Cluster, kubectl: Kubectl, namespace: str, other_namespace: str,
        data: Path, tmp_path: Path) -> None:
    """replicaCount above 1: a rolling update, a PodDisruptionBudget, a spread across nodes,
    and a Role for Leases in the release's namespace, which is all a replica needs beyond
    the monitors' rules: it checks a monitor under the chart's RBAC with replication on."""
    release = unique_name("mm")
    run_helm(helm, cluster, "install", release, str(CHART), "-n", namespace,
             "--set", "crds.enabled=false", "--set", f"watchNamespaces={{{other_namespace}}}",
             "--set", "replicaCount=2", "--set", "replication.leaseDuration=6s")
    try:
        objects = release_objects(helm, cluster, release, namespace)
        assert sorted(d["kind"] for d in objects) == sorted([
            "ServiceAccount", "Role", "RoleBinding", "Role", "RoleBinding", "Deployment",
            "Service", "PodDisruptionBudget"])
        leases = [d for d in objects if d["kind"] == "Role"
                  and d["metadata"]["namespace"] == namespace]
        assert [rules_of(d) for d in leases] == [{
            ("coordination.k8s.io", "leases", v)
            for v in ("get", "list", "watch", "create", "update")}]
        deployment = one(objects, "Deployment")
        spec = deployment["spec"]
        assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
        (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
        env = operator_env(deployment, cluster.kubeconfig)
        assert env["MODELMON_REPLICATION"] == "true"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        from_pod = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
                    for e in container["env"] if "valueFrom" in e}
        assert from_pod == {"MODELMON_ID": "metadata.name",
                            "MODELMON_LEASE_NAMESPACE": "metadata.namespace"}
        sa_name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        token = kubectl("create", "token", sa_name, "-n", namespace).stdout.strip()
        sa = kubectl.with_token(token, tmp_path)
        wait_for(lambda: can_i(sa, "update", "leases.coordination.k8s.io", namespace),
                 timeout=30, what="the Leases' RoleBinding in effect")
        assert not can_i(sa, "update", "leases.coordination.k8s.io", other_namespace)
        assert not can_i(sa, "list", "leases.coordination.k8s.io")
        assert not can_i(sa, "patch", "leases.coordination.k8s.io", namespace)
        assert not can_i(sa, "delete", "leases.coordination.k8s.io", namespace)

        kubectl("apply", "-n", other_namespace, "-f", "-",
                input=manifest(monitor("shared", data)))
        op = OperatorProcess(sa.kubeconfig, [], tmp_path / "operator.log",
                             extra_env={**env, "MODELMON_ID": "replica-a",
                                        "MODELMON_LEASE_NAMESPACE": namespace}).start()
        try:
            wait_for(lambda: phase_of(kubectl, other_namespace, "shared") == "Degraded",
                     timeout=40, what="the monitor checked by the replica")
            lease = kubectl.json("get", "lease", "modelmon-replica-a", "-n", namespace)
            assert lease["spec"]["holderIdentity"] == "replica-a"
            assert lease["spec"]["leaseDurationSeconds"] == 6
        finally:
            code = op.stop()
        log = op.logs()
        assert code == 0, log[-3000:]
        assert not trouble(log), "\n".join(trouble(log))
        assert "took over" in log and "released its Lease" in log
        released = kubectl.json("get", "lease", "modelmon-replica-a", "-n", namespace)
        assert not released["spec"].get("holderIdentity")
    finally:
        run_helm(helm, cluster, "uninstall", release, "-n", namespace)


def test_an_operator_without_its_role_is_denied(
        kubectl: Kubectl, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """The negative control of the two tests above: with a token of a ServiceAccount that
    has no role (and $KUBECONFIG naming the admin), kopf's watch is refused. So the clean
    logs above mean the chart's RBAC suffices, not that the admin's was used."""
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    sa = kubectl.with_token(token, tmp_path)
    op = OperatorProcess(sa.kubeconfig, [namespace], tmp_path / "operator.log",
                         extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
    with contextlib.suppress(TimeoutError, RuntimeError):  # it may or may not get ready
        op.start(ready_timeout=30)
    try:
        wait_for(lambda: "forbidden" in op.logs().lower(), timeout=20,
                 what="kopf's watch refused")
    finally:
        op.stop()
    with pytest.raises(KubectlError):
        sa("get", "mm", "-n", namespace)
