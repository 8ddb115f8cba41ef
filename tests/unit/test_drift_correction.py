"""spec.drift.correction: the features' p-values adjusted for being tested together
(bonferroni, Benjamini-Hochberg), the verdicts on the adjusted ones, both in status."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from modelmon.api.v1alpha1 import DataQualityStatus, ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import run_check
from modelmon.evaluation import Figures, judge, table
from modelmon.stats.dataset import ColumnDrift
from modelmon.stats.drift import CORRECTIONS, DriftResult, adjusted_p_values


def spec(correction: str | None = None, **drift: Any) -> ModelMonitorSpec:
    body: dict[str, Any] = {
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "r.csv"}},
        "current": {"source": {"url": "c.csv"}},
        "drift": {**drift, **({"correction": correction} if correction else {})},
    }
    return ModelMonitorSpec.model_validate(body)


def test_bonferroni_multiplies_by_the_family_size_capped_at_one() -> None:
    assert adjusted_p_values([0.001, 0.02, 0.3], "bonferroni") == pytest.approx(
        [0.003, 0.06, 0.9])
    assert adjusted_p_values([0.5, 0.6], "bonferroni") == [1.0, 1.0]


def test_fdr_is_benjamini_hochberg_in_the_given_order() -> None:
    p_values = [0.04, 0.01, 0.03, 0.05, 0.02]
    # Sorted, p(i) * m / i = 0.05 each; the step-up minimum keeps them all at 0.05.
    assert adjusted_p_values(p_values, "fdr") == pytest.approx([0.05] * 5)
    by_hand = np.minimum.accumulate(np.sort([0.001, 0.02, 0.3])[::-1] * 3
                                     / np.arange(3, 0, -1))[::-1]
    assert adjusted_p_values([0.001, 0.02, 0.3], "fdr") == pytest.approx(list(by_hand))


def test_none_and_empty_families_are_unchanged_and_unknown_names_refused() -> None:
    assert adjusted_p_values([0.2, 0.01], "none") == [0.2, 0.01]
    assert adjusted_p_values([], "fdr") == []
    assert CORRECTIONS == ("none", "bonferroni", "fdr")
    with pytest.raises(ValueError, match="unknown correction 'holm'"):
        adjusted_p_values([0.1], "holm")


def _figures(p_values: list[float], distance: float | None = None) -> Figures:
    columns = [ColumnDrift(f"f{i}", "feature", "numeric", DriftResult("ks", 0.1, p))
               for i, p in enumerate(p_values)]
    if distance is not None:
        columns.append(ColumnDrift("w", "feature", "numeric",
                                   DriftResult("wasserstein", distance, None)))
    return Figures(reference_rows=100, current_rows=100, columns=columns,
                   quality=DataQualityStatus(), performance={}, not_computed={}, no_labels=None,
                   operational={})


def _judged(monitor: ModelMonitorSpec, figures: Figures) -> ModelMonitorStatus:
    return judge(monitor, table(monitor), figures, previous=ModelMonitorStatus(),
                 now=datetime(2026, 12, 5, tzinfo=UTC), generation=1, duration_seconds=0.0)


@pytest.mark.parametrize(("correction", "drifted"), [
    (None, ["f0", "f1", "w"]), ("bonferroni", ["f0", "w"]), ("fdr", ["f0", "w"])])
def test_verdicts_are_on_the_adjusted_p_values_and_distances_are_left_alone(
        correction: str | None, drifted: list[str]) -> None:
    p_values = [0.001, 0.02, 0.3, 0.5, 0.7, 0.9, 0.95, 0.6, 0.8, 0.4]
    status = _judged(spec(correction), _figures(p_values, distance=0.5))
    assert status.drift is not None
    assert status.drift.drifted == drifted
    by_name = {f.name: f for f in status.drift.features}
    assert [by_name[f"f{i}"].p_value for i in range(10)] == p_values  # raw kept
    if correction is None:
        assert all(f.adjusted_p_value is None for f in status.drift.features)
    else:
        want = adjusted_p_values(p_values, correction)
        assert [by_name[f"f{i}"].adjusted_p_value for i in range(10)] == pytest.approx(want)
        assert by_name["w"].adjusted_p_value is None
        dumped = status.model_dump(by_alias=True, mode="json")
        assert "adjustedPValue" in dumped["drift"]["features"][0]


def test_a_feature_finding_quotes_the_adjusted_p_value() -> None:
    monitor = spec("bonferroni", features={"f0": {"severity": "critical"}})
    status = _judged(monitor, _figures([0.001, 0.5, 0.5, 0.5]))
    (finding,) = [f for f in status.findings if f.name == "drift.feature.f0"]
    assert finding.value == pytest.approx(0.004)
    assert "adjusted p-value 0.004 < 0.05; p-value 0.001" in finding.message


def test_a_hundred_null_features_flag_by_chance_without_a_correction_only() -> None:
    """The issue's example: 100 undrifted features at 0.05 flag about five by chance on
    every check; with fdr, a chance rejection no longer fires."""
    rng = np.random.default_rng(7)
    none = fdr = 0
    for _ in range(50):
        p_values = list(rng.uniform(size=100))
        none += len(_judged(spec(), _figures(p_values)).drift.drifted)  # type: ignore[union-attr]
        fdr += len(_judged(spec("fdr"), _figures(p_values)).drift.drifted)  # type: ignore[union-attr]
    assert 3.0 <= none / 50 <= 7.0
    assert fdr / 50 <= 0.1


def test_the_spec_refuses_an_unknown_correction_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"drift\.correction"):
        spec("holm")
    assert spec().drift.correction == "none"


def test_a_check_reports_adjusted_p_values_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=400) for i in range(6)})
    cur = pd.DataFrame({f"x{i}": rng.normal(loc=0.6 if i == 0 else 0.0, size=400)
                        for i in range(6)})
    ref.to_csv(tmp_path / "r.csv", index=False)
    cur.to_csv(tmp_path / "c.csv", index=False)
    status = run_check(spec("fdr", method="ks"), base_dir=tmp_path)
    assert status.phase in ("Drifting", "Healthy"), status.conditions
    assert status.drift is not None
    by_name = {f.name: f for f in status.drift.features}
    raw = [by_name[f"x{i}"].p_value or 0.0 for i in range(6)]
    assert raw[0] == pytest.approx(stats.ks_2samp(ref["x0"], cur["x0"]).pvalue, rel=1e-6)
    assert [by_name[f"x{i}"].adjusted_p_value for i in range(6)] == pytest.approx(
        adjusted_p_values(raw, "fdr"))
    assert "x0" in status.drift.drifted
