"""The operator as users run it: its image (`make image-local`) in a pod on the local node,
installed by the Helm chart and by `kubectl apply -k manifests/`.

Each test uses the `node` fixture, so it is marked `node`, runs in `make test-node` and is
skipped on a cluster without a Ready node. Both ways of installing get the same tests
(the module-scoped `install` fixture is parametrized, one install per way, removed before
the next): the Deployment becomes Available (its probes pass); a monitor with ConfigMap
sources in a tenant namespace gets its status from the pod; `kubectl logs` is JSON lines;
the pod runs as uid 65532 on a read-only root filesystem; a pod deleted in the middle of a
check is replaced by one that resumes the schedule without a duplicate history entry; and
SIGTERM ends the process, with its own exit status, within the grace period.

The check that the pod is deleted in the middle of waits for its current window from an
HTTP server of this module on the node's address (pods reach the host, nothing beyond):
the server holds the answer to the doomed pod, so the check is provably still running when
the pod is deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import REPO_ROOT, Cluster, Kubectl, Node, manifest, unique_name, wait_for
from monitors import EXAMPLE

from modelmon.api.policy import USE_LABEL
from modelmon.check import run_check
from modelmon.monitor_files import load_monitors

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHART = REPO_ROOT / "helm" / "modelmon"
MANIFESTS = REPO_ROOT / "manifests"
#: The namespace manifests/ installs into.
KUSTOMIZE_NAMESPACE = "modelmon-system"
#: The image manifests/ names (after its own `images:`), which an overlay replaces.
MANIFESTS_IMAGE = "ghcr.io/modelmon/modelmon"
#: The keys of every line of the runner's JsonFormatter.
LOG_KEYS = {"time", "level", "logger", "message"}
#: Schedule of the monitor whose check is interrupted: short, so that a check comes soon.
INTERVAL_SECONDS = 10


# --- helpers ---------------------------------------------------------------------------

@dataclass
class Install:
    """The operator installed one way, and the tenant namespace its monitors live in."""

    flavour: str
    namespace: str
    deployment: str
    tenant: str
    grace_seconds: int
    workdir: Path


def run_helm(helm: Path, cluster: Cluster, *args: str) -> str:
    home = Path("/tmp/modelmon-helm")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env,
                          check=False, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def split_image(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    assert repository and "/" not in tag, reference
    return repository, tag


def overlay(directory: Path, image: str) -> Path:
    """A kustomization on top of manifests/ that only swaps the image."""
    repository, tag = split_image(image)
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
           "resources": [os.path.relpath(MANIFESTS, directory)],
           "images": [{"name": MANIFESTS_IMAGE, "newName": repository, "newTag": tag}]}
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return directory


def operator_pods(kubectl: Kubectl, install: Install) -> list[dict[str, Any]]:
    deployment = kubectl.json("get", "deployment", install.deployment, "-n", install.namespace)
    labels = deployment["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", install.namespace,
                                              "-l", selector)["items"]
    return pods


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pod(kubectl: Kubectl, install: Install, timeout: float = 120) -> dict[str, Any]:
    """The Deployment is Available and has exactly one pod, Ready and not being deleted."""
    kubectl("wait", "--for=condition=Available", f"--timeout={timeout:g}s", "-n",
            install.namespace, f"deployment/{install.deployment}", timeout=timeout + 30)

    def one_ready() -> dict[str, Any] | None:
        pods = [p for p in operator_pods(kubectl, install)
                if not p["metadata"].get("deletionTimestamp")]
        return pods[0] if len(pods) == 1 and is_ready(pods[0]) else None

    return wait_for(one_ready, timeout=timeout, what="one Ready operator pod")


def pod_logs(kubectl: Kubectl, install: Install, pod: str) -> str:
    return kubectl("logs", "-n", install.namespace, pod, "-c", "operator").stdout


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of an operator log as the JsonFormatter's object; fails on any other."""
    records = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"a line of the operator's log is not JSON: {line!r}")
        assert isinstance(record, dict) and record.keys() >= LOG_KEYS, record
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, record
        records.append(record)
    assert records, "the operator logged nothing"
    return records


def tenant_monitor(name: str, reference: dict[str, Any], current: dict[str, Any],
                   interval: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLE / "monitor.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["schedule"] = {"interval": interval}
    doc["spec"]["reference"]["source"] = reference
    doc["spec"]["current"]["source"] = current
    return doc


def config_map_source(key: str) -> dict[str, Any]:
    return {"configMap": {"name": "bc-data", "key": key}}


def status_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl.json("get", "mm", name, "-n", namespace).get("status") or {}
    return status


def timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class PodWatch:
    """`kubectl get pod --watch` of one pod, from before its deletion to its end: the
    last status the kubelet reports (the container's termination) is gone with the pod,
    so only a watch sees it."""

    def __init__(self, kubectl: Kubectl, namespace: str, pod: str, directory: Path) -> None:
        self.path = directory / f"watch-{pod}.json"
        self.log_path = directory / f"log-{pod}.txt"
        self.files = [self.path.open("w"), self.log_path.open("w")]
        kubectl_ = [str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "-n", namespace]
        self.procs = [
            subprocess.Popen([*kubectl_, "get", "pod", pod, "--watch", "--output-watch-events",
                              "-o", "json"], stdout=self.files[0], stderr=subprocess.DEVNULL),
            # The container's log to its end: its last lines are gone with the pod.
            subprocess.Popen([*kubectl_, "logs", "--follow", pod, "-c", "operator"],
                             stdout=self.files[1], stderr=subprocess.DEVNULL)]
        wait_for(self.events, timeout=30, what=f"the watch of pod {pod}")
        wait_for(lambda: self.log_path.stat().st_size, timeout=30, what=f"the log of {pod}")

    def events(self) -> list[dict[str, Any]]:
        text, decoder, at = self.path.read_text(), json.JSONDecoder(), 0
        events: list[dict[str, Any]] = []
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            try:
                event, at = decoder.raw_decode(text, at)
            except ValueError:  # the end, or an object still being written
                return events
            events.append(event)

    def until_deleted(self, timeout: float) -> list[dict[str, Any]]:
        wait_for(lambda: any(e["type"] == "DELETED" for e in self.events()),
                 timeout=timeout, what="the pod to be deleted")
        return [e["object"] for e in self.events()]

    def log(self, timeout: float) -> str:
        """The whole log, once `kubectl logs --follow` ended with the container."""
        try:
            self.procs[1].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`kubectl logs --follow` did not end within {timeout:g}s of the "
                        "pod's deletion")
        return self.log_path.read_text()

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for file in self.files:
            file.close()


@dataclass(frozen=True)
class Termination:
    exit_code: int
    reason: str
    finished: datetime
    deadline: datetime  # the first deletionTimestamp: the delete plus the grace period
    grace_seconds: int
    log: str  # the container's whole log


def delete_pod(kubectl: Kubectl, install: Install, pod: str) -> Termination:
    """Delete the pod (SIGTERM to its process) and report how its container ended."""
    watch = PodWatch(kubectl, install.namespace, pod, install.workdir)
    try:
        kubectl("delete", "pod", pod, "-n", install.namespace, "--wait=false")
        objects = watch.until_deleted(timeout=install.grace_seconds + 60)
        log = watch.log(timeout=30)
    finally:
        watch.close()
    deleting = next(o for o in objects if o["metadata"].get("deletionTimestamp"))
    ended = [s["state"]["terminated"] for o in objects
             for s in o["status"].get("containerStatuses", [])
             if s["name"] == "operator" and "terminated" in s.get("state", {})]
    assert ended, f"no terminated state of the operator container was seen: {objects[-1]}"
    return Termination(exit_code=ended[-1]["exitCode"], reason=ended[-1].get("reason", ""),
                       finished=timestamp(ended[-1]["finishedAt"]),
                       deadline=timestamp(deleting["metadata"]["deletionTimestamp"]),
                       grace_seconds=deleting["metadata"]["deletionGracePeriodSeconds"],
                       log=log)


def assert_ended_within_grace(end: Termination, install: Install) -> None:
    # The process's own exit (0 after a clean stop), not SIGKILL's 137 at the deadline.
    assert (end.exit_code, end.reason) == (0, "Completed"), end
    assert end.grace_seconds == install.grace_seconds, end
    assert end.finished <= end.deadline, end
    # It stopped the way `modelmon run` does, saying so in its own format to the end.
    records = json_lines(end.log)
    assert records[-1]["message"] == "modelmon operator stopped", records[-5:]


@dataclass
class HeldSource:
    """An HTTP server of the example's current window that, while `hold` names a pod's
    address, keeps that pod's request unanswered (until `release`)."""

    server: ThreadingHTTPServer
    host: str
    hold: str | None = None
    requests: list[tuple[str, float, bool]] = field(default_factory=list)  # (ip, t, held)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/current.csv"

    def held(self) -> list[str]:
        with self.lock:
            return [ip for ip, _, held in self.requests if held]

    def served_to(self, ip: str) -> int:
        with self.lock:
            return sum(1 for who, _, held in self.requests if who == ip and not held)


@pytest.fixture(scope="module")
def held_source(kubectl: Kubectl, node: Node) -> Iterator[HeldSource]:
    addresses = kubectl.json("get", "node", node.name)["status"]["addresses"]
    host = next(a["address"] for a in addresses if a["type"] == "InternalIP")
    body = (EXAMPLE / "current.csv").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ip = self.client_address[0]
            with source.lock:
                held = ip == source.hold and not source.released.is_set()
                source.requests.append((ip, time.monotonic(), held))
            if held:
                source.released.wait(timeout=300)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the held pod is gone

        def log_message(self, *args: Any) -> None:
            pass

    # The node's address only: pods reach it over the bridge, nothing else does.
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    source = HeldSource(server, host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield source
    source.released.set()
    server.shutdown()
    server.server_close()


# --- the two installs ------------------------------------------------------------------

def tenant_namespace(kubectl: Kubectl) -> str:
    name = unique_name("mm-tenant")
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "modelmon.io/test=true")
    kubectl("create", "configmap", "bc-data", "-n", name,
            f"--from-file=reference.csv={EXAMPLE / 'reference.csv'}",
            f"--from-file=current.csv={EXAMPLE / 'current.csv'}")
    kubectl("label", "configmap", "bc-data", "-n", name, f"{USE_LABEL}=true")
    return name


def install_helm(kubectl: Kubectl, cluster: Cluster, helm: Path, image: str,
                 workdir: Path) -> tuple[Install, Any]:
    namespace, release = unique_name("mm-helm"), unique_name("mm")
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "modelmon.io/test=true")
    repository, tag = split_image(image)
    # The session applied the CRD already (crds/); the chart's copy is the same.
    run_helm(helm, cluster, "install", release, str(CHART), "-n", namespace,
             "--set", "crds.enabled=false", "--set", f"image.repository={repository}",
             "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never")
    manifests = yaml.safe_load_all(run_helm(helm, cluster, "get", "manifest", release,
                                            "-n", namespace))
    deployment = next(d for d in manifests if d and d["kind"] == "Deployment")
    install = Install("helm", namespace, deployment["metadata"]["name"],
                      tenant_namespace(kubectl),
                      deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
                      workdir)

    def remove() -> None:
        run_helm(helm, cluster, "uninstall", release, "-n", namespace, "--wait",
                 "--timeout=120s")
        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s",
                timeout=150)

    return install, remove


def install_kustomize(kubectl: Kubectl, image: str, workdir: Path) -> tuple[Install, Any]:
    folder = overlay(workdir / "overlay", image)
    assert not kubectl.exists("namespace", KUSTOMIZE_NAMESPACE), (
        f"namespace {KUSTOMIZE_NAMESPACE} exists already: this test installs manifests/ there")
    kubectl("apply", "-k", str(folder))
    docs = [d for d in yaml.safe_load_all(kubectl("kustomize", str(folder)).stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    install = Install("kustomize", KUSTOMIZE_NAMESPACE, deployment["metadata"]["name"],
                      tenant_namespace(kubectl),
                      deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
                      workdir)

    def remove() -> None:
        # Everything but the CRD, which the session shares (deleting it would delete
        # every ModelMonitor of the other tests).
        kept = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
        kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=120s", "-f", "-",
                input=manifest(kept), timeout=150)

    return install, remove


@pytest.fixture(scope="module", params=["helm", "kustomize"])
def install(request: pytest.FixtureRequest, node: Node, operator_image: str,
            cluster: Cluster, kubectl: Kubectl, helm: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """The operator installed from `make image-local`'s image one way: with the chart
    (image.repository, image.tag, image.pullPolicy=Never), or with `kubectl apply -k` of
    an overlay of manifests/ whose only change is `images:`. Removed after its tests,
    before the other way is installed (both are cluster-wide)."""
    workdir = tmp_path_factory.mktemp(f"pod-e2e-{request.param}")
    if request.param == "helm":
        made, remove = install_helm(kubectl, cluster, helm, operator_image, workdir)
    else:
        made, remove = install_kustomize(kubectl, operator_image, workdir)
    try:
        yield made
    finally:
        try:
            remove()
        finally:
            kubectl("delete", "namespace", made.tenant, "--wait=false", "--ignore-not-found")


# --- the tests -------------------------------------------------------------------------

# The first test of each install pays for it (and, run alone after a change to the build
# context, for the image's build by the `operator_image` fixture: minutes).
@pytest.mark.timeout(600)
def test_the_deployment_becomes_available_with_the_local_image(
        kubectl: Kubectl, node: Node, install: Install, operator_image: str) -> None:
    pod = ready_pod(kubectl, install)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == operator_image
    if install.flavour == "helm":
        assert container["imagePullPolicy"] == "Never"
    # Ready means /readyz answered (the readiness probe); the liveness probe has not
    # restarted it.
    assert {p["httpGet"]["path"] for p in (container["readinessProbe"],
                                           container["livenessProbe"])} == {"/readyz",
                                                                            "/healthz"}
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] and status["restartCount"] == 0, status
    assert pod["spec"]["nodeName"] == node.name


def test_the_pod_checks_a_monitor_with_configmap_sources(
        kubectl: Kubectl, node: Node, install: Install) -> None:
    ready_pod(kubectl, install)
    doc = tenant_monitor("bc", config_map_source("reference.csv"),
                         config_map_source("current.csv"), "1h")
    kubectl("apply", "-n", install.tenant, "-f", "-", input=manifest(doc))
    status = wait_for(lambda: (s := status_of(kubectl, install.tenant, "bc")).get("lastCheck")
                      and s, timeout=90, what="the pod's first check of bc")
    # Read from the ConfigMap with the pod's own service account, the pod finds what
    # `modelmon check` finds in the example's files on this machine.
    local = run_check(load_monitors(EXAMPLE / "monitor.yaml")[0].spec, base_dir=EXAMPLE)
    assert local.last_check is not None
    assert status["phase"] == local.phase, status
    assert [f["name"] for f in status["findings"]] == [f.name for f in local.findings]
    assert status["lastCheck"]["referenceRows"] == local.last_check.reference_rows
    assert status["lastCheck"]["currentRows"] == local.last_check.current_rows
    sources = next(c for c in status["conditions"] if c["type"] == "SourceAvailable")
    assert sources["status"] == "True", sources
    assert [h["time"] for h in status["history"]] == [status["lastCheck"]["time"]]


def test_kubectl_logs_are_json_lines(kubectl: Kubectl, node: Node, install: Install) -> None:
    pod = ready_pod(kubectl, install)["metadata"]["name"]
    records = json_lines(pod_logs(kubectl, install, pod))
    assert any(r.get("event") == "startup" for r in records), records[:5]


def test_the_pod_runs_as_65532_on_a_read_only_root(
        kubectl: Kubectl, node: Node, install: Install) -> None:
    pod = ready_pod(kubectl, install)
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # From inside: the operator's process (pid 1), a write to / and one to the /tmp
    # emptyDir (which must work, or the refusal at / would prove nothing).
    probe = (
        "import errno, json, os\n"
        "uids = next(l.split()[1:] for l in open('/proc/1/status') if l.startswith('Uid:'))\n"
        "def write(path):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "    os.remove(path)\n"
        "    return 'ok'\n"
        "print(json.dumps({'uid': os.getuid(), 'pid1_uids': uids,\n"
        "                  'cmdline': open('/proc/1/cmdline').read().split(chr(0)),\n"
        "                  'root': write('/probe'), 'tmp': write('/tmp/probe')}))\n")
    name = pod["metadata"]["name"]
    out = kubectl("exec", "-n", install.namespace, name, "-c", "operator", "--",
                  "python", "-c", probe).stdout
    seen = json.loads(out)
    assert seen["uid"] == 65532, seen
    assert set(seen["pid1_uids"]) == {"65532"}, seen  # real, effective, saved, fs
    assert "run" in seen["cmdline"], seen
    assert seen["root"] == "EROFS", seen
    assert seen["tmp"] == "ok", seen
    uid = kubectl("exec", "-n", install.namespace, name, "-c", "operator", "--", "id", "-u")
    assert uid.stdout.strip() == "65532"


@pytest.mark.timeout(300)
def test_a_pod_deleted_mid_check_is_replaced_without_a_duplicate_history_entry(
        kubectl: Kubectl, node: Node, install: Install, held_source: HeldSource) -> None:
    pod = ready_pod(kubectl, install)
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    with held_source.lock:  # another install's test may have used it
        held_source.requests.clear()
        held_source.hold = None
        held_source.released.clear()
    doc = tenant_monitor("resumes", config_map_source("reference.csv"),
                         {"url": held_source.url}, f"{INTERVAL_SECONDS}s")
    kubectl("apply", "-n", install.tenant, "-f", "-", input=manifest(doc))
    first = wait_for(lambda: (s := status_of(kubectl, install.tenant, "resumes"))
                     .get("history") and s, timeout=90, what="the first check of resumes")
    # The server's window reached the pod: the phase of the example's files.
    expected = run_check(load_monitors(EXAMPLE / "monitor.yaml")[0].spec, base_dir=EXAMPLE).phase
    assert first["phase"] == expected, first
    # The next check's request for its current window is held: it cannot finish.
    held_source.hold = ip
    wait_for(lambda: ip in held_source.held(), timeout=INTERVAL_SECONDS * 3,
             what="the next check to ask for its current window")
    before = status_of(kubectl, install.tenant, "resumes")
    assert before["history"][:len(first["history"])] == first["history"]

    end = delete_pod(kubectl, install, name)
    # Mid-check: the request was still unanswered when the pod was gone, and the status
    # had not moved since it arrived.
    assert held_source.held() == [ip] and not held_source.released.is_set()
    assert status_of(kubectl, install.tenant, "resumes")["history"] == before["history"]
    held_source.released.set()
    assert_ended_within_grace(end, install)

    new = ready_pod(kubectl, install)
    assert new["metadata"]["name"] != name
    after = wait_for(lambda: (s := status_of(kubectl, install.tenant, "resumes"))
                     ["history"] != before["history"] and s, timeout=90,
                     what="the new pod's check of resumes")
    history = after["history"]
    times = [timestamp(h["time"]) for h in history]
    assert len(set(times)) == len(times), history  # unique by check time
    assert times == sorted(times), history
    # What the deleted pod wrote is kept as it was, and nothing was added for its
    # interrupted check: every later entry is a whole check of the new pod (the same
    # window, so the same phase), and no slot of the schedule was checked twice.
    assert history[:len(before["history"])] == before["history"], history
    added = history[len(before["history"]):]
    assert added and all(h["phase"] == expected for h in added), added
    assert all(b - a >= timedelta(seconds=INTERVAL_SECONDS / 2)
               for a, b in pairwise(times)), times
    assert held_source.served_to(new["status"]["podIP"]) >= len(added)
    kubectl("delete", "mm", "resumes", "-n", install.tenant)


def test_sigterm_ends_the_process_within_the_grace_period(
        kubectl: Kubectl, node: Node, install: Install) -> None:
    pod = ready_pod(kubectl, install)
    end = delete_pod(kubectl, install, pod["metadata"]["name"])
    assert_ended_within_grace(end, install)
    assert ready_pod(kubectl, install)["metadata"]["name"] != pod["metadata"]["name"]
