"""Error bands: how far a metric strays by sampling alone, for a window of a given size.

Part of ``stats.estimation`` (``stats`` on the data line). For a window of ``m`` rows, the
realized metric is computed on ``CHUNKS`` samples of ``m`` rows drawn with replacement from
the labelled reference (a bootstrap: it works for any ``m``, also one larger than the
reference, where consecutive chunks would run out). Their standard deviation is the metric's
sampling spread at that size, and the band is ``estimate ± BAND_WIDTH * spread``, clipped to
the metric's range.

Why three spreads: a bound is to be breached only when the estimate is outside what chance
explains. Under a normal approximation three standard deviations hold 99.7% of windows, so
a monitor checked every few minutes raises a false alarm about once in a few hundred checks
per metric rather than once in twenty (two deviations); NannyML draws its bands at three
for the same reason.

Bounded work: at most ``CHUNKS`` samples of at most ``CHUNK_ROWS_CAP`` rows per window size;
for a larger window the spread at the cap is scaled by ``sqrt(cap / m)`` (a mean's standard
error falls as one over the root of the rows, and these metrics are ratios of means). The
spreads of the last ``KEPT_SIZES`` window sizes are kept, so a steady window size computes
them once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: The band's half-width in sampling spreads (standard deviations).
BAND_WIDTH = 3.0
#: Reference samples per window size.
CHUNKS = 50
#: Fewest samples that must define the metric for its spread to count.
MIN_CHUNKS = 10
#: Largest sample drawn; larger windows scale the spread measured at this size.
CHUNK_ROWS_CAP = 20_000
#: Window sizes whose spreads an estimator keeps; a new size beyond them drops the oldest.
KEPT_SIZES = 4

#: Realized metrics of the reference rows at the given positions (a metric the rows do not
#: define is left out or NaN).
Realized = Callable[[NDArray[np.intp]], dict[str, float]]


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated metric and the band sampling alone would give around it."""

    value: float
    lower: float
    upper: float


@dataclass(slots=True)
class SamplingBands:
    """The sampling spread of each metric per window size, from the labelled reference."""

    realized: Realized
    reference_rows: int
    limits: tuple[float, float]
    """The metrics' range, to clip bands to (``(0, 1)`` for rates, ``(0, inf)`` for losses)."""
    seed: int = 17
    _kept: dict[int, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spreads(self, window_rows: int) -> dict[str, float]:
        """Standard deviation of each metric over reference samples of ``window_rows`` rows
        (NaN where too few samples define it)."""
        with self._lock:
            kept = self._kept.get(window_rows)
        if kept is not None:
            return kept
        size = max(1, min(window_rows, CHUNK_ROWS_CAP))
        rng = np.random.default_rng([self.seed, size])
        values: dict[str, list[float]] = {}
        for _ in range(CHUNKS):
            rows = rng.integers(0, self.reference_rows, size=size).astype(np.intp)
            for name, value in self.realized(rows).items():
                values.setdefault(name, []).append(value)
        scale = math.sqrt(size / window_rows) if window_rows > size else 1.0
        spreads = {}
        for name, seen in values.items():
            finite = np.asarray(seen, dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            spreads[name] = (float(np.std(finite, ddof=1)) * scale
                             if finite.size >= MIN_CHUNKS else math.nan)
        with self._lock:
            self._kept[window_rows] = spreads
            while len(self._kept) > KEPT_SIZES:
                del self._kept[next(iter(self._kept))]
        return spreads

    def bands(self, values: dict[str, float], window_rows: int) -> dict[str, Estimate]:
        """Each value with its band; a metric without a spread gets the whole range."""
        spreads = self.spreads(window_rows)
        low, high = self.limits
        out = {}
        for name, value in values.items():
            spread = spreads.get(name, math.nan)
            if math.isfinite(spread):
                out[name] = Estimate(value, max(low, value - BAND_WIDTH * spread),
                                     min(high, value + BAND_WIDTH * spread))
            else:
                out[name] = Estimate(value, low, high)
        return out
