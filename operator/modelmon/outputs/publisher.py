"""The publisher: writes what each check found to the cluster, the notifiers and the metrics.

Last stop on the data line (``outputs``). The fleet (``modelmon.worker``) decides when a
monitor is checked and hands each finished check here as a ``CheckOutcome``. The publisher
then applies or deletes the PrometheusRule (reported as AlertRulesReady), queues
notifications on the ``Outbox`` (delivered off the check's path; their outcome goes into the
next status patch), starts retraining Jobs, appends the check to the history, patches the
status (one request per check), posts Events on changes and updates the metrics.

It reaches Kubernetes only through ``outputs.cluster.ClusterApi``, in a small thread pool of
its own. While the API server is unreachable the latest status of each monitor is held and
written when it answers again (``write_held``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from modelmon.api.logs import fields
from modelmon.api.messages import capped_lines
from modelmon.api.names import report_url
from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import (
    HISTORY_LIMIT,
    CheckSummary,
    ModelMonitorSpec,
    ModelMonitorStatus,
)
from modelmon.evaluation import (
    ConditionValue,
    failing_finding,
    findings_by_severity,
    fix_for,
    merge_conditions,
    rule_name_taken,
    rules_api_missing,
    rules_applied,
    rules_apply_failed,
    rules_disabled,
)
from modelmon.outputs import retraining
from modelmon.outputs.cluster import (
    ApiUnreachableError,
    ClusterApi,
    ObjectRef,
    RuleOwnedElsewhereError,
    RulesUnavailableError,
    StatusChangedError,
)
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.notifiers import Context, drift_columns
from modelmon.outputs.notifiers.outbox import Outbox
from modelmon.outputs.rules import prometheus_rule

log = logging.getLogger(__name__)

Result = TypeVar("Result")

PROBLEM_PHASES = ("Drifting", "Degraded", "Failing")
#: At exit, how long recording the deliveries made since the last status patches may take.
EXIT_WRITE_SECONDS = 10.0


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
    kept = [summary for summary in base if summary.time != when]
    return status.model_copy(update={"history": [*kept, entry][-HISTORY_LIMIT:]})


_FIELD_SETS: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
_FIELD_SETS_LOCK = threading.Lock()


def share_field_sets(model: BaseModel) -> BaseModel:
    """Give ``model`` and every model in it the one ``__pydantic_fields_set__`` of its kind
    (class and fields given): a status kept per monitor then costs about half as much
    memory (each of its ~80 models carried a set of its own, 0.2-2 KB). The sets are read
    only by ``exclude_unset`` dumps and ``model_copy`` (which copies them first), neither
    of which depends on them being private; modelmon never assigns a field of a status
    it keeps. Returns ``model``."""
    stack: list[object] = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseModel):
            given = item.__pydantic_fields_set__
            key = (type(item), frozenset(given))
            shared = _FIELD_SETS.get(key)
            if shared is None:
                with _FIELD_SETS_LOCK:
                    shared = _FIELD_SETS.setdefault(key, set(given))
            if shared is not given:
                object.__setattr__(item, "__pydantic_fields_set__", shared)
            stack.extend(item.__dict__.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return model


def log_check(ref: ObjectRef, outcome: CheckOutcome, status: ModelMonitorStatus,
              seconds: float) -> None:
    """One line per check: at info when it gave a verdict (or waits for rows), at warning
    with the reason and the fix when it failed. ``started``: when the check began, as its
    history entry records it."""
    monitor = f"{ref.namespace}/{ref.name}"
    if outcome.error is not None:
        ready = status.condition("Ready")
        message = ready.message if ready is not None else outcome.error
        fix = fix_for(outcome.error)
        level = logging.INFO if outcome.error == "InsufficientData" else logging.WARNING
        log.log(level, "check %s %s: %s: %s (fix: %s)", monitor,
                "waits for data" if level == logging.INFO else "failed", outcome.error,
                message, fix,
                extra=fields("check", monitor=monitor, model=outcome.model,
                             phase=status.phase, reason=outcome.error, message=message,
                             fix=fix, duration_seconds=round(seconds, 3),
                             generation=outcome.generation,
                             started=outcome.now.isoformat()))
        return
    counts = findings_by_severity(status.findings)
    summary = status.summary
    drifted = summary.drifted if summary is not None else "-"
    rows = status.last_check.current_rows if status.last_check is not None else None
    log.info("check %s: %s, %s rows in %.2f s, %s drifted, findings %s", monitor,
             status.phase, rows, seconds, drifted,
             " ".join(f"{severity}={count}" for severity, count in counts.items()),
             extra=fields("check", monitor=monitor, model=outcome.model, phase=status.phase,
                          rows=rows, reference_rows=status.last_check.reference_rows
                          if status.last_check is not None else None,
                          duration_seconds=round(seconds, 3), drifted=drifted,
                          findings=counts, generation=outcome.generation,
                          started=status.last_check.time.isoformat()
                          if status.last_check is not None else None))


def status_body(status: ModelMonitorStatus, nulls: bool = True) -> dict[str, Any]:
    """The JSON merge patch body of a status: every top-level field, null clears it (a
    merge patch stores no null below the top either). ``nulls=False``: a whole status
    that replaces the stored one, without them (the same stored form, and smaller)."""
    return status.model_dump(by_alias=True, mode="json", exclude_none=not nulls)


@dataclass(frozen=True)
class CheckOutcome:
    """One finished check, as the fleet hands it over."""

    status: ModelMonitorStatus
    """The check's own status: figures, findings, conditions, phase."""
    previous: ModelMonitorStatus
    """The status the check built on."""
    spec: ModelMonitorSpec | None
    """The spec it checked; None when the spec does not parse (only the status is written)."""
    model: str
    """The model's name (a metric label), also when the spec does not parse."""
    error: str | None
    """Ready's reason when the check failed."""
    now: datetime
    """When the check started: its time in the status and the history."""
    started: float
    """The same moment by the fleet's clock."""
    generation: int
    interval: float
    """Seconds between the monitor's checks."""


@dataclass
class Publication:
    """What has been published for one monitor."""

    ref: ObjectRef
    status: ModelMonitorStatus
    """The latest status, written or held; the next check builds on it."""
    written_phase: str
    """The phase of the status last written to the cluster (phase-change Events)."""
    last_success: float | None = None
    """When the latest check that did not fail started (fleet clock)."""
    last_error: str | None = None
    """The reason of the latest failed check written (one Event per new reason)."""
    unwritten: tuple[ModelMonitorStatus, str | None] | None = None
    """The latest status (and its error) not yet written: the API server was unreachable."""
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One status write at a time, so that a held status never overwrites a newer one."""
    applied_rule: dict[str, Any] | None = None
    rule_synced: float = 0.0
    """When the PrometheusRule was last compared with the cluster's copy (clock time)."""
    rules_condition: ConditionValue | None = None
    retired: bool = False
    """The monitor is gone: nothing more is written for it."""
    elsewhere: bool = False
    """Another replica checks the monitor now: nothing held is written for it."""
    written_check: str | None = None
    """``lastCheck.time`` of the status in the cluster as this replica last wrote or read
    it: with replicas, a status write holds only while the cluster still has it."""

    @property
    def key(self) -> tuple[str, str]:
        return self.ref.namespace, self.ref.name


class Publisher:
    """Writes the outputs of every monitor's checks."""

    def __init__(self, cluster: ClusterApi, metrics: Metrics, *, policy: Policy,
                 clock: Callable[[], float], rules_resync_seconds: float,
                 report_base_url: str | None = None, guarded: bool = False) -> None:
        self.cluster = cluster
        self.guarded = guarded
        """Replicas share the monitors: each status write replaces the status only while
        its last check is the one this replica built on (``replace_status_if``)."""
        self.report_base_url = report_base_url
        """Where the live report is reached (``modelmon run --report-base-url``): the
        rules' annotations and the notifications link to it; None: no link."""
        self.metrics = metrics
        self.policy = policy
        self.clock = clock
        self.rules_resync_seconds = rules_resync_seconds
        """A rule unchanged in the spec is still compared with the cluster's copy this
        often, so that one deleted or edited by hand is restored."""
        self.api_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelmon-api")
        self.publications: dict[tuple[str, str], Publication] = {}
        self.outbox = Outbox(report=self._notification_failed, policy=policy.egress)
        """The notifiers' delivery lanes: a slow receiver never holds a check."""
        self._events: set[asyncio.Task[None]] = set()

    def open(self, ref: ObjectRef, stored: ModelMonitorStatus, model: str,
             stored_check: str | None = None) -> Publication:
        """Start publishing for a monitor whose cluster copy holds ``stored``; its series
        are restored from it until the first check. ``stored_check``: its
        ``lastCheck.time`` exactly as the cluster holds it (``raw_check_time``)."""
        last_success = (stored.last_check.time.timestamp()
                        if stored.last_check is not None else None)
        publication = Publication(ref=ref, status=stored, written_phase=stored.phase,
                                  last_success=last_success,
                                  written_check=stored_check)
        self.publications[publication.key] = publication
        if stored.last_check is not None:
            self.metrics.restore(ref.namespace, ref.name, model=model, status=stored,
                                 last_success=last_success)
        return publication

    def retire(self, key: tuple[str, str]) -> None:
        """The monitor is gone: write nothing more for it, drop its lanes and series."""
        publication = self.publications.pop(key, None)
        if publication is not None:
            publication.retired = True
        self.outbox.retire(key)
        self.metrics.forget(*key)

    def release(self, publication: Publication) -> None:
        """Another replica checks the monitor from now on: drop what is held for it (a
        status the API server did not take, queued notifications) and its series."""
        publication.elsewhere = True
        publication.unwritten = None
        self.outbox.retire(publication.key)
        self.metrics.forget(*publication.key)

    def take(self, publication: Publication, stored: ModelMonitorStatus, model: str,
             stored_check: str | None) -> None:
        """This replica checks the monitor from now on, building on ``stored`` (what the
        previous owner wrote last, ``stored_check`` its ``lastCheck.time`` as the cluster
        holds it): its series are restored from it."""
        publication.elsewhere = False
        publication.status = stored
        publication.written_check = _check_time(stored)
        publication.written_phase = stored.phase
        publication.unwritten = None
        publication.rule_synced = 0.0  # compare the rule with the cluster's at once
        publication.last_success = (stored.last_check.time.timestamp()
                                    if stored.last_check is not None else None)
        if stored.last_check is not None:
            self.metrics.restore(*publication.key, model=model, status=stored,
                                 last_success=publication.last_success)

    async def publish(self, publication: Publication, outcome: CheckOutcome) -> bool:
        """Write one check's outputs; False when the monitor no longer exists."""
        status = outcome.status
        if outcome.spec is not None:
            status = await self._rules(publication, outcome.spec, status, outcome.now,
                                       outcome.generation)
            status = await self._notify(publication, outcome.spec, status, outcome)
            status = await self._retrain(publication, outcome.spec, status, outcome)
        status = with_history(status, outcome.now, outcome.previous)
        seconds = self.clock() - outcome.started
        if outcome.error is None:
            publication.last_success = outcome.started
        async with publication.write_lock:
            if not await self._patch(publication, status, outcome.error):
                return False
        log_check(publication.ref, outcome, status, seconds)
        self.metrics.observe(publication.ref.namespace, publication.ref.name,
                             model=outcome.model, status=status, seconds=seconds,
                             last_success=publication.last_success, error=outcome.error)
        return True

    async def write_held(self, publication: Publication) -> bool:
        """Write the status held for a monitor while the API server was unreachable, if
        any and if it answers now; False when the monitor no longer exists."""
        if publication.unwritten is None or not self.cluster.reachable:
            return True
        async with publication.write_lock:
            held = publication.unwritten
            if held is None or publication.retired or publication.elsewhere:
                return True
            return await self._patch(publication, *held)

    async def close(self) -> None:
        """At exit: record the latest deliveries, stop the lanes and pending Events."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._record_deliveries(), timeout=EXIT_WRITE_SECONDS)
        await self.outbox.close()
        for event in list(self._events):
            event.cancel()
        await asyncio.gather(*self._events, return_exceptions=True)
        self.api_pool.shutdown(wait=False, cancel_futures=True)

    async def _record_deliveries(self) -> None:
        """What the lanes delivered since each monitor's last status patch goes into its
        status (``notifications`` only), so that the next operator does not send it
        again."""
        for key, publication in list(self.publications.items()):
            if publication.elsewhere:
                continue
            states = self.outbox.states(key)
            if states is None or states == publication.status.notifications:
                continue
            body = {"notifications": [state.model_dump(by_alias=True, mode="json")
                                      for state in states]}
            try:
                await self._api(self.cluster.patch_status, publication.ref, body)
            except ApiException as exc:
                log.warning("cannot record the notifications of %s/%s: HTTP %s", *key,
                            exc.status)
            except ApiUnreachableError:
                return  # the outage was logged already; nothing more can be written

    async def _api(self, call: Callable[..., Result], *args: Any) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self.api_pool, call, *args)

    async def _rules(self, publication: Publication, spec: ModelMonitorSpec,
                     status: ModelMonitorStatus, now: datetime,
                     generation: int) -> ModelMonitorStatus:
        """Create, update or delete the PrometheusRule; report it as AlertRulesReady."""
        ref = publication.ref
        monitor = f"{ref.namespace}/{ref.name}"
        if not spec.alerting.prometheus_rule.enabled:
            if publication.applied_rule is not None or publication.rules_condition is None:
                try:
                    await self._api(self.cluster.delete_rule, ref.namespace, ref.name)
                    if publication.applied_rule is not None:
                        log.info("deleted the PrometheusRule of %s (alerting.prometheusRule"
                                 ".enabled is false)", monitor,
                                 extra=fields("rule", monitor=monitor, action="deleted"))
                    publication.applied_rule = None
                except ApiException:
                    publication.applied_rule = None
                except ApiUnreachableError:
                    pass  # deleted at a later check
            value = rules_disabled()
        else:
            rule = prometheus_rule(ref.namespace, ref.name, spec, uid=ref.uid,
                                   report_base_url=self.report_base_url)
            value = publication.rules_condition or rules_applied()
            resync = self.clock() - publication.rule_synced >= self.rules_resync_seconds
            if rule != publication.applied_rule or resync:
                try:
                    changed = await self._api(self.cluster.apply_rule, rule)
                    name = rule["metadata"]["name"]
                    alerts = sum(len(group.get("rules", []))
                                 for group in rule["spec"].get("groups", []))
                    if changed and rule == publication.applied_rule:
                        log.info("restored the PrometheusRule %s of %s, changed outside "
                                 "modelmon", name, monitor,
                                 extra=fields("rule", monitor=monitor, rule=name,
                                              action="restored", alerts=alerts))
                    elif changed:
                        log.info("wrote the PrometheusRule %s of %s (%d alerts)", name,
                                 monitor, alerts,
                                 extra=fields("rule", monitor=monitor, rule=name,
                                              action="applied", alerts=alerts))
                    publication.applied_rule = rule
                    publication.rule_synced = self.clock()
                    value = rules_applied()
                except RulesUnavailableError as exc:
                    value = rules_api_missing(str(exc))
                except RuleOwnedElsewhereError as exc:
                    value = rule_name_taken(str(exc))
                except ApiException as exc:
                    value = rules_apply_failed(exc.status, exc.reason)
                except ApiUnreachableError:
                    pass  # the rule is compared again at the next check
        previous = publication.rules_condition
        if (value.status == "False" and value.reason != "Disabled"
                and (previous is None or previous.reason != value.reason)):
            # Without the prometheus-operator CRDs everything else works: no warning.
            level = (logging.INFO if value.reason == "PrometheusRuleCRDMissing"
                     else logging.WARNING)
            log.log(level, "cannot write the PrometheusRule of %s: %s: %s", monitor,
                    value.reason, value.message,
                    extra=fields("rule", monitor=monitor, action="failed",
                                 reason=value.reason, message=value.message))
        publication.rules_condition = value
        conditions = merge_conditions(status.conditions, [value], now, generation)
        return status.model_copy(update={"conditions": conditions})

    async def _notify(self, publication: Publication, spec: ModelMonitorSpec,
                      status: ModelMonitorStatus, outcome: CheckOutcome) -> ModelMonitorStatus:
        """Queue notifications (delivered off this path); the notifiers' states as they
        stand go into this check's status."""
        findings = list(status.findings)
        failing = (failing_finding(spec, status, outcome.error)
                   if outcome.error is not None else None)
        if failing is not None:
            findings.append(failing)
        namespace = publication.ref.namespace
        states = self.outbox.submit(
            publication.key, spec.alerting, findings, outcome.previous.notifications,
            Context(namespace, publication.ref.name, spec.model.name, spec.model.version,
                    status.phase, outcome.interval, drift_columns(spec), self.policy,
                    report_url(self.report_base_url, namespace, publication.ref.name)),
            self.cluster.resolver(namespace, self.policy.use_label), outcome.now)
        return status.model_copy(update={"notifications": states})

    def _notification_failed(self, key: tuple[str, str], error: str) -> None:
        """A notifier's delivery started failing: one Event per run of failures."""
        publication = self.publications.get(key)
        if publication is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._api(self.cluster.event, publication.ref, "Warning", "NotificationFailed",
                      error))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _retrain(self, publication: Publication, spec: ModelMonitorSpec,
                       status: ModelMonitorStatus, outcome: CheckOutcome
                       ) -> ModelMonitorStatus:
        """The retraining hook: refresh the last Job's outcome, start a new one when due."""
        if spec.retraining is None:
            return status.model_copy(update={"retraining": None})
        ref = publication.ref
        now = outcome.now
        before = outcome.previous.retraining
        if before is not None and before.last_job and before.outcome == "Running":
            last = before.last_job
            try:
                before = retraining.refresh(before, await self._api(
                    self.cluster.read_job, ref.namespace, last))
            except ApiException as exc:
                log.warning("cannot read Job %s: HTTP %s", last, exc.status)
            except ApiUnreachableError:
                pass  # read again at the next check
        decision = retraining.plan(spec.retraining, status.findings, before, now,
                                   checked=outcome.error is None)
        result = decision.status
        if decision.start:
            body = retraining.job(spec.retraining, ref.namespace, ref.name, ref.uid,
                                  before.last_job if before is not None else None)
            name = body["metadata"]["name"]
            try:
                await self._api(self.cluster.create_job, body)
                result = retraining.started(result, name, now)
                await self._api(self.cluster.event, ref, "Normal", "RetrainingStarted",
                                f"created Job {name}")
            except ApiException as exc:
                if exc.status == 409:  # created before a crash that kept it from the status
                    try:
                        found = await self._api(self.cluster.read_job, ref.namespace, name)
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

    async def _rebase(self, publication: Publication) -> None:
        """Build on the status in the cluster from now on (another writer's)."""
        try:
            fresh = await self._api(self.cluster.read_status, publication.ref)
            stored = ModelMonitorStatus.model_validate(fresh or {})
        except (ApiException, ApiUnreachableError, ValidationError):
            return
        publication.status = stored
        publication.written_check = raw_check_time(fresh)
        publication.written_phase = stored.phase

    async def _patch(self, publication: Publication, status: ModelMonitorStatus,
                     error: str | None) -> bool:
        """Patch the status (one request) and post Events on changes; False when the
        monitor no longer exists. While the API server is unreachable the status is held
        (the latest one per monitor) and written when it answers again. Called under the
        monitor's write lock."""
        # The next check builds on this status whether or not it reaches the cluster, so
        # that no history entry is lost to an outage.
        # The notifiers' states as they stand now, with the outcome of every delivery
        # attempt made since the last patch.
        delivery = self.outbox.states(publication.key)
        if delivery is not None:
            status = status.model_copy(update={"notifications": delivery})
        publication.status = status
        share_field_sets(status)  # kept until the next check: half the memory
        if not self.cluster.reachable:
            publication.unwritten = (status, error)
            return True
        try:
            if self.guarded:
                await self._api(self.cluster.replace_status_if, publication.ref,
                                status_body(status, nulls=False), publication.written_check)
            else:
                await self._api(self.cluster.patch_status, publication.ref,
                                status_body(status))
        except ApiUnreachableError:
            publication.unwritten = (status, error)
            return True
        except StatusChangedError:
            publication.unwritten = None
            monitor = "/".join(publication.key)
            log.warning("did not write the status of %s: another replica wrote it since "
                        "this one last did (this check is dropped; the next builds on "
                        "theirs)", monitor,
                        extra=fields("handover", monitor=monitor, action="dropped",
                                     reason="StatusChanged"))
            await self._rebase(publication)
            return True
        except ApiException as exc:
            publication.unwritten = None
            if exc.status == 404:
                return False
            monitor = "/".join(publication.key)
            fix = ("grant the operator's service account patch on modelmonitors/status"
                   if exc.status in (401, 403) else
                   "see the API server's answer; the next check writes the status again")
            log.warning("cannot patch the status of %s: HTTP %s %s (fix: %s)", monitor,
                        exc.status, exc.reason, fix,
                        extra=fields("status", monitor=monitor, reason=f"HTTP{exc.status}",
                                     message=str(exc.reason), fix=fix))
            return True
        publication.unwritten = None
        publication.written_check = _check_time(status)
        ready = status.condition("Ready")
        if status.phase != publication.written_phase:
            kind = "Warning" if status.phase in PROBLEM_PHASES else "Normal"
            if error is not None:
                # A check that did not run: its error, not the findings it kept.
                summary = f"{error}: {ready.message if ready is not None else error}"
            else:
                summary = capped_lines([finding.message for finding in status.findings], 3)
            await self._api(self.cluster.event, publication.ref, kind, status.phase,
                            f"phase {publication.written_phase} -> {status.phase}"
                            + (f": {summary}" if summary else ""))
            publication.written_phase = status.phase
        if error is not None and error != publication.last_error:
            await self._api(self.cluster.event, publication.ref, "Warning", error,
                            ready.message if ready is not None else error)
        publication.last_error = error
        return True


def raw_check_time(status: Mapping[str, Any] | None) -> str | None:
    """``lastCheck.time`` of a stored status exactly as the cluster holds it (the status
    write's precondition compares the text)."""
    last = (status or {}).get("lastCheck")
    time = last.get("time") if isinstance(last, Mapping) else None
    return time if isinstance(time, str) else None


def _check_time(status: ModelMonitorStatus) -> str | None:
    """``lastCheck.time`` as the status body writes it."""
    if status.last_check is None:
        return None
    return str(status.last_check.model_dump(by_alias=True, mode="json")["time"])


def _api_message(exc: ApiException) -> str:
    """The apiserver's message from an error response (no request data in it)."""
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))[:300]
    except ValueError:
        return ""
