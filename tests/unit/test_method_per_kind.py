"""Drift methods per kind of column: spec.drift.numericMethod and categoricalMethod, and a
global method that applies only to the columns of the kinds it scores (issue 16, point 7).

A column's method: its own (drift.features.<name>.method), else its kind's method, else
drift.method where that applies to the kind, else auto.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from modelmon.api.errors import field_errors
from modelmon.api.v1alpha1 import (
    DriftSpec,
    FeatureKindName,
    ModelMonitorSpec,
    ModelMonitorStatus,
)
from modelmon.check import run_check
from modelmon.planning import plan
from modelmon.stats.dataset import LOW_CARDINALITY, ColumnRequest, fit_column
from modelmon.stats.drift import method_names

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def frame(n: int, seed: int) -> pd.DataFrame:
    """Two continuous features, a categorical one, a numeric one with few values, and a
    binary classifier's prediction and target."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(50, 10, n), "age": rng.normal(40, 12, n),
        "region": rng.choice(["n", "s", "e"], n), "rooms": rng.integers(1, 4, n),
        "approved": rng.integers(0, 2, n), "defaulted": rng.integers(0, 2, n),
    })


def spec(drift: dict[str, Any]) -> ModelMonitorSpec:
    return ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "columns": {"prediction": "approved", "target": "defaulted"},
        "drift": drift,
    })


def check(tmp_path: Path, drift: dict[str, Any], rows: int = 400) -> ModelMonitorStatus:
    frame(rows, 1).to_csv(tmp_path / "ref.csv", index=False)
    frame(rows, 2).to_csv(tmp_path / "cur.csv", index=False)
    return run_check(spec(drift), base_dir=tmp_path, now=NOW)


def methods(status: ModelMonitorStatus) -> dict[str, str]:
    """Column -> the method that scored it."""
    drift = status.drift
    assert drift is not None, status.conditions
    columns = [*drift.features, drift.prediction, drift.target]
    return {c.name: c.method for c in columns if c is not None}


def kinds(status: ModelMonitorStatus) -> dict[str, str]:
    drift = status.drift
    assert drift is not None
    columns = [*drift.features, drift.prediction, drift.target]
    return {c.name: c.kind for c in columns if c is not None}


@pytest.mark.parametrize("rows", [400, 1500])
def test_a_numeric_global_method_leaves_categorical_columns_on_auto(tmp_path: Path,
                                                                    rows: int) -> None:
    auto = check(tmp_path, {}, rows)
    st = check(tmp_path, {"method": "ks"}, rows)
    ready = st.condition("Ready")
    assert st.phase != "Failing" and ready is not None and ready.status == "True", ready
    got, by_auto = methods(st), methods(auto)
    numeric = [c for c, k in kinds(st).items() if k == "numeric"]
    assert {"income", "age", "rooms"} <= set(numeric)  # ks takes the few-valued column too
    assert all(got[c] == "ks" for c in numeric)
    categorical = [c for c, k in kinds(st).items() if k == "categorical"]
    assert {"region", "approved", "defaulted"} == set(categorical)
    assert all(got[c] == by_auto[c] for c in categorical), (got, by_auto)


def test_a_categorical_global_method_leaves_numeric_columns_on_auto(tmp_path: Path) -> None:
    auto = check(tmp_path, {})
    got, by_auto = methods(check(tmp_path, {"method": "tvd"})), methods(auto)
    assert got["income"] == by_auto["income"] == "ks"
    assert got["age"] == by_auto["age"]
    # region, the labels and the few-valued number that auto scores as categories: tvd
    assert {got[c] for c in ("region", "approved", "defaulted", "rooms")} == {"tvd"}


def test_kind_methods_are_honoured(tmp_path: Path) -> None:
    st = check(tmp_path, {"numericMethod": "cvm", "categoricalMethod": "psi"})
    assert st.phase != "Failing"
    got, kind = methods(st), kinds(st)
    assert got == {c: "cvm" if kind[c] == "numeric" else "psi" for c in got}
    assert kind["rooms"] == "numeric"  # an explicit numeric method scores every number


def test_precedence_own_then_kind_then_global_then_auto(tmp_path: Path) -> None:
    drift = {"method": "psi", "numericMethod": "ks",
             "features": {"age": {"method": "wasserstein"}, "region": {"method": "tvd"}}}
    got = methods(check(tmp_path, drift))
    assert got["age"] == "wasserstein" and got["region"] == "tvd"  # their own
    assert got["income"] == got["rooms"] == "ks"  # the kind's method before method
    assert got["approved"] == got["defaulted"] == "psi"  # method, which scores categories
    # numericMethod: auto hands numbers back to auto, method still takes the categories
    auto = methods(check(tmp_path, {}))
    got = methods(check(tmp_path, {"method": "psi", "numericMethod": "auto"}))
    assert got["income"] == auto["income"] and got["rooms"] == "psi"
    assert got["region"] == got["defaulted"] == "psi"


def test_plan_carries_each_kinds_method_and_only_a_columns_own() -> None:
    reference = frame(50, 1)
    columns = plan(spec({"method": "ks", "categoricalMethod": "tvd",
                         "features": {"age": {"method": "cvm"}}}), reference)
    by_name = {r.name: r for r in columns.requests}
    assert by_name["age"].method == "cvm" and by_name["income"].method == "auto"
    assert {(r.numeric_method, r.categorical_method) for r in columns.requests} == {
        ("ks", "tvd")}


def test_an_own_method_that_cannot_apply_is_still_invalid_spec(tmp_path: Path) -> None:
    st = check(tmp_path, {"method": "ks", "categoricalMethod": "chisquare",
                          "features": {"region": {"method": "ks"}}})
    ready = st.condition("Ready")
    assert st.phase == "Failing"
    assert ready is not None and ready.reason == "InvalidSpec"
    assert ready.message.startswith("spec.drift.features.region.method: "), ready.message
    assert "categorical" in ready.message


def test_the_fit_picks_by_the_kind_it_scores_the_column_as() -> None:
    few = pd.Series(np.resize(np.arange(LOW_CARDINALITY, dtype=float), 200))
    many = pd.Series(np.linspace(0.0, 1.0, 200))
    request = ColumnRequest("x", numeric_method="auto", categorical_method="tvd")
    fitted = fit_column(few, request, 200)
    assert (fitted.kind, fitted.method, fitted.by_auto) == ("categorical", "tvd", False)
    fitted = fit_column(many, request, 200)
    assert (fitted.kind, fitted.by_auto) == ("numeric", True)
    fitted = fit_column(few, ColumnRequest("x", numeric_method="energy"), 200)
    assert (fitted.kind, fitted.method, fitted.by_auto) == ("numeric", "energy", False)
    fitted = fit_column(few, ColumnRequest("x", categorical=True, numeric_method="ks"), 200)
    assert (fitted.kind, fitted.by_auto) == ("categorical", True)


def test_an_explicit_ztest_is_not_swapped_for_chisquare_on_a_new_category(
        tmp_path: Path) -> None:
    """auto's two-category ztest falls back to chisquare when the window brings a third
    category; a ztest the spec chose is kept."""
    ref = frame(400, 1)
    cur = frame(400, 2)
    ref["region"] = np.where(ref["region"] == "e", "n", ref["region"])
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    by_auto = methods(run_check(spec({}), base_dir=tmp_path, now=NOW))
    chosen = methods(run_check(spec({"categoricalMethod": "ztest"}), base_dir=tmp_path,
                               now=NOW + timedelta(minutes=1)))
    assert by_auto["region"] == "chisquare" and chosen["region"] == "ztest"


@pytest.mark.parametrize(("field", "kind", "other"), [
    ("numericMethod", "numeric", "chisquare"), ("categoricalMethod", "categorical", "ks"),
    ("numericMethod", "numeric", "kolmogorov")])
def test_a_kind_method_must_be_of_its_kind(field: str, kind: FeatureKindName,
                                           other: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec({field: other})
    [line] = field_errors(info.value)
    assert line.startswith(f"drift.{field}: "), line  # spec. in a whole document
    assert all(f"'{m}'" in line for m in method_names(kind))


@pytest.mark.parametrize(("drift", "valid"), [
    ({"numericMethod": "ks", "threshold": 5}, False),
    ({"categoricalMethod": "chisquare", "threshold": 5}, False),
    ({"method": "ks", "threshold": 5}, False),
    # ks never applies: numbers take wasserstein, categories auto
    ({"method": "ks", "numericMethod": "wasserstein", "threshold": 5}, True),
    ({"method": "psi", "threshold": 5}, True),
    ({"categoricalMethod": "ztest", "features": {"income": {"threshold": 3}}}, False),
    ({"categoricalMethod": "ztest", "features": {"income": {"method": "psi", "threshold": 3}}},
     True),
])
def test_p_value_thresholds_follow_the_methods_that_apply(drift: dict[str, Any],
                                                          valid: bool) -> None:
    if valid:
        DriftSpec.model_validate(drift)
        return
    with pytest.raises(ValidationError) as info:
        spec(drift)
    [line] = field_errors(info.value)
    assert "threshold: " in line and "p-value" in line, line
    chosen_by = next((f for f in ("numericMethod", "categoricalMethod") if f in drift), None)
    if chosen_by:
        assert f"spec.drift.{chosen_by}" in line, line
