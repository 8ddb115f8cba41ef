"""One check of one monitor: load → score → judge.

The data line in one place. ``run_check`` loads the fitted reference (cached while its data
is unchanged) and the current window (``sources``), scores the window against the reference
(``stats``), and hands the numbers to ``evaluation``, which holds them against the spec's
bounds table and returns the status. It knows nothing of kopf or Kubernetes: the CLI calls
it directly and the operator calls it from a worker thread. A check that cannot run returns
a status with phase Failing (or Pending, with too few rows) and the reason in the Ready
condition, and keeps the figures of the previous check (nothing recorded is lost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from numpy.typing import NDArray
from pydantic import ValidationError

from modelmon.aggregates import (
    NO_PUSHDOWN_CONFIDENCE,
    current_aggregates,
    fit_from_aggregates,
    pushdown_performance,
    stand_in,
    window_sketches,
)
from modelmon.api.errors import field_errors
from modelmon.api.messages import capped_lines
from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import (
    DEFAULT_LOW_CONFIDENCE,
    ColumnQuality,
    DataQualityStatus,
    ModelMonitorSpec,
    ModelMonitorStatus,
    TypeChange,
    parse_duration,
)
from modelmon.evaluation import (
    DEFAULT_MIN_ROWS,
    CheckError,
    Figures,
    InsufficientDataError,
    InvalidDataError,
    InvalidSpecError,
    SourceUnavailableError,
    enough_rows,
    failed_status,
    judge,
    learns_threshold,
    quality_condition,
    quality_findings,
    schema_changes,
    schema_failed_status,
    table,
)
from modelmon.planning import ColumnPlan, no_labels, plan
from modelmon.sources import (
    LoadContext,
    Loaded,
    ReferenceCache,
    Resolver,
    load,
)
from modelmon.sources.base import retrying
from modelmon.sources.prometheus import operational_figures
from modelmon.stats import performance as perf
from modelmon.stats.dataset import (
    ChunkDistances,
    ColumnDrift,
    ColumnShape,
    ColumnSpecError,
    ReferenceProfile,
    WindowScores,
    alone_workers,
    chunk_distances_of,
    chunk_size,
    fit_reference,
    score_window,
    window_shapes,
)
from modelmon.stats.drift import get_method
from modelmon.stats.estimation import (
    ClassifierEstimator,
    Confidence,
    ConfidenceInputError,
    Estimate,
    EstimationInputError,
    RegressionEstimator,
    binary_confidence,
    class_confidence,
    fit_classifier_estimator,
    fit_regression_estimator,
)
from modelmon.stats.sketch import (
    score_sketches,
)
from modelmon.streaming import StreamedWindow, open_window, reading, window

__all__ = [
    "DEFAULT_MIN_ROWS",
    "NO_LIMIT",
    "CheckError",
    "CheckResult",
    "FittedReference",
    "InsufficientDataError",
    "InvalidDataError",
    "InvalidSpecError",
    "SourceUnavailableError",
    "failed_status",
    "parse_spec",
    "run_check",
    "run_check_with_shapes",
    "window",
]

log = logging.getLogger(__name__)

#: A check computes without waiting for a slot unless its caller passes one.
NO_LIMIT: AbstractContextManager[object] = nullcontext()

def parse_spec(spec: dict[str, object]) -> ModelMonitorSpec:
    """A spec from the cluster; errors name the field as ``spec.<path>``."""
    try:
        return ModelMonitorSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidSpecError(capped_lines(field_errors(exc, prefix="spec"))) from None


def _workers(cpu: AbstractContextManager[object], rows: int, columns: int) -> int:
    """Threads for fitting or scoring: a check alone (no CPU limit: `modelmon check`) may
    use several; one under the operator's limit."""
    return alone_workers(rows, columns) if cpu is NO_LIMIT else 1


# ------------------------------------------------------------------------------- load


Estimator = ClassifierEstimator | RegressionEstimator


@dataclass(frozen=True, slots=True)
class FittedReference:
    """What a check keeps of the reference: the plan, the fitted profile, the row count,
    and the performance estimator fitted with the profile (or why it could not be)."""

    plan: ColumnPlan
    profile: ReferenceProfile
    rows: int
    estimator: Estimator | None = None
    no_estimator: str | None = None
    """Why spec.performance.estimated cannot be estimated, naming the spec field."""


def _estimation_reason(spec: ModelMonitorSpec, problem: str) -> str:
    """An estimator's complaint as a status reason naming the spec field."""
    if spec.model.task == "multiclassClassification":
        problem = problem.replace("columns.predictionProbability", "columns.classProbabilities")
    return f"spec.{problem}" if problem.startswith("columns.") else (
        f"spec.performance.estimated: {problem}")


def _missing(frame: pd.DataFrame, names: list[str], field: str, where: str) -> None:
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise EstimationInputError(f"{field}: the {where} has no column(s) {absent[:5]}")


def _labels(spec: ModelMonitorSpec, values: pd.Series) -> pd.Series:
    """The reference's labels as the estimator's classes (binary: booleans, positive
    True, as the realized metrics read them); missing labels stay missing."""
    if spec.model.task != "binaryClassification":
        return values.astype(object).where(values.notna(), None)
    present = values.notna()
    out = pd.Series([None] * len(values), index=values.index, dtype=object)
    out[present] = perf.is_positive(values[present], spec.columns.positive_label)
    return out


def _prediction(spec: ModelMonitorSpec, frame: pd.DataFrame) -> NDArray[Any] | None:
    """A classifier's predicted classes when columns.prediction is in the frame."""
    column = spec.columns.prediction
    if column is None or column not in frame.columns:
        return None
    if spec.model.task == "binaryClassification":
        return perf.is_positive(frame[column], spec.columns.positive_label)
    return frame[column].to_numpy(dtype=object)


def _probabilities(spec: ModelMonitorSpec, frame: pd.DataFrame, where: str) -> NDArray[Any]:
    cols = spec.columns
    if cols.class_probabilities is not None:
        names = list(cols.class_probabilities.values())
        _missing(frame, names, "columns.classProbabilities", where)
        return frame[names].to_numpy()
    assert cols.prediction_probability is not None  # the spec validator guarantees it
    _missing(frame, [cols.prediction_probability], "columns.predictionProbability", where)
    return frame[cols.prediction_probability].to_numpy()


def fit_estimator(spec: ModelMonitorSpec, frame: pd.DataFrame, columns: ColumnPlan
                  ) -> tuple[Estimator | None, str | None]:
    """The estimator of spec.performance.estimated, fitted on the labelled reference, or
    why it cannot be (naming the spec field); (None, None) when nothing is estimated.
    Never raises for the reference's data: drift and data quality are judged regardless."""
    if not spec.performance.estimated.metrics:
        return None, None
    cols = spec.columns
    try:
        assert cols.target is not None  # the spec validator guarantees it
        if cols.target not in frame.columns:
            raise EstimationInputError(
                f"columns.target: the reference has no label column {cols.target!r}; "
                "estimation is fitted on a labelled reference")
        try:
            labels = _labels(spec, frame[cols.target])
            prediction = _prediction(spec, frame)
        except perf.PerformanceInputError as exc:
            raise EstimationInputError(f"columns.target: {exc}") from None
        if spec.model.task == "regression":
            assert cols.prediction is not None  # the spec validator guarantees it
            _missing(frame, [cols.prediction], "columns.prediction", "reference")
            features = [r.name for r in columns.features]
            return fit_regression_estimator(frame[features], frame[cols.prediction].to_numpy(),
                                            labels.to_numpy()), None
        classes: list[object] = (list(cols.class_probabilities)
                                 if cols.class_probabilities is not None else [False, True])
        return fit_classifier_estimator(_probabilities(spec, frame, "reference"),
                                        labels.to_numpy(), classes, prediction), None
    except EstimationInputError as exc:
        return None, _estimation_reason(spec, str(exc))
    except Exception as exc:  # the estimator's libraries on user data: never fail the check
        log.exception("fitting the performance estimator failed")
        return None, (f"spec.performance.estimated: the estimator could not be fitted on the "
                      f"reference: {type(exc).__name__}: {str(exc)[:200]}")


def reference(spec: ModelMonitorSpec, ctx: LoadContext,
              cache: ReferenceCache[FittedReference] | None = None,
              key: Hashable = None, generation: int | None = None,
              cpu: AbstractContextManager[object] = NO_LIMIT) -> FittedReference:
    """The fitted reference: from the cache while its data is unchanged, else loaded."""

    def build(loaded: Loaded) -> FittedReference:
        columns = plan(spec, loaded.frame)
        enough_rows(len(loaded.frame), spec, "the reference", "spec.reference.source")
        try:
            with cpu:
                # Before the profile: fitting it consumes the frame's columns.
                estimator, no_estimator = fit_estimator(spec, loaded.frame, columns)
                profile = fit_reference(
                    loaded.frame, columns.requests, consume=True,
                    workers=_workers(cpu, len(loaded.frame), len(columns.requests)))
        except ColumnSpecError as exc:  # only a column's own method can miss its kind
            raise InvalidSpecError(
                f"spec.drift.features.{exc.column}.method: {exc}") from None
        return FittedReference(columns, profile, len(loaded.frame), estimator, no_estimator)

    source = spec.reference.source
    if source.sql is not None and source.sql.pushdown:
        return FittedReference(*retrying(lambda: fit_from_aggregates(spec, ctx), ctx))
    with reading():
        if cache is None:
            return build(load(spec.reference.source, ctx))
        return cache.get(key, spec.reference.source, ctx, build,
                         depends_on=(generation, spec.model_dump_json())).value


def current(spec: ModelMonitorSpec, ref: FittedReference, ctx: LoadContext,
            now: datetime) -> pd.DataFrame:
    """The current window: the monitored columns of the rows inside the window."""
    with reading():
        frame = window(spec, load(spec.current.source, ctx).frame, now)
    _window_checks(spec, ref, frame.columns, len(frame))
    return frame


def _window_checks(spec: ModelMonitorSpec, ref: FittedReference, columns: Collection[str],
                   rows: int) -> None:
    prediction = spec.columns.prediction
    if (prediction is not None and prediction not in columns
            and ref.plan.prediction is None):
        raise InvalidDataError(
            f"spec.columns.prediction: the current window has no column {prediction!r}")
    enough_rows(rows, spec, "the current window", "spec.current.source")


def streamed_extras(spec: ModelMonitorSpec, ref: FittedReference, streamed: StreamedWindow
                    ) -> pd.DataFrame:
    """The columns of a streamed window that the performance metrics, the confidence
    figures and the estimation read together, loaded in one pass; refused (naming the
    field) when they would not fit in the check's memory limit."""
    cols = spec.columns
    probabilities = spec.probabilities()
    probability_columns = ([] if probabilities is None else [probabilities]
                           if isinstance(probabilities, str) else list(probabilities.values()))
    groups: list[tuple[list[str], str, str]] = []
    if cols.target is not None:
        groups.append(([c for c in (cols.target, cols.prediction, cols.prediction_probability)
                        if c is not None], "spec.performance.metrics", "the performance metrics"))
    if probability_columns:
        groups.append((probability_columns, "spec.confidence", "the confidence figures"))
    if ref.estimator is not None:
        groups.append(([*(r.name for r in ref.plan.features),
                        *([cols.prediction] if cols.prediction else []), *probability_columns],
                       "spec.performance.estimated", "estimating performance"))
    names: list[str] = []
    for group, field_, why in groups:
        present = [c for c in dict.fromkeys(group) if c in streamed.columns]
        if present:
            streamed.need(present, field_, why)
        names.extend(present)
    names = list(dict.fromkeys(names))
    if not names:
        return pd.DataFrame()
    if len(groups) > 1:  # each group fits; all of them together must too
        streamed.need(names, "spec.current.window", " and ".join(g[2] for g in groups))
    return streamed.frame(names)


# ------------------------------------------------------------------------------ score


def performance(spec: ModelMonitorSpec, frame: pd.DataFrame
                ) -> tuple[perf.Computed, str | None]:
    """The performance metrics of the window (values, and why the others have none), or
    why the window has no labels at all."""
    cols = spec.columns
    why = no_labels(cols.target, lambda name: name in frame.columns,
                     lambda name: bool(frame[name].isna().all()))
    if why is not None or cols.target is None:
        return perf.Computed(), why
    names: list[str] = [m.name for m in spec.performance.metrics]
    available = [c for c in (cols.prediction, cols.prediction_probability)
                 if c is not None and c in frame.columns]
    if not names:  # nothing listed: report what the available columns support
        names = [n for n in perf.metric_names(spec.model.task)
                 if n not in ("rocAuc", "logLoss", "brier")
                 or (cols.prediction_probability in available)]
    prediction = cols.prediction if cols.prediction in available else None
    probability = cols.prediction_probability if cols.prediction_probability in available \
        else None
    try:
        return perf.compute(spec.model.task, names, frame, target=cols.target,
                            prediction=prediction, probability=probability,
                            positive=cols.positive_label), None
    except perf.PerformanceInputError as exc:  # no metric at all from these columns
        if spec.performance.metrics:
            raise InvalidDataError(f"spec.performance.metrics: {exc}") from None
        return perf.Computed(), None
    except ValueError as exc:  # the labels or scores cannot be read as such
        raise InvalidDataError(f"spec.performance.metrics: {str(exc)[:200]}") from None


def confidence(spec: ModelMonitorSpec, frame: pd.DataFrame
               ) -> tuple[Confidence | None, str | None]:
    """The confidence figures of a classifier with probabilities, or why the window does
    not give them (naming the spec field); (None, None) without probabilities. Never
    raises for bad probabilities: drift and data quality are judged regardless."""
    source = spec.probabilities()
    if source is None:
        return None, None
    bound = spec.confidence.low_confidence_share
    below = bound.below if bound is not None else DEFAULT_LOW_CONFIDENCE
    try:
        if isinstance(source, str):
            return binary_confidence(frame, source, below), None
        return class_confidence(frame, source, below), None
    except ConfidenceInputError as exc:
        if isinstance(source, str):
            where = "spec.columns.predictionProbability"
        else:
            label = next((k for k, v in source.items() if v == exc.column), None)
            where = "spec.columns.classProbabilities" + (
                f".{label}" if label is not None else "")
        return None, f"{where}: {exc.problem}"


def estimated(spec: ModelMonitorSpec, ref: FittedReference, frame: pd.DataFrame
              ) -> tuple[dict[str, Estimate], str | None]:
    """The window's performance estimated without labels, each metric with its sampling
    band, or why it cannot be (naming the spec field); ({}, None) when nothing is
    estimated. Never raises for bad data: drift and data quality are judged regardless."""
    estimator = ref.estimator
    if estimator is None:
        return {}, ref.no_estimator
    wanted = {m.name for m in spec.performance.estimated.metrics}
    try:
        if isinstance(estimator, RegressionEstimator):
            assert spec.columns.prediction is not None  # the spec validator guarantees it
            _missing(frame, [spec.columns.prediction], "columns.prediction", "current window")
            return estimator.estimate(frame, frame[spec.columns.prediction].to_numpy(),
                                      wanted), None
        try:
            prediction = _prediction(spec, frame)
        except perf.PerformanceInputError as exc:
            raise EstimationInputError(f"columns.prediction: {exc}") from None
        return estimator.estimate(_probabilities(spec, frame, "current window"),
                                  prediction, wanted), None
    except EstimationInputError as exc:
        return {}, _estimation_reason(spec, str(exc))
    except Exception as exc:  # the estimator's libraries on user data: never fail the check
        log.exception("estimating performance failed")
        return {}, (f"spec.performance.estimated: the window could not be estimated: "
                    f"{type(exc).__name__}: {str(exc)[:200]}")


def operational(spec: ModelMonitorSpec, ctx: LoadContext) -> dict[str, float | None]:
    """Each operational query's figure (none without spec.operational)."""
    if spec.operational is None:
        return {}
    with reading():
        return {f.name: f.value for f in operational_figures(spec.operational.source, ctx)}


def learned_figures(spec: ModelMonitorSpec, profile: ReferenceProfile,
                    drift: list[ColumnDrift], window_rows: int,
                    cpu: AbstractContextManager[object]) -> dict[str, ChunkDistances]:
    """The reference's chunk distances of the scored columns whose threshold is learned
    (``spec.drift.learnThreshold``), in chunks of ``learnThreshold.chunkRows`` or of the
    window's size (``chunk_size``); the profile keeps them for the next check."""
    learn = spec.drift.learn_threshold
    if not learn.enabled:
        return {}
    names = [c.name for c in drift if c.result.statistic is not None and learns_threshold(
        spec, c.name, get_method(c.result.method, c.kind).uses_p_value)]
    if not names:
        return {}
    rows = learn.chunk_rows or chunk_size(window_rows)
    with cpu:
        return chunk_distances_of(profile, names, rows,
                                  workers=_workers(cpu, profile.rows, len(names)))


def quality_status(scores: WindowScores, missing: list[str],
                   retyped: list[tuple[str, str, str]]) -> DataQualityStatus:
    """The data-quality figures of the window, schema changes included."""
    return DataQualityStatus(
        columns=[ColumnQuality(name=c.name, missing_fraction=c.missing_fraction,
                               outlier_fraction=c.outlier_fraction,
                               out_of_range_fraction=c.out_of_range_fraction,
                               new_categories=c.new_categories)
                 for c in scores.quality.columns],
        missing_columns=missing,
        type_changes=[TypeChange(name=n, reference=r, current=c) for n, r, c in retyped])


def _shapes(profile: ReferenceProfile, frame: pd.DataFrame) -> dict[str, ColumnShape]:
    """The columns' shapes for a report; none (logged) rather than a failed check when
    they cannot be computed: the report then shows the figures without plots."""
    try:
        return window_shapes(profile, frame)
    except Exception:
        log.exception("computing the columns' shapes for the report failed")
        return {}


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's status and, when asked for (``run_check_with_shapes``), the shape of each
    profiled column of the window against the reference: the counts a report plots, of
    bounded size (``stats.dataset.shapes``); empty when the check stopped before scoring."""

    status: ModelMonitorStatus
    shapes: dict[str, ColumnShape] = field(default_factory=dict)


def run_check(spec: ModelMonitorSpec, *, base_dir: Path | None = None,
              now: datetime | None = None, previous: ModelMonitorStatus | None = None,
              generation: int | None = None, resolver: Resolver | None = None,
              cache: ReferenceCache[FittedReference] | None = None,
              cache_key: Hashable = None,
              cpu: AbstractContextManager[object] | None = None,
              policy: Policy | None = None) -> ModelMonitorStatus:
    """Run one check and return the new status (never raises for bad data or specs).

    ``cpu`` is held while the check computes (fitting, scoring, metrics) and released while
    it waits on sources, so that a caller can run many checks' I/O at once but only as many
    computations as it has cores for.
    """
    return _check(spec, base_dir=base_dir, now=now, previous=previous, generation=generation,
                  resolver=resolver, cache=cache, cache_key=cache_key, cpu=cpu,
                  policy=policy, shapes=False).status


def run_check_with_shapes(spec: ModelMonitorSpec, *, base_dir: Path | None = None,
                          now: datetime | None = None,
                          previous: ModelMonitorStatus | None = None,
                          generation: int | None = None, resolver: Resolver | None = None,
                          cache: ReferenceCache[FittedReference] | None = None,
                          cache_key: Hashable = None,
                          cpu: AbstractContextManager[object] | None = None,
                          policy: Policy | None = None) -> CheckResult:
    """``run_check``, and the shape of each column for a report (``outputs.report``):
    one more pass over the window's monitored columns."""
    return _check(spec, base_dir=base_dir, now=now, previous=previous, generation=generation,
                  resolver=resolver, cache=cache, cache_key=cache_key, cpu=cpu,
                  policy=policy, shapes=True)


def _check(spec: ModelMonitorSpec, *, base_dir: Path | None, now: datetime | None,
           previous: ModelMonitorStatus | None, generation: int | None,
           resolver: Resolver | None, cache: ReferenceCache[FittedReference] | None,
           cache_key: Hashable, cpu: AbstractContextManager[object] | None,
           policy: Policy | None, shapes: bool) -> CheckResult:
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    previous = previous or ModelMonitorStatus()
    cpu = cpu or NO_LIMIT

    start = (now - parse_duration(spec.current.window)) if spec.current.window else None
    reading = LoadContext(base_dir=base_dir or Path.cwd(), role="spec.reference.source",
                          resolver=resolver, policy=policy or Policy.local())
    try:
        # load
        ref = reference(spec, reading, cache, cache_key, generation, cpu)
        wanted = sorted({r.name for r in ref.plan.requests} | set(spec.columns.roles()))
        at_now = replace(reading, role="spec.current.source", columns=wanted,
                         window_start=start, window_end=now)
        if spec.pushdown():
            return _check_aggregates(spec, ref, at_now, reading, start, now, previous,
                                     generation, cpu, started)
        streamed = open_window(spec, ref.profile, at_now, wanted, now,
                               reading.policy.max_memory)
        if streamed is None:
            frame = current(spec, ref, at_now, now)
            rows_in = len(frame)
        else:
            _window_checks(spec, ref, streamed.columns, streamed.rows)
            rows_in = streamed.rows
        # score
        with cpu:
            if streamed is None:
                scores = score_window(ref.profile, frame, workers=_workers(
                    cpu, rows_in, len(ref.profile.columns)))
                plotted = _shapes(ref.profile, frame) if shapes else {}
            else:  # binned columns from their sketches, the others one at a time
                scores = streamed.score()
                plotted = {}  # a streamed window's report shows its figures without plots
        scored_kinds = {r.name: ref.profile.columns[r.name].dtype_kind
                        for r in (ref.plan.prediction, ref.plan.target)
                        if r is not None and r.name in ref.profile.columns}
        schema = schema_changes(spec, scored_kinds,
                                ref.plan.prediction.name if ref.plan.prediction else None,
                                frame if streamed is None else streamed.sample_frame(),
                                scores.quality.missing_columns,
                                scores.quality.type_changes)
        quality = quality_status(scores, schema.missing, schema.retyped)
        rows = table(spec)
        if schema:
            found = quality_findings(rows, quality)
            return CheckResult(schema_failed_status(previous, schema, quality, found,
                                                    quality_condition(found), now, generation),
                               plotted)
        learned = learned_figures(spec, ref.profile, scores.drift, rows_in, cpu)
        with cpu:
            if streamed is not None:
                frame = streamed_extras(spec, ref, streamed)
            metrics, no_labels = performance(spec, frame)
            confident, no_confidence = confidence(spec, frame)
            estimates, no_estimate = estimated(spec, ref, frame)
        figures = operational(spec, replace(reading, role="spec.operational.source",
                                            window_start=start, window_end=now))
        # judge
        return CheckResult(judge(spec, rows, Figures(
            reference_rows=ref.rows, current_rows=rows_in, columns=scores.drift,
            quality=quality, performance=metrics.values, not_computed=metrics.missing,
            no_labels=no_labels, operational=figures, learned=learned,
            confidence=confident, no_confidence=no_confidence, estimated=estimates,
            no_estimate=no_estimate),
            previous=previous, now=now, generation=generation,
            duration_seconds=time.perf_counter() - started), plotted)
    except CheckError as exc:
        return CheckResult(failed_status(previous, exc, now, generation))
    except Exception as exc:  # a bug must fail this check, not the caller
        log.exception("check failed unexpectedly")
        error = CheckError(f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        return CheckResult(failed_status(previous, error, now, generation))


def _check_aggregates(spec: ModelMonitorSpec, ref: FittedReference, window_ctx: LoadContext,
                      reading: LoadContext, start: datetime | None, now: datetime,
                      previous: ModelMonitorStatus, generation: int | None,
                      cpu: AbstractContextManager[object], started: float) -> CheckResult:
    """``_check`` of a window read as aggregates (``sql.pushdown``): the same line, scored
    from sketches; no shapes for a report (they would need the rows)."""
    found = current_aggregates(spec, ref.plan, ref.profile, window_ctx)
    with cpu:
        scores = score_sketches(ref.profile, window_sketches(ref.profile, found))
    scored_kinds = {r.name: ref.profile.columns[r.name].dtype_kind
                    for r in (ref.plan.prediction, ref.plan.target)
                    if r is not None and r.name in ref.profile.columns}
    schema = schema_changes(spec, scored_kinds,
                            ref.plan.prediction.name if ref.plan.prediction else None,
                            stand_in(found), scores.quality.missing_columns,
                            scores.quality.type_changes)
    quality = quality_status(scores, schema.missing, schema.retyped)
    rows = table(spec)
    if schema:
        found_rows = quality_findings(rows, quality)
        return CheckResult(schema_failed_status(previous, schema, quality, found_rows,
                                                quality_condition(found_rows), now,
                                                generation))
    learned = learned_figures(spec, ref.profile, scores.drift, found.rows, cpu)
    with cpu:
        metrics, no_labels = pushdown_performance(spec, found)
    no_confidence = (f"spec.{spec.pushdown_field()}{NO_PUSHDOWN_CONFIDENCE}"
                     if spec.probabilities() is not None else None)
    figures = operational(spec, replace(reading, role="spec.operational.source",
                                        window_start=start, window_end=now))
    return CheckResult(judge(spec, rows, Figures(
        reference_rows=ref.rows, current_rows=found.rows, columns=scores.drift,
        quality=quality, performance=metrics.values, not_computed=metrics.missing,
        no_labels=no_labels, operational=figures, learned=learned,
        confidence=None, no_confidence=no_confidence, estimated={}, no_estimate=None),
        previous=previous, now=now, generation=generation,
        duration_seconds=time.perf_counter() - started))
