"""The bounds table: every bound a spec sets, one row each, built once per spec.

Part of ``evaluation`` (fourth stop on the data line). A row names the figure it judges,
the spec field it came from, the metric series (and labels) that carry that figure, the
limits that make a finding, its severity, and the alert and condition that report it.
``evaluation.judge`` turns the figures of a check into findings from these rows and
``outputs.rules`` renders one alert per row, so a new kind of bound is one more row here.

Column drift is the one figure whose limit depends on the data: a column's test or
distance is held against its threshold (``column_threshold``: the column's override, else
for a distance with ``spec.drift.learnThreshold`` the threshold learned from the
reference, else ``spec.drift.threshold``, else the method's default) and the verdict,
exported as ``modelmon_drift_detected``, is what the drift rows bound.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from modelmon.api.v1alpha1 import ModelMonitorSpec, PrometheusQuery, Severity, parse_duration
from modelmon.stats.dataset import ChunkDistances

Family = Literal["drift", "performance", "estimatedPerformance", "confidence", "dataQuality",
                 "operational", "check"]
Comparison = Literal["<", ">", ">=", "=="]

_COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    "<": operator.lt, ">": operator.gt, ">=": operator.ge, "==": operator.eq}

#: A threshold is learned from at least this many reference chunks: below ten, the spread
#: of their distances is too uncertain for a margin of several standard deviations.
MIN_CHUNKS = 10

ThresholdSource = Literal["default", "spec", "learned"]

#: A monitor is stale when it has had no successful check for this many intervals.
STALE_INTERVALS = 3
#: The staleness bound looks back at least this far, so that a scrape gap alone never
#: crosses it.
STALE_MIN_SECONDS = 60

#: The subject of the row that bounds how long labels may be missing
#: (``spec.performance.maxLabelDelay``); its figure is the seconds without labels.
LABELS_MISSING = "labelsMissing"

#: Confidence bounds: spec attribute, the ``figure`` label and finding subject, and what
#: the figure is, for alerts and findings.
CONFIDENCE_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("mean_confidence", "meanConfidence", "The mean top class probability"),
    ("low_confidence_share", "lowConfidenceShare", "The share of low-confidence rows"),
)

#: Data-quality bounds: spec attribute, the ``check`` label and finding name, and how a
#: finding describes the figure.
QUALITY_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("missing_fraction", "missingFraction", "of rows missing"),
    ("outlier_fraction", "outlierFraction", "of rows outside the reference's IQR fences"),
    ("out_of_range_fraction", "outOfRangeFraction", "of rows outside the reference's range"),
    ("new_categories", "newCategories", "categories unseen in the reference"),
)
#: Schema changes of monitored columns: ``check`` label, severity, how the alert says it.
SCHEMA_CHECKS: tuple[tuple[str, Severity, str], ...] = (
    ("missingColumns", "critical", "is missing from"),
    ("typeChanges", "warning", "changed kind in"),
)


@dataclass(frozen=True, slots=True)
class Limit:
    """One side of a bound: a figure ``comparison`` ``value`` is a finding."""

    comparison: Comparison
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    """Labels, besides the row's ``match``, of the series this side compares (an estimated
    metric's ``min`` compares the upper end of its band, ``max`` the lower end)."""

    def crossed(self, figure: float) -> bool:
        return _COMPARE[self.comparison](figure, self.value)


@dataclass(frozen=True, slots=True)
class Bound:
    """One row of the table."""

    name: str
    """The finding's name; rows judged per column or feature add ``.<column>``."""
    family: Family
    subject: str
    """What the row bounds within its family: a metric, query, check or role."""
    field: str
    """The spec field the bound came from."""
    series: str
    """The metric family that carries the figure."""
    match: tuple[tuple[str, str], ...]
    """Labels (besides namespace and monitor) that select the row's series."""
    per: tuple[str, ...]
    """Labels that tell the row's series apart (a column, a feature)."""
    limits: tuple[Limit, ...]
    """A finding when any is crossed."""
    severity: Severity
    alert: str
    condition: str
    """The condition type that reports the row's findings."""
    summary: str
    description: str
    """Alert annotations; ``{who}`` becomes ``namespace/monitor (model)``, ``{namespace}``
    and ``{monitor}`` their names."""
    age: bool = False
    """The figure is the time since the series' value (a Unix time), not the value."""

    def crossed(self, figure: float) -> Limit | None:
        """The first limit ``figure`` crosses, or None."""
        return next((lim for lim in self.limits if lim.crossed(figure)), None)


def _range(low: float | None, high: float | None) -> tuple[Limit, ...]:
    sides: tuple[tuple[Comparison, float | None], ...] = (("<", low), (">", high))
    return tuple(Limit(comparison, value) for comparison, value in sides if value is not None)


def _range_text(what: str, low: float | None, high: float | None) -> tuple[str, str]:
    said = " and ".join(f"{w} {b:g}" for w, b in (("at least", low), ("at most", high))
                       if b is not None)
    return (f"{what} of {{who}} is out of bounds",
            f"{what} of {{who}} is {{{{ $value | printf \"%.4g\" }}}}; it should be {said}.")


def table(spec: ModelMonitorSpec) -> list[Bound]:
    """Every bound of ``spec``, in the order the rule lists its alerts."""
    drift = spec.drift
    rows = [Bound(
        "drift.dataset", "drift", "dataset", "spec.drift.datasetDriftShare",
        "modelmon_dataset_drift_share", (), (), (Limit(">=", drift.dataset_drift_share),),
        drift.severity, "ModelDataDrift", "DataDrift", "Data drift in {who}",
        f"{{{{ $value | humanizePercentage }}}} of the features of {{who}} drifted "
        f"(alert at {drift.dataset_drift_share:.0%}).")]
    for role, title, what in (("prediction", "Prediction", "The predictions"),
                              ("target", "Target", "The ground truth")):
        rows.append(Bound(
            f"drift.{role}", "drift", role, "spec.drift.severity", "modelmon_drift_detected",
            (("role", role),), ("feature",), (Limit("==", 1),), drift.severity,
            f"Model{title}Drift", "DataDrift", f"{title} drift in {{who}}",
            f"{what} of {{who}} ({{{{ $labels.feature }}}}) drifted from the reference."))
    # Features whose spec gives a severity of their own are findings and alerts by
    # themselves; the others count towards the dataset's share.
    for feature, override in sorted(drift.features.items()):
        if override.severity is None:
            continue
        rows.append(Bound(
            f"drift.feature.{feature}", "drift", feature,
            f"spec.drift.features.{feature}.severity", "modelmon_drift_detected",
            (("role", "feature"), ("feature", feature)), ("feature",), (Limit("==", 1),),
            override.severity, "ModelFeatureDrift", "DataDrift",
            f"Feature {feature} of {{who}} drifted",
            f"Feature {feature} of {{who}} drifted from the reference."))
    for index, metric in enumerate(spec.performance.metrics):
        rows.append(Bound(
            f"performance.{metric.name}", "performance", metric.name,
            f"spec.performance.metrics[{index}]", "modelmon_performance_metric",
            (("metric", metric.name),), ("metric",), _range(metric.min, metric.max),
            metric.severity, "ModelPerformanceDegraded", "PerformanceDegraded",
            *_range_text(metric.name, metric.min, metric.max)))
    if spec.performance.max_label_delay is not None:
        delay = parse_duration(spec.performance.max_label_delay).total_seconds()
        rows.append(Bound(
            f"performance.{LABELS_MISSING}", "performance", LABELS_MISSING,
            "spec.performance.maxLabelDelay", "modelmon_labels_missing_seconds", (), (),
            (Limit(">", delay),), spec.performance.label_delay_severity, "ModelLabelsMissing",
            "PerformanceDegraded", "Labels of {who} are overdue",
            "The current window of {who} has had no labels (its target column) for "
            "{{ $value | humanizeDuration }}; performance is not checked while they are "
            f"missing (allowed: {spec.performance.max_label_delay})."))
    rows += estimated_bounds(spec)
    rows += confidence_bounds(spec)
    prometheus = spec.operational.source.prometheus if spec.operational is not None else None
    rows += operational_bounds(prometheus.queries if prometheus is not None else [])
    for attr, check, _ in QUALITY_CHECKS:
        bound = getattr(spec.data_quality, attr)
        if bound is None:
            continue
        rows.append(Bound(
            f"dataQuality.{check}", "dataQuality", check, f"spec.dataQuality.{check}.max",
            "modelmon_data_quality", (("check", check),), ("column", "check"),
            (Limit(">", float(bound.max)),), bound.severity, "ModelDataQualityDegraded",
            "DataQualityDegraded", f"Data quality ({check}) of {{who}} is out of bounds",
            f"Column {{{{ $labels.column }}}} of {{who}} has {check} "
            f"{{{{ $value | printf \"%.4g\" }}}} (max {bound.max:g})."))
    for check, severity, what in SCHEMA_CHECKS:
        rows.append(Bound(
            f"dataQuality.{check}", "dataQuality", check, "spec.current.source",
            "modelmon_data_quality", (("check", check),), ("column", "check"),
            (Limit(">", 0),), severity, "ModelDataQualityDegraded", "DataQualityDegraded",
            f"Data quality ({check}) of {{who}} is out of bounds",
            f"Column {{{{ $labels.column }}}} {what} the current window of {{who}}."))
    stale = int(parse_duration(spec.schedule.interval).total_seconds() * STALE_INTERVALS)
    # The alert waits `for` after its expression turns true, so the expression turns true
    # `for` earlier: the alert then fires when the last success is three intervals old (or
    # `for` plus a minute, if that is longer), not three intervals plus `for`.
    pending = int(parse_duration(spec.alerting.prometheus_rule.for_).total_seconds())
    rows += [
        Bound("check.stale", "check", "stale", "spec.schedule.interval",
              "modelmon_last_check_timestamp_seconds", (), (),
              (Limit(">", max(stale - pending, STALE_MIN_SECONDS)),), "warning",
              "ModelMonitorStale", "Ready", "Monitor {who} has no recent successful check",
              f"No check of {{who}} succeeded in the last {STALE_INTERVALS} intervals "
              f"({stale}s); is the operator running and the data reachable?", age=True),
        Bound("check.failing", "check", "failing", "spec", "modelmon_monitor_phase",
              (("phase", "Failing"),), (), (Limit("==", 1),), "warning",
              "ModelMonitorCheckFailing", "Ready", "Checks of {who} are failing",
              "The checks of {who} fail; `kubectl describe modelmonitor -n {namespace} "
              "{monitor}` shows the reason."),
    ]
    return rows


def operational_bounds(queries: Sequence[PrometheusQuery]) -> list[Bound]:
    """The rows of the operational queries that set a ``min`` or ``max``."""
    return [Bound(
        f"operational.{query.name}", "operational", query.name,
        f"spec.operational.source.prometheus.queries[{i}]", "modelmon_operational_metric",
        (("name", query.name),), ("name",), _range(query.min, query.max), query.severity,
        "ModelOperationalDegraded", "OperationalDegraded",
        *_range_text(query.name, query.min, query.max))
        for i, query in enumerate(queries) if query.min is not None or query.max is not None]


def estimated_bounds(spec: ModelMonitorSpec) -> list[Bound]:
    """The rows of ``spec.performance.estimated.metrics``. A bound is breached only when the
    whole sampling band is past it: ``min`` compares the band's upper end (series label
    ``bound="upper"``), ``max`` its lower end (``bound="lower"``)."""
    rows: list[Bound] = []
    for index, metric in enumerate(spec.performance.estimated.metrics):
        sides: tuple[tuple[Comparison, float | None, str, str], ...] = (
            ("<", metric.min, "upper", "at least"), (">", metric.max, "lower", "at most"))
        limits = tuple(Limit(comparison, value, (("bound", end),))
                       for comparison, value, end, _ in sides if value is not None)
        said = " and ".join(f"{w} {v:g}" for _, v, _, w in sides if v is not None)
        rows.append(Bound(
            f"estimatedPerformance.{metric.name}", "estimatedPerformance", metric.name,
            f"spec.performance.estimated.metrics[{index}]",
            "modelmon_estimated_performance_metric", (("metric", metric.name),),
            ("metric", "bound"), limits, metric.severity, "ModelEstimatedPerformanceDegraded",
            "EstimatedPerformanceDegraded",
            f"Estimated {metric.name} of {{who}} is out of bounds beyond chance",
            f"The {{{{ $labels.bound }}}} end of the sampling band of the estimated "
            f"{metric.name} of {{who}} is {{{{ $value | printf \"%.4g\" }}}}: the whole band "
            f"is past the bound (it should be {said}); estimated without labels, assuming "
            "only the inputs shifted."))
    return rows


def confidence_bounds(spec: ModelMonitorSpec) -> list[Bound]:
    """The rows of ``spec.confidence``: one per bounded figure."""
    rows: list[Bound] = []
    for attr, figure, what in CONFIDENCE_FIGURES:
        bound = getattr(spec.confidence, attr)
        if bound is None:
            continue
        said = (f"{what} (top class probability below {bound.below:g})"
                if figure == "lowConfidenceShare" else what)
        rows.append(Bound(
            f"confidence.{figure}", "confidence", figure, f"spec.confidence.{figure}",
            "modelmon_confidence", (("figure", figure),), ("figure",),
            _range(bound.min, bound.max), bound.severity, "ModelConfidenceDegraded",
            "ConfidenceDegraded", *_range_text(said, bound.min, bound.max)))
    return rows


def rows_of(rows: list[Bound], family: Family) -> list[Bound]:
    """The rows of one family, in table order."""
    return [r for r in rows if r.family == family]


def drift_threshold(spec: ModelMonitorSpec, column: str, default: float) -> float:
    """The threshold a column's drift score is held against: the column's override, else
    ``spec.drift.threshold``, else ``default`` (its method's)."""
    override = spec.drift.features.get(column)
    if override is not None and override.threshold is not None:
        return override.threshold
    return spec.drift.threshold if spec.drift.threshold is not None else default


@dataclass(frozen=True, slots=True)
class ColumnThreshold:
    """The threshold a column is held against, where it came from, and a note for the
    column's message (how it was learned, or why it was not)."""

    value: float
    source: ThresholdSource
    note: str | None = None


def learns_threshold(spec: ModelMonitorSpec, column: str, uses_p_value: bool) -> bool:
    """Whether the column's threshold is to be learned: ``spec.drift.learnThreshold`` is
    enabled, the column is scored by a distance, and it has no threshold of its own."""
    override = spec.drift.features.get(column)
    return (spec.drift.learn_threshold.enabled and not uses_p_value
            and (override is None or override.threshold is None))


def column_threshold(spec: ModelMonitorSpec, column: str, default: float, uses_p_value: bool,
                     learned: ChunkDistances | None = None) -> ColumnThreshold:
    """The column's threshold: its own (``features.<name>.threshold``) wins; a distance
    with ``spec.drift.learnThreshold`` takes mean + multiple x std of the reference's
    chunk distances (at least ``learnThreshold.minimum``) when at least ``MIN_CHUNKS``
    were scored; otherwise ``spec.drift.threshold``, else ``default`` (its method's)."""
    override = spec.drift.features.get(column)
    fixed = drift_threshold(spec, column, default)
    own = (override is not None and override.threshold is not None) or (
        spec.drift.threshold is not None)
    source: ThresholdSource = "spec" if own else "default"
    if learned is None or not learns_threshold(spec, column, uses_p_value):
        return ColumnThreshold(fixed, source)
    learn = spec.drift.learn_threshold
    size = f"chunks of {learned.chunk_rows} rows"
    fallback = f"; the fixed threshold {fixed:.4g} applies"
    if learned.chunks < MIN_CHUNKS:
        return ColumnThreshold(fixed, source, (
            f"threshold not learned: the reference makes {learned.chunks} {size}, fewer "
            f"than the {MIN_CHUNKS} spec.drift.learnThreshold needs (a reference of at least "
            f"{MIN_CHUNKS * learned.chunk_rows} rows){fallback}"))
    if learned.scored < MIN_CHUNKS:
        return ColumnThreshold(fixed, source, (
            f"threshold not learned: only {learned.scored} of the reference's {size} could "
            f"be scored, fewer than the {MIN_CHUNKS} spec.drift.learnThreshold needs"
            f"{fallback}"))
    value = learned.mean + learn.multiple * learned.std
    said = (f"threshold learned from {learned.scored} reference {size}: mean "
            f"{learned.mean:.4g} + {learn.multiple:g} x std {learned.std:.4g}")
    if learn.minimum is not None and value < learn.minimum:
        value = learn.minimum
        said += f", raised to spec.drift.learnThreshold.minimum {learn.minimum:g}"
    if not math.isfinite(value) or value <= 0:
        return ColumnThreshold(fixed, source, (
            f"threshold not learned: every reference chunk of {learned.chunk_rows} rows is "
            f"at distance 0 from the rest{fallback}"))
    return ColumnThreshold(value, "learned", said)
