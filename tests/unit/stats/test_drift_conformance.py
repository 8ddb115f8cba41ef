"""Every registered drift method honours the contract: decisions, edge cases, metadata."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from modelmon.stats.drift import AnyMethod, methods
from modelmon.stats.profile import fit_categorical, fit_numeric
from verdicts import Judged, judged

METHODS = methods()
IDS = [f"{m.name}-{m.kind}" for m in METHODS]


def score(method: AnyMethod, reference: Sequence[Any] | np.ndarray,
          current: Sequence[Any] | np.ndarray, threshold: float | None = None) -> Judged:
    """Fit the reference, score the current window and judge the score the way the
    engine and evaluation do."""
    if method.kind == "numeric":
        profile = fit_numeric(np.asarray(reference, dtype=np.float64))
        return judged(method.score(profile, np.asarray(current, dtype=np.float64)),  # type: ignore[arg-type]
                      threshold)
    ref = fit_categorical(np.asarray(reference, dtype=object))
    cur = fit_categorical(np.asarray(current, dtype=object))
    return judged(method.score(ref, cur), threshold)  # type: ignore[arg-type]


rng = np.random.default_rng(20240611)
NORMAL = rng.normal(size=2000)
SHIFTED = rng.normal(loc=3.0, size=2000)
# Two categories so that every categorical method (ztest included) applies.
LABELS = rng.choice(["yes", "no"], size=2000, p=[0.7, 0.3])
LABELS_SHIFTED = rng.choice(["yes", "no"], size=2000, p=[0.2, 0.8])

NUMERIC_EDGES: dict[str, tuple[list[float] | np.ndarray, list[float] | np.ndarray]] = {
    "empty current": (NORMAL[:50], []),
    "empty reference": ([], NORMAL[:50]),
    "both empty": ([], []),
    "all NaN current": (NORMAL[:50], [math.nan, math.nan]),
    "constant same": ([2.0] * 40, [2.0] * 30),
    "constant different": ([2.0] * 40, [5.0] * 30),
    "constant reference": ([2.0] * 40, NORMAL[:30]),
    "constant current": (NORMAL[:40], [0.0] * 30),
    "one each": ([1.0], [2.0]),
    "one each, equal": ([1.0], [1.0]),
    "one vs three": ([1.0], [1.0, 2.0, 3.0]),
    "two vs one": ([1.0, 2.0], [3.0]),
    "two each": ([1.0, 2.0], [3.0, 4.0]),
    "three each, equal": ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
    "NaN and inf": ([1.0, math.nan, 2.0, math.inf, 3.0, 4.0],
                    [1.5, -math.inf, math.nan, 2.5, 3.5]),
    "very large": ([1e300, -1e300, 5.0, 1e308], [1e308, -1e308, 2.0, 3.0]),
    "huge constant": ([1e307] * 10, [1e307] * 10),
}

CATEGORICAL_EDGES: dict[str, tuple[list[Any], list[Any]]] = {
    "empty current": (["a", "b"] * 10, []),
    "empty reference": ([], ["a", "b"]),
    "all missing current": (["a", "b"] * 10, [None, math.nan]),
    "one category same": (["a"] * 20, ["a"] * 5),
    "one category different": (["a"] * 20, ["b"] * 5),
    "one row each": (["a"], ["b"]),
    "one row each, equal": (["a"], ["a"]),
    "new category": (["a", "b"] * 10, ["a", "b", "c"] * 3),
    "many categories": (list("abcdefgh") * 5, list("abcdxyz") * 2),
    "missing values": (["a", None, "b", math.nan] * 5, ["a", None, "b"] * 4),
    "numbers as labels": ([1, 2, 2, 3.0], [1.0, 2, math.nan]),
}


def edge_cases(method: AnyMethod) -> dict[str, tuple[Any, Any]]:
    return dict(NUMERIC_EDGES) if method.kind == "numeric" else dict(CATEGORICAL_EDGES)


def same_and_shifted(method: AnyMethod) -> tuple[np.ndarray, np.ndarray]:
    return (NORMAL, SHIFTED) if method.kind == "numeric" else (LABELS, LABELS_SHIFTED)


def assert_well_formed(method: AnyMethod, result: Judged) -> None:
    assert isinstance(result, Judged)
    assert result.method == method.name
    for value in (result.statistic, result.p_value):
        assert value is None or (isinstance(value, float) and math.isfinite(value))
    if result.p_value is not None:
        assert method.uses_p_value
        assert 0.0 <= result.p_value <= 1.0
    if result.statistic is None:
        assert result.drifted is False
        assert result.message, "an unscored column must say why"
    json.dumps(dataclasses.asdict(result), allow_nan=False)


def assert_direction(method: AnyMethod, result: Judged) -> None:
    """A test drifts when p < threshold; a distance when statistic >= threshold."""
    if result.statistic is None:
        return
    if method.uses_p_value:
        assert result.p_value is not None
        assert result.drifted == (result.p_value < result.threshold)
    else:
        assert result.p_value is None
        assert result.drifted == (result.statistic >= result.threshold)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_metadata(method: AnyMethod) -> None:
    assert method.name
    assert method.name == method.name.lower()
    assert method.kind in ("numeric", "categorical")
    assert isinstance(method.uses_p_value, bool)
    assert isinstance(method.default_threshold, float)
    assert method.default_threshold > 0
    if method.uses_p_value:
        assert method.default_threshold < 1
    assert isinstance(method.summary, str)
    assert len(method.summary) > 20
    assert str(method.default_threshold).rstrip("0") in method.summary
    assert type(method).__doc__


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_identical_samples_do_not_drift(method: AnyMethod) -> None:
    reference, _ = same_and_shifted(method)
    result = score(method, reference, reference)
    assert_well_formed(method, result)
    assert not result.drifted
    assert result.statistic is not None
    if method.uses_p_value:
        assert result.p_value is not None
        assert result.p_value > 0.2
    else:
        assert result.statistic == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_strong_shift_drifts(method: AnyMethod) -> None:
    reference, current = same_and_shifted(method)
    result = score(method, reference, current)
    assert_well_formed(method, result)
    assert result.drifted
    assert_direction(method, result)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_direction_follows_threshold(method: AnyMethod) -> None:
    reference, current = same_and_shifted(method)
    half = len(current) // 2
    mixed = np.concatenate([reference[:half], current[:half]])
    default = score(method, reference, mixed)
    assert default.threshold == method.default_threshold
    assert_direction(method, default)
    assert default.statistic is not None
    pivot = default.p_value if method.uses_p_value else default.statistic
    assert pivot is not None
    # Just past the observed value either way, the decision flips.
    below, above = pivot * 0.999, pivot * 1.001 + 1e-12
    for limit in (below, above):
        result = score(method, reference, mixed, threshold=limit)
        assert result.threshold == limit
        assert_direction(method, result)
    assert score(method, reference, mixed, threshold=below).drifted != score(
        method, reference, mixed, threshold=above).drifted


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_edge_cases_give_a_result(method: AnyMethod) -> None:
    for case, (reference, current) in edge_cases(method).items():
        result = score(method, reference, current)
        assert_well_formed(method, result)
        assert_direction(method, result)
        if "empty" in case or "all" in case:
            assert result.statistic is None, case
            assert result.p_value is None, case
            assert not result.drifted
        if case.endswith(("same", "equal")) or case == "huge constant":
            assert not result.drifted, case


@pytest.mark.parametrize("method", [m for m in METHODS if m.kind == "numeric"],
                         ids=[f"{m.name}-{m.kind}" for m in METHODS if m.kind == "numeric"])
def test_non_finite_values_are_ignored(method: AnyMethod) -> None:
    reference = NORMAL[:300]
    current = SHIFTED[:200]
    dirty = np.concatenate([current, [math.nan, math.inf, -math.inf]])
    assert score(method, reference, dirty) == score(method, reference, current)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_unsorted_current_is_fine(method: AnyMethod) -> None:
    reference, current = same_and_shifted(method)
    mixed = np.concatenate([reference[:500], current[:500]])
    shuffled = np.random.default_rng(3).permutation(mixed)
    assert score(method, reference, shuffled) == score(method, reference, np.sort(mixed))
