"""Direct notifiers against local HTTP and SMTP servers, with failures injected."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from modelmon.api.v1alpha1 import AlertingSpec, Finding, NotifierState
from modelmon.outputs.notifiers import Context, decide, notify
from modelmon.outputs.notifiers import base as notifier_base
from modelmon.outputs.notifiers.senders import SENDERS, smtp_failure, webhook_body
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


class Sleeps:
    """A sleep that returns at once and records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def keys(receiver: Receiver) -> set[str]:
    return {h["X-Modelmon-Dedup-Key"] for _, h, _ in receiver.requests}


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
    receiver.script = [(500, {}), (429, {"Retry-After": "7"})]
    spec = alerting(webhook={"url": receiver.url + "/hook",
                             "hmacSecretRef": {"name": "hook", "key": "key"}})
    sleeps = Sleeps()
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0, sleep=sleeps)
    assert st.last_error is None and st.failures == 0
    assert [d.name for d in st.firing] == ["drift.dataset"] and st.since == T0
    assert len(receiver.requests) == 3
    # The backoff's first step after the 500, then what the 429's Retry-After asked for.
    assert sleeps.waits == [notifier_base.FIRST_DELAY_SECONDS, 7.0]
    assert len(keys(receiver)) == 1  # every retry carries the same dedup key
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
    sleeps = Sleeps()
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0, sleep=sleeps)
    assert st.failures == 1 and "timed out" in (st.last_error or "")
    assert st.firing == [] and st.last_sent is None  # nothing recorded as delivered
    assert st.since == T0  # but the episode started with its first attempt
    assert len(receiver.requests) == notifier_base.ATTEMPTS
    assert len(sleeps.waits) == notifier_base.ATTEMPTS - 1
    receiver.delay = 0.0
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=10),
                         sleep=sleeps)
    assert st.failures == 0 and [d.name for d in st.firing] == ["drift.dataset"]
    assert st.since == T0
    bodies = receiver.bodies()
    assert bodies[-1]["status"] == "firing"
    # The timed-out attempts and the next check's delivery are one episode: one key.
    assert len(receiver.requests) == notifier_base.ATTEMPTS + 1
    assert len(keys(receiver)) == 1
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=20))
    assert len(receiver.requests) == notifier_base.ATTEMPTS + 1  # no repeat within 1 h
    (st,) = await notify(spec, [], [st], CTX, SECRETS, T0 + timedelta(minutes=30))
    assert receiver.bodies()[-1]["status"] == "resolved" and len(keys(receiver)) == 1
    assert st.since is None


async def test_an_episode_that_never_got_through_ends_with_its_findings(
        receiver: Receiver) -> None:
    """Findings that clear before any message of them was delivered leave nothing to
    resolve; the next episode has a key of its own."""
    receiver.script = [(503, {})] * notifier_base.ATTEMPTS
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0, sleep=Sleeps())
    first = keys(receiver)
    assert st.since == T0 and st.last_error == "webhook-0: HTTP 503 Service Unavailable"
    (st,) = await notify(spec, [], [st], CTX, SECRETS, T0 + timedelta(minutes=10))
    assert st.since is None and len(receiver.requests) == notifier_base.ATTEMPTS
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=20))
    assert st.since == T0 + timedelta(minutes=20) and st.last_error is None
    assert len(keys(receiver) - first) == 1


async def test_connection_refused_loses_nothing(receiver: Receiver) -> None:
    """Refused in one check (the endpoint is then fixed), delivered in the next, with the
    key of the first attempt."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    spec = alerting(webhook={"url": f"http://127.0.0.1:{closed}/hook"})
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0, sleep=Sleeps())
    assert st.last_error == "webhook-0: cannot connect" and st.firing == []
    assert st.since == T0
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    (st,) = await notify(spec, [DRIFT], [st], CTX, SECRETS, T0 + timedelta(minutes=1))
    assert st.last_error is None and len(receiver.requests) == 1
    key = notifier_base.dedup_key("ml", "credit", "webhook-0", T0)
    assert keys(receiver) == {key} and receiver.bodies()[0]["dedupKey"] == key


# --------------------------------------------------------------- backoff and Retry-After


async def test_backoff_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_base, "FIRST_DELAY_SECONDS", 1.0)
    sleeps, calls = Sleeps(), []

    async def failing() -> None:
        calls.append(1)
        raise notifier_base.DeliveryError("x: HTTP 502", retry=True)

    with pytest.raises(notifier_base.DeliveryError):
        await notifier_base.deliver(failing, attempts=8, sleep=sleeps)
    assert len(calls) == 8
    assert sleeps.waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


async def test_retry_after_within_the_cap_is_slept_longer_is_deferred() -> None:
    sleeps = Sleeps()
    answers: list[float | None] = [None, 12.0, None]

    async def flaky() -> None:
        if answers:
            raise notifier_base.DeliveryError("x: HTTP 429", retry=True, after=answers.pop(0))

    await notifier_base.deliver(flaky, sleep=sleeps)
    assert sleeps.waits == [notifier_base.FIRST_DELAY_SECONDS, 12.0,
                            notifier_base.FIRST_DELAY_SECONDS * 4]
    # Longer than MAX_DELAY_SECONDS: not slept through; counted from the first attempt.
    sleeps = Sleeps()
    answers = [None, 120.0]
    with pytest.raises(notifier_base.DeliveryError) as caught:
        await notifier_base.deliver(flaky, sleep=sleeps)
    assert sleeps.waits == [notifier_base.FIRST_DELAY_SECONDS]
    assert caught.value.after == notifier_base.FIRST_DELAY_SECONDS + 120.0


def test_retry_after_header_forms() -> None:
    assert notifier_base.retry_after("120") == 120.0
    assert notifier_base.retry_after("-3") == 0.0
    assert notifier_base.retry_after("Tue, 24 Nov 2026 12:05:00 GMT", T0) == 300.0
    assert notifier_base.retry_after("Tue, 24 Nov 2026 11:00:00 GMT", T0) == 0.0
    assert notifier_base.retry_after("soon") is None and notifier_base.retry_after(None) is None


async def test_long_retry_after_defers_to_a_later_check(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "120"})]
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    sleeps = Sleeps()
    (st,) = await notify(spec, [DRIFT], [], CTX, SECRETS, T0, sleep=sleeps)
    assert sleeps.waits == [] and len(receiver.requests) == 1
    assert st.next_attempt == T0 + timedelta(seconds=120) and st.failures == 1
    assert st.last_error == "webhook-0: HTTP 429 Too Many Requests"
    # A check within the two minutes leaves the receiver alone, and the state as it was.
    (later,) = await notify(spec, [DRIFT, AUC], [st], CTX, SECRETS, T0 + timedelta(seconds=60),
                            sleep=sleeps)
    assert later == st and len(receiver.requests) == 1
    # The first check after it delivers the episode, with the key of the first attempt.
    (st,) = await notify(spec, [DRIFT, AUC], [st], CTX, SECRETS,
                         T0 + timedelta(seconds=180), sleep=sleeps)
    assert st.last_error is None and st.next_attempt is None and len(receiver.requests) == 2
    assert len(keys(receiver)) == 1
    assert [f["name"] for f in receiver.bodies()[-1]["firing"]] == ["drift.dataset",
                                                                   "performance.rocAuc"]


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


async def test_slack_without_a_link_says_where_to_look(receiver: Receiver) -> None:
    secrets = Secrets({("slack", "url"): receiver.url + "/services/T000/B000/XXXX"})
    spec = AlertingSpec.model_validate({"notifiers": [
        {"slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}}]})
    await notify(spec, [AUC], [], CTX, secrets, T0)
    detail = receiver.bodies()[0]["blocks"][1]["text"]["text"]
    assert detail.splitlines()[-1] == "Details: `kubectl describe modelmonitor -n ml credit`"


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
    assert st.last_error == ("pagerduty-0: spec.alerting.notifiers[0].pagerduty."
                             "routingKeySecretRef: Secret ml/pd has no key 'nope'")
    assert receiver.requests == []


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


async def test_alertmanager_push_names_the_prediction_column(receiver: Receiver) -> None:
    """The rule's prediction-drift alert keeps the series' feature label: so does the push."""
    ctx = Context("ml", "credit", "credit-risk", None, "Drifting", 600.0,
                  {"prediction": "score", "target": "defaulted"})
    drifted = Finding(name="drift.prediction", severity="warning", value=0.01, bound=0.05,
                      message="prediction column 'score' drifted")
    await notify(alerting(alertmanager={"url": receiver.url}), [drifted], [], ctx, SECRETS, T0)
    (alert,) = receiver.bodies()[0]
    assert alert["labels"]["alertname"] == "ModelPredictionDrift"
    assert alert["labels"]["feature"] == "score"


def test_webhook_body_is_stable_json() -> None:
    msg = notifier_base.Message("ml", "credit", "m", None, "Healthy", T0, [], [], "k")
    assert webhook_body(msg)["status"] == "resolved"


# ---------------------------------------------------------------------------------- SMTP


@dataclass
class Mailbox:
    """Answers DATA from a script of replies (then 250), optionally late; keeps what it
    accepted."""

    replies: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    messages: list[Envelope] = field(default_factory=list)
    offered: int = 0

    async def handle_DATA(self, server: Any, session: Session,  # noqa: N802 - aiosmtpd's name
                          envelope: Envelope) -> str:
        self.offered += 1
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            self.messages.append(envelope)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return reply

    def dedup_keys(self) -> list[str]:
        out = []
        for envelope in self.messages:
            raw = envelope.content if isinstance(envelope.content, bytes) else \
                str(envelope.content).encode()
            mail = email.message_from_bytes(raw, policy=email.policy.default)
            out.append(str(mail["X-Modelmon-Dedup-Key"]))
        return out


def _authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"pw-777")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made once for the module."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_on(mailbox: Mailbox, tls: ssl.SSLContext | None) -> Iterator[int]:
    """aiosmtpd on a free port: with ``tls``, STARTTLS is required before AUTH and MAIL;
    without, the server offers no STARTTLS at all."""

    class Server(Controller):
        def factory(self) -> aiosmtp.SMTP:
            return aiosmtp.SMTP(self.handler, tls_context=tls, require_starttls=tls is not None,
                                authenticator=_authenticate, auth_require_tls=tls is not None)

    port = _free_port()
    controller = Server(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(tls_files: tuple[Path, Path], mailbox: Mailbox
                ) -> Iterator[tuple[Mailbox, int]]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with smtp_on(mailbox, context) as port:
        yield mailbox, port


@pytest.fixture
def smtp_secrets(tls_files: tuple[Path, Path]) -> Secrets:
    return Secrets({("smtp", "user"): "bot", ("smtp", "password"): "pw-777",
                    ("smtp", "ca"): tls_files[0].read_text()})


def email_spec(port: int, *, ca: bool = True, start_tls: bool = True) -> AlertingSpec:
    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": port, "startTls": start_tls,
                            "usernameSecretRef": {"name": "smtp", "key": "user"},
                            "passwordSecretRef": {"name": "smtp", "key": "password"}}
    if ca:
        smtp["caSecretRef"] = {"name": "smtp", "key": "ca"}
    return alerting(email={"smtp": smtp, "from": "modelmon@example.org",
                           "to": ["ml-team@example.org"]})


async def test_email_over_starttls_with_login(smtp_server: tuple[Mailbox, int],
                                              smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    spec = email_spec(port)
    (st,) = await notify(spec, [AUC], [], CTX, smtp_secrets, T0)
    assert st.last_error is None, st
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == ["ml-team@example.org"]
    raw = envelope.content if isinstance(envelope.content, bytes) else \
        str(envelope.content).encode()
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(mail["Subject"]).strip().startswith("[CRITICAL] ml/credit (credit-risk 2.3.1)")
    assert str(mail["X-Modelmon-Dedup-Key"]).startswith("modelmon-")
    assert "rocAuc 0.6 is below 0.8" in mail.get_body().get_content()  # type: ignore[union-attr]

    # Refused credentials are permanent: one attempt, no retries, the password nowhere.
    wrong = Secrets({**smtp_secrets.values, ("smtp", "password"): "wrong-pw-4q"})
    sleeps = Sleeps()
    (st,) = await notify(spec, [AUC, DRIFT], [st], CTX, wrong, T0 + timedelta(minutes=1),
                         sleep=sleeps)
    assert st.last_error == "email-0: SMTP authentication failed (535)"
    assert sleeps.waits == [] and len(mailbox.messages) == 1
    assert "wrong-pw-4q" not in st.model_dump_json()


async def test_smtp_4xx_is_retried_and_delivered_once(smtp_server: tuple[Mailbox, int],
                                                      smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    mailbox.replies = ["451 4.3.0 Try again later"]
    sleeps = Sleeps()
    (st,) = await notify(email_spec(port), [AUC], [], CTX, smtp_secrets, T0, sleep=sleeps)
    assert st.last_error is None and st.failures == 0
    assert mailbox.offered == 2 and len(mailbox.messages) == 1
    assert sleeps.waits == [notifier_base.FIRST_DELAY_SECONDS]


async def test_smtp_5xx_is_not_retried_and_the_next_check_delivers(
        smtp_server: tuple[Mailbox, int], smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    mailbox.replies = ["554 5.7.1 Message rejected"]
    sleeps = Sleeps()
    spec = email_spec(port)
    (st,) = await notify(spec, [AUC], [], CTX, smtp_secrets, T0, sleep=sleeps)
    assert st.last_error == "email-0: SMTP 554" and st.firing == []
    assert sleeps.waits == [] and mailbox.offered == 1 and mailbox.messages == []
    (st,) = await notify(spec, [AUC], [st], CTX, smtp_secrets, T0 + timedelta(minutes=10),
                         sleep=sleeps)
    assert st.last_error is None and [d.name for d in st.firing] == ["performance.rocAuc"]
    assert mailbox.dedup_keys() == [notifier_base.dedup_key("ml", "credit", "email-0", T0)]


async def test_smtp_timeout_is_retried_at_least_once_with_one_key(
        smtp_server: tuple[Mailbox, int], smtp_secrets: Secrets) -> None:
    """The server keeps the message but answers after the client gave up: the retry
    sends it again (at-least-once), with the same dedup key."""
    mailbox, port = smtp_server
    mailbox.delays = [1.0]  # longer than the (patched) 0.5 s timeout
    sleeps = Sleeps()
    (st,) = await notify(email_spec(port), [AUC], [], CTX, smtp_secrets, T0, sleep=sleeps)
    assert st.last_error is None and len(sleeps.waits) == 1
    assert len(mailbox.messages) == 2 and len(set(mailbox.dedup_keys())) == 1


async def test_smtp_silent_server_times_out_then_next_check_delivers(
        smtp_server: tuple[Mailbox, int], smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    with socket.socket() as silent:  # accepts connections (backlog), never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sleeps = Sleeps()
        (st,) = await notify(email_spec(silent.getsockname()[1]), [AUC], [], CTX,
                             smtp_secrets, T0, sleep=sleeps)
    assert st.last_error == "email-0: timed out after 0.5s" and st.since == T0
    assert len(sleeps.waits) == notifier_base.ATTEMPTS - 1
    (st,) = await notify(email_spec(port), [AUC], [st], CTX, smtp_secrets,
                         T0 + timedelta(minutes=10))
    assert st.last_error is None
    assert mailbox.dedup_keys() == [notifier_base.dedup_key("ml", "credit", "email-0", T0)]


async def test_smtp_connection_refused_is_retried(smtp_server: tuple[Mailbox, int],
                                                  smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    sleeps = Sleeps()
    (st,) = await notify(email_spec(_free_port()), [AUC], [], CTX, smtp_secrets, T0,
                         sleep=sleeps)
    assert st.last_error == "email-0: cannot connect"
    assert len(sleeps.waits) == notifier_base.ATTEMPTS - 1
    (st,) = await notify(email_spec(port), [AUC], [st], CTX, smtp_secrets,
                         T0 + timedelta(minutes=10))
    assert st.last_error is None and len(mailbox.messages) == 1


async def test_smtp_certificate_that_does_not_verify_is_permanent(
        smtp_server: tuple[Mailbox, int], smtp_secrets: Secrets) -> None:
    mailbox, port = smtp_server
    sleeps = Sleeps()
    (st,) = await notify(email_spec(port, ca=False), [AUC], [], CTX, smtp_secrets, T0,
                         sleep=sleeps)
    assert (st.last_error or "").startswith(
        "email-0: the SMTP server's TLS certificate does not verify")
    assert sleeps.waits == [] and mailbox.offered == 0


async def test_smtp_server_without_starttls_is_permanent(mailbox: Mailbox,
                                                         smtp_secrets: Secrets) -> None:
    with smtp_on(mailbox, None) as port:
        sleeps = Sleeps()
        (st,) = await notify(email_spec(port), [AUC], [], CTX, smtp_secrets, T0,
                             sleep=sleeps)
    assert st.last_error == "email-0: the SMTP server does not offer STARTTLS"
    assert sleeps.waits == [] and mailbox.offered == 0


def test_smtp_refused_recipients_retry_only_when_some_refusal_is_temporary() -> None:
    temporary = smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"busy"),
                                               "b@example.org": (550, b"unknown")})
    permanent = smtplib.SMTPRecipientsRefused({"b@example.org": (550, b"unknown")})
    assert smtp_failure("email-0", temporary).retry
    failure = smtp_failure("email-0", permanent)
    assert not failure.retry and str(failure) == "email-0: SMTP recipients refused (550)"


async def test_smtp_server_that_trickles_its_replies_is_cut_at_the_session_bound() -> None:
    """Each byte comes within the socket timeout, so no single read times out: the session
    bound (SMTP_SESSION_TIMEOUTS request timeouts) ends it, and frees the SMTP thread."""
    stop = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def trickle() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"220")
                for _ in range(200):  # 20 s at most, never a full line
                    if stop.wait(0.1):
                        break
                    conn.sendall(b" ")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        spec = alerting(email={"smtp": {"host": "127.0.0.1", "port": server.getsockname()[1],
                                        "startTls": False},
                               "from": "modelmon@example.org", "to": ["ml@example.org"]})
        message = notifier_base.Message("ml", "credit", "m", None, "Drifting", T0, [AUC], [],
                                        "k")
        async with aiohttp.ClientSession() as session:
            sender = SENDERS["email"](spec.notifiers[0], "email-0", Secrets({}), session)
            with pytest.raises(notifier_base.DeliveryError) as caught:
                await sender.send(message)
        stop.set()
        thread.join(5)
    assert str(caught.value) == "email-0: the SMTP session took longer than 1.5s"
    assert caught.value.retry
