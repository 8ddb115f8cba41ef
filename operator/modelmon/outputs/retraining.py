"""The retraining hook: a Job owned by the monitor when findings persist.

Part of ``outputs`` (last stop on the data line). ``plan`` decides from the spec, the check's
findings and the previous retraining status whether to start a Job; ``job`` builds it from
the user's JobTemplateSpec. The worker makes the API calls.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelmon.api.v1alpha1 import (
    API_VERSION,
    KIND,
    Finding,
    RetrainingSpec,
    RetrainingStatus,
    parse_duration,
)

MONITOR_LABEL = "modelmon.io/monitor"


def condition_holds(spec: RetrainingSpec, findings: Sequence[Finding]) -> bool:
    """Drift (dataset or prediction) and/or performance findings, as the spec asks."""
    names = [f.name for f in findings]
    drift = any(n in ("drift.dataset", "drift.prediction") for n in names)
    perf = any(n.startswith("performance.") for n in names)
    return (spec.when.drift and drift) or (spec.when.performance and perf)


@dataclass(frozen=True)
class Plan:
    status: RetrainingStatus
    start: bool


def plan(spec: RetrainingSpec, findings: Sequence[Finding], previous: RetrainingStatus | None,
         now: datetime, checked: bool) -> Plan:
    """Count consecutive checks and decide whether a Job is due.

    ``checked`` is False for a check that could not run: it neither counts nor resets.
    ``previous.outcome`` must already be refreshed from the last Job.
    """
    prev = previous or RetrainingStatus()
    if not checked:
        return Plan(prev, False)
    count = prev.consecutive_checks + 1 if condition_holds(spec, findings) else 0
    status = prev.model_copy(update={"consecutive_checks": count, "message": None})
    if count < spec.when.consecutive_checks:
        return Plan(status, False)
    if prev.outcome == "Running":
        return Plan(status.model_copy(update={
            "message": f"retraining Job {prev.last_job} is still running"}), False)
    cooldown = parse_duration(spec.cooldown)
    if prev.last_started is not None and now - prev.last_started < cooldown:
        until = (prev.last_started + cooldown).isoformat()
        return Plan(status.model_copy(update={
            "message": f"in cooldown until {until} (spec.retraining.cooldown)"}), False)
    return Plan(status, True)


def job_name(monitor: str, now: datetime) -> str:
    """A Job name unique per start: the monitor's name and the time, within 63 characters."""
    stamp = now.strftime("%Y%m%d%H%M%S")
    return f"{monitor[: 63 - len(stamp) - 9].rstrip('-.')}-retrain-{stamp}"


def job(spec: RetrainingSpec, namespace: str, monitor: str, uid: str, now: datetime
        ) -> dict[str, Any]:
    """The Job, from the template, owned by the monitor."""
    template = spec.job_template
    meta = copy.deepcopy(template.metadata or {})
    labels = {**(meta.get("labels") or {}), MONITOR_LABEL: monitor[:63]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(monitor, now),
            "namespace": namespace,
            "labels": labels,
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": monitor,
                                 "uid": uid, "controller": True,
                                 "blockOwnerDeletion": False}],
        },
        "spec": copy.deepcopy(template.spec),
    }


def outcome(job_status: dict[str, Any] | None) -> str | None:
    """Running, Succeeded or Failed from a Job's status (None: the Job is gone)."""
    if job_status is None:
        return None
    for c in job_status.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if c.get("status") == "True" and c.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"
