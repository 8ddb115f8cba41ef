"""The retraining hook: a Job owned by the monitor when findings persist.

Part of ``outputs`` (last stop on the data line). ``refresh`` reads the last Job's outcome
into the retraining status, ``plan`` decides from the spec, the check's findings and that
status whether to start a Job, ``job`` builds it from the user's JobTemplateSpec under a
name fixed in advance, and ``started`` or ``adopt`` record it. The worker makes the API
calls.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelmon.api.names import monitor_label
from modelmon.api.v1alpha1 import (
    API_VERSION,
    KIND,
    Finding,
    RetrainingSpec,
    RetrainingStatus,
    parse_duration,
)
from modelmon.evaluation import LABELS_MISSING

MONITOR_LABEL = "modelmon.io/monitor"


def condition_holds(spec: RetrainingSpec, findings: Sequence[Finding]) -> bool:
    """Drift (dataset or prediction) and/or performance findings, as the spec asks; labels
    that are late say nothing of the model, so their finding never retrains."""
    names = [f.name for f in findings]
    drift = any(n in ("drift.dataset", "drift.prediction") for n in names)
    perf = any(n.startswith("performance.") and n != f"performance.{LABELS_MISSING}"
               for n in names)
    return (spec.when.drift and drift) or (spec.when.performance and perf)


@dataclass(frozen=True)
class RetrainingPlan:
    status: RetrainingStatus
    start: bool


def plan(spec: RetrainingSpec, findings: Sequence[Finding], previous: RetrainingStatus | None,
         now: datetime, checked: bool) -> RetrainingPlan:
    """Count consecutive checks and decide whether a Job is due.

    ``checked`` is False for a check that could not run: it neither counts nor resets.
    ``previous.outcome`` must already be refreshed from the last Job.
    """
    prev = previous or RetrainingStatus()
    if not checked:
        return RetrainingPlan(prev, False)
    count = prev.consecutive_checks + 1 if condition_holds(spec, findings) else 0
    status = prev.model_copy(update={"consecutive_checks": count, "message": None})
    if count < spec.when.consecutive_checks:
        return RetrainingPlan(status, False)
    if prev.outcome == "Running":
        return RetrainingPlan(status.model_copy(update={
            "message": f"retraining Job {prev.last_job} is still running"}), False)
    cooldown = parse_duration(spec.cooldown)
    if prev.last_started is not None and now - prev.last_started < cooldown:
        until = (prev.last_started + cooldown).isoformat()
        return RetrainingPlan(status.model_copy(update={
            "message": f"in cooldown until {until} (spec.retraining.cooldown)"}), False)
    return RetrainingPlan(status, True)


def job_name(monitor: str, uid: str, previous: str | None) -> str:
    """The name of the monitor's next Job, fixed by the monitor's uid and the name of the
    Job before it: an operator that created a Job and crashed before recording it in the
    status computes the same name again, and the create finds that Job (409) instead of
    starting a second one. Within 63 characters (it becomes the pods' job-name label)."""
    digest = hashlib.sha256(f"{uid}/{previous or ''}".encode()).hexdigest()[:10]
    suffix = f"-retrain-{digest}"
    return monitor[: 63 - len(suffix)].rstrip("-.") + suffix


def job(spec: RetrainingSpec, namespace: str, monitor: str, uid: str,
        previous: str | None) -> dict[str, Any]:
    """The Job, from the template, owned by the monitor; ``previous``: the last Job's
    name (status.retraining.lastJob)."""
    template = spec.job_template
    meta = copy.deepcopy(template.metadata or {})
    labels = {**(meta.get("labels") or {}), MONITOR_LABEL: monitor_label(monitor)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(monitor, uid, previous),
            "namespace": namespace,
            "labels": labels,
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": monitor,
                                 "uid": uid, "controller": True,
                                 "blockOwnerDeletion": False}],
        },
        "spec": copy.deepcopy(template.spec),
    }


def outcome(job_status: Mapping[str, Any] | None) -> str | None:
    """Running, Succeeded or Failed from a Job's status (None: the Job is gone)."""
    if job_status is None:
        return None
    for condition in job_status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if condition.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"


def refresh(previous: RetrainingStatus, found: Mapping[str, Any] | None) -> RetrainingStatus:
    """The status with the outcome of the last Job as read now (``found``: the Job, None
    when it no longer exists). Only a Running Job can change."""
    if previous.outcome != "Running":
        return previous
    job_status = None if found is None else (found.get("status") or {})
    return previous.model_copy(update={"outcome": outcome(job_status)})


def started(status: RetrainingStatus, name: str, now: datetime) -> RetrainingStatus:
    """A Job was created now."""
    return status.model_copy(update={"last_job": name, "last_started": now,
                                     "outcome": "Running", "consecutive_checks": 0,
                                     "message": None})


def adopt(status: RetrainingStatus, found: Mapping[str, Any] | None, uid: str,
          now: datetime) -> RetrainingStatus:
    """The Job to create already exists (a create before a crash): record it, not a new
    one. ``found`` is that Job as read back (None: deleted meanwhile)."""
    if found is None:
        return status.model_copy(update={
            "message": "the retraining Job existed and was deleted meanwhile; retrying "
                       "next check"})
    meta = found.get("metadata") or {}
    name = str(meta.get("name"))
    if not any(o.get("uid") == uid for o in meta.get("ownerReferences") or []):
        return status.model_copy(update={
            "message": f"a Job named {name} exists and is not this monitor's"})
    created = meta.get("creationTimestamp")
    when = (created if isinstance(created, datetime)
            else datetime.fromisoformat(str(created)) if created else now)
    return status.model_copy(update={
        "last_job": name, "last_started": when,
        "outcome": outcome(found.get("status") or {}), "consecutive_checks": 0,
        "message": None})
