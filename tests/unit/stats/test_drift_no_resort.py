"""Scoring never sorts the reference again (issue 2, point 4).

Every registered numeric method scores a fitted profile while numpy's and scipy's sorting
entry points refuse any array as large as the reference. The current window is a third of
the reference, so sorting it once stays allowed; sorting the reference, the pooled sample
or ranking it is caught. ``ndarray.sort`` and ``ndarray.partition`` are methods of a C
type and cannot be patched: the functions below are what numpy and scipy call to sort,
and a scan of the drift methods' sources shows they call none of those methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from scipy import stats

from modelmon.stats import drift
from modelmon.stats.drift import NumericMethod, methods
from modelmon.stats.profile import NumericProfile, fit_numeric

#: (module, name) of every sorting or ranking function that is guarded.
SORTERS: list[tuple[Any, str]] = [
    (np, "sort"), (np, "argsort"), (np, "unique"), (np, "lexsort"), (np, "partition"),
    (np, "argpartition"), (scipy.stats, "rankdata"),
    # Functions of scipy's own module that call rankdata by its bare name.
    (scipy.stats._stats_py, "rankdata"),
]
NUMERIC = [m for m in methods() if m.kind == "numeric"]


class ReferenceSortedError(AssertionError):
    """A sort or rank was asked for on an array at least as large as the reference."""


def _largest(value: object) -> int:
    """The largest array size among an argument and, for sequences, its items."""
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, list | tuple):
        return max([len(value), *(_largest(v) for v in value)], default=0)
    return 0


def _guarded(name: str, function: Callable[..., Any], limit: int) -> Callable[..., Any]:
    def guard(*args: Any, **kwargs: Any) -> Any:
        size = max([_largest(a) for a in (*args, *kwargs.values())], default=0)
        if size >= limit:
            raise ReferenceSortedError(f"{name} called on {size} values (reference: {limit})")
        return function(*args, **kwargs)
    return guard


@pytest.fixture
def no_sort_from(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Guard every sorter against arrays of ``limit`` values or more (re-arming replaces
    the previous limit)."""
    originals = [(module, name, getattr(module, name)) for module, name in SORTERS]

    def arm(limit: int) -> None:
        for module, name, original in originals:
            monkeypatch.setattr(module, name,
                                _guarded(f"{module.__name__}.{name}", original, limit))
    return arm


def cases() -> Iterator[tuple[str, NumericProfile, np.ndarray]]:
    """Windows on both sides of the exact/asymptotic KS switch (10,000), without and with
    ties, unsorted, drifted a little; the reference three times the window."""
    rng = np.random.default_rng(42)
    for m in (1_000, 12_000):
        ref = rng.normal(size=3 * m)
        cur = rng.normal(loc=0.05, size=m)
        yield f"{3 * m}x{m}", fit_numeric(ref), cur
        yield f"{3 * m}x{m} ties", fit_numeric(np.round(ref, 1)), np.round(cur, 1)


CASES = list(cases())


def test_every_numeric_method_is_guarded() -> None:
    assert {"ks", "cvm", "anderson", "wasserstein", "energy"} <= {m.name for m in NUMERIC}


@pytest.mark.parametrize("method", NUMERIC, ids=[m.name for m in NUMERIC])
def test_score_never_sorts_the_reference(method: NumericMethod,
                                         no_sort_from: Callable[[int], None]) -> None:
    wanted = [method.score(profile, cur) for _, profile, cur in CASES]
    for (label, profile, cur), want in zip(CASES, wanted, strict=True):
        no_sort_from(profile.n_present)
        got = method.score(profile, cur)
        assert got == want, label
        assert got.statistic is not None, (label, got.message)


def test_the_guard_catches_scipy_sorting(no_sort_from: Callable[[int], None]) -> None:
    """scipy's own functions sort the pooled sample: the guard must stop each of them."""
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=300), rng.normal(size=100)
    no_sort_from(ref.size)
    calls: list[Callable[[], object]] = [
        lambda: stats.ks_2samp(ref, cur),
        lambda: stats.cramervonmises_2samp(ref, cur),
        lambda: stats.anderson_ksamp([ref, cur], variant="midrank"),
    ]
    for call in calls:
        with pytest.raises(ReferenceSortedError):
            call()
    np.sort(cur)  # the window itself may be sorted


def test_drift_sources_call_no_sorting_method() -> None:
    """The ndarray methods the guard cannot patch appear nowhere in the drift methods."""
    method_call = re.compile(r"(?<!np)\.(?:arg)?(?:sort|partition)\(")
    sources = sorted(Path(drift.__file__).parent.glob("*.py"))
    assert len(sources) >= 6
    for source in sources:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            assert not method_call.search(line), f"{source.name}:{number}: {line.strip()}"
