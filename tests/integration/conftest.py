"""Fixtures for tests against a real Kubernetes control plane.

`cluster` (session): the cluster KUBECONFIG points at, if it is set, answers
and is on a loopback address (kind, or `hack/cluster.sh up` started by hand);
otherwise one started with `hack/cluster.sh up` for this session and stopped
at its end. Either way every YAML file under crds/ and the upstream
PrometheusRule CRD are applied and Established before the first test.

`kubectl` (session): the pinned kubectl bound to that cluster's kubeconfig.
`namespace` (function): a fresh namespace, deleted after the test.
`helm` (session): path of the pinned helm binary.
`node` (session): the cluster's Ready node and the images it has; a test that uses it
is marked `node` and skipped when the cluster has none (start it with MODELMON_NODE=1).
`operator_image` (session): the operator's image built from the Dockerfile by
`hack/image-local.sh` (cached) and loaded into the node; its reference.

Environment:
  MODELMON_KUBECTL / MODELMON_HELM     use these binaries instead of building
  MODELMON_EXPECT_KUBE_VERSION         server version to expect from a reused cluster
  MODELMON_ALLOW_REMOTE_CLUSTER=1      allow KUBECONFIG to point off this machine
  MODELMON_KEEP_CLUSTER=1              leave the session's cluster running
  MODELMON_NODE=1                      the session's cluster gets a node (hack/node.sh)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube import (
    Cluster,
    Kubectl,
    Node,
    apply_crds,
    cluster_sh,
    crd_files,
    is_loopback_server,
    parse_export_line,
    pinned_versions,
    unique_name,
)

HERE = Path(__file__).resolve().parent
PLAN_KEY = pytest.StashKey["Plan"]()
PYTEST_CLUSTER_PREFIX = "modelmon-cluster-pytest-"


@dataclass(frozen=True)
class Plan:
    """What the session will use, decided once after collection."""

    kubectl: Path
    helm: Path
    reuse_kubeconfig: Path | None  # None: start a cluster for this session
    versions: dict[str, str]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real Kubernetes API server (hack/cluster.sh)"
    )
    config.addinivalue_line(
        "markers",
        "node: needs a node that runs pods (MODELMON_NODE=1); skipped on a cluster without one",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselection sees the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
            if "node" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.node)


def _uncaptured(config: pytest.Config) -> AbstractContextManager[None]:
    """Let a build's progress reach the terminal: a cold build takes many minutes."""
    capman = config.pluginmanager.getplugin("capturemanager")
    return capman.global_and_fixture_disabled() if capman is not None else nullcontext()


def _reusable_kubeconfig(kubectl: Path, tmpdir: Path) -> Path | None:
    """KUBECONFIG flattened to one file, if set and reachable; None otherwise."""
    if not os.environ.get("KUBECONFIG"):
        return None
    flat = tmpdir / "reused.kubeconfig"
    proc = subprocess.run(
        [str(kubectl), "config", "view", "--raw", "--flatten", "--minify"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    flat.write_text(proc.stdout)
    flat.chmod(0o600)
    k = Kubectl(kubectl, flat)
    if not k.reachable():
        sys.stderr.write(
            "KUBECONFIG is set but its cluster does not answer; starting a local one\n"
        )
        return None
    server = k.server()
    if not is_loopback_server(server) and os.environ.get("MODELMON_ALLOW_REMOTE_CLUSTER") != "1":
        # Tests create namespaces and CRDs: never do that to a real cluster by accident.
        raise pytest.UsageError(
            f"KUBECONFIG points at {server}, which is not on this machine. Unset KUBECONFIG to "
            "test against a local cluster, or set MODELMON_ALLOW_REMOTE_CLUSTER=1."
        )
    return flat


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before any test runs, so their build time is not
    charged to the first test's timeout."""
    config = session.config
    if config.option.collectonly or not any(i.path.is_relative_to(HERE) for i in session.items):
        return
    tmpdir = Path(tempfile.mkdtemp(prefix="modelmon-it-"))
    config.add_cleanup(lambda: shutil.rmtree(tmpdir, ignore_errors=True))
    try:
        with _uncaptured(config):
            kubectl_env = os.environ.get("MODELMON_KUBECTL")
            kubectl = (
                Path(kubectl_env) if kubectl_env else Path(cluster_sh("bin", "kubectl").strip())
            )
            reuse = _reusable_kubeconfig(kubectl, tmpdir)
            if reuse is None:
                cluster_sh("build", "etcd", "kube-apiserver", "kube-controller-manager")
                if _node_wanted() and any(i.get_closest_marker("node") for i in session.items):
                    cluster_sh("node-build")
            helm_env = os.environ.get("MODELMON_HELM")
            helm = Path(helm_env) if helm_env else Path(cluster_sh("bin", "helm").strip())
            if any(i.path.name == "test_sources_gcs.py" for i in session.items):
                _build_fake_gcs_server()
    except RuntimeError as e:
        pytest.exit(f"cannot prepare the integration test cluster: {e}", returncode=3)
    config.stash[PLAN_KEY] = Plan(kubectl, helm, reuse, pinned_versions())


def _node_wanted() -> bool:
    return os.environ.get("MODELMON_NODE") == "1"


def _build_fake_gcs_server() -> None:
    """Build the GCS test server now, like the cluster's binaries, so that its first build
    (minutes) is not charged to a test's timeout. A failure is reported by the GCS tests'
    fixture (skipped on a laptop, failed in CI)."""
    from servers import BuildError, fake_gcs_server_bin

    try:
        fake_gcs_server_bin()
    except BuildError as e:
        sys.stderr.write(f"fake-gcs-server could not be built: {e}\n")


def _plan(config: pytest.Config) -> Plan:
    plan = config.stash.get(PLAN_KEY, None)
    if plan is None:  # e.g. a fixture requested from outside tests/integration
        pytest.fail("tests/integration/conftest.py did not prepare a cluster plan")
    return plan


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    plan = _plan(pytestconfig)
    pinned = plan.versions["KUBE_VERSION"]
    if plan.reuse_kubeconfig is not None:
        kubectl = Kubectl(plan.kubectl, plan.reuse_kubeconfig)
        expected = os.environ.get("MODELMON_EXPECT_KUBE_VERSION", pinned)
        yield _prepared(Cluster(kubectl, expected, started_here=False))
        return

    # A state directory of our own, so a developer's `hack/cluster.sh up`
    # cluster is neither reused by accident nor stopped at the end.
    _stop_abandoned_clusters()
    state_dir = Path(tempfile.gettempdir()) / f"{PYTEST_CLUSTER_PREFIX}{os.getpid()}"
    env = {"MODELMON_CLUSTER_DIR": str(state_dir)}
    try:
        kubeconfig = parse_export_line(cluster_sh("up", env=env))
        c = _prepared(Cluster(Kubectl(plan.kubectl, kubeconfig), pinned, True, state_dir))
        yield c
    finally:
        if os.environ.get("MODELMON_KEEP_CLUSTER") == "1":
            with _uncaptured(pytestconfig):
                sys.stderr.write(
                    f"\nkept the test cluster: export KUBECONFIG={state_dir}/admin.kubeconfig\n"
                )
        else:
            cluster_sh("down", env=env)


def _stop_abandoned_clusters() -> None:
    """Stop clusters left by killed pytest runs (no teardown ran), which
    would otherwise hold about 1 GiB of memory each until the next reboot."""
    for d in Path(tempfile.gettempdir()).glob(f"{PYTEST_CLUSTER_PREFIX}*"):
        pid = d.name.removeprefix(PYTEST_CLUSTER_PREFIX)
        if pid.isdigit() and not _pid_alive(int(pid)):
            try:
                cluster_sh("down", env={"MODELMON_CLUSTER_DIR": str(d)})
            except RuntimeError as e:
                sys.stderr.write(f"could not stop the abandoned cluster in {d}: {e}\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepared(c: Cluster) -> Cluster:
    """Install the project's CRDs and the upstream PrometheusRule CRD."""
    prometheusrule = Path(cluster_sh("prometheusrule-crd").strip())
    c.crds = apply_crds(c.kubectl, [*crd_files(), prometheusrule])
    return c


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


@pytest.fixture(scope="session")
def helm(pytestconfig: pytest.Config) -> Path:
    return _plan(pytestconfig).helm


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    name = unique_name(f"mm-{request.node.name}")
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "modelmon.io/test=true")
    yield name
    # No waiting: deletion finishes in the background and the test is done.
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def node(kubectl: Kubectl) -> Node:
    """Skip unless the cluster has a Ready node (hack/cluster.sh with MODELMON_NODE=1)."""
    ready = [
        n["metadata"]["name"]
        for n in kubectl.json("get", "nodes")["items"]
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    ]
    if not ready:
        pytest.skip(
            "the cluster has no Ready node: run with MODELMON_NODE=1 "
            "(`hack/cluster.sh node-check` says whether this machine can run one)"
        )
    busybox = subprocess.run(
        [str(HERE.parents[1] / "hack" / "images.sh"), "ref", "busybox"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Node(ready[0], busybox)


@pytest.fixture(scope="session")
def operator_image(node: Node, pytestconfig: pytest.Config) -> str:
    """`make image-local`: minutes when the build context changed, seconds otherwise."""
    with _uncaptured(pytestconfig):
        proc = subprocess.run(
            [str(HERE.parents[1] / "hack" / "image-local.sh")],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        pytest.fail(f"hack/image-local.sh failed with exit code {proc.returncode}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The example's data where the operator can read it (absolute paths); a module may
    define its own (test_operator_egress serves it over HTTP)."""
    from monitors import EXAMPLE

    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path
