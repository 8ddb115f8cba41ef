"""Where scipy has the test or distance, ours agrees with it to 1e-9 (design: Statistics)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from modelmon.stats.drift import NumericMethod, cvm, edf, get_method, ks, methods, ties
from modelmon.stats.drift.divergence import EMPTY_CELL
from modelmon.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    align,
    fit_categorical,
    fit_numeric,
)
from verdicts import drifted

TOL = 1e-9

#: Methods whose p-value on tied data comes from ``ties`` rather than scipy's formula.
TIE_AWARE = {"ks", "anderson", "cvm"}
Twin = Callable[[Any, Any], tuple[float, float | None]]


def _binned(profile: NumericProfile, ref: np.ndarray, cur: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Proportions per reference bin, counted independently of ``profile.bin``."""
    bins = len(profile.bin_edges) + 1
    count = [np.bincount(np.digitize(x, profile.bin_edges), minlength=bins) for x in (ref, cur)]
    return count[0] / ref.size, count[1] / cur.size


def _smoothed(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p, EMPTY_CELL)


def _entropy(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(stats.entropy(_smoothed(ref), _smoothed(cur)))


def _table(ref: CategoricalProfile, cur: CategoricalProfile) -> np.ndarray:
    r, c, _ = align(ref, cur)
    table = np.vstack([r, c])
    return table[:, table.sum(axis=0) > 0]


def _anderson(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = stats.anderson_ksamp([ref, cur], variant="midrank")
    return float(res.statistic), float(res.pvalue)


def _chi2(ref: CategoricalProfile, cur: CategoricalProfile) -> tuple[float, float]:
    res = stats.chi2_contingency(_table(ref, cur), correction=False)
    return float(res.statistic), float(res.pvalue)


def _ztest(ref: CategoricalProfile, cur: CategoricalProfile) -> tuple[float, float]:
    # The pooled two-proportion z-test is the chi-square test on the 2 x 2 table: z^2 = X^2.
    chi2, p = _chi2(ref, cur)
    table = _table(ref, cur)
    sign = np.sign(table[0, 0] / table[0].sum() - table[1, 0] / table[1].sum())
    return float(sign * math.sqrt(chi2)), p


def _proportions(ref: CategoricalProfile, cur: CategoricalProfile
                 ) -> tuple[np.ndarray, np.ndarray]:
    r, c, _ = align(ref, cur)
    return r / r.sum(), c / c.sum()


# Inputs: numeric twins get (raw reference, raw current) plus the fitted profile in the
# closure below; categorical twins get both profiles.
NUMERIC_TWINS: dict[str, Callable[[NumericProfile, np.ndarray, np.ndarray],
                                  tuple[float, float | None]]] = {
    "ks": lambda _p, r, c: (float((s := stats.ks_2samp(r, c)).statistic), float(s.pvalue)),
    "wasserstein": lambda _p, r, c: (stats.wasserstein_distance(r, c) / np.std(r), None),
    "energy": lambda _p, r, c: (stats.energy_distance(r, c), None),
    "anderson": lambda _p, r, c: _anderson(r, c),
    "cvm": lambda _p, r, c: (float((s := stats.cramervonmises_2samp(r, c)).statistic),
                             float(s.pvalue)),
    "jensenshannon": lambda p, r, c: (float(jensenshannon(*_binned(p, r, c))), None),
    "kl": lambda p, r, c: (_entropy(*_binned(p, r, c)), None),
}
CATEGORICAL_TWINS: dict[str, Callable[[CategoricalProfile, CategoricalProfile],
                                      tuple[float, float | None]]] = {
    "chisquare": _chi2,
    "ztest": _ztest,
    "jensenshannon": lambda r, c: (float(jensenshannon(*_proportions(r, c))), None),
}
#: Registered methods scipy has no function for, and why.
NO_SCIPY_TWIN = {
    ("psi", "numeric"): "scipy has no PSI",
    ("psi", "categorical"): "scipy has no PSI",
    ("hellinger", "numeric"): "scipy has no Hellinger distance",
    ("hellinger", "categorical"): "scipy has no Hellinger distance",
    ("tvd", "categorical"): "scipy has no total variation distance",
}
#: Relative tolerance for distances in the data's units (absolute below 1).
RELATIVE = {"wasserstein", "energy"}


def test_every_method_with_a_scipy_twin_is_checked() -> None:
    registered = {(m.name, m.kind) for m in methods()}
    twins = {(n, "numeric") for n in NUMERIC_TWINS} | {(n, "categorical")
                                                      for n in CATEGORICAL_TWINS}
    assert twins <= registered
    assert registered == twins | set(NO_SCIPY_TWIN), "new method: add its scipy twin"
    for name in ("ks", "wasserstein", "anderson", "cvm", "energy", "jensenshannon", "kl"):
        assert name in NUMERIC_TWINS
    for name in ("chisquare", "ztest", "jensenshannon"):
        assert name in CATEGORICAL_TWINS


def assert_agrees(name: str, ours: tuple[float, float | None],
                  theirs: tuple[float, float | None]) -> None:
    stat, p = ours
    want_stat, want_p = theirs
    scale = max(1.0, abs(want_stat)) if name in RELATIVE else 1.0
    assert abs(stat - want_stat) <= TOL * scale, (name, stat, want_stat)
    if want_p is None:
        assert p is None
    else:
        assert p is not None
        assert abs(p - want_p) <= TOL, (name, p, want_p)


def numeric_datasets() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Sizes on both sides of scipy's exact/asymptotic KS switch (10000), unequal sizes,
    ties, and shifts from none to strong (the far tail of the KS p-value included)."""
    rng = np.random.default_rng(7)
    sizes = [(3, 4), (25, 40), (500, 700), (2000, 2000), (10000, 10000), (9000, 10000),
             (10001, 400), (30000, 20000), (60000, 3000)]
    for n, m in sizes:
        for shift in (0.0, 0.03, 0.1, 0.5):
            ref = rng.normal(size=n)
            cur = rng.normal(loc=shift, scale=1.0 + shift / 2, size=m)
            yield f"{n}x{m} shift={shift}", ref, cur
            if n >= 500:
                yield f"{n}x{m} shift={shift} ties", np.round(ref, 1), np.round(cur, 1)


NUMERIC_CASES = list(numeric_datasets())


def _has_ties(ref: np.ndarray, cur: np.ndarray) -> bool:
    pooled = np.concatenate([ref, cur])
    return bool(np.unique(pooled).size < pooled.size)


def _tied_null(ref: np.ndarray, cur: np.ndarray) -> bool:
    """Whether the p-value is deliberately not scipy's: tied data take the tied null
    (``ties``, tested in ``test_tied_nulls``); the statistic is still scipy's."""
    return ties.tied_runs(fit_numeric(ref), np.sort(cur)) is not None


def _statistic_only(ours: tuple[float, float | None]) -> tuple[float, None]:
    return ours[0], None


@pytest.mark.parametrize("name", sorted(NUMERIC_TWINS))
def test_numeric_methods_agree_with_scipy(name: str) -> None:
    method = get_method(name, "numeric")
    checked = 0
    for label, ref, cur in NUMERIC_CASES:
        if name == "cvm" and _has_ties(ref, cur):
            continue  # scipy's midrank CvM is wrong with ties: see test_cvm_ties below
        profile = fit_numeric(ref)
        ours = method.statistic(profile, np.sort(cur))  # type: ignore[arg-type]
        theirs = NUMERIC_TWINS[name](profile, ref, cur)
        if name in TIE_AWARE and _tied_null(ref, cur):
            ours, theirs = _statistic_only(ours), _statistic_only(theirs)
        try:
            assert_agrees(name, ours, theirs)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
        checked += 1
    assert checked >= 20


def categorical_datasets() -> Iterator[tuple[str, CategoricalProfile, CategoricalProfile]]:
    rng = np.random.default_rng(11)
    for k in (2, 3, 8):
        for n, m in ((20, 30), (1000, 5000), (100_000, 1000)):
            for tilt in (0.0, 0.05, 0.3):
                base = rng.dirichlet(np.ones(k))
                moved = (1 - tilt) * base + tilt * rng.dirichlet(np.ones(k))
                labels = [f"c{i}" for i in range(k)]
                ref = fit_categorical(rng.choice(labels, size=n, p=base))
                cur = fit_categorical(rng.choice(labels, size=m, p=moved))
                yield f"k={k} {n}x{m} tilt={tilt}", ref, cur
    # Categories present on one side only.
    yield ("one-sided categories", fit_categorical(np.array(["a", "b", "c"] * 10 + ["d"])),
           fit_categorical(np.array(["a", "b", "e"] * 7)))
    yield ("disjoint pair", fit_categorical(np.array(["a"] * 10)),
           fit_categorical(np.array(["b"] * 4)))


@pytest.mark.parametrize("name", sorted(CATEGORICAL_TWINS))
def test_categorical_methods_agree_with_scipy(name: str) -> None:
    method = get_method(name, "categorical")
    checked = 0
    for label, ref, cur in categorical_datasets():
        if name == "ztest" and _table(ref, cur).shape[1] != 2:
            continue
        ours = method.statistic(ref, cur)  # type: ignore[arg-type]
        try:
            assert_agrees(name, ours, CATEGORICAL_TWINS[name](ref, cur))
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("n", [15_000, 50_000, 200_000])
def test_ks_asymptotic_pvalue_matches_kstwo(n: int) -> None:
    """Equal to ``kstwo.sf`` within 1e-12 everywhere, the summed region included."""
    for d in np.linspace(0.0, 0.06, 16):
        ours = edf.ks_asymptotic_pvalue(float(d), n, n)
        want = float(np.clip(stats.kstwo.sf(d, round(n / 2)), 0, 1))
        assert abs(ours - want) <= 1e-12, (n, d, ours, want)


def test_small_ks_p_values_do_not_call_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the region where scipy sums the whole series, neither kstwo nor smirnov runs."""
    monkeypatch.setattr(stats, "kstwo", None)
    monkeypatch.setattr(special, "smirnov", None)
    p = edf.ks_asymptotic_pvalue(0.009, 100_000, 100_000)
    assert 5e-4 < p < 7e-4
    assert edf.ks_asymptotic_pvalue(0.5, 100_000, 100_000) == 0.0


def test_ks_statistic_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        ref = np.sort(rng.integers(0, 6, size=int(rng.integers(1, 40))).astype(float))
        cur = np.sort(rng.integers(0, 6, size=int(rng.integers(1, 40))).astype(float))
        assert edf.ks_statistic(ref, cur) == pytest.approx(
            float(stats.ks_2samp(ref, cur).statistic), abs=1e-15)


def test_cvm_without_ties_equals_scipy_formula() -> None:
    """Our ECDF form of T is scipy's rank formula when nothing is tied."""
    rng = np.random.default_rng(9)
    for n, m in ((5, 7), (300, 200), (4000, 900)):
        ref, cur = np.sort(rng.normal(size=n)), np.sort(rng.normal(0.1, size=m))
        res = stats.cramervonmises_2samp(ref, cur)
        assert edf.cvm_statistic(ref, cur) == pytest.approx(float(res.statistic), abs=1e-12)
        if max(n, m) > 20:
            assert edf.cvm_asymptotic_pvalue(float(res.statistic), n, m) == pytest.approx(
                float(res.pvalue), abs=TOL)
        assert edf.cvm_from_rank_statistic(edf.cvm_rank_statistic(ref, cur), n, m) == (
            pytest.approx(float(res.statistic), abs=TOL))


def test_cvm_ties_do_not_flag_identical_distributions() -> None:
    """scipy's midrank CvM flags undrifted tied columns when n != m; ours does not."""
    method = get_method("cvm", "numeric")
    ref = np.array([0.0] * 3500 + [1.0] * 1500)
    cur = np.array([0.0] * 70 + [1.0] * 30)
    assert stats.cramervonmises_2samp(ref, cur).pvalue < 1e-6  # scipy's false alarm
    result = method.score(fit_numeric(ref), cur)  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == 1.0
    assert not drifted(result)
    assert result.message is not None
    assert "tied" in result.message


def test_ks_cases_cover_both_sides_of_the_exact_switch() -> None:
    """The KS twins include exact and asymptotic sizes, each with and without ties."""
    regimes = {(max(ref.size, cur.size) <= edf.KS_EXACT_MAX_N, _has_ties(ref, cur))
               for _, ref, cur in NUMERIC_CASES}
    assert regimes == {(True, False), (True, True), (False, False), (False, True)}


def test_scipy_helpers_are_found() -> None:
    """The null distributions come from scipy's helpers: without them scoring falls back
    to the public functions, which sort the reference (test_drift_no_resort fails)."""
    assert ks._KS_EXACT is not None
    assert cvm._CVM_EXACT is not None
    assert cvm._CVM_LIMIT_CDF is not None


@pytest.mark.parametrize("helper", ["ks._KS_EXACT", "cvm._CVM_EXACT", "cvm._CVM_LIMIT_CDF"])
def test_without_a_scipy_helper_scores_still_agree(helper: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A scipy without the private helper gets the same numbers (public function, or for
    the limiting CvM CDF our own series)."""
    monkeypatch.setattr(f"modelmon.stats.drift.{helper}", None)
    rng = np.random.default_rng(3)
    for n, m in ((5, 7), (12, 20), (25, 40), (700, 500)):
        ref, cur = rng.normal(size=n), rng.normal(0.2, size=m)
        profile = fit_numeric(ref)
        for name in ("ks", "cvm"):
            ours = get_method(name, "numeric").statistic(profile, np.sort(cur))  # type: ignore[arg-type]
            assert_agrees(name, ours, NUMERIC_TWINS[name](profile, ref, cur))


def test_failed_exact_ks_uses_the_asymptotic_p_of_the_rounded_statistic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where scipy's exact computation gives up (overflow), ks_2samp switches to kstwo.sf
    of the statistic rounded to a multiple of 1/lcm; so do we."""
    n, m, d = 3000, 2000, 0.0412345
    lcm = math.lcm(n, m)
    rounded = round(d * lcm) / lcm

    def gives_up(n1: int, n2: int, g: int, stat: float, alternative: str
                 ) -> tuple[bool, float, float]:
        return False, round(stat * lcm) / lcm, math.nan

    monkeypatch.setattr(ks, "_KS_EXACT", gives_up)
    result = edf.ks_exact(d, n, m)
    assert result is not None
    assert result[0] == rounded
    assert abs(result[1] - float(stats.kstwo.sf(rounded, round(n * m / (n + m))))) <= TOL


def test_cvm_exact_sizes_agree_with_scipy() -> None:
    """Both sides at most 20 values: scipy's exact p-value of our rank statistic."""
    rng = np.random.default_rng(13)
    for n, m in ((2, 2), (2, 5), (3, 7), (5, 5), (6, 9), (8, 12), (10, 10), (4, 20),
                 (20, 20), (12, 15), (20, 10), (20, 21), (21, 20)):
        for shift in (0.0, 0.7, 3.0):
            ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
            ours = get_method("cvm", "numeric").statistic(fit_numeric(ref), np.sort(cur))  # type: ignore[arg-type]
            assert_agrees("cvm", ours, NUMERIC_TWINS["cvm"](None, ref, cur))  # type: ignore[arg-type]


def anderson_cases() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Random sizes (unequal mostly), continuous and tied data, shifts from none to
    strong: p-values below, inside and above scipy's table."""
    rng = np.random.default_rng(23)
    for i in range(240):
        n, m = (int(x) for x in rng.integers(2, 400, size=2))
        shift = float(rng.choice([0.0, 0.15, 0.4, 1.0]))
        ref, cur = rng.normal(size=n), rng.normal(shift, 1.0 + shift / 3, size=m)
        if i % 3 == 1:  # few distinct values: heavy ties within and across the samples
            levels = int(rng.integers(2, 9))
            ref, cur = np.floor(ref * levels / 4), np.floor(cur * levels / 4)
        elif i % 3 == 2:
            ref, cur = np.round(ref, 1), np.round(cur, 1)
        yield f"case {i}: {n}x{m} shift={shift}", ref, cur
    for n, m in ((5000, 300), (300, 5000), (20000, 2000)):
        for shift in (0.0, 0.05, 0.2):
            ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
            yield f"{n}x{m} shift={shift}", ref, cur
            yield f"{n}x{m} shift={shift} ties", np.round(ref, 1), np.round(cur, 1)


def test_anderson_agrees_with_scipy_on_many_samples() -> None:
    method = get_method("anderson", "numeric")
    regions = {"capped": 0, "interpolated": 0, "floored": 0}
    for label, ref, cur in anderson_cases():
        if ref.size + cur.size < 4 or np.unique(np.concatenate([ref, cur])).size < 2:
            continue
        ours = method.statistic(fit_numeric(ref), np.sort(cur))  # type: ignore[arg-type]
        theirs = _anderson(ref, cur)
        if _tied_null(ref, cur):
            assert_agrees("anderson", _statistic_only(ours), _statistic_only(theirs))
            continue
        try:
            assert_agrees("anderson", ours, theirs)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
        p = theirs[1]
        regions["capped" if p == edf.ANDERSON_P_CAP else
                "floored" if p == edf.ANDERSON_P_FLOOR else "interpolated"] += 1
    assert min(regions.values()) >= 20, regions


def test_pelz_good_equals_scipys() -> None:
    from scipy.stats import _ksstats

    for n in (141, 5_000, 100_001, 2_000_000):
        for x in np.geomspace(1e-4, 0.5, 60):
            want = float(_ksstats._kolmogn_PelzGood(n, float(x), cdf=True))  # type: ignore[attr-defined]
            assert abs(edf.pelz_good_cdf(n, float(x)) - want) <= 1e-10, (n, x)


def test_undrifted_ks_p_values_do_not_call_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large undrifted windows (Pelz-Good's region) need no scipy call either."""
    want = float(stats.kstwo.sf(0.004, 50_000.0))
    monkeypatch.setattr(stats, "kstwo", None)
    assert abs(edf.ks_asymptotic_pvalue(0.004, 100_000, 100_000) - want) <= 1e-12


@pytest.mark.parametrize(("n", "m"), [(12_000, 15_000), (60_000, 60_000), (200_000, 50_000)])
def test_ks_score_equals_ks_2samp_on_large_samples(n: int, m: int) -> None:
    """The whole method on samples past the exact switch, undrifted to clearly drifted
    (every p-value region of the asymptotic path): D and p as ``ks_2samp`` gives them."""
    rng = np.random.default_rng(n + m)
    ks = get_method("ks", "numeric")
    assert isinstance(ks, NumericMethod)
    for shift in (0.0, 0.01, 0.02, 0.04, 0.3):
        ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
        got = ks.score(fit_numeric(ref), cur)
        want = stats.ks_2samp(ref, cur)
        assert got.statistic == float(want.statistic), shift
        assert got.p_value is not None
        assert abs(got.p_value - float(want.pvalue)) <= TOL, (shift, got.p_value, want.pvalue)
        # Tied windows: the statistic is still scipy's (the p-value is the tied null's).
        rounded = np.round(cur, 3)
        assert ks.score(fit_numeric(ref), rounded).statistic == float(
            stats.ks_2samp(ref, rounded).statistic), shift
