"""Direct notifiers with Alertmanager-like semantics.

Part of ``outputs`` (last stop on the data line). After each check, ``notify`` compares each
notifier's delivery state (kept in ``status.notifications``) with the findings now active:
it sends one message per notifier when a finding starts, when ``repeatInterval`` has passed
while findings last, or when findings clear (a resolve). A failed delivery leaves the state
as it was, so the next check tries again: nothing is lost, and a restart that finds the
state in the status repeats nothing (a message sent just before a crash may be sent again,
with the same dedup key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from modelmon.api.v1alpha1 import (
    AlertingSpec,
    Delivered,
    Finding,
    Notifier,
    NotifierState,
    notifier_name,
    parse_duration,
)
from modelmon.evaluation import at_least
from modelmon.outputs.notifiers.base import (
    DeliveryError,
    Message,
    SecretSource,
    dedup_key,
    deliver,
)
from modelmon.outputs.notifiers.senders import SENDERS
from modelmon.sources import SourceError

log = logging.getLogger(__name__)

__all__ = ["Context", "Decision", "decide", "notify"]


@dataclass(frozen=True)
class Context:
    """The monitor a notification is about."""

    namespace: str
    monitor: str
    model: str
    model_version: str | None
    phase: str
    interval_seconds: float


@dataclass(frozen=True)
class Decision:
    """What one notifier should do after a check."""

    send: bool
    active: list[Finding]
    resolved: list[Delivered]


def decide(state: NotifierState | None, active: Sequence[Finding], now: datetime,
           repeat: timedelta, every_check: bool = False) -> Decision:
    """Send when a finding starts or clears, or when the repeat interval has passed."""
    before = {d.name: d for d in (state.firing if state else [])}
    names = {f.name for f in active}
    started = names - set(before)
    resolved = [d for n, d in sorted(before.items()) if n not in names]
    due = state is None or state.last_sent is None or now - state.last_sent >= repeat
    send = bool(started or resolved or (active and (due or every_check)))
    return Decision(send, sorted(active, key=lambda f: f.name), resolved)


def _after(state: NotifierState | None, name: str, kind: str, decision: Decision,
           now: datetime, error: str | None) -> NotifierState:
    base = state or NotifierState(name=name, kind=kind)
    if error is not None:
        return base.model_copy(update={"last_attempt": now, "last_error": error,
                                       "failures": base.failures + 1, "kind": kind})
    firing = [Delivered(name=f.name, severity=f.severity) for f in decision.active]
    since = base.since if (base.firing and firing) else (now if firing else None)
    return base.model_copy(update={
        "kind": kind, "firing": firing, "since": since, "last_sent": now,
        "last_attempt": now, "last_error": None, "failures": 0})


async def _one(notifier: Notifier, index: int, state: NotifierState | None,
               findings: Sequence[Finding], alerting: AlertingSpec, ctx: Context,
               secrets: SecretSource, session: aiohttp.ClientSession,
               now: datetime) -> NotifierState:
    name = notifier_name(notifier, index)
    sender = SENDERS[notifier.kind](notifier, name, secrets, session)
    active = [f for f in findings if at_least(f.severity, notifier.min_severity)]
    decision = decide(state, active, now, parse_duration(alerting.repeat_interval),
                      sender.every_check)
    if not decision.send:
        return state or NotifierState(name=name, kind=notifier.kind)
    since = state.since if state is not None and state.since and state.firing else now
    message = Message(
        namespace=ctx.namespace, monitor=ctx.monitor, model=ctx.model,
        model_version=ctx.model_version, phase=ctx.phase, time=now,
        firing=decision.active, resolved=decision.resolved,
        dedup_key=dedup_key(ctx.namespace, ctx.monitor, name, since),
        labels=dict(alerting.labels),
        link=alerting.dashboard_url or alerting.prometheus_rule.runbook_url,
        interval_seconds=ctx.interval_seconds)
    try:
        await deliver(lambda: sender.send(message))
    except DeliveryError as exc:
        log.warning("notification of %s/%s not delivered: %s", ctx.namespace, ctx.monitor,
                    exc)
        return _after(state, name, notifier.kind, decision, now, str(exc))
    except SourceError as exc:  # a Secret that is missing or lacks the key
        log.warning("notification of %s/%s failed: %s", ctx.namespace, ctx.monitor, exc)
        return _after(state, name, notifier.kind, decision, now, f"{name}: {exc}")
    except Exception as exc:  # a bug must not stop the check; its text may hold a secret
        log.warning("notification of %s/%s failed: %s: %s", ctx.namespace, ctx.monitor, name,
                    type(exc).__name__)
        return _after(state, name, notifier.kind, decision, now,
                      f"{name}: {type(exc).__name__}")
    return _after(state, name, notifier.kind, decision, now, None)


async def notify(alerting: AlertingSpec, findings: Sequence[Finding],
                 states: Sequence[NotifierState], ctx: Context, secrets: SecretSource,
                 now: datetime, session: aiohttp.ClientSession | None = None
                 ) -> list[NotifierState]:
    """Deliver what each notifier needs; the new delivery states (one per notifier)."""
    if not alerting.notifiers:
        return []
    by_name = {s.name: s for s in states}
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        return list(await asyncio.gather(*(
            _one(n, i, by_name.get(notifier_name(n, i)), findings, alerting, ctx, secrets,
                 client, now)
            for i, n in enumerate(alerting.notifiers))))
    finally:
        if own:
            await client.close()
