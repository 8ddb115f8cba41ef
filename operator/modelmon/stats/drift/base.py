"""The drift-method interface and its registry.

Part of ``stats``: every method is one small class in a module of its own, registered under
its name and the kind of feature it scores. The engine fits each reference column once into
a profile (``stats.profile``) and asks the chosen method to score the current window against
it; a method never re-sorts or re-bins the reference.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ascending,
    finite,
)


class UnknownMethodError(ValueError):
    """A drift method name that is not registered for the feature's kind."""


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One column's drift score."""

    method: str
    statistic: float | None
    """The test statistic or distance; None when the column could not be scored."""
    p_value: float | None
    """None for distance methods."""
    message: str | None = None
    """Why a column was not scored, or a caveat about the score."""
    effect_size: float | None = None
    """How large the difference is, next to a test's p-value (which only says how sure):
    the KS distance for numeric tests, Cramer's V for categorical ones; None for
    distances, whose statistic is their size."""
    error_bound: float | None = None
    """How far the statistic (and the effect size) may be from the one the window's rows
    give, when it was read off an approximation of the window (``stats.sketch``'s quantile
    grid); None when it is exact."""


Fitted = TypeVar("Fitted", NumericProfile, CategoricalProfile)
"""The fitted reference a method scores against."""
Window = TypeVar("Window", NDArray[np.float64], CategoricalProfile)
"""The current window as the method receives it."""


class DriftMethod(ABC, Generic[Fitted, Window]):
    """A two-sample drift method for one kind of feature.

    ``score`` receives the fitted reference profile and the current window: for numeric
    methods a float64 array, for categorical methods the current window's category counts;
    ``prepare`` puts the window in the form ``statistic`` and ``caveat`` receive (numeric:
    its finite values in ascending order). A method returns numbers only; evaluation holds
    them against a threshold (``default_threshold`` unless the spec sets one): a test
    (``uses_p_value``) drifts when its p-value is below it, a distance at or above it.
    """

    name: ClassVar[str]
    kind: ClassVar[FeatureKind]
    default_threshold: ClassVar[float]
    uses_p_value: ClassVar[bool]
    summary: ClassVar[str]
    """One line for docs and ``kubectl explain``: what it measures and where the default
    threshold comes from."""

    def fit(self, reference: Fitted) -> Fitted:
        """The fitted reference with whatever else this method keeps of it (here:
        nothing); called once, when the column is fitted."""
        return reference

    def prepare(self, current: Window) -> Window:
        """The current window as ``statistic`` takes it (here: as given)."""
        return current

    @abstractmethod
    def statistic(self, reference: Fitted, current: Window) -> tuple[float, float | None]:
        """(statistic, p-value or None) of the prepared current window against the
        reference."""

    def caveat(self, reference: Fitted, current: Window, statistic: float,
               p_value: float | None) -> str | None:
        """A note for the result's message about this score (a cap, a fallback, or why
        the statistic is undefined), or None. Called after ``statistic``."""
        return None

    def effect_size(self, reference: Fitted, current: Window, statistic: float) -> float | None:
        """A test's effect size on its family's scale (numeric tests: the KS distance;
        categorical tests: Cramer's V), or None (distances). Called after ``statistic``."""
        return None

    def score(self, reference: Fitted, current: Window, *, prepared: bool = False) -> DriftResult:
        """Score; empty sides give an unscored result with a message.

        The window is prepared here (numeric: NaN and infinities dropped, sorted), so a
        method never sees them even if the caller forgot; ``prepared=True`` says the caller
        already did (``dataset.CurrentColumn`` sorts each column once), and skips the
        checks.
        """
        if not prepared:
            current = self.prepare(current)
        n_cur = current.size if isinstance(current, np.ndarray) else current.n_present
        if reference.n_present == 0 or n_cur == 0:
            side = "reference" if reference.n_present == 0 else "current window"
            return DriftResult(self.name, None, None,
                               f"not scored: the {side} has no usable values")
        statistic, p_value = self.statistic(reference, current)
        return self.result(reference, current, statistic, p_value)

    def score_or_defer(self, reference: Fitted, current: Window, *, prepared: bool = False
                       ) -> DriftResult | Deferred:
        """``score``, or, from a method whose p-values cost less for many columns at once,
        a ``Deferred`` score that ``settle`` completes together with the check's other
        columns (the same numbers as ``score``). Here: ``score``."""
        return self.score(reference, current, prepared=prepared)

    def settle(self, deferred: Sequence[Deferred]) -> list[DriftResult]:
        """The results of this method's ``Deferred`` scores, completed all at once (only
        methods that defer have any)."""
        raise NotImplementedError(f"drift method {self.name!r} defers no scores")

    def result(self, reference: Fitted, current: Window, statistic: float,
               p_value: float | None) -> DriftResult:
        """The result of a prepared, non-empty window's statistic and p-value: with the
        method's caveat and effect size, NaN cleaned."""
        message = self.caveat(reference, current, statistic, p_value)
        return self.result_with(reference, current, statistic, p_value, message)

    def result_with(self, reference: Fitted, current: Window, statistic: float,
                    p_value: float | None, message: str | None) -> DriftResult:
        """``result`` with the caveat already known (``message``)."""
        if math.isnan(statistic) or (p_value is not None and math.isnan(p_value)):
            message = message or "not scored: the statistic is undefined for these samples"
            return DriftResult(self.name, _clean(statistic), _clean(p_value), message)
        effect = self.effect_size(reference, current, statistic)
        return DriftResult(self.name, _clean(statistic), _clean(p_value), message,
                           _clean(effect))


@dataclass(frozen=True, slots=True)
class Deferred:
    """A column's score waiting for its p-value (``DriftMethod.score_or_defer``): the
    result without it, and what ``method.settle`` needs to compute it."""

    method: DriftMethod[Any, Any]
    result: DriftResult
    task: Any


def settle(scores: Sequence[DriftResult | Deferred]) -> list[DriftResult]:
    """The scores with every ``Deferred`` one completed, each method's at once, in order."""
    done: list[DriftResult | None] = [
        score if isinstance(score, DriftResult) else None for score in scores]
    waiting: dict[int, list[tuple[int, Deferred]]] = {}
    for index, score in enumerate(scores):
        if isinstance(score, Deferred):
            waiting.setdefault(id(score.method), []).append((index, score))
    for batch in waiting.values():
        method = batch[0][1].method
        results = method.settle([score for _, score in batch])
        for (index, _), result in zip(batch, results, strict=True):
            done[index] = result
    return [result for result in done if result is not None]


def with_p_value(result: DriftResult, p_value: float) -> DriftResult:
    """A deferred result completed with its p-value (cleaned as ``score`` cleans it)."""
    return dataclasses.replace(result, p_value=_clean(p_value))


def _clean(number: float | None) -> float | None:
    """JSON-safe float: NaN becomes None, infinities are clipped to the float range."""
    if number is None or math.isnan(number):
        return None
    if math.isinf(number):
        return math.copysign(np.finfo(np.float64).max, number)
    return float(number)


class NumericMethod(DriftMethod[NumericProfile, NDArray[np.float64]]):
    """Base of methods for numeric columns: ``statistic`` and ``caveat`` receive the
    current window's finite values in ascending order."""

    def prepare(self, current: NDArray[np.float64]) -> NDArray[np.float64]:
        return ascending(finite(np.asarray(current, dtype=np.float64)))


CategoricalMethod: TypeAlias = DriftMethod[CategoricalProfile, CategoricalProfile]
"""Base of methods for categorical columns (current window: its category counts)."""
AnyMethod = NumericMethod | CategoricalMethod

_REGISTRY: dict[tuple[str, FeatureKind], AnyMethod] = {}

MethodClass = TypeVar("MethodClass", bound=type[DriftMethod])  # type: ignore[type-arg]


def register(cls: MethodClass) -> MethodClass:
    """Class decorator: register a method under (name, kind)."""
    key = (cls.name, cls.kind)
    if key in _REGISTRY:
        raise ValueError(f"drift method {key} registered twice")
    _REGISTRY[key] = cls()
    return cls


def get_method(name: str, kind: FeatureKind) -> AnyMethod:
    """The registered method, or an error that lists the valid names for this kind."""
    try:
        return _REGISTRY[(name, kind)]
    except KeyError:
        known = ", ".join(method_names(kind))
        raise UnknownMethodError(
            f"drift method {name!r} does not apply to {kind} columns; use one of: {known}"
        ) from None


def method_names(kind: FeatureKind | None = None) -> list[str]:
    """Registered method names, sorted, for one kind or all."""
    return sorted({n for (n, k) in _REGISTRY if kind is None or k == kind})


def methods() -> list[AnyMethod]:
    """Every registered method instance."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
