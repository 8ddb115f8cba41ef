"""Verdicts for the tests of stats and sources, which return numbers only: evaluation says
whether a column drifted (``evaluation.column_drifted``) and which operational figures are
out of bounds (``evaluation.range_findings``); these helpers ask it the way a check does."""

from __future__ import annotations

from dataclasses import dataclass

from modelmon.api.v1alpha1 import Finding, Source
from modelmon.evaluation import column_drifted, operational_bounds, range_findings
from modelmon.sources.prometheus import OperationalFigure
from modelmon.stats.drift import AnyMethod, DriftResult, methods


def method_named(name: str) -> AnyMethod:
    """A registered method of that name (either kind: both share direction and default)."""
    return next(m for m in methods() if m.name == name)


@dataclass(frozen=True)
class Judged:
    """A drift score with the threshold it was held against and the verdict."""

    method: str
    statistic: float | None
    p_value: float | None
    message: str | None
    threshold: float
    drifted: bool


def judged(result: DriftResult, threshold: float | None = None) -> Judged:
    """``result`` judged against ``threshold`` (default: its method's)."""
    method = method_named(result.method)
    limit = method.default_threshold if threshold is None else threshold
    return Judged(result.method, result.statistic, result.p_value, result.message, limit,
                  column_drifted(result, method.kind, limit))


def drifted(result: DriftResult, threshold: float | None = None) -> bool:
    """Whether ``result`` drifted against ``threshold`` (default: its method's)."""
    return judged(result, threshold).drifted


def out_of_bounds(source: Source, figures: list[OperationalFigure]) -> dict[str, Finding]:
    """The findings on ``figures`` by query name, held against the source's query bounds."""
    assert source.prometheus is not None
    rows = operational_bounds(source.prometheus.queries)
    found = range_findings(rows, {f.name: f.value for f in figures})
    return {f.name.removeprefix("operational."): f for f in found}
