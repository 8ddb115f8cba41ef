"""Learned thresholds (spec.drift.learnThreshold): a distance column's threshold learned
from reference chunks of the window's size scored against the rest of the reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelmon.api.v1alpha1 import FeatureDriftResult, ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import FittedReference, InvalidSpecError, parse_spec, run_check
from modelmon.cli import render_table
from modelmon.evaluation import MIN_CHUNKS, column_threshold
from modelmon.sources import ReferenceCache
from modelmon.stats.dataset import ChunkDistances, chunk_size
from modelmon.stats.drift import CategoricalMethod, NumericMethod, get_method
from modelmon.stats.drift.learned import MAX_CHUNKS, chunk_distances
from modelmon.stats.profile import fit_categorical, fit_numeric

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LEARN = {"numericMethod": "wasserstein", "categoricalMethod": "jensenshannon",
         "learnThreshold": {"enabled": True}}


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(50 + 10 * shift, 10, n),
        "age": rng.normal(40, 12, n),
        "region": rng.choice(["n", "s", "e", "w"], n, p=[0.4, 0.3, 0.2, 0.1]),
    })


def numeric(name: str) -> NumericMethod:
    method = get_method(name, "numeric")
    assert isinstance(method, NumericMethod)
    return method


def categorical(name: str) -> CategoricalMethod:
    method = get_method(name, "categorical")
    assert not isinstance(method, NumericMethod)
    return method


def monitor(**drift: Any) -> ModelMonitorSpec:
    return ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "regression"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "drift": drift})


def check(tmp_path: Path, reference: pd.DataFrame, window: pd.DataFrame,
          spec: ModelMonitorSpec, cache: ReferenceCache[FittedReference] | None = None,
          minutes: int = 0) -> ModelMonitorStatus:
    if cache is None or not (tmp_path / "ref.csv").exists():  # unchanged: kept in cache
        reference.to_csv(tmp_path / "ref.csv", index=False)
    window.to_csv(tmp_path / "cur.csv", index=False)
    status = run_check(spec, base_dir=tmp_path, now=NOW + timedelta(minutes=minutes),
                       cache=cache, cache_key="m")
    assert status.phase != "Failing", status.conditions
    return status


def column(status: ModelMonitorStatus, name: str) -> FeatureDriftResult:
    assert status.drift is not None
    return next(f for f in status.drift.features if f.name == name)


# ---------------------------------------------------------------------- the verdicts


def test_a_window_like_the_reference_passes_and_a_shifted_one_drifts(tmp_path: Path) -> None:
    reference = frame(20_000, seed=1)
    same = check(tmp_path, reference, frame(1000, seed=2), monitor(**LEARN))
    assert same.drift is not None and same.drift.drifted == [], same.drift
    for feature in same.drift.features:
        assert feature.threshold_source == "learned", feature
        assert feature.message is not None and "threshold learned from" in feature.message
        assert feature.statistic is not None and feature.statistic < feature.threshold
    shifted = check(tmp_path, reference, frame(1000, seed=2, shift=0.3), monitor(**LEARN))
    income = column(shifted, "income")
    assert income.drifted and income.threshold_source == "learned"
    assert not column(shifted, "age").drifted
    # The fixed default (0.1) misses the same shift, which the reference's own chunks of
    # 1000 rows show to be well beyond sampling noise.
    fixed = check(tmp_path, reference, frame(1000, seed=2, shift=0.3),
                  monitor(numericMethod="wasserstein"))
    assert column(fixed, "income").threshold == 0.1
    assert column(fixed, "income").threshold_source == "default"
    assert income.threshold < 0.1


def test_same_distribution_windows_rarely_cross_the_learned_threshold() -> None:
    """Over many windows drawn from the reference's distribution, the learned threshold
    (mean + 3 std of the chunk distances) is crossed by few: about 1 %, at most 5 %
    (spec.drift.learnThreshold.multiple)."""
    rng = np.random.default_rng(7)
    spec = monitor(learnThreshold={"enabled": True})
    for name, size in (("wasserstein", 200), ("psi", 500), ("energy", 1000)):
        method = numeric(name)
        profile = method.fit(fit_numeric(rng.normal(size=20_000)))
        learned = chunk_distances(method, profile, 20_000, size)
        threshold = column_threshold(spec, "x", 0.1, False, learned)
        assert threshold.source == "learned"
        crossed = [(method.score(profile, rng.normal(size=size)).statistic or 0.0)
                   >= threshold.value for _ in range(400)]
        assert np.mean(crossed) <= 0.06, name
        shifted = [(method.score(profile, rng.normal(0.5, size=size)).statistic or 0.0)
                   >= threshold.value for _ in range(50)]
        assert np.mean(shifted) >= 0.9, name


def test_smaller_windows_learn_larger_thresholds(tmp_path: Path) -> None:
    reference = frame(20_000, seed=1)
    thresholds = {}
    for rows in (150, 1500):
        status = check(tmp_path, reference, frame(rows, seed=3), monitor(**LEARN))
        thresholds[rows] = {f.name: f.threshold for f in status.drift.features}  # type: ignore[union-attr]
        assert all(f.threshold_source == "learned" for f in status.drift.features)  # type: ignore[union-attr]
    for name in ("income", "age", "region"):
        # Distances between samples shrink about as 1/sqrt(rows): 10x the rows, ~3x smaller.
        assert thresholds[150][name] > 2 * thresholds[1500][name], name


def test_categorical_distances_learn_too() -> None:
    rng = np.random.default_rng(4)
    shares = [0.5, 0.3, 0.15, 0.05]
    profile = fit_categorical(rng.choice(list("abcd"), 10_000, p=shares))
    for name in ("tvd", "jensenshannon", "psi", "hellinger"):
        method = categorical(name)
        learned = chunk_distances(method, profile, 10_000, 400)
        assert learned.chunks == 25 and learned.scored == MAX_CHUNKS
        threshold = column_threshold(monitor(learnThreshold={"enabled": True}), "x", 0.1,
                                     False, learned).value
        window = fit_categorical(rng.choice(list("abcd"), 400, p=shares))
        moved = fit_categorical(rng.choice(list("abcd"), 400, p=[0.35, 0.3, 0.2, 0.15]))
        assert (method.score(profile, window).statistic or 0.0) < threshold, name
        assert (method.score(profile, moved).statistic or 0.0) >= threshold, name


# ------------------------------------------------------------------ the computation


def test_chunk_distances_are_deterministic_and_capped() -> None:
    method = numeric("wasserstein")
    values = np.random.default_rng(5).normal(size=5000)
    profile = method.fit(fit_numeric(values))
    first = chunk_distances(method, profile, 5000, 50)
    again = chunk_distances(method, method.fit(fit_numeric(values[::-1].copy())), 5000, 50)
    assert first == again  # same values in another row order: the same chunks
    assert first.chunks == 100 and first.scored == MAX_CHUNKS
    assert first.mean > 0 and first.std > 0
    # Fewer chunks than MAX_CHUNKS: more come from further permutations.
    halves = chunk_distances(method, profile, 5000, 2500)
    assert halves.chunks == 2 and halves.scored == MAX_CHUNKS
    assert chunk_distances(method, profile, 5000, 2501).scored == 0  # one chunk: none
    assert chunk_distances(method, profile, 5000, 50, seed=17) != first


def test_missing_values_are_dealt_into_every_chunk() -> None:
    """A reference with missing values makes chunks of its rows, so each chunk holds its
    share of present values (here half of the 400 rows)."""
    method = numeric("wasserstein")
    values = np.random.default_rng(6).normal(size=8000)
    values[::2] = np.nan
    profile = method.fit(fit_numeric(values))
    learned = chunk_distances(method, profile, 8000, 400)
    assert learned.chunks == 20
    dense = method.fit(fit_numeric(values[1::2].copy()))
    # The same present values in chunks of 200 values each: the same distances.
    assert chunk_distances(method, dense, 4000, 200) == ChunkDistances(
        200, 20, learned.scored, learned.mean, learned.std)


def test_window_sizes_are_rounded_to_eight_sizes_per_doubling() -> None:
    assert chunk_size(10) == 10
    assert chunk_size(1000) == chunk_size(1020) == chunk_size(1040) == 1024
    sizes = {chunk_size(n) for n in range(1000, 2000)}
    assert len(sizes) == 9  # one doubling, both ends
    for n in (100, 1000, 12_345, 1_000_000):
        assert abs(chunk_size(n) / n - 1) < 0.045


def test_computed_once_for_a_steady_window_size(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from modelmon.stats.dataset import thresholds
    from modelmon.stats.drift import learned

    calls: list[tuple[int, int]] = []
    real = learned.chunk_distances

    def counting(method: Any, profile: Any, rows: int, chunk_rows: int,
                 seed: int) -> ChunkDistances:
        calls.append((rows, chunk_rows))
        return real(method, profile, rows, chunk_rows, seed)

    monkeypatch.setattr(thresholds, "chunk_distances", counting)
    reference = frame(20_000, seed=1)
    cache: ReferenceCache[FittedReference] = ReferenceCache()
    spec = monitor(**LEARN)
    first = check(tmp_path, reference, frame(1000, seed=2), spec, cache)
    assert len(calls) == 3  # income, age, region
    for minute, rows in enumerate((1000, 1010, 990), start=1):  # one chunk size: 1024
        again = check(tmp_path, reference, frame(rows, seed=10 + minute), spec, cache, minute)
        assert column(again, "income").threshold == column(first, "income").threshold
    assert len(calls) == 3
    check(tmp_path, reference, frame(500, seed=9), spec, cache, 5)
    assert len(calls) == 6 and {c for _, c in calls} == {1024, 512}
    assert cache.builds == 1


def test_spec_chunk_rows_fixes_the_chunk_size(tmp_path: Path) -> None:
    spec = monitor(**{**LEARN, "learnThreshold": {"enabled": True, "chunkRows": 500}})
    status = check(tmp_path, frame(20_000, seed=1), frame(1500, seed=2), spec)
    message = column(status, "income").message or ""
    assert f"{MAX_CHUNKS} reference chunks of 500 rows" in message


# --------------------------------------------------------------- fallback and choice


def test_too_small_a_reference_falls_back_with_a_message(tmp_path: Path) -> None:
    status = check(tmp_path, frame(5000, seed=1), frame(1000, seed=2), monitor(**LEARN))
    income = column(status, "income")
    assert income.threshold == 0.1 and income.threshold_source == "default"
    assert income.message is not None
    assert "threshold not learned" in income.message
    assert f"fewer than the {MIN_CHUNKS}" in income.message
    assert "the fixed threshold 0.1 applies" in income.message
    # spec.drift.threshold is the fixed threshold it falls back to.
    status = check(tmp_path, frame(5000, seed=1), frame(1000, seed=2),
                   monitor(**LEARN, threshold=0.2))
    assert column(status, "income").threshold == 0.2
    assert column(status, "income").threshold_source == "spec"


def test_no_spread_in_the_reference_falls_back() -> None:
    method = categorical("tvd")
    profile = fit_categorical(np.array(["a"] * 5000))
    learned = chunk_distances(method, profile, 5000, 100)
    assert learned.scored == MAX_CHUNKS and learned.mean == 0 and learned.std == 0
    chosen = column_threshold(monitor(learnThreshold={"enabled": True}), "x", 0.1, False,
                              learned)
    assert chosen.value == 0.1 and chosen.source == "default"
    assert chosen.note is not None and "at distance 0" in chosen.note
    floored = column_threshold(
        monitor(learnThreshold={"enabled": True, "minimum": 0.05}), "x", 0.1, False, learned)
    assert floored.value == 0.05 and floored.source == "learned"


def test_a_features_own_threshold_wins_and_tests_are_untouched(tmp_path: Path) -> None:
    spec = monitor(**LEARN, threshold=0.5, features={"age": {"threshold": 0.07}})
    status = check(tmp_path, frame(20_000, seed=1), frame(1000, seed=2), spec)
    age, income = column(status, "age"), column(status, "income")
    assert age.threshold == 0.07 and age.threshold_source == "spec"
    assert age.message is None
    # The learned threshold replaces spec.drift.threshold for a distance.
    assert income.threshold_source == "learned" and income.threshold < 0.5
    tested = check(tmp_path, frame(20_000, seed=1), frame(1000, seed=2),
                   monitor(method="ks", categoricalMethod="chisquare",
                           learnThreshold={"enabled": True}))
    for feature in tested.drift.features:  # type: ignore[union-attr]
        assert feature.threshold == 0.05 and feature.threshold_source == "default"


def test_the_minimum_is_a_floor() -> None:
    method = numeric("wasserstein")
    profile = method.fit(fit_numeric(np.random.default_rng(8).normal(size=100_000)))
    learned = chunk_distances(method, profile, 100_000, 5000)
    plain = column_threshold(monitor(learnThreshold={"enabled": True}), "x", 0.1, False,
                             learned)
    assert plain.value == pytest.approx(learned.mean + 3 * learned.std)
    floored = column_threshold(monitor(learnThreshold={"enabled": True, "minimum": 0.2}),
                               "x", 0.1, False, learned)
    assert floored.value == 0.2 and floored.source == "learned"
    assert floored.note is not None and "learnThreshold.minimum" in floored.note
    wider = column_threshold(monitor(learnThreshold={"enabled": True, "multiple": 5}),
                             "x", 0.1, False, learned)
    assert wider.value == pytest.approx(learned.mean + 5 * learned.std)


def test_off_by_default(tmp_path: Path) -> None:
    status = check(tmp_path, frame(20_000, seed=1), frame(1000, seed=2),
                   monitor(numericMethod="wasserstein"))
    assert all(f.threshold == 0.1 and f.threshold_source == "default" and f.message is None
               for f in status.drift.features)  # type: ignore[union-attr]


def test_the_table_marks_learned_thresholds(tmp_path: Path) -> None:
    status = check(tmp_path, frame(20_000, seed=1), frame(1000, seed=2), monitor(**LEARN))
    text = render_table("m", status)
    assert text.count("(learned)") == 3


# ------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(("learn", "field"), [
    ({"enabled": True, "multiple": 0}, "spec.drift.learnThreshold.multiple"),
    ({"enabled": True, "multiple": 101}, "spec.drift.learnThreshold.multiple"),
    ({"enabled": True, "chunkRows": 1}, "spec.drift.learnThreshold.chunkRows"),
    ({"enabled": True, "minimum": -0.1}, "spec.drift.learnThreshold.minimum"),
    ({"enabled": True, "chunks": 5}, "spec.drift.learnThreshold.chunks"),
])
def test_spec_errors_name_the_field(learn: dict[str, Any], field: str) -> None:
    doc = monitor().model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["drift"]["learnThreshold"] = learn
    with pytest.raises(InvalidSpecError, match=field.replace(".", r"\.")):
        parse_spec(doc)
