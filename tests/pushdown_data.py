"""One prediction log for the pushdown tests: the same rows in PostgreSQL and DuckDB, checked
in row mode and with ``sql.pushdown``, and the comparison of the two statuses."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelmon.api.v1alpha1 import ModelMonitorSpec, ModelMonitorStatus
from modelmon.stats.dataset import ReferenceProfile

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=6)
#: (numeric method, categorical method) pairs, every method pushdown scores.
METHODS = [("psi", "psi"), ("jensenshannon", "jensenshannon"), ("kl", "hellinger"),
           ("hellinger", "tvd"), ("ks", "chisquare"), ("wasserstein", "jensenshannon")]
COLUMNS = ("ts", "income", "age", "amount", "region", "flag", "score", "approved",
           "defaulted", "cls", "pred_cls", "y", "yhat")


def log(seed: int, rows: int, *, shift: float, start: datetime,
        step: timedelta = timedelta(minutes=1)) -> pd.DataFrame:
    """Rows ``step`` apart from ``start``: numbers with ties, NULLs, NaN, infinities and
    values beyond the reference's range; categories with NULLs and a new one."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + 10 * shift, 10, rows)
    income[rng.random(rows) < 0.02] = np.nan
    income[rng.random(rows) < 0.01] = np.inf
    income[rng.random(rows) < 0.01] = -np.inf
    income[rng.random(rows) < 0.01] = 1e4
    age = rng.integers(18, 80, rows).astype(object)
    age[rng.random(rows) < 0.03] = None
    regions = ["n", "s", "e", "w"] if shift else ["n", "s", "e"]
    region = rng.choice(regions, rows).astype(object)
    region[rng.random(rows) < 0.03] = None
    score = 1 / (1 + np.exp(-(income - 50) / 10))
    score = np.where(np.isfinite(score), np.round(score, 3), 0.5)
    truth = (rng.random(rows) < score).astype(int)
    cls = rng.choice(["a", "b", "c"], rows)
    y = rng.normal(100, 15, rows)
    return pd.DataFrame({
        "ts": [start + step * i for i in range(rows)],
        "income": income, "age": age, "amount": np.round(rng.gamma(2, 50, rows), 2),
        "region": region, "flag": rng.choice([True, False], rows),
        "score": score, "approved": (score >= 0.5).astype(int), "defaulted": truth,
        "cls": cls, "pred_cls": np.where(rng.random(rows) < 0.7, cls,
                                         rng.choice(["a", "b", "c"], rows)),
        "y": y, "yhat": y + rng.normal(1, 5, rows),
    })


def reference_rows() -> pd.DataFrame:
    return log(1, 3000, shift=0.0, start=NOW - timedelta(days=30))


#: Rows of the current log inside the 6-hour window: more than the quantile grid's 1,000
#: steps, so that ks and wasserstein are read off the grid.
WINDOW_ROWS = 2160


def current_rows() -> pd.DataFrame:
    # 8 hours of rows 10 s apart: the first two hours fall outside the 6-hour window.
    return log(2, 2880, shift=0.3, start=NOW - timedelta(hours=8),
               step=timedelta(seconds=10))


def monitor(task: str, numeric: str, categorical: str, *, pushdown: bool,
            current_query: str = "SELECT * FROM current_log",
            reference_query: str = "SELECT * FROM reference_log") -> ModelMonitorSpec:
    columns: dict[str, Any] = {"timestamp": "ts"}
    metrics: list[str]
    if task == "binaryClassification":
        columns.update(prediction="approved", predictionProbability="score",
                       target="defaulted", exclude=["cls", "pred_cls", "y", "yhat"])
        metrics = ["accuracy", "precision", "recall", "f1", "logLoss", "brier"]
    elif task == "multiclassClassification":
        columns.update(prediction="pred_cls", target="cls",
                       exclude=["score", "approved", "defaulted", "y", "yhat"])
        metrics = ["accuracy", "precisionMacro", "recallMacro", "f1Macro",
                   "precisionWeighted", "recallWeighted", "f1Weighted"]
    else:
        columns.update(prediction="yhat", target="y",
                       exclude=["score", "approved", "defaulted", "cls", "pred_cls"])
        metrics = ["mae", "rmse", "mape", "r2"]
    secret = {"connectionSecretRef": {"name": "db", "key": "url"}}
    return ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": task},
        "reference": {"source": {"sql": {**secret, "query": reference_query}}},
        "current": {"source": {"sql": {**secret, "query": current_query,
                                       "pushdown": pushdown}},
                    "window": "6h", "minRows": 10},
        "columns": {**columns, "categorical": ["flag"]},
        "drift": {"numericMethod": numeric, "categoricalMethod": categorical},
        "performance": {"metrics": [{"name": m, "min": 0.0} if m not in ("logLoss", "brier",
                                                                      "mae", "rmse", "mape")
                                    else {"name": m, "max": 1e9} for m in metrics]},
    })


def reference_pushed(spec: ModelMonitorSpec) -> ModelMonitorSpec:
    """The spec with reference.source.sql.pushdown on."""
    doc = spec.model_dump(by_alias=True, exclude_none=True)
    doc["reference"]["source"]["sql"]["pushdown"] = True
    return ModelMonitorSpec.model_validate(doc)


def close(got: float | None, want: float | None, bound: float = 1e-9) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, abs_tol=bound, rel_tol=1e-9)


def assert_same(rows: ModelMonitorStatus, pushed: ModelMonitorStatus) -> list[float]:
    """The pushdown status against row mode's: every exact figure equal to 1e-9, ks and
    wasserstein within their stated bound (returned, one per such column)."""
    assert rows.phase == pushed.phase, (rows.conditions, pushed.conditions)
    assert rows.drift is not None and pushed.drift is not None
    pairs = list(zip(rows.drift.features, pushed.drift.features, strict=True))
    for extra in ("prediction", "target"):
        want, got = getattr(rows.drift, extra), getattr(pushed.drift, extra)
        assert (want is None) == (got is None)
        if want is not None:
            pairs.append((want, got))
    bounds = []
    for want, got in pairs:
        assert (got.name, got.kind, got.method) == (want.name, want.kind, want.method)
        if got.statistic_error_bound is None:
            assert close(got.statistic, want.statistic), (got, want)
            assert close(got.p_value, want.p_value), (got, want)
            assert close(got.effect_size, want.effect_size), (got, want)
            assert got.drifted == want.drifted
        else:
            assert got.method in ("ks", "wasserstein")
            assert want.statistic is not None and got.statistic is not None
            assert abs(got.statistic - want.statistic) <= got.statistic_error_bound + 1e-12
            bounds.append(got.statistic_error_bound)
    assert rows.data_quality is not None and pushed.data_quality is not None
    assert rows.data_quality.missing_columns == pushed.data_quality.missing_columns
    assert rows.data_quality.type_changes == pushed.data_quality.type_changes
    for want_q, got_q in zip(rows.data_quality.columns, pushed.data_quality.columns,
                             strict=True):
        assert got_q.name == want_q.name
        assert got_q.new_categories == want_q.new_categories
        for field in ("missing_fraction", "outlier_fraction", "out_of_range_fraction"):
            assert close(getattr(got_q, field), getattr(want_q, field)), (field, got_q, want_q)
    assert rows.performance.keys() == pushed.performance.keys()
    assert rows.performance, "the window has performance figures"
    for name, value in rows.performance.items():
        assert pushed.performance[name] == pytest.approx(value, abs=1e-9, rel=1e-9), name
    return bounds


def assert_same_profiles(rows: ReferenceProfile, pushed: ReferenceProfile) -> None:
    """A reference fitted from aggregates against the one fitted from the rows: the same
    kinds and methods, bin edges and counts, categories; moments and quartiles to 1e-9;
    the sorted values themselves when the grid holds them all, else the grid's midpoints
    between the values' own order statistics."""
    assert rows.rows == pushed.rows
    assert list(rows.columns) == list(pushed.columns)
    for name, want in rows.columns.items():
        got = pushed.columns[name]
        assert (got.dtype_kind, got.kind, got.method, got.by_auto) == (
            want.dtype_kind, want.kind, want.method, want.by_auto), name
        assert (got.numeric is None) == (want.numeric is None), name
        if want.numeric is not None and got.numeric is not None:
            w, g = want.numeric, got.numeric
            assert (g.n_present, g.n_missing, g.n_unique) == (
                w.n_present, w.n_missing, w.n_unique), name
            assert np.array_equal(g.bin_edges, w.bin_edges), name
            assert np.array_equal(g.bin_counts, w.bin_counts), name
            for field in ("mean", "std", "minimum", "maximum", "lower_quartile",
                          "upper_quartile"):
                assert close(getattr(g, field), getattr(w, field)), (name, field)
            if g.quantiles is None:
                assert np.array_equal(g.sorted_values, w.sorted_values), name
            else:
                assert g.n_present > g.quantiles.size - 1
                ranks = np.maximum(-((-np.arange(g.quantiles.size) * g.n_present)
                                     // (g.quantiles.size - 1)), 1)
                assert np.array_equal(g.quantiles, w.sorted_values[ranks - 1]), name
        assert (got.categorical is None) == (want.categorical is None), name
        if want.categorical is not None and got.categorical is not None:
            assert got.categorical.categories == want.categorical.categories, name
            assert np.array_equal(got.categorical.counts, want.categorical.counts), name
            assert got.categorical.n_missing == want.categorical.n_missing, name


#: The log's columns as a DuckDB table declares them (DECIMAL, BOOLEAN and INTEGER labels
#: included, so that the drivers' types are exercised).
DUCKDB_TABLE = ("(ts TIMESTAMPTZ, income DOUBLE, age BIGINT, amount DECIMAL(10, 2), "
                "region VARCHAR, flag BOOLEAN, score DOUBLE, approved INTEGER, "
                "defaulted INTEGER, cls VARCHAR, pred_cls VARCHAR, y DOUBLE, yhat DOUBLE)")


def duckdb_log(path: Path) -> Path:
    """A DuckDB file at ``path`` with the tables reference_log and current_log."""
    import duckdb

    con = duckdb.connect(str(path))
    for name, frame in (("reference_log", reference_rows()), ("current_log", current_rows())):
        con.register("frame", frame[list(COLUMNS)])
        con.execute(f"CREATE TABLE {name} {DUCKDB_TABLE}")
        con.execute(f"INSERT INTO {name} SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    return path
