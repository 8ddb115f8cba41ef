"""``performance.is_positive`` writes integer and boolean labels as text once per distinct
value: the same flags and the same refusal as writing every label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.performance import PerformanceInputError, is_positive


def _every_label(values: pd.Series, positive: str | None) -> np.ndarray:
    """The flags from every label written as text (the definition)."""
    text = values.astype(str).str.lower()
    if positive is None:
        return text.isin({"1", "1.0", "true"}).to_numpy()
    wanted = positive.lower()
    return text.isin({"1", "1.0", "true"} if wanted in {"1", "1.0", "true"} else {wanted}
                     ).to_numpy()


@pytest.mark.parametrize("dtype", ["int64", "int8", "uint16", "bool", "float64", "object"])
@pytest.mark.parametrize("positive", [None, "1", "0", "True", "false", "1.0"])
def test_flags_are_those_of_every_label_written_out(dtype: str, positive: str | None) -> None:
    rng = np.random.default_rng(3)
    values = pd.Series(rng.integers(0, 2, 300)).astype(np.dtype(dtype))
    got = is_positive(values, positive)
    assert got.dtype == np.bool_ and got.shape == (300,)
    assert np.array_equal(got, _every_label(values, positive))
    if positive in (None, "1", "1.0"):
        assert 0 < got.sum() < 300


def test_other_integer_labels_still_need_a_positive_label() -> None:
    values = pd.Series([0, 1, 2, 1, 7])
    with pytest.raises(PerformanceInputError, match=r"labels are \['0', '1', '2', '7'\]"):
        is_positive(values, None)
    assert is_positive(values, "7").tolist() == [False, False, False, False, True]
