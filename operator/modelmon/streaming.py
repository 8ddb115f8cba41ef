"""Streamed windows: a current window larger than the check's memory limit, read in passes.

Between ``sources`` and ``check`` on the data line. The memory limit
(``Policy.max_memory``: ``modelmon run --max-check-memory``, by default a quarter of the
container's memory limit) bounds the window data one check holds at once. A ``url``
window (parquet or CSV) whose monitored columns would take more than that loaded whole is
read as a ``StreamedWindow`` instead: one pass over the source counts the window's rows
and folds, batch by batch, each column a binned method scores into its sketch
(``stats.sketch``: counts per reference bin or category, quality counts), which score
exactly as the rows would; every other column is handed to scoring on its own
(``stats.dataset.ColumnReader``), read in a pass of its own and kept only while it is
scored. A column that would not fit (a method that needs every value: ks, wasserstein,
anderson, cvm, energy) fails the check with ``InvalidData`` naming the spec field and the
fix, before a byte of it is held; so do the columns the performance metrics, the
confidence figures and the estimation need
together. Sources that cannot stream (sql, configMap, JSON Lines) load whole as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from modelmon.api.v1alpha1 import ModelMonitorSpec, format_bytes, parse_duration
from modelmon.evaluation import InvalidDataError, SourceUnavailableError
from modelmon.sources import DataError, LoadContext, SourceError, Stream, open_stream
from modelmon.stats.dataset import QualityFigures, ReferenceProfile, WindowScores, score_window
from modelmon.stats.sketch import BINNED, ColumnSketch, merge, score_sketches, sketch_column

log = logging.getLogger(__name__)

#: A column loaded whole is held twice while it is scored (its values and their sorted
#: copy): it fits when twice its bytes are within the limit.
HELD_COPIES = 2
#: Bytes per value assumed for a column read whole: numpy's float64.
VALUE_BYTES = 8
#: Rows per batch at most and at least, whatever the memory limit.
MAX_BATCH_ROWS = 1 << 20
MIN_BATCH_ROWS = 1 << 10
#: Where the limit is set, for messages.
LIMIT_FLAG = "modelmon run --max-check-memory"
#: Rows of each column kept from the first batch that has values, to tell its kind.
SAMPLE_ROWS = 1000
#: The fix when the window as a whole cannot be held.
NARROW = ("narrow spec.current.window, or keep the data in a database and score it there "
          "(spec.current.source.sql)")


def batch_rows(memory: int, columns: int) -> int:
    """Rows per batch so that one batch of ``columns`` columns takes about an eighth of
    ``memory`` (the rest: the parser's buffers, the batch's filtered copy, the figures)."""
    rows = memory // 8 // (VALUE_BYTES * max(columns, 1))
    return max(MIN_BATCH_ROWS, min(MAX_BATCH_ROWS, rows))


@contextmanager
def reading() -> Iterator[None]:
    """A source's failure as the check's: unreachable or refused, or unusable data."""
    try:
        yield
    except SourceError as exc:
        raise SourceUnavailableError(str(exc)) from None
    except DataError as exc:
        raise InvalidDataError(str(exc)) from None


def window(spec: ModelMonitorSpec, frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The rows of ``frame`` inside ``current.window`` before ``now``."""
    if spec.current.window is None:
        return frame
    ts_col = spec.columns.timestamp
    assert ts_col is not None  # the spec validator guarantees it
    if ts_col not in frame.columns:
        raise InvalidDataError(
            f"spec.columns.timestamp: the current window has no column {ts_col!r}")
    try:
        stamps = pd.to_datetime(frame[ts_col], utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidDataError(f"spec.columns.timestamp: column {ts_col!r} does not hold "
                               f"timestamps: {str(exc)[:120]}") from None
    start = now - parse_duration(spec.current.window)
    return frame[(stamps >= start) & (stamps < now)]


def streams_binned(profile: ReferenceProfile, name: str) -> bool:
    """Whether column ``name`` is scored from the reference's bins or categories alone."""
    column = profile.columns[name]
    return column.kind == "categorical" or column.method in BINNED


def method_field(spec: ModelMonitorSpec, profile: ReferenceProfile, name: str) -> str:
    """The spec field that chose column ``name``'s method."""
    column = profile.columns[name]
    if column.request.method != "auto":
        return f"spec.drift.features.{name}.method"
    if spec.drift.numeric_method is not None:
        return "spec.drift.numericMethod"
    if spec.drift.method == column.method:
        return "spec.drift.method"
    return f"spec.drift.numericMethod (auto picked {column.method} for {name!r})"


class Fold:
    """The sketches of a column's batches merged as a balanced tree (two of one size into
    one of the next, as a binary counter counts), so that the quantile grid's slack grows
    with the logarithm of the batches, not their number (``stats.sketch``)."""

    def __init__(self) -> None:
        self._levels: list[tuple[int, ColumnSketch]] = []

    def add(self, sketch: ColumnSketch) -> None:
        level = 0
        while self._levels and self._levels[-1][0] == level:
            sketch = merge(self._levels.pop()[1], sketch)
            level += 1
        self._levels.append((level, sketch))

    def result(self) -> ColumnSketch | None:
        """The sketch of every batch added, or None without any."""
        folded: ColumnSketch | None = None
        for _, sketch in reversed(self._levels):
            folded = sketch if folded is None else merge(sketch, folded)
        return folded


@dataclass(slots=True)
class StreamedWindow:
    """The current window as a ``stats.dataset.ColumnReader``: each column read in a pass
    of its own when asked for, and refused when it would not fit in ``limit``."""

    spec: ModelMonitorSpec
    profile: ReferenceProfile
    stream: Stream
    now: datetime
    limit: int
    wanted: list[str]
    """The monitored columns the source has."""
    rows: int = 0
    """Rows inside the window (counted by ``fold``)."""
    samples: dict[str, pd.Series] = field(default_factory=dict)
    """A few values of the columns the first pass reads, to tell their kind."""
    sketches: dict[str, ColumnSketch] = field(default_factory=dict)
    """The columns scored from the reference's bins or categories, folded batch by batch."""
    exact: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Columns whose method reads every value: (the spec field that chose it, method)."""

    @property
    def columns(self) -> list[str]:
        return self.wanted

    def __len__(self) -> int:
        return self.rows

    def _names(self, names: Sequence[str]) -> list[str]:
        ts_col = self.spec.columns.timestamp if self.spec.current.window else None
        return list(dict.fromkeys([*names, *([ts_col] if ts_col else [])]))

    def passes(self, names: Sequence[str]) -> Iterator[pd.DataFrame]:
        """One pass over the window: its rows of ``names``, a batch at a time."""
        read = self._names(names)
        with reading():
            for batch in self.stream.batches(read, batch_rows(self.limit, len(read))):
                kept = window(self.spec, batch, self.now)
                if len(kept):
                    yield kept[[n for n in names if n in kept.columns]]

    def fold(self) -> None:
        """The first pass: the window's rows, the sketch of each column a binned method
        scores (and data quality checks), and a few values of each column it reads."""
        binned = [n for n in self.wanted
                  if n in self.profile.columns and streams_binned(self.profile, n)]
        roles = [n for n in self.spec.columns.roles() if n in self.wanted]
        names = list(dict.fromkeys([*binned, *roles])) or self.wanted[:1]
        group = sum(self.stream.largest_chunk(n) for n in names)
        if group > self.limit:
            raise InvalidDataError(
                f"spec.current.source.url: a row group of the current window's files holds "
                f"about {format_bytes(group)} of the monitored columns, more than the check's "
                f"memory limit of {format_bytes(self.limit)} ({LIMIT_FLAG}), and a streamed "
                "read holds one row group at a time; write the files with smaller row "
                "groups (for example 100,000 rows each)")
        folds = {name: Fold() for name in binned}
        rows = 0
        for batch in self.passes(names):
            rows += len(batch)
            for name, fold in folds.items():
                fold.add(sketch_column(batch[name], self.profile.columns[name]))
            for name in batch.columns:
                if name not in self.samples and batch[name].notna().any():
                    self.samples[name] = batch[name].dropna().iloc[:SAMPLE_ROWS].copy()
        self.rows = rows
        for name, fold in folds.items():
            folded = fold.result()
            if folded is not None:
                self.sketches[name] = folded

    def score(self) -> WindowScores:
        """``stats.dataset.score_window`` of the window: the binned columns from their
        sketches, every other column loaded on its own (or refused) and scored from its
        values; in the profile's order."""
        columns = self.profile.columns
        present = [n for n in columns if n in self.wanted]
        sketched = score_sketches(ReferenceProfile(self.profile.rows, {
            n: columns[n] for n in present if n in self.sketches}), self.sketches)
        valued = score_window(ReferenceProfile(self.profile.rows, {
            n: columns[n] for n in present if n not in self.sketches}), self)
        drift = {d.name: d for d in [*sketched.drift, *valued.drift]}
        quality = {q.name: q for q in [*sketched.quality.columns, *valued.quality.columns]}
        changes = {c[0]: c for c in [*sketched.quality.type_changes,
                                     *valued.quality.type_changes]}
        missing = [n for n, p in columns.items()
                   if n not in self.wanted and p.request.role == "feature"]
        return WindowScores([drift[n] for n in present if n in drift], QualityFigures(
            [quality[n] for n in present if n in quality], missing,
            [changes[n] for n in present if n in changes]))

    def sample_frame(self) -> pd.DataFrame:
        """A few values of each column (a column without any: none), to tell its kind."""
        return pd.DataFrame({n: self.samples.get(n, pd.Series([], dtype=object))
                             for n in self.wanted})

    def need(self, names: Sequence[str], field: str, why: str, fix: str = NARROW) -> None:
        """Refuse before reading when ``names`` loaded together would not fit: an
        ``InvalidDataError`` naming ``field``, what needs them (``why``) and ``fix``."""
        size = self.rows * VALUE_BYTES * len(names) * HELD_COPIES
        chunk = max((self.stream.largest_chunk(n) for n in names), default=0) * HELD_COPIES
        if max(size, chunk) > self.limit:
            said = ", ".join(repr(n) for n in names)
            raise InvalidDataError(
                f"{field}: {why} would hold column(s) {said} of the current window in memory "
                f"({self.rows} rows, about {format_bytes(max(size, chunk))}), more than "
                f"the check's memory limit of {format_bytes(self.limit)} ({LIMIT_FLAG}); "
                f"{fix}")

    def frame(self, names: Sequence[str]) -> pd.DataFrame:
        """The columns ``names`` (those the source has) of the window, loaded together in
        one pass; call ``need`` first."""
        present = [n for n in names if n in self.wanted]
        parts = list(self.passes(present))
        if not parts:
            return pd.DataFrame({n: pd.Series([], dtype=object) for n in present})
        return pd.concat(parts, ignore_index=True)

    def __getitem__(self, name: str) -> pd.Series:
        if name in self.exact:
            where, method = self.exact[name]
            self.need([name], where, f"{method}, which reads every value,",
                      f"use a binned method there (psi, jensenshannon, kl, hellinger), "
                      f"or {NARROW}")
        else:
            self.need([name], "spec.current.window", "scoring the column")
        return self.frame([name])[name]


def open_window(spec: ModelMonitorSpec, profile: ReferenceProfile, ctx: LoadContext,
                names: Sequence[str], now: datetime, limit: int | None
                ) -> StreamedWindow | None:
    """The current window to read in passes, or None when it is to be loaded whole (no
    limit, a source that cannot stream, or monitored columns that fit in ``limit``)."""
    if limit is None:
        return None
    with reading():
        stream = open_stream(spec.current.source, ctx)
    if stream is None:
        return None
    held = stream.held_bytes(names)
    if held is None or held <= limit:
        return None
    log.info("the current window holds about %s, more than the check's memory limit of %s: "
             "streaming it", format_bytes(held), format_bytes(limit))
    wanted = [n for n in names if n in stream.columns]
    streamed = StreamedWindow(spec, profile, stream, now, limit, wanted)
    for name in wanted:
        if name in profile.columns and not streams_binned(profile, name):
            streamed.exact[name] = (method_field(spec, profile, name),
                                    profile.columns[name].method)
    streamed.fold()
    return streamed


