"""The ``url`` source: a file on a local path or an http(s) URL, read through fsspec.

Part of ``sources`` (second stop on the data line). Formats: csv, parquet (only the needed
columns are read), jsonl. The version tag is the file's size and mtime for local files and
a hash of the content for remote ones.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
import pandas as pd

from modelmon.api.v1alpha1 import DataFormat, Source
from modelmon.sources.base import DataError, LoadContext, Loaded, SourceError, register

SUFFIXES: dict[str, DataFormat] = {
    ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}
HTTP_TIMEOUT_SECONDS = 60.0


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment: safe for messages and logs."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def detect_format(path: str, declared: DataFormat | None) -> DataFormat:
    """The declared format, or the one the suffix implies."""
    if declared is not None:
        return declared
    name = urlsplit(path).path if "://" in path else path
    suffixes = Path(name).suffixes
    for suffix in reversed(suffixes):
        fmt = SUFFIXES.get(suffix.lower())
        if fmt is not None:
            return fmt
    raise DataError(
        f"cannot tell the format of {redact_url(path)!r} from its suffix; "
        f"set format to one of csv, parquet, jsonl")


def resolve(url: str, base_dir: Path) -> str:
    """An absolute local path or the URL as given."""
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return url
    if scheme == "file":
        return urlsplit(url).path
    if scheme and len(scheme) > 1:
        raise SourceError(
            f"url scheme {scheme!r} is not supported; use a local path or an http(s) URL")
    path = Path(os.path.expanduser(url))
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _read(data: bytes, fmt: DataFormat, columns: list[str] | None) -> pd.DataFrame:
    buffer = io.BytesIO(data)
    if fmt == "csv":
        return pd.read_csv(buffer)
    if fmt == "jsonl":
        return pd.read_json(buffer, lines=True)
    import pyarrow.parquet as pq

    schema_names = pq.read_schema(buffer).names
    wanted = None if columns is None else [c for c in columns if c in schema_names]
    buffer.seek(0)
    frame: pd.DataFrame = pq.read_table(buffer, columns=wanted).to_pandas()
    return frame


@register("url")
def load_url(source: Source, ctx: LoadContext) -> Loaded:
    """Read the file a ``url`` source names."""
    assert source.url is not None
    where = f"{ctx.role}.url"
    target = resolve(source.url, ctx.base_dir)
    shown = redact_url(target)
    fmt = detect_format(target, source.format)
    remote = "://" in target
    options: dict[str, Any] = {}
    if remote:
        import aiohttp

        options["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)}
    try:
        with fsspec.open(target, "rb", **options) as fh:
            data = fh.read()
    except FileNotFoundError:
        hint = "" if remote else f" (relative paths resolve against {ctx.base_dir})"
        raise SourceError(f"{where}: {shown} not found{hint}") from None
    except PermissionError:
        raise SourceError(f"{where}: permission denied reading {shown}") from None
    except IsADirectoryError:
        raise SourceError(f"{where}: {shown} is a directory; name a file") from None
    except Exception as exc:  # network failures come in many library-specific types
        raise SourceError(f"{where}: cannot read {shown}: {type(exc).__name__}") from None
    if remote:
        version = "sha256:" + hashlib.sha256(data).hexdigest()
    else:
        st = os.stat(target)
        version = f"mtime:{st.st_mtime_ns}:size:{st.st_size}"
    try:
        frame = _read(data, fmt, list(ctx.columns) if ctx.columns is not None else None)
    except Exception as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(f"{where}: {shown} is not readable as {fmt}: {detail}") from None
    if frame.columns.empty:
        raise DataError(f"{where}: {shown} has no columns")
    return Loaded(frame=frame, version=version)
