"""The benchmark's workloads: deterministic reference and current windows, stored once.

Every tool reads the same parquet files the same way
(``pyarrow.parquet.read_table(...).to_pandas()``), so the frames they score are identical.

Numeric columns cycle through five shapes (normal, log-normal, gamma, uniform, Student t);
every fourth one is rounded to two decimals so that ties occur. Categorical columns have 5
to 50 levels with Zipf-like frequencies. Every odd-numbered column of each kind is shifted in
the current window (numeric: its location moves by a fifth of a standard deviation, or its
spread grows by a quarter; categorical: its frequencies are tilted), so half the columns
drift and half do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

SEED = 20_251_124
SIDES = ("reference", "current")


@dataclass(frozen=True, slots=True)
class Workload:
    """A pair of windows: ``numeric`` + ``categorical`` columns, ``rows`` rows per side."""

    key: str
    numeric: int
    categorical: int
    rows: int

    @property
    def title(self) -> str:
        cols = f"{self.numeric} numeric"
        if self.categorical:
            cols += f" + {self.categorical} categorical"
        return f"({self.key}) {cols} x {_count(self.rows)} rows"

    @property
    def numeric_names(self) -> list[str]:
        return [f"x{i:03d}" for i in range(self.numeric)]

    @property
    def categorical_names(self) -> list[str]:
        return [f"c{i:03d}" for i in range(self.categorical)]

    @property
    def columns(self) -> list[str]:
        return self.numeric_names + self.categorical_names

    @property
    def current_bytes(self) -> int:
        """Raw size of the current window: 8 bytes per value (float64 or category code)."""
        return 8 * self.rows * (self.numeric + self.categorical)

    def shifted(self, name: str) -> bool:
        """Whether the column was shifted in the current window (odd-numbered columns)."""
        return int(name[1:]) % 2 == 1

    def path(self, data_dir: Path, side: str) -> Path:
        return data_dir / f"{self.key}-{self.rows}-{self.numeric}-{self.categorical}-{side}.parquet"


FULL = (
    Workload("a", 20, 0, 100_000),
    Workload("b", 100, 0, 100_000),
    Workload("c", 20, 0, 1_000_000),
    Workload("d", 10, 10, 100_000),
)
#: Smaller sizes for the smoke test: above 10,000 rows, so every KS p-value takes the
#: asymptotic path, and above the 1000 rows where ``auto`` switches to the distances.
QUICK = (
    Workload("a", 20, 0, 20_000),
    Workload("b", 100, 0, 20_000),
    Workload("c", 20, 0, 200_000),
    Workload("d", 10, 10, 20_000),
)


def _count(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def numeric_column(index: int, rows: int, side: str) -> NDArray[np.float64]:
    """One numeric column; odd columns are shifted in the current window."""
    rng = np.random.default_rng([SEED, index, SIDES.index(side), rows])
    shift = side == "current" and index % 2 == 1
    shape = index % 5
    values: NDArray[np.float64]
    if shape == 0:
        values = rng.normal(10.0 * index, 1.0 + index % 7, rows)
        sd = 1.0 + index % 7
    elif shape == 1:
        values = rng.lognormal(0.0, 0.5, rows)
        sd = math.sqrt((math.exp(0.25) - 1.0) * math.exp(0.25))
    elif shape == 2:
        values = rng.gamma(2.0, 3.0, rows)
        sd = 3.0 * math.sqrt(2.0)
    elif shape == 3:
        values = rng.uniform(-5.0, 5.0, rows)
        sd = 10.0 / math.sqrt(12.0)
    else:
        values = rng.standard_t(5, rows) * 2.0
        sd = 2.0 * math.sqrt(5.0 / 3.0)
    if shift:
        if index % 4 == 1:
            values = values + 0.2 * sd
        else:
            centre = float(np.median(values))
            values = centre + (values - centre) * 1.25
    if index % 4 == 3:
        values = np.round(values, 2)
    return np.asarray(values, dtype=np.float64)


def categorical_column(index: int, count: int, rows: int, side: str) -> NDArray[np.str_]:
    """One categorical column with 5 to 50 levels; odd columns are tilted in the current
    window."""
    levels = 5 + (45 * index) // max(count - 1, 1)
    weights = 1.0 / np.arange(1, levels + 1) ** 0.8
    if side == "current" and index % 2 == 1:
        tilt = np.random.default_rng([SEED, 10_000 + index]).normal(0.0, 0.5, levels)
        weights = weights * np.exp(tilt)
    rng = np.random.default_rng([SEED, 10_000 + index, SIDES.index(side), rows])
    codes = rng.choice(levels, size=rows, p=weights / weights.sum())
    names = np.array([f"level_{k:02d}" for k in range(levels)])
    return np.asarray(names[codes])


def write(workload: Workload, data_dir: Path) -> None:
    """Write both sides of a workload as parquet (skipped when the files exist)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for side in SIDES:
        path = workload.path(data_dir, side)
        if path.exists():
            continue
        arrays: dict[str, pa.Array] = {}
        for i, name in enumerate(workload.numeric_names):
            arrays[name] = pa.array(numeric_column(i, workload.rows, side))
        for i, name in enumerate(workload.categorical_names):
            arrays[name] = pa.array(
                categorical_column(i, workload.categorical, workload.rows, side))
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table(arrays), tmp)
        tmp.rename(path)


def read(workload: Workload, data_dir: Path, side: str) -> pd.DataFrame:
    """One side as a pandas frame (every tool scores the same frames)."""
    frame: pd.DataFrame = pq.read_table(workload.path(data_dir, side)).to_pandas()
    return frame


class ParquetColumns:
    """The current window of a parquet file, read one column at a time when asked for
    (``modelmon.stats.dataset.ColumnReader``): a check then holds one column, not the
    window."""

    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(path)
        self.columns = list(self._file.schema_arrow.names)

    def __len__(self) -> int:
        return int(self._file.metadata.num_rows)

    def __getitem__(self, name: str) -> pd.Series:
        series: pd.Series = self._file.read(columns=[name]).column(0).to_pandas()
        return series.rename(name)
