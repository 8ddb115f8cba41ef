"""Direct notifiers against local HTTP and SMTP servers, with failures injected."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from modelmon.api.v1alpha1 import AlertingSpec, Finding, NotifierState
from modelmon.outputs.notifiers import Context, decide, notify
from modelmon.outputs.notifiers import base as notifier_base
from modelmon.outputs.notifiers.senders import alert_identity, webhook_body
from modelmon.sources import SourceError

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CTX = Context("ml", "credit", "credit-risk", "2.3.1", "Drifting", 600.0)
DRIFT = Finding(name="drift.dataset", severity="warning", value=0.6, bound=0.5,
                message="6 of 10 features drifted")
AUC = Finding(name="performance.rocAuc", severity="critical", value=0.6, bound=0.8,
              message="rocAuc 0.6 is below 0.8")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_base, "FIRST_DELAY_SECONDS", 0.05)
    monkeypatch.setattr(notifier_base, "REQUEST_TIMEOUT_SECONDS", 0.5)


class Secrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values

    def secret(self, name: str, key: str) -> str:
        try:
            return self.values[(name, key)]
        except KeyError:
            raise SourceError(f"Secret ml/{name} has no key {key!r}") from None


# ------------------------------------------------------------------------------ decisions


def state(*firing: Finding, sent: datetime = T0) -> NotifierState:
    return NotifierState.model_validate({
        "name": "n", "kind": "webhook", "lastSent": sent, "since": sent,
        "firing": [{"name": f.name, "severity": f.severity} for f in firing]})


def test_decide_start_repeat_and_resolve() -> None:
    hour = timedelta(hours=1)
    assert decide(None, [DRIFT], T0, hour).send
    assert not decide(None, [], T0, hour).send
    assert not decide(state(DRIFT), [DRIFT], T0 + timedelta(minutes=59), hour).send
    assert decide(state(DRIFT), [DRIFT], T0 + hour, hour).send
    started = decide(state(DRIFT), [DRIFT, AUC], T0 + timedelta(minutes=1), hour)
    assert started.send and [f.name for f in started.active] == ["drift.dataset",
                                                                 "performance.rocAuc"]
    cleared = decide(state(DRIFT, AUC), [AUC], T0 + timedelta(minutes=1), hour)
    assert cleared.send and [d.name for d in cleared.resolved] == ["drift.dataset"]
    assert decide(state(DRIFT), [DRIFT], T0 + timedelta(minutes=1), hour,
                  every_check=True).send


# ------------------------------------------------------------------------ an HTTP server


@dataclass
class Receiver:
    """Records requests; answers from a script of statuses, then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.path, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            status, headers = self.script.pop(0)
            return web.Response(status=status, headers=headers)
        return web.Response(status=200, text="ok")

    def bodies(self) -> list[Any]:
        return [json.loads(b) for _, _, b in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def alerting(**notifier: Any) -> AlertingSpec:
    return AlertingSpec.model_validate({"notifiers": [notifier], "labels": {"team": "risk"},
                                        "repeatInterval": "1h",
                                        "dashboardUrl": "https://grafana.example/d/x"})


SECRETS = Secrets({("hook", "key"): "hmac-key-123", ("slack", "url"): "",
                   ("pd", "key"): "pd-routing-key"})


async def test_webhook_signed_and_retried_through_500_and_429(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (429, {"Retry-After": "0.2"})]
    spec = alerting(webhook={"url": receiver.url + "/hook",
                             "hmacSecretRef": {"name": "hook", "key": "key"}})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0)
    assert st.last_error is None and st.failures == 0
    assert [d.name for d in st.firing] == ["drift.dataset"] and st.since == T0
    assert len(receiver.requests) == 3
    keys = {h["X-Modelmon-Dedup-Key"] for _, h, _ in receiver.requests}
    assert len(keys) == 1  # every retry carries the same dedup key
    _, headers, body = receiver.requests[-1]
    expected = hmac.new(b"hmac-key-123", body, hashlib.sha256).hexdigest()
    assert headers["X-Modelmon-Signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert sent["status"] == "firing" and sent["firing"][0]["name"] == "drift.dataset"
    assert sent["labels"] == {"team": "risk"} and sent["link"] == "https://grafana.example/d/x"


async def test_timeouts_exhaust_then_next_check_delivers_the_same_episode(
        receiver: Receiver) -> None:
    receiver.delay = 1.0  # longer than the (patched) 0.5 s request timeout
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0)
    assert st.failures == 1 and "timed out" in (st.last_error or "")
    assert st.firing == [] and st.last_sent is None  # nothing recorded as delivered
    assert len(receiver.requests) == notifier_base.ATTEMPTS
    receiver.delay = 0.0
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=10))
    assert st.failures == 0 and [d.name for d in st.firing] == ["drift.dataset"]
    bodies = receiver.bodies()
    assert bodies[-1]["status"] == "firing"
    # The retried message of the next check still belongs to one episode: same key.
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=20))
    assert len(receiver.requests) == notifier_base.ATTEMPTS + 1  # no repeat within 1 h


async def test_connection_refused_loses_nothing(receiver: Receiver) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    spec = alerting(webhook={"url": f"http://127.0.0.1:{closed}/hook"})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0)
    assert "cannot connect" in (st.last_error or "") and st.firing == []
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=1))
    assert st.last_error is None and len(receiver.requests) == 1


async def test_4xx_is_reported_without_retries(receiver: Receiver) -> None:
    receiver.script = [(404, {}), (404, {})]
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0)
    assert st.last_error == "webhook-0: HTTP 404 Not Found" and len(receiver.requests) == 1
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=10))
    assert st.failures == 2 and len(receiver.requests) == 2  # one try per check, no storm


async def test_slack_message_and_secret_url(receiver: Receiver) -> None:
    secrets = Secrets({("slack", "url"): receiver.url + "/services/T000/B000/XXXX"})
    spec = alerting(slack={"webhookSecretRef": {"name": "slack", "key": "url"},
                           "channel": "#ml-alerts"}, minSeverity="critical")
    (st,) = await notify(spec, [DRIFT], [], CTX, secrets, T0)
    assert receiver.requests == [] and st.firing == []  # below minSeverity: nothing to send
    (st,) = await notify(spec, [DRIFT, AUC], [st], CTX, secrets, T0)
    (path, _, raw) = receiver.requests[0]
    body = json.loads(raw)
    assert path == "/services/T000/B000/XXXX" and body["channel"] == "#ml-alerts"
    assert "[CRITICAL] ml/credit (credit-risk 2.3.1)" in body["text"]
    detail = body["blocks"][1]["text"]["text"]
    assert "rocAuc 0.6 is below 0.8" in detail and "drift" not in detail
    assert "https://grafana.example/d/x" in detail


async def test_pagerduty_trigger_and_resolve_share_the_dedup_key(receiver: Receiver) -> None:
    spec = alerting(pagerduty={"routingKeySecretRef": {"name": "pd", "key": "key"},
                               "url": receiver.url + "/v2/enqueue"})
    (st,) = await notify(spec, [AUC], [], CTX, SECRETS, T0)
    (st,) = await notify(spec, [], [st], CTX, SECRETS, T0 + timedelta(minutes=10))
    trigger, resolve = receiver.bodies()
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "modelmon/ml/credit"
    assert trigger["routing_key"] == "pd-routing-key"
    assert trigger["payload"]["severity"] == "critical"
    assert st.firing == [] and st.since is None


async def test_missing_secret_is_reported_by_name(receiver: Receiver) -> None:
    spec = alerting(pagerduty={"routingKeySecretRef": {"name": "pd", "key": "nope"},
                               "url": receiver.url})
    (st,) = await notify(spec, [AUC], [], CTX, SECRETS, T0)
    assert st.last_error == "pagerduty-0: Secret ml/pd has no key 'nope'"
    assert receiver.requests == []


def test_alertmanager_labels_match_the_rule_alerts() -> None:
    msg = notifier_base.Message("ml", "credit", "credit-risk", None, "Degraded", T0, [], [],
                                "k")
    cases = {
        "drift.dataset": ("ModelDataDrift", {}),
        "performance.accuracy": ("ModelPerformanceDegraded", {"metric": "accuracy"}),
        "dataQuality.missingFraction.age": ("ModelDataQualityDegraded",
                                            {"check": "missingFraction", "column": "age"}),
        "check.failing": ("ModelMonitorCheckFailing", {}),
    }
    for name, expected in cases.items():
        f = Finding(name=name, severity="warning", value=1, bound=0, message="m")
        assert alert_identity(f, msg) == expected


async def test_alertmanager_push_fires_every_check_and_resolves(receiver: Receiver) -> None:
    spec = alerting(alertmanager={"url": receiver.url})
    (st,) = await notify(spec, [AUC], [], CTX, SECRETS, T0)
    (st,) = await notify(spec, [AUC], [st], CTX, SECRETS, T0 + timedelta(minutes=10))
    (st,) = await notify(spec, [], [st], CTX, SECRETS, T0 + timedelta(minutes=20))
    assert [p for p, _, _ in receiver.requests] == ["/api/v2/alerts"] * 3
    first, _, last = receiver.bodies()
    labels = first[0]["labels"]
    assert labels == {"alertname": "ModelPerformanceDegraded", "severity": "critical",
                      "namespace": "ml", "monitor": "credit", "model": "credit-risk",
                      "metric": "rocAuc", "team": "risk"}
    assert last[0]["labels"] == labels  # same labels: the resolve closes the same alert
    assert last[0]["endsAt"] == (T0 + timedelta(minutes=20)).isoformat()


def test_webhook_body_is_stable_json() -> None:
    msg = notifier_base.Message("ml", "credit", "m", None, "Healthy", T0, [], [], "k")
    assert webhook_body(msg)["status"] == "resolved"


# ---------------------------------------------------------------------------------- SMTP


@dataclass
class Mailbox:
    messages: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session,  # noqa: N802 - aiosmtpd's name
                          envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def _authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"pw-777")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtp_server(tls_files: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()

    class TLSController(Controller):
        def factory(self) -> aiosmtp.SMTP:
            return aiosmtp.SMTP(self.handler, tls_context=context, require_starttls=True,
                              authenticator=_authenticate, auth_require_tls=True)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = TLSController(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


async def test_email_over_starttls_with_login(smtp_server: tuple[Mailbox, int],
                                              tls_files: tuple[Path, Path]) -> None:
    mailbox, port = smtp_server
    secrets = Secrets({("smtp", "user"): "bot", ("smtp", "password"): "pw-777",
                       ("smtp", "ca"): tls_files[0].read_text()})
    smtp = {"host": "127.0.0.1", "port": port,
            "usernameSecretRef": {"name": "smtp", "key": "user"},
            "passwordSecretRef": {"name": "smtp", "key": "password"},
            "caSecretRef": {"name": "smtp", "key": "ca"}}
    spec = alerting(email={"smtp": smtp, "from": "modelmon@example.org",
                           "to": ["ml-team@example.org"]})
    (st,) = await notify(spec, [AUC], [], CTX, secrets, T0)
    assert st.last_error is None, st
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == ["ml-team@example.org"]
    raw = envelope.content if isinstance(envelope.content, bytes) else \
        str(envelope.content).encode()
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(mail["Subject"]).strip().startswith("[CRITICAL] ml/credit (credit-risk 2.3.1)")
    assert str(mail["X-Modelmon-Dedup-Key"]).startswith("modelmon-")
    assert "rocAuc 0.6 is below 0.8" in mail.get_body().get_content()  # type: ignore[union-attr]

    wrong = Secrets({**secrets.values, ("smtp", "password"): "wrong"})
    (st,) = await notify(spec, [AUC, DRIFT], [st], CTX, wrong, T0 + timedelta(minutes=1))
    assert st.last_error == "email-0: SMTP authentication failed (535)"
    assert "wrong" not in st.model_dump_json() and len(mailbox.messages) == 1
