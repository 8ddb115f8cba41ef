"""One worker per ModelMonitor: runs the check on schedule and hands it to the publisher.

Between the kopf handlers and the data line: ``handlers`` tell the ``Fleet`` that a monitor
appeared, changed or went away; the fleet keeps one asyncio task per monitor that waits for
its next due time (or a spec change) and runs ``check.run_check`` in a thread pool. It owns
the schedule: the cadence, the first check after a restart (resumed from the stored
status), backoff after source failures, and retiring a worker whose monitor is gone. What a
check found is written by ``outputs.publisher.Publisher`` (status, PrometheusRule,
notifications, retraining, Events, metrics). Knows nothing of kopf, and reaches the cluster
only through ``outputs.cluster.ClusterApi``, so it runs the same against any API server or
an in-memory one.

With replication on (``modelmon.membership``), every replica watches every monitor but
checks only those the membership gives it: it takes one over (reading its stored status
afresh, so that the schedule and the history continue from the previous owner's last
check), and releases one (its series go, a held status is dropped, a check that finishes
after the hand-over is not published).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelmon.api.logs import fields
from modelmon.api.policy import Policy, default_reference_cache_bytes
from modelmon.api.v1alpha1 import (
    ModelMonitorSpec,
    ModelMonitorStatus,
    Schedule,
    parse_duration,
)
from modelmon.check import (
    CheckError,
    CheckResult,
    FittedReference,
    failed_status,
    parse_spec,
    run_check,
    run_check_with_shapes,
)
from modelmon.membership import Membership
from modelmon.outputs.cluster import ApiUnreachableError, ClusterApi, ObjectRef
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.publisher import (
    CheckOutcome,
    Publication,
    Publisher,
    raw_check_time,
    status_body,
)
from modelmon.outputs.report.live import LiveReports
from modelmon.sources import ReferenceCache
from modelmon.sources.sql import dispose_engines

log = logging.getLogger(__name__)

#: First retry delay after a source failure; doubles per failure, capped at the interval.
RETRY_BASE_SECONDS = 5.0
#: The spec's default interval, also for a spec that does not parse.
DEFAULT_INTERVAL_SECONDS = parse_duration(Schedule().interval).total_seconds()
#: How often each monitor's PrometheusRule is compared with the spec even when nothing
#: changed (a rule edited or deleted by hand comes back); ``modelmon run --rules-resync``.
RULES_RESYNC_SECONDS = 600.0
#: Checks that may wait on a slow source beside the ``workers`` that compute.
SOURCE_WAIT_THREADS = 16
#: Seconds between probes of the API server while it answers, and while it does not.
PROBE_SECONDS = 5.0
PROBE_SECONDS_DOWN = 2.0


def backoff(failures: int, interval: float) -> float:
    """Delay before retrying after ``failures`` consecutive source failures."""
    return float(min(interval, RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0)))


def previous_status(raw: Mapping[str, Any] | None) -> ModelMonitorStatus:
    """The status stored in the cluster, or an empty one if it does not parse."""
    if not raw:
        return ModelMonitorStatus()
    try:
        return ModelMonitorStatus.model_validate(dict(raw))
    except ValidationError:
        log.warning("ignoring a stored status that does not parse")
        return ModelMonitorStatus()


def _parsed(spec: Mapping[str, Any]) -> ModelMonitorSpec | None:
    """The spec, or None when it does not parse (its check says why)."""
    try:
        return parse_spec(dict(spec))
    except CheckError:
        return None


def model_name(spec: Mapping[str, Any]) -> str:
    """The model's name in a raw spec (a metric label), also when the spec does not parse."""
    return str((spec.get("model") or {}).get("name", ""))


@dataclass
class MonitorState:
    """What the fleet knows of one monitor: its spec and its schedule."""

    generation: int
    spec: Mapping[str, Any]
    published: Publication
    """What the publisher wrote for it, the latest status among it."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    """Source failures in a row (backoff)."""
    began: float = 0.0
    """When the latest check started computing (clock time): the next one is due an
    interval later."""
    respec: bool = False
    """The spec changed since the worker last woke: check now."""
    owned: bool = True
    """This replica checks the monitor (always, without replication)."""
    tenure: int = 0
    """How many times this replica took the monitor over: a check begun under an earlier
    tenure is not published."""
    watched: bytes | None = None
    """While another replica checks the monitor: its status as the watch last reported it,
    as compact JSON (a take-over falls back on it when it cannot read it afresh): a third
    of the parsed event's memory, for the monitors this replica does not check."""

    @property
    def ref(self) -> ObjectRef:
        return self.published.ref

    @property
    def key(self) -> tuple[str, str]:
        return self.published.key


class Fleet:
    """The workers of every monitor the operator watches."""

    def __init__(self, cluster: ClusterApi, metrics: Metrics, *, workers: int = 2,
                 base_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 rules_resync_seconds: float = RULES_RESYNC_SECONDS,
                 policy: Policy | None = None, reports: LiveReports | None = None,
                 report_base_url: str | None = None,
                 membership: Membership | None = None,
                 reference_cache_bytes: int | None = None) -> None:
        self.cluster = cluster
        self.membership = membership
        """Which monitors this replica checks (``modelmon run --replication``); None:
        every one."""
        self.membership_task: asyncio.Task[None] | None = None
        self.policy = policy or Policy.operator()
        """The administrator's bounds on what monitors may read and reach."""
        self.metrics = metrics
        self.base_dir = base_dir or Path.cwd()
        self.clock = clock
        self.publisher = Publisher(cluster, metrics, policy=self.policy, clock=clock,
                                   rules_resync_seconds=rules_resync_seconds,
                                   report_base_url=report_base_url,
                                   guarded=membership is not None)
        """Writes what each check found."""
        self.reports = reports
        """What the live report serves (``modelmon run --report-port``): each check's
        shapes are then computed too, and kept with the status. None: report off."""
        # Checks wait on sources in many threads at once; only ``workers`` of them compute
        # at a time (the statistics pool proper), so a slow source holds a thread, not a
        # core, and never delays the monitors whose data is at hand.
        self.cpu = threading.BoundedSemaphore(workers)
        self.stats_pool = ThreadPoolExecutor(max_workers=workers + SOURCE_WAIT_THREADS,
                                             thread_name_prefix="modelmon-check")
        self.monitors: dict[tuple[str, str], MonitorState] = {}
        self.api_watch: asyncio.Task[None] | None = None
        """The API server probe (``watch_api``), once started."""
        self.references: ReferenceCache[FittedReference] = ReferenceCache(
            default_reference_cache_bytes() if reference_cache_bytes is None
            else reference_cache_bytes)
        """Fitted reference profiles, reused until the reference data changes, within
        ``modelmon run --reference-cache-bytes`` (None: its default); only those of the
        monitors this replica checks."""
        self.lateness: deque[float] = deque(maxlen=10_000)
        """Seconds each scheduled check started computing after its due time (latest ones);
        also the histogram ``modelmon_schedule_lateness_seconds``."""

    # -------------------------------------------------------------- events from handlers

    def upsert(self, body: Mapping[str, Any]) -> None:
        """A monitor was created, changed or seen at start-up.

        ``body`` is the watch event's own (not copied): the fleet keeps its spec and, of a
        monitor another replica checks, its status (``MonitorState.watched``), never
        changing either (the status as compact JSON, ``_watched``). With replicas, each of
        them gets every replica's status patches as events: one that changes neither the
        object nor its generation is ``absorb``'s (the watch's decoder usually takes it in
        before kopf sees it)."""
        if self.absorb(body):
            return  # a status patch: the spec is the same
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        generation = int(meta.get("generation") or 0)
        state = self.monitors.get(key)
        if state is not None and state.ref.uid == meta.get("uid"):  # a new generation
            state.watched = None if state.owned else _watched(body)
            state.spec = body.get("spec") or {}
            monitor = f"{key[0]}/{key[1]}"
            log.info("spec of %s changed (generation %d -> %d); checking it now",
                     monitor, state.generation, generation,
                     extra=fields("spec", monitor=monitor, model=model_name(state.spec),
                                  generation=generation,
                                  previous_generation=state.generation))
            state.generation = generation
            state.respec = True
            state.wake.set()  # check now with the new spec
            return
        if state is not None:  # same name, new object: start afresh
            self.remove(*key)
        monitor = f"{key[0]}/{key[1]}"
        spec = body.get("spec") or {}
        log.info("watching %s (model %s, generation %d)", monitor, model_name(spec) or "?",
                 generation, extra=fields("watch", monitor=monitor, model=model_name(spec),
                                          generation=generation))
        ref = ObjectRef(key[0], key[1], meta.get("uid", ""))
        owned = self.membership is None or self.membership.may_check(ref.uid)
        # A monitor another replica checks is read afresh when this one takes it over
        # (``_take``): its status is not parsed (unless the live report shows it), nor kept
        # but as the watch gives it.
        parse = owned or self.reports is not None
        published = self.publisher.open(
            ref, previous_status(body.get("status")) if parse else ModelMonitorStatus(),
            model_name(spec), raw_check_time(body.get("status")))
        state = MonitorState(generation=generation, spec=spec, published=published,
                             watched=None if owned else _watched(body), owned=owned)
        if not owned:  # another replica's: its series are not ours to export
            self.publisher.release(published)
        self.monitors[key] = state
        if self.reports is not None:
            self.reports.seed(key, _parsed(spec), published.status)
        state.task = asyncio.get_running_loop().create_task(
            self._loop(state), name=f"monitor {key[0]}/{key[1]}")

    def absorb(self, body: Mapping[str, Any]) -> bool:
        """A monitor's watch event that only ``upsert`` would see (the same object at the
        same generation: a status patch, this replica's or another's), taken in here
        before the watch hands it on: True when it is, and nothing else needs it."""
        meta = body.get("metadata")
        if not isinstance(meta, Mapping):
            return False
        state = self.monitors.get((str(meta.get("namespace")), str(meta.get("name"))))
        if (state is None or state.ref.uid != meta.get("uid")
                or int(meta.get("generation") or 0) != state.generation):
            return False
        state.watched = None if state.owned else _watched(body)
        return True

    def remove(self, namespace: str, name: str) -> None:
        """A monitor was deleted: stop its worker and drop its series."""
        state = self.monitors.pop((namespace, name), None)
        if state is not None:
            log.info("%s/%s was deleted; stopped its worker and dropped its series",
                     namespace, name,
                     extra=fields("delete", monitor=f"{namespace}/{name}",
                                  model=model_name(state.spec)))
        if state is not None and state.task is not None:
            state.task.cancel()
        self.references.forget((namespace, name))
        self.publisher.retire((namespace, name))
        if self.reports is not None:
            self.reports.forget((namespace, name))

    async def watch_api(self) -> None:
        """Probe the API server (often while it is unreachable), and once it answers again
        write the statuses held meanwhile. Runs from start-up to shutdown."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelmon-probe")
        try:
            while True:
                await loop.run_in_executor(pool, self.cluster.probe)
                if self.cluster.reachable:
                    await self.flush()
                    await asyncio.sleep(PROBE_SECONDS)
                else:
                    await asyncio.sleep(PROBE_SECONDS_DOWN)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def start_watching_api(self) -> None:
        """Start ``watch_api`` (at operator start-up), and the membership's rounds when
        replication is on."""
        loop = asyncio.get_running_loop()
        self.api_watch = loop.create_task(self.watch_api(), name="API server probe")
        if self.membership is not None:
            self.membership_task = loop.create_task(self.membership.run(self.reassign),
                                                    name="membership Lease")

    @property
    def owned(self) -> int:
        """How many monitors this replica checks."""
        return sum(1 for state in self.monitors.values() if state.owned)

    def reassign(self) -> None:
        """The membership changed (a round, a fence, the end of the join wait): take the
        monitors that became this replica's and release the others."""
        if self.membership is None:
            return
        taken = released = 0
        for state in list(self.monitors.values()):
            mine = self.membership.may_check(state.ref.uid)
            if mine and not state.owned:
                state.owned = True
                state.tenure += 1
                taken += 1
                state.wake.set()
            elif state.owned and not mine:
                self._release(state)
                released += 1
        if taken or released:
            log.info("replica %s now checks %d monitors (took %d, released %d)",
                     self.membership.identity, self.owned, taken, released,
                     extra=fields("handover", replica=self.membership.identity,
                                  monitors=self.owned, taken=taken, released=released))

    def _release(self, state: MonitorState) -> None:
        """Stop checking a monitor that is another replica's now (or nobody's while this
        one is fenced)."""
        state.owned = False
        state.wake.set()
        self.publisher.release(state.published)
        self.references.forget(state.key)  # a replica keeps the references it checks only
        if self.membership is None:
            return
        monitor = "/".join(state.key)
        new = (self.membership.owner(state.ref.uid) if self.membership.active()
               else None)
        self.metrics.handovers.labels("released").inc()
        log.info("released %s to %s", monitor,
                 new or "whichever replica owns it once this one's Lease expires",
                 extra=fields("handover", monitor=monitor, action="released",
                              replica=self.membership.identity, to=new))

    async def _take(self, state: MonitorState) -> bool:
        """Take a monitor over: its status afresh from the cluster (the previous owner's
        last check), so that the schedule and the history go on from there. False when
        the monitor is gone."""
        assert self.membership is not None
        monitor = "/".join(state.key)
        raw: Mapping[str, Any] | None
        try:
            raw = await asyncio.get_running_loop().run_in_executor(
                self.publisher.api_pool, self.cluster.read_status, state.ref)
        except (ApiException, ApiUnreachableError) as exc:
            log.warning("cannot read the status of %s to take it over (%s); going on from "
                        "the watched one", monitor, type(exc).__name__)
            raw = None if state.watched is None else orjson.loads(state.watched)
            if raw is None:  # no event since this replica released it: its own last one
                raw = status_body(state.published.status)
        else:
            if raw is None:
                self._retire(state)
                return False
        self.publisher.take(state.published, previous_status(raw), model_name(state.spec),
                            raw_check_time(raw))
        self.metrics.handovers.labels("taken").inc()
        log.info("took over %s", monitor,
                 extra=fields("handover", monitor=monitor, action="taken",
                              replica=self.membership.identity))
        return True

    async def flush(self) -> None:
        """Write every held status (the API server answers again)."""
        for state in list(self.monitors.values()):
            if not state.owned:
                continue
            if not await self.publisher.write_held(state.published):
                self._retire(state)

    async def shutdown(self) -> None:
        """Stop every worker (at operator exit)."""
        tasks = [state.task for state in self.monitors.values() if state.task is not None]
        tasks += [task for task in (self.api_watch, self.membership_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.publisher.close()
        if self.membership is not None:  # the checks stopped: the others may take over
            await asyncio.get_running_loop().run_in_executor(None, self.membership.release)
        self.stats_pool.shutdown(wait=False, cancel_futures=True)
        dispose_engines()

    # ---------------------------------------------------------------------- the worker

    def _interval(self, state: MonitorState) -> float:
        raw = (state.spec.get("schedule") or {}).get("interval")
        try:
            return parse_duration(str(raw)).total_seconds() if raw else DEFAULT_INTERVAL_SECONDS
        except ValueError:
            return DEFAULT_INTERVAL_SECONDS

    def _first_delay(self, state: MonitorState, taken: bool = False) -> float:
        """Resume where the last operator left off: no check before its due time. A
        monitor ``taken`` over from another replica is not checked again within an
        interval of that replica's last check, failed or not (its history's last entry)."""
        stored = state.published.status
        if taken and stored.observed_generation == state.generation:
            times = [entry.time for entry in stored.history[-1:]]
            times += [stored.last_check.time] if stored.last_check is not None else []
            if times:
                due = max(times).timestamp() + self._interval(state)
                return max(0.0, due - self.clock())
        last = stored.last_check
        ready = stored.condition("Ready")
        if (last is None or stored.observed_generation != state.generation
                or ready is None or ready.status != "True"):
            return 0.0
        due = last.time.timestamp() + self._interval(state)
        return max(0.0, due - self.clock())

    async def _loop(self, state: MonitorState) -> None:
        if self.membership is None:
            await self._schedule(state, None)
            return
        while True:  # replicated: check while this replica owns the monitor
            while not state.owned:
                await state.wake.wait()
                state.wake.clear()
            tenure = state.tenure
            if tenure and not await self._take(state):
                return
            # A spec change seen while another replica owned it: the stored status says
            # whether that replica checked it (the first delay reads observedGeneration).
            state.respec = False
            if state.owned and state.tenure == tenure:
                await self._schedule(state, tenure)

    def _mine(self, state: MonitorState, tenure: int | None) -> bool:
        """Whether the check may go on: always without replication; with it, while this
        replica owns the monitor under the same tenure and may check now."""
        if tenure is None or self.membership is None:
            return True
        return (state.owned and state.tenure == tenure
                and self.membership.may_check(state.ref.uid))

    async def _schedule(self, state: MonitorState, tenure: int | None) -> None:
        """Check on schedule; returns when the monitor is no longer this replica's."""
        due = self.clock() + self._first_delay(state, taken=bool(tenure))
        while True:
            timed_out = False
            try:
                await asyncio.wait_for(state.wake.wait(), timeout=max(0.0, due - self.clock()))
            except TimeoutError:
                timed_out = True
            state.wake.clear()
            if not self._mine(state, tenure):
                if state.owned and state.tenure == tenure:
                    self._release(state)  # fenced before the membership noticed
                return
            woken, state.respec = state.respec, False
            if not (woken or timed_out):
                continue  # woken by a membership change that leaves the monitor here
            state.began = self.clock()
            try:
                delay = await self._check(state, None if woken else due, tenure)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any bug in one check
                log.exception("check of %s/%s failed unexpectedly", *state.key)
                delay = self._interval(state)
            # A fixed cadence: the next check is due one interval after this one began
            # computing, so the time a check takes does not push every later check back.
            # Monitors created together queue for the check threads once; each keeps the
            # moment its turn came, which spreads them over the interval from then on.
            due = state.began + delay

    def _started(self, state: MonitorState, due: float | None) -> None:
        """A check starts computing now: note when, and how late that is if scheduled."""
        state.began = now = self.clock()
        if due is not None:
            late = max(0.0, now - due)
            self.lateness.append(late)
            self.metrics.lateness.observe(late)

    async def _check(self, state: MonitorState, due: float | None = None,
                     tenure: int | None = None) -> float:
        """One check end to end; returns the delay until the next one. ``due``: when a
        scheduled check was due (None when a spec change woke it). ``tenure``: the
        replica's tenure of the monitor (replicated), under which alone it publishes."""
        started = self.clock()
        now = datetime.fromtimestamp(started, UTC)
        generation = state.generation
        interval = self._interval(state)
        previous = state.published.status
        error: str | None = None
        spec: ModelMonitorSpec | None = None
        result = CheckResult(previous)
        try:
            spec = parse_spec(dict(state.spec))
        except CheckError as exc:
            self._started(state, due)
            status = failed_status(previous, exc, now, generation)
            error = exc.reason
        if spec is not None:
            checked = spec
            # A resolver per check, so that a rotated Secret is read afresh.
            resolver = self.cluster.resolver(state.ref.namespace, self.policy.use_label)

            def compute() -> CheckResult:
                # Lateness counts the wait for a free statistics thread too.
                self._started(state, due)
                if self.reports is None:
                    return CheckResult(run_check(
                        checked, base_dir=self.base_dir, now=now, previous=previous,
                        generation=generation, resolver=resolver, cache=self.references,
                        cache_key=state.key, cpu=self.cpu, policy=self.policy))
                return run_check_with_shapes(  # the live report plots the columns
                    checked, base_dir=self.base_dir, now=now, previous=previous,
                    generation=generation, resolver=resolver, cache=self.references,
                    cache_key=state.key, cpu=self.cpu, policy=self.policy)

            result = await asyncio.get_running_loop().run_in_executor(self.stats_pool,
                                                                      compute)
            status = result.status
            ready = status.condition("Ready")
            if ready is not None and ready.status == "False":
                error = ready.reason
        if not self._mine(state, tenure):
            log.info("dropped the check of %s/%s: the monitor went to another replica "
                     "while it ran", *state.key,
                     extra=fields("handover", monitor="/".join(state.key),
                                  action="dropped"))
            if not state.owned:  # the check cached what it fitted after the release
                self.references.forget(state.key)
            return interval
        outcome = CheckOutcome(
            status=status, previous=previous, spec=spec,
            model=spec.model.name if spec else model_name(state.spec), error=error, now=now,
            started=started, generation=generation, interval=interval)
        if not await self.publisher.publish(state.published, outcome):
            self._retire(state)
            return interval
        if self.reports is not None and self.monitors.get(state.key) is state:
            self.reports.record(state.key, spec, state.published.status, result.shapes,
                                failed=error is not None)
        if error in ("SourceUnavailable", "InvalidData"):
            state.failures += 1
            return backoff(state.failures, interval)
        state.failures = 0
        return interval

    def _retire(self, state: MonitorState) -> None:
        """The status patch answered 404: the monitor was deleted. Normally the DELETED
        event has already stopped this worker, but a watch that resumed after a gap (410
        Gone, a re-list) never reports objects that vanished meanwhile: retire here, series
        and all."""
        if self.monitors.get(state.key) is state:
            self.remove(*state.key)


def _watched(body: Mapping[str, Any]) -> bytes | None:
    """The status of a watch event as compact JSON (None when it has none)."""
    status = body.get("status")
    return None if status is None else orjson.dumps(status)
