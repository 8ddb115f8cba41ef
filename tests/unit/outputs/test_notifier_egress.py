"""Notifiers under the egress policy: a refused receiver gets no byte, the failure names
the field and is not retried; an allowed one is reached through the checked address.

Receivers run on 127.0.0.1; nothing connects anywhere else (the ``loopback_guard`` fixture
fails any attempt to).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from modelmon.api.policy import Egress, Policy
from modelmon.api.v1alpha1 import AlertingSpec, Finding
from modelmon.outputs.notifiers import Context, notify
from modelmon.outputs.notifiers import base as notifier_base
from modelmon.sources import egress
from netguard import Listener

pytestmark = pytest.mark.usefixtures("loopback_guard")

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DRIFT = Finding(name="drift.dataset", severity="warning", value=0.6, bound=0.5,
                message="6 of 10 features drifted")


def ctx(p: Policy) -> Context:
    return Context("ml", "credit", "credit-risk", "2.3.1", "Drifting", 600.0, policy=p)


def policy(*allow: str, deny: tuple[str, ...] = ()) -> Policy:
    return replace(Policy.operator(), egress=Egress(allow=allow, deny=deny))


class Secrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values

    def secret(self, name: str, key: str) -> str:
        return self.values[(name, key)]


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_base, "REQUEST_TIMEOUT_SECONDS", 2.0)


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, str]) -> None:
    real = socket.getaddrinfo

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     (table[host], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress, "getaddrinfo", resolve)


class Receiver:
    """An HTTP receiver on 127.0.0.1 that counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.url = ""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        rec.requests.append((request.path, request.headers.get("Host", "")))
        return web.Response(text="ok")

    def count() -> Any:
        rec.connections += 1
        return protocol()

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    loop = asyncio.get_running_loop()
    protocol: Any = runner.server
    assert protocol is not None
    server = await loop.create_server(count, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield rec
    server.close()
    await runner.cleanup()


def alerting(**notifier: Any) -> AlertingSpec:
    return AlertingSpec.model_validate({"notifiers": [notifier], "repeatInterval": "1h"})


async def test_webhook_refused_names_the_field_and_is_not_retried(receiver: Receiver) -> None:
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    sleeps = Sleeps()
    (st,) = await notify(spec, [DRIFT], [], ctx(Policy.operator()), Secrets({}), T0,
                         sleep=sleeps)
    assert st.last_error == (
        "webhook-0: spec.alerting.notifiers[0].webhook.url: the operator may not connect to "
        "127.0.0.1 (loopback addresses are refused by default; an administrator can allow "
        "the network with --egress-allow)")
    assert st.failures == 1 and st.firing == [] and sleeps.waits == []  # not retried
    (st,) = await notify(spec, [DRIFT], [], ctx(policy("127.0.0.0/8", deny=("127.0.0.1",))),
                         Secrets({}), T0, sleep=sleeps)
    assert "denies 127.0.0.1/32 with --egress-deny" in (st.last_error or "")
    assert receiver.connections == 0 and receiver.requests == []
    # Allowed, it is delivered.
    (st,) = await notify(spec, [DRIFT], [], ctx(policy("127.0.0.1/32")), Secrets({}), T0,
                         sleep=sleeps)
    assert st.last_error is None and receiver.requests == [("/hook", receiver.url[7:])]


@pytest.mark.parametrize(("notifier", "field"), [
    ({"slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}},
     "spec.alerting.notifiers[0].slack.webhookSecretRef"),
    ({"pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"}, "url": "URL"}},
     "spec.alerting.notifiers[0].pagerduty.url"),
    ({"alertmanager": {"url": "URL"}}, "spec.alerting.notifiers[0].alertmanager.url"),
])
async def test_every_http_notifier_names_its_field(receiver: Receiver, notifier: dict[str, Any],
                                                   field: str) -> None:
    kind = next(iter(notifier))
    spec = alerting(**{kind: {k: (receiver.url if v == "URL" else v)
                              for k, v in notifier[kind].items()}})
    secrets = Secrets({("slack", "url"): receiver.url + "/services/T0/B0/secret-part",
                       ("pd", "key"): "routing-key"})
    (st,) = await notify(spec, [DRIFT], [], ctx(Policy.operator()), secrets, T0,
                         sleep=Sleeps())
    assert (st.last_error or "").startswith(f"{kind}-0: {field}: the operator may not connect "
                                            "to 127.0.0.1 (loopback")
    assert "secret-part" not in (st.last_error or "")
    assert receiver.connections == 0


async def test_a_plain_session_is_checked_too(receiver: Receiver) -> None:
    """A caller's own session (not one that applies the policy) is checked before use."""
    spec = alerting(webhook={"url": receiver.url + "/hook"})
    async with aiohttp.ClientSession() as session:
        (st,) = await notify(spec, [DRIFT], [], ctx(Policy.operator()), Secrets({}), T0,
                             session, sleep=Sleeps())
    assert "webhook.url: the operator may not connect to 127.0.0.1" in (st.last_error or "")
    assert receiver.connections == 0


async def test_a_name_is_delivered_to_its_checked_address(receiver: Receiver,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """``hooks.test`` resolves only through the policy's resolver: delivery proves the
    session connected to the checked address."""
    fake_dns(monkeypatch, {"hooks.test": "127.0.0.1"})
    port = receiver.url.rsplit(":", 1)[1]
    spec = alerting(webhook={"url": f"http://hooks.test:{port}/hook"})
    async with egress.client_session(Egress(allow=("127.0.0.1/32",)), "notifiers") as session:
        (st,) = await notify(spec, [DRIFT], [], ctx(policy("127.0.0.1/32")), Secrets({}), T0,
                             session, sleep=Sleeps())
    assert st.last_error is None and receiver.requests == [("/hook", f"hooks.test:{port}")]


@pytest.mark.parametrize("url", ["http://169.254.169.254/hook", "http://[fd00:ec2::254]/",
                                 "http://metadata.test/hook"])
async def test_metadata_receivers_refused_without_traffic(url: str, loopback_guard: list[Any],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    fake_dns(monkeypatch, {"metadata.test": "169.254.169.254"})
    (st,) = await notify(alerting(webhook={"url": url}), [DRIFT], [], ctx(Policy.operator()),
                         Secrets({}), T0, sleep=Sleeps())
    assert "webhook.url: the operator may not connect to " in (st.last_error or "")
    assert "cloud metadata" in (st.last_error or "")
    assert loopback_guard == []


# ---------------------------------------------------------------------------------- SMTP


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session,  # noqa: N802 - aiosmtpd's
                          envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def email(host: str, port: int) -> AlertingSpec:
    return alerting(email={"smtp": {"host": host, "port": port, "startTls": False},
                           "from": "modelmon@example.org", "to": ["ml@example.org"]})


async def test_smtp_refused_before_connecting_and_pinned_when_allowed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listener = Listener()
    try:
        (st,) = await notify(email("127.0.0.1", listener.port), [DRIFT], [],
                             ctx(Policy.operator()), Secrets({}), T0, sleep=Sleeps())
    finally:
        listener.close()
    assert st.last_error == (
        "email-0: spec.alerting.notifiers[0].email.smtp.host: the operator may not connect "
        "to 127.0.0.1 (loopback addresses are refused by default; an administrator can "
        "allow the network with --egress-allow)")
    assert listener.accepted == 0
    # Allowed, and under a name only the policy's resolver knows: delivered to the
    # checked address.
    fake_dns(monkeypatch, {"mail.test": "127.0.0.1"})
    mailbox = Mailbox()
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = int(probe.getsockname()[1])
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        (st,) = await notify(email("mail.test", port), [DRIFT], [],
                             ctx(policy("127.0.0.1/32")), Secrets({}), T0, sleep=Sleeps())
        assert st.last_error is None, st.last_error
        assert [m.rcpt_tos for m in mailbox.messages] == [["ml@example.org"]]
        (st,) = await notify(email("mail.test", port), [DRIFT], [],
                             ctx(policy("127.0.0.0/8", deny=("mail.test",))), Secrets({}), T0,
                             sleep=Sleeps())
        assert "email.smtp.host: the operator may not connect to mail.test (the " \
               "administrator denies mail.test with --egress-deny)" in (st.last_error or "")
        assert len(mailbox.messages) == 1
    finally:
        controller.stop()
