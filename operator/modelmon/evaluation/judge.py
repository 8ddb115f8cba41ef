"""Judging: the numbers of a check, held against the bounds table, become findings,
dataset drift, conditions and a phase.

Part of ``evaluation`` (fourth stop on the data line). Nothing here computes statistics
or performs I/O: stats and sources return numbers only, and this module alone decides what
they mean, row by row of ``evaluation.bounds.table``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from modelmon.api.messages import capped, capped_lines
from modelmon.api.v1alpha1 import (
    SUMMARY_CATEGORIES,
    CategoryShare,
    ColumnSummary,
    ConfidenceStatus,
    DataQualityStatus,
    DriftStatus,
    EstimatedMetric,
    FeatureDriftResult,
    Finding,
    LabelsStatus,
    LastCheck,
    ModelMonitorSpec,
    ModelMonitorStatus,
    NotChecked,
    Phase,
    Severity,
)
from modelmon.evaluation.bounds import (
    LABELS_MISSING,
    QUALITY_CHECKS,
    Bound,
    Limit,
    column_threshold,
    rows_of,
)
from modelmon.evaluation.conditions import (
    ConditionValue,
    merge_conditions,
    problem,
    progress,
)
from modelmon.evaluation.summary import summarized
from modelmon.stats.dataset import ChunkDistances, ColumnDrift
from modelmon.stats.drift import DriftResult, adjusted_p_values, get_method
from modelmon.stats.estimation import Confidence, Estimate
from modelmon.stats.summary import CategoricalSummary, NumericSummary

SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}
_WORD = {"<": "below", ">": "above"}


def at_least(severity: str, floor: str) -> bool:
    """Whether ``severity`` is at or above ``floor``."""
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[floor]


def _fmt(number: float) -> str:
    return f"{number:.4g}"


def column_drifted(result: DriftResult, kind: str, threshold: float) -> bool:
    """A column's verdict: a test drifts when its p-value is below the threshold, a
    distance when the statistic is at or above it; an unscored column never drifts."""
    if result.statistic is None:
        return False
    if get_method(result.method, kind).uses_p_value:  # type: ignore[arg-type]
        return result.p_value is not None and result.p_value < threshold
    return result.statistic >= threshold


def column_verdict(spec: ModelMonitorSpec, column: ColumnDrift,
                   adjusted: float | None = None,
                   learned: ChunkDistances | None = None) -> FeatureDriftResult:
    """One scored column with its threshold and verdict; with ``adjusted`` (its p-value
    after the spec's correction) the verdict is on the adjusted p-value; with ``learned``
    (its reference's chunk distances) a distance's threshold may be learned
    (``bounds.column_threshold``)."""
    result = column.result
    method = get_method(result.method, column.kind)
    chosen = column_threshold(spec, column.name, method.default_threshold,
                              method.uses_p_value, learned)
    threshold = chosen.value
    judged = result if adjusted is None else replace(result, p_value=adjusted)
    floor = (spec.drift.min_effect.numeric if column.kind == "numeric"
             else spec.drift.min_effect.categorical)
    large_enough = result.effect_size is None or result.effect_size >= floor
    return FeatureDriftResult(
        name=column.name, kind=column.kind, method=result.method,
        statistic=result.statistic, p_value=result.p_value, effect_size=result.effect_size,
        statistic_error_bound=result.error_bound, adjusted_p_value=adjusted,
        threshold=threshold, threshold_source=chosen.source,
        drifted=column_drifted(judged, column.kind, threshold) and large_enough,
        message="; ".join(m for m in (result.message, chosen.note) if m) or None,
        reference=summary_status(column.reference), current=summary_status(column.current))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summary_status(summary: NumericSummary | CategoricalSummary | None
                   ) -> ColumnSummary | None:
    """A column summary from ``stats.summary`` as the status carries it (no NaN)."""
    if isinstance(summary, NumericSummary):
        p05, p25, median, p75, p95 = (_finite(q) for q in summary.quantiles)
        return ColumnSummary(count=summary.count, mean=_finite(summary.mean),
                             std=_finite(summary.std), min=_finite(summary.minimum),
                             p05=p05, p25=p25, median=median, p75=p75, p95=p95,
                             max=_finite(summary.maximum))
    if isinstance(summary, CategoricalSummary):
        return ColumnSummary(
            count=summary.count, categories=summary.categories,
            top=[CategoryShare(name=n, share=share) for n, share in summary.top],
            new_categories=list(summary.new[:SUMMARY_CATEGORIES]),
            new_category_count=summary.new_count, new_category_share=summary.new_share)
    return None


def adjusted_features(spec: ModelMonitorSpec, features: Sequence[ColumnDrift]
                      ) -> dict[str, float]:
    """The features' p-values after ``spec.drift.correction``, by column: the family is
    every feature a test scored (distances have no p-value; unscored columns none)."""
    if spec.drift.correction == "none":
        return {}
    tested = [c for c in features if c.result.statistic is not None
              and c.result.p_value is not None
              and get_method(c.result.method, c.kind).uses_p_value]
    adjusted = adjusted_p_values([c.result.p_value or 0.0 for c in tested],
                                 spec.drift.correction)
    return {c.name: p for c, p in zip(tested, adjusted, strict=True)}


def drift_status(spec: ModelMonitorSpec, rows: Sequence[Bound],
                 columns: Sequence[ColumnDrift],
                 learned: Mapping[str, ChunkDistances] | None = None) -> DriftStatus:
    """Every scored column's verdict, the share of drifted features and dataset drift;
    ``learned``: the chunk distances of the columns whose threshold may be learned."""
    learned = learned or {}
    scored = [c for c in columns if c.role == "feature"]
    adjusted = adjusted_features(spec, scored)
    features = [column_verdict(spec, c, adjusted.get(c.name), learned.get(c.name))
                for c in scored]
    by_role = {c.role: column_verdict(spec, c, learned=learned.get(c.name))
               for c in columns if c.role != "feature"}
    drifted = [f.name for f in features if f.drifted]
    share = len(drifted) / len(features) if features else 0.0
    (dataset,) = (r for r in rows if r.name == "drift.dataset")
    return DriftStatus(share=share, dataset_drift=bool(features) and
                       dataset.crossed(share) is not None, drifted=drifted,
                       features=features, prediction=by_role.get("prediction"),
                       target=by_role.get("target"))


def _drift_finding(name: str, what: str, result: FeatureDriftResult,
                   severity: Severity) -> Finding:
    if result.adjusted_p_value is not None:
        value = result.adjusted_p_value
        text = (f"adjusted p-value {_fmt(value)} < {_fmt(result.threshold)}; "
                f"p-value {_fmt(result.p_value or 0.0)}")
    elif result.p_value is not None:
        value = result.p_value
        text = f"p-value {_fmt(result.p_value)} < {_fmt(result.threshold)}"
    else:
        value = result.statistic or 0.0
        text = f"{_fmt(value)} >= {_fmt(result.threshold)}"
    return Finding(name=name, severity=severity, value=value, bound=result.threshold,
                   message=f"{what} drifted ({result.method}: {text})")


def drift_findings(rows: Sequence[Bound], drift: DriftStatus) -> list[Finding]:
    """Dataset, prediction, target and per-feature drift with a severity of its own."""
    by_name = {r.name: r for r in rows_of(list(rows), "drift")}
    out: list[Finding] = []
    dataset = by_name["drift.dataset"]
    if drift.dataset_drift:
        bound = dataset.limits[0].value
        out.append(Finding(
            name=dataset.name, severity=dataset.severity, value=drift.share, bound=bound,
            message=f"{len(drift.drifted)} of {len(drift.features)} features drifted "
                    f"(share {_fmt(drift.share)} >= {_fmt(bound)}): {capped(drift.drifted)}"))
    for role, result in (("prediction", drift.prediction), ("target", drift.target)):
        if result is not None and result.drifted:
            row = by_name[f"drift.{role}"]
            out.append(_drift_finding(row.name, f"{role} column {result.name!r}", result,
                                      row.severity))
    for feature in drift.features:
        own = by_name.get(f"drift.feature.{feature.name}")
        if feature.drifted and own is not None:
            out.append(_drift_finding(own.name, f"feature {feature.name!r}", feature,
                                      own.severity))
    return out


def _range_finding(row: Bound, value: float) -> Finding | None:
    limit = row.crossed(value)
    if limit is None:
        return None
    return Finding(name=row.name, severity=row.severity, value=value, bound=limit.value,
                   message=f"{row.subject} {_fmt(value)} is {_WORD[limit.comparison]} "
                           f"{_fmt(limit.value)}")


def range_findings(rows: Sequence[Bound], values: Mapping[str, float | None]
                   ) -> list[Finding]:
    """Figures of the rows' subjects (metrics, queries) outside their bounds; a figure
    without a value is not judged."""
    out: list[Finding] = []
    for row in rows:
        value = values.get(row.subject)
        if value is not None and (found := _range_finding(row, value)) is not None:
            out.append(found)
    return out


def _duration(seconds: float) -> str:
    """``2h5m``, ``40m``, ``12s``: a duration as the spec writes them."""
    whole = int(seconds)
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"),
             (whole % 60, "s")]
    said = "".join(f"{n}{unit}" for n, unit in parts if n)
    return said or "0s"


def labels_status(spec: ModelMonitorSpec, no_labels: str | None,
                  previous: ModelMonitorStatus, now: datetime) -> LabelsStatus | None:
    """Since when the window has had no labels: the first check that found none, carried
    across checks until labels return (none without ``columns.target``)."""
    if spec.columns.target is None:
        return None
    if no_labels is None:
        return LabelsStatus()
    before = previous.labels.missing_since if previous.labels is not None else None
    since = before if before is not None and before <= now else now
    return LabelsStatus(missing_since=since, missing_seconds=(now - since).total_seconds(),
                        reason=no_labels)


def labels_findings(rows: Sequence[Bound], labels: LabelsStatus | None) -> list[Finding]:
    """Labels missing for longer than ``spec.performance.maxLabelDelay`` (its row)."""
    row = next((r for r in rows_of(list(rows), "performance") if r.subject == LABELS_MISSING),
               None)
    if row is None or labels is None or labels.missing_since is None:
        return []
    limit = row.crossed(labels.missing_seconds)
    if limit is None:
        return []
    return [Finding(
        name=row.name, severity=row.severity, value=labels.missing_seconds, bound=limit.value,
        message=f"no labels for {_duration(labels.missing_seconds)} (since "
                f"{labels.missing_since:%Y-%m-%dT%H:%M:%SZ}), longer than "
                f"spec.performance.maxLabelDelay {_duration(limit.value)}: {labels.reason}")]


def not_checked(rows: Sequence[Bound], performance: Mapping[str, float],
                not_computed: Mapping[str, str], no_labels: str | None) -> list[NotChecked]:
    """The performance bounds whose metric has no value in this check, with why."""
    return [NotChecked(bound=row.name, field=row.field,
                       reason=no_labels or not_computed.get(row.subject)
                       or f"{row.subject} has no value for this window")
            for row in rows_of(list(rows), "performance")
            if row.subject != LABELS_MISSING and row.subject not in performance]


def performance_condition(rows: Sequence[Bound], found: Sequence[Finding],
                          skipped: Sequence[NotChecked], not_computed: Mapping[str, str],
                          no_labels: str | None) -> ConditionValue:
    """PerformanceDegraded: Unknown (LabelsUnavailable) while labels are missing and
    something is bounded, True (LabelsOverdue) once that lasts past maxLabelDelay; else it
    follows the metrics that were computed, and its message names the bounds that were
    not checked (Unknown, NotComputable, when none was)."""
    type_ = "PerformanceDegraded"
    bounded = rows_of(list(rows), "performance")
    metric_rows = [r for r in bounded if r.subject != LABELS_MISSING]
    names = capped([n.bound for n in skipped])
    if no_labels is not None and bounded:
        unchecked = [f"not checked: {names}"] if skipped else []
        if found:
            return ConditionValue(type_, "True", "LabelsOverdue",
                                  "; ".join([found[0].message, *unchecked]))
        return ConditionValue(type_, "Unknown", "LabelsUnavailable",
                              capped_lines([no_labels, *unchecked]))
    reasons = [f"{n.bound} ({n.reason})" for n in skipped] or [
        f"{name} ({why})" for name, why in not_computed.items()]
    note = (f"not checked: {capped_lines(reasons, 5, ', ')}" if skipped else
            f"not computed: {capped_lines(reasons, 5, ', ')}" if reasons else "")
    if metric_rows and len(skipped) == len(metric_rows) and not found:
        return ConditionValue(type_, "Unknown", "NotComputable",
                              f"no bounded metric could be computed for this window; {note}")
    if found:
        said = capped_lines([f.message for f in found], 5)
        return ConditionValue(type_, "True", "OutOfBounds", f"{said}; {note}" if note else said)
    fine = "every metric is within its bounds" if not skipped else (
        "every computed metric is within its bounds")
    return ConditionValue(type_, "False", "WithinBounds", f"{fine}; {note}" if note else fine)


def confidence_status(confidence: Confidence | None, reason: str | None
                      ) -> ConfidenceStatus | None:
    """status.confidence: the figures, or why they could not be computed (None for a
    monitor without probabilities)."""
    if confidence is None:
        return None if reason is None else ConfidenceStatus(reason=reason)
    return ConfidenceStatus(
        mean_confidence=confidence.mean_confidence,
        low_confidence_share=confidence.low_confidence_share,
        low_confidence_below=confidence.below, class_shares=dict(confidence.class_shares),
        rows=confidence.rows, renormalised_rows=confidence.renormalised_rows)


def estimated_status(estimates: Mapping[str, Estimate]) -> dict[str, EstimatedMetric]:
    """status.estimatedPerformance: each estimate with its band (an end the reference
    cannot bound, infinite, is left null)."""
    return {name: EstimatedMetric(
        value=e.value, lower=e.lower if math.isfinite(e.lower) else None,
        upper=e.upper if math.isfinite(e.upper) else None) for name, e in estimates.items()}


def _band_end(estimate: EstimatedMetric, limit: Limit) -> float | None:
    """The figure a side of an estimated bound compares: the band's end its series label
    names (``min``: upper, ``max``: lower), else the estimate."""
    end = dict(limit.labels).get("bound", "value")
    return {"value": estimate.value, "lower": estimate.lower,
            "upper": estimate.upper}[end]


def estimated_findings(rows: Sequence[Bound], estimated: Mapping[str, EstimatedMetric]
                       ) -> list[Finding]:
    """Estimated metrics whose whole sampling band is past a bound: below ``min`` when
    even the band's upper end is, above ``max`` when even its lower end is. An estimate
    past the bound with its band reaching it is chance, not a finding."""
    out: list[Finding] = []
    for row in rows_of(list(rows), "estimatedPerformance"):
        estimate = estimated.get(row.subject)
        if estimate is None:
            continue
        for limit in row.limits:
            end = _band_end(estimate, limit)
            if end is None or not limit.crossed(end):
                continue
            low = _fmt(estimate.lower) if estimate.lower is not None else "?"
            high = _fmt(estimate.upper) if estimate.upper is not None else "?"
            out.append(Finding(
                name=row.name, severity=row.severity, value=estimate.value,
                bound=limit.value,
                message=f"estimated {row.subject} {_fmt(estimate.value)} (band {low}-{high} "
                        f"from sampling) is {_WORD[limit.comparison]} {_fmt(limit.value)}"))
            break
    return out


def estimated_not_checked(rows: Sequence[Bound], estimated: Mapping[str, EstimatedMetric],
                          reason: str | None) -> list[NotChecked]:
    """The estimated bounds this check could not judge: every one when estimation failed
    (with why), else those whose metric the window does not define."""
    out: list[NotChecked] = []
    for row in rows_of(list(rows), "estimatedPerformance"):
        if reason is not None:
            out.append(NotChecked(bound=row.name, field=row.field, reason=reason))
        elif row.subject not in estimated:
            out.append(NotChecked(
                bound=row.name, field=row.field,
                reason=f"{row.subject} cannot be estimated for this window (rocAuc needs "
                       "the calibrated probabilities to give both classes)"))
    return out


def estimated_condition(found: Sequence[Finding], skipped: Sequence[NotChecked],
                        reason: str | None) -> ConditionValue:
    """EstimatedPerformanceDegraded: Unknown (NotComputable) when estimation failed, else
    whether a bound is breached beyond its band."""
    if reason is not None:
        return ConditionValue("EstimatedPerformanceDegraded", "Unknown", "NotComputable",
                              f"performance not estimated: {reason}")
    fine = "every estimated metric is within its bounds or its sampling band reaches them"
    if skipped:
        fine += f"; not checked: {capped([n.bound for n in skipped])}"
    return problem("EstimatedPerformanceDegraded", found, "OutOfBounds", "WithinBounds", fine)


def confidence_findings(rows: Sequence[Bound], status: ConfidenceStatus | None
                        ) -> list[Finding]:
    """Confidence figures outside their bounds (``spec.confidence``), each message saying
    what the figure is."""
    if status is None:
        return []
    values = {"meanConfidence": status.mean_confidence,
              "lowConfidenceShare": status.low_confidence_share}
    what = {"meanConfidence": f"mean top class probability of {status.rows} rows",
            "lowConfidenceShare": f"share of {status.rows} rows whose top class probability "
                                  f"is below {_fmt(status.low_confidence_below or 0.0)}"}
    return [found.model_copy(update={
                "message": f"{found.message} ({what[found.name.removeprefix('confidence.')]})"})
            for found in range_findings(rows_of(list(rows), "confidence"), values)]


def confidence_not_checked(rows: Sequence[Bound], status: ConfidenceStatus | None
                           ) -> list[NotChecked]:
    """The confidence bounds whose figure this check could not compute, with why."""
    if status is not None and status.reason is None:
        return []
    reason = (status.reason if status is not None and status.reason
              else "the current window has no probabilities")
    return [NotChecked(bound=row.name, field=row.field, reason=reason)
            for row in rows_of(list(rows), "confidence")]


def confidence_condition(found: Sequence[Finding], status: ConfidenceStatus | None
                         ) -> ConditionValue:
    """ConfidenceDegraded: Unknown (NotComputable) when the figures could not be computed,
    else whether any is outside its bounds."""
    if status is None or status.reason is not None:
        why = status.reason if status is not None and status.reason else (
            "the current window has no probabilities")
        return ConditionValue("ConfidenceDegraded", "Unknown", "NotComputable",
                              f"confidence not checked: {why}")
    return problem("ConfidenceDegraded", found, "OutOfBounds", "WithinBounds",
                   "every confidence figure is within its bounds")


def quality_findings(rows: Sequence[Bound], quality: DataQualityStatus) -> list[Finding]:
    """Columns over their data-quality bounds, missing columns and type changes."""
    by_check = {r.subject: r for r in rows_of(list(rows), "dataQuality")}
    out: list[Finding] = []
    for column in quality.columns:
        for attr, check, what in QUALITY_CHECKS:
            row, value = by_check.get(check), getattr(column, attr)
            if row is None or value is None or row.crossed(value) is None:
                continue
            limit: Limit = row.limits[0]
            said = (f"{value} {what} (max {limit.value:g})" if check == "newCategories"
                    else f"{value:.2%} {what} (max {limit.value:.2%})")
            out.append(Finding(name=f"{row.name}.{column.name}", severity=row.severity,
                               value=float(value), bound=limit.value,
                               message=f"{column.name}: {said}"))
    # One finding per column, like the series and the rule's alerts on them.
    missing, retyped = by_check["missingColumns"], by_check["typeChanges"]
    for name in quality.missing_columns:
        out.append(Finding(
            name=f"{missing.name}.{name}", severity=missing.severity, value=1.0, bound=0.0,
            message=f"{name}: monitored column missing from the current window; restore it "
                    "upstream, or list it in spec.columns.exclude"))
    for change in quality.type_changes:
        out.append(Finding(
            name=f"{retyped.name}.{change.name}", severity=retyped.severity, value=1.0,
            bound=0.0,
            message=f"{change.name}: {change.reference} in the reference, {change.current} "
                    "in the current window; restore its type upstream, or list it in "
                    "spec.columns.exclude"))
    return out


def quality_condition(found: Sequence[Finding]) -> ConditionValue:
    """DataQualityDegraded from the data-quality findings."""
    return problem("DataQualityDegraded", found, "BoundExceeded", "WithinBounds",
                   "every column is within its bounds")


def phase_of(findings: Sequence[Finding]) -> Phase:
    """Degraded beats Drifting beats Healthy."""
    if any(not f.name.startswith("drift.") for f in findings):
        return "Degraded"
    if findings:
        return "Drifting"
    return "Healthy"


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers of one check, as the stages before evaluation computed them."""

    reference_rows: int
    current_rows: int
    columns: Sequence[ColumnDrift]
    """Drift scores of every scored column (features, prediction, target)."""
    quality: DataQualityStatus
    performance: Mapping[str, float]
    not_computed: Mapping[str, str]
    """Metrics the window does not define (no value in ``performance``), with why."""
    no_labels: str | None
    """Why the window has no labels, when it has none (``performance`` is then empty)."""
    operational: Mapping[str, float | None]
    """Each operational query's figure, None when it returned no data."""
    learned: Mapping[str, ChunkDistances] = field(default_factory=dict)
    """Reference chunk distances of the columns whose threshold is learned
    (``spec.drift.learnThreshold``), by column."""
    confidence: Confidence | None = None
    """Confidence figures of a classifier with probabilities (``stats.estimation``)."""
    no_confidence: str | None = None
    """Why a classifier with probabilities has no confidence figures (they are then
    None), naming the spec field."""
    estimated: Mapping[str, Estimate] = field(default_factory=dict)
    """Performance estimated without labels, by metric (``spec.performance.estimated``)."""
    no_estimate: str | None = None
    """Why performance could not be estimated, naming the spec field."""


def judge(spec: ModelMonitorSpec, rows: Sequence[Bound], figures: Figures, *,
          previous: ModelMonitorStatus, now: datetime, generation: int | None,
          duration_seconds: float) -> ModelMonitorStatus:
    """The status of a check that ran: its figures, findings, conditions and phase."""
    drift = drift_status(spec, rows, figures.columns, figures.learned)
    drift_found = drift_findings(rows, drift)
    labels = labels_status(spec, figures.no_labels, previous, now)
    performance_found = [*range_findings(rows_of(list(rows), "performance"),
                                         figures.performance),
                         *labels_findings(rows, labels)]
    skipped = not_checked(rows, figures.performance, figures.not_computed, figures.no_labels)
    quality_found = quality_findings(rows, figures.quality)
    operational_found = range_findings(rows_of(list(rows), "operational"),
                                       figures.operational)
    confidence = confidence_status(figures.confidence, figures.no_confidence)
    confidence_found = confidence_findings(rows, confidence)
    estimated = estimated_status(figures.estimated)
    estimated_found = estimated_findings(rows, estimated)
    estimated_skipped = estimated_not_checked(rows, estimated, figures.no_estimate)
    checked = (f"checked {figures.current_rows} current rows against "
               f"{figures.reference_rows} reference rows")
    values = [
        ConditionValue("Ready", "True", "CheckSucceeded", checked),
        *progress(True, "CheckSucceeded", checked),
        ConditionValue("SourceAvailable", "True", "SourcesRead", "both sources were read"),
        problem("DataDrift", drift_found, "DriftDetected", "NoDrift",
                f"{len(drift.drifted)} of {len(drift.features)} features drifted"),
        performance_condition(rows, performance_found, skipped, figures.not_computed,
                              figures.no_labels),
        quality_condition(quality_found),
    ]
    if spec.operational is not None:
        values.append(problem("OperationalDegraded", operational_found, "OutOfBounds",
                              "WithinBounds", "every operational figure is within its bounds"))
    if rows_of(list(rows), "estimatedPerformance"):
        values.append(estimated_condition(estimated_found, estimated_skipped,
                                          figures.no_estimate))
    if rows_of(list(rows), "confidence"):
        values.append(confidence_condition(confidence_found, confidence))
    findings = [*drift_found, *performance_found, *estimated_found, *confidence_found,
                *quality_found, *operational_found]
    return summarized(ModelMonitorStatus(
        phase=phase_of(findings),
        observed_generation=generation,
        last_check=LastCheck(time=now, duration_seconds=round(duration_seconds, 6),
                             reference_rows=figures.reference_rows,
                             current_rows=figures.current_rows),
        drift=drift,
        performance=dict(figures.performance),
        operational={name: value for name, value in figures.operational.items()
                     if value is not None},
        data_quality=figures.quality,
        confidence=confidence,
        estimated_performance=estimated,
        estimation_reason=figures.no_estimate,
        findings=findings,
        not_checked=[*skipped, *estimated_skipped, *confidence_not_checked(rows, confidence)],
        labels=labels,
        conditions=merge_conditions(previous.conditions, values, now, generation),
    ))
