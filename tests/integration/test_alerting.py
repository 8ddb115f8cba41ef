"""Alerts that reach people, end to end on 127.0.0.1: the operator's metrics scraped by
Debian's Prometheus, its generated rules evaluated there, Alertmanager routing by team and
severity to receivers run by the test; direct notifiers; secrets kept out of every output;
the retraining Job."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Cluster, Kubectl, manifest, wait_for
from monitors import EXAMPLE, apply, get, monitor, status_when
from operator_proc import OperatorProcess, free_port, http_get

from toolcheck import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

SECRETS = {
    "slack-path": "T0SECRET/B0SECRET/slack-secret-9f3kq",
    "pd": "pd-routing-secret-77a1x",
    "hmac": "hmac-secret-42zzq",
}


class Receiver:
    """Webhook receivers on one port: every POST is kept by path."""

    def __init__(self) -> None:
        self.posts: dict[str, list[Any]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts.setdefault(self.path, []).append(json.loads(body or b"null"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.posts.get(path, []))

    def all_paths(self) -> list[str]:
        with self.lock:
            return list(self.posts)


@contextlib.contextmanager
def daemon(argv: list[str], ready: str, root: Path) -> Iterator[None]:
    """A server process with its log in ``root``, ready when ``ready`` answers 200."""
    log = (root / f"{Path(argv[0]).name}.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is None and _ok(ready), timeout=60,
                 what=f"{argv[0]} ready")
        yield
    except TimeoutError:
        log.flush()
        raise RuntimeError((root / f"{Path(argv[0]).name}.log").read_text()[-3000:]) from None
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ok(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="modelmon-alerting-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def alertmanager(receiver: Receiver, workdir: Path) -> Iterator[str]:
    binary = require("prometheus-alertmanager")
    config = {
        "route": {
            "receiver": "default", "group_by": ["alertname", "namespace", "monitor"],
            "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
            "routes": [
                {"receiver": "risk-critical", "matchers": ['team="risk"', 'severity="critical"']},
                {"receiver": "risk-warning", "matchers": ['team="risk"']},
            ],
        },
        "receivers": [{"name": name, "webhook_configs": [
            {"url": f"{receiver.url}/am/{name}", "send_resolved": True}]}
            for name in ("default", "risk-warning", "risk-critical")],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    amtool = shutil.which("amtool")
    if amtool:
        subprocess.run([amtool, "check-config", str(workdir / "alertmanager.yml")], check=True,
                       capture_output=True)
    port = free_port()
    argv = [binary, f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=", "--log.level=warn"]
    with daemon(argv, f"http://127.0.0.1:{port}/-/ready", workdir):
        yield f"http://127.0.0.1:{port}"


def start_prometheus(workdir: Path, rules: dict[str, Any], metrics_port: int,
                     alertmanager: str) -> contextlib.AbstractContextManager[None]:
    binary = require("prometheus")
    (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yaml")],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "modelmon", "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [binary, f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return daemon(argv, f"http://127.0.0.1:{port}/-/ready", workdir)


def secret(kubectl: Kubectl, namespace: str, name: str, data: dict[str, str]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}))


def alerts_at(receiver: Receiver, path: str, alertname: str, status: str) -> list[Any]:
    return [a for post in receiver.get(path) for a in post["alerts"]
            if a["labels"]["alertname"] == alertname and a["status"] == status]


def test_drift_alert_routed_by_team_and_severity_then_resolved(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path,
        receiver: Receiver, alertmanager: str, workdir: Path) -> None:
    data = tmp_path
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, data / name)
    secret(kubectl, namespace, "hooks", {
        "slack": f"{receiver.url}/slack/{SECRETS['slack-path']}", "pd": SECRETS["pd"],
        "hmac": SECRETS["hmac"]})
    notifiers = [
        {"name": "team-slack", "slack": {"webhookSecretRef": {"name": "hooks", "key": "slack"}}},
        {"name": "oncall", "minSeverity": "critical",
         "pagerduty": {"routingKeySecretRef": {"name": "hooks", "key": "pd"},
                       "url": f"{receiver.url}/pd"}},
        {"name": "audit", "webhook": {"url": f"{receiver.url}/hook",
                                      "hmacSecretRef": {"name": "hooks", "key": "hmac"}}},
        # Never reachable: its failures must be reported without leaking the HMAC key.
        {"name": "broken", "webhook": {"url": f"http://127.0.0.1:{free_port()}/x",
                                       "hmacSecretRef": {"name": "hooks", "key": "hmac"}}},
    ]
    doc = monitor("credit", data, alerting={
        "labels": {"team": "risk"}, "notifiers": notifiers, "repeatInterval": "1h",
        "prometheusRule": {"for": "1s"}})
    # A second monitor pushes its alerts to Alertmanager itself (no Prometheus involved).
    pushed = monitor("pushed", data, alerting={
        "labels": {"team": "risk"}, "prometheusRule": {"enabled": False},
        "notifiers": [{"alertmanager": {"url": alertmanager}}]})
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    try:
        apply(kubectl, namespace, doc)
        apply(kubectl, namespace, pushed)
        st = status_when(kubectl, namespace, "credit",
                         lambda s: len(s.get("notifications", [])) == 4)
        rule = kubectl.json("get", "prometheusrule", "modelmon-credit", "-n", namespace)
        with start_prometheus(workdir, rule["spec"], op.metrics_port, alertmanager):
            # Prometheus evaluates the generated rule; Alertmanager routes it by team.
            def from_rule() -> list[Any]:
                return [a for a in alerts_at(receiver, "/am/risk-warning", "ModelDataDrift",
                                             "firing") if a["labels"]["monitor"] == "credit"]

            fired = wait_for(from_rule, timeout=90,
                             what="ModelDataDrift at the risk-warning receiver")
            labels = fired[0]["labels"]
            assert {k: labels[k] for k in ("team", "severity", "namespace", "monitor",
                                           "model")} == {
                "team": "risk", "severity": "warning", "namespace": namespace,
                "monitor": "credit", "model": "breast-cancer-lr"}
            assert fired[0]["annotations"]["summary"].startswith("Data drift in")
            assert not alerts_at(receiver, "/am/risk-critical", "ModelDataDrift", "firing")
            assert not alerts_at(receiver, "/am/default", "ModelDataDrift", "firing")

            # Recovery: the current window now looks like the reference.
            shutil.copy(data / "reference.csv", data / "current.csv")
            wait_for(lambda: alerts_at(receiver, "/am/risk-warning", "ModelDataDrift",
                                       "resolved"), timeout=90,
                     what="the resolve of ModelDataDrift")

        st = status_when(kubectl, namespace, "credit", lambda s: s["phase"] == "Healthy")
        states = {n["name"]: n for n in st["notifications"]}
        # Direct notifiers: one firing message and one resolve each.
        hook = receiver.get("/hook")
        assert [b["status"] for b in hook] == ["firing", "resolved"], hook
        assert hook[0]["dedupKey"] == hook[1]["dedupKey"]
        slack = receiver.get(f"/slack/{SECRETS['slack-path']}")
        assert len(slack) == 2 and "[RESOLVED]" in slack[1]["text"]
        pd = receiver.get("/pd")
        assert [b["event_action"] for b in pd] == ["trigger", "resolve"]
        assert pd[0]["routing_key"] == SECRETS["pd"]
        assert states["audit"]["firing"] == [] and states["audit"].get("lastError") is None
        assert states["broken"]["failures"] >= 1
        assert states["broken"]["lastError"] == "broken: cannot connect"
        # The pushed alerts went through the same Alertmanager routes, and resolved.
        pushed_alerts = [a for a in alerts_at(receiver, "/am/risk-critical",
                                              "ModelFeatureDrift", "firing")
                         if a["labels"]["monitor"] == "pushed"]
        assert pushed_alerts and pushed_alerts[0]["labels"]["feature"] == "mean_area"
        wait_for(lambda: [a for a in alerts_at(receiver, "/am/risk-critical",
                                               "ModelFeatureDrift", "resolved")
                          if a["labels"]["monitor"] == "pushed"], timeout=60,
                 what="the pushed alert resolved")

        # No secret value in status, events, logs or metrics.
        outputs = {
            "status": json.dumps(get(kubectl, namespace, "credit")["status"]),
            "events": kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
            "logs": op.logs(),
            "metrics": op.metrics(),
        }
        events = json.loads(outputs["events"])["items"]
        assert any(e["reason"] == "NotificationFailed" for e in events)
        for where, text in outputs.items():
            for name, value in SECRETS.items():
                assert value not in text, f"{name} leaked into {where}"
    finally:
        assert op.stop() == 0


def test_restart_neither_loses_nor_repeats_notifications(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path,
        receiver: Receiver) -> None:
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    doc = monitor("restart", tmp_path, alerting={
        "notifiers": [{"webhook": {"url": f"{receiver.url}/hook"}}], "repeatInterval": "1h"})
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op1.log").start()
    try:
        apply(kubectl, namespace, doc)
        status_when(kubectl, namespace, "restart",
                    lambda s: s.get("notifications") and s["notifications"][0]["lastSent"])
        time.sleep(12)  # a second check: no repeat within the hour
    finally:
        assert op.stop() == 0
    assert len(receiver.get("/hook")) == 1
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op2.log").start()
    try:
        before = len(get(kubectl, namespace, "restart")["status"]["history"])
        status_when(kubectl, namespace, "restart", lambda s: len(s["history"]) >= before + 2,
                    timeout=40, what="two checks after the restart")
        assert len(receiver.get("/hook")) == 1  # the restart repeated nothing
        shutil.copy(tmp_path / "reference.csv", tmp_path / "current.csv")
        wait_for(lambda: len(receiver.get("/hook")) == 2, timeout=30, what="the resolve")
        assert receiver.get("/hook")[1]["status"] == "resolved"
    finally:
        assert op.stop() == 0


def test_retraining_job_is_created_once_and_recorded(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    template = {"metadata": {"labels": {"purpose": "retrain"}},
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "train", "image": "registry.example/train:1",
                                    "args": ["--model", "breast-cancer"]}]}}}}
    doc = monitor("retrain", tmp_path, retraining={
        "when": {"drift": True, "performance": False, "consecutiveChecks": 2},
        "jobTemplate": template, "cooldown": "1h"})
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op.log").start()
    try:
        apply(kubectl, namespace, doc)
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: (s.get("retraining") or {}).get("lastJob"), timeout=40)
        assert len(st["history"]) == 2  # the second consecutive drifting check
        job_name = st["retraining"]["lastJob"]
        assert st["retraining"]["outcome"] == "Running"
        job = kubectl.json("get", "job", job_name, "-n", namespace)
        owner = job["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ModelMonitor" and owner["name"] == "retrain"
        assert job["metadata"]["labels"]["purpose"] == "retrain"
        # The job controller creates the pod; without a kubelet it stays Pending.
        pods = wait_for(lambda: kubectl.json("get", "pods", "-n", namespace, "-l",
                                             f"job-name={job_name}")["items"], timeout=30,
                        what="the Job's pod")
        assert pods[0]["status"].get("phase", "Pending") == "Pending"
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: len(s["history"]) >= 5, timeout=45, what="three more checks")
        assert "still running" in (st["retraining"]["message"] or "")
        jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
        assert [j["metadata"]["name"] for j in jobs] == [job_name]
        events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                              "involvedObject.name=retrain")["items"]
        assert sum(e["reason"] == "RetrainingStarted" for e in events) == 1
    finally:
        assert op.stop() == 0
    kubectl("delete", "mm", "retrain", "-n", namespace)
    wait_for(lambda: not kubectl.exists("job", job_name, "-n", namespace), timeout=60,
             what="the Job garbage-collected with its monitor")
