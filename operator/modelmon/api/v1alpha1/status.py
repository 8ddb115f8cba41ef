"""The ModelMonitor status: what the last check found, and the state kept between checks.

Written at the end of the data line and read back at the start of the next check: ``check``
builds it, the worker patches it through the status subresource, and the notifiers and the
retraining hook keep their delivery and Job state in it. The CRD's status schema is generated
from these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from modelmon.api.v1alpha1.common import (
    ApiModel,
    ConditionStatus,
    FeatureKindName,
    Phase,
    Severity,
)


class LastCheck(ApiModel):
    """The most recent check that ran to the end."""

    time: datetime
    """When the check started (UTC)."""
    duration_seconds: float
    """How long the check took."""
    reference_rows: int
    """Rows in the reference data."""
    current_rows: int
    """Rows in the current window."""


#: The most categories a column summary names (top and new alike; stats.summary keeps
#: the same bound), so that a status of many columns stays small.
SUMMARY_CATEGORIES = 5


class CategoryShare(ApiModel):
    """One category and its share of a column's non-missing values."""

    name: Annotated[str, Field(max_length=64)]
    """The category (names longer than 64 characters are cut and end in "...")."""
    share: float
    """Its share of the non-missing values."""


class ColumnSummary(ApiModel):
    """What one side of a column looked like: the reference (from its fitted profile) or
    the current window. Numeric columns fill count to max; categorical columns count,
    categories, top and, for the window, the new* fields."""

    count: int
    """Non-missing values (numeric: finite values)."""
    mean: float | None = None
    """Numeric: mean."""
    std: float | None = None
    """Numeric: population standard deviation."""
    min: float | None = None
    """Numeric: smallest value."""
    p05: float | None = None
    """Numeric: 5th percentile."""
    p25: float | None = None
    """Numeric: 25th percentile (lower quartile)."""
    median: float | None = None
    """Numeric: median."""
    p75: float | None = None
    """Numeric: 75th percentile (upper quartile)."""
    p95: float | None = None
    """Numeric: 95th percentile."""
    max: float | None = None
    """Numeric: largest value."""
    categories: int | None = None
    """Categorical: distinct categories (top names at most 5 of them)."""
    top: Annotated[list[CategoryShare], Field(max_length=SUMMARY_CATEGORIES)] = []
    """Categorical: the most frequent categories (at most 5), with their shares."""
    new_categories: Annotated[list[Annotated[str, Field(max_length=64)]],
                              Field(max_length=SUMMARY_CATEGORIES)] = []
    """Categorical, current window: the first categories (at most 5, most frequent first)
    the reference does not have; newCategoryCount says how many there were."""
    new_category_count: int | None = None
    """Categorical, current window: how many categories the reference does not have."""
    new_category_share: float | None = None
    """Categorical, current window: share of the values in those categories."""

    @model_serializer(mode="wrap")
    def _small(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # One summary per column and side: leave out the other kind's empty fields.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None and v != []}


class FeatureDriftResult(ApiModel):
    """Drift of one column."""

    name: str
    """Column name."""
    kind: FeatureKindName
    """How the column was scored: numeric or categorical."""
    method: str
    """Drift method used."""
    statistic: float | None = None
    """Test statistic or distance; null when the column could not be scored."""
    p_value: float | None = None
    """p-value of a test; null for distance methods."""
    effect_size: float | None = None
    """A test's effect size (numeric: KS distance; categorical: Cramer's V), held against
    spec.drift.minEffect; null for distances."""
    statistic_error_bound: float | None = None
    """With sql.pushdown, ks and wasserstein are read off a quantile grid of the window
    (and of the reference, with reference.source.sql.pushdown: then this adds both
    grids' bounds): the statistic (and a KS effect size) is within this of the one the
    rows give; null when the statistic is exact."""
    adjusted_p_value: float | None = None
    """The p-value after spec.drift.correction (bonferroni or fdr across the features a
    test scored), the one held against the threshold; null without a correction."""
    threshold: float
    """Threshold the statistic or p-value was compared with."""
    threshold_source: Literal["default", "spec", "learned"] | None = None
    """Where the threshold came from: default (the method's), spec (the column's
    features.<name>.threshold or spec.drift.threshold), or learned from the reference
    (spec.drift.learnThreshold; the message says from how many chunks of how many rows);
    null in statuses written before this field."""
    drifted: bool
    """Whether the column drifted."""
    message: str | None = None
    """Why the column was not scored, or a caveat about its score."""
    reference: ColumnSummary | None = None
    """The reference column, summarised as it is scored (numeric: mean, quantiles;
    categorical: top categories)."""
    current: ColumnSummary | None = None
    """The current window's column, summarised the same way (categorical: with the new
    categories); null when it cannot be read that way."""


class DriftStatus(ApiModel):
    """Drift results of the last check."""

    share: float
    """Share of monitored features that drifted."""
    dataset_drift: bool
    """Whether the share reached spec.drift.datasetDriftShare."""
    drifted: list[str] = []
    """Names of the drifted features."""
    features: list[FeatureDriftResult] = []
    """Per-feature results."""
    prediction: FeatureDriftResult | None = None
    """Drift of the prediction column."""
    target: FeatureDriftResult | None = None
    """Drift of the target column, when both sides have it."""


class ColumnQuality(ApiModel):
    """Data-quality figures of one column in the current window."""

    name: str
    """Column name."""
    missing_fraction: float
    """Share of rows with a missing value."""
    outlier_fraction: float | None = None
    """Numeric: share of rows outside the reference's 1.5 x IQR fences."""
    out_of_range_fraction: float | None = None
    """Numeric: share of rows outside the reference's min/max."""
    new_categories: int | None = None
    """Categorical: distinct values not seen in the reference."""


class TypeChange(ApiModel):
    """A column whose kind differs between reference and current data."""

    name: str
    """Column name."""
    reference: str
    """Kind in the reference."""
    current: str
    """Kind in the current window."""


class DataQualityStatus(ApiModel):
    """Data-quality results of the last check."""

    columns: list[ColumnQuality] = []
    """Per-column figures."""
    missing_columns: list[str] = []
    """Monitored columns absent from the current window."""
    type_changes: list[TypeChange] = []
    """Columns that are numeric on one side and not on the other."""


class Finding(ApiModel):
    """A figure outside its bound."""

    name: str
    """Stable name of the check, e.g. performance.accuracy or drift.dataset."""
    severity: Severity
    """warning or critical."""
    value: float
    """The figure."""
    bound: float
    """The bound it crossed."""
    message: str
    """What happened, for people."""


class NotChecked(ApiModel):
    """A bound the last check could not hold its figure against."""

    bound: str
    """The bound, as findings and alerts name it, e.g. performance.rocAuc."""
    field: str
    """The spec field that sets it, e.g. spec.performance.metrics[1]."""
    reason: str
    """Why its figure is missing (no labels, a metric undefined for the window)."""


class LabelsStatus(ApiModel):
    """Whether checks find labels (columns.target) in the current window."""

    missing_since: datetime | None = None
    """When a check first found no labels, kept across checks until labels return; null
    while they arrive."""
    missing_seconds: float = 0.0
    """How long labels had been missing at the last check (0 while they arrive); judged
    against spec.performance.maxLabelDelay."""
    reason: str | None = None
    """Why the last check found no labels."""


class ConfidenceStatus(ApiModel):
    """How confident the classifier was in the current window, from its probabilities
    (columns.predictionProbability or columns.classProbabilities; no labels needed)."""

    mean_confidence: float | None = None
    """Mean over the rows of the top class probability (binary: max(p, 1 - p))."""
    low_confidence_share: float | None = None
    """Share of rows whose top class probability is below lowConfidenceBelow."""
    low_confidence_below: float | None = None
    """The cutoff of lowConfidenceShare (spec.confidence.lowConfidenceShare.below, default
    0.6)."""
    class_shares: dict[str, float] = {}
    """Share of rows predicted as each class (the class with the top probability; binary:
    positive and negative, positive when p >= 0.5)."""
    rows: int | None = None
    """Rows the figures were computed from."""
    renormalised_rows: int | None = None
    """columns.classProbabilities: rows whose probabilities did not sum to 1 and were
    divided by their sum."""
    reason: str | None = None
    """Why the figures could not be computed (probabilities outside [0, 1], missing or not
    numbers, a column missing from the window); null when they were."""


class EstimatedMetric(ApiModel):
    """A metric estimated without labels and its sampling band."""

    value: float
    """The estimate."""
    lower: float | None = None
    """Lower end of the band: the estimate less three standard deviations of the metric
    over reference samples of the window's size (what chance alone moves it by)."""
    upper: float | None = None
    """Upper end of the band (null when the reference cannot bound it)."""


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str
    """Ready, Reconciling, Stalled, SourceAvailable, DataDrift, PerformanceDegraded,
    DataQualityDegraded, ... (see status.conditions)."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str
    """CamelCase reason."""
    message: str
    """Human-readable detail."""
    last_transition_time: datetime
    """When status last changed."""
    observed_generation: int | None = None
    """The spec generation the condition was computed from."""


class CheckSummary(ApiModel):
    """One line of the check history."""

    time: datetime
    """When the check started."""
    phase: Phase
    """Phase after the check."""
    drift_share: float | None = None
    """Share of drifted features (null when the check failed)."""
    findings: int = 0
    """Number of findings."""
    current_rows: int | None = None
    """Rows in the current window."""
    reason: str | None = None
    """Why the check failed, when it did."""


class Delivered(ApiModel):
    """A finding as it was last delivered."""

    name: str
    """Finding name."""
    severity: Severity
    """Its severity then."""


class NotifierState(ApiModel):
    """Delivery state of one notifier, so that a restart neither loses nor repeats."""

    name: str
    """Notifier name (spec.alerting.notifiers[].name, or kind-index)."""
    kind: str
    """slack, pagerduty, webhook, email or alertmanager."""
    firing: list[Delivered] = []
    """Findings last delivered as firing."""
    since: datetime | None = None
    """When the current episode's first firing message was planned (the check that found
    it); its dedup key derives from it, so every retry and later message of the episode
    carries the same key."""
    last_sent: datetime | None = None
    """The time of the check whose message was last delivered."""
    last_attempt: datetime | None = None
    """When delivery was last attempted."""
    last_error: str | None = None
    """Why the last attempt failed (never contains credentials)."""
    failures: int = 0
    """Consecutive failed delivery attempts (0 once one gets through)."""
    next_attempt: datetime | None = None
    """No delivery attempt before this time: the backoff after a failure, or what the
    receiver asked for (Retry-After)."""


class RetrainingStatus(ApiModel):
    """The retraining hook's state."""

    consecutive_checks: int = 0
    """Consecutive checks for which the retraining condition held."""
    last_job: str | None = None
    """Name of the last Job created."""
    last_started: datetime | None = None
    """When the last Job was created."""
    outcome: Literal["Running", "Succeeded", "Failed"] | None = None
    """Outcome of the last Job."""
    message: str | None = None
    """Why no Job was created when one was due (cooldown, still running, error)."""


class StatusSummary(ApiModel):
    """The last check at a glance, display-ready for ``kubectl get`` (its printer
    columns read these fields)."""

    drifted: str
    """Drifted features out of those scored, e.g. "5/9"."""
    findings: int
    """Number of findings."""
    worst: str | None = None
    """The most severe finding (the first of the highest severity), as "severity: name";
    null without findings."""
    reason: str | None = None
    """Why the phase is not Healthy: Ready's reason when the check did not run to a
    verdict (SourceUnavailable, InsufficientData, ...), else the type of the first problem
    condition (DataDrift, PerformanceDegraded, ...); null when Healthy."""


#: How many check summaries status.history keeps.
HISTORY_LIMIT = 20


class ModelMonitorStatus(ApiModel):
    """What the last check found. Written by the operator through the status subresource."""

    phase: Phase = "Pending"
    """Pending (no verdict yet, or too few rows for one: reason InsufficientData), Healthy,
    Drifting (drift findings), Degraded (performance or data-quality findings) or Failing
    (the check could not run)."""
    observed_generation: int | None = None
    """The spec generation of the last check."""
    last_check: LastCheck | None = None
    """Timing and sizes of the last completed check."""
    summary: StatusSummary | None = None
    """The last check at a glance (what kubectl get shows); null before the first check."""
    drift: DriftStatus | None = None
    """Drift results."""
    performance: dict[str, float] = {}
    """Performance metrics by name."""
    operational: dict[str, float] = {}
    """Operational figures by query name (spec.operational)."""
    data_quality: DataQualityStatus | None = None
    """Data-quality results."""
    confidence: ConfidenceStatus | None = None
    """Confidence figures of a classifier with probabilities, or why they could not be
    computed (null without probabilities)."""
    estimated_performance: dict[str, EstimatedMetric] = {}
    """Performance estimated without labels, each metric spec.performance.estimated.metrics
    lists with its sampling band."""
    estimation_reason: str | None = None
    """Why performance could not be estimated (naming the spec field); null when it was or
    is not asked for."""
    findings: list[Finding] = []
    """Figures outside their bounds."""
    not_checked: list[NotChecked] = []
    """Bounds the last check could not judge, with why (no labels, a metric undefined for
    the window)."""
    labels: LabelsStatus | None = None
    """Whether the current window holds labels, and since when it has not (only with
    columns.target)."""
    conditions: list[Condition] = []
    """Ready (the check of the current spec ran to a verdict, whatever it found),
    Reconciling (waiting for enough rows) and Stalled (the check cannot run), the
    conditions GitOps tools read; SourceAvailable, DataDrift, PerformanceDegraded,
    DataQualityDegraded, OperationalDegraded, EstimatedPerformanceDegraded and
    ConfidenceDegraded (when their bounds are set), and AlertRulesReady in the cluster."""
    history: Annotated[list[CheckSummary], Field(max_length=HISTORY_LIMIT)] = []
    """Summaries of the most recent checks, newest last, for trends."""
    notifications: list[NotifierState] = []
    """Delivery state of each notifier."""
    retraining: RetrainingStatus | None = None
    """State of the retraining hook."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)
