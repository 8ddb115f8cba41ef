"""Alerts that reach people, end to end on 127.0.0.1: the operator's metrics scraped by
Debian's Prometheus, its generated rules evaluated there, Alertmanager routing by team and
severity to receivers run by the test; direct notifiers; secrets kept out of every output;
the retraining Job."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import REPO_ROOT, Cluster, Kubectl, manifest, wait_for
from monitors import EXAMPLE, apply, get, monitor, status_when
from operator_proc import OperatorProcess, free_port, http_get

from modelmon.api.policy import USE_LABEL
from modelmon.api.v1alpha1 import RetrainingSpec
from modelmon.outputs import retraining
from modelmon.outputs.notifiers.base import dedup_key
from toolcheck import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

SECRETS = {
    "slack-path": "T0SECRET/B0SECRET/slack-secret-9f3kq",
    "broken-slack-path": "T0SECRET/B0BROKEN/slack-secret-2mv8w",
    "pd": "pd-routing-secret-77a1x",
    "hmac": "hmac-secret-42zzq",
    "smtp-password": "smtp-secret-pw-5rt8k",
}


class Relay:
    """An SMTP server (aiosmtpd) that refuses every login and keeps the passwords it was
    offered: the email notifier's failing path, with its secret on the wire."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

        self.offered: list[bytes] = []
        relay = self

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:
            if isinstance(data, LoginPassword):
                relay.offered.append(data.password)
            return AuthResult(success=False, handled=False)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,  # noqa: N802
                                  envelope: Any) -> str:
                return "250 OK"

        class Server(Controller):
            def factory(self) -> SMTP:
                return SMTP(self.handler, authenticator=authenticate, auth_require_tls=False)

        self.port = free_port()
        self.controller = Server(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def identities(receiver: Receiver, monitor: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets (but the monitor's name) of every firing alert of one monitor that
    reached any Alertmanager receiver."""
    return {tuple(sorted((k, v) for k, v in a["labels"].items() if k != "monitor"))
            for path in receiver.all_paths() if path.startswith("/am/")
            for post in receiver.get(path) for a in post["alerts"]
            if a["status"] == "firing" and a["labels"]["monitor"] == monitor}


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
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {USE_LABEL: "true"}},  # the opt-in label
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}))


def alerts_at(receiver: Receiver, path: str, alertname: str, status: str) -> list[Any]:
    return [a for post in receiver.get(path) for a in post["alerts"]
            if a["labels"]["alertname"] == alertname and a["status"] == status]


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay()
    yield r
    r.stop()


def test_drift_alert_routed_by_team_and_severity_then_resolved(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path,
        receiver: Receiver, alertmanager: str, workdir: Path, relay: Relay) -> None:
    data = tmp_path
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, data / name)
    secret(kubectl, namespace, "hooks", {
        "slack": f"{receiver.url}/slack/{SECRETS['slack-path']}", "pd": SECRETS["pd"],
        "hmac": SECRETS["hmac"],
        # Nothing listens there: every delivery fails, with the secret URL in hand.
        "broken-slack": f"http://127.0.0.1:{free_port()}/slack/"
                        f"{SECRETS['broken-slack-path']}",
        "smtp-user": "modelmon", "smtp-password": SECRETS["smtp-password"]})
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
        {"name": "broken-slack",
         "slack": {"webhookSecretRef": {"name": "hooks", "key": "broken-slack"}}},
        # The relay refuses the login: the password is sent, and the failure reported.
        {"name": "mail", "email": {
            "smtp": {"host": "127.0.0.1", "port": relay.port, "startTls": False,
                     "usernameSecretRef": {"name": "hooks", "key": "smtp-user"},
                     "passwordSecretRef": {"name": "hooks", "key": "smtp-password"}},
            "from": "modelmon@example.org", "to": ["risk@example.org"]}},
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
                         lambda s: len(s.get("notifications", [])) == len(notifiers))
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

            # The same data, one monitor evaluated by Prometheus and the other pushing:
            # the same alerts with the same labels reach Alertmanager.
            def same_alerts() -> bool:
                pushed_ids = identities(receiver, "pushed")
                return bool(pushed_ids) and identities(receiver, "credit") == pushed_ids

            try:
                wait_for(same_alerts, timeout=90, what="the rule's alerts equal the pushed")
            except TimeoutError:
                rule_ids, pushed_ids = identities(receiver, "credit"), identities(receiver,
                                                                                  "pushed")
                raise AssertionError(f"only from the rule: {rule_ids - pushed_ids}; "
                                     f"only pushed: {pushed_ids - rule_ids}") from None
            names = {dict(labels)["alertname"] for labels in identities(receiver, "pushed")}
            assert {"ModelDataDrift", "ModelFeatureDrift", "ModelPerformanceDegraded",
                    "ModelDataQualityDegraded"} <= names, names

            # Recovery: the current window now looks like the reference.
            shutil.copy(data / "reference.csv", data / "current.csv")
            wait_for(lambda: [a for a in alerts_at(receiver, "/am/risk-warning",
                                                   "ModelDataDrift", "resolved")
                              if a["labels"]["monitor"] == "credit"], timeout=90,
                     what="the resolve of the rule's ModelDataDrift")

        # Deliveries run beside the checks; their outcome is in the status patch after them.
        st = status_when(kubectl, namespace, "credit", lambda s: s["phase"] == "Healthy" and any(
            n["name"] == "audit" and not n["firing"] for n in s["notifications"]),
            what="Healthy, and the resolve's delivery recorded")
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
        assert states["broken-slack"]["lastError"] == "broken-slack: cannot connect"
        assert states["mail"]["lastError"] == "mail: SMTP authentication failed (535)"
        assert relay.offered and set(relay.offered) == {SECRETS["smtp-password"].encode()}
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
        failed = {e["message"] for e in events if e["reason"] == "NotificationFailed"}
        assert {"broken: cannot connect", "broken-slack: cannot connect",
                "mail: SMTP authentication failed (535)"} <= failed
        assert "mail: SMTP authentication failed (535)" in outputs["logs"]
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
        # The delivery's outcome is written with the status of the check after it.
        status_when(kubectl, namespace, "restart",
                    lambda s: s.get("notifications") and s["notifications"][0].get("lastSent"))
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


class HangingReceiver:
    """A webhook receiver that, while ``hanging`` is set, answers POSTs to /slow only after
    the operator's client has given up (its timeout is 10 s), and others at once; every
    POST is kept with its dedup key and whether it was answered in time."""

    def __init__(self) -> None:
        self.hanging = threading.Event()
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                post = {"path": self.path, "key": self.headers["X-Modelmon-Dedup-Key"],
                        "body": body,
                        "hung": self.path == "/slow" and receiver.hanging.is_set()}
                with receiver.lock:
                    receiver.posts.append(post)
                if post["hung"]:
                    time.sleep(15)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # the late answer to a client that has gone

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str, *, hung: bool | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts
                    if p["path"] == path and (hung is None or p["hung"] == hung)]


def check_gaps(status: dict[str, Any]) -> list[float]:
    """Seconds between consecutive checks, from the status's history."""
    times = [datetime.fromisoformat(h["time"]) for h in status["history"]]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def test_a_hanging_receiver_changes_no_schedule_and_gets_its_alert_later(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """Issue 14: a webhook that takes longer than the client's timeout, a 10 s interval,
    drifted data. The checks keep their cadence (each gap within the interval plus 1 s),
    a neighbour's too, and when the receiver recovers the queued alert arrives under the
    key of the attempts made while it hung."""
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    receiver = HangingReceiver()
    receiver.hanging.set()
    slow = monitor("slow", tmp_path, alerting={
        "notifiers": [{"name": "hook", "webhook": {"url": f"{receiver.url}/slow"}}],
        "repeatInterval": "1h"})
    neighbour = monitor("neighbour", tmp_path, alerting={
        "notifiers": [{"name": "hook", "webhook": {"url": f"{receiver.url}/fine"}}],
        "repeatInterval": "1h"})
    interval = 10.0
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op.log").start()
    try:
        apply(kubectl, namespace, slow)
        apply(kubectl, namespace, neighbour)
        # Five checks (four gaps) while every attempt hangs past the client's timeout.
        st = status_when(kubectl, namespace, "slow", lambda s: len(s.get("history", [])) >= 5,
                         timeout=120, what="five checks of the monitor whose receiver hangs")
        assert all(p["hung"] for p in receiver.at("/slow"))
        assert len(receiver.at("/slow")) >= 2, "the lane retried"
        gaps = check_gaps(st)
        assert len(gaps) >= 4 and all(g <= interval + 1 for g in gaps), gaps
        (hook,) = st["notifications"]
        assert hook["failures"] >= 1 and hook["lastError"] == "hook: timed out after 10s"
        assert hook["firing"] == [] and hook["since"]  # owed, not delivered
        assert st["phase"] in ("Drifting", "Degraded") and st["findings"]

        receiver.hanging.clear()  # the receiver recovers
        delivered = wait_for(lambda: receiver.at("/slow", hung=False), timeout=60,
                             what="the queued alert delivered")
        st = status_when(kubectl, namespace, "slow", lambda s: s["notifications"][0].get(
            "lastSent"), timeout=30, what="the delivery recorded in status")
        (hook,) = st["notifications"]
        assert hook["failures"] == 0 and hook.get("lastError") is None
        # One episode: every attempt, hung or answered, carried the same dedup key.
        keys = {p["key"] for p in receiver.at("/slow")}
        since = datetime.fromisoformat(hook["since"])
        assert keys == {dedup_key(namespace, "slow", "hook", since)}, keys
        # Nothing lost: the message delivered fires every finding of the monitor, once.
        (message,) = delivered
        assert message["body"]["status"] == "firing"
        assert {f["name"] for f in message["body"]["firing"]} == \
            {f["name"] for f in st["findings"]} == {d["name"] for d in hook["firing"]}
        events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                              "involvedObject.name=slow")["items"]
        failed = [e for e in events if e["reason"] == "NotificationFailed"]
        assert [e["message"] for e in failed] == ["hook: timed out after 10s"]  # once

        # The neighbour kept its cadence too, and was told once.
        st = get(kubectl, namespace, "neighbour")["status"]
        gaps = check_gaps(st)
        assert len(gaps) >= 4 and all(g <= interval + 1 for g in gaps), gaps
        assert len(receiver.at("/fine")) == 1
    finally:
        code = op.stop()
        receiver.server.shutdown()
    assert code == 0


def test_a_delivery_after_the_last_status_write_is_recorded_at_exit(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path,
        receiver: Receiver) -> None:
    """The check's status patch goes out before its queued message is delivered; an
    operator that stops before the next check writes the outcome on its way out, so the
    next one does not send the message again."""
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    doc = monitor("exit", tmp_path, schedule={"interval": "1h"}, alerting={
        "notifiers": [{"webhook": {"url": f"{receiver.url}/hook"}}], "repeatInterval": "1h"})
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op1.log").start()
    try:
        apply(kubectl, namespace, doc)
        wait_for(lambda: receiver.get("/hook"), timeout=60, what="the alert")
        (hook,) = get(kubectl, namespace, "exit")["status"]["notifications"]
        assert not hook.get("lastSent")  # the check's own write did not know of it
    finally:
        assert op.stop() == 0
    (hook,) = get(kubectl, namespace, "exit")["status"]["notifications"]
    assert hook.get("lastSent") and hook["firing"] and hook["failures"] == 0
    # A spec change makes the next operator check at once: it owes the receiver nothing.
    kubectl("patch", "mm", "exit", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"schedule": {"interval": "10s"}}}))
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op2.log").start()
    try:
        status_when(kubectl, namespace, "exit", lambda s: len(s["history"]) >= 3, timeout=60,
                    what="two checks by the next operator")
        assert len(receiver.get("/hook")) == 1
    finally:
        assert op.stop() == 0


TEMPLATE = {"metadata": {"labels": {"purpose": "retrain"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "train", "image": "registry.example/train:1",
                                "args": ["--model", "breast-cancer"]}]}}}}


def shipped_rbac_operator(cluster: Cluster, kubectl: Kubectl, namespace: str,
                          log: Path) -> OperatorProcess:
    """An operator that authenticates as a ServiceAccount holding only the rules of
    manifests/base/rbac.yaml plus the opt-in Jobs rule of the retraining component
    (manifests/retraining/), as a Role in the namespace it watches."""
    docs = yaml.safe_load_all((REPO_ROOT / "manifests" / "base" / "rbac.yaml").read_text())
    rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    patch = yaml.safe_load((REPO_ROOT / "manifests" / "components" / "retraining" /
                            "jobs-rule.yaml").read_text())
    rules = [*rules, *(op["value"] for op in patch if op["op"] == "add")]
    kubectl("create", "serviceaccount", "modelmon", "-n", namespace)
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "modelmon"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "modelmon"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "modelmon"},
         "subjects": [{"kind": "ServiceAccount", "name": "modelmon",
                       "namespace": namespace}]}]))
    token = kubectl("create", "token", "modelmon", "-n", namespace,
                    "--duration=1h").stdout.strip()
    sa = kubectl.with_token(token, log.parent)

    def can_i(*args: str) -> bool:
        return sa("auth", "can-i", *args, "-n", namespace,
                  check=False).stdout.strip() == "yes"

    wait_for(lambda: can_i("get", "jobs.batch"), timeout=30, what="the RoleBinding in effect")
    assert not can_i("get", "jobs.batch", "--subresource=status")
    assert not can_i("list", "jobs.batch")
    # $KUBECONFIG names the admin: --kubeconfig must win, or this would test nothing.
    return OperatorProcess(sa.kubeconfig, [namespace], log,
                           extra_env={"KUBECONFIG": str(cluster.kubeconfig)})


def finish_pod(kubectl: Kubectl, namespace: str, job: str, phase: str) -> None:
    """Act as the kubelet (there is none): the Job's pod ran, and ended in ``phase``.
    The job controller then sees a finished pod and concludes the Job."""
    pods = wait_for(lambda: kubectl.json("get", "pods", "-n", namespace, "-l",
                                         f"job-name={job}")["items"], timeout=30,
                    what=f"the pod of Job {job}")
    assert pods[0]["status"].get("phase", "Pending") == "Pending"
    kubectl("patch", "pod", pods[0]["metadata"]["name"], "-n", namespace,
            "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": phase}}))


def job_condition(kubectl: Kubectl, namespace: str, job: str) -> str | None:
    conditions = kubectl.json("get", "job", job, "-n", namespace)["status"].get(
        "conditions") or []
    return next((c["type"] for c in conditions
                 if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


def jobs_in(kubectl: Kubectl, namespace: str) -> list[str]:
    return sorted(j["metadata"]["name"]
                  for j in kubectl.json("get", "jobs", "-n", namespace)["items"])


def started_events(kubectl: Kubectl, namespace: str, monitor: str) -> int:
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                          f"involvedObject.name={monitor}")["items"]
    return sum(e["reason"] == "RetrainingStarted" for e in events)


def test_retraining_job_created_before_a_crash_is_found_not_repeated(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """The state a crash between creating the Job and patching the status leaves: the Job
    exists, the status does not know it. The operator finds it under the name it would
    give it, records it and starts no second one while it runs."""
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    spec = {"when": {"drift": True, "performance": False, "consecutiveChecks": 2},
            "jobTemplate": TEMPLATE, "cooldown": "1h"}
    doc = monitor("retrain", tmp_path, retraining=spec)
    apply(kubectl, namespace, doc)
    uid = get(kubectl, namespace, "retrain")["metadata"]["uid"]
    body = retraining.job(RetrainingSpec.model_validate(spec), namespace, "retrain", uid, None)
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(body))
    job_name = body["metadata"]["name"]
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op.log").start()
    try:
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: (s.get("retraining") or {}).get("lastJob"), timeout=40)
        assert len(st["history"]) == 2  # the second consecutive drifting check
        assert st["retraining"]["lastJob"] == job_name
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
        assert jobs_in(kubectl, namespace) == [job_name]
        assert started_events(kubectl, namespace, "retrain") == 0  # it created none
    finally:
        assert op.stop() == 0
    kubectl("delete", "mm", "retrain", "-n", namespace)
    wait_for(lambda: not kubectl.exists("job", job_name, "-n", namespace), timeout=60,
             what="the Job garbage-collected with its monitor")


def test_retraining_outcomes_cooldown_and_the_next_job(
        cluster: Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """Under the shipped RBAC: a Job that succeeds, the cooldown that holds the next one
    back although the condition persists, the next Job after it, and one that fails."""
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    cooldown = 40
    doc = monitor("retrain", tmp_path, retraining={
        "when": {"drift": True, "performance": False, "consecutiveChecks": 2},
        "jobTemplate": TEMPLATE, "cooldown": f"{cooldown}s"})
    op = shipped_rbac_operator(cluster, kubectl, namespace, tmp_path / "op.log").start()
    try:
        apply(kubectl, namespace, doc)
        uid = get(kubectl, namespace, "retrain")["metadata"]["uid"]
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: (s.get("retraining") or {}).get("lastJob"), timeout=40)
        first = st["retraining"]["lastJob"]
        assert first == retraining.job_name("retrain", uid, None)
        first_started = datetime.fromisoformat(st["retraining"]["lastStarted"])

        finish_pod(kubectl, namespace, first, "Succeeded")
        wait_for(lambda: job_condition(kubectl, namespace, first) == "Complete", timeout=30,
                 what="the job controller completing the Job")
        status_when(kubectl, namespace, "retrain",
                    lambda s: s["retraining"]["outcome"] == "Succeeded", timeout=30,
                    what="the outcome Succeeded in status")
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: "in cooldown" in (s["retraining"].get("message") or ""),
                         timeout=40, what="a due Job held back by the cooldown")
        assert st["retraining"]["lastJob"] == first and jobs_in(kubectl, namespace) == [first]

        st = status_when(kubectl, namespace, "retrain",
                         lambda s: s["retraining"]["lastJob"] != first, timeout=60,
                         what="the next Job after the cooldown")
        second = st["retraining"]["lastJob"]
        assert second == retraining.job_name("retrain", uid, first)
        started = datetime.fromisoformat(st["retraining"]["lastStarted"])
        assert started - first_started >= timedelta(seconds=cooldown)
        assert st["retraining"]["outcome"] == "Running"

        finish_pod(kubectl, namespace, second, "Failed")
        wait_for(lambda: job_condition(kubectl, namespace, second) == "Failed", timeout=30,
                 what="the job controller failing the Job")
        st = status_when(kubectl, namespace, "retrain",
                         lambda s: s["retraining"]["outcome"] == "Failed", timeout=30,
                         what="the outcome Failed in status")
        assert st["retraining"]["lastJob"] == second
        assert jobs_in(kubectl, namespace) == sorted([first, second])
        assert started_events(kubectl, namespace, "retrain") == 2
    finally:
        code = op.stop()
    assert code == 0
    assert "cannot read Job" not in op.logs()
    assert "forbidden" not in op.logs().lower()
