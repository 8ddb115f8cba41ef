"""One worker per ModelMonitor: runs the check on schedule and writes its outputs.

Between the kopf handlers and the data line: ``handlers`` tell the ``Fleet`` that a monitor
appeared, changed or went away; the fleet keeps one asyncio task per monitor that waits for
its next due time (or a spec change), runs ``check.run_check`` in a thread pool, and writes
the status (one patch per check), metrics, the PrometheusRule and Events. Notifications go
to the ``Outbox``, which delivers them off the check's path; their outcome goes into the
next status patch. Knows nothing of kopf, so it runs the same against any API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelmon.api.messages import capped_lines
from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import (
    HISTORY_LIMIT,
    CheckSummary,
    Finding,
    ModelMonitorSpec,
    ModelMonitorStatus,
    parse_duration,
)
from modelmon.check import (
    CheckError,
    FittedReference,
    failed_status,
    parse_spec,
    run_check,
)
from modelmon.evaluation import ConditionValue, merge_conditions
from modelmon.outputs import retraining
from modelmon.outputs.kube import (
    ApiUnreachableError,
    Kube,
    ObjectRef,
    RuleOwnedElsewhereError,
    RulesUnavailableError,
)
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.notifiers import Context, drift_columns
from modelmon.outputs.notifiers.outbox import Outbox
from modelmon.outputs.rules import prometheus_rule
from modelmon.sources import ReferenceCache
from modelmon.sources.resolvers import KubeResolver
from modelmon.sources.sql import dispose_engines

log = logging.getLogger(__name__)

T = TypeVar("T")

#: First retry delay after a source failure; doubles per failure, capped at the interval.
RETRY_BASE_SECONDS = 5.0
DEFAULT_INTERVAL_SECONDS = 600.0
PROBLEM_PHASES = ("Drifting", "Degraded", "Failing")
#: Checks that may wait on a slow source beside the ``workers`` that compute.
SOURCE_WAIT_THREADS = 16
#: Seconds between probes of the API server while it answers, and while it does not.
PROBE_SECONDS = 5.0
PROBE_SECONDS_DOWN = 2.0
#: At exit, how long recording the deliveries made since the last status patches may take.
EXIT_WRITE_SECONDS = 10.0


def backoff(failures: int, interval: float) -> float:
    """Delay before retrying after ``failures`` consecutive source failures."""
    return float(min(interval, RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0)))


def with_history(status: ModelMonitorStatus, when: datetime,
                 previous: ModelMonitorStatus | None = None) -> ModelMonitorStatus:
    """The status with this check appended to the previous history (once per check time)."""
    ready = status.condition("Ready")
    failed = ready is not None and ready.status == "False"
    entry = CheckSummary(
        time=when, phase=status.phase,
        drift_share=None if failed or status.drift is None else status.drift.share,
        findings=0 if failed else len(status.findings),
        current_rows=None if failed or status.last_check is None
        else status.last_check.current_rows,
        reason=ready.reason if failed and ready is not None else None)
    base = status.history if previous is None else previous.history
    kept = [h for h in base if h.time != when]
    return status.model_copy(update={"history": [*kept, entry][-HISTORY_LIMIT:]})


def status_body(status: ModelMonitorStatus) -> dict[str, Any]:
    """The JSON merge patch body of a status: every top-level field, null clears it."""
    return status.model_dump(by_alias=True, mode="json")


def previous_status(raw: Mapping[str, Any] | None) -> ModelMonitorStatus:
    """The status stored in the cluster, or an empty one if it does not parse."""
    if not raw:
        return ModelMonitorStatus()
    try:
        return ModelMonitorStatus.model_validate(dict(raw))
    except ValidationError:
        log.warning("ignoring a stored status that does not parse")
        return ModelMonitorStatus()


@dataclass
class MonitorState:
    """What the fleet knows of one monitor."""

    ref: ObjectRef
    generation: int
    spec: Mapping[str, Any]
    status: ModelMonitorStatus
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    last_error: str | None = None
    last_success: float | None = None
    applied_rule: dict[str, Any] | None = None
    rule_synced: float = 0.0
    """When the PrometheusRule was last compared with the cluster's copy (clock time)."""
    rules_condition: ConditionValue | None = None
    checks: int = 0
    written_phase: str = "Pending"
    """The phase of the status last written to the cluster (phase-change Events)."""
    unwritten: tuple[ModelMonitorStatus, str | None] | None = None
    """The latest status (and its error) not yet written: the API server was unreachable."""
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One status write at a time, so that a held status never overwrites a newer one."""

    @property
    def key(self) -> tuple[str, str]:
        return self.ref.namespace, self.ref.name


class Fleet:
    """The workers of every monitor the operator watches."""

    def __init__(self, kube: Kube, metrics: Metrics, *, workers: int = 2,
                 base_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 rules_resync_seconds: float = 600.0, policy: Policy | None = None) -> None:
        self.kube = kube
        self.policy = policy or Policy.operator()
        """The administrator's bounds on what monitors may read and reach."""
        self.rules_resync_seconds = rules_resync_seconds
        """A rule unchanged in the spec is still compared with the cluster's copy this
        often, so that one deleted or edited by hand is restored."""
        self.metrics = metrics
        self.base_dir = base_dir or Path.cwd()
        self.clock = clock
        # Checks wait on sources in many threads at once; only ``workers`` of them compute
        # at a time (the statistics pool proper), so a slow source holds a thread, not a
        # core, and never delays the monitors whose data is at hand.
        self.cpu = threading.BoundedSemaphore(workers)
        self.stats_pool = ThreadPoolExecutor(max_workers=workers + SOURCE_WAIT_THREADS,
                                             thread_name_prefix="modelmon-check")
        self.api_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelmon-api")
        self.monitors: dict[tuple[str, str], MonitorState] = {}
        self.api_watch: asyncio.Task[None] | None = None
        """The API server probe (``watch_api``), once started."""
        self.outbox = Outbox(report=self._notification_failed, policy=self.policy.egress)
        """The notifiers' delivery lanes: a slow receiver never holds a check."""
        self._events: set[asyncio.Task[None]] = set()
        self.references: ReferenceCache[FittedReference] = ReferenceCache()
        """Fitted reference profiles, reused until the reference data changes."""
        self.lateness: deque[float] = deque(maxlen=10_000)
        """Seconds each scheduled check started computing after its due time (latest ones);
        also the histogram ``modelmon_schedule_lateness_seconds``."""

    # -------------------------------------------------------------- events from handlers

    def upsert(self, body: Mapping[str, Any]) -> None:
        """A monitor was created, changed or seen at start-up."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        generation = int(meta.get("generation") or 0)
        state = self.monitors.get(key)
        if state is not None and state.ref.uid == meta.get("uid"):
            state.spec = body.get("spec") or {}
            if generation != state.generation:
                state.generation = generation
                state.wake.set()  # check now with the new spec
            return
        if state is not None:  # same name, new object: start afresh
            self.remove(*key)
        state = MonitorState(
            ref=ObjectRef(key[0], key[1], meta.get("uid", "")), generation=generation,
            spec=body.get("spec") or {}, status=previous_status(body.get("status")))
        state.last_success = _last_success(state.status)
        state.written_phase = state.status.phase
        self.monitors[key] = state
        if state.status.last_check is not None:
            model = str((state.spec.get("model") or {}).get("name", ""))
            self.metrics.restore(key[0], key[1], model=model, status=state.status,
                                 last_success=state.last_success)
        state.task = asyncio.get_running_loop().create_task(
            self._loop(state), name=f"monitor {key[0]}/{key[1]}")

    def remove(self, namespace: str, name: str) -> None:
        """A monitor was deleted: stop its worker and drop its series."""
        state = self.monitors.pop((namespace, name), None)
        if state is not None and state.task is not None:
            state.task.cancel()
        self.references.forget((namespace, name))
        self.outbox.retire((namespace, name))
        self.metrics.forget(namespace, name)

    async def watch_api(self) -> None:
        """Probe the API server (often while it is unreachable), and once it answers again
        write the statuses held meanwhile. Runs from start-up to shutdown."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelmon-probe")
        try:
            while True:
                await loop.run_in_executor(pool, self.kube.probe)
                if self.kube.reachability.reachable:
                    await self.flush()
                    await asyncio.sleep(PROBE_SECONDS)
                else:
                    await asyncio.sleep(PROBE_SECONDS_DOWN)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def start_watching_api(self) -> None:
        """Start ``watch_api`` (at operator start-up)."""
        self.api_watch = asyncio.get_running_loop().create_task(
            self.watch_api(), name="API server probe")

    async def flush(self) -> None:
        """Write every held status (the API server answers again)."""
        for state in list(self.monitors.values()):
            if state.unwritten is None or not self.kube.reachability.reachable:
                continue
            async with state.write_lock:
                held = state.unwritten
                if held is None or self.monitors.get(state.key) is not state:
                    continue
                await self._patch(state, *held)

    async def shutdown(self) -> None:
        """Stop every worker (at operator exit)."""
        tasks = [s.task for s in self.monitors.values() if s.task is not None]
        if self.api_watch is not None:
            tasks.append(self.api_watch)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._record_deliveries(), timeout=EXIT_WRITE_SECONDS)
        await self.outbox.close()
        for event in list(self._events):
            event.cancel()
        await asyncio.gather(*self._events, return_exceptions=True)
        self.stats_pool.shutdown(wait=False, cancel_futures=True)
        self.api_pool.shutdown(wait=False, cancel_futures=True)
        dispose_engines()

    async def _record_deliveries(self) -> None:
        """At exit: what the lanes delivered since each monitor's last status patch goes
        into its status (``notifications`` only), so that the next operator does not send
        it again."""
        for key, state in list(self.monitors.items()):
            states = self.outbox.states(key)
            if states is None or states == state.status.notifications:
                continue
            body = {"notifications": [s.model_dump(by_alias=True, mode="json")
                                      for s in states]}
            try:
                await self._api(self.kube.patch_status, state.ref, body)
            except ApiException as exc:
                log.warning("cannot record the notifications of %s/%s: HTTP %s", *key,
                            exc.status)
            except ApiUnreachableError:
                return  # the outage was logged already; nothing more can be written

    # ---------------------------------------------------------------------- the worker

    def _interval(self, state: MonitorState) -> float:
        raw = (state.spec.get("schedule") or {}).get("interval")
        try:
            return parse_duration(str(raw)).total_seconds() if raw else DEFAULT_INTERVAL_SECONDS
        except ValueError:
            return DEFAULT_INTERVAL_SECONDS

    def _first_delay(self, state: MonitorState) -> float:
        """Resume where the last operator left off: no check before its due time."""
        last = state.status.last_check
        ready = state.status.condition("Ready")
        if (last is None or state.status.observed_generation != state.generation
                or ready is None or ready.status != "True"):
            return 0.0
        due = last.time.timestamp() + self._interval(state)
        return max(0.0, due - self.clock())

    async def _api(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.api_pool, fn, *args)

    async def _loop(self, state: MonitorState) -> None:
        due = self.clock() + self._first_delay(state)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=max(0.0, due - self.clock()))
            woken = state.wake.is_set()
            state.wake.clear()
            began = [self.clock()]
            try:
                delay = await self._check(state, None if woken else due, began)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any bug in one check
                log.exception("check of %s/%s failed unexpectedly", *state.key)
                delay = self._interval(state)
            # A fixed cadence: the next check is due one interval after this one began
            # computing, so the time a check takes does not push every later check back.
            # Monitors created together queue for the check threads once; each keeps the
            # moment its turn came, which spreads them over the interval from then on.
            due = began[0] + delay

    def _started(self, due: float | None, began: list[float]) -> None:
        """A check starts computing now: note when, and how late that is if scheduled."""
        began[0] = now = self.clock()
        if due is not None:
            late = max(0.0, now - due)
            self.lateness.append(late)
            self.metrics.lateness.observe(late)

    async def _check(self, state: MonitorState, due: float | None = None,
                     began: list[float] | None = None) -> float:
        """One check end to end; returns the delay until the next one. ``due``: when a
        scheduled check was due (None when a spec change woke it); ``began[0]`` is set to
        the moment it started computing."""
        began = began if began is not None else [0.0]
        started = self.clock()
        now = datetime.fromtimestamp(started, UTC)
        generation = state.generation
        interval = self._interval(state)
        previous = state.status
        error: str | None = None
        spec: ModelMonitorSpec | None = None
        try:
            spec = parse_spec(dict(state.spec))
        except CheckError as exc:
            self._started(due, began)
            status = failed_status(previous, exc, now, generation)
            error = exc.reason
        if spec is not None:
            checked = spec
            # A resolver per check, so that a rotated Secret is read afresh.
            resolver = KubeResolver(self.kube.core, state.ref.namespace, self.policy.use_label)

            def compute() -> ModelMonitorStatus:
                # Lateness counts the wait for a free statistics thread too.
                self._started(due, began)
                return run_check(checked, base_dir=self.base_dir, now=now, previous=previous,
                                 generation=generation, resolver=resolver,
                                 cache=self.references, cache_key=state.key, cpu=self.cpu,
                                 policy=self.policy)

            status = await asyncio.get_running_loop().run_in_executor(self.stats_pool, compute)
            ready = status.condition("Ready")
            if ready is not None and ready.status == "False":
                error = ready.reason
            status = await self._rules(state, spec, status, now, generation)
            status = await self._notify(state, spec, status, previous, error, now, interval)
            status = await self._retrain(state, spec, status, previous, error, now)
        status = with_history(status, now, previous)
        seconds = self.clock() - started
        if error is None:
            state.last_success = started
        state.checks += 1
        if not await self._write(state, status, previous, error):
            return interval  # the monitor is gone and this worker retired
        self.metrics.observe(state.ref.namespace, state.ref.name,
                             model=spec.model.name if spec else
                             str((state.spec.get("model") or {}).get("name", "")),
                             status=status, seconds=seconds, last_success=state.last_success,
                             error=error)
        if error in ("SourceUnavailable", "InvalidData"):
            state.failures += 1
            return backoff(state.failures, interval)
        state.failures = 0
        return interval

    async def _rules(self, state: MonitorState, spec: ModelMonitorSpec,
                     status: ModelMonitorStatus, now: datetime,
                     generation: int) -> ModelMonitorStatus:
        """Create, update or delete the PrometheusRule; report it as AlertRulesReady."""
        ref = state.ref
        if not spec.alerting.prometheus_rule.enabled:
            if state.applied_rule is not None or state.rules_condition is None:
                try:
                    await self._api(self.kube.delete_rule, ref.namespace, ref.name)
                    state.applied_rule = None
                except ApiException:
                    state.applied_rule = None
                except ApiUnreachableError:
                    pass  # deleted at a later check
            value = ConditionValue("AlertRulesReady", "False", "Disabled",
                                   "spec.alerting.prometheusRule.enabled is false")
        else:
            rule = prometheus_rule(ref.namespace, ref.name, spec, uid=ref.uid)
            value = state.rules_condition or value_ok()
            resync = self.clock() - state.rule_synced >= self.rules_resync_seconds
            if rule != state.applied_rule or resync:
                try:
                    if await self._api(self.kube.apply_rule, rule) and rule == state.applied_rule:
                        log.info("restored the PrometheusRule of %s/%s, changed outside "
                                 "modelmon", *state.key)
                    state.applied_rule = rule
                    state.rule_synced = self.clock()
                    value = value_ok()
                except RulesUnavailableError as exc:
                    value = ConditionValue("AlertRulesReady", "False",
                                           "PrometheusRuleCRDMissing", str(exc))
                except RuleOwnedElsewhereError as exc:
                    value = ConditionValue("AlertRulesReady", "False", "RuleNameTaken",
                                           str(exc))
                except ApiException as exc:
                    value = ConditionValue("AlertRulesReady", "False", "ApplyFailed",
                                           f"cannot write the PrometheusRule: HTTP {exc.status}"
                                           f" {exc.reason}")
                except ApiUnreachableError:
                    pass  # the rule is compared again at the next check
        state.rules_condition = value
        conditions = merge_conditions(status.conditions, [value], now, generation)
        return status.model_copy(update={"conditions": conditions})

    async def _notify(self, state: MonitorState, spec: ModelMonitorSpec,
                      status: ModelMonitorStatus, previous: ModelMonitorStatus,
                      error: str | None, now: datetime, interval: float
                      ) -> ModelMonitorStatus:
        """Queue notifications (delivered off this path); the notifiers' states as they
        stand go into this check's status."""
        findings = list(status.findings)
        if error is not None and error != "InsufficientData":
            ready = status.condition("Ready")
            findings.append(Finding(name="check.failing", severity="warning", value=1.0,
                                    bound=0.0, message=f"the check fails: {error}: "
                                    f"{ready.message if ready else ''}"[:500]))
        ns = state.ref.namespace
        states = self.outbox.submit(
            state.key, spec.alerting, findings, previous.notifications,
            Context(ns, state.ref.name, spec.model.name, spec.model.version, status.phase,
                    interval, drift_columns(spec), self.policy),
            KubeResolver(self.kube.core, ns, self.policy.use_label), now)
        return status.model_copy(update={"notifications": states})

    def _notification_failed(self, key: tuple[str, str], error: str) -> None:
        """A notifier's delivery started failing: one Event per run of failures."""
        state = self.monitors.get(key)
        if state is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._api(self.kube.event, state.ref, "Warning", "NotificationFailed", error))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _retrain(self, state: MonitorState, spec: ModelMonitorSpec,
                       status: ModelMonitorStatus, previous: ModelMonitorStatus,
                       error: str | None, now: datetime) -> ModelMonitorStatus:
        """The retraining hook: refresh the last Job's outcome, start a new one when due."""
        if spec.retraining is None:
            return status.model_copy(update={"retraining": None})
        ref = state.ref
        prev = previous.retraining
        if prev is not None and prev.last_job and prev.outcome == "Running":
            last = prev.last_job
            try:
                prev = retraining.refresh(prev, await self._api(self.kube.read_job,
                                                                ref.namespace, last))
            except ApiException as exc:
                log.warning("cannot read Job %s: HTTP %s", last, exc.status)
            except ApiUnreachableError:
                pass  # read again at the next check
        decision = retraining.plan(spec.retraining, status.findings, prev, now,
                                   checked=error is None)
        result = decision.status
        if decision.start:
            body = retraining.job(spec.retraining, ref.namespace, ref.name, ref.uid,
                                  prev.last_job if prev is not None else None)
            name = body["metadata"]["name"]
            try:
                await self._api(self.kube.create_job, body)
                result = retraining.started(result, name, now)
                await self._api(self.kube.event, ref, "Normal", "RetrainingStarted",
                                f"created Job {name}")
            except ApiException as exc:
                if exc.status == 409:  # created before a crash that kept it from the status
                    try:
                        found = await self._api(self.kube.read_job, ref.namespace, name)
                        result = retraining.adopt(result, found, ref.uid, now)
                    except ApiException as again:
                        result = result.model_copy(update={
                            "message": f"cannot read the retraining Job: HTTP {again.status}"})
                    except ApiUnreachableError:
                        result = result.model_copy(update={
                            "message": "cannot read the retraining Job: the API server is "
                                       "unreachable"})
                else:
                    result = result.model_copy(update={
                        "message": f"cannot create the retraining Job: HTTP {exc.status} "
                                   f"{_api_message(exc)}"})
            except ApiUnreachableError:
                result = result.model_copy(update={
                    "message": "cannot create the retraining Job: the API server is "
                               "unreachable; tried again at the next check"})
        return status.model_copy(update={"retraining": result})

    async def _write(self, state: MonitorState, status: ModelMonitorStatus,
                     previous: ModelMonitorStatus, error: str | None) -> bool:
        """Patch the status (one request) and post Events on changes; False when the
        monitor no longer exists. While the API server is unreachable the status is held
        (the latest one per monitor) and written when it answers again."""
        del previous  # Events compare with the phase last written, not the last computed
        async with state.write_lock:
            return await self._patch(state, status, error)

    async def _patch(self, state: MonitorState, status: ModelMonitorStatus,
                     error: str | None) -> bool:
        """``_write`` under the monitor's write lock."""
        # The next check builds on this status whether or not it reaches the cluster, so
        # that no history entry is lost to an outage.
        # The notifiers' states as they stand now, with the outcome of every delivery
        # attempt made since the last patch.
        delivery = self.outbox.states(state.key)
        if delivery is not None:
            status = status.model_copy(update={"notifications": delivery})
        state.status = status
        if not self.kube.reachability.reachable:
            state.unwritten = (status, error)
            return True
        try:
            await self._api(self.kube.patch_status, state.ref, status_body(status))
        except ApiUnreachableError:
            state.unwritten = (status, error)
            return True
        except ApiException as exc:
            state.unwritten = None
            if exc.status == 404:
                # Deleted. Normally the DELETED event has already stopped this worker, but
                # a watch that resumed after a gap (410 Gone, a re-list) never reports
                # objects that vanished meanwhile: retire here, series and all.
                log.info("%s/%s no longer exists; stopping its worker", *state.key)
                if self.monitors.get(state.key) is state:
                    self.remove(*state.key)
                return False
            log.warning("cannot patch the status of %s/%s: HTTP %s %s", *state.key,
                        exc.status, exc.reason)
            return True
        state.unwritten = None
        if status.phase != state.written_phase:
            kind = "Warning" if status.phase in PROBLEM_PHASES else "Normal"
            summary = capped_lines([f.message for f in status.findings], 3)
            await self._api(self.kube.event, state.ref, kind, status.phase,
                            f"phase {state.written_phase} -> {status.phase}"
                            + (f": {summary}" if summary else ""))
            state.written_phase = status.phase
        if error is not None and error != state.last_error:
            ready = status.condition("Ready")
            await self._api(self.kube.event, state.ref, "Warning", error,
                            ready.message if ready is not None else error)
        state.last_error = error
        return True


def _api_message(exc: ApiException) -> str:
    """The apiserver's message from an error response (no request data in it)."""
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))[:300]
    except ValueError:
        return ""


def value_ok() -> ConditionValue:
    return ConditionValue("AlertRulesReady", "True", "RuleApplied",
                          "the PrometheusRule is up to date")


def _last_success(status: ModelMonitorStatus) -> float | None:
    return status.last_check.time.timestamp() if status.last_check is not None else None
