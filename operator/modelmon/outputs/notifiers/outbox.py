"""The delivery queue: a lane per (monitor, notifier), so that delivery never holds a check.

Part of ``outputs`` (last stop on the data line). After a check, the worker hands the
outbox what it found (``submit``); for each notifier ``plan`` decides whether the receiver
is owed a message, the notifier's lane keeps that job and ``submit`` returns at once. A
task per lane delivers, one attempt at a time, each bounded by the request timeout, and
after a failure waits as ``retry_delay`` or the receiver's Retry-After says before trying
again, for as long as the message is owed. A receiver that hangs or fails holds its own
lane: never the check, the monitor's schedule, or another lane.

One slot per lane; what goes in it is the latest desired state, and each attempt composes
its message afresh as the difference between what the receiver was last told and that
state (``compose``). So a newer state of an episode supersedes an undelivered older one
and nothing owed is lost:

- findings that clear while their firing message is still undelivered leave nothing to
  tell (the episode never reached the receiver, so there is nothing to resolve);
- a resolve is owed while the receiver was told of findings that are no longer active: a
  newer state cannot drop it, only carry it (a message may fire new findings and resolve
  old ones at once, under the episode's key);
- findings that clear and come back before their resolve got through continue the
  episode the receiver knows, under its key (from its point of view it never ended);
- a new episode's findings are owed until delivered, under the key of its first plan.

The outcome of each attempt updates the lane's ``NotifierState``; the worker writes the
lanes' states in the next status patch of the monitor (one patch per check; and once more
at exit when a lane delivered since), and a new lane starts from the state in the status,
so a restart resumes where the last one wrote (after a crash, a message delivered after
the last write may be sent again, with the same dedup key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from modelmon.api.logs import fields
from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import AlertingSpec, Finding, NotifierState, notifier_name
from modelmon.outputs.notifiers import Context, Job, attempt, base, compose, delivered, failed, plan
from modelmon.outputs.notifiers.base import DeliveryError, SecretSource
from modelmon.sources import egress

log = logging.getLogger(__name__)

#: Attempts in flight at once across the operator (each holds a connection or an SMTP
#: thread for at most its timeout); further lanes wait their turn.
DELIVERY_SLOTS = 32

Key = tuple[str, str]
"""A monitor: namespace and name."""
Report = Callable[[Key, str], None]
"""Told the error when a lane's delivery starts failing (once per run of failures)."""


@dataclass(eq=False)
class Lane:
    """One notifier of one monitor: its delivery state and the one job it owes."""

    key: Key
    name: str
    state: NotifierState
    job: Job | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Outbox:
    """The lanes of every monitor the operator runs."""

    def __init__(self, *, report: Report | None = None, slots: int = DELIVERY_SLOTS,
                 clock: Callable[[], float] = time.time,
                 session: aiohttp.ClientSession | None = None,
                 policy: Egress = egress.UNRESTRICTED) -> None:
        self.report = report
        self.egress = policy
        """Where deliveries may connect: the session this outbox makes applies it."""
        self.slots = asyncio.Semaphore(slots)
        self.clock = clock
        self.lanes: dict[Key, dict[str, Lane]] = {}
        self._session = session
        self._own_session = session is None

    # ------------------------------------------------------------------ from the worker

    def submit(self, key: Key, alerting: AlertingSpec, findings: Sequence[Finding],
               stored: Sequence[NotifierState], ctx: Context, secrets: SecretSource,
               now: datetime) -> list[NotifierState]:
        """Queue what each notifier owes after a check at ``now``; its states, in spec
        order, as they stand (deliveries happen later). ``stored``: the states in the
        status, where a lane not yet running starts from."""
        before = self.lanes.get(key, {})
        by_name = {s.name: s for s in stored}
        lanes: dict[str, Lane] = {}
        for index, notifier in enumerate(alerting.notifiers):
            name = notifier_name(notifier, index)
            lane = before.get(name)
            planned = plan(notifier, index, lane.state if lane else by_name.get(name),
                           findings, alerting, ctx, secrets, now)
            if lane is None:
                lane = Lane(key, name, planned.state)
            lane.state = planned.state
            lanes[name] = lane
            if planned.job is not None:
                self._offer(lane, planned.job)
            elif lane.job is not None:
                lane.job = None  # the receiver already knows what it should
                lane.wake.set()
        for name, lane in before.items():
            if name not in lanes:  # removed from the spec
                self._stop(lane)
        if lanes:
            self.lanes[key] = lanes
        else:
            self.lanes.pop(key, None)
        return [lane.state for lane in lanes.values()]

    def states(self, key: Key) -> list[NotifierState] | None:
        """The lanes' states of a monitor now, in spec order; None when it has none."""
        lanes = self.lanes.get(key)
        return [lane.state for lane in lanes.values()] if lanes else None

    def pending(self, key: Key) -> list[str]:
        """The notifiers of a monitor that still owe a message."""
        return [name for name, lane in self.lanes.get(key, {}).items()
                if lane.job is not None]

    def retire(self, key: Key) -> None:
        """The monitor is gone: stop its lanes, drop what they owe."""
        for lane in self.lanes.pop(key, {}).values():
            self._stop(lane)

    async def close(self) -> None:
        """Stop every lane (at operator exit); what they owe is in the status."""
        tasks = [lane.task for lanes in self.lanes.values() for lane in lanes.values()
                 if lane.task is not None]
        self.lanes.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------ the lanes

    def _offer(self, lane: Lane, job: Job) -> None:
        lane.job = job  # the latest state wins the slot
        lane.wake.set()
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(
                self._run(lane), name=f"notifier {lane.key[0]}/{lane.key[1]}/{lane.name}")

    def _stop(self, lane: Lane) -> None:
        lane.job = None
        if lane.task is not None:
            lane.task.cancel()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = egress.client_session(self.egress, "spec.alerting.notifiers")
        return self._session

    async def _run(self, lane: Lane) -> None:
        try:
            await self._deliver(lane)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug stops this lane until the next check, nothing else
            log.exception("the delivery lane of notifier %s of %s/%s failed", lane.name,
                          *lane.key)
            lane.job = None

    async def _deliver(self, lane: Lane) -> None:
        """Deliver what the lane owes, on its own schedule, until it owes nothing."""
        while lane.job is not None:
            wait = 0.0
            if lane.state.next_attempt is not None:
                wait = lane.state.next_attempt.timestamp() - self.clock()
            if wait > 0:
                lane.wake.clear()
                with contextlib.suppress(TimeoutError):  # woken: withdrawn or superseded
                    await asyncio.wait_for(lane.wake.wait(), timeout=wait)
                continue
            async with self.slots:
                job = lane.job
                if job is None:
                    break
                composed = compose(job, lane.state)
                if composed is None:  # an earlier delivery already told the receiver
                    lane.job = None
                    break
                message, decision, since = composed
                try:
                    await attempt(job, message, self._session_now())
                except DeliveryError as exc:
                    self._failed(lane, job, since, exc)
                    continue
            when = datetime.fromtimestamp(self.clock(), UTC)
            monitor = "/".join(lane.key)
            retried = (f" after {lane.state.failures} failed attempt(s)"
                       if lane.state.failures else "")
            log.info("notification of %s sent by notifier %s (%s): %d firing, %d resolved%s",
                     monitor, lane.name, job.notifier.kind, len(decision.active),
                     len(decision.resolved), retried,
                     extra=fields("notification", monitor=monitor, notifier=lane.name,
                                  kind=job.notifier.kind, outcome="sent",
                                  firing=[f.name for f in decision.active],
                                  resolved=[d.name for d in decision.resolved],
                                  failed_attempts=lane.state.failures or None))
            lane.state = delivered(lane.state, job.notifier.kind, decision, since, job.time,
                                   when)
            if lane.job is job:
                lane.job = None

    def _failed(self, lane: Lane, job: Job, since: datetime, exc: DeliveryError) -> None:
        when = datetime.fromtimestamp(self.clock(), UTC)
        first = lane.state.failures == 0
        if exc.retry:
            after = (min(exc.after, base.MAX_RETRY_AFTER_SECONDS) if exc.after is not None
                     else base.retry_delay(lane.state.failures + 1))
        else:  # retrying will not help: the next check offers it again
            after = None
            if lane.job is job:
                lane.job = None
        # The receiver learnt nothing: the episode stays as the checks planned it. An
        # attempt the checks have withdrawn meanwhile starts none.
        episode = lane.state.since or (since if lane.job is not None else None)
        lane.state = failed(lane.state, job.notifier.kind, episode, when, str(exc), after)
        monitor = "/".join(lane.key)
        extra = fields("notification", monitor=monitor, notifier=lane.name,
                       kind=job.notifier.kind, outcome="failed", message=str(exc),
                       failed_attempts=lane.state.failures,
                       retry_in_seconds=after if after is not None else None)
        if first:
            log.warning("notification of %s not delivered: %s", monitor, exc, extra=extra)
            if self.report is not None:
                self.report(lane.key, str(exc))
        else:
            log.info("notification of %s not delivered: %s (%d failed attempts)",
                     monitor, exc, lane.state.failures, extra=extra)
