"""Direct notifiers with Alertmanager-like semantics.

Part of ``outputs`` (last stop on the data line). After each check, ``notify`` compares each
notifier's delivery state (kept in ``status.notifications``) with the findings now active:
it sends one message per notifier when a finding starts, when ``repeatInterval`` has passed
while findings last, or when findings clear (a resolve). A failed delivery leaves the
delivered findings as they were, so the next check tries again: nothing is lost, and a
restart that finds the state in the status repeats nothing (a message sent just before a
crash may be sent again, with the same dedup key). An episode's start, which its dedup key
derives from, is recorded with its first attempt; a Retry-After longer than a check's
retries is recorded as the earliest next attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import (
    AlertingSpec,
    Delivered,
    Finding,
    ModelMonitorSpec,
    Notifier,
    NotifierState,
    notifier_name,
    parse_duration,
)
from modelmon.evaluation import at_least
from modelmon.outputs.notifiers.base import (
    DeliveryError,
    FieldSecrets,
    Message,
    SecretSource,
    Sleep,
    dedup_key,
    deliver,
)
from modelmon.outputs.notifiers.senders import SENDERS
from modelmon.sources import SourceError, egress

log = logging.getLogger(__name__)

__all__ = ["Context", "Decision", "decide", "drift_columns", "notify"]


@dataclass(frozen=True)
class Context:
    """The monitor a notification is about."""

    namespace: str
    monitor: str
    model: str
    model_version: str | None
    phase: str
    interval_seconds: float
    drift_columns: Mapping[str, str] = field(default_factory=dict)
    """spec.columns.prediction and .target, by role."""
    policy: Policy = field(default_factory=Policy.local)
    """The administrator's bounds (egress, opt-in labels) on this monitor's notifiers."""


def drift_columns(spec: ModelMonitorSpec) -> dict[str, str]:
    """The column drift is measured on for each role, as the check picks it."""
    cols = spec.columns
    return {role: column for role, column in (
        ("prediction", cols.prediction or cols.prediction_probability),
        ("target", cols.target)) if column}


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


def _failed(base: NotifierState, kind: str, since: datetime, now: datetime, error: str,
            after: float | None = None) -> NotifierState:
    """Nothing delivered: the episode keeps its start (and key); ``after`` defers the next
    attempt."""
    return base.model_copy(update={
        "kind": kind, "since": since, "last_attempt": now, "last_error": error,
        "failures": base.failures + 1,
        "next_attempt": now + timedelta(seconds=after) if after is not None else None})


def _delivered(base: NotifierState, kind: str, decision: Decision, since: datetime,
               now: datetime) -> NotifierState:
    """The message got through: its findings are now the ones delivered as firing; a
    resolve ends the episode."""
    firing = [Delivered(name=f.name, severity=f.severity) for f in decision.active]
    return base.model_copy(update={
        "kind": kind, "firing": firing, "since": since if firing else None, "last_sent": now,
        "last_attempt": now, "last_error": None, "failures": 0, "next_attempt": None})


async def _one(notifier: Notifier, index: int, state: NotifierState | None,
               findings: Sequence[Finding], alerting: AlertingSpec, ctx: Context,
               secrets: SecretSource, session: aiohttp.ClientSession,
               now: datetime, sleep: Sleep) -> NotifierState:
    name = notifier_name(notifier, index)
    base = state or NotifierState(name=name, kind=notifier.kind)
    if base.next_attempt is not None and now < base.next_attempt:
        return base  # the receiver asked us to wait (Retry-After)
    sender = SENDERS[notifier.kind](notifier, name, FieldSecrets(secrets, notifier, index),
                                    session, f"spec.alerting.notifiers[{index}].{notifier.kind}",
                                    ctx.policy.egress)
    active = [f for f in findings if at_least(f.severity, notifier.min_severity)]
    decision = decide(state, active, now, parse_duration(alerting.repeat_interval),
                      sender.every_check)
    if not decision.send:
        if not decision.active and not base.firing and base.since is not None:
            # The episode ended before any message of it got through: nothing to resolve.
            return base.model_copy(update={"since": None})
        return base
    # The episode starts with its first attempt, delivered or not: every message of it,
    # retried in this check or a later one, carries the same key.
    since = base.since or now
    message = Message(
        namespace=ctx.namespace, monitor=ctx.monitor, model=ctx.model,
        model_version=ctx.model_version, phase=ctx.phase, time=now,
        firing=decision.active, resolved=decision.resolved,
        dedup_key=dedup_key(ctx.namespace, ctx.monitor, name, since),
        labels=dict(alerting.labels),
        link=alerting.dashboard_url or alerting.prometheus_rule.runbook_url,
        interval_seconds=ctx.interval_seconds, drift_columns=dict(ctx.drift_columns))
    try:
        await deliver(lambda: sender.send(message), sleep=sleep)
    except DeliveryError as exc:
        log.warning("notification of %s/%s not delivered: %s", ctx.namespace, ctx.monitor,
                    exc)
        return _failed(base, notifier.kind, since, now, str(exc),
                       exc.after if exc.retry else None)
    except SourceError as exc:  # a Secret that is missing or lacks the key
        log.warning("notification of %s/%s failed: %s", ctx.namespace, ctx.monitor, exc)
        return _failed(base, notifier.kind, since, now, f"{name}: {exc}")
    except Exception as exc:  # a bug must not stop the check; its text may hold a secret
        log.warning("notification of %s/%s failed: %s: %s", ctx.namespace, ctx.monitor, name,
                    type(exc).__name__)
        return _failed(base, notifier.kind, since, now, f"{name}: {type(exc).__name__}")
    return _delivered(base, notifier.kind, decision, since, now)


async def notify(alerting: AlertingSpec, findings: Sequence[Finding],
                 states: Sequence[NotifierState], ctx: Context, secrets: SecretSource,
                 now: datetime, session: aiohttp.ClientSession | None = None,
                 sleep: Sleep = asyncio.sleep) -> list[NotifierState]:
    """Deliver what each notifier needs; the new delivery states (one per notifier).
    ``sleep`` waits between retries (tests pass one that does not)."""
    if not alerting.notifiers:
        return []
    by_name = {s.name: s for s in states}
    own = session is None
    client = session or egress.client_session(ctx.policy.egress, "spec.alerting.notifiers")
    try:
        return list(await asyncio.gather(*(
            _one(n, i, by_name.get(notifier_name(n, i)), findings, alerting, ctx, secrets,
                 client, now, sleep)
            for i, n in enumerate(alerting.notifiers))))
    finally:
        if own:
            await client.close()
