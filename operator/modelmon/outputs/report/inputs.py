"""What a report is made of: one monitor's last check, and optionally its past checks.

Part of ``outputs.report``. A ``MonitorReport`` holds what a check computed (its status and
the shape of each column, ``check.run_check_with_shapes``) and the spec it ran; a
``HistoryPoint`` is the little of one past check that the trend charts draw, so that a
caller keeping a history (the operator) holds a few numbers per check, not statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from modelmon.api.v1alpha1 import (
    CheckSummary,
    ModelMonitorSpec,
    ModelMonitorStatus,
    Phase,
)
from modelmon.stats.dataset import ColumnShape


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One past check as the trend charts draw it."""

    time: datetime
    phase: Phase
    drift_share: float | None = None
    findings: int = 0
    critical: int = 0
    """Of ``findings``, those of severity critical (0 when unknown)."""
    current_rows: int | None = None
    drifted: tuple[str, ...] | None = None
    """Features that drifted; None when not known (a summary from status.history)."""
    features: tuple[str, ...] = ()
    """Features scored, drifted or not."""
    performance: Mapping[str, float] = field(default_factory=dict)
    estimated: Mapping[str, tuple[float, float | None, float | None]] = field(
        default_factory=dict)
    """Estimated metrics: (value, band's lower end, band's upper end)."""

    @classmethod
    def from_status(cls, status: ModelMonitorStatus) -> HistoryPoint | None:
        """The point of a check that ran to the end (None before any did)."""
        last = status.last_check
        if last is None:
            return None
        drift = status.drift
        return cls(
            time=last.time, phase=status.phase,
            drift_share=drift.share if drift is not None else None,
            findings=len(status.findings),
            critical=sum(f.severity == "critical" for f in status.findings),
            current_rows=last.current_rows,
            drifted=tuple(drift.drifted) if drift is not None else None,
            features=tuple(f.name for f in drift.features) if drift is not None else (),
            performance=dict(status.performance),
            estimated={k: (v.value, v.lower, v.upper)
                       for k, v in status.estimated_performance.items()})

    @classmethod
    def from_summary(cls, summary: CheckSummary) -> HistoryPoint:
        """A line of status.history (phase, drift share, findings and rows only)."""
        return cls(time=summary.time, phase=summary.phase, drift_share=summary.drift_share,
                   findings=summary.findings, current_rows=summary.current_rows)


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """One monitor's report: its spec, the status of its last check, the shape of each
    column of that check (empty: no plots, as after a failed check), and its history
    (oldest first; empty: no trend charts)."""

    name: str
    spec: ModelMonitorSpec
    status: ModelMonitorStatus
    shapes: Mapping[str, ColumnShape] = field(default_factory=dict)
    history: Sequence[HistoryPoint] = ()
    namespace: str | None = None
