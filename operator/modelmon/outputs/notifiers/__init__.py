"""Direct notifiers with Alertmanager-like semantics.

Part of ``outputs`` (last stop on the data line). After each check, ``plan`` compares each
notifier's delivery state (kept in ``status.notifications``) with the findings now active:
a message is due when a finding starts, when ``repeatInterval`` has passed while findings
last, or when findings clear (a resolve). What a message says is always the difference
between what the receiver was last told (``NotifierState.firing``) and the findings of the
latest check (``compose``), so a failed delivery leaves the delivered findings as they were
and the next attempt sends what is still owed: nothing is lost, and a restart that finds the
state in the status repeats nothing (a message delivered after the last status write may be
sent again, with the same dedup key). An episode's start, which its dedup key derives from,
is recorded when its first message is planned.

The operator delivers through ``outbox.Outbox`` (a queue per notifier, off the check's
path); ``notify`` is the same steps awaited in place, retries and all, for callers that
want the outcome before going on (the senders' tests).
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

__all__ = ["Context", "Decision", "Job", "NotifierPlan", "attempt", "compose", "decide",
           "delivered", "drift_columns", "failed", "notify", "plan"]


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
    report_url: str | None = None
    """The monitor's live report (``modelmon run --report-base-url``), when configured."""


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


def failed(base: NotifierState, kind: str, since: datetime | None, when: datetime,
           error: str, after: float | None = None) -> NotifierState:
    """Nothing delivered: the episode keeps its start ``since`` (and key); ``after`` defers
    the next attempt."""
    return base.model_copy(update={
        "kind": kind, "since": since, "last_attempt": when, "last_error": error,
        "failures": base.failures + 1,
        "next_attempt": when + timedelta(seconds=after) if after is not None else None})


def delivered(base: NotifierState, kind: str, decision: Decision, since: datetime,
              sent: datetime, when: datetime) -> NotifierState:
    """The message got through: its findings are now the ones delivered as firing; a
    resolve ends the episode. ``sent``: the time of the check the message told of."""
    firing = [Delivered(name=f.name, severity=f.severity) for f in decision.active]
    return base.model_copy(update={
        "kind": kind, "firing": firing, "since": since if firing else None, "last_sent": sent,
        "last_attempt": when, "last_error": None, "failures": 0, "next_attempt": None})


@dataclass(frozen=True)
class Job:
    """What one notifier should tell its receiver after a check: the findings active then
    (at or above its minimum severity). The message itself is composed at each attempt
    against what the receiver was told by then (``compose``)."""

    notifier: Notifier
    name: str
    active: list[Finding]
    time: datetime
    """The check's time."""
    repeat: timedelta
    alerting: AlertingSpec
    ctx: Context
    secrets: SecretSource
    where: str = "notifier"
    """The notifier's spec field, e.g. ``spec.alerting.notifiers[0].webhook``."""

    @property
    def every_check(self) -> bool:
        return SENDERS[self.notifier.kind].every_check


@dataclass(frozen=True)
class NotifierPlan:
    """A notifier's state after a check decided, and the job to queue (None: the receiver
    already knows all it should)."""

    state: NotifierState
    job: Job | None


def plan(notifier: Notifier, index: int, state: NotifierState | None,
         findings: Sequence[Finding], alerting: AlertingSpec, ctx: Context,
         secrets: SecretSource, now: datetime) -> NotifierPlan:
    """Decide whether this notifier owes its receiver a message after a check at ``now``."""
    name = notifier_name(notifier, index)
    base = state or NotifierState(name=name, kind=notifier.kind)
    active = [f for f in findings if at_least(f.severity, notifier.min_severity)]
    repeat = parse_duration(alerting.repeat_interval)
    decision = decide(base, active, now, repeat, SENDERS[notifier.kind].every_check)
    if not decision.send:
        if not decision.active and not base.firing and base.since is not None:
            # The episode ended before any message of it got through: nothing to resolve.
            return NotifierPlan(base.model_copy(update={"since": None}), None)
        return NotifierPlan(base, None)
    # The episode starts when its first message is planned, delivered or not: every
    # message of it, retried now or later, carries the same key.
    return NotifierPlan(base.model_copy(update={"since": base.since or now}),
                        Job(notifier, name, decision.active, now, repeat, alerting, ctx,
                            FieldSecrets(secrets, notifier, index),
                            f"spec.alerting.notifiers[{index}].{notifier.kind}"))


def compose(job: Job, state: NotifierState) -> tuple[Message, Decision, datetime] | None:
    """The message that brings the receiver from what it was told (``state``) to the job's
    findings, with the decision behind it and the episode's start; None when it has
    nothing to learn (an earlier message already told it)."""
    decision = decide(state, job.active, job.time, job.repeat, job.every_check)
    if not decision.send:
        return None
    ctx, alerting = job.ctx, job.alerting
    since = state.since or job.time
    message = Message(
        namespace=ctx.namespace, monitor=ctx.monitor, model=ctx.model,
        model_version=ctx.model_version, phase=ctx.phase, time=job.time,
        firing=decision.active, resolved=decision.resolved,
        dedup_key=dedup_key(ctx.namespace, ctx.monitor, job.name, since),
        labels=dict(alerting.labels),
        link=alerting.dashboard_url or alerting.prometheus_rule.runbook_url,
        interval_seconds=ctx.interval_seconds, drift_columns=dict(ctx.drift_columns),
        report_url=ctx.report_url)
    return message, decision, since


async def attempt(job: Job, message: Message, session: aiohttp.ClientSession) -> None:
    """One delivery attempt; every failure is a ``DeliveryError`` whose text holds no
    secret (a missing Secret or a bug is permanent: retrying would not help)."""
    sender = SENDERS[job.notifier.kind](job.notifier, job.name, job.secrets, session,
                                        job.where, job.ctx.policy.egress)
    try:
        await sender.send(message)
    except DeliveryError:
        raise
    except SourceError as exc:  # a Secret that is missing or lacks the key
        raise DeliveryError(f"{job.name}: {exc}", retry=False) from None
    except Exception as exc:  # a bug must not stop delivery; its text may hold a secret
        log.warning("notifier %s of %s/%s failed: %s", job.name, job.ctx.namespace,
                    job.ctx.monitor, type(exc).__name__)
        raise DeliveryError(f"{job.name}: {type(exc).__name__}", retry=False) from None


async def _one(notifier: Notifier, index: int, state: NotifierState | None,
               findings: Sequence[Finding], alerting: AlertingSpec, ctx: Context,
               secrets: SecretSource, session: aiohttp.ClientSession,
               now: datetime, sleep: Sleep) -> NotifierState:
    if state is not None and state.next_attempt is not None and now < state.next_attempt:
        return state  # the receiver asked us to wait (Retry-After)
    planned = plan(notifier, index, state, findings, alerting, ctx, secrets, now)
    if planned.job is None:
        return planned.state
    composed = compose(planned.job, planned.state)
    assert composed is not None  # plan and compose decide alike on the same state
    message, decision, since = composed
    job = planned.job
    try:
        await deliver(lambda: attempt(job, message, session), sleep=sleep)
    except DeliveryError as exc:
        log.warning("notification of %s/%s not delivered: %s", ctx.namespace, ctx.monitor,
                    exc)
        return failed(planned.state, notifier.kind, since, now, str(exc),
                      exc.after if exc.retry else None)
    return delivered(planned.state, notifier.kind, decision, since, now, now)


async def notify(alerting: AlertingSpec, findings: Sequence[Finding],
                 states: Sequence[NotifierState], ctx: Context, secrets: SecretSource,
                 now: datetime, session: aiohttp.ClientSession | None = None,
                 sleep: Sleep = asyncio.sleep) -> list[NotifierState]:
    """Deliver what each notifier needs and wait for it; the new delivery states (one per
    notifier). A delivery is retried ``ATTEMPTS`` times, then left to the next call; a
    Retry-After longer than those retries is kept as the earliest next attempt. ``sleep``
    waits between retries (tests pass one that does not)."""
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
