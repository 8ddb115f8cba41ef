"""One check of one monitor, end to end: spec -> sources -> stats -> evaluation -> status.

The data line in one place. It knows nothing of kopf or Kubernetes: the CLI calls it
directly and the operator calls it from a worker thread. A check that cannot run returns a
status with phase Failing and the reason in the Ready condition, and keeps the figures of
the previous check (nothing recorded is lost). A current window that lacks a monitored
feature or prediction column, or holds one with another kind of values, fails with
InvalidData and still reports this check's data quality (``SchemaChanges``).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError

from modelmon.api.errors import field_errors
from modelmon.api.messages import capped, capped_lines
from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import (
    GROUP,
    KIND,
    ColumnQuality,
    DataQualityStatus,
    DriftStatus,
    FeatureDriftResult,
    Finding,
    LastCheck,
    ModelMonitor,
    ModelMonitorSpec,
    ModelMonitorStatus,
    Phase,
    Source,
    TypeChange,
    parse_duration,
)
from modelmon.evaluation import (
    ConditionValue,
    drift_findings,
    merge_conditions,
    operational_findings,
    performance_findings,
    phase_of,
    quality_findings,
)
from modelmon.sources import (
    DataError,
    LoadContext,
    Loaded,
    ReferenceCache,
    Resolver,
    SourceError,
    load,
)
from modelmon.sources.prometheus import OperationalFigure, operational_figures
from modelmon.stats import performance as perf
from modelmon.stats.dataset import (
    ColumnDrift,
    ColumnRequest,
    ColumnSpecError,
    ReferenceProfile,
    alone_workers,
    fit_reference,
    is_numeric,
    score_window,
)

log = logging.getLogger(__name__)

#: A check computes without waiting for a slot unless its caller passes one.
NO_LIMIT: AbstractContextManager[object] = nullcontext()


def _workers(cpu: AbstractContextManager[object], rows: int, columns: int) -> int:
    """Threads for fitting or scoring: a check alone (no CPU limit: `modelmon check`) may
    use several; one under the operator's limit."""
    return alone_workers(rows, columns) if cpu is NO_LIMIT else 1


class CheckError(Exception):
    """A check that cannot run; ``reason`` becomes the Ready condition's reason."""

    reason = "CheckFailed"


class InvalidSpecError(CheckError):
    """The spec passed the CRD but cannot work with this data (unknown column, ...)."""

    reason = "InvalidSpec"


class SourceUnavailableError(CheckError):
    reason = "SourceUnavailable"


class InvalidDataError(CheckError):
    reason = "InvalidData"


class InsufficientDataError(CheckError):
    reason = "InsufficientData"


#: Rows a window (and the reference) needs before a check gives a verdict, unless
#: ``spec.current.minRows`` says otherwise. 30 is where the tests of the ``auto`` rule
#: start to be meaningful: the chi-square test of homogeneity and the two-proportion
#: Z-test rely on expected counts of at least 5 per cell (Cochran's rule), which 30 rows
#: give for up to six equally frequent categories, and 30 is the usual floor for the
#: large-sample approximations behind KS and the metrics' averages. Evidently and NannyML
#: score a chunk of any size (NannyML returns NaN only where a metric cannot be
#: computed), so a header-only window reads as "no drift" there; here it reads as
#: InsufficientData, never Healthy.
DEFAULT_MIN_ROWS = 30


def min_rows(spec: ModelMonitorSpec) -> int:
    """The rows a window needs for a verdict: ``current.minRows``, else the default."""
    return spec.current.min_rows if spec.current.min_rows is not None else DEFAULT_MIN_ROWS


def _too_few(rows: int, spec: ModelMonitorSpec, what: str, field: str) -> None:
    """Raise InsufficientData when ``rows`` is under the minimum; the message names the
    field that holds the data and the one that sets the minimum."""
    needed = min_rows(spec)
    if rows < needed:
        origin = ("spec.current.minRows" if spec.current.min_rows is not None else
                  "the default; spec.current.minRows can lower it to 1")
        raise InsufficientDataError(
            f"{field}: {what} has {rows} rows, fewer than the {needed} a verdict needs "
            f"({origin}); no verdict until it has more")


# ----------------------------------------------------------------------------- loading


def load_monitors(path: Path) -> list[ModelMonitor]:
    """Every ModelMonitor document in a YAML file; errors name the file, document, field."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except OSError as exc:
        raise InvalidSpecError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidSpecError(f"{path}: not valid YAML: {exc}") from None
    monitors: list[ModelMonitor] = []
    problems: list[str] = []
    for i, doc in enumerate(d for d in docs if d is not None):
        where = f"{path} (document {i + 1})"
        if not isinstance(doc, dict):
            problems.append(f"{where}: expected a mapping, got {type(doc).__name__}")
            continue
        if doc.get("kind") != "ModelMonitor":
            problem = _not_a_monitor(doc)
            if problem:
                problems.append(f"{where}: {problem}")
            continue
        try:
            monitors.append(ModelMonitor.model_validate(doc))
        except ValidationError as exc:
            name = (doc.get("metadata") or {}).get("name", "?")
            problems.extend(f"{where}, {name}: {line}" for line in field_errors(exc))
    if problems:
        raise InvalidSpecError("\n".join(problems))
    if not monitors:
        raise InvalidSpecError(f"{path}: no ModelMonitor document found")
    return monitors


def _not_a_monitor(doc: dict[str, object]) -> str | None:
    """Why a document that is not a ModelMonitor looks like a mistaken one, or None.

    Monitor files may hold other objects (the ConfigMaps a ``configMap`` source reads), so
    only a document without a kind, one of our API group, or one whose kind is a near miss
    of ModelMonitor is reported; the rest are skipped.
    """
    kind, api_version = doc.get("kind"), str(doc.get("apiVersion") or "")
    if kind is None:
        return "kind: required field is missing; set kind: ModelMonitor"
    near = difflib.get_close_matches(str(kind).lower(), [KIND.lower()], n=1, cutoff=0.75)
    if api_version.partition("/")[0] == GROUP or near:
        return f"kind: {kind!r} is not a kind of {GROUP}; did you mean {KIND}?"
    return None


def parse_spec(spec: dict[str, object]) -> ModelMonitorSpec:
    """A spec from the cluster; errors name the field as ``spec.<path>``."""
    try:
        return ModelMonitorSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidSpecError(capped_lines(field_errors(exc, prefix="spec"))) from None


# ---------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class Plan:
    """Which columns a check scores, and how."""

    features: list[ColumnRequest]
    prediction: ColumnRequest | None
    target: ColumnRequest | None

    @property
    def requests(self) -> list[ColumnRequest]:
        extra = [r for r in (self.prediction, self.target) if r is not None]
        return [*self.features, *extra]


#: Longest column name a message shows; a longer one is told by its length only.
SHOWN_NAME = 64


def columns_said(columns: Sequence[str], rows: int) -> str:
    """The columns of a dataset for a message: a few names, not data. A file with a header
    and no rows (a token or key read as CSV has its content there) shows none, nor is a
    name longer than ``SHOWN_NAME`` shown."""
    if rows == 0:
        return f"it has {len(columns)} column(s) and no rows"
    return "its columns: " + capped(
        [c if len(c) <= SHOWN_NAME else f"<a {len(c)}-character name>" for c in map(str, columns)],
        20)


def _not_in(columns: Sequence[str], names: Sequence[str], where: str, side: str,
            rows: int) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        what = "is not a column" if len(unknown) == 1 else "are not columns"
        raise InvalidSpecError(
            f"{where}: {capped([repr(n) for n in unknown])} {what} of the {side} "
            f"({columns_said(columns, rows)})")


def plan(spec: ModelMonitorSpec, reference: pd.DataFrame) -> Plan:
    """Decide the monitored columns from the spec and the reference's columns."""
    cols = spec.columns
    names = [str(c) for c in reference.columns]
    rows = len(reference)
    roles = cols.roles()
    if cols.features is not None:
        _not_in(names, cols.features, "spec.columns.features", "reference data", rows)
    _not_in(names, cols.categorical, "spec.columns.categorical", "reference data", rows)
    _not_in(names, cols.exclude, "spec.columns.exclude", "reference data", rows)
    _not_in(names, list(spec.drift.features), "spec.drift.features", "reference data", rows)
    for col, role in roles.items():
        if role == "predictionProbability" and col not in names:
            raise InvalidSpecError(f"spec.columns.{role}: {col!r} is not a column of the reference "
                              f"data ({columns_said(names, rows)})")
    features = cols.features if cols.features is not None else [
        n for n in names if n not in roles and n not in cols.exclude]
    categorical = set(cols.categorical)

    def request(name: str, role: str) -> ColumnRequest:
        override = spec.drift.features.get(name)
        method = override.method if override and override.method else spec.drift.method
        threshold = override.threshold if override and override.threshold is not None else (
            spec.drift.threshold)
        return ColumnRequest(name, role, method, threshold,  # type: ignore[arg-type]
                             categorical=name in categorical or (
                                 role != "feature" and spec.model.task != "regression"
                                 and name != cols.prediction_probability))

    pred_col = cols.prediction or cols.prediction_probability
    return Plan(
        features=[request(n, "feature") for n in features],
        prediction=request(pred_col, "prediction") if pred_col in names else None,
        target=request(cols.target, "target") if cols.target in names else None,
    )


# ---------------------------------------------------------------------------- the check


@dataclass(frozen=True, slots=True)
class FittedReference:
    """What a check keeps of the reference: the plan, the fitted profile, the row count."""

    plan: Plan
    profile: ReferenceProfile
    rows: int


def reference(spec: ModelMonitorSpec, ctx: LoadContext,
              cache: ReferenceCache[FittedReference] | None = None,
              key: Hashable = None, generation: int | None = None,
              cpu: AbstractContextManager[object] = NO_LIMIT) -> FittedReference:
    """The fitted reference: from the cache while its data is unchanged, else loaded."""

    def build(loaded: Loaded) -> FittedReference:
        the_plan = plan(spec, loaded.frame)
        _too_few(len(loaded.frame), spec, "the reference", "spec.reference.source")
        try:
            with cpu:
                profile = fit_reference(
                    loaded.frame, the_plan.requests, consume=True,
                    workers=_workers(cpu, len(loaded.frame), len(the_plan.requests)))
        except ColumnSpecError as exc:
            override = spec.drift.features.get(exc.column)
            field = (f"spec.drift.features.{exc.column}.method"
                     if override is not None and override.method else "spec.drift.method")
            raise InvalidSpecError(f"{field}: {exc}") from None
        return FittedReference(the_plan, profile, len(loaded.frame))

    try:
        if cache is None:
            return build(load(spec.reference.source, ctx))
        return cache.get(key, spec.reference.source, ctx, build,
                         depends_on=(generation, spec.model_dump_json())).value
    except SourceError as exc:
        raise SourceUnavailableError(str(exc)) from None
    except DataError as exc:
        raise InvalidDataError(str(exc)) from None


def _load(source: Source, ctx: LoadContext) -> pd.DataFrame:
    try:
        return load(source, ctx).frame
    except SourceError as exc:
        raise SourceUnavailableError(str(exc)) from None
    except DataError as exc:
        raise InvalidDataError(str(exc)) from None


def window(spec: ModelMonitorSpec, frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The rows of the current frame inside ``current.window`` before ``now``."""
    if spec.current.window is None:
        return frame
    ts_col = spec.columns.timestamp
    assert ts_col is not None  # the spec validator guarantees it
    if ts_col not in frame.columns:
        raise InvalidDataError(
            f"spec.columns.timestamp: the current window has no column {ts_col!r}")
    try:
        ts = pd.to_datetime(frame[ts_col], utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidDataError(f"spec.columns.timestamp: column {ts_col!r} does not hold "
                          f"timestamps: {str(exc)[:120]}") from None
    start = now - parse_duration(spec.current.window)
    return frame[(ts >= start) & (ts < now)]


def _drift_result(d: ColumnDrift) -> FeatureDriftResult:
    r = d.result
    return FeatureDriftResult(name=d.name, kind=d.kind, method=r.method, statistic=r.statistic,
                              p_value=r.p_value, threshold=r.threshold, drifted=r.drifted,
                              message=r.message)


def _performance(spec: ModelMonitorSpec, frame: pd.DataFrame
                 ) -> tuple[dict[str, float], str | None]:
    """Metrics, or why there are none."""
    cols = spec.columns
    if cols.target is None:
        return {}, "no target column configured (columns.target)"
    if cols.target not in frame.columns or frame[cols.target].isna().all():
        return {}, f"the current window has no labels in {cols.target!r}"
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
    except perf.PerformanceInputError as exc:
        if spec.performance.metrics:
            raise InvalidDataError(f"spec.performance.metrics: {exc}") from None
        return {}, str(exc)
    except ValueError as exc:  # scikit-learn's own complaints about the labels
        raise InvalidDataError(f"spec.performance.metrics: {str(exc)[:200]}") from None


def _operational(spec: ModelMonitorSpec, ctx: LoadContext) -> list[OperationalFigure]:
    """The operational figures of spec.operational (none without it)."""
    if spec.operational is None:
        return []
    try:
        return operational_figures(spec.operational.source, ctx)
    except SourceError as exc:
        raise SourceUnavailableError(str(exc)) from None
    except DataError as exc:
        raise InvalidDataError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class SchemaChanges:
    """Monitored columns the current window lacks or holds with another kind of values.

    Either fails the check with InvalidData (the figures would be wrong or partial), while
    the status still reports them in ``dataQuality``. A target column missing from the
    window is no change: labels often arrive later than predictions.
    """

    missing: list[str]
    """Features, then prediction columns, absent from the current window."""
    retyped: list[tuple[str, str, str]]
    """(column, reference kind, current kind) of monitored columns whose kind changed."""
    message: str = ""

    def __bool__(self) -> bool:
        return bool(self.missing or self.retyped)


_ROLE_FIELDS = {"prediction": "spec.columns.prediction",
                "predictionProbability": "spec.columns.predictionProbability",
                "target": "spec.columns.target"}


def schema_changes(spec: ModelMonitorSpec, ref: FittedReference, current: pd.DataFrame,
                   missing_features: Sequence[str],
                   retyped_features: Sequence[tuple[str, str, str]]) -> SchemaChanges:
    """The schema changes of the current window against the reference, with a message
    that names the columns and how to fix each (``missing_features`` and
    ``retyped_features`` come from data quality, which checks the features)."""
    roles = spec.columns.roles()
    the_plan = ref.plan
    predictions = [c for c in dict.fromkeys(
        [the_plan.prediction.name if the_plan.prediction else None,
         spec.columns.prediction_probability]) if c is not None]
    missing = [*missing_features, *(c for c in predictions if c not in current.columns)]
    retyped = list(retyped_features)
    for request in (the_plan.prediction, the_plan.target):
        profile = ref.profile.columns.get(request.name) if request is not None else None
        if profile is None or profile.name not in current.columns:
            continue
        series = current[profile.name]
        kind = "numeric" if is_numeric(series) else "categorical"
        if kind != profile.dtype_kind and series.notna().any():
            retyped.append((profile.name, profile.dtype_kind, kind))
    if not missing and not retyped:
        return SchemaChanges([], [])
    said: list[str] = []
    if missing:
        said.append("it lacks " + capped(
            [f"{c!r} ({_ROLE_FIELDS[roles[c]]})" if c in roles else repr(c) for c in missing]))
    said.extend(f"{c!r} holds {now} values where the reference holds {before} ones"
                for c, before, now in retyped)
    changed = [*missing, *(c for c, _, _ in retyped)]
    features = [c for c in changed if c not in roles]
    fixes: list[str] = []
    if features:
        named, it = capped([repr(c) for c in features]), "it" if len(features) == 1 else "them"
        fixes.append(f"restore {named} upstream, or list {it} in spec.columns.exclude"
                     if spec.columns.features is None else
                     f"restore {named} upstream, or remove {it} from spec.columns.features")
    fixes.extend(f"restore {c!r} upstream, or correct {_ROLE_FIELDS[roles[c]]}"
                 for c in dict.fromkeys(changed) if c in roles)
    message = (f"spec.current.source: the current window's columns changed: "
               f"{'; '.join(said)}. To fix: {'; '.join(fixes)}")
    return SchemaChanges(missing, retyped, message)


def _condition(type_: str, found: Sequence[Finding], yes: str, no: str, ok: str
               ) -> ConditionValue:
    """A problem condition: True with the first findings' messages, else False."""
    if found:
        return ConditionValue(type_, "True", yes, capped_lines([f.message for f in found], 5))
    return ConditionValue(type_, "False", no, ok)


def schema_failed_status(previous: ModelMonitorStatus, schema: SchemaChanges,
                         dq: DataQualityStatus, dq_findings: Sequence[Finding],
                         dq_condition: ConditionValue, now: datetime,
                         generation: int | None) -> ModelMonitorStatus:
    """Failing with InvalidData, yet with this check's data quality and its findings (the
    schema change among them); the other figures and findings are the previous ones."""
    failed = failed_status(previous, InvalidDataError(schema.message), now, generation)
    kept = [f for f in previous.findings if not f.name.startswith("dataQuality.")]
    return failed.model_copy(update={
        "data_quality": dq,
        "findings": [*kept, *dq_findings],
        "conditions": merge_conditions(failed.conditions, [dq_condition], now, generation),
    })


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
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    previous = previous or ModelMonitorStatus()
    try:
        status = _check(spec, base_dir=base_dir or Path.cwd(), now=now, previous=previous,
                        generation=generation, started=started, resolver=resolver,
                        cache=cache, cache_key=cache_key, cpu=cpu or NO_LIMIT,
                        policy=policy or Policy.local())
    except CheckError as exc:
        return failed_status(previous, exc, now, generation)
    except Exception as exc:  # a bug must fail this check, not the caller
        log.exception("check failed unexpectedly")
        error = CheckError(f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        return failed_status(previous, error, now, generation)
    return status


def failed_status(previous: ModelMonitorStatus, exc: CheckError, now: datetime,
                  generation: int | None) -> ModelMonitorStatus:
    """The previous figures, phase Failing, and Ready=False with the reason."""
    source_ok = not isinstance(exc, SourceUnavailableError)
    values = [ConditionValue("Ready", "False", exc.reason, str(exc))]
    values.append(ConditionValue("SourceAvailable", "True" if source_ok else "False",
                                 "SourcesRead" if source_ok else exc.reason,
                                 "both sources were read" if source_ok else str(exc)))
    phase = _phase_without_verdict(previous.phase) if isinstance(
        exc, InsufficientDataError) else "Failing"
    return previous.model_copy(update={
        "phase": phase,
        "observed_generation": generation,
        "conditions": merge_conditions(previous.conditions, values, now, generation),
    })


def _phase_without_verdict(previous: Phase) -> Phase:
    """The phase of a check that had too few rows for a verdict.

    Too few rows is no failure (the pipeline may just be quiet) but no evidence either:
    a problem the last verdict found (Drifting, Degraded) stands, so that its alerts do
    not resolve because data stopped arriving; anything else becomes Pending (no verdict),
    never Healthy. ModelMonitorStale fires if no check succeeds for three intervals.
    """
    return previous if previous in ("Drifting", "Degraded") else "Pending"


def _check(spec: ModelMonitorSpec, *, base_dir: Path, now: datetime,
           previous: ModelMonitorStatus, generation: int | None,
           started: float, resolver: Resolver | None = None,
           cache: ReferenceCache[FittedReference] | None = None,
           cache_key: Hashable = None,
           cpu: AbstractContextManager[object] = NO_LIMIT,
           policy: Policy | None = None) -> ModelMonitorStatus:
    policy = policy or Policy.local()
    ref = reference(spec, LoadContext(base_dir=base_dir, role="spec.reference.source",
                                      resolver=resolver, policy=policy),
                    cache, cache_key, generation, cpu)
    the_plan = ref.plan
    wanted = sorted({r.name for r in the_plan.requests} | set(spec.columns.roles()))
    start = (now - parse_duration(spec.current.window)) if spec.current.window else None
    cur_frame = _load(spec.current.source, LoadContext(
        base_dir=base_dir, role="spec.current.source", columns=wanted,
        window_start=start, window_end=now, resolver=resolver, policy=policy))
    cur_frame = window(spec, cur_frame, now)
    pred = spec.columns.prediction
    if pred is not None and pred not in cur_frame.columns and the_plan.prediction is None:
        raise InvalidDataError(
            f"spec.columns.prediction: the current window has no column {pred!r}")
    _too_few(len(cur_frame), spec, "the current window", "spec.current.source")
    # One pass: each current column is sorted or counted once for drift and quality.
    with cpu:
        scores = score_window(ref.profile, cur_frame,
                              workers=_workers(cpu, len(cur_frame), len(ref.profile.columns)))
    scored, q = scores.drift, scores.quality
    schema = schema_changes(spec, ref, cur_frame, q.missing_columns, q.type_changes)
    dq = DataQualityStatus(
        columns=[ColumnQuality(name=c.name, missing_fraction=c.missing_fraction,
                               outlier_fraction=c.outlier_fraction,
                               out_of_range_fraction=c.out_of_range_fraction,
                               new_categories=c.new_categories) for c in q.columns],
        missing_columns=schema.missing,
        type_changes=[TypeChange(name=n, reference=r, current=c) for n, r, c in schema.retyped])
    q_f = quality_findings(spec, dq)
    dq_condition = _condition("DataQualityDegraded", q_f, "BoundExceeded", "WithinBounds",
                              "every column is within its bounds")
    if schema:
        return schema_failed_status(previous, schema, dq, q_f, dq_condition, now, generation)
    features = [_drift_result(d) for d in scored if d.role == "feature"]
    by_role = {d.role: _drift_result(d) for d in scored if d.role != "feature"}
    drifted = [f.name for f in features if f.drifted]
    share = len(drifted) / len(features) if features else 0.0
    drift = DriftStatus(share=share, dataset_drift=bool(features) and
                        share >= spec.drift.dataset_drift_share,
                        drifted=drifted, features=features,
                        prediction=by_role.get("prediction"), target=by_role.get("target"))

    with cpu:
        performance, why_none = _performance(spec, cur_frame)
    figures = _operational(spec, LoadContext(
        base_dir=base_dir, role="spec.operational.source", window_start=start,
        window_end=now, resolver=resolver, policy=policy))

    d_f = drift_findings(spec, drift)
    p_f = performance_findings(spec, performance)
    o_f = operational_findings(figures)
    findings = [*d_f, *p_f, *q_f, *o_f]
    cond = _condition

    values = [
        ConditionValue("Ready", "True", "CheckSucceeded",
                       f"checked {len(cur_frame)} current rows against {ref.rows} "
                       "reference rows"),
        ConditionValue("SourceAvailable", "True", "SourcesRead", "both sources were read"),
        cond("DataDrift", d_f, "DriftDetected", "NoDrift",
             f"{len(drifted)} of {len(features)} features drifted"),
        cond("PerformanceDegraded", p_f, "OutOfBounds", "WithinBounds",
             "every metric is within its bounds"),
        dq_condition,
    ]
    if why_none is not None and spec.performance.metrics:
        values[3] = ConditionValue("PerformanceDegraded", "Unknown", "NoLabels", why_none)
    if spec.operational is not None:
        values.append(cond("OperationalDegraded", o_f, "OutOfBounds", "WithinBounds",
                           "every operational figure is within its bounds"))
    return ModelMonitorStatus(
        phase=phase_of(findings),
        observed_generation=generation,
        last_check=LastCheck(time=now, duration_seconds=round(time.perf_counter() - started, 6),
                             reference_rows=ref.rows, current_rows=len(cur_frame)),
        drift=drift,
        performance=performance,
        operational={f.name: f.value for f in figures if f.value is not None},
        data_quality=dq,
        findings=findings,
        conditions=merge_conditions(previous.conditions, values, now, generation),
    )
