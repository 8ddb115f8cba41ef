"""Readers of the ``url`` source: the listed files' bytes, within budget, as one frame.

Part of ``sources`` (second stop on the data line), last step of a ``url`` load: each file
streamed (one GET for http(s), fsspec otherwise) and counted against the byte budget as
the parser reads it, parquet by its monitored columns only, parse failures reported without
the parser's text, and the files of a prefix checked for one schema and concatenated.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Protocol

import pandas as pd

from modelmon.api.v1alpha1 import DataFormat, Source
from modelmon.sources import egress
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
from modelmon.sources.url.listing import Listing, detect_format, sha256_hex
from modelmon.sources.url.targets import Target, http_request, unreachable

EXPECTED: dict[DataFormat, str] = {
    "csv": "CSV text with a header row",
    "jsonl": "JSON Lines (one JSON object per line)",
    "parquet": "a parquet file",
}


class Readable(Protocol):
    """What a stream of a file's bytes needs: ``read``."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; empty at the end."""
        ...


class _Metered(io.RawIOBase):
    """A binary stream that counts what is read from it against a budget (and hashes it
    when the version must come from the content). ``seek`` is passed on for parquet."""

    def __init__(self, raw: Readable, budget_: Budget, digest: Any = None) -> None:
        super().__init__()
        self._raw: Any = raw
        self._budget = budget_
        self._digest = digest
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._raw, "seekable", lambda: False)())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(min(len(view), CHUNK))
        count = len(data)
        view[:count] = data
        self.size += count
        if self._digest is not None:
            self._digest.update(data)
        self._budget.take(count)
        return count


class _Whole:
    """A metered file whose ``read(n)`` returns ``n`` bytes unless the file ends first (a
    metered read returns at most a megabyte; pyarrow takes a short read for the end),
    without reading ahead: only the byte ranges pyarrow asks for are fetched."""

    def __init__(self, raw: _Metered) -> None:
        self._raw = raw
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self._raw.read(CHUNK) or b"", b""))
        parts: list[bytes] = []
        left = size
        while left > 0:
            part = self._raw.read(min(left, CHUNK)) or b""
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class _Answer:
    """An http(s) answer's body as it arrives: each read returns what one receive brings
    (``read1``: a chunked answer is not collected to the size asked for), and a server that
    trickles is held to the timeout for the whole answer, as for one request."""

    def __init__(self, response: Any, timeout: float) -> None:
        self._response = response
        self._deadline = time.monotonic() + timeout

    def read(self, size: int = -1, /) -> bytes:
        if time.monotonic() > self._deadline:
            raise TimeoutError("the answer took longer than the timeout")
        return bytes(self._response.read1(size if size > 0 else CHUNK))


@contextmanager
def _stream(target: Target, path: str, budget_: Budget) -> Iterator[Readable]:
    """The bytes of one file as a stream; a size the server declares is refused at once
    when it is over the budget."""
    if not target.http:
        with target.filesystem.open(path, "rb") as handle:
            yield handle
        return
    with egress.urlopen(http_request(path, "GET"), target.timeout, target.egress,
                        target.where) as response:
        encoding = (response.headers.get("Content-Encoding") or "identity").lower()
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and encoding == "identity":
            budget_.declare(int(length), "Content-Length")
        answer = _Answer(response, target.timeout)
        if encoding in ("gzip", "x-gzip"):  # though asked for identity: count what it inflates to
            with gzip.GzipFile(fileobj=answer) as inflated:  # type: ignore[call-overload]
                yield inflated
        elif encoding == "identity":
            yield answer
        else:
            raise DataError(f"{target.where}: {target.shown} is sent in a Content-Encoding "
                            "other than gzip; serve it plain or gzip-encoded")


def _parse(handle: IO[bytes], fmt: DataFormat, columns: list[str] | None) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(handle)
    if fmt == "jsonl":
        return pd.read_json(handle, lines=True)
    buffer = io.BytesIO(handle.read())  # parquet needs to seek: the bytes are within budget
    return read_parquet(buffer, columns)


def read_parquet(handle: Any, columns: list[str] | None) -> pd.DataFrame:
    """A parquet file (path or open file) as a frame: ``columns`` only, when given, and
    never the pandas index pyarrow stored beside them."""
    import pyarrow.parquet

    parquet = pyarrow.parquet.ParquetFile(handle)
    names = parquet.schema_arrow.names
    meta = parquet.schema_arrow.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    wanted = [c for c in names if c not in index and (columns is None or c in set(columns))]
    # Column by column, each converted without a copy where pandas can share arrow's
    # buffer and kept as a block of its own: the read never holds the window twice.
    data = {name: parquet.read(columns=[name]).column(0).to_pandas(split_blocks=True)
            for name in wanted}
    return pd.DataFrame(data, copy=False)


class _NoRangesError(Exception):
    """The http(s) server ignores Range requests: the file can only be read whole."""


def _parquet_columns(target: Target, path: str, columns: list[str] | None,
                     budget_: Budget) -> pd.DataFrame:
    # No read-ahead cache for a remote file: each read pyarrow makes (the footer, then one
    # column chunk at a time) is one ranged request, so only the monitored columns travel,
    # and only they count against the budget.
    no_cache = {"cache_type": "none"} if target.remote else {}
    with target.filesystem.open(path, "rb", **no_cache) as handle:
        try:
            return read_parquet(_Whole(_Metered(handle, budget_)), columns)
        except ValueError as exc:
            if target.http and "range" in str(exc).lower():
                raise _NoRangesError from None
            raise


def _read_file(target: Target, path: str, fmt: DataFormat, columns: list[str] | None,
               content_hash: bool, budget_: Budget) -> tuple[pd.DataFrame, str | None]:
    shown = (target.shown if not target.prefix
             else f"{target.shown}{path[len(target.path.rstrip('/')) + 1:]}")
    if fmt == "parquet" and not content_hash:
        used = budget_.used
        try:
            return _parquet_columns(target, path, columns, budget_), None
        except _NoRangesError:
            budget_.used = used  # one whole download below, counted afresh
        except BudgetError:
            raise
        except Exception as exc:
            if unreachable(exc):
                raise target.fail(exc) from None
            raise DataError(f"{target.where}: " + unparsable(
                shown, fmt, EXPECTED[fmt], budget_.used - used, exc)) from None
    digest = hashlib.sha256() if content_hash else None
    metered: _Metered | None = None
    try:
        with _stream(target, path, budget_) as raw:
            metered = _Metered(raw, budget_, digest)
            frame = _parse(io.BufferedReader(metered, CHUNK), fmt, columns)
    except (DataError, SourceError):
        raise
    except Exception as exc:
        inner = exc.__context__  # raised inside the parser's read, and wrapped by it
        if isinstance(inner, BudgetError):
            raise inner from None
        if isinstance(inner, TimeoutError):
            exc = inner
        if metered is None or unreachable(exc):
            raise target.fail(exc) from None
        raise DataError(f"{target.where}: " + unparsable(shown, fmt, EXPECTED[fmt], metered.size,
                                                         exc)
                        ) from None
    return frame, None if digest is None else "sha256=" + digest.hexdigest()


def _kind_of(series: pd.Series) -> str | None:
    if series.isna().all():
        return None
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "text"


def _same_schema(target: Target, frames: list[tuple[str, pd.DataFrame]]) -> None:
    """Every file of a prefix has the first file's columns, of the same kinds."""
    first_path, first = frames[0]
    kinds = {c: _kind_of(first[c]) for c in first.columns}
    for path, frame in frames[1:]:
        missing = [c for c in first.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in first.columns]
        if missing or extra:
            said = "; ".join(s for s in (
                f"lacks {', '.join(map(str, missing))}" if missing else "",
                f"adds {', '.join(map(str, extra))}" if extra else "") if s)
            raise DataError(f"{target.where}: the schema changed under {target.shown}: "
                            f"{path} {said} compared with {first_path}; rewrite the files "
                            "or narrow the prefix")
        for column in first.columns:
            kind = _kind_of(frame[column])
            if kind is not None and kinds[column] is not None and kind != kinds[column]:
                raise DataError(
                    f"{target.where}: the schema changed under {target.shown}: column {column!r} "
                    f"holds {kind} values in {path} but {kinds[column]} in {first_path}")
            kinds[column] = kinds[column] or kind


def _declared_size(info: Mapping[str, Any]) -> int | None:
    size = info.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def read_all(source: Source, target: Target, files: Listing, ctx: LoadContext
             ) -> tuple[pd.DataFrame, str]:
    """Every listed file as one frame, and the version: the listing's, or a hash of the
    contents when the metadata tells no change."""
    columns = list(ctx.columns) if ctx.columns is not None else None
    budget_ = budget(source, ctx)
    hash_content = files.version is None
    frames: list[tuple[str, pd.DataFrame]] = []
    digests: list[str] = []
    formats = {detect_format(p, source.format) for p, _ in files.files}
    if len(formats) > 1:
        raise DataError(f"{target.where}: {target.shown} holds {', '.join(sorted(formats))} files; "
                        "set format to read only one kind")
    fmt = formats.pop()
    if fmt != "parquet" or hash_content:  # parquet by columns reads less than its size
        sizes = [_declared_size(info) for _, info in files.files]
        known = sum(s for s in sizes if s is not None)
        said = "Content-Length" if target.http else "size"
        budget_.declare(known, said if len(sizes) == 1 else
                        f"{len(sizes)} files, {said} together")
    for path, _ in files.files:
        frame, digest = _read_file(target, path, fmt, columns, hash_content, budget_)
        frames.append((path, frame))
        if digest is not None:
            digests.append(digest)
    if len(frames) > 1:
        _same_schema(target, frames)
    frame = frames[0][1] if len(frames) == 1 else pd.concat(
        [f for _, f in frames], ignore_index=True)
    version = files.version or ("sha256:" + sha256_hex("\n".join(digests)))
    return frame, version
