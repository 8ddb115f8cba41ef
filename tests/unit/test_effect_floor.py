"""Effect sizes next to every test's p-value, and the floor (spec.drift.minEffect) that keeps
a big window from alarming on a shift too small to matter."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy import stats

from modelmon.api.v1alpha1 import DataQualityStatus, ModelMonitorSpec, ModelMonitorStatus
from modelmon.evaluation import Figures, judge, table
from modelmon.outputs.metrics import Metrics
from modelmon.stats.dataset import ColumnDrift
from modelmon.stats.drift import DriftResult, get_method, methods
from modelmon.stats.profile import CategoricalProfile, fit_numeric


def spec(**drift: Any) -> ModelMonitorSpec:
    return ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "r.csv"}},
        "current": {"source": {"url": "c.csv"}},
        "drift": drift})


def counts(values: dict[str, int]) -> CategoricalProfile:
    return CategoricalProfile(categories=tuple(values),
                              counts=np.array(list(values.values()), dtype=np.int64),
                              n_present=sum(values.values()), n_missing=0)


def score_numeric(name: str, reference: np.ndarray, current: np.ndarray) -> DriftResult:
    method = get_method(name, "numeric")
    return method.score(method.fit(fit_numeric(reference)), current)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ks", "cvm", "anderson"])
def test_numeric_tests_report_the_ks_distance(name: str) -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.normal(size=800), rng.normal(0.4, size=600)
    result = score_numeric(name, reference, current)
    assert result.effect_size == pytest.approx(stats.ks_2samp(reference, current).statistic,
                                               abs=1e-15)


def test_categorical_tests_report_cramers_v() -> None:
    reference, current = counts({"a": 700, "b": 300}), counts({"a": 560, "b": 440})
    table2 = np.array([[700, 300], [560, 440]])
    chi2 = stats.chi2_contingency(table2, correction=False).statistic
    want = math.sqrt(chi2 / table2.sum())
    for name in ("chisquare", "ztest"):
        result = get_method(name, "categorical").score(reference, current)  # type: ignore[arg-type]
        assert result.effect_size == pytest.approx(want, rel=1e-12), name
    three = counts({"a": 500, "b": 300, "c": 200}), counts({"a": 400, "b": 300, "c": 300})
    result = get_method("chisquare", "categorical").score(*three)  # type: ignore[arg-type]
    table3 = np.array([[500, 300, 200], [400, 300, 300]])
    assert result.effect_size == pytest.approx(math.sqrt(
        stats.chi2_contingency(table3, correction=False).statistic / table3.sum()))


def test_only_tests_have_an_effect_size() -> None:
    rng = np.random.default_rng(2)
    reference, current = rng.normal(size=300), rng.normal(size=300)
    for method in methods():
        if method.kind != "numeric":
            continue
        result = score_numeric(method.name, reference, current)
        assert (result.effect_size is not None) == method.uses_p_value, method.name


def _judged(monitor: ModelMonitorSpec, result: DriftResult) -> ModelMonitorStatus:
    figures = Figures(reference_rows=1, current_rows=1,
                      columns=[ColumnDrift("x", "feature", "numeric", result)],
                      quality=DataQualityStatus(), performance={}, not_computed={}, no_labels=None,
                      operational={})
    return judge(monitor, table(monitor), figures, previous=ModelMonitorStatus(),
                 now=datetime(2026, 12, 5, tzinfo=UTC), generation=1, duration_seconds=0.0)


@pytest.mark.parametrize(("rows", "shift", "flags"), [
    (1_000_000, 0.01, False), (1_000_000, 0.1, True), (1_000, 0.3, True)])
def test_the_default_floor_on_mean_shifts(rows: int, shift: float, flags: bool) -> None:
    """The issue's three cases: with the defaults, a 0.01 sigma shift at a million rows a
    side does not flag though the test rejects; 0.1 sigma at a million and 0.3 sigma at a
    thousand do."""
    rng = np.random.default_rng(11)
    result = score_numeric("ks", rng.normal(size=rows), rng.normal(shift, size=rows))
    assert result.p_value is not None and result.p_value < 0.05  # the test rejects
    (verdict,) = _judged(spec(), result).drift.features  # type: ignore[union-attr]
    assert verdict.effect_size == result.effect_size
    assert verdict.drifted is flags
    # Without the floor every one of them flags.
    (unfloored,) = _judged(spec(minEffect={"numeric": 0}), result).drift.features  # type: ignore[union-attr]
    assert unfloored.drifted


def test_the_categorical_floor_is_its_own() -> None:
    big = counts({"a": 500_000, "b": 500_000}), counts({"a": 502_000, "b": 498_000})
    result = get_method("chisquare", "categorical").score(*big)  # type: ignore[arg-type]
    assert result.p_value is not None and result.p_value < 0.05
    column = ColumnDrift("c", "feature", "categorical", result)
    figures = Figures(reference_rows=1, current_rows=1, columns=[column],
                      quality=DataQualityStatus(), performance={}, not_computed={}, no_labels=None,
                      operational={})
    for floor, drifted in ((0.02, False), (0.001, True)):
        monitor = spec(minEffect={"categorical": floor})
        status = judge(monitor, table(monitor), figures, previous=ModelMonitorStatus(),
                       now=datetime(2026, 12, 5, tzinfo=UTC), generation=1,
                       duration_seconds=0.0)
        assert status.drift is not None and status.drift.features[0].drifted is drifted


def test_the_floor_is_validated_and_documented() -> None:
    assert spec().drift.min_effect.numeric == 0.02
    assert spec().drift.min_effect.categorical == 0.02
    with pytest.raises(ValueError, match=r"minEffect\.numeric"):
        spec(minEffect={"numeric": 2})


def test_effect_sizes_are_exported() -> None:
    rng = np.random.default_rng(3)
    status = _judged(spec(), score_numeric("ks", rng.normal(size=500),
                                           rng.normal(1.0, size=500)))
    metrics = Metrics()
    metrics.observe("ns", "m", model="m", status=status, seconds=0.1, last_success=1.0,
                    error=None)
    (family,) = [f for f in metrics.registry.collect()
                 if f.name == "modelmon_drift_effect_size"]
    (sample,) = family.samples
    assert sample.labels["feature"] == "x" and sample.labels["method"] == "ks"
    assert sample.value == pytest.approx(status.drift.features[0].effect_size)  # type: ignore[union-attr]
