"""The drift-method registry and the ``auto`` rule."""

from __future__ import annotations

import pytest

from modelmon.api.v1alpha1 import DriftSpec
from modelmon.stats import drift
from modelmon.stats.drift import (
    UnknownMethodError,
    auto_method,
    get_method,
    method_names,
    methods,
    register,
)
from modelmon.stats.drift.edf import KolmogorovSmirnov

NUMERIC = ["anderson", "cvm", "energy", "hellinger", "jensenshannon", "kl", "ks", "psi",
           "wasserstein"]
CATEGORICAL = ["chisquare", "hellinger", "jensenshannon", "psi", "tvd", "ztest"]


def test_registered_names() -> None:
    assert method_names("numeric") == NUMERIC
    assert method_names("categorical") == CATEGORICAL
    assert method_names() == sorted(set(NUMERIC) | set(CATEGORICAL))
    assert len(methods()) == len(NUMERIC) + len(CATEGORICAL)
    for method in methods():
        assert get_method(method.name, method.kind) is method


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownMethodError) as info:
        get_method("kolmogorov", "numeric")
    message = str(info.value)
    assert "'kolmogorov'" in message
    for name in NUMERIC:
        assert name in message


def test_method_of_the_other_kind_is_unknown() -> None:
    with pytest.raises(UnknownMethodError, match="chisquare") as info:
        get_method("ks", "categorical")
    assert "ztest" in str(info.value)
    with pytest.raises(UnknownMethodError):
        get_method("tvd", "numeric")
    assert issubclass(UnknownMethodError, ValueError)


def test_registering_twice_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(KolmogorovSmirnov)


@pytest.mark.parametrize(("kind", "rows", "unique", "expected"), [
    ("numeric", 500, 100, "ks"),
    ("numeric", 1000, 6, "ks"),            # 1000 rows is still "small"
    ("numeric", 1000, 5, "chisquare"),     # 5 distinct values: treated as categorical
    ("numeric", 300, 2, "ztest"),
    ("numeric", 300, 1, "chisquare"),
    ("categorical", 10, 2, "ztest"),
    ("categorical", 1000, 3, "chisquare"),
    ("categorical", 1000, 40, "chisquare"),
    ("numeric", 1001, 6, "wasserstein"),
    ("numeric", 50_000, 5, "jensenshannon"),
    ("numeric", 50_000, 2, "jensenshannon"),
    ("categorical", 1001, 2, "jensenshannon"),
    ("categorical", 10**6, 300, "jensenshannon"),
])
def test_auto_rule(kind: str, rows: int, unique: int, expected: str) -> None:
    name = auto_method(kind, rows, unique)  # type: ignore[arg-type]
    assert name == expected
    if name in ("ks", "wasserstein"):
        get_method(name, "numeric")
    else:
        get_method(name, "categorical")  # every name the rule returns is registered for its kind


def test_defaults() -> None:
    # Evidently's default drift_share; one copy, in the API model.
    assert DriftSpec().dataset_drift_share == 0.5
    assert drift.AUTO == "auto"
    assert "auto" not in method_names()
