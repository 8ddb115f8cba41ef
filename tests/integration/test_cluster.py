"""The test cluster is a real one: pinned version, RBAC, controllers, CRDs.

These guard the harness itself. If one fails, later integration tests would
pass or fail for the wrong reason (an apiserver without RBAC, a controller
manager that never garbage-collects), so each checks a behaviour a fake or
a half-started control plane would get wrong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kube import (
    CLUSTER_SH,
    CRDS_DIR,
    Cluster,
    Kubectl,
    cluster_sh,
    manifest,
    parse_export_line,
    pinned_versions,
    unique_name,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_server_reports_pinned_version(cluster: Cluster, kubectl: Kubectl) -> None:
    raw = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert raw["gitVersion"] == cluster.expected_version
    major, minor = cluster.expected_version.removeprefix("v").split(".")[:2]
    assert (raw["major"], raw["minor"]) == (major, minor)
    # kubectl supports servers one minor version either side of its own.
    client = kubectl.json("version", "--client")["clientVersion"]
    assert abs(int(client["minor"].rstrip("+")) - int(minor)) <= 1, (
        client["gitVersion"],
        raw["gitVersion"],
    )


def _can_i(kubectl: Kubectl, verb: str, resource: str, namespace: str) -> str:
    """`kubectl auth can-i` answers yes or no (and exits 1 on no)."""
    return kubectl("auth", "can-i", verb, resource, "-n", namespace, check=False).stdout.strip()


def test_rbac_denies_a_service_account_until_a_role_is_bound(
    kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = kubectl("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()
    sa = kubectl.with_token(token, tmp_path)

    who = sa.json("auth", "whoami")["status"]["userInfo"]
    assert who["username"] == f"system:serviceaccount:{namespace}:reader"

    denied = sa("get", "secrets", "-n", namespace, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr
    assert _can_i(sa, "list", "secrets", namespace) == "no"

    kubectl(
        "create", "role", "secret-reader", "--verb=get,list", "--resource=secrets", "-n", namespace
    )
    kubectl(
        "create", "rolebinding", "reader-reads-secrets", "--role=secret-reader",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    # RBAC reads bindings from an informer cache: allow it a moment.
    wait_for(
        lambda: sa("get", "secrets", "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="the RoleBinding to take effect",
    )
    # The grant is namespaced and read-only.
    assert _can_i(sa, "list", "secrets", namespace) == "yes"
    assert _can_i(sa, "list", "secrets", "kube-system") == "no"
    assert _can_i(sa, "delete", "secrets", namespace) == "no"


def _configmap(name: str, namespace: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def test_garbage_collector_deletes_dependents(kubectl: Kubectl, namespace: str) -> None:
    kubectl(
        "create",
        "-f",
        "-",
        input=manifest([_configmap("owner", namespace), _configmap("bystander", namespace)]),
    )
    owner = kubectl.json("get", "configmap", "owner", "-n", namespace)
    kubectl("create", "-f", "-", input=manifest(_configmap("child", namespace, owner)))
    assert kubectl.exists("configmap", "child", "-n", namespace)

    kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(
        lambda: not kubectl.exists("configmap", "child", "-n", namespace),
        timeout=60,
        what="the garbage collector to delete the child ConfigMap",
    )
    assert kubectl.exists("configmap", "bystander", "-n", namespace)


def test_controllers_fill_in_a_new_namespace(kubectl: Kubectl, namespace: str) -> None:
    # The service account and root-CA publisher controllers of
    # kube-controller-manager add these to every namespace.
    wait_for(
        lambda: kubectl.exists("serviceaccount", "default", "-n", namespace),
        timeout=60,
        what="the default ServiceAccount",
    )
    ca = wait_for(
        lambda: (
            kubectl(
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                namespace,
                "-o",
                "jsonpath={.data.ca\\.crt}",
                check=False,
            ).stdout
        ),
        timeout=60,
        what="the kube-root-ca.crt ConfigMap",
    )
    assert "BEGIN CERTIFICATE" in ca


def test_namespace_deletion_completes(kubectl: Kubectl) -> None:
    name = unique_name("mm-ns-deletion")
    kubectl("create", "namespace", name)
    try:
        kubectl("create", "configmap", "data", "-n", name, "--from-literal=a=b")
        kubectl("create", "serviceaccount", "worker", "-n", name)
        kubectl("delete", "namespace", name, "--wait=false")
        # Without the namespace controller emptying it and removing the
        # `kubernetes` finalizer, it would stay Terminating forever.
        wait_for(
            lambda: not kubectl.exists("namespace", name),
            timeout=90,
            what=f"namespace {name} to go away",
        )
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def _prometheus_rule(namespace: str, groups: Any) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "modelmon-smoke", "namespace": namespace},
        "spec": {"groups": groups},
    }


def test_prometheusrule_crd_is_served_and_validates(
    cluster: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    assert (
        "customresourcedefinition.apiextensions.k8s.io/prometheusrules.monitoring.coreos.com"
        in cluster.crds
    )
    groups = [
        {
            "name": "smoke",
            "rules": [{"alert": "ModelmonSmoke", "expr": "vector(1) > 0", "for": "5m"}],
        }
    ]
    kubectl("create", "-f", "-", input=manifest(_prometheus_rule(namespace, groups)))
    got = kubectl.json("get", "prometheusrule", "modelmon-smoke", "-n", namespace)
    assert got["spec"]["groups"][0]["rules"][0]["alert"] == "ModelmonSmoke"

    bad = _prometheus_rule(namespace, "not-a-list")
    bad["metadata"]["name"] = "modelmon-bad"
    rejected = kubectl("create", "-f", "-", input=manifest(bad), check=False)
    assert rejected.returncode != 0
    assert "spec.groups" in rejected.stderr, rejected.stderr


def test_project_crds_are_established(cluster: Cluster, kubectl: Kubectl) -> None:
    ours = CRDS_DIR / "modelmonitors.modelmon.io.yaml"
    if not ours.exists():
        pytest.skip("crds/modelmonitors.modelmon.io.yaml does not exist yet")
    name = "customresourcedefinition.apiextensions.k8s.io/modelmonitors.modelmon.io"
    assert name in cluster.crds
    crd = kubectl.json("get", name)
    established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
    assert [c["status"] for c in established] == ["True"]


def test_helm_is_pinned_and_reaches_the_cluster(cluster: Cluster, helm: Path) -> None:
    version = subprocess.run(
        [str(helm), "version", "--template={{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if "MODELMON_HELM" not in os.environ:  # a helm of the user's own may be any version
        assert version == pinned_versions()["HELM_VERSION"]
    listed = subprocess.run(
        [str(helm), "list", "--all-namespaces", f"--kubeconfig={cluster.kubeconfig}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr


def _ours(state_dir: Path) -> list[int]:
    """Live processes whose command line names the state directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"{state_dir}/" in cmdline:
            pids.append(int(proc.name))
    return pids


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(240)
def test_up_then_down_leaves_nothing_behind(tmp_path: Path) -> None:
    """A second control plane in its own state dir: `up` is ready and prints the export
    line last; `down` leaves no process, no state dir and no bound port; a rerun of
    `build` builds nothing."""
    state = tmp_path / "state"
    # A control plane only, even when the session's cluster has the node (one per machine).
    env = {"MODELMON_CLUSTER_DIR": str(state), "MODELMON_NODE": "0"}
    ports: dict[str, int] = {}
    rebuilt = subprocess.run([str(CLUSTER_SH), "build"],
                             capture_output=True, text=True, check=True, timeout=60)
    assert "building" not in rebuilt.stderr, rebuilt.stderr
    out = cluster_sh("up", env=env)
    try:
        assert out.strip().splitlines()[-1].startswith("export KUBECONFIG=")
        kubeconfig = parse_export_line(out)
        assert kubeconfig == state / "admin.kubeconfig"
        ports = {k: int(v) for k, v in (
            line.split("=", 1) for line in (state / "ports.env").read_text().splitlines())
            if k.endswith("_PORT")}
        assert set(ports) == {"ETCD_PORT", "APISERVER_PORT", "KCM_PORT"}
        assert all(_port_open(p) for p in ports.values()), ports
        pids = _ours(state)
        assert len(pids) >= 3, pids
        # The second cluster is a real one too: ready, and the env command agrees.
        assert parse_export_line(cluster_sh("env", env=env)) == kubeconfig
    finally:
        cluster_sh("down", env=env)
    assert not state.exists()
    deadline = time.monotonic() + 10
    while _ours(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(state) == []
    assert not any(_port_open(p) for p in ports.values()), ports
    # Down twice is harmless.
    cluster_sh("down", env=env)
