"""The status at a glance: the display-ready fields ``kubectl get`` shows.

Part of ``evaluation`` (fourth stop on the data line), applied last to every status a check
builds (``judge``, ``failed_status``): it reads the phase, findings, drift and conditions
already decided and words them for the CRD's printer columns ("5/9" drifted, a count of
findings, the worst finding, why the phase is not Healthy). It decides nothing new.
"""

from __future__ import annotations

from modelmon.api.v1alpha1 import Finding, ModelMonitorStatus, StatusSummary

#: Severities, most severe first.
SEVERITY_ORDER = ("critical", "warning")

#: Problem conditions in the order their type explains a phase (``reason``): the ones
#: that make it Degraded first, then DataDrift (Drifting).
PROBLEM_CONDITIONS = (
    "PerformanceDegraded", "EstimatedPerformanceDegraded", "ConfidenceDegraded",
    "DataQualityDegraded", "OperationalDegraded", "DataDrift")


def worst_finding(findings: list[Finding]) -> Finding | None:
    """The first finding of the highest severity, or None."""
    for severity in SEVERITY_ORDER:
        found = next((f for f in findings if f.severity == severity), None)
        if found is not None:
            return found
    return findings[0] if findings else None


def phase_reason(status: ModelMonitorStatus) -> str | None:
    """Why the phase is not Healthy, in one CamelCase word; None when it is."""
    if status.phase == "Healthy":
        return None
    ready = status.condition("Ready")
    if ready is not None and ready.status != "True":
        return ready.reason
    for type_ in PROBLEM_CONDITIONS:
        condition = status.condition(type_)
        if condition is not None and condition.status == "True":
            return type_
    return None if ready is not None else "AwaitingFirstCheck"


def summary(status: ModelMonitorStatus) -> StatusSummary:
    """The display-ready summary of a status."""
    drift = status.drift
    drifted = "-" if drift is None else f"{len(drift.drifted)}/{len(drift.features)}"
    worst = worst_finding(status.findings)
    return StatusSummary(
        drifted=drifted, findings=len(status.findings),
        worst=None if worst is None else f"{worst.severity}: {worst.name}",
        reason=phase_reason(status))


def summarized(status: ModelMonitorStatus) -> ModelMonitorStatus:
    """The status with its summary brought up to date."""
    return status.model_copy(update={"summary": summary(status)})


def findings_by_severity(findings: list[Finding]) -> dict[str, int]:
    """How many findings of each severity (every severity, zero included)."""
    return {severity: sum(1 for f in findings if f.severity == severity)
            for severity in SEVERITY_ORDER}
