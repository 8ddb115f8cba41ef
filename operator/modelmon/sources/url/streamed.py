"""Streamed reads of the ``url`` source: a window larger than memory, batch by batch.

Part of ``sources`` (second stop on the data line), beside ``readers``: where ``readers``
builds one frame of the whole window, a ``Streamed`` hands out the rows of chosen columns in
batches of bounded size, so that a check holds one batch at a time. Parquet is read by row
group (``iter_batches``, only the asked columns' byte ranges fetched), CSV in chunks of rows
by the same parser as a whole load (pandas), so that a streamed value is the value a whole
load would hold. Each pass over the source is held to the byte budget (``maxBytes``: bytes
fetched), the egress policy, the allowed local paths and the timeout as a whole load is.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from modelmon.api.v1alpha1 import DataFormat, Source
from modelmon.sources.base import (
    CHUNK,
    Budget,
    BudgetError,
    DataError,
    LoadContext,
    SourceError,
    budget,
    unparsable,
)
from modelmon.sources.url.listing import Listing, detect_format
from modelmon.sources.url.readers import EXPECTED, _Metered, _stream, _Whole
from modelmon.sources.url.targets import Target, unreachable

#: Formats a window can be streamed in (JSON Lines is always read whole).
STREAMED_FORMATS: tuple[DataFormat, ...] = ("parquet", "csv")
#: Bytes asked for at a time while reading a CSV header.
HEADER_READ = 1 << 16
#: Bytes a value takes in memory, for estimates: a number, a timestamp or a boolean as
#: numpy holds it; text as a pointer and a small Python string.
NUMBER_BYTES = 8
TEXT_BYTES = 64


@dataclass(slots=True)
class _ParquetFile:
    """What a parquet file's footer tells: its columns, rows and the bytes each column
    takes uncompressed, and its largest row group's column chunk."""

    names: list[str]
    rows: int
    sizes: dict[str, int] = field(default_factory=dict)
    largest_chunk: dict[str, int] = field(default_factory=dict)
    text: set[str] = field(default_factory=set)
    schema: Any = None
    """The file's Arrow schema."""


@dataclass(slots=True)
class Streamed:
    """A ``url`` source's files, read in batches of chosen columns (``batches``)."""

    source: Source
    target: Target
    files: Listing
    fmt: DataFormat
    ctx: LoadContext
    version: str
    columns: list[str]
    """The first file's columns (every file must have the monitored ones)."""
    rows: int | None
    """Rows of every file together when the metadata tells them (parquet), else None."""
    _parquet: dict[str, _ParquetFile] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.target.where

    def held_bytes(self, names: Sequence[str]) -> int | None:
        """About the bytes the columns ``names`` take loaded whole (as a frame), or None
        when that cannot be told without reading (a CSV without a declared size)."""
        wanted = [n for n in names if n in self.columns]
        if self.fmt == "parquet":
            total = 0
            for meta in self._parquet.values():
                for name in wanted:
                    width = TEXT_BYTES if name in meta.text else NUMBER_BYTES
                    total += max(meta.sizes.get(name, 0), width * meta.rows)
            return total
        sizes = [info.get("size") for _, info in self.files.files]
        if any(not isinstance(s, int) for s in sizes):
            return None
        # CSV text takes about as many bytes as its values do in memory; only the read
        # columns' share of it is held.
        share = len(wanted) / max(len(self.columns), 1)
        return int(sum(s for s in sizes if isinstance(s, int)) * share)

    def arrow_schema(self) -> Any:
        """The first parquet file's Arrow schema (None for CSV)."""
        first = next(iter(self._parquet.values()), None)
        return None if first is None else first.schema

    def largest_chunk(self, name: str) -> int:
        """Bytes of the largest piece of column ``name`` a read must hold at once: its
        largest row group's column chunk, uncompressed (parquet), else 0."""
        return max((m.largest_chunk.get(name, 0) for m in self._parquet.values()), default=0)

    def batches(self, names: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """The columns ``names`` (those the files have) of every file, in path order, about
        ``rows`` rows at a time. One pass: its bytes are held to the byte budget afresh."""
        wanted = [n for n in self.columns if n in set(names)]
        budget_ = budget(self.source, self.ctx)
        for path, _ in self.files.files:
            yield from self._file_batches(path, wanted, rows, budget_)

    def _file_batches(self, path: str, wanted: list[str], rows: int, budget_: Budget
                      ) -> Iterator[pd.DataFrame]:
        used = budget_.used
        shown = _shown(self.target, path)
        metered: list[_Metered] = []
        try:
            if self.fmt == "parquet":
                yield from _parquet_batches(self.target, path, wanted, rows, budget_, metered)
            else:
                yield from _csv_batches(self.target, path, wanted, rows, budget_, metered)
        except (DataError, SourceError):
            raise
        except Exception as exc:
            inner = exc.__context__
            if isinstance(inner, BudgetError):
                raise inner from None
            if isinstance(inner, TimeoutError):
                exc = inner
            if unreachable(exc) or not metered:
                raise self.target.fail(exc) from None
            raise DataError(f"{self.where}: " + unparsable(
                shown, self.fmt, EXPECTED[self.fmt], budget_.used - used, exc)) from None


def _shown(target: Target, path: str) -> str:
    """A file of the target as messages show it (a prefix's files by their relative path)."""
    return (target.shown if not target.prefix
            else f"{target.shown}{path[len(target.path.rstrip('/')) + 1:]}")


def _opened(target: Target, path: str) -> AbstractContextManager[Any]:
    no_cache = {"cache_type": "none"} if target.remote else {}
    return target.filesystem.open(path, "rb", **no_cache)  # type: ignore[no-any-return]


def _parquet_batches(target: Target, path: str, wanted: list[str], rows: int,
                     budget_: Budget, metered: list[_Metered]) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet

    with _opened(target, path) as handle:
        metered.append(_Metered(handle, budget_))
        parquet = pyarrow.parquet.ParquetFile(_Whole(metered[0]))
        present = [n for n in wanted if n in parquet.schema_arrow.names]
        # One row group at a time: a reader over the whole file reads ahead and keeps
        # several row groups' buffers (measured: about ten times the memory).
        for group in range(parquet.num_row_groups):
            for batch in parquet.iter_batches(batch_size=rows, row_groups=[group],
                                              columns=present, use_pandas_metadata=False):
                yield pd.DataFrame({name: batch.column(i).to_pandas()
                                    for i, name in enumerate(batch.schema.names)}, copy=False)


def _csv_batches(target: Target, path: str, wanted: list[str], rows: int, budget_: Budget,
                 metered: list[_Metered]) -> Iterator[pd.DataFrame]:
    keep = set(wanted)
    with _stream(target, path, budget_) as raw:
        metered.append(_Metered(raw, budget_))
        reader = pd.read_csv(io.BufferedReader(metered[0], CHUNK),
                             usecols=lambda c: c in keep, chunksize=rows)
        with reader:
            yield from reader


def _parquet_meta(target: Target, path: str, budget_: Budget) -> _ParquetFile:
    import pyarrow
    import pyarrow.parquet

    with _opened(target, path) as handle:
        parquet = pyarrow.parquet.ParquetFile(_Whole(_Metered(handle, budget_)))
        schema = parquet.schema_arrow
        meta = parquet.metadata
        names = [str(n) for n in schema.names]
        index = {c for c in (schema.pandas_metadata or {}).get("index_columns", [])
                 if isinstance(c, str)}
        found = _ParquetFile([n for n in names if n not in index], meta.num_rows)
        found.schema = schema
        found.text = {str(f.name) for f in schema
                      if pyarrow.types.is_string(f.type) or pyarrow.types.is_large_string(f.type)
                      or pyarrow.types.is_dictionary(f.type)}
        leaf = {meta.schema.column(position).path.split(".")[0]: position
                for position in range(meta.num_columns)}
        for name, position in leaf.items():
            chunks = [meta.row_group(group).column(position).total_uncompressed_size
                      for group in range(meta.num_row_groups)]
            found.sizes[name] = sum(chunks)
            found.largest_chunk[name] = max(chunks, default=0)
        return found


def _csv_header(target: Target, path: str, budget_: Budget) -> list[str]:
    with _stream(target, path, budget_) as raw:  # the first line only, 64 KiB at a time
        line = io.BufferedReader(_Metered(raw, budget_), HEADER_READ).readline()
    return [str(c) for c in pd.read_csv(io.BytesIO(line), nrows=0).columns]


def open_streamed(source: Source, target: Target, files: Listing, ctx: LoadContext
                  ) -> Streamed | None:
    """The listed files as a ``Streamed``, or None when they cannot be streamed (JSON
    Lines, or a version that only the content would tell) or need not be (CSV files whose
    sizes together are within the memory limit: no header is read then). Reads the parquet
    footers or the CSV headers, within the byte budget; a file that lacks a column the
    first file has fails with ``DataError`` naming it."""
    formats = {detect_format(p, source.format) for p, _ in files.files}
    if len(formats) > 1:
        raise DataError(f"{target.where}: {target.shown} holds {', '.join(sorted(formats))} "
                        "files; set format to read only one kind")
    fmt = formats.pop()
    if fmt not in STREAMED_FORMATS or files.version is None:
        return None
    sizes = [info.get("size") for _, info in files.files]
    limit = ctx.policy.max_memory
    if (fmt == "csv" and limit is not None and all(isinstance(s, int) for s in sizes)
            and sum(s for s in sizes if isinstance(s, int)) <= limit):
        return None  # the whole text fits: loaded whole, without reading a header first
    budget_ = budget(source, ctx)
    metas: dict[str, _ParquetFile] = {}
    columns: list[str] | None = None
    first = ""
    for path, _ in files.files:
        try:
            if fmt == "parquet":
                metas[path] = _parquet_meta(target, path, budget_)
                names = metas[path].names
            else:
                names = _csv_header(target, path, budget_)
        except (DataError, SourceError):
            raise
        except Exception as exc:
            if unreachable(exc):
                raise target.fail(exc) from None
            raise DataError(f"{target.where}: " + unparsable(
                _shown(target, path), fmt, EXPECTED[fmt], None, exc)) from None
        if columns is None:
            columns, first = names, path
            continue
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{target.where}: the schema changed under {target.shown}: "
                            f"{path} lacks {', '.join(missing[:5])} compared with {first}; "
                            "rewrite the files or narrow the prefix")
    rows = sum(m.rows for m in metas.values()) if fmt == "parquet" else None
    return Streamed(source, target, files, fmt, ctx, files.version, columns or [], rows,
                    metas)

