"""The operator's egress policy, end to end: a monitor whose source or notifier points at a
denied address fails with the field named, the server there sees no connection, and the
operator and its other monitors go on.

Every server is on loopback: 127.0.0.1 (allowed, as for every operator these tests start)
and 127.0.0.2 (denied here with MODELMON_EGRESS_DENY).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import REPO_ROOT, Cluster, Kubectl
from monitors import EXAMPLE, apply, condition, monitor, status_when
from operator_proc import OperatorProcess
from servers import Postgres, postgres

from modelmon.api.policy import Egress, Policy
from modelmon.api.v1alpha1 import Source
from modelmon.cli import _egress
from modelmon.sources import LoadContext, egress, load
from modelmon.sources.egress import EgressRefusedError
from modelmon.sources.resolvers import LocalResolver
from modelmon.sources.sql import dispose_engines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Files(http.server.ThreadingHTTPServer):
    """Serves a directory; counts the connections it accepts."""

    connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE / name, root / name)
    return root


@pytest.fixture
def servers(data: Path) -> Iterator[tuple[Files, Files]]:
    """The example's data over http on 127.0.0.1 (allowed) and 127.0.0.2 (denied)."""
    started = []
    for host in ("127.0.0.1", "127.0.0.2"):
        server = Files((host, 0), functools.partial(Quiet, directory=str(data)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
    yield started[0][0], started[1][0]
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def url(server: Files, name: str) -> str:
    host, port = server.socket.getsockname()[:2]
    return f"http://{host}:{port}/{name}"


def test_a_denied_destination_fails_its_monitor_only(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path, tmp_path: Path,
        servers: tuple[Files, Files]) -> None:
    allowed, denied = servers
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                         extra_env={"MODELMON_EGRESS_DENY": "127.0.0.2/32"}).start()
    try:
        fine = monitor("fine", data)
        fine["spec"]["reference"]["source"]["url"] = url(allowed, "reference.csv")
        fine["spec"]["current"]["source"]["url"] = url(allowed, "current.csv")
        source = monitor("source", data)
        source["spec"]["reference"]["source"]["url"] = url(allowed, "reference.csv")
        source["spec"]["current"]["source"]["url"] = url(denied, "current.csv")
        notifier = monitor("notifier", data, alerting={
            "labels": {"team": "risk"}, "notifiers": [{"webhook": {"url": url(denied, "hook")}}]})
        notifier["spec"]["reference"]["source"]["url"] = url(allowed, "reference.csv")
        notifier["spec"]["current"]["source"]["url"] = url(allowed, "current.csv")
        for doc in (fine, source, notifier):
            apply(kubectl, namespace, doc)

        st = status_when(kubectl, namespace, "source", lambda s: s.get("phase") == "Failing")
        ready = condition(st, "Ready")
        assert ready["reason"] == "SourceUnavailable"
        assert ready["message"] == (
            "spec.current.source.url: the operator may not connect to 127.0.0.2 (the "
            "administrator denies 127.0.0.2/32 with --egress-deny)")

        st = status_when(kubectl, namespace, "notifier",
                         lambda s: (s.get("notifications") or [{}])[0].get("lastError"))
        assert st["phase"] == "Degraded"  # its check ran; only the delivery was refused
        assert st["notifications"][0]["lastError"] == (
            "webhook-0: spec.alerting.notifiers[0].webhook.url: the operator may not connect "
            "to 127.0.0.2 (the administrator denies 127.0.0.2/32 with --egress-deny)")

        # The allowed monitor keeps its schedule (10 s) through the refusals.
        st = status_when(kubectl, namespace, "fine", lambda s: len(s.get("history", [])) >= 3,
                         timeout=60, what="three checks of the allowed monitor")
        assert st["phase"] == "Degraded" and condition(st, "Ready")["status"] == "True"
        assert op.health("/healthz")[0] == 200 and op.proc is not None
        assert op.proc.poll() is None
        assert denied.connections == 0, "a denied server was reached"
        assert allowed.connections > 0
    finally:
        assert op.stop() == 0, op.logs()[-3000:]


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        yield server
    dispose_engines()


def test_postgresql_connects_to_the_checked_address(pg: Postgres,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``db.test`` resolves only through the policy's resolver: that the query runs proves
    libpq connected to the checked address (``hostaddr``), not to a second lookup."""
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "db.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", int(port)))]

    monkeypatch.setattr(egress, "getaddrinfo", resolve)
    url = pg.url().replace(f"@{pg.host}:", "@db.test:")
    src = Source.model_validate({"sql": {"connectionSecretRef": {"name": "db", "key": "url"},
                                         "query": "SELECT current_user AS who"}})

    def ctx(allow: str) -> LoadContext:
        return LoadContext(role="spec.current.source", retries=0,
                           policy=replace(Policy.operator(), egress=Egress(allow=(allow,))),
                           resolver=LocalResolver({("db", "url"): url}, env={}))

    assert load(src, ctx("127.0.0.1/32")).frame["who"].tolist() == [pg.user]
    with pytest.raises(EgressRefusedError, match=r"connectionSecretRef \(Secret 'db' key "
                                                  r"'url'\): the operator may not connect to "
                                                  r"db\.test \(127\.0\.0\.1\) \(loopback"):
        load(src, ctx("10.0.0.0/8"))


# --------------------------------------------------------------------------------- chart


def test_the_chart_passes_its_egress_lists_to_the_operator(helm: Path) -> None:
    """operator.egress reaches `modelmon run` as MODELMON_EGRESS_*, which it parses."""
    def env_of(*values: str) -> dict[str, str]:
        sets = [arg for v in values for arg in ("--set", v)]
        out = subprocess.run([str(helm), "template", "modelmon", str(REPO_ROOT / "helm" /
                                                                   "modelmon"), *sets],
                             check=True, capture_output=True, text=True, env={
                                 **os.environ, "HELM_CACHE_HOME": "/tmp/modelmon-helm/cache",
                                 "HELM_CONFIG_HOME": "/tmp/modelmon-helm/config",
                                 "HELM_DATA_HOME": "/tmp/modelmon-helm/data"}).stdout
        (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e["value"] for e in container["env"] if "value" in e}

    assert not {"MODELMON_EGRESS_ALLOW", "MODELMON_EGRESS_DENY"} & set(env_of())
    env = env_of("operator.egress.allow={10.0.0.0/8,*.svc.cluster.local}",
                 "operator.egress.deny={10.96.0.0/12}")
    assert env["MODELMON_EGRESS_ALLOW"] == "10.0.0.0/8,*.svc.cluster.local"
    assert env["MODELMON_EGRESS_DENY"] == "10.96.0.0/12"
    assert _egress(env["MODELMON_EGRESS_ALLOW"]) == ("10.0.0.0/8", "*.svc.cluster.local")
