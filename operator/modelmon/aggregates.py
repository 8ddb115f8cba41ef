"""Windows and references read as aggregates: the database, or an embedded DuckDB over a
``url`` source's files, counts what scoring needs and no row is fetched.

Between ``planning | streaming`` and ``check`` on the data line. ``current_aggregates``
asks for the current window's counts against the fitted reference (``aggregate_request``:
bins, range, fences, quantile grids, categories, label groups and error sums) through
``sources.pushdown`` (``sql.pushdown``) or ``sources.url.aggregated`` (``engine``), and
``window_sketches`` turns them into the sketches ``stats.sketch`` scores exactly as rows;
``fit_from_aggregates`` fits a reference the same way (``reference.source.sql.pushdown``);
``pushdown_performance`` computes the performance metrics from the label groups and sums.
``check`` runs the rest of the line (judging) as it does for rows.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.evaluation import InvalidDataError, InvalidSpecError, enough_rows
from modelmon.planning import ColumnPlan, no_labels, plan
from modelmon.sources import LoadContext
from modelmon.sources import pushdown as push
from modelmon.sources.url.aggregated import aggregate_url
from modelmon.stats import performance as perf
from modelmon.stats.dataset import (
    ColumnProfile,
    ColumnSpecError,
    ReferenceProfile,
    fitted_column,
    scored_kind,
)
from modelmon.stats.profile import (
    FeatureKind,
    aggregated_edges,
    aggregated_numeric,
    fit_ranks,
    grid_ranks,
)
from modelmon.stats.sketch import (
    GRID,
    GRIDDED,
    ColumnSketch,
    NumericSketch,
    counted_categories,
)
from modelmon.streaming import batch_rows, reading, window


def fit_from_aggregates(spec: ModelMonitorSpec, ctx: LoadContext
                        ) -> tuple[ColumnPlan, ReferenceProfile, int]:
    """The reference's plan, profile and rows fitted from aggregates
    (``reference.source.sql.pushdown``): three passes over the query's rows in one
    read-only transaction, no row fetched. 1: counts, distinct counts, extremes and sums
    of each numeric column, missing values of all (the kind each column is scored as
    follows); 2: the order statistics the quartiles, bin edges and quantile grid are read
    off, and the category counts of the columns scored as categories; 3: the counts per
    bin and the squared deviations about the mean."""
    with reading(), push.opened(spec.reference.source, ctx, None) as session:
        columns = plan(spec, pd.DataFrame(columns=session.columns))
        requests = {r.name: r for r in columns.requests}
        kinds = session.kinds
        unknown = [n for n in requests if kinds.get(n) == "unknown"]
        if unknown:
            raise InvalidDataError(
                f"spec.reference.source.sql.pushdown: the column types of {unknown[:5]} "
                f"are not read from {session.backend}'s driver; fit the reference from "
                "PostgreSQL or DuckDB, or turn reference pushdown off")
        first = session.run(push.AggregateRequest(
            numeric=tuple(push.NumericRequest(n, (), None, grid=False, distinct=True)
                          for n in requests if kinds.get(n) == "numeric"),
            columns=tuple(requests)))
        rows = first.rows
        enough_rows(rows, spec, "the reference", "spec.reference.source")
        dtype: dict[str, FeatureKind] = {
            n: "numeric" if n in first.numeric and first.nulls.get(n, 0) < rows
            else "categorical" for n in requests}
        scored = {n: scored_kind(r, dtype[n], first.numeric[n].distinct
                                 if dtype[n] == "numeric" else 0)
                  for n, r in requests.items()}
        finite = {n: first.numeric[n].finite for n in requests
                  if dtype[n] == "numeric" and first.numeric[n].finite}
        second = session.run(push.AggregateRequest(
            numeric=tuple(push.NumericRequest(
                n, (), None, grid=False,
                ranks=tuple(sorted(set(fit_ranks(f)) | set(grid_ranks(f, GRID).tolist()))))
                for n, f in finite.items()),
            categorical=tuple(n for n in requests if scored[n] == "categorical")))
        edges = {n: aggregated_edges(second.numeric[n].order, f)[2] for n, f in finite.items()}
        third = session.run(push.AggregateRequest(numeric=tuple(
            push.NumericRequest(n, tuple(float(e) for e in edges[n]), None, grid=False,
                                centre=first.numeric[n].total / f)
            for n, f in finite.items())))
    fitted: dict[str, ColumnProfile] = {}
    for name, request in requests.items():
        numeric = None
        if dtype[name] == "numeric":
            counts = first.numeric[name]
            numeric = aggregated_numeric(
                n_present=counts.finite, n_missing=rows - counts.finite,
                n_unique=counts.distinct, total=counts.total,
                centred_squares=third.numeric[name].centred if name in finite else 0.0,
                minimum=counts.minimum, maximum=counts.maximum,
                order=second.numeric[name].order if name in finite else {},
                bin_counts=third.numeric[name].bins if name in finite else (0,), steps=GRID)
        counted = second.categories.get(name)
        categorical = (counted_categories(counted.values, list(counted.counts), counted.missing)
                       if counted is not None else None)
        try:
            fitted[name] = fitted_column(request, dtype[name], scored[name], numeric,
                                         categorical, rows)
        except ColumnSpecError as exc:
            raise InvalidSpecError(f"spec.drift.features.{exc.column}.method: {exc}") from None
    return columns, ReferenceProfile(rows=rows, columns=fitted), rows


def aggregate_request(spec: ModelMonitorSpec, profile: ReferenceProfile
                      ) -> push.AggregateRequest:
    """What ``sql.pushdown`` asks the database for: each profiled column's counts against
    its reference (bins, range, fences; a quantile grid for columns scored by ks or
    wasserstein; category counts), missing counts, and the performance metrics' columns."""
    numeric: list[push.NumericRequest] = []
    categorical: list[str] = []
    for name, column in profile.columns.items():
        fitted = column.numeric
        if fitted is not None:
            bounds = ((fitted.minimum, fitted.maximum, fitted.lower_fence, fitted.upper_fence)
                      if fitted.n_present else None)
            # The grid costs the database a sort of the column: only where the method
            # reads it (a binned method's column summary then has no quantiles).
            numeric.append(push.NumericRequest(
                name, tuple(float(e) for e in fitted.bin_edges), bounds,
                grid=column.kind == "numeric" and column.method in GRIDDED))
        if column.categorical is not None:
            categorical.append(name)
    cols = spec.columns
    labels = None
    if cols.target is not None:
        labels = push.LabelRequest(
            spec.model.task, cols.target, cols.prediction,
            cols.prediction_probability if spec.model.task == perf.BINARY else None)
    named = [*profile.columns, *(c for c in (cols.target, cols.prediction,
                                                 cols.prediction_probability) if c)]
    return push.AggregateRequest(
        numeric=tuple(numeric), categorical=tuple(categorical),
        columns=tuple(dict.fromkeys(named)),
        timestamp=cols.timestamp if spec.current.window else None, labels=labels, grid=GRID)


def window_sketches(profile: ReferenceProfile, found: push.Aggregates
                    ) -> dict[str, ColumnSketch]:
    """The sketch of each profiled column the window has, from the database's counts."""
    out: dict[str, ColumnSketch] = {}
    rows = found.rows
    for name, column in profile.columns.items():
        kind = found.kinds.get(name)
        if kind is None:
            continue
        missing = found.nulls.get(name, 0)
        if kind not in ("numeric", "categorical"):
            kind = column.dtype_kind
        if rows and missing == rows:
            kind = "categorical"  # row mode reads a column of NULLs as objects
        counts = found.numeric.get(name)
        numeric = None
        if counts is not None and column.numeric is not None:
            numeric = NumericSketch(
                bin_counts=np.array(counts.bins, dtype=np.int64), neg_inf=counts.neg_inf,
                pos_inf=counts.pos_inf, minimum=counts.minimum, maximum=counts.maximum,
                below_range=counts.below_range, above_range=counts.above_range,
                below_fence=counts.below_fence, above_fence=counts.above_fence,
                total=counts.total, squares=counts.squares,
                quantiles=np.array(counts.grid or (), dtype=np.float64))
        counted = found.categories.get(name)
        categories = (counted_categories(counted.values, list(counted.counts), counted.missing)
                      if counted is not None and column.categorical is not None else None)
        out[name] = ColumnSketch(rows, missing, kind,  # type: ignore[arg-type]
                                 numeric, categories)
    return out


def stand_in(found: push.Aggregates) -> pd.DataFrame:
    """One row per column of the window's kind (None for a column of missing values): what
    ``evaluation.schema_changes`` reads of a window's columns."""
    data: dict[str, list[object]] = {}
    for name, kind in found.kinds.items():
        empty = found.rows > 0 and found.nulls.get(name, 0) >= found.rows
        data[name] = [None] if empty else [0.0] if kind == "numeric" else ["x"]
    return pd.DataFrame(data)


def current_aggregates(spec: ModelMonitorSpec, columns: ColumnPlan, profile: ReferenceProfile,
                       ctx: LoadContext) -> push.Aggregates:
    """The current window as aggregates: the database's (``sql.pushdown``), or an
    embedded DuckDB's over a url source's files (``engine``)."""
    request = aggregate_request(spec, profile)
    source = spec.current.source
    with reading():
        if source.url is not None:  # engine: the files streamed into DuckDB
            now = ctx.window_end or datetime.now(UTC)
            found = aggregate_url(source, ctx, request, lambda b: window(spec, b, now),
                                  batch_rows(ctx.policy.max_memory or DEFAULT_BATCH_MEMORY,
                                             len(request.columns) + 1))
        else:
            found = push.aggregate(source, ctx, request)
    prediction = spec.columns.prediction
    if (prediction is not None and prediction not in found.kinds
            and columns.prediction is None):
        raise InvalidDataError(
            f"spec.columns.prediction: the current window has no column {prediction!r}")
    enough_rows(found.rows, spec, "the current window", "spec.current.source")
    return found


def pushdown_performance(spec: ModelMonitorSpec, found: push.Aggregates
                         ) -> tuple[perf.Computed, str | None]:
    """``performance`` from the database's groups and sums: the same values, reasons and
    errors."""
    cols = spec.columns
    why = no_labels(cols.target, lambda name: name in found.kinds,
                     lambda name: found.nulls.get(name, 0) >= found.rows)
    if why is not None or cols.target is None:
        return perf.Computed(), why
    task = spec.model.task
    names: list[str] = [m.name for m in spec.performance.metrics]
    available = [c for c in (cols.prediction, cols.prediction_probability)
                 if c is not None and c in found.kinds]
    if not names:
        names = [n for n in perf.metric_names(task) if n != "rocAuc"
                 and (n not in ("logLoss", "brier") or cols.prediction_probability in available)]
    prediction = cols.prediction if cols.prediction in available else None
    probability = cols.prediction_probability if cols.prediction_probability in available \
        else None
    try:
        if prediction is None and (task != perf.BINARY or probability is None):
            raise perf.PerformanceInputError(
                "needs columns.prediction" + (" or columns.predictionProbability"
                                              if task == perf.BINARY else ""))
        if task == perf.REGRESSION:
            if found.regression is None:
                raise ValueError("the target and prediction columns must hold numbers")
            return perf.compute_from_sums(names, perf.ErrorSums(
                **dataclasses.asdict(found.regression))), None
        got = found.labels
        if got is None:
            raise perf.PerformanceInputError("no row has both the target and a prediction")
        sums = bool(got.log_loss_positive)

        def array(values: tuple[float, ...]) -> NDArray[np.float64] | None:
            return np.array(values, dtype=np.float64) if sums else None

        groups = perf.LabelGroups(
            labels=got.labels,
            predictions=got.predictions if prediction is not None else None,
            above=(None if prediction is not None
                   else got.predictions.to_numpy(dtype=np.int64) == 1),
            counts=np.array(got.counts, dtype=np.int64),
            log_loss_positive=array(got.log_loss_positive),
            log_loss_negative=array(got.log_loss_negative),
            brier_positive=array(got.brier_positive),
            brier_negative=array(got.brier_negative),
            score_min=got.score_min, score_max=got.score_max)
        return perf.compute_from_groups(task, names, groups, cols.positive_label), None
    except perf.PerformanceInputError as exc:
        if spec.performance.metrics:
            raise InvalidDataError(f"spec.performance.metrics: {exc}") from None
        return perf.Computed(), None
    except ValueError as exc:
        raise InvalidDataError(f"spec.performance.metrics: {str(exc)[:200]}") from None


#: Why a window read as aggregates has no confidence figures (after the field that
#: makes it aggregates).
NO_PUSHDOWN_CONFIDENCE = (": confidence figures need every probability of the window; not "
                          "computed from aggregates")
#: Memory the batches handed to an engine are sized for when the check has no limit.
DEFAULT_BATCH_MEMORY = 256 << 20
