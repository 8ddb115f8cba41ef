"""Evaluation: figures and thresholds become findings, a phase and conditions.

Fourth stop on the data line. Nothing here computes statistics or performs I/O: it reads
the figures a check produced and the bounds of the spec, and decides what they mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modelmon.api.messages import cap_text, capped
from modelmon.api.v1alpha1 import (
    Condition,
    ConditionStatus,
    DataQualityStatus,
    DriftStatus,
    FeatureDriftResult,
    Finding,
    ModelMonitorSpec,
    Phase,
    Severity,
)

SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}
CONDITION_TYPES = (
    "Ready", "SourceAvailable", "DataDrift", "PerformanceDegraded", "DataQualityDegraded",
    "OperationalDegraded", "AlertRulesReady")


def at_least(severity: str, floor: str) -> bool:
    """Whether ``severity`` is at or above ``floor``."""
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[floor]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _drift_finding(name: str, what: str, r: FeatureDriftResult, severity: Severity) -> Finding:
    if r.p_value is not None:
        value, text = r.p_value, f"p-value {_fmt(r.p_value)} < {_fmt(r.threshold)}"
    else:
        value, text = r.statistic or 0.0, f"{_fmt(r.statistic or 0.0)} >= {_fmt(r.threshold)}"
    return Finding(name=name, severity=severity, value=value, bound=r.threshold,
                   message=f"{what} drifted ({r.method}: {text})")


def drift_findings(spec: ModelMonitorSpec, drift: DriftStatus) -> list[Finding]:
    """Dataset, prediction, target and opted-in per-feature drift."""
    out: list[Finding] = []
    severity = spec.drift.severity
    if drift.dataset_drift:
        out.append(Finding(
            name="drift.dataset", severity=severity, value=drift.share,
            bound=spec.drift.dataset_drift_share,
            message=f"{len(drift.drifted)} of {len(drift.features)} features drifted "
                    f"(share {_fmt(drift.share)} >= {_fmt(spec.drift.dataset_drift_share)}): "
                    f"{capped(drift.drifted)}"))
    for role, result in (("prediction", drift.prediction), ("target", drift.target)):
        if result is not None and result.drifted:
            out.append(_drift_finding(f"drift.{role}", f"{role} column {result.name!r}",
                                      result, severity))
    for f in drift.features:
        override = spec.drift.features.get(f.name)
        if f.drifted and override is not None and override.severity is not None:
            out.append(_drift_finding(f"drift.feature.{f.name}", f"feature {f.name!r}", f,
                                      override.severity))
    return out


def performance_findings(spec: ModelMonitorSpec, values: dict[str, float]) -> list[Finding]:
    """Metrics outside their bounds."""
    out: list[Finding] = []
    for m in spec.performance.metrics:
        value = values.get(m.name)
        if value is None:
            continue
        if m.min is not None and value < m.min:
            out.append(Finding(name=f"performance.{m.name}", severity=m.severity, value=value,
                               bound=m.min,
                               message=f"{m.name} {_fmt(value)} is below {_fmt(m.min)}"))
        elif m.max is not None and value > m.max:
            out.append(Finding(name=f"performance.{m.name}", severity=m.severity, value=value,
                               bound=m.max,
                               message=f"{m.name} {_fmt(value)} is above {_fmt(m.max)}"))
    return out


def quality_findings(spec: ModelMonitorSpec, dq: DataQualityStatus) -> list[Finding]:
    """Columns over their data-quality bounds, missing columns and type changes."""
    out: list[Finding] = []
    bounds = spec.data_quality
    checks = (
        ("missingFraction", bounds.missing_fraction, "missing_fraction", "of rows missing"),
        ("outlierFraction", bounds.outlier_fraction, "outlier_fraction",
         "of rows outside the reference's IQR fences"),
        ("outOfRangeFraction", bounds.out_of_range_fraction, "out_of_range_fraction",
         "of rows outside the reference's range"),
    )
    for col in dq.columns:
        for check, bound, attr, what in checks:
            value = getattr(col, attr)
            if bound is not None and value is not None and value > bound.max:
                out.append(Finding(
                    name=f"dataQuality.{check}.{col.name}", severity=bound.severity,
                    value=value, bound=bound.max,
                    message=f"{col.name}: {value:.2%} {what} (max {bound.max:.2%})"))
        nc = bounds.new_categories
        if nc is not None and col.new_categories is not None and col.new_categories > nc.max:
            out.append(Finding(
                name=f"dataQuality.newCategories.{col.name}", severity=nc.severity,
                value=float(col.new_categories), bound=float(nc.max),
                message=f"{col.name}: {col.new_categories} categories unseen in the reference "
                        f"(max {nc.max})"))
    # One finding per column, like the series and the rule's alerts on them.
    for name in dq.missing_columns:
        out.append(Finding(
            name=f"dataQuality.missingColumns.{name}", severity="critical", value=1.0,
            bound=0.0,
            message=f"{name}: monitored column missing from the current window; restore it "
                    "upstream, or list it in spec.columns.exclude"))
    for t in dq.type_changes:
        out.append(Finding(
            name=f"dataQuality.typeChanges.{t.name}", severity="warning", value=1.0,
            bound=0.0,
            message=f"{t.name}: {t.reference} in the reference, {t.current} in the current "
                    "window; restore its type upstream, or list it in spec.columns.exclude"))
    return out


class Figure(Protocol):
    """An operational figure (sources.prometheus.OperationalFigure)."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def out_of_bounds(self) -> bool: ...


def operational_findings(figures: Sequence[Figure]) -> list[Finding]:
    """Operational figures outside their bounds."""
    out: list[Finding] = []
    for f in figures:
        if not f.out_of_bounds or f.value is None:
            continue
        below = f.min is not None and f.value < f.min
        bound = f.min if below else f.max
        assert bound is not None
        word = "below" if below else "above"
        out.append(Finding(name=f"operational.{f.name}", severity=f.severity, value=f.value,
                           bound=bound, message=f"{f.name} {_fmt(f.value)} is {word} "
                                                f"{_fmt(bound)}"))
    return out


def phase_of(findings: Sequence[Finding]) -> Phase:
    """Degraded beats Drifting beats Healthy."""
    if any(not f.name.startswith("drift.") for f in findings):
        return "Degraded"
    if findings:
        return "Drifting"
    return "Healthy"


@dataclass(frozen=True, slots=True)
class ConditionValue:
    """A condition without its transition time."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def merge_conditions(previous: Iterable[Condition], values: Iterable[ConditionValue],
                     now: datetime, generation: int | None) -> list[Condition]:
    """New conditions, keeping lastTransitionTime where the status did not change; every
    message is capped (``api.messages.cap_text``).

    Conditions of types not among ``values`` are carried over unchanged.
    """
    before = {c.type: c for c in previous}
    out: list[Condition] = []
    seen: set[str] = set()
    for v in values:
        seen.add(v.type)
        old = before.get(v.type)
        since = old.last_transition_time if old is not None and old.status == v.status else now
        out.append(Condition(type=v.type, status=v.status, reason=v.reason,
                             message=cap_text(v.message),
                             last_transition_time=since, observed_generation=generation))
    out.extend(c for t, c in before.items() if t not in seen)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(out, key=lambda c: order.get(c.type, len(order)))
